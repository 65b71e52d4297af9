//! The NVENC checks of `gpu-hwcheck`, for a host with an NVIDIA GPU that has NVENC: per-frame
//! cost and quality of NVENC with host-memory input, sessions per GPU, and the zero-copy path
//! (the Vulkan converter's NV12 planes exported as an OPAQUE_FD, imported into CUDA, registered
//! with NVENC, encoded, decoded and compared with the CPU reference).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use retrofarm_e2e::video::{H264Decoder, Luma};
use retrofarm_gpu::Converter;
use retrofarm_media::{convert_placed, psnr_plane, I420Frame, PixelFormat, TestPattern, VideoConfig};
use retrofarm_nvenc::{CudaContext, Library, NvencEncoder};

use crate::gpu::{HostFrames, MIX};

/// PSNR of a decoded picture's luma against the encoder's input.
fn psnr(decoded: &Luma, input: &I420Frame) -> f64 {
    psnr_plane(&decoded.y, decoded.width, input.y(), input.y_stride(), decoded.width, decoded.height)
}

/// NVIDIA's NVENC library and a CUDA context on device 0, or why not.
pub fn open() -> Result<(Library, CudaContext)> {
    let library = Library::load().context("NVENC")?;
    let cuda = CudaContext::open(0).context("CUDA")?;
    println!(
        "nvenc: API {} from {}; CUDA device 0: {} ({})",
        library.api_version(),
        library.path(),
        cuda.name(),
        cuda.uuid_string()
    );
    Ok((library, cuda))
}

fn encoder(library: &Library, cuda: &CudaContext, w: u32, h: u32) -> Result<NvencEncoder> {
    cuda.bind_to_thread()?;
    // SAFETY: `cuda` is a live context that outlives the encoder (the caller keeps both).
    #[allow(unsafe_code)]
    let e = unsafe { NvencEncoder::new(library, cuda.as_raw(), VideoConfig::default(), w, h) }?;
    Ok(e)
}

/// Encodes `frames` pictures of the test pattern with host-memory input; prints the mean
/// encode time and the worst luma PSNR after decoding. Returns the worst PSNR.
pub fn cost(library: &Library, cuda: &CudaContext, frames: u32) -> Result<f64> {
    let (w, h) = (256, 240);
    let mut enc = encoder(library, cuda, w, h)?;
    let mut pattern = TestPattern::new(w, h);
    let mut i420 = I420Frame::default();
    let mut dec = H264Decoder::default();
    let (mut worst, mut total) = (f64::INFINITY, Duration::ZERO);
    for i in 0..frames {
        retrofarm_media::convert(&pattern.render(i, PixelFormat::Xrgb8888), &mut i420)?;
        let started = Instant::now();
        let out = enc.encode_i420(&i420, Duration::from_micros(16_667 * u64::from(i)))?;
        total += started.elapsed();
        if let Some(pic) = dec.decode(out.data) {
            worst = worst.min(psnr(&pic, &i420));
        }
    }
    println!(
        "nvenc host input, 256x240: {:.3} ms per frame (mean of {frames}), worst luma PSNR {worst:.1} dB, {} decoded",
        total.as_secs_f64() * 1e3 / f64::from(frames),
        dec.decoded
    );
    Ok(worst)
}

/// Opens sessions until the driver refuses one (or `limit`): the rooms one GPU encodes.
pub fn sessions(library: &Library, cuda: &CudaContext, limit: usize) -> Result<usize> {
    let mut open = Vec::new();
    while open.len() < limit {
        match encoder(library, cuda, 256, 240) {
            Ok(e) => open.push(e),
            Err(e) => {
                println!("nvenc sessions: {} open, then: {e:#}", open.len());
                return Ok(open.len());
            }
        }
    }
    println!("nvenc sessions: {limit} open, none refused (stopped there)");
    Ok(open.len())
}

/// The zero-copy path as the worker runs it: a room's NV12 slot, filled on Vulkan by each batch,
/// exported once, imported into CUDA once and registered with NVENC once; two frames (two
/// batches) encoded from it in place. Returns the worse luma PSNR of the decoded pictures
/// against the CPU reference.
pub fn zero_copy(conv: &mut Converter, library: &Library, cuda: &CudaContext) -> Result<f64> {
    // Two different pictures of the same shape (the frames cycle through MIX).
    let frames = HostFrames::new(MIX.len() + 1, 5)?;
    let source = frames.import(conv)?;
    let all = frames.jobs(source, MIX.len() + 1, 1)?;
    let jobs = [all[0], all[MIX.len()]];
    let (w, h) = (jobs[0].placement.width, jobs[0].placement.height);
    let slot = conv.create_slot(w, h)?;
    let info = conv.slot(slot).context("the slot just made")?;
    let fd = conv.export_slot_fd(slot)?;
    // SAFETY: the fd is the slot's exported memory, of `info.size` bytes.
    #[allow(unsafe_code)]
    let buffer = unsafe { cuda.import_opaque_fd(fd, info.size, info.dedicated) }?;
    let mut enc = encoder(library, cuda, w, h)?;
    // SAFETY: the slot's whole NV12 picture lies in the imported buffer, alive until the end of
    // this function (the input is unregistered before it is dropped).
    #[allow(unsafe_code)]
    let input = unsafe { enc.register_cuda_nv12(buffer.device_ptr(), info.pitch) }?;
    let mut dec = H264Decoder::default();
    let mut worst = f64::INFINITY;
    for (i, job) in jobs.iter().enumerate() {
        let mut out = vec![I420Frame::default()];
        conv.convert(&[retrofarm_gpu::Job { slot: Some(slot), ..*job }], &mut out)?;
        let au = enc.encode_registered(&input, Duration::from_millis(16 * i as u64))?.data.to_vec();
        let pic = dec.decode(&au).with_context(|| format!("zero-copy frame {i} does not decode"))?;
        let mut want = I420Frame::default();
        convert_placed(&frames.frame(if i == 0 { 0 } else { MIX.len() }), &job.placement, &mut want)?;
        worst = worst.min(psnr(&pic, &want));
    }
    enc.unregister(input)?;
    drop(enc);
    drop(buffer);
    conv.release_slot(slot);
    conv.release(source);
    println!("zero-copy (Vulkan NV12 slot → OPAQUE_FD → CUDA → NVENC, 2 frames): worst luma PSNR {worst:.1} dB against the CPU reference");
    Ok(worst)
}
