//! Helpers shared by the GPU tests: a memfd frame ring, random frames, the CPU reference.

#![allow(dead_code)] // each test binary uses a different part

use std::ffi::c_void;

use retrofarm_gpu::{Converter, DeviceChoice, Job, SourceId};
use retrofarm_media::{convert_placed, I420Frame, PixelFormat, Placement, RgbFrame};

/// Opens a converter on any device, or prints why the test is skipped.
pub fn open() -> Option<Converter> {
    match Converter::open(DeviceChoice::Any) {
        Ok(converter) => {
            println!("{}", converter.device());
            Some(converter)
        }
        Err(e) => {
            println!("skipping: {e}");
            None
        }
    }
}

/// A shared memory ring like the worker's: a memfd mapped read-write, page-aligned.
pub struct Ring {
    ptr: *mut u8,
    len: usize,
    fd: libc::c_int,
}

impl Ring {
    pub fn new(len: usize) -> Ring {
        // SAFETY: plain system calls with valid arguments; every result is checked, and the
        // mapping and fd are released in Drop.
        unsafe {
            let fd = libc::memfd_create(c"retrofarm-gpu-test".as_ptr(), libc::MFD_CLOEXEC);
            assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
            assert_eq!(libc::ftruncate(fd, len as libc::off_t), 0, "ftruncate: {}", std::io::Error::last_os_error());
            let ptr =
                libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0);
            assert_ne!(ptr, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
            Ring { ptr: ptr.cast(), len, fd }
        }
    }

    pub fn ptr(&self) -> *const u8 {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` bytes, readable, alive as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and writable; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the mapping and fd made in `new`, released once.
        unsafe {
            libc::munmap(self.ptr.cast::<c_void>(), self.len);
            libc::close(self.fd);
        }
    }
}

/// xorshift64*: reproducible random bytes without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn fill(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// A frame to lay out in a ring: format, size, stride padding, scale and canvas.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// Bytes after each row of pixels.
    pub pad: usize,
    pub scale: u32,
    pub canvas: Option<(u32, u32)>,
}

impl Spec {
    pub const fn new(
        format: PixelFormat,
        width: u32,
        height: u32,
        pad: usize,
        scale: u32,
        canvas: Option<(u32, u32)>,
    ) -> Spec {
        Spec { format, width, height, pad, scale, canvas }
    }

    pub fn stride(&self) -> usize {
        self.width as usize * self.format.bytes_per_pixel() + self.pad
    }

    /// The job for this frame at `offset` of `source`.
    pub fn job(&self, source: SourceId, offset: usize) -> Job {
        Job {
            source,
            offset,
            format: self.format,
            width: self.width,
            height: self.height,
            stride: self.stride(),
            placement: Placement::new(self.width, self.height, self.scale, self.canvas).expect("valid placement"),
            slot: None,
        }
    }
}

/// Lays the frames out from `start`, each after the last plus `gap` bytes (odd gaps give
/// unaligned offsets), fills the ring with random bytes, and returns each frame's offset.
pub fn lay_out(ring: &mut Ring, specs: &[Spec], start: usize, gap: usize, seed: u64) -> Vec<usize> {
    Rng::new(seed).fill(ring.bytes_mut());
    let mut at = start;
    let mut offsets = Vec::new();
    for spec in specs {
        offsets.push(at);
        at += spec.stride() * spec.height as usize + gap;
    }
    assert!(at <= ring.len(), "ring of {} bytes too small for {at}", ring.len());
    offsets
}

/// What the CPU makes of `job`, reading `memory` (the source region).
pub fn reference(memory: &[u8], job: &Job) -> I420Frame {
    let frame = RgbFrame {
        format: job.format,
        width: job.width,
        height: job.height,
        stride: job.stride,
        data: &memory[job.offset..job.offset + job.frame_bytes()],
    };
    let mut out = I420Frame::new(2, 2);
    convert_placed(&frame, &job.placement, &mut out).expect("reference conversion");
    out
}

/// Asserts equal pictures, naming the first differing byte.
pub fn assert_same(what: &str, got: &I420Frame, want: &I420Frame) {
    assert_eq!((got.width(), got.height()), (want.width(), want.height()), "{what}: size");
    let w = want.width();
    for (plane, g, e, pw) in
        [("Y", got.y(), want.y(), w), ("U", got.u(), want.u(), w / 2), ("V", got.v(), want.v(), w / 2)]
    {
        if let Some(i) = g.iter().zip(e).position(|(a, b)| a != b) {
            panic!("{what}: {plane} differs at ({}, {}): gpu {} cpu {}", i % pw, i / pw, g[i], e[i]);
        }
    }
}

/// NV12 (packed Y then UV) of an I420 picture.
pub fn nv12_of(frame: &I420Frame) -> Vec<u8> {
    let mut out = frame.y().to_vec();
    for (u, v) in frame.u().iter().zip(frame.v()) {
        out.extend_from_slice(&[*u, *v]);
    }
    out
}

/// Blank outputs for `n` jobs.
pub fn outputs(n: usize) -> Vec<I420Frame> {
    (0..n).map(|_| I420Frame::new(2, 2)).collect()
}
