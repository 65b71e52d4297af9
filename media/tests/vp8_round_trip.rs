//! Encode a moving game-like picture with our libvpx VP8 wrapper, decode it with libvpx's VP8
//! decoder, and check quality, keyframes, size changes and the configuration libvpx runs with.

use std::time::Duration;

use retrofarm_media::vp8::LibvpxConfig;
use retrofarm_media::{convert, I420Frame, PixelFormat, TestPattern, VideoConfig, Vp8Decoder, Vp8Encoder};

const FPS: f64 = 60.0;

fn pts(index: u32) -> Duration {
    Duration::from_secs_f64(f64::from(index) / FPS)
}

/// PSNR of the decoded Y plane against the encoder's input.
fn psnr_y(input: &I420Frame, decoded: &I420Frame) -> f64 {
    assert_eq!((decoded.width(), decoded.height()), (input.width(), input.height()));
    let (w, h) = (input.width(), input.height());
    retrofarm_media::psnr_plane(input.y(), input.y_stride(), decoded.y(), decoded.y_stride(), w, h)
}

/// VP8 frame tag: bit 0 of the first byte is 0 for a keyframe, and a keyframe carries the start
/// code 9d 01 2a at bytes 3..6 (RFC 6386, 9.1).
fn is_vp8_keyframe(frame: &[u8]) -> bool {
    frame.len() >= 10 && frame[0] & 1 == 0 && frame[3..6] == [0x9d, 0x01, 0x2a]
}

struct Run {
    keyframes: Vec<u32>,
    psnr: Vec<f64>,
    sizes: Vec<usize>,
    config: Option<LibvpxConfig>,
}

/// Encodes `frames` frames of the pattern at `width`x`height`, calling `before` ahead of each,
/// and decodes every frame.
fn run(width: u32, height: u32, frames: u32, mut before: impl FnMut(u32, &mut Vp8Encoder), config: VideoConfig) -> Run {
    let mut pattern = TestPattern::new(width, height);
    let mut yuv = I420Frame::default();
    let mut decoded = I420Frame::default();
    let mut encoder = Vp8Encoder::new(config).unwrap();
    let mut decoder = Vp8Decoder::new().unwrap();
    let mut out = Run { keyframes: Vec::new(), psnr: Vec::new(), sizes: Vec::new(), config: None };
    for i in 0..frames {
        convert(&pattern.render(i, PixelFormat::Xrgb8888), &mut yuv).unwrap();
        before(i, &mut encoder);
        let encoded = encoder.encode(&yuv, pts(i)).unwrap();
        assert!(!encoded.data.is_empty(), "frame {i} produced no data");
        assert_eq!(encoded.keyframe, is_vp8_keyframe(encoded.data), "frame {i}: flag and bitstream disagree");
        if encoded.keyframe {
            out.keyframes.push(i);
        }
        out.sizes.push(encoded.data.len());
        assert!(decoder.decode(encoded.data, &mut decoded).unwrap(), "frame {i} decoded to no picture");
        out.psnr.push(psnr_y(&yuv, &decoded));
    }
    out.config = encoder.libvpx_config();
    out
}

fn report(name: &str, result: &Run) -> (f64, f64) {
    let worst = result.psnr.iter().cloned().fold(f64::INFINITY, f64::min);
    let mean = result.psnr.iter().sum::<f64>() / result.psnr.len() as f64;
    let bytes: usize = result.sizes.iter().sum();
    let kbps = bytes as f64 * 8.0 / (result.sizes.len() as f64 / FPS) / 1000.0;
    let largest = result.sizes.iter().skip(1).max().copied().unwrap_or(0);
    println!(
        "{name}: PSNR Y worst {worst:.1} dB, mean {mean:.1} dB; {kbps:.0} kbit/s; keyframe {} bytes, largest other {largest}",
        result.sizes[0]
    );
    (worst, kbps)
}

#[test]
fn moving_picture_round_trips_at_35_db_or_better_on_every_frame() {
    let result = run(256, 240, 90, |_, _| {}, VideoConfig::default());
    let (_, kbps) = report("256x240 default", &result);
    for (i, psnr) in result.psnr.iter().enumerate() {
        assert!(*psnr >= 35.0, "frame {i}: PSNR {psnr:.2} dB");
    }
    // CBR keeps near the 1.5 Mbps target.
    assert!(kbps < 1500.0 * 1.25, "{kbps} kbit/s");
}

#[test]
fn only_the_first_and_requested_frames_are_keyframes() {
    let result = run(
        256,
        240,
        60,
        |i, encoder| {
            if i == 25 || i == 40 {
                encoder.request_keyframe();
            }
        },
        VideoConfig::default(),
    );
    assert_eq!(result.keyframes, vec![0, 25, 40]);
    for (i, psnr) in result.psnr.iter().enumerate() {
        assert!(*psnr >= 35.0, "frame {i}: PSNR {psnr:.2} dB");
    }
}

#[test]
fn libvpx_places_no_keyframes_of_its_own() {
    // Five seconds with no interval and nothing requested: one keyframe, at the start. (libvpx's
    // default would place one every 128 frames, and on scene changes.)
    let config = VideoConfig { keyframe_interval: None, ..VideoConfig::default() };
    let result = run(256, 240, 300, |_, _| {}, config);
    assert_eq!(result.keyframes, vec![0]);
}

#[test]
fn periodic_keyframes_follow_the_interval() {
    let config = VideoConfig { keyframe_interval: Some(Duration::from_millis(500)), ..VideoConfig::default() };
    let result = run(256, 240, 70, |_, _| {}, config);
    assert_eq!(result.keyframes, vec![0, 30, 60]);
}

#[test]
fn a_new_resolution_restarts_the_stream_with_a_keyframe() {
    let mut pattern_nes = TestPattern::new(256, 240);
    let mut pattern_gba = TestPattern::new(240, 160);
    let mut yuv = I420Frame::default();
    let mut decoded = I420Frame::default();
    let mut encoder = Vp8Encoder::new(VideoConfig::default()).unwrap();
    let mut decoder = Vp8Decoder::new().unwrap();
    let mut keyframes = Vec::new();
    for i in 0..60u32 {
        let frame = match i {
            0..20 => pattern_nes.render(i, PixelFormat::Xrgb8888),
            20..40 => pattern_gba.render(i, PixelFormat::Rgb565),
            _ => pattern_nes.render(i, PixelFormat::Xrgb8888),
        };
        convert(&frame, &mut yuv).unwrap();
        let encoded = encoder.encode(&yuv, pts(i)).unwrap();
        assert_eq!(encoded.keyframe, is_vp8_keyframe(encoded.data), "frame {i}");
        if encoded.keyframe {
            keyframes.push(i);
        }
        assert!(decoder.decode(encoded.data, &mut decoded).unwrap(), "frame {i}");
        assert_eq!((decoded.width(), decoded.height()), (yuv.width(), yuv.height()), "frame {i}");
        let psnr = psnr_y(&yuv, &decoded);
        assert!(psnr >= 35.0, "frame {i}: {psnr:.2} dB");
        let config = encoder.libvpx_config().unwrap();
        assert_eq!((config.width as usize, config.height as usize), (yuv.width(), yuv.height()));
    }
    assert_eq!(keyframes, vec![0, 20, 40]);
}

#[test]
fn libvpx_runs_with_our_low_latency_settings() {
    let result = run(256, 240, 2, |_, _| {}, VideoConfig { bitrate_bps: 800_000, ..VideoConfig::default() });
    // Read back from libvpx's own copy of the configuration.
    let config = result.config.expect("an encoder after the first frame");
    assert_eq!(config.threads, 1, "one thread per encoder");
    assert_eq!(config.lag_in_frames, 0, "no look-ahead");
    assert!(config.cbr, "CBR");
    assert!(config.error_resilient, "error resilient");
    assert!(!config.auto_keyframes, "keyframes only when forced");
    assert_eq!(config.drop_frame_threshold, 0, "no dropped frames");
    assert_eq!(config.target_kbps, 800);
    assert_eq!((config.width, config.height), (256, 240));
    // The buffer is a few frames at 60 fps, not libvpx's default of seconds.
    assert!(config.buffer_ms <= 250 && config.buffer_optimal_ms <= config.buffer_ms, "{config:?}");
    let encoder = Vp8Encoder::new(VideoConfig::default()).unwrap();
    let controls = encoder.libvpx_controls();
    assert_eq!(controls.token_partitions, 0, "one token partition");
    assert!(controls.cpu_used < 0, "a fixed real-time speed");
}
