//! Hardware check for GPU hosts (run by hand): opens a discrete or integrated GPU (never
//! lavapipe), checks that the shader's output equals the CPU reference byte for byte for 24
//! rooms of NES, GBA and Game Boy frames at scales 1 to 3, prints the same throughput table as
//! the `gpu` benchmark, then, where NVIDIA's NVENC and CUDA load, NVENC's per-frame cost and
//! quality, the sessions one GPU opens, and the zero-copy path (Vulkan's NV12 planes through
//! CUDA into NVENC, decoded and compared with the CPU reference).
//!
//!   gpu-hwcheck [--quick]
//!
//! Exit status: 0 every check that could run passed; 1 a check failed; 2 no hardware GPU (the
//! reason is printed). A GPU without NVENC (H100, H200) passes with the NVENC part skipped.

use std::time::Duration;

use anyhow::Result;
use retrofarm_bench::gpu::{self, HostFrames};
use retrofarm_bench::nvenc_check;
use retrofarm_gpu::DeviceChoice;

fn main() -> Result<()> {
    let quick = retrofarm_bench::quick();
    let mut conv = match gpu::open(DeviceChoice::Hardware) {
        Ok(c) => c,
        Err(e) => {
            println!("gpu-hwcheck: {e}");
            std::process::exit(2);
        }
    };
    let frames = HostFrames::new(64, 11)?;
    let source = frames.import(&mut conv)?;
    println!("source: {:?}", conv.source_mode(source));
    let exact = HostFrames::new(24, 3)?;
    let exact_source = exact.import(&mut conv)?;
    let bad = gpu::check_exact(&mut conv, &exact, exact_source)?;
    println!("bit-exact: {} of {} pictures differ from the CPU reference", bad, 24 * 3);
    let sizes: &[usize] = if quick { &[1, 8] } else { &[1, 2, 4, 8, 16, 32, 64] };
    let min = Duration::from_millis(if quick { 100 } else { 1000 });
    for scale in [1, 3] {
        gpu::throughput(&mut conv, &frames, source, sizes, min, scale)?;
    }
    conv.release(source);
    conv.release(exact_source);
    let mut failed = bad > 0;
    match nvenc_check::open() {
        Err(e) => println!("nvenc: SKIPPED: {e:#}"),
        Ok((library, cuda)) => {
            let mut checks = || -> Result<bool> {
                let worst = nvenc_check::cost(&library, &cuda, if quick { 120 } else { 600 })?;
                nvenc_check::sessions(&library, &cuda, 64)?;
                let zero_copy = nvenc_check::zero_copy(&mut conv, &library, &cuda)?;
                Ok(worst >= 35.0 && zero_copy >= 35.0)
            };
            match checks() {
                Ok(true) => println!("nvenc: all checks passed"),
                Ok(false) => {
                    println!("nvenc: FAILED: PSNR below 35 dB");
                    failed = true;
                }
                Err(e) => {
                    println!("nvenc: FAILED: {e:#}");
                    failed = true;
                }
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
