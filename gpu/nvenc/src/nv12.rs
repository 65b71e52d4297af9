//! NV12 with a pitch: the layout of NVENC's input buffers (and of the GPU converter's NV12
//! planes). `height` luma rows, then `height / 2` rows of interleaved U and V, every row
//! `pitch` bytes apart; the chroma plane starts at `pitch * height`.

use retrofarm_media::I420Frame;

/// Bytes an NV12 picture of `height` rows at `pitch` occupies.
pub fn len(pitch: usize, height: usize) -> usize {
    pitch * height + pitch * height.div_ceil(2)
}

/// Copies `frame` into `dst` as NV12 with rows `pitch` bytes apart and the chroma plane after
/// `rows` luma rows (`rows` is the buffer's height, at least the picture's). Bytes past the
/// picture's width in each row are left as they were.
///
/// # Panics
///
/// If `pitch` is below the width, `rows` below the height, or `dst` shorter than
/// [`len`]`(pitch, rows)`.
pub fn copy_from_i420(frame: &I420Frame, dst: &mut [u8], pitch: usize, rows: usize) {
    let (width, height) = (frame.width(), frame.height());
    assert!(pitch >= width && rows >= height && dst.len() >= len(pitch, rows), "NV12 buffer too small");
    let (luma, chroma) = dst.split_at_mut(pitch * rows);
    for (src, out) in frame.y().chunks_exact(frame.y_stride()).zip(luma.chunks_mut(pitch)) {
        out[..width].copy_from_slice(&src[..width]);
    }
    let chroma_width = width / 2;
    let rows_uv = frame.u().chunks_exact(frame.chroma_stride()).zip(frame.v().chunks_exact(frame.chroma_stride()));
    for ((u, v), out) in rows_uv.zip(chroma.chunks_mut(pitch)) {
        for (pair, (&cb, &cr)) in out[..chroma_width * 2].chunks_exact_mut(2).zip(u.iter().zip(v)) {
            pair[0] = cb;
            pair[1] = cr;
        }
    }
}

/// Copies an NV12 picture of `width`x`height` (rows `pitch` bytes apart, chroma after `rows`
/// luma rows) into `frame` as I420, resizing it. The inverse of [`copy_from_i420`].
///
/// # Panics
///
/// As [`copy_from_i420`].
pub fn copy_to_i420(src: &[u8], pitch: usize, rows: usize, width: usize, height: usize, frame: &mut I420Frame) {
    assert!(pitch >= width && rows >= height && src.len() >= len(pitch, rows), "NV12 buffer too small");
    frame.resize(width, height);
    let (width, height) = (frame.width(), frame.height());
    let (luma, chroma) = src.split_at(pitch * rows);
    let (y, u, v) = frame.planes_mut();
    for (out, row) in y.chunks_exact_mut(width).zip(luma.chunks(pitch)).take(height) {
        out.copy_from_slice(&row[..width]);
    }
    let chroma_width = width / 2;
    let planes = u.chunks_exact_mut(chroma_width).zip(v.chunks_exact_mut(chroma_width));
    for ((u, v), row) in planes.zip(chroma.chunks(pitch)) {
        for ((cb, cr), pair) in u.iter_mut().zip(v.iter_mut()).zip(row[..chroma_width * 2].chunks_exact(2)) {
            *cb = pair[0];
            *cr = pair[1];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_a_pitch_and_taller_buffer() {
        let mut frame = I420Frame::new(6, 4);
        {
            let (y, u, v) = frame.planes_mut();
            y.iter_mut().enumerate().for_each(|(i, p)| *p = i as u8);
            u.iter_mut().enumerate().for_each(|(i, p)| *p = 100 + i as u8);
            v.iter_mut().enumerate().for_each(|(i, p)| *p = 200 + i as u8);
        }
        let (pitch, rows) = (8, 6);
        let mut nv12 = vec![0xee; len(pitch, rows)];
        copy_from_i420(&frame, &mut nv12, pitch, rows);
        assert_eq!(&nv12[..8], &[0, 1, 2, 3, 4, 5, 0xee, 0xee]);
        assert_eq!(&nv12[pitch * rows..pitch * rows + 8], &[100, 200, 101, 201, 102, 202, 0xee, 0xee]);
        let mut back = I420Frame::default();
        copy_to_i420(&nv12, pitch, rows, 6, 4, &mut back);
        assert_eq!(back, frame);
    }
}
