//! Encode a moving game-like picture, decode it with OpenH264's decoder, and check quality,
//! keyframes and the SPS.

use std::time::Duration;

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use retrofarm_media::h264::nal_units;
use retrofarm_media::{convert, H264Encoder, I420Frame, PixelFormat, SpsProfile, TestPattern, VideoConfig};

const FPS: f64 = 60.0;

fn pts(index: u32) -> Duration {
    Duration::from_secs_f64(f64::from(index) / FPS)
}

/// PSNR of the decoded Y plane against the encoder's input.
fn psnr_y(input: &I420Frame, decoded: &impl YUVSource) -> f64 {
    let (w, h) = decoded.dimensions();
    assert_eq!((w, h), (input.width(), input.height()));
    retrofarm_media::psnr_plane(input.y(), input.y_stride(), decoded.y(), decoded.strides().0, w, h)
}

/// NAL unit types in an access unit.
fn nal_types(access_unit: &[u8]) -> Vec<u8> {
    nal_units(access_unit).map(|nal| nal[0] & 0x1f).collect()
}

struct Run {
    keyframes: Vec<u32>,
    psnr: Vec<f64>,
    sizes: Vec<usize>,
    first: Vec<u8>,
}

/// Encodes `frames` frames of the pattern at `width`x`height`, calling `before` ahead of each,
/// and decodes every access unit.
fn run(
    width: u32,
    height: u32,
    frames: u32,
    mut before: impl FnMut(u32, &mut H264Encoder),
    config: VideoConfig,
) -> Run {
    let mut pattern = TestPattern::new(width, height);
    let mut yuv = I420Frame::default();
    let mut encoder = H264Encoder::new(config).unwrap();
    let mut decoder = Decoder::new().unwrap();
    let mut out = Run { keyframes: Vec::new(), psnr: Vec::new(), sizes: Vec::new(), first: Vec::new() };
    for i in 0..frames {
        convert(&pattern.render(i, PixelFormat::Xrgb8888), &mut yuv).unwrap();
        before(i, &mut encoder);
        let encoded = encoder.encode(&yuv, pts(i)).unwrap();
        assert!(!encoded.data.is_empty(), "frame {i} produced no data");
        let types = nal_types(encoded.data);
        if encoded.keyframe {
            out.keyframes.push(i);
            assert!(types.contains(&7) && types.contains(&8) && types.contains(&5), "IDR {i}: {types:?}");
        } else {
            assert!(types.iter().all(|&t| t == 1), "P frame {i}: {types:?}");
        }
        if i == 0 {
            out.first = encoded.data.to_vec();
        }
        out.sizes.push(encoded.data.len());
        let decoded = decoder.decode(encoded.data).unwrap().expect("a picture for every access unit");
        out.psnr.push(psnr_y(&yuv, &decoded));
    }
    out
}

#[test]
fn moving_picture_round_trips_at_35_db_or_better_on_every_frame() {
    let result = run(256, 240, 90, |_, _| {}, VideoConfig::default());
    let worst = result.psnr.iter().cloned().fold(f64::INFINITY, f64::min);
    let mean = result.psnr.iter().sum::<f64>() / result.psnr.len() as f64;
    let bytes: usize = result.sizes.iter().sum();
    let kbps = bytes as f64 * 8.0 / (result.sizes.len() as f64 / FPS) / 1000.0;
    println!("PSNR Y worst {worst:.1} dB, mean {mean:.1} dB; {kbps:.0} kbit/s; IDR {} bytes", result.sizes[0]);
    for (i, psnr) in result.psnr.iter().enumerate() {
        assert!(*psnr >= 35.0, "frame {i}: PSNR {psnr:.2} dB");
    }
    // Rate control keeps near the 1.5 Mbps target.
    assert!(kbps < 1500.0 * 1.5, "{kbps} kbit/s");
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
}

#[test]
fn periodic_keyframes_follow_the_interval() {
    let config = VideoConfig { keyframe_interval: Some(Duration::from_millis(500)), ..VideoConfig::default() };
    let result = run(256, 240, 70, |_, _| {}, config);
    assert_eq!(result.keyframes, vec![0, 30, 60]);
}

#[test]
fn sps_is_constrained_baseline_for_chromium() {
    let result = run(256, 240, 1, |_, _| {}, VideoConfig::default());
    let sps = SpsProfile::find(&result.first).expect("the first access unit carries an SPS");
    assert_eq!(sps.profile_idc, 66, "Baseline");
    assert!(sps.constraint_flags & 0x40 != 0, "constraint_set1 (constrained baseline)");
    assert!(sps.is_constrained_baseline());
    // Level 3.1, as in 42e01f; a decoder accepts any level up to the one negotiated.
    assert_eq!(sps.level_idc, 31);
    assert_eq!(sps.profile_level_id(), "42c01f");
}

#[test]
fn a_new_resolution_restarts_the_stream_with_an_idr() {
    let mut pattern_nes = TestPattern::new(256, 240);
    let mut pattern_gba = TestPattern::new(240, 160);
    let mut yuv = I420Frame::default();
    let mut encoder = H264Encoder::new(VideoConfig::default()).unwrap();
    let mut decoder = Decoder::new().unwrap();
    let mut keyframes = Vec::new();
    for i in 0..40u32 {
        let frame = if i < 20 {
            pattern_nes.render(i, PixelFormat::Xrgb8888)
        } else {
            pattern_gba.render(i, PixelFormat::Rgb565)
        };
        convert(&frame, &mut yuv).unwrap();
        let encoded = encoder.encode(&yuv, pts(i)).unwrap();
        if encoded.keyframe {
            keyframes.push(i);
        }
        let decoded = decoder.decode(encoded.data).unwrap().expect("a picture");
        assert_eq!(decoded.dimensions(), (yuv.width(), yuv.height()), "frame {i}");
        assert!(psnr_y(&yuv, &decoded) >= 35.0, "frame {i}");
    }
    assert_eq!(keyframes, vec![0, 20]);
}
