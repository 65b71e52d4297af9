//! Colour conversion from the emulator's RGB frame formats to I420 (BT.601, limited range).
//!
//! BT.601 limited range is what browsers assume for H264 without colour information in the
//! SPS (no VUI), so no VUI is written and none is needed.
//!
//! XRGB8888 (the common case) goes through the `yuv` crate, whose run-time-selected SIMD
//! (SSE4.1/AVX2) converts 256x240 in about 11 µs. The 16-bit formats, and XRGB8888 on
//! big-endian hosts, use our own loops: integer arithmetic over a source row pair, luma per
//! pixel and chroma from the sum of each 2x2 block, written so the compiler vectorises them
//! (about 50 µs for 256x240 on baseline x86-64). docs/decisions/media.md has the measurements.
//!
//! Odd widths and heights are padded to the next even size by repeating the last column and
//! row, so the result is always encodable as 4:2:0.

use std::time::{Duration, Instant};

/// The largest width or height accepted (H264 level 5.2 tops out at 4096 wide).
pub const MAX_DIMENSION: u32 = 4096;

/// A source pixel format, as named by libretro (`RETRO_PIXEL_FORMAT_*`).
///
/// Pixels are native-endian integers, as the core writes them: XRGB8888 is the bytes
/// B, G, R, X on a little-endian host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 32 bits per pixel, `0x00RRGGBB` (the top byte is ignored). nestopia uses it.
    Xrgb8888,
    /// 16 bits per pixel, `RRRRRGGGGGGBBBBB`. mGBA uses it.
    Rgb565,
    /// 16 bits per pixel, `0RRRRRGGGGGBBBBB` (the libretro default).
    Xrgb1555,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub const fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Xrgb8888 => 4,
            PixelFormat::Rgb565 | PixelFormat::Xrgb1555 => 2,
        }
    }
}

/// A borrowed frame as the emulator produced it.
#[derive(Debug, Clone, Copy)]
pub struct RgbFrame<'a> {
    /// The pixel format of `data`.
    pub format: PixelFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from the start of one row to the start of the next (libretro's `pitch`).
    pub stride: usize,
    /// The pixels; at least `stride * (height - 1) + width * bytes_per_pixel` bytes.
    pub data: &'a [u8],
}

/// Why a frame could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// Width or height is zero or above [`MAX_DIMENSION`].
    #[error("unsupported frame size {width}x{height}")]
    BadDimensions {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// The stride is shorter than one row of pixels.
    #[error("stride {stride} is shorter than a row of {row_bytes} bytes")]
    StrideTooSmall {
        /// The stride given.
        stride: usize,
        /// The bytes one row of pixels needs.
        row_bytes: usize,
    },
    /// The `yuv` crate refused the frame (not expected after our own checks).
    #[error("yuv conversion failed: {0}")]
    Yuv(String),
    /// The upscaling factor is not one of 1 to [`MAX_SCALE`].
    #[error("unsupported scale {scale}: 1 to 4 are")]
    BadScale {
        /// The factor asked for.
        scale: u32,
    },
    /// The canvas cannot hold the scaled frame.
    #[error("a {width}x{height} picture cannot hold the scaled frame of {needed:?}")]
    CanvasTooSmall {
        /// Canvas width.
        width: u32,
        /// Canvas height.
        height: u32,
        /// The scaled frame's size.
        needed: (u32, u32),
    },
    /// The buffer ends before the last row does.
    #[error("frame buffer holds {len} bytes, {needed} needed")]
    BufferTooSmall {
        /// The buffer's length.
        len: usize,
        /// The length the dimensions and stride need.
        needed: usize,
    },
}

/// An I420 (YUV 4:2:0, three planes) picture with even dimensions and tightly packed rows.
///
/// Made once and reused: [`convert`] resizes it only when the source size changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct I420Frame {
    width: usize,
    height: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl I420Frame {
    /// A black picture of the given size, each rounded up to even.
    pub fn new(width: usize, height: usize) -> Self {
        let mut frame = I420Frame::default();
        frame.resize(width, height);
        frame
    }

    /// Width in pixels (always even).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels (always even).
    pub fn height(&self) -> usize {
        self.height
    }

    /// Bytes per row of the Y plane (equal to the width).
    pub fn y_stride(&self) -> usize {
        self.width
    }

    /// Bytes per row of the U and V planes (half the width).
    pub fn chroma_stride(&self) -> usize {
        self.width / 2
    }

    /// The Y plane, `width * height` bytes.
    pub fn y(&self) -> &[u8] {
        &self.y
    }

    /// The U (Cb) plane, `width/2 * height/2` bytes.
    pub fn u(&self) -> &[u8] {
        &self.u
    }

    /// The V (Cr) plane, `width/2 * height/2` bytes.
    pub fn v(&self) -> &[u8] {
        &self.v
    }

    /// The three planes, writable, for filling the picture by other means.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        (&mut self.y, &mut self.u, &mut self.v)
    }

    /// Sets the size (each rounded up to even); keeps the allocation when it is big enough.
    /// Contents are unspecified afterwards when the size changed.
    pub fn resize(&mut self, width: usize, height: usize) {
        let (w, h) = (width.next_multiple_of(2), height.next_multiple_of(2));
        if (w, h) == (self.width, self.height) {
            return;
        }
        self.width = w;
        self.height = h;
        self.y.resize(w * h, 16);
        self.u.resize(w * h / 4, 128);
        self.v.resize(w * h / 4, 128);
    }
}

/// Converts `src` into `dst` (resized to `src`'s size rounded up to even), and returns how long
/// the conversion took.
///
/// Odd sizes are padded by repeating the last column and row.
pub fn convert(src: &RgbFrame<'_>, dst: &mut I420Frame) -> Result<Duration, ConvertError> {
    let started = Instant::now();
    validate(src)?;
    dst.resize(src.width as usize, src.height as usize);
    match src.format {
        #[cfg(target_endian = "little")]
        PixelFormat::Xrgb8888 => convert_bgrx_with_yuv(src, dst)?,
        #[cfg(not(target_endian = "little"))]
        PixelFormat::Xrgb8888 => convert_with::<Xrgb8888>(src, dst),
        PixelFormat::Rgb565 => convert_with::<Rgb565>(src, dst),
        PixelFormat::Xrgb1555 => convert_with::<Xrgb1555>(src, dst),
    }
    Ok(started.elapsed())
}

/// XRGB8888 on a little-endian host is the byte order B, G, R, X: the `yuv` crate's BGRA.
#[cfg(target_endian = "little")]
fn convert_bgrx_with_yuv(src: &RgbFrame<'_>, dst: &mut I420Frame) -> Result<(), ConvertError> {
    use yuv::{BufferStoreMut, YuvConversionMode, YuvPlanarImageMut, YuvRange, YuvStandardMatrix};

    let (width, height) = (src.width as usize, src.height as usize);
    let (w, cw) = (dst.width, dst.width / 2);
    // yuv walks the source in whole row pairs (`chunks_exact(2 * stride)`) and finds an odd
    // last row as the remainder of both the source and the Y plane: hand it exactly `height`
    // rows of each, and let a source whose last row stops short of the stride take our loop.
    let Some(data) = src.data.get(..src.stride * height) else {
        convert_with::<Xrgb8888>(src, dst);
        return Ok(());
    };
    let stride = u32::try_from(src.stride).map_err(|_| ConvertError::Yuv("stride above 4 GiB".into()))?;
    let mut image = YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(&mut dst.y[..height * w]),
        y_stride: w as u32,
        u_plane: BufferStoreMut::Borrowed(&mut dst.u),
        u_stride: cw as u32,
        v_plane: BufferStoreMut::Borrowed(&mut dst.v),
        v_stride: cw as u32,
        width: src.width,
        height: src.height,
    };
    yuv::bgra_to_yuv420(
        &mut image,
        data,
        stride,
        YuvRange::Limited,
        YuvStandardMatrix::Bt601,
        YuvConversionMode::Balanced,
    )
    .map_err(|e| ConvertError::Yuv(e.to_string()))?;
    // yuv fills the odd last chroma column and row itself; pad luma to the even size.
    if width % 2 == 1 {
        for row in dst.y.chunks_exact_mut(w).take(height) {
            row[width] = row[width - 1];
        }
    }
    if height % 2 == 1 {
        let (head, last) = dst.y.split_at_mut(height * w);
        last.copy_from_slice(&head[(height - 1) * w..]);
    }
    Ok(())
}

fn validate(src: &RgbFrame<'_>) -> Result<(), ConvertError> {
    let (width, height) = (src.width, src.height);
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(ConvertError::BadDimensions { width, height });
    }
    let row_bytes = width as usize * src.format.bytes_per_pixel();
    if src.stride < row_bytes {
        return Err(ConvertError::StrideTooSmall { stride: src.stride, row_bytes });
    }
    let needed = src.stride * (height as usize - 1) + row_bytes;
    if src.data.len() < needed {
        return Err(ConvertError::BufferTooSmall { len: src.data.len(), needed });
    }
    Ok(())
}

/// Where a frame lands on the encoded picture: scaled up by a whole factor (nearest
/// neighbour) and centred on a canvas of at least the scaled size, the rest black.
///
/// The scaled image covers `image_width() x image_height()` pixels at (`x`, `y`): the scaled
/// size rounded up to even, the padding repeating the last column and row as [`convert`]
/// does. Canvas size and offsets are even, so every 2x2 chroma block lies wholly inside or
/// outside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The source size in pixels.
    pub src_width: u32,
    /// The source size in pixels.
    pub src_height: u32,
    /// Whole-number upscaling factor, 1 to [`MAX_SCALE`].
    pub scale: u32,
    /// The canvas (the encoded picture), even.
    pub width: u32,
    /// The canvas (the encoded picture), even.
    pub height: u32,
    /// Left edge of the image on the canvas, even.
    pub x: u32,
    /// Top edge of the image on the canvas, even.
    pub y: u32,
}

/// The largest upscaling factor.
pub const MAX_SCALE: u32 = 4;

impl Placement {
    /// `width x height` scaled by `scale`, centred on `canvas` (or on a canvas of just the
    /// scaled size rounded up to even when `None`).
    pub fn new(width: u32, height: u32, scale: u32, canvas: Option<(u32, u32)>) -> Result<Placement, ConvertError> {
        if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(ConvertError::BadDimensions { width, height });
        }
        if !(1..=MAX_SCALE).contains(&scale) {
            return Err(ConvertError::BadScale { scale });
        }
        let (iw, ih) = ((width * scale).next_multiple_of(2), (height * scale).next_multiple_of(2));
        let (cw, ch) = canvas.map_or((iw, ih), |(w, h)| (w.next_multiple_of(2), h.next_multiple_of(2)));
        if cw < iw || ch < ih || cw > MAX_DIMENSION || ch > MAX_DIMENSION {
            return Err(ConvertError::CanvasTooSmall { width: cw, height: ch, needed: (iw, ih) });
        }
        let even = |v: u32| v & !1;
        Ok(Placement {
            src_width: width,
            src_height: height,
            scale,
            width: cw,
            height: ch,
            x: even((cw - iw) / 2),
            y: even((ch - ih) / 2),
        })
    }

    /// The frame as it is: scale 1, no border.
    pub fn identity(width: u32, height: u32) -> Result<Placement, ConvertError> {
        Self::new(width, height, 1, None)
    }

    /// Whether the picture is the source itself, as [`convert`] makes it.
    pub fn is_identity(&self) -> bool {
        self.scale == 1
            && (self.x, self.y) == (0, 0)
            && self.width == self.image_width()
            && self.height == self.image_height()
    }

    /// Width of the scaled image on the canvas (even).
    pub fn image_width(&self) -> u32 {
        (self.src_width * self.scale).next_multiple_of(2)
    }

    /// Height of the scaled image on the canvas (even).
    pub fn image_height(&self) -> u32 {
        (self.src_height * self.scale).next_multiple_of(2)
    }
}

/// Converts `src` placed by `placement` into `dst` (resized to the canvas): the reference
/// for every other converter of scaled pictures (the GPU's shader is checked against it byte
/// for byte), and the CPU path for rooms with a scale or a border.
///
/// Uses the same integer BT.601 arithmetic as [`convert`]'s own loops; for an identity
/// placement the result equals theirs (the SIMD XRGB8888 path may differ by one).
pub fn convert_placed(
    src: &RgbFrame<'_>,
    placement: &Placement,
    dst: &mut I420Frame,
) -> Result<Duration, ConvertError> {
    let started = Instant::now();
    validate(src)?;
    if (src.width, src.height) != (placement.src_width, placement.src_height) {
        return Err(ConvertError::BadDimensions { width: src.width, height: src.height });
    }
    match src.format {
        PixelFormat::Xrgb8888 => place_with::<Xrgb8888>(src, placement, dst),
        PixelFormat::Rgb565 => place_with::<Rgb565>(src, placement, dst),
        PixelFormat::Xrgb1555 => place_with::<Xrgb1555>(src, placement, dst),
    }
    Ok(started.elapsed())
}

fn place_with<P: SourcePixel>(src: &RgbFrame<'_>, p: &Placement, dst: &mut I420Frame) {
    dst.resize(p.width as usize, p.height as usize);
    let (w, cw) = (dst.width, dst.width / 2);
    let row_bytes = src.width as usize * src.format.bytes_per_pixel();
    let (x0, y0, iw, ih) = (p.x as usize, p.y as usize, p.image_width() as usize, p.image_height() as usize);
    let s = p.scale as usize;
    // The canvas pixel (cx, cy): black outside the image, else the nearest source pixel with
    // the odd-size padding repeating the last column and row.
    let rgb = |cx: usize, cy: usize| -> (i32, i32, i32) {
        if cx < x0 || cy < y0 || cx >= x0 + iw || cy >= y0 + ih {
            return (0, 0, 0);
        }
        let sx = ((cx - x0) / s).min(src.width as usize - 1);
        let sy = ((cy - y0) / s).min(src.height as usize - 1);
        let row = &src.data[sy * src.stride..sy * src.stride + row_bytes];
        P::rgb(P::pixels(row)[sx])
    };
    for by in 0..dst.height / 2 {
        for bx in 0..cw {
            let (mut r4, mut g4, mut b4) = (0, 0, 0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (cx, cy) = (2 * bx + dx, 2 * by + dy);
                let (r, g, b) = rgb(cx, cy);
                dst.y[cy * w + cx] = luma(r, g, b);
                (r4, g4, b4) = (r4 + r, g4 + g, b4 + b);
            }
            let (u, v) = chroma(r4, g4, b4);
            dst.u[by * cw + bx] = u;
            dst.v[by * cw + bx] = v;
        }
    }
}

// BT.601 limited range in 15-bit fixed point:
//   Y  = 16  + ( 65.481 R + 128.553 G +  24.966 B) / 255
//   Cb = 128 + (-37.797 R -  74.203 G + 112.000 B) / 255
//   Cr = 128 + (112.000 R -  93.786 G -  18.214 B) / 255
// Every coefficient fits in an i16, so the compiler turns each pair of multiply-adds into one
// `pmaddwd` even on baseline x86-64 (SSE2 has no 32-bit multiply). The chroma rows sum to zero
// so that grey maps to exactly 128.
const Y_R: i32 = 8414;
const Y_G: i32 = 16520;
const Y_B: i32 = 3208;
const U_R: i32 = -4857;
const U_G: i32 = -9535;
const U_B: i32 = 14392;
const V_R: i32 = 14392;
const V_G: i32 = -12052;
const V_B: i32 = -2340;

/// Luma from one pixel's 8-bit R, G, B.
#[inline(always)]
fn luma(r: i32, g: i32, b: i32) -> u8 {
    ((Y_R * r + Y_G * g + Y_B * b + (16 << 15) + (1 << 14)) >> 15) as u8
}

/// Cb and Cr from the sums of R, G, B over a 2x2 block (each sum 0..=1020).
#[inline(always)]
fn chroma(r4: i32, g4: i32, b4: i32) -> (u8, u8) {
    const OFFSET: i32 = (128 << 17) + (1 << 16);
    let u = (U_R * r4 + U_G * g4 + U_B * b4 + OFFSET) >> 17;
    let v = (V_R * r4 + V_G * g4 + V_B * b4 + OFFSET) >> 17;
    (u as u8, v as u8)
}

/// One source pixel layout: how to split a row into pixels and read 8-bit R, G, B from one.
trait SourcePixel {
    type Px: Copy;
    fn pixels(row: &[u8]) -> &[Self::Px];
    fn pairs(row: &[u8]) -> &[[Self::Px; 2]];
    fn rgb(px: Self::Px) -> (i32, i32, i32);
}

struct Xrgb8888;
struct Rgb565;
struct Xrgb1555;

impl SourcePixel for Xrgb8888 {
    type Px = [u8; 4];
    #[inline(always)]
    fn pixels(row: &[u8]) -> &[[u8; 4]] {
        row.as_chunks::<4>().0
    }
    #[inline(always)]
    fn pairs(row: &[u8]) -> &[[[u8; 4]; 2]] {
        Self::pixels(row).as_chunks::<2>().0
    }
    #[inline(always)]
    fn rgb(px: [u8; 4]) -> (i32, i32, i32) {
        let p = u32::from_ne_bytes(px);
        (((p >> 16) & 0xff) as i32, ((p >> 8) & 0xff) as i32, (p & 0xff) as i32)
    }
}

/// Widens a 5-bit channel to 8 bits the usual way (0 stays 0, 31 becomes 255).
#[inline(always)]
fn widen5(c: i32) -> i32 {
    (c << 3) | (c >> 2)
}

impl SourcePixel for Rgb565 {
    type Px = [u8; 2];
    #[inline(always)]
    fn pixels(row: &[u8]) -> &[[u8; 2]] {
        row.as_chunks::<2>().0
    }
    #[inline(always)]
    fn pairs(row: &[u8]) -> &[[[u8; 2]; 2]] {
        Self::pixels(row).as_chunks::<2>().0
    }
    #[inline(always)]
    fn rgb(px: [u8; 2]) -> (i32, i32, i32) {
        let p = i32::from(u16::from_ne_bytes(px));
        let g6 = (p >> 5) & 0x3f;
        (widen5(p >> 11), (g6 << 2) | (g6 >> 4), widen5(p & 0x1f))
    }
}

impl SourcePixel for Xrgb1555 {
    type Px = [u8; 2];
    #[inline(always)]
    fn pixels(row: &[u8]) -> &[[u8; 2]] {
        row.as_chunks::<2>().0
    }
    #[inline(always)]
    fn pairs(row: &[u8]) -> &[[[u8; 2]; 2]] {
        Self::pixels(row).as_chunks::<2>().0
    }
    #[inline(always)]
    fn rgb(px: [u8; 2]) -> (i32, i32, i32) {
        let p = i32::from(u16::from_ne_bytes(px));
        (widen5((p >> 10) & 0x1f), widen5((p >> 5) & 0x1f), widen5(p & 0x1f))
    }
}

fn convert_with<P: SourcePixel>(src: &RgbFrame<'_>, dst: &mut I420Frame) {
    let width = src.width as usize;
    let height = src.height as usize;
    let row_bytes = width * src.format.bytes_per_pixel();
    let (w, cw) = (dst.width, dst.width / 2);
    let row = |y: usize| &src.data[y * src.stride..y * src.stride + row_bytes];

    let y_rows = dst.y.chunks_exact_mut(2 * w);
    let u_rows = dst.u.chunks_exact_mut(cw);
    let v_rows = dst.v.chunks_exact_mut(cw);
    for (pair, ((y_pair, u_row), v_row)) in y_rows.zip(u_rows).zip(v_rows).enumerate() {
        let top = row(2 * pair);
        // An odd height repeats the last row.
        let bottom = row((2 * pair + 1).min(height - 1));
        let (y_top, y_bottom) = y_pair.split_at_mut(w);
        luma_row::<P>(top, y_top);
        luma_row::<P>(bottom, y_bottom);
        chroma_row::<P>(top, bottom, u_row, v_row);
        if width % 2 == 1 {
            // An odd width repeats the last column.
            y_top[width] = y_top[width - 1];
            y_bottom[width] = y_bottom[width - 1];
            let last = |r: &[u8]| P::rgb(P::pixels(r)[width - 1]);
            let ((r0, g0, b0), (r1, g1, b1)) = (last(top), last(bottom));
            let (u, v) = chroma(2 * (r0 + r1), 2 * (g0 + g1), 2 * (b0 + b1));
            u_row[cw - 1] = u;
            v_row[cw - 1] = v;
        }
    }
}

#[inline(always)]
fn luma_row<P: SourcePixel>(src: &[u8], dst: &mut [u8]) {
    for (out, &px) in dst.iter_mut().zip(P::pixels(src)) {
        let (r, g, b) = P::rgb(px);
        *out = luma(r, g, b);
    }
}

#[inline(always)]
fn chroma_row<P: SourcePixel>(top: &[u8], bottom: &[u8], u_row: &mut [u8], v_row: &mut [u8]) {
    let blocks = P::pairs(top).iter().zip(P::pairs(bottom));
    for ((u, v), (&[a, b], &[c, d])) in u_row.iter_mut().zip(v_row.iter_mut()).zip(blocks) {
        let (ra, ga, ba) = P::rgb(a);
        let (rb, gb, bb) = P::rgb(b);
        let (rc, gc, bc) = P::rgb(c);
        let (rd, gd, bd) = P::rgb(d);
        (*u, *v) = chroma(ra + rb + rc + rd, ga + gb + gc + gd, ba + bb + bc + bd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact BT.601 limited-range values, for comparison.
    fn reference(r: f64, g: f64, b: f64) -> (f64, f64, f64) {
        let y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;
        let u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0;
        let v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0;
        (y, u, v)
    }

    fn solid(width: u32, height: u32, px: &[u8]) -> Vec<u8> {
        let mut data = Vec::new();
        for _ in 0..width * height {
            data.extend_from_slice(px);
        }
        data
    }

    fn encode_pixel(format: PixelFormat, (r, g, b): (u8, u8, u8)) -> Vec<u8> {
        match format {
            PixelFormat::Xrgb8888 => u32::from_be_bytes([0xff, r, g, b]).to_ne_bytes().to_vec(),
            PixelFormat::Rgb565 => {
                let p = (u16::from(r >> 3) << 11) | (u16::from(g >> 2) << 5) | u16::from(b >> 3);
                p.to_ne_bytes().to_vec()
            }
            PixelFormat::Xrgb1555 => {
                let p = (u16::from(r >> 3) << 10) | (u16::from(g >> 3) << 5) | u16::from(b >> 3);
                p.to_ne_bytes().to_vec()
            }
        }
    }

    const FORMATS: [PixelFormat; 3] = [PixelFormat::Xrgb8888, PixelFormat::Rgb565, PixelFormat::Xrgb1555];

    #[test]
    fn known_colours_map_to_bt601_limited_range() {
        // (name, rgb, expected Y, U, V): the textbook values for 8-bit BT.601 limited range.
        let cases = [
            ("black", (0, 0, 0), (16, 128, 128)),
            ("white", (255, 255, 255), (235, 128, 128)),
            ("grey", (128, 128, 128), (126, 128, 128)),
            ("red", (255, 0, 0), (81, 90, 240)),
            ("green", (0, 255, 0), (145, 54, 34)),
            ("blue", (0, 0, 255), (41, 240, 110)),
        ];
        for format in FORMATS {
            for (name, rgb, (ey, eu, ev)) in cases {
                // 16-bit formats cannot hold 128 exactly; compare against what they do hold.
                let px = encode_pixel(format, rgb);
                let data = solid(4, 2, &px);
                let src = RgbFrame { format, width: 4, height: 2, stride: 4 * format.bytes_per_pixel(), data: &data };
                let mut dst = I420Frame::default();
                convert(&src, &mut dst).unwrap();
                let held = match (format, name) {
                    (PixelFormat::Xrgb8888, _) | (_, "black" | "white" | "red" | "green" | "blue") => (ey, eu, ev),
                    _ => {
                        // 128 becomes 0b10000 in 5 bits, widened to 132 (and 130 for 6-bit green).
                        let g = if format == PixelFormat::Rgb565 { 130.0 } else { 132.0 };
                        let (y, u, v) = reference(132.0, g, 132.0);
                        (y.round() as i32, u.round() as i32, v.round() as i32)
                    }
                };
                let (y, u, v) = (dst.y()[0], dst.u()[0], dst.v()[0]);
                for (what, got, want) in [("Y", y, held.0), ("U", u, held.1), ("V", v, held.2)] {
                    assert!((i32::from(got) - want).abs() <= 1, "{format:?} {name}: {what} = {got}, want {want}±1");
                }
                assert!(dst.y().iter().all(|&p| p == y), "{format:?} {name}: Y uniform");
                assert!(dst.u().iter().all(|&p| p == u) && dst.v().iter().all(|&p| p == v));
            }
        }
    }

    #[test]
    fn every_8bit_grey_and_primary_ramp_is_within_one_of_the_rounded_exact_value() {
        for level in 0..=255u8 {
            for rgb in [(level, level, level), (level, 0, 0), (0, level, 0), (0, 0, level), (level, 255 - level, 7)] {
                let px = encode_pixel(PixelFormat::Xrgb8888, rgb);
                let data = solid(2, 2, &px);
                let src = RgbFrame { format: PixelFormat::Xrgb8888, width: 2, height: 2, stride: 8, data: &data };
                let mut dst = I420Frame::default();
                convert(&src, &mut dst).unwrap();
                let (y, u, v) = reference(f64::from(rgb.0), f64::from(rgb.1), f64::from(rgb.2));
                for (got, want) in [(dst.y()[0], y), (dst.u()[0], u), (dst.v()[0], v)] {
                    assert!((f64::from(got) - want.round()).abs() <= 1.0, "{rgb:?}: {got} vs {want}");
                }
                // Our own loop (the 16-bit formats' path) rounds correctly: within half a step.
                let mut own = I420Frame::new(2, 2);
                convert_with::<Xrgb8888>(&src, &mut own);
                for (got, want) in [(own.y()[0], y), (own.u()[0], u), (own.v()[0], v)] {
                    assert!((f64::from(got) - want).abs() <= 0.51, "own loop {rgb:?}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn chroma_is_the_average_of_each_2x2_block_and_stride_padding_is_ignored() {
        // 4x2 picture: left block red/blue over blue/red, right block all white;
        // each row padded with 8 junk bytes.
        let red = encode_pixel(PixelFormat::Xrgb8888, (255, 0, 0));
        let blue = encode_pixel(PixelFormat::Xrgb8888, (0, 0, 255));
        let white = encode_pixel(PixelFormat::Xrgb8888, (255, 255, 255));
        let mut data = Vec::new();
        for row in [[&red, &blue, &white, &white], [&blue, &red, &white, &white]] {
            for px in row {
                data.extend_from_slice(px);
            }
            data.extend_from_slice(&[0xAB; 8]);
        }
        let src = RgbFrame { format: PixelFormat::Xrgb8888, width: 4, height: 2, stride: 24, data: &data };
        let mut dst = I420Frame::default();
        convert(&src, &mut dst).unwrap();
        assert_eq!(dst.y(), &[81, 41, 235, 235, 41, 81, 235, 235]);
        let (_, u, v) = reference(127.5, 0.0, 127.5);
        assert!((f64::from(dst.u()[0]) - u).abs() <= 1.0);
        assert!((f64::from(dst.v()[0]) - v).abs() <= 1.0);
        assert_eq!((dst.u()[1], dst.v()[1]), (128, 128));
    }

    #[test]
    fn odd_sizes_are_padded_by_repeating_the_last_row_and_column() {
        for format in FORMATS {
            let (w, h) = (5u32, 3u32);
            let bpp = format.bytes_per_pixel();
            // Black everywhere except the last column (white) and the last row (red).
            let mut data = Vec::new();
            for y in 0..h {
                for x in 0..w {
                    let rgb = if x == w - 1 {
                        (255, 255, 255)
                    } else if y == h - 1 {
                        (255, 0, 0)
                    } else {
                        (0, 0, 0)
                    };
                    data.extend_from_slice(&encode_pixel(format, rgb));
                }
            }
            let src = RgbFrame { format, width: w, height: h, stride: w as usize * bpp, data: &data };
            let mut dst = I420Frame::default();
            convert(&src, &mut dst).unwrap();
            assert_eq!((dst.width(), dst.height()), (6, 4), "{format:?}");
            assert_eq!(dst.y().len(), 24);
            assert_eq!((dst.u().len(), dst.v().len()), (6, 6));
            let rows: Vec<&[u8]> = dst.y().chunks(6).collect();
            assert_eq!(rows[0], &[16, 16, 16, 16, 235, 235], "{format:?}");
            assert_eq!(rows[1], rows[0]);
            assert_eq!(rows[2], &[81, 81, 81, 81, 235, 235], "{format:?}");
            assert_eq!(rows[3], rows[2], "{format:?}: last row repeated");
            // The padded chroma column is white's, the padded chroma row red's.
            assert_eq!((dst.u()[2], dst.v()[2]), (128, 128));
            assert!((i32::from(dst.u()[3]) - 90).abs() <= 1 && (i32::from(dst.v()[3]) - 240).abs() <= 1);
        }
    }

    #[test]
    fn yuv_crate_and_own_loop_agree_within_one() {
        let mut pattern = crate::pattern::TestPattern::new(255, 121);
        for index in [0, 17] {
            let src = pattern.render(index, PixelFormat::Xrgb8888);
            let mut fast = I420Frame::default();
            convert(&src, &mut fast).unwrap();
            let mut reference = I420Frame::new(255, 121);
            convert_with::<Xrgb8888>(&src, &mut reference);
            for (plane, a, b) in
                [("Y", fast.y(), reference.y()), ("U", fast.u(), reference.u()), ("V", fast.v(), reference.v())]
            {
                let worst = a.iter().zip(b).map(|(&p, &q)| p.abs_diff(q)).max().unwrap();
                assert!(worst <= 1, "{plane} differs by {worst}");
            }
        }
    }

    #[test]
    fn xrgb8888_with_a_short_last_row_converts_like_a_full_buffer() {
        // Rows of 7 pixels in a stride of 9; the second buffer stops right after the last pixel.
        let mut pattern = crate::pattern::TestPattern::new(63, 20);
        let tight = pattern.render(3, PixelFormat::Xrgb8888).data.to_vec();
        let (w, h, stride) = (63usize, 20usize, 63 * 4 + 36);
        let mut padded = vec![0xEEu8; stride * h];
        for y in 0..h {
            padded[y * stride..][..w * 4].copy_from_slice(&tight[y * w * 4..][..w * 4]);
        }
        let frame = |data| RgbFrame { format: PixelFormat::Xrgb8888, width: w as u32, height: h as u32, stride, data };
        let (mut full, mut short) = (I420Frame::default(), I420Frame::default());
        convert(&frame(&padded), &mut full).unwrap();
        convert(&frame(&padded[..stride * (h - 1) + w * 4]), &mut short).unwrap();
        for (a, b) in [(full.y(), short.y()), (full.u(), short.u()), (full.v(), short.v())] {
            assert!(a.iter().zip(b).all(|(&p, &q)| p.abs_diff(q) <= 1));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// Any size, stride padding and short last row converts, pads to even, and the fast
        /// XRGB8888 path agrees with our reference loop.
        #[test]
        fn any_geometry_converts_and_agrees_with_the_reference(
            width in 1u32..48,
            height in 1u32..48,
            padding in 0usize..12,
            short_last_row: bool,
            format_index in 0usize..3,
            seed: u64,
        ) {
            let format = FORMATS[format_index];
            let bpp = format.bytes_per_pixel();
            let stride = width as usize * bpp + padding * bpp;
            let mut len = stride * height as usize;
            if short_last_row {
                len -= padding * bpp;
            }
            let mut state = seed | 1;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let src = RgbFrame { format, width, height, stride, data: &data };
            let mut dst = I420Frame::default();
            convert(&src, &mut dst).unwrap();
            let (w, h) = (dst.width(), dst.height());
            proptest::prop_assert_eq!((w, h), (width.next_multiple_of(2) as usize, height.next_multiple_of(2) as usize));
            proptest::prop_assert_eq!((dst.y().len(), dst.u().len(), dst.v().len()), (w * h, w * h / 4, w * h / 4));
            let mut reference = I420Frame::new(width as usize, height as usize);
            match format {
                PixelFormat::Xrgb8888 => convert_with::<Xrgb8888>(&src, &mut reference),
                PixelFormat::Rgb565 => convert_with::<Rgb565>(&src, &mut reference),
                PixelFormat::Xrgb1555 => convert_with::<Xrgb1555>(&src, &mut reference),
            }
            for (a, b) in [(dst.y(), reference.y()), (dst.u(), reference.u()), (dst.v(), reference.v())] {
                let worst = a.iter().zip(b).map(|(&p, &q)| p.abs_diff(q)).max().unwrap_or(0);
                proptest::prop_assert!(worst <= 1, "differs by {}", worst);
            }
            // The placed reference at identity is our own loop, byte for byte.
            let mut placed = I420Frame::default();
            convert_placed(&src, &Placement::identity(width, height).unwrap(), &mut placed).unwrap();
            proptest::prop_assert_eq!(&placed, &reference);
        }
    }

    #[test]
    fn placement_scales_centres_on_even_offsets_and_refuses_what_does_not_fit() {
        let p = Placement::new(256, 240, 3, Some((1280, 720))).unwrap();
        assert_eq!((p.image_width(), p.image_height(), p.x, p.y), (768, 720, 256, 0));
        assert!(!p.is_identity());
        let p = Placement::new(160, 144, 2, Some((330, 300))).unwrap();
        assert_eq!((p.x, p.y), (4, 6), "offsets rounded down to even");
        let p = Placement::new(7, 5, 1, None).unwrap();
        assert_eq!((p.width, p.height), (8, 6));
        assert!(p.is_identity());
        assert_eq!(Placement::new(256, 240, 5, None), Err(ConvertError::BadScale { scale: 5 }));
        assert!(matches!(Placement::new(256, 240, 2, Some((256, 240))), Err(ConvertError::CanvasTooSmall { .. })));
        assert!(matches!(Placement::new(0, 240, 1, None), Err(ConvertError::BadDimensions { .. })));
    }

    #[test]
    fn upscaled_pixels_repeat_and_the_border_is_black() {
        // 3x2 RGB565 frame: white, red, blue / green, black, white.
        let px = |rgb| encode_pixel(PixelFormat::Rgb565, rgb);
        let colours = [(255, 255, 255), (255, 0, 0), (0, 0, 255), (0, 255, 0), (0, 0, 0), (255, 255, 255)];
        let data: Vec<u8> = colours.iter().flat_map(|&c| px(c)).collect();
        let src = RgbFrame { format: PixelFormat::Rgb565, width: 3, height: 2, stride: 6, data: &data };
        let p = Placement::new(3, 2, 2, Some((10, 6))).unwrap();
        assert_eq!((p.x, p.y), (2, 0));
        let mut dst = I420Frame::default();
        convert_placed(&src, &p, &mut dst).unwrap();
        assert_eq!((dst.width(), dst.height()), (10, 6));
        let y = |x: usize, row: usize| dst.y()[row * 10 + x];
        // Row 0 of the source covers canvas rows 0-1; each pixel two columns wide from x = 2.
        assert_eq!([y(0, 0), y(1, 1)], [16, 16], "left border is black");
        assert_eq!([y(2, 0), y(3, 1)], [235, 235], "white, doubled");
        assert_eq!(y(4, 0), y(5, 1), "red, doubled");
        assert_eq!([y(8, 0), y(9, 5)], [16, 16], "right border is black");
        assert_eq!([y(2, 4), y(2, 5)], [16, 16], "below the image is black");
        assert_eq!(dst.u()[0], 128);
        // Same arithmetic as the unscaled loop: the doubled red block has red's chroma.
        let mut one = I420Frame::default();
        let red = px((255, 0, 0)).repeat(2);
        convert(&RgbFrame { format: PixelFormat::Rgb565, width: 2, height: 1, stride: 4, data: &red }, &mut one)
            .unwrap();
        assert_eq!((dst.u()[2], dst.v()[2]), (one.u()[0], one.v()[0]));
    }

    #[test]
    fn bad_frames_are_rejected_with_typed_errors() {
        let data = [0u8; 64];
        let frame = |width, height, stride, len| RgbFrame {
            format: PixelFormat::Rgb565,
            width,
            height,
            stride,
            data: &data[..len],
        };
        let mut dst = I420Frame::default();
        assert_eq!(convert(&frame(0, 4, 8, 64), &mut dst), Err(ConvertError::BadDimensions { width: 0, height: 4 }));
        assert_eq!(
            convert(&frame(4, 5000, 8, 64), &mut dst),
            Err(ConvertError::BadDimensions { width: 4, height: 5000 })
        );
        assert_eq!(
            convert(&frame(4, 4, 6, 64), &mut dst),
            Err(ConvertError::StrideTooSmall { stride: 6, row_bytes: 8 })
        );
        assert_eq!(convert(&frame(4, 4, 16, 50), &mut dst), Err(ConvertError::BufferTooSmall { len: 50, needed: 56 }));
        // The last row needs no stride padding.
        assert!(convert(&frame(4, 4, 16, 56), &mut dst).is_ok());
    }

    #[test]
    fn output_buffers_are_reused_across_frames_of_one_size() {
        let data = vec![0x55u8; 256 * 240 * 4];
        let src = RgbFrame { format: PixelFormat::Xrgb8888, width: 256, height: 240, stride: 1024, data: &data };
        let mut dst = I420Frame::default();
        convert(&src, &mut dst).unwrap();
        let planes = (dst.y().as_ptr(), dst.u().as_ptr(), dst.v().as_ptr());
        convert(&src, &mut dst).unwrap();
        assert_eq!(planes, (dst.y().as_ptr(), dst.u().as_ptr(), dst.v().as_ptr()));
    }
}
