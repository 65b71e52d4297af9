//! VP8 encoding with libvpx (Debian's `libvpx-dev`, through `env-libvpx-sys`'s pre-generated
//! bindings), for browsers whose answer has no H264.
//!
//! Settings and why (see docs/decisions/media.md):
//! - real-time deadline (`VPX_DL_REALTIME`) at the fastest fixed speed (`cpu-used` −16):
//!   whole-pixel motion search and the simple loop filter, which suit pixel art; a negative
//!   speed does not drift with the machine's load as positive ones do;
//! - static macroblocks skipped (static threshold 500): HUDs and backgrounds cost nothing;
//! - one thread per encoder (`g_threads` 1): a worker runs dozens of rooms, parallelism comes
//!   from rooms;
//! - no look-ahead (`g_lag_in_frames` 0): every frame comes out of the call that took it;
//! - CBR with a short buffer (100 ms) so a frame's size stays close to its share of the
//!   bitrate, and no dropped frames: every emulated frame yields a picture;
//! - error resilient: each frame's entropy context stands alone, so a lost packet costs
//!   only the frames that depend on it;
//! - one token partition: str0m splits the frame into RTP packets itself;
//! - keyframes on the first frame, on [`Vp8Encoder::request_keyframe`] (a browser's PLI), every
//!   [`VideoConfig::keyframe_interval`] of presentation time and after a size change; libvpx's
//!   own keyframe placement is off.
//!
//! The unsafe calls into libvpx live in the private `ffi` module; this one is safe code.

use std::time::{Duration, Instant};

mod ffi;

pub use ffi::{LibvpxConfig, LibvpxControls, MAX_DIMENSION};

use crate::convert::I420Frame;
use crate::video::{self, EncodedFrame, Picture, PictureFormat, VideoCodec, VideoConfig, VideoEncoder, VideoError};

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Vp8Error {
    /// The configuration cannot be used.
    #[error("invalid VP8 configuration: {0}")]
    Config(&'static str),
    /// The picture is empty, larger than VP8 allows, or its planes are shorter than its size.
    #[error("unusable VP8 picture size {width}x{height}")]
    FrameSize {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
    },
    /// Compressed input the decoder cannot take.
    #[error("bad VP8 input: {0}")]
    Input(&'static str),
    /// libvpx refused a call.
    #[error("libvpx {call}: {message}")]
    Codec {
        /// The libvpx function or control that failed.
        call: &'static str,
        /// libvpx's error text.
        message: String,
    },
}

/// Microseconds: the encoder's pts unit.
const TIMEBASE: (i32, i32) = (1, 1_000_000);

/// The libvpx configuration for a `width`x`height` stream with `config`.
fn libvpx_config(config: &VideoConfig, width: u32, height: u32) -> LibvpxConfig {
    LibvpxConfig {
        width,
        height,
        threads: 1,
        timebase: TIMEBASE,
        lag_in_frames: 0,
        error_resilient: true,
        cbr: true,
        target_kbps: config.bitrate_bps / 1000,
        // WebRTC's range for VP8.
        min_quantizer: 2,
        max_quantizer: 56,
        // Rate control may undershoot freely (a still picture costs nothing) but overshoot
        // only a little.
        undershoot_pct: 100,
        overshoot_pct: 15,
        // A buffer of a few frames (100 ms, six at 60 fps) keeps each frame near its share of
        // the bitrate, so no frame waits long behind a burst at the bottleneck. It starts full:
        // the first keyframe may then spend more (a 17 ms buffer made it 29 dB).
        buffer_ms: 100,
        buffer_initial_ms: 100,
        buffer_optimal_ms: 80,
        drop_frame_threshold: 0,
        auto_keyframes: false,
        keyframe_max_distance: u32::MAX >> 1,
    }
}

/// The controls every encoder gets.
const CONTROLS: LibvpxControls = LibvpxControls {
    // The fastest real-time speed. From −14 libvpx uses the simple loop filter, from −15 it
    // searches whole-pixel motion only (its source calls that "a big hit on quality" for
    // camera video). Retro games have hard edges and move by whole pixels: on the test
    // pattern −16 was the cheapest and the best, half the bits of −12 at a higher mean PSNR.
    cpu_used: -16,
    token_partitions: 0,
    // Skip macroblocks whose prediction error (sum of squares over 16x16) is below this: a
    // static HUD or background costs nothing. 500 is about 1.4 levels RMS per pixel; it cut
    // the bits of a still picture by 80% and of the moving pattern by 25%, for 0.6–1.3 dB of
    // mean PSNR.
    static_threshold: 500,
    noise_sensitivity: 0,
    // No cap on keyframe size: a capped keyframe is worse and the frames after it grow to
    // make up for it (measured: larger largest frames with a cap of 200–300%).
    max_intra_bitrate_pct: 0,
    screen_content_mode: 0,
};

/// A VP8 encoder for one stream. Re-creates its libvpx instance when the frame size changes
/// (the next frame is then a keyframe).
pub struct Vp8Encoder {
    config: VideoConfig,
    encoder: Option<ffi::Encoder>,
    size: (usize, usize),
    keyframe_requested: bool,
    last_keyframe: Option<Duration>,
    /// The last pts handed to libvpx, in microseconds.
    last_pts: Option<i64>,
    out: Vec<u8>,
}

impl std::fmt::Debug for Vp8Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vp8Encoder")
            .field("config", &self.config)
            .field("size", &self.size)
            .field("keyframe_requested", &self.keyframe_requested)
            .finish_non_exhaustive()
    }
}

impl Vp8Encoder {
    /// Makes an encoder; libvpx itself is set up on the first frame, when the size is known.
    pub fn new(config: VideoConfig) -> Result<Self, Vp8Error> {
        config.check().map_err(Vp8Error::Config)?;
        Ok(Vp8Encoder {
            config,
            encoder: None,
            size: (0, 0),
            keyframe_requested: false,
            last_keyframe: None,
            last_pts: None,
            out: Vec::new(),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &VideoConfig {
        &self.config
    }

    /// libvpx's configuration as its running encoder holds it; `None` before the first frame.
    pub fn libvpx_config(&self) -> Option<LibvpxConfig> {
        self.encoder.as_ref().and_then(ffi::Encoder::config)
    }

    /// The controls set on every libvpx encoder.
    pub fn libvpx_controls(&self) -> LibvpxControls {
        CONTROLS
    }

    /// Makes the next encoded frame a keyframe (answer to a browser's PLI or FIR).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// Changes the target bitrate from the next frame on, in the running stream (no keyframe).
    /// libvpx's rate control budgets each frame from the timestamps, so a new frame rate is
    /// only checked and kept.
    pub fn set_rate(&mut self, bps: u32, fps: f32) -> Result<(), Vp8Error> {
        video::check_bitrate(bps).map_err(Vp8Error::Config)?;
        video::check_fps(fps).map_err(Vp8Error::Config)?;
        self.config.bitrate_bps = bps;
        self.config.max_fps = fps;
        match &mut self.encoder {
            Some(encoder) => encoder.set_target_kbps(bps / 1000),
            // Not set up yet: the first frame's configuration carries it.
            None => Ok(()),
        }
    }

    /// Encodes one picture shown at `pts` (time since the stream began; it drives rate control
    /// and the periodic keyframe, and a `pts` before the last keyframe's forces a new one). The
    /// returned bytes are one VP8 frame, the payload str0m packetizes into RTP; they live until
    /// the next call.
    pub fn encode(&mut self, frame: &I420Frame, pts: Duration) -> Result<EncodedFrame<'_>, Vp8Error> {
        let started = Instant::now();
        let size = (frame.width(), frame.height());
        if size.0 == 0 || size.1 == 0 || size.0 > MAX_DIMENSION || size.1 > MAX_DIMENSION {
            return Err(Vp8Error::FrameSize { width: size.0, height: size.1 });
        }
        if self.size != size || self.encoder.is_none() {
            // Dropping the old instance first keeps at most one alive.
            self.encoder = None;
            self.size = size;
            self.last_keyframe = None;
            self.last_pts = None;
        }
        let encoder = match self.encoder {
            Some(ref mut encoder) => encoder,
            None => {
                // Both fit in u32: checked against MAX_DIMENSION above.
                let config = libvpx_config(&self.config, size.0 as u32, size.1 as u32);
                self.encoder.insert(ffi::Encoder::new(&config, &CONTROLS)?)
            }
        };

        let periodic = match (self.last_keyframe, self.config.keyframe_interval) {
            (Some(last), Some(interval)) => pts < last || pts - last >= interval,
            _ => false,
        };
        let force = self.keyframe_requested || periodic || self.last_keyframe.is_none();

        // libvpx estimates the frame rate from pts steps, so they must increase: a pts that does
        // not (a caller's clock going back) continues one nominal frame after the last.
        let frame_us = (1e6 / f64::from(self.config.max_fps)).round() as i64;
        let mut pts_us = i64::try_from(pts.as_micros()).unwrap_or(i64::MAX / 2).min(i64::MAX / 2);
        if let Some(last) = self.last_pts {
            if pts_us <= last {
                pts_us = last.saturating_add(frame_us).min(i64::MAX / 2);
            }
        }

        let keyframe = encoder.encode(frame, pts_us, frame_us as u64, force, &mut self.out)?;
        self.last_pts = Some(pts_us);
        if keyframe {
            self.keyframe_requested = false;
            self.last_keyframe = Some(pts);
        }
        Ok(EncodedFrame { data: &self.out, keyframe, encode_time: started.elapsed() })
    }
}

impl VideoEncoder for Vp8Encoder {
    fn codec(&self) -> VideoCodec {
        VideoCodec::Vp8
    }

    fn name(&self) -> &'static str {
        "vp8"
    }

    fn input(&self) -> PictureFormat {
        PictureFormat::I420
    }

    fn encode(&mut self, picture: Picture<'_>, pts: Duration) -> Result<EncodedFrame<'_>, VideoError> {
        let frame = picture.i420();
        Ok(Vp8Encoder::encode(self, frame, pts)?)
    }

    fn request_keyframe(&mut self) {
        Vp8Encoder::request_keyframe(self);
    }

    fn set_rate(&mut self, bitrate_bps: u32, fps: f32) -> Result<(), VideoError> {
        Ok(Vp8Encoder::set_rate(self, bitrate_bps, fps)?)
    }
}

/// A VP8 decoder (libvpx, one thread): for tests and diagnostics, not on the streaming path.
pub struct Vp8Decoder {
    decoder: ffi::Decoder,
}

impl std::fmt::Debug for Vp8Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vp8Decoder").finish_non_exhaustive()
    }
}

impl Vp8Decoder {
    /// Sets up libvpx's VP8 decoder.
    pub fn new() -> Result<Self, Vp8Error> {
        Ok(Vp8Decoder { decoder: ffi::Decoder::new()? })
    }

    /// Decodes one VP8 frame (as [`Vp8Encoder::encode`] returns it) into `out`, resized to the
    /// picture's size. Returns whether a picture came out; garbage gives an error, never a
    /// crash.
    pub fn decode(&mut self, data: &[u8], out: &mut I420Frame) -> Result<bool, Vp8Error> {
        self.decoder.decode(data, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_and_decoder_can_move_to_another_thread() {
        fn is_send<T: Send>() {}
        is_send::<Vp8Encoder>();
        is_send::<Vp8Decoder>();
    }

    #[test]
    fn bad_config_is_rejected() {
        let bad = VideoConfig { bitrate_bps: 999, ..VideoConfig::default() };
        assert!(matches!(Vp8Encoder::new(bad), Err(Vp8Error::Config(_))));
        let bad = VideoConfig { max_fps: f32::NAN, ..VideoConfig::default() };
        assert!(matches!(Vp8Encoder::new(bad), Err(Vp8Error::Config(_))));
        let bad = VideoConfig { max_fps: 0.5, ..VideoConfig::default() };
        assert!(matches!(Vp8Encoder::new(bad), Err(Vp8Error::Config(_))));
    }

    #[test]
    fn an_empty_picture_is_an_error_not_a_crash() {
        let mut encoder = Vp8Encoder::new(VideoConfig::default()).unwrap();
        let empty = I420Frame::default();
        assert!(matches!(encoder.encode(&empty, Duration::ZERO), Err(Vp8Error::FrameSize { .. })));
        let huge = I420Frame::new(MAX_DIMENSION + 1, 2);
        assert!(matches!(encoder.encode(&huge, Duration::ZERO), Err(Vp8Error::FrameSize { .. })));
        // Still usable afterwards.
        let frame = I420Frame::new(64, 48);
        assert!(encoder.encode(&frame, Duration::ZERO).unwrap().keyframe);
    }

    #[test]
    fn pts_going_back_still_encodes() {
        let mut encoder = Vp8Encoder::new(VideoConfig { keyframe_interval: None, ..VideoConfig::default() }).unwrap();
        let frame = I420Frame::new(64, 48);
        for ms in [0, 16, 33, 33, 10, 0, 50] {
            let encoded = encoder.encode(&frame, Duration::from_millis(ms)).unwrap();
            assert!(!encoded.data.is_empty());
        }
    }

    #[test]
    fn garbage_does_not_crash_the_decoder() {
        let mut decoder = Vp8Decoder::new().unwrap();
        let mut out = I420Frame::default();
        assert!(matches!(decoder.decode(&[], &mut out), Err(Vp8Error::Input(_))));
        let mut seed = 0x1234_5678u32;
        for len in [1usize, 3, 10, 100, 1000] {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 24) as u8
                })
                .collect();
            // Either an error or a picture; never a crash.
            let _ = decoder.decode(&data, &mut out);
        }
    }
}
