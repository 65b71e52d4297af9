//! H264 encoding with OpenH264 (built from source, with its nasm assembly), tuned for
//! low-latency streaming to browsers.
//!
//! Settings and why (see docs/decisions/media.md):
//! - camera real-time usage: screen-content mode costs about 3x the CPU;
//! - Baseline profile, which OpenH264 writes as constrained baseline (profile_idc 66 with
//!   constraint_set0 and constraint_set1), level 3.1: what Chromium's `42e01f` offers. Baseline
//!   has no B-frames, so every frame is sent as soon as it is encoded;
//! - bitrate rate control with frame skipping off: every emulated frame yields a picture;
//! - one thread per encoder: a worker runs dozens of rooms, parallelism comes from rooms;
//! - background detection on: unchanged macroblocks are skipped early, which made encoding
//!   35% cheaper on a scrolling picture and 3x cheaper on a still one at the same PSNR;
//! - complexity Low: Medium cost 10% more for no PSNR gain on game content;
//! - a single slice per frame: str0m splits it into FU-A packets (packetization-mode 1);
//! - IDR on the first frame, on [`H264Encoder::request_keyframe`] (a browser's PLI) and
//!   every [`VideoConfig::keyframe_interval`] of presentation time; no scene-change IDRs, so
//!   keyframes come only when asked for.

use std::time::{Duration, Instant};

use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Level, Profile,
    RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSlices;
use openh264::{OpenH264API, Timestamp};

use crate::convert::I420Frame;
use crate::video::{self, EncodedFrame, Picture, PictureFormat, VideoCodec, VideoConfig, VideoEncoder, VideoError};

/// Why a frame could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum H264Error {
    /// OpenH264 refused the parameters or the frame.
    #[error("openh264: {0}")]
    Codec(#[from] openh264::Error),
    /// The configuration cannot be used.
    #[error("invalid H264 configuration: {0}")]
    Config(&'static str),
    /// OpenH264 refused a new bitrate or frame rate (its `SetOption` return code).
    #[error("openh264 refused the rate change (code {0})")]
    Rate(i32),
}

/// An H264 encoder for one stream. Re-creates its OpenH264 instance when the frame size
/// changes (the next frame is then an IDR).
pub struct H264Encoder {
    config: VideoConfig,
    encoder: Option<Encoder>,
    size: (usize, usize),
    keyframe_requested: bool,
    last_keyframe: Option<Duration>,
    out: Vec<u8>,
    /// The running OpenH264 instance's highest bitrate (its `iMaxSpatialBitrate`: the
    /// bitrate it was made with, raised by [`Self::set_rate`] before a target above it).
    max_bps: u32,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("config", &self.config)
            .field("size", &self.size)
            .field("keyframe_requested", &self.keyframe_requested)
            .finish_non_exhaustive()
    }
}

impl H264Encoder {
    /// Makes an encoder; OpenH264 itself is set up on the first frame, when the size is known.
    pub fn new(config: VideoConfig) -> Result<Self, H264Error> {
        config.check().map_err(H264Error::Config)?;
        Ok(H264Encoder {
            config,
            encoder: None,
            size: (0, 0),
            keyframe_requested: false,
            last_keyframe: None,
            out: Vec::new(),
            max_bps: 0,
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &VideoConfig {
        &self.config
    }

    /// Makes the next encoded frame an IDR (answer to a browser's PLI or FIR).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// Changes the target bitrate and the frame rate rate control budgets for, from the next
    /// frame on, in the running stream (no IDR).
    pub fn set_rate(&mut self, bps: u32, fps: f32) -> Result<(), H264Error> {
        video::check_bitrate(bps).map_err(H264Error::Config)?;
        video::check_fps(fps).map_err(H264Error::Config)?;
        self.config.bitrate_bps = bps;
        self.config.max_fps = fps;
        match &mut self.encoder {
            Some(encoder) => set_target_rate(encoder, bps, fps, &mut self.max_bps),
            // Not set up yet: the first frame's configuration carries it.
            None => Ok(()),
        }
    }

    /// Encodes one picture shown at `pts` (time since the stream began; it drives rate control
    /// and the periodic IDR, and a `pts` before the last IDR's forces a new one). The returned
    /// bytes live until the next call.
    pub fn encode(&mut self, frame: &I420Frame, pts: Duration) -> Result<EncodedFrame<'_>, H264Error> {
        let started = Instant::now();
        let size = (frame.width(), frame.height());
        if self.size != size {
            // Dropping the old instance first keeps at most one alive.
            self.encoder = None;
            self.size = size;
            self.last_keyframe = None;
        }
        let encoder = match self.encoder {
            Some(ref mut encoder) => encoder,
            None => {
                let config = self.openh264_config();
                self.max_bps = self.config.bitrate_bps;
                self.encoder.insert(Encoder::with_api_config(OpenH264API::from_source(), config)?)
            }
        };

        let periodic = match (self.last_keyframe, self.config.keyframe_interval) {
            (Some(last), Some(interval)) => pts < last || pts - last >= interval,
            _ => false,
        };
        if self.keyframe_requested || periodic {
            encoder.force_intra_frame();
        }

        let source = YUVSlices::new(
            (frame.y(), frame.u(), frame.v()),
            size,
            (frame.y_stride(), frame.chroma_stride(), frame.chroma_stride()),
        );
        let millis = u64::try_from(pts.as_millis()).unwrap_or(u64::MAX);
        let bitstream = encoder.encode_at(&source, Timestamp::from_millis(millis))?;
        let keyframe = bitstream.frame_type() == FrameType::IDR;
        self.out.clear();
        bitstream.write_vec(&mut self.out);

        if keyframe {
            self.keyframe_requested = false;
            self.last_keyframe = Some(pts);
        }
        Ok(EncodedFrame { data: &self.out, keyframe, encode_time: started.elapsed() })
    }

    fn openh264_config(&self) -> EncoderConfig {
        EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            .level(Level::Level_3_1)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(self.config.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(self.config.max_fps))
            .skip_frames(false)
            .complexity(Complexity::Low)
            .num_threads(1)
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .intra_frame_period(IntraFramePeriod::auto())
            .scene_change_detect(false)
            .background_detection(true)
            .adaptive_quantization(false)
            .long_term_reference(false)
    }
}

impl VideoEncoder for H264Encoder {
    fn codec(&self) -> VideoCodec {
        VideoCodec::H264
    }

    fn name(&self) -> &'static str {
        "openh264"
    }

    fn input(&self) -> PictureFormat {
        PictureFormat::I420
    }

    fn encode(&mut self, picture: Picture<'_>, pts: Duration) -> Result<EncodedFrame<'_>, VideoError> {
        let frame = picture.i420();
        Ok(H264Encoder::encode(self, frame, pts)?)
    }

    fn request_keyframe(&mut self) {
        H264Encoder::request_keyframe(self);
    }

    fn set_rate(&mut self, bitrate_bps: u32, fps: f32) -> Result<(), VideoError> {
        Ok(H264Encoder::set_rate(self, bitrate_bps, fps)?)
    }
}

/// Sets a running OpenH264 encoder's target bitrate (`ENCODER_OPTION_BITRATE` for all spatial
/// layers, as WebRTC's own OpenH264 wrapper does on every rate update) and the frame rate its
/// rate control divides the bitrate by (`ENCODER_OPTION_FRAME_RATE`: in bitrate mode OpenH264
/// budgets each frame from it, not from the timestamps). OpenH264 refuses a target above the
/// instance's maximum, which starts as the bitrate it was made with: a higher target raises
/// the maximum first (`ENCODER_OPTION_MAX_BITRATE`), and `max_bps` follows.
#[allow(unsafe_code)]
fn set_target_rate(encoder: &mut Encoder, bps: u32, fps: f32, max_bps: &mut u32) -> Result<(), H264Error> {
    use std::os::raw::{c_int, c_void};
    /// `SBitrateInfo` of codec_app_def.h.
    #[repr(C)]
    struct BitrateInfo {
        layer: c_int,
        bitrate: c_int,
    }
    /// `ENCODER_OPTION_FRAME_RATE`, `ENCODER_OPTION_BITRATE` and `SPATIAL_LAYER_ALL` of
    /// codec_app_def.h.
    const ENCODER_OPTION_FRAME_RATE: c_int = 4;
    const ENCODER_OPTION_BITRATE: c_int = 5;
    const ENCODER_OPTION_MAX_BITRATE: c_int = 6;
    const SPATIAL_LAYER_0: c_int = 0;
    const SPATIAL_LAYER_ALL: c_int = 4;
    // Checked by video::check_bitrate: fits in an i32.
    let mut info = BitrateInfo { layer: SPATIAL_LAYER_ALL, bitrate: bps as c_int };
    let mut fps = fps;
    // SAFETY: the encoder is initialised (it exists only after its first frame set it up);
    // ENCODER_OPTION_FRAME_RATE reads one float and ENCODER_OPTION_BITRATE one SBitrateInfo
    // through the pointer, which points at a live value of that C layout for the duration of
    // the call. The options change rate control only, which the wrapper does not rely on.
    let code = unsafe { encoder.raw_api().set_option(ENCODER_OPTION_FRAME_RATE, (&raw mut fps).cast::<c_void>()) };
    if code != 0 {
        return Err(H264Error::Rate(code));
    }
    if bps > *max_bps {
        let mut max = BitrateInfo { layer: SPATIAL_LAYER_0, bitrate: bps as c_int };
        // SAFETY: as above; ENCODER_OPTION_MAX_BITRATE reads one SBitrateInfo.
        let code = unsafe { encoder.raw_api().set_option(ENCODER_OPTION_MAX_BITRATE, (&raw mut max).cast::<c_void>()) };
        if code != 0 {
            return Err(H264Error::Rate(code));
        }
        *max_bps = bps;
    }
    // SAFETY: as above.
    let code = unsafe { encoder.raw_api().set_option(ENCODER_OPTION_BITRATE, (&raw mut info).cast::<c_void>()) };
    if code != 0 {
        return Err(H264Error::Rate(code));
    }
    Ok(())
}

/// The NAL units of an Annex-B byte stream (start codes removed).
pub fn nal_units(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = stream;
    std::iter::from_fn(move || {
        let start = find_start_code(rest)?;
        let body = &rest[start..];
        let end = find_start_code_prefix(body).unwrap_or(body.len());
        rest = &body[end..];
        // A 4-byte start code leaves a trailing zero on the previous unit; trim it.
        let mut unit = &body[..end];
        while let [head @ .., 0] = unit {
            unit = head;
        }
        Some(unit)
    })
}

/// Index just past the first `00 00 01`.
fn find_start_code(data: &[u8]) -> Option<usize> {
    find_start_code_prefix(data).map(|i| i + 3)
}

/// Index of the first `00 00 01`.
fn find_start_code_prefix(data: &[u8]) -> Option<usize> {
    data.windows(3).position(|w| w == [0, 0, 1])
}

/// The fields at the start of an SPS that name the profile and level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsProfile {
    /// `profile_idc` (66 = Baseline).
    pub profile_idc: u8,
    /// The constraint_set flags byte (bit 7 = constraint_set0, bit 6 = constraint_set1, ...).
    pub constraint_flags: u8,
    /// `level_idc` (31 = level 3.1).
    pub level_idc: u8,
}

impl SpsProfile {
    /// Reads the profile of the first SPS in an Annex-B access unit.
    pub fn find(access_unit: &[u8]) -> Option<Self> {
        nal_units(access_unit).find_map(|nal| match nal {
            [header, profile_idc, constraint_flags, level_idc, ..] if header & 0x1f == 7 => Some(SpsProfile {
                profile_idc: *profile_idc,
                constraint_flags: *constraint_flags,
                level_idc: *level_idc,
            }),
            _ => None,
        })
    }

    /// Whether this is constrained baseline (profile 66 with constraint_set1), which every
    /// WebRTC H264 decoder accepts.
    pub fn is_constrained_baseline(&self) -> bool {
        self.profile_idc == 66 && self.constraint_flags & 0x40 != 0
    }

    /// As the six hex digits of SDP's `profile-level-id`.
    pub fn profile_level_id(&self) -> String {
        format!("{:02x}{:02x}{:02x}", self.profile_idc, self.constraint_flags, self.level_idc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nal_units_splits_three_and_four_byte_start_codes() {
        let stream = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5];
        let units: Vec<&[u8]> = nal_units(&stream).collect();
        assert_eq!(units, vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]);
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0);
    }

    #[test]
    fn sps_profile_is_read_from_an_access_unit() {
        let au = [0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0xaa];
        let sps = SpsProfile::find(&au).unwrap();
        assert_eq!(sps.profile_level_id(), "42e01f");
        assert!(sps.is_constrained_baseline());
        assert!(SpsProfile::find(&[0, 0, 1, 0x65, 0x88]).is_none());
    }

    #[test]
    fn bad_config_is_rejected() {
        let bad = VideoConfig { bitrate_bps: 999, ..VideoConfig::default() };
        assert!(matches!(H264Encoder::new(bad), Err(H264Error::Config(_))));
        let bad = VideoConfig { max_fps: f32::NAN, ..VideoConfig::default() };
        assert!(matches!(H264Encoder::new(bad), Err(H264Error::Config(_))));
    }

    #[test]
    fn the_rate_rises_above_the_one_the_encoder_was_made_with() {
        // OpenH264 takes the first bitrate as its maximum: a congestion controller that starts
        // low (or an encoder remade at a low rate after a resize) must still climb back.
        let mut e = H264Encoder::new(VideoConfig { bitrate_bps: 300_000, ..VideoConfig::default() }).unwrap();
        let frame = crate::convert::I420Frame::new(256, 240);
        for i in 0..10u64 {
            e.encode(&frame, Duration::from_millis(i * 16)).unwrap();
        }
        for (bps, fps) in [(150_000, 30.0), (900_000, 60.0), (2_000_000, 60.0), (4_000_000, 60.0), (500_000, 60.0)] {
            e.set_rate(bps, fps).unwrap_or_else(|err| panic!("{bps} bit/s at {fps} fps: {err}"));
            e.encode(&frame, Duration::from_millis(200)).unwrap();
        }
    }

    /// Fails to link, not just to pass, when openh264-sys2 silently built without nasm: its
    /// build script falls back to plain C when nasm is missing, which is several times slower.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn openh264_was_built_with_its_nasm_assembly() {
        extern "C" {
            // From codec/common/x86/satd_sad.asm; never called, only linked.
            fn WelsSampleSatd16x16_sse2();
        }
        let address = WelsSampleSatd16x16_sse2 as *const () as usize;
        assert_ne!(std::hint::black_box(address), 0);
    }
}
