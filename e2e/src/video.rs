//! Decoding what a test peer received and finding things in the picture.

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

/// A decoded luma plane.
#[derive(Debug, Clone)]
pub struct Luma {
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// Row-major, `width` bytes per row.
    pub y: Vec<u8>,
}

impl Luma {
    /// Centroid (x, y) of the pixels whose luma is within `lo..=hi`, with their count.
    pub fn centroid(&self, lo: u8, hi: u8) -> Option<(f64, f64, usize)> {
        let (mut sx, mut sy, mut n) = (0f64, 0f64, 0usize);
        for (i, &v) in self.y.iter().enumerate() {
            if (lo..=hi).contains(&v) {
                sx += (i % self.width) as f64;
                sy += (i / self.width) as f64;
                n += 1;
            }
        }
        (n > 0).then(|| (sx / n as f64, sy / n as f64, n))
    }
}

/// Decodes a sequence of H264 access units; frames before the first IDR are skipped.
pub struct H264Decoder {
    dec: Decoder,
    /// Pictures decoded so far.
    pub decoded: usize,
}

impl Default for H264Decoder {
    fn default() -> Self {
        Self { dec: Decoder::new().expect("openh264 decoder"), decoded: 0 }
    }
}

impl H264Decoder {
    /// Decodes one access unit; returns its luma plane when a picture came out.
    pub fn decode(&mut self, au: &[u8]) -> Option<Luma> {
        let pic = self.dec.decode(au).ok()??;
        let (w, h) = pic.dimensions();
        let (ys, _, _) = pic.strides();
        let y = pic.y().chunks(ys).take(h).flat_map(|row| &row[..w]).copied().collect();
        self.decoded += 1;
        Some(Luma { width: w, height: h, y })
    }
}
