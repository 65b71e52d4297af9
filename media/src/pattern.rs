//! A synthetic moving test picture that looks like a retro game to an encoder: a smooth
//! scrolling gradient sky, solid sprites bouncing around, a HUD of 8x8 glyphs with one-pixel
//! strokes (high-frequency detail, some of it changing every few frames) and a tiled floor
//! scrolling two pixels a frame. For tests, benchmarks and diagnostics; deterministic.

use crate::convert::{PixelFormat, RgbFrame};

/// Renders frames of the test picture into a buffer it owns.
#[derive(Debug, Clone)]
pub struct TestPattern {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

/// A solid square: size, colour, x and y speed in pixels per frame.
type Sprite = (u32, (u8, u8, u8), u32, u32);

const SPRITES: [Sprite; 4] =
    [(24, (220, 40, 40), 3, 2), (16, (40, 200, 60), 5, 1), (32, (250, 210, 30), 1, 3), (12, (60, 80, 240), 4, 4)];

impl TestPattern {
    /// A pattern of the given size (at least 16x16; any size works, the picture is made for
    /// about 256x240).
    pub fn new(width: u32, height: u32) -> Self {
        TestPattern { width: width.max(16), height: height.max(16), data: Vec::new() }
    }

    /// Frame number `index` in `format`, with rows tightly packed.
    pub fn render(&mut self, index: u32, format: PixelFormat) -> RgbFrame<'_> {
        let (w, h) = (self.width, self.height);
        let bpp = format.bytes_per_pixel();
        self.data.resize(w as usize * h as usize * bpp, 0);
        for y in 0..h {
            for x in 0..w {
                let (r, g, b) = self.pixel(index, x, y);
                let at = (y as usize * w as usize + x as usize) * bpp;
                let out = &mut self.data[at..at + bpp];
                match format {
                    PixelFormat::Xrgb8888 => {
                        let p = (u32::from(r) << 16) | (u32::from(g) << 8) | u32::from(b);
                        out.copy_from_slice(&p.to_ne_bytes());
                    }
                    PixelFormat::Rgb565 => {
                        let p = (u16::from(r >> 3) << 11) | (u16::from(g >> 2) << 5) | u16::from(b >> 3);
                        out.copy_from_slice(&p.to_ne_bytes());
                    }
                    PixelFormat::Xrgb1555 => {
                        let p = (u16::from(r >> 3) << 10) | (u16::from(g >> 3) << 5) | u16::from(b >> 3);
                        out.copy_from_slice(&p.to_ne_bytes());
                    }
                }
            }
        }
        RgbFrame { format, width: w, height: h, stride: w as usize * bpp, data: &self.data }
    }

    fn pixel(&self, t: u32, x: u32, y: u32) -> (u8, u8, u8) {
        let (w, h) = (self.width, self.height);
        // HUD: two rows of glyphs at the top; the last four glyphs are a "score" that changes.
        if (8..24).contains(&y) && (8..w - 8).contains(&x) {
            let (col, row) = ((x - 8) / 8, (y - 8) / 8);
            let glyph = if col >= ((w - 16) / 8).saturating_sub(4) { col + row * 64 + t / 4 } else { col + row * 64 };
            return if glyph_bit(glyph, (x - 8) % 8, (y - 8) % 8) { (255, 255, 255) } else { (0, 0, 0) };
        }
        // Floor: 16x16 tiles with a one-pixel mortar grid, scrolling left two pixels a frame.
        if y >= h - h / 6 {
            let sx = x + 2 * t;
            let (tx, ty) = (sx % 16, (y - (h - h / 6)) % 16);
            if tx == 0 || ty == 0 {
                return (60, 30, 10);
            }
            let shade = if ((sx / 16) + (y / 16)).is_multiple_of(2) { 170 } else { 140 };
            return (shade, (shade as u32 * 3 / 5) as u8, 40);
        }
        for (i, &(size, colour, vx, vy)) in SPRITES.iter().enumerate() {
            let sx = bounce(t * vx + 37 * i as u32, w.saturating_sub(size));
            let sy = bounce(t * vy + 53 * i as u32, (h - h / 6).saturating_sub(size));
            if (sx..sx + size).contains(&x) && (sy..sy + size).contains(&y) {
                // A one-pixel dark outline, as sprites have.
                let edge = x == sx || y == sy || x == sx + size - 1 || y == sy + size - 1;
                return if edge { (20, 20, 20) } else { colour };
            }
        }
        // Sky: smooth gradient drifting one pixel a frame.
        let r = ((x + t) % 512).abs_diff(256) / 4 + 40;
        let g = 80 + y * 100 / h;
        let b = 160 + (x + y) * 80 / (w + h);
        (r as u8, g as u8, b as u8)
    }
}

/// Position bouncing between 0 and `span`.
fn bounce(travel: u32, span: u32) -> u32 {
    if span == 0 {
        return 0;
    }
    let p = travel % (2 * span);
    if p < span {
        p
    } else {
        2 * span - p
    }
}

/// One pixel of an 8x8 pseudo-glyph: strokes one pixel wide with a blank border, like a font.
fn glyph_bit(glyph: u32, x: u32, y: u32) -> bool {
    if x == 0 || y == 0 || x == 7 || y == 7 {
        return false;
    }
    let mut seed = glyph.wrapping_mul(0x9E37_79B9) ^ 0x5bd1_e995;
    seed ^= seed >> 15;
    seed = seed.wrapping_mul(0x2c1b_3c6d);
    seed ^= seed >> 12;
    // Each glyph: a few horizontal and vertical strokes chosen by its seed bits.
    let horizontal = (seed & 0x3f) as u8; // rows 1..=6
    let vertical = ((seed >> 6) & 0x3f) as u8; // columns 1..=6
    (horizontal & (1 << (y - 1)) != 0 && (2..6).contains(&x)) || (vertical & (1 << (x - 1)) != 0 && (2..6).contains(&y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_differ_and_formats_agree_in_size() {
        let mut pattern = TestPattern::new(256, 240);
        let first = pattern.render(0, PixelFormat::Xrgb8888).data.to_vec();
        let second = pattern.render(1, PixelFormat::Xrgb8888).data.to_vec();
        assert_eq!(first.len(), 256 * 240 * 4);
        assert_ne!(first, second);
        assert_eq!(pattern.render(1, PixelFormat::Rgb565).data.len(), 256 * 240 * 2);
    }
}
