//! The NVENC checks of `gpu-hwcheck`, for a host with an NVIDIA GPU that has NVENC: per-frame
//! cost and quality of NVENC with host-memory input, sessions per GPU, and the zero-copy path
//! (the Vulkan converter's NV12 planes exported as an OPAQUE_FD, imported into CUDA, registered
//! with NVENC, encoded, decoded and compared with the CPU reference).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use retrofarm_e2e::video::H264Decoder;
use retrofarm_gpu::Converter;
use retrofarm_media::{convert_placed, I420Frame, PixelFormat, TestPattern, VideoConfig};
use retrofarm_nvenc::{CudaContext, Library, NvencEncoder};

use crate::gpu::HostFrames;

/// PSNR of two luma planes of the same size, in dB (99 when equal).
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse =
        a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum::<f64>() / a.len().max(1) as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
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
            worst = worst.min(psnr(&pic.y, i420.y()));
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

/// The zero-copy path for one NES frame: converted on Vulkan, its NV12 planes read by NVENC
/// through CUDA without a copy; returns the luma PSNR of the decoded picture against the CPU
/// reference.
pub fn zero_copy(conv: &mut Converter, library: &Library, cuda: &CudaContext) -> Result<f64> {
    let frames = HostFrames::new(1, 5)?;
    let source = frames.import(conv)?;
    let jobs = frames.jobs(source, 1, 1)?;
    let mut out = vec![I420Frame::default()];
    conv.convert(&jobs, &mut out)?;
    let layout = conv.nv12_layout(0).context("the batch's NV12 layout")?;
    if layout.offset_uv != layout.offset_y + u64::from(layout.pitch) * u64::from(layout.height) {
        bail!("the NV12 planes are not contiguous ({layout:?}): NVENC needs chroma right after luma");
    }
    let memory = conv.output_memory();
    let fd = conv.export_output_fd()?;
    // SAFETY: the fd is the converter's exported output memory of `memory.size` bytes.
    #[allow(unsafe_code)]
    let buffer = unsafe {
        if memory.dedicated {
            cuda.import_opaque_fd_dedicated(fd, memory.size)
        } else {
            cuda.import_opaque_fd(fd, memory.size)
        }
    }?;
    let mut enc = encoder(library, cuda, layout.width, layout.height)?;
    // SAFETY: the pointer lies in the imported buffer, alive until the end of this function.
    #[allow(unsafe_code)]
    let input = unsafe { enc.register_cuda_nv12(buffer.device_ptr() + layout.offset_y, layout.pitch) }?;
    let mut dec = H264Decoder::default();
    let au = enc.encode_registered(&input, Duration::ZERO)?.data.to_vec();
    enc.unregister(input)?;
    let pic = dec.decode(&au).context("the zero-copy frame does not decode")?;
    let mut want = I420Frame::default();
    convert_placed(&frames.frame(0), &jobs[0].placement, &mut want)?;
    let p = psnr(&pic.y, want.y());
    println!("zero-copy (Vulkan NV12 → OPAQUE_FD → CUDA → NVENC): luma PSNR {p:.1} dB against the CPU reference");
    conv.release(source);
    Ok(p)
}
