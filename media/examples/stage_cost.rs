//! Prints the cost of each media stage per video frame, on one thread, for the test pattern.
//!
//! Run it optimised: `cargo run --release -p retrofarm-media --example stage_cost [FRAMES]`.
//! Each figure is wall time per video frame from the durations the stages report: the median
//! (robust to the odd preemption on a busy machine) and the mean. The first 60 frames warm up
//! and are not counted.

use std::time::Duration;

use retrofarm_media::{
    convert, AudioConfig, AudioEncoder, H264Encoder, I420Frame, PixelFormat, TestPattern, VideoConfig, Vp8Encoder,
};

const WARM_UP: usize = 60;

/// "median / mean µs".
fn stats(samples: &mut [Duration]) -> String {
    if samples.is_empty() {
        return "-".into();
    }
    samples.sort_unstable();
    let median = samples[samples.len() / 2].as_secs_f64() * 1e6;
    let mean = samples.iter().sum::<Duration>().as_secs_f64() * 1e6 / samples.len() as f64;
    format!("{median:7.1} / {mean:7.1}")
}

struct Video {
    name: &'static str,
    format: PixelFormat,
    width: u32,
    height: u32,
    fps: f64,
    bitrate_bps: u32,
    /// Repeat the first frame (a paused game or a menu) instead of moving.
    still: bool,
}

fn video(v: &Video, frames: usize) {
    let mut pattern = TestPattern::new(v.width, v.height);
    let mut yuv = I420Frame::default();
    let mut encoder =
        H264Encoder::new(VideoConfig { bitrate_bps: v.bitrate_bps, max_fps: v.fps as f32, ..VideoConfig::default() })
            .expect("encoder");
    let mut vp8 =
        Vp8Encoder::new(VideoConfig { bitrate_bps: v.bitrate_bps, max_fps: v.fps as f32, ..VideoConfig::default() })
            .expect("vp8 encoder");
    let (mut conversion, mut encoding, mut bytes) = (Vec::new(), Vec::new(), 0usize);
    let (mut vp8_encoding, mut vp8_bytes) = (Vec::new(), 0usize);
    for i in 0..frames + WARM_UP {
        // Rendering is not timed; like an emulator's output, the frame is then in cache.
        let frame = pattern.render(if v.still { 0 } else { i as u32 }, v.format);
        let converted = convert(&frame, &mut yuv).expect("convert");
        let pts = Duration::from_secs_f64(i as f64 / v.fps);
        let encoded = encoder.encode(&yuv, pts).expect("encode");
        if i >= WARM_UP {
            conversion.push(converted);
            encoding.push(encoded.encode_time);
            bytes += encoded.data.len();
        }
        // The same frame through VP8 (what a browser without H264 gets), timed on its own.
        let encoded = vp8.encode(&yuv, pts).expect("vp8 encode");
        if i >= WARM_UP {
            vp8_encoding.push(encoded.encode_time);
            vp8_bytes += encoded.data.len();
        }
    }
    let kbps = bytes as f64 * 8.0 * v.fps / frames as f64 / 1000.0;
    println!("{:<28} convert {}   h264 {}   ({kbps:.0} kbit/s)", v.name, stats(&mut conversion), stats(&mut encoding),);
    let kbps = vp8_bytes as f64 * 8.0 * v.fps / frames as f64 / 1000.0;
    println!("{:<57}vp8  {}   ({kbps:.0} kbit/s)", "", stats(&mut vp8_encoding));
}

fn audio(name: &str, rate: f64, fps: f64, frames: usize) {
    let mut encoder = AudioEncoder::new(AudioConfig::new(rate)).expect("audio encoder");
    // One video frame's worth of a two-tone signal per push, as a core delivers it.
    let (mut resample, mut encode, mut packets) = (Vec::new(), Vec::new(), 0);
    let mut n = 0u64;
    let mut block = Vec::new();
    for i in 0..frames + WARM_UP {
        let target = ((i + 1) as f64 * rate / fps).round() as u64;
        block.clear();
        while n < target {
            let t = n as f64 / rate;
            let s = 0.3 * (std::f64::consts::TAU * 440.0 * t).sin() + 0.2 * (std::f64::consts::TAU * 3000.0 * t).sin();
            block.push((s * 32767.0) as i16);
            block.push((s * 0.8 * 32767.0) as i16);
            n += 1;
        }
        let timing = encoder.push(&block).expect("push");
        while encoder.pop().is_some() {}
        if i >= WARM_UP {
            resample.push(timing.resample);
            encode.push(timing.encode);
            packets += timing.packets;
        }
    }
    // A 20 ms packet is finished on five video frames out of six: the mean over all video
    // frames is the cost per video frame; over the calls that finished one, per packet.
    let mean = |d: &[Duration]| d.iter().sum::<Duration>().as_secs_f64() * 1e6 / d.len().max(1) as f64;
    let per_packet: Vec<Duration> = encode.iter().copied().filter(|d| !d.is_zero()).collect();
    println!(
        "{name:<28} resample {}   opus {:7.1} per video frame (mean), {:.1} per packet   ({packets} packets)",
        stats(&mut resample),
        mean(&encode),
        mean(&per_packet),
    );
}

fn main() {
    let frames: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3600);
    println!("{frames} frames per case after {WARM_UP} to warm up; one thread; µs as median / mean");
    let cases = [
        Video {
            name: "NES 256x240 XRGB8888",
            format: PixelFormat::Xrgb8888,
            width: 256,
            height: 240,
            fps: 60.0,
            bitrate_bps: 1_500_000,
            still: false,
        },
        Video {
            name: "NES 256x240 XRGB8888 still",
            format: PixelFormat::Xrgb8888,
            width: 256,
            height: 240,
            fps: 60.0,
            bitrate_bps: 1_500_000,
            still: true,
        },
        Video {
            name: "NES 256x240 RGB565",
            format: PixelFormat::Rgb565,
            width: 256,
            height: 240,
            fps: 60.0,
            bitrate_bps: 1_500_000,
            still: false,
        },
        Video {
            name: "GBA 240x160 RGB565",
            format: PixelFormat::Rgb565,
            width: 240,
            height: 160,
            fps: 59.7275,
            bitrate_bps: 1_000_000,
            still: false,
        },
        Video {
            name: "720p XRGB8888",
            format: PixelFormat::Xrgb8888,
            width: 1280,
            height: 720,
            fps: 60.0,
            bitrate_bps: 6_000_000,
            still: false,
        },
    ];
    for v in &cases {
        video(v, if v.width > 1000 { frames / 6 } else { frames });
    }
    audio("audio 48000 Hz (nestopia)", 48_000.0, 60.0, frames);
    audio("audio 32768 Hz (mGBA)", 32_768.0, 59.7275, frames);
}
