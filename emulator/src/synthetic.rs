//! A test-pattern "core": produces frames and audio whose every byte is predictable from the
//! frame number and input, so tests of the shared-memory path (and other crates' tests when no
//! libretro core is installed) can check exactly what arrived.

use crate::av::{AvInfo, PixelFormat};

/// Geometry, rate and format of the pattern.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct TestPattern {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rate.
    pub fps: f64,
    /// Pixel format.
    pub format: PixelFormat,
    /// Audio sample rate (stereo frames per second).
    pub sample_rate: u32,
}

impl Default for TestPattern {
    fn default() -> Self {
        Self { width: 256, height: 240, fps: 60.0, format: PixelFormat::Xrgb8888, sample_rate: 48_000 }
    }
}

fn format_name(f: PixelFormat) -> &'static str {
    match f {
        PixelFormat::Xrgb8888 => "xrgb8888",
        PixelFormat::Rgb565 => "rgb565",
        PixelFormat::Orgb1555 => "0rgb1555",
    }
}

impl std::fmt::Display for TestPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}@{}:{}:{}", self.width, self.height, self.fps, format_name(self.format), self.sample_rate)
    }
}

impl std::str::FromStr for TestPattern {
    type Err = String;
    /// `WxH@FPS[:FORMAT[:RATE]]`, e.g. `256x240@60:xrgb8888:48000`.
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("test pattern must look like 256x240@60[:xrgb8888[:48000]], not {s:?}");
        let mut parts = s.split(':');
        let geo = parts.next().ok_or_else(err)?;
        let (wh, fps) = geo.split_once('@').ok_or_else(err)?;
        let (w, h) = wh.split_once('x').ok_or_else(err)?;
        let mut p = Self {
            width: w.parse().map_err(|_| err())?,
            height: h.parse().map_err(|_| err())?,
            fps: fps.parse().map_err(|_| err())?,
            ..Self::default()
        };
        if let Some(f) = parts.next() {
            p.format = match f {
                "xrgb8888" => PixelFormat::Xrgb8888,
                "rgb565" => PixelFormat::Rgb565,
                "0rgb1555" => PixelFormat::Orgb1555,
                _ => return Err(err()),
            };
        }
        if let Some(r) = parts.next() {
            p.sample_rate = r.parse().map_err(|_| err())?;
        }
        if p.width == 0 || p.height == 0 || p.width > 4096 || p.height > 4096 || !(p.fps > 0.0 && p.fps < 10_000.0) {
            return Err(err());
        }
        Ok(p)
    }
}

impl TestPattern {
    /// The av info a core with this output would report.
    pub fn av_info(&self) -> AvInfo {
        AvInfo {
            base_width: self.width,
            base_height: self.height,
            max_width: self.width,
            max_height: self.height,
            aspect_ratio: self.width as f32 / self.height as f32,
            rotation: 0,
            fps: self.fps,
            sample_rate: f64::from(self.sample_rate),
            pixel_format: self.format,
        }
    }

    /// Pixel value at `i` (row-major index) of frame `n`; pixel 0 carries player 1's buttons.
    pub fn pixel(&self, n: u64, i: usize, buttons: u16) -> u32 {
        if i == 0 {
            return u32::from(buttons);
        }
        let v = (n as u32).wrapping_mul(2_654_435_761).wrapping_add(i as u32);
        match self.format {
            PixelFormat::Xrgb8888 => v & 0x00ff_ffff,
            PixelFormat::Rgb565 => v & 0xffff,
            PixelFormat::Orgb1555 => v & 0x7fff,
        }
    }

    /// Renders frame `n` (packed rows) into `out`.
    pub fn render(&self, n: u64, buttons: u16, out: &mut Vec<u8>) {
        let bpp = self.format.bytes_per_pixel();
        let count = self.width as usize * self.height as usize;
        out.clear();
        out.reserve(count * bpp);
        for i in 0..count {
            let v = self.pixel(n, i, buttons);
            out.extend_from_slice(&v.to_le_bytes()[..bpp]);
        }
    }

    /// Checks that `data` is exactly frame `n` (any buttons); returns the buttons it carries.
    pub fn verify(&self, n: u64, data: &[u8]) -> Option<u16> {
        let bpp = self.format.bytes_per_pixel();
        let count = self.width as usize * self.height as usize;
        if data.len() != count * bpp {
            return None;
        }
        let mut px = [0u8; 4];
        px[..bpp].copy_from_slice(&data[..bpp]);
        let buttons = u16::try_from(u32::from_le_bytes(px)).ok()?;
        for (i, chunk) in data.chunks_exact(bpp).enumerate().skip(1) {
            px = [0; 4];
            px[..bpp].copy_from_slice(chunk);
            if u32::from_le_bytes(px) != self.pixel(n, i, buttons) {
                return None;
            }
        }
        Some(buttons)
    }

    /// Audio for frame `n`: as many stereo frames as the rate gives (exactly, over time), each
    /// `(idx, !idx)` where `idx` is the running stereo-frame index as i16.
    pub fn audio(&self, n: u64, out: &mut Vec<i16>) {
        let start = self.samples_before(n);
        let end = self.samples_before(n + 1);
        out.clear();
        for idx in start..end {
            out.push(idx as i16);
            out.push(!(idx as i16));
        }
    }

    fn samples_before(&self, n: u64) -> u64 {
        (n as f64 * f64::from(self.sample_rate) / self.fps).floor() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let p: TestPattern = "240x160@59.7275:rgb565:32768".parse().unwrap();
        assert_eq!((p.width, p.height, p.format, p.sample_rate), (240, 160, PixelFormat::Rgb565, 32768));
        assert_eq!(p.to_string().parse::<TestPattern>().unwrap(), p);
        assert_eq!("8x8@60".parse::<TestPattern>().unwrap().format, PixelFormat::Xrgb8888);
        assert!("8x8".parse::<TestPattern>().is_err());
        assert!("0x8@60".parse::<TestPattern>().is_err());
    }

    #[test]
    fn frames_verify_and_differ() {
        for format in [PixelFormat::Xrgb8888, PixelFormat::Rgb565, PixelFormat::Orgb1555] {
            let p = TestPattern { width: 16, height: 8, format, ..TestPattern::default() };
            let mut a = Vec::new();
            let mut b = Vec::new();
            p.render(5, 0x88, &mut a);
            p.render(6, 0, &mut b);
            assert_eq!(p.verify(5, &a), Some(0x88));
            assert_eq!(p.verify(6, &a), None);
            assert_ne!(a, b);
        }
    }

    #[test]
    fn audio_totals_match_the_rate() {
        let p = TestPattern { fps: 59.7275, sample_rate: 32768, ..TestPattern::default() };
        let mut total = 0;
        let mut buf = Vec::new();
        for n in 0..597 {
            p.audio(n, &mut buf);
            total += buf.len() / 2;
        }
        assert_eq!(total as u64, (597.0 * 32768.0 / 59.7275f64).floor() as u64);
    }
}
