//! Where each job's planes lie in the output buffer.
//!
//! Per job, from a 256-byte aligned offset: the Y plane (`pitch x height`), the I420 U and V
//! planes (`pitch/2 x height/2` each) and the NV12 interleaved UV plane (`pitch x height/2`).
//! Y is shared by both formats, so NV12 is Y + UV and I420 is Y + U + V, the latter three
//! contiguous (one copy reads them back). The pitch is the canvas width rounded up to the 8
//! pixels one shader invocation writes per row.

/// Luma pixels one shader invocation writes per row: the pitch is a multiple of it.
pub(crate) const BLOCK_WIDTH: u32 = 8;
/// Alignment of each job's planes in the output buffer.
pub(crate) const PLANE_ALIGN: u64 = 256;

/// Where one job's NV12 picture lies in the exported output memory (see
/// [`Converter::export_output_fd`](crate::Converter::export_output_fd)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nv12Layout {
    /// Byte offset of the Y plane.
    pub offset_y: u64,
    /// Byte offset of the interleaved UV plane (U first).
    pub offset_uv: u64,
    /// Bytes per row of both planes (a multiple of 8, at least the width).
    pub pitch: u32,
    /// Picture width in pixels (even).
    pub width: u32,
    /// Picture height in pixels (even).
    pub height: u32,
}

/// One job's planes in the output buffer (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Planes {
    pub(crate) y: u64,
    pub(crate) u: u64,
    pub(crate) v: u64,
    pub(crate) uv: u64,
    pub(crate) pitch: u32,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

impl Planes {
    /// The planes of a `width x height` picture (even sizes) starting at `at` (aligned up).
    pub(crate) fn new(at: u64, width: u32, height: u32) -> Planes {
        let y = at.next_multiple_of(PLANE_ALIGN);
        let pitch = width.next_multiple_of(BLOCK_WIDTH);
        let luma = u64::from(pitch) * u64::from(height);
        let chroma = luma / 4;
        Planes { y, u: y + luma, v: y + luma + chroma, uv: y + luma + 2 * chroma, pitch, width, height }
    }

    /// Bytes of Y, U and V together (contiguous from `y`).
    pub(crate) fn i420_bytes(&self) -> u64 {
        self.uv - self.y
    }

    /// The first byte after the UV plane.
    pub(crate) fn end(&self) -> u64 {
        self.uv + u64::from(self.pitch) * u64::from(self.height) / 2
    }

    pub(crate) fn nv12(&self) -> Nv12Layout {
        Nv12Layout { offset_y: self.y, offset_uv: self.uv, pitch: self.pitch, width: self.width, height: self.height }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_are_aligned_contiguous_and_padded() {
        let p = Planes::new(1, 250, 144);
        assert_eq!(p.y, 256);
        assert_eq!(p.pitch, 256);
        assert_eq!(p.u, 256 + 256 * 144);
        assert_eq!(p.v, p.u + 128 * 72);
        assert_eq!(p.uv, p.v + 128 * 72);
        assert_eq!(p.i420_bytes(), 256 * 144 * 3 / 2);
        assert_eq!(p.end(), p.uv + 256 * 72);
        // Every plane starts on a word, as the shader addresses words.
        assert!([p.y, p.u, p.v, p.uv].iter().all(|o| o % 4 == 0));
    }
}
