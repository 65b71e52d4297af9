//! GPU conversion benchmark: frames converted per second by one dispatch for N rooms, by N
//! single dispatches and by the CPU converter, N = 1..64, at scale 1 and 3. On Mesa's lavapipe
//! (a CPU Vulkan device; the default here) the figures show the batching, not GPU speed:
//! lavapipe runs the shader on the CPU about as fast as plain CPU code.
//!
//!   cargo run --release -p retrofarm-bench --bin gpu [-- --quick] [--hardware]
//!
//! Needs a Vulkan loader and device; says why and exits 0 without them.

use std::time::Duration;

use anyhow::Result;
use retrofarm_bench::gpu::{self, HostFrames};
use retrofarm_gpu::DeviceChoice;

fn main() -> Result<()> {
    let quick = retrofarm_bench::quick();
    let choice = if std::env::args().any(|a| a == "--hardware") { DeviceChoice::Hardware } else { DeviceChoice::Any };
    let mut conv = match gpu::open(choice) {
        Ok(c) => c,
        Err(e) => {
            println!("gpu: SKIPPED: {e}");
            return Ok(());
        }
    };
    let sizes: &[usize] = if quick { &[1, 8] } else { &[1, 2, 4, 8, 16, 32, 64] };
    let min = Duration::from_millis(if quick { 100 } else { 2000 });
    let frames = HostFrames::new(*sizes.last().unwrap_or(&1), 7)?;
    let source = frames.import(&mut conv)?;
    println!("source: {:?}", conv.source_mode(source));
    for scale in [1, 3] {
        gpu::throughput(&mut conv, &frames, source, sizes, min, scale)?;
    }
    conv.release(source);
    Ok(())
}
