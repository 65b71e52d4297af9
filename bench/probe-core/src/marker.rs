//! What the probe core draws, and how to read it back from a decoded picture.
//!
//! The picture is 256x240. Its top five rows of 16x16-pixel cells each hold one 16-bit word,
//! most significant bit in the leftmost cell, 1 = white, 0 = black:
//!
//! | cell row | pixels  | word                                   |
//! | -------- | ------- | -------------------------------------- |
//! | 0        | 0..16   | [`SYNC`], to tell a probe frame apart  |
//! | 1        | 16..32  | frame counter (mod 2^16)               |
//! | 2        | 32..48  | the counter inverted                   |
//! | 3        | 48..64  | port 1 buttons last read (RetroPad bits)|
//! | 4        | 64..80  | the buttons inverted                   |
//!
//! A decoder samples the middle 8x8 pixels of each cell and thresholds their mean luma at 128;
//! the inverted copies reject a picture that lossy coding (or a half-updated frame) garbled.
//! Cells are aligned to 16x16 macroblocks, so H264 and VP8 keep them clean even at low
//! bitrates. The rest of the picture is a dark background with a block moving 2 px per frame,
//! so the encoder always has some motion to code. `bench/latency/latency.mjs` reads the same
//! layout in the browser: keep the two in step.

/// Picture width in pixels.
pub const WIDTH: usize = 256;
/// Picture height in pixels.
pub const HEIGHT: usize = 240;
/// Cell size in pixels.
pub const CELL: usize = 16;
/// Bits per word (one cell row).
pub const BITS: usize = WIDTH / CELL;
/// The sync word of cell row 0.
pub const SYNC: u16 = 0xF0A5;
/// Cell rows used by the marker.
pub const MARKER_ROWS: usize = 5;

const WHITE: u32 = 0x00FF_FFFF;
const BLACK: u32 = 0x0000_0000;
const BACKGROUND: u32 = 0x0020_2838;
const BLOCK: u32 = 0x00E0_C040;

/// What a probe frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Marker {
    /// Frame counter, mod 2^16.
    pub counter: u16,
    /// Port 1 buttons the core read for this frame.
    pub buttons: u16,
}

/// The five words a frame carries, top row first.
pub fn words(m: Marker) -> [u16; MARKER_ROWS] {
    [SYNC, m.counter, !m.counter, m.buttons, !m.buttons]
}

/// Draws frame `n` (0-based) with marker `m` into `pixels` (XRGB8888, `WIDTH` pixels per row,
/// `HEIGHT` rows).
pub fn render(pixels: &mut [u32], n: u64, m: Marker) {
    assert_eq!(pixels.len(), WIDTH * HEIGHT, "a {WIDTH}x{HEIGHT} picture");
    let marker_px = MARKER_ROWS * CELL * WIDTH;
    for (row, word) in words(m).into_iter().enumerate() {
        for y in row * CELL..(row + 1) * CELL {
            let line = &mut pixels[y * WIDTH..(y + 1) * WIDTH];
            for (bit, cell) in line.chunks_exact_mut(CELL).enumerate() {
                let on = word >> (BITS - 1 - bit) & 1 == 1;
                cell.fill(if on { WHITE } else { BLACK });
            }
        }
    }
    pixels[marker_px..].fill(BACKGROUND);
    // A block bouncing left and right below the marker, 2 px per frame.
    let span = (WIDTH - CELL) as u64;
    let pos = (2 * n) % (2 * span);
    let x = if pos < span { pos } else { 2 * span - pos } as usize;
    let y0 = (MARKER_ROWS + 1) * CELL + ((n / 60) % 8) as usize * CELL;
    for y in y0..y0 + CELL {
        pixels[y * WIDTH + x..y * WIDTH + x + CELL].fill(BLOCK);
    }
}

/// Reads the marker from a luma plane (`stride` bytes per row, at least `WIDTH`x`HEIGHT`
/// pixels). None when the sync word or an inverted copy does not match.
pub fn decode_luma(luma: &[u8], width: usize, height: usize, stride: usize) -> Option<Marker> {
    if width < WIDTH || height < MARKER_ROWS * CELL || luma.len() < stride * (MARKER_ROWS * CELL - 1) + WIDTH {
        return None;
    }
    decode_with(|x, y| u32::from(luma[y * stride + x]))
}

/// Reads the marker from XRGB8888 bytes (little-endian B, G, R, X; `stride` bytes per row).
pub fn decode_xrgb(data: &[u8], width: usize, height: usize, stride: usize) -> Option<Marker> {
    if width < WIDTH || height < MARKER_ROWS * CELL || data.len() < stride * (MARKER_ROWS * CELL - 1) + WIDTH * 4 {
        return None;
    }
    decode_with(|x, y| {
        let p = &data[y * stride + x * 4..y * stride + x * 4 + 3];
        // Integer BT.601 weights; the threshold only needs "bright or dark".
        (u32::from(p[2]) * 77 + u32::from(p[1]) * 150 + u32::from(p[0]) * 29) >> 8
    })
}

fn decode_with(luma: impl Fn(usize, usize) -> u32) -> Option<Marker> {
    let mut w = [0u16; MARKER_ROWS];
    for (row, word) in w.iter_mut().enumerate() {
        for bit in 0..BITS {
            let (x0, y0) = (bit * CELL + CELL / 4, row * CELL + CELL / 4);
            let mut sum = 0;
            for y in y0..y0 + CELL / 2 {
                for x in x0..x0 + CELL / 2 {
                    sum += luma(x, y);
                }
            }
            let mean = sum / (CELL as u32 / 2).pow(2);
            *word = (*word << 1) | u16::from(mean >= 128);
        }
    }
    let m = Marker { counter: w[1], buttons: w[3] };
    (w == words(m)).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(n: u64, m: Marker) -> Vec<u32> {
        let mut px = vec![0; WIDTH * HEIGHT];
        render(&mut px, n, m);
        px
    }

    fn bytes(px: &[u32]) -> Vec<u8> {
        px.iter().flat_map(|p| p.to_le_bytes()).collect()
    }

    #[test]
    fn round_trips_through_xrgb_and_luma() {
        for (n, m) in [
            (0, Marker::default()),
            (7, Marker { counter: 0xBEEF, buttons: 1 << 8 }),
            (1000, Marker { counter: 0xFFFF, buttons: 0xFFFF }),
        ] {
            let px = picture(n, m);
            assert_eq!(decode_xrgb(&bytes(&px), WIDTH, HEIGHT, WIDTH * 4), Some(m));
            let luma: Vec<u8> = px.iter().map(|p| if p & 0xFF == 0xFF { 235 } else { 16 }).collect();
            assert_eq!(decode_luma(&luma, WIDTH, HEIGHT, WIDTH), Some(m));
        }
    }

    #[test]
    fn garbled_or_foreign_pictures_are_refused() {
        let m = Marker { counter: 5, buttons: 3 };
        let mut px = picture(1, m);
        // Flip one counter cell: the inverted copy no longer agrees.
        for y in CELL..2 * CELL {
            for x in 0..CELL {
                px[y * WIDTH + x] ^= 0x00FF_FFFF;
            }
        }
        assert_eq!(decode_xrgb(&bytes(&px), WIDTH, HEIGHT, WIDTH * 4), None);
        assert_eq!(decode_luma(&[128; WIDTH * HEIGHT], WIDTH, HEIGHT, WIDTH), None);
        assert_eq!(decode_luma(&[0; 16], 4, 4, 4), None);
    }

    #[test]
    fn the_block_stays_below_the_marker_and_inside_the_picture() {
        for n in 0..2000 {
            let px = picture(n, Marker::default());
            assert_eq!(decode_xrgb(&bytes(&px), WIDTH, HEIGHT, WIDTH * 4), Some(Marker::default()));
            assert!(px.contains(&BLOCK));
        }
    }
}
