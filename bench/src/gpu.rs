//! The GPU conversion benchmark and hardware check (`gpu` and `gpu-hwcheck` binaries): frames
//! converted per second by one dispatch for N rooms, by N single dispatches, and by the CPU
//! converter, over a mix of the systems' frame shapes held in page-aligned host memory (as the
//! emulators' rings are), and a byte-for-byte check of the GPU output against the CPU reference.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use retrofarm_gpu::{Converter, DeviceChoice, Job, SourceId};
use retrofarm_media::{convert, convert_placed, I420Frame, PixelFormat, Placement, RgbFrame};

/// One room's frame shape: what a system's core draws.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// System name, for the printout.
    pub system: &'static str,
    /// Pixel format.
    pub format: PixelFormat,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// The systems in the mix: NES (nestopia, XRGB8888), GBA and Game Boy (mGBA, RGB565).
pub const MIX: [Shape; 3] = [
    Shape { system: "nes", format: PixelFormat::Xrgb8888, width: 256, height: 240 },
    Shape { system: "gba", format: PixelFormat::Rgb565, width: 240, height: 160 },
    Shape { system: "gb", format: PixelFormat::Rgb565, width: 160, height: 144 },
];

/// Page-aligned anonymous memory holding one frame per room, like an emulator's ring.
pub struct HostFrames {
    ptr: *mut u8,
    len: usize,
    /// Per room: the shape and the frame's offset.
    pub rooms: Vec<(Shape, usize)>,
}

impl HostFrames {
    /// `rooms` frames cycling through [`MIX`], filled with a moving pseudo-random picture.
    #[allow(unsafe_code)]
    pub fn new(rooms: usize, seed: u64) -> Result<Self> {
        let mut layout = Vec::with_capacity(rooms);
        let mut len = 0usize;
        for i in 0..rooms {
            let s = MIX[i % MIX.len()];
            layout.push((s, len));
            len += (s.width * s.height) as usize * s.format.bytes_per_pixel();
            len = len.next_multiple_of(64);
        }
        let len = len.next_multiple_of(4096).max(4096);
        // SAFETY: a fresh private anonymous mapping; checked for failure below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            bail!("mmap of {len} bytes failed: {}", std::io::Error::last_os_error());
        }
        let mut frames = Self { ptr: ptr.cast(), len, rooms: layout };
        let mut state = seed | 1;
        for b in frames.bytes_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        Ok(frames)
    }

    /// The whole region.
    #[allow(unsafe_code)]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` bytes for the life of `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    #[allow(unsafe_code)]
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Room `i`'s frame as the CPU converter takes it.
    pub fn frame(&self, i: usize) -> RgbFrame<'_> {
        let (s, off) = self.rooms[i];
        let stride = s.width as usize * s.format.bytes_per_pixel();
        RgbFrame {
            format: s.format,
            width: s.width,
            height: s.height,
            stride,
            data: &self.bytes()[off..off + stride * s.height as usize],
        }
    }

    /// Imports the region into `conv` (host import where the driver allows, else staging).
    #[allow(unsafe_code)]
    pub fn import(&self, conv: &mut Converter) -> Result<SourceId> {
        // SAFETY: the mapping outlives the converter's use of it: callers release the source
        // (or drop the converter) before dropping `self`.
        unsafe { conv.import(self.ptr, self.len) }.context("importing the frames")
    }

    /// The jobs of the first `n` rooms at `scale`.
    pub fn jobs(&self, source: SourceId, n: usize, scale: u32) -> Result<Vec<Job>> {
        self.rooms[..n]
            .iter()
            .map(|&(s, off)| {
                Ok(Job {
                    source,
                    offset: off,
                    format: s.format,
                    width: s.width,
                    height: s.height,
                    stride: s.width as usize * s.format.bytes_per_pixel(),
                    placement: Placement::new(s.width, s.height, scale, None)?,
                    slot: None,
                })
            })
            .collect()
    }
}

impl Drop for HostFrames {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Converts every room of `frames` at scales 1 to 3 on the GPU and compares each picture with
/// the CPU reference byte for byte. Returns the number of pictures that differ.
pub fn check_exact(conv: &mut Converter, frames: &HostFrames, source: SourceId) -> Result<usize> {
    let n = frames.rooms.len();
    let mut bad = 0;
    for scale in 1..=3 {
        let jobs = frames.jobs(source, n, scale)?;
        let mut out = vec![I420Frame::default(); n];
        conv.convert(&jobs, &mut out)?;
        let mut want = I420Frame::default();
        for (i, (job, got)) in jobs.iter().zip(&out).enumerate() {
            convert_placed(&frames.frame(i), &job.placement, &mut want)?;
            if *got != want {
                println!("MISMATCH: room {i} ({}) at scale {scale}", frames.rooms[i].0.system);
                bad += 1;
            }
        }
    }
    Ok(bad)
}

/// Frames per second of `f`, which converts `frames` frames per call, over at least `min`.
fn rate(min: Duration, frames: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?; // warm-up: buffers grow on first use
    let started = Instant::now();
    let mut calls = 0usize;
    while started.elapsed() < min || calls < 3 {
        f()?;
        calls += 1;
    }
    Ok((calls * frames) as f64 / started.elapsed().as_secs_f64())
}

/// Prints frames per second for N rooms: one dispatch, N dispatches, the CPU.
pub fn throughput(
    conv: &mut Converter,
    frames: &HostFrames,
    source: SourceId,
    sizes: &[usize],
    min: Duration,
    scale: u32,
) -> Result<()> {
    println!("scale {scale}: frames converted per second (mix of {})", MIX.map(|s| s.system).join("/"));
    println!(
        "{:>5} {:>14} {:>14} {:>14} {:>10} {:>10}",
        "rooms", "one dispatch", "N dispatches", "cpu (1 core)", "one/N", "one/cpu"
    );
    let mut out = vec![I420Frame::default(); frames.rooms.len()];
    for &n in sizes {
        let jobs = frames.jobs(source, n, scale)?;
        let one = rate(min, n, || conv.convert(&jobs, &mut out[..n]).map(drop).map_err(Into::into))?;
        let each = rate(min, n, || conv.convert_each(&jobs, &mut out[..n]).map(drop).map_err(Into::into))?;
        let mut dst = I420Frame::default();
        let cpu = rate(min, n, || {
            for (i, job) in jobs.iter().enumerate() {
                let f = frames.frame(i);
                if job.placement.is_identity() {
                    convert(&f, &mut dst)?;
                } else {
                    convert_placed(&f, &job.placement, &mut dst)?;
                }
            }
            Ok(())
        })?;
        println!("{n:>5} {one:>14.0} {each:>14.0} {cpu:>14.0} {:>10.2} {:>10.2}", one / each, one / cpu);
    }
    Ok(())
}

/// Opens the device `choice` asks for and prints what it is.
pub fn open(choice: DeviceChoice) -> Result<Converter> {
    let conv = Converter::open(choice)?;
    println!("device: {}", conv.device());
    Ok(conv)
}
