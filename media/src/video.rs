//! The one seam between a room and its video encoders: [`VideoEncoder`], with the codec
//! ([`VideoCodec`]), the settings ([`VideoConfig`]) and the picture it reads ([`Picture`]).
//!
//! A room holds a list of boxed encoders, one per codec its viewers need, and never names an
//! implementation. Each encoder says which picture format it reads ([`VideoEncoder::input`]):
//! the room runs that conversion stage once per frame and hands every encoder that asked for
//! it the same converted picture. Today every encoder reads CPU I420; a GPU stage adds its own
//! formats without touching the rooms.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use crate::convert::I420Frame;
use crate::h264::{H264Encoder, H264Error};
use crate::vp8::{Vp8Encoder, Vp8Error};

/// A video codec a room can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VideoCodec {
    /// H264 constrained baseline.
    H264 = 0,
    /// VP8, for browsers whose answer has no usable H264.
    Vp8 = 1,
}

impl VideoCodec {
    /// Every codec, in preference order; `codec as usize` indexes arrays of this length.
    pub const ALL: [VideoCodec; 2] = [VideoCodec::H264, VideoCodec::Vp8];

    /// Lower-case name, as in logs and SDP (`h264`, `vp8`).
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Vp8 => "vp8",
        }
    }
}

/// Settings every video encoder takes.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoConfig {
    /// Target bitrate in bits per second (1000 up to `i32::MAX`).
    pub bitrate_bps: u32,
    /// The highest frame rate the encoder will be fed (rate control budgets per frame from it).
    pub max_fps: f32,
    /// Time between periodic keyframes; `None` for keyframes only on the first frame, on size
    /// changes and on request.
    pub keyframe_interval: Option<Duration>,
}

impl Default for VideoConfig {
    /// 1.5 Mbps, 60 fps, a keyframe every 10 s: right for 256x240 retro games.
    fn default() -> Self {
        VideoConfig { bitrate_bps: 1_500_000, max_fps: 60.0, keyframe_interval: Some(Duration::from_secs(10)) }
    }
}

impl VideoConfig {
    /// Checks what every encoder needs: a bitrate libvpx (which counts in kbit/s) and
    /// OpenH264 (an `i32`) can both express, and a frame rate between 1 and 240.
    pub fn check(&self) -> Result<(), &'static str> {
        check_bitrate(self.bitrate_bps)?;
        check_fps(self.max_fps)
    }
}

/// Checks a frame rate for [`VideoConfig::check`] and [`VideoEncoder::set_rate`].
pub(crate) fn check_fps(fps: f32) -> Result<(), &'static str> {
    if !(fps.is_finite() && (1.0..=240.0).contains(&fps)) {
        return Err("max_fps must be between 1 and 240");
    }
    Ok(())
}

/// Checks a bitrate for [`VideoConfig::check`] and [`VideoEncoder::set_rate`].
pub(crate) fn check_bitrate(bps: u32) -> Result<(), &'static str> {
    if bps < 1000 || bps > i32::MAX as u32 {
        return Err("bitrate must be between 1000 and i32::MAX bps");
    }
    Ok(())
}

/// One encoded picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedFrame<'a> {
    /// What the RTP packetizer takes: an Annex-B access unit for H264, a frame for VP8. Empty
    /// if the encoder produced nothing for this picture.
    pub data: &'a [u8],
    /// Whether a decoder can start here (IDR / keyframe).
    pub keyframe: bool,
    /// Time spent in the encoder for this picture.
    pub encode_time: Duration,
}

/// The picture formats an encoder may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PictureFormat {
    /// Planar 4:2:0 in CPU memory ([`I420Frame`]).
    I420,
    /// NV12 left in GPU memory ([`GpuNv12`]), for a hardware encoder that reads it in place.
    GpuNv12,
}

/// A converted picture, in the format its encoder asked for.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Picture<'a> {
    /// Planar 4:2:0 in CPU memory.
    I420(&'a I420Frame),
    /// The picture as NV12 in GPU memory, and the same picture in CPU memory for encoders
    /// that read only that.
    Gpu {
        /// Where it lies on the GPU.
        nv12: &'a GpuNv12,
        /// The same picture, read back.
        i420: &'a I420Frame,
    },
}

impl<'a> Picture<'a> {
    /// Its format.
    pub fn format(&self) -> PictureFormat {
        match self {
            Picture::I420(_) => PictureFormat::I420,
            Picture::Gpu { .. } => PictureFormat::GpuNv12,
        }
    }

    /// The picture in CPU memory, which every variant carries.
    pub fn i420(&self) -> &'a I420Frame {
        match *self {
            Picture::I420(frame) | Picture::Gpu { i420: frame, .. } => frame,
        }
    }
}

/// An NV12 picture that stays in GPU memory: a slot the GPU conversion stage fills with a room's
/// frames, which a hardware encoder imports once and then reads in place (zero-copy).
#[derive(Debug, Clone)]
pub struct GpuNv12 {
    /// Names the slot's memory: the same number while the memory is the same.
    pub slot: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row of both planes: Y at offset 0, interleaved UV at `pitch * height`.
    pub pitch: u32,
    /// The memory exported as an OPAQUE_FD (for `cuImportExternalMemory`), where the device
    /// can export it.
    pub fd: Option<Arc<OwnedFd>>,
    /// The memory object's size, as the importer needs it.
    pub size: u64,
    /// Whether the memory is a dedicated allocation.
    pub dedicated: bool,
    /// The slot's address in this process, where the GPU's memory is host-visible (Mesa's
    /// lavapipe; what the NVENC test double reads as its "CUDA pointer").
    pub host_address: Option<usize>,
}

/// Why a video encoder failed.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The settings cannot be used.
    #[error("invalid video configuration: {0}")]
    Config(&'static str),
    /// The encoder was handed a picture format it did not ask for.
    /// OpenH264 failed.
    #[error(transparent)]
    H264(#[from] H264Error),
    /// libvpx failed.
    #[error(transparent)]
    Vp8(#[from] Vp8Error),
    /// A hardware encoder failed; when its device is lost the stream must move to a software
    /// encoder.
    #[error("{message}")]
    Hardware {
        /// The device is gone (or hung): nothing more will encode on it.
        device_lost: bool,
        /// What happened.
        message: String,
    },
}

impl VideoError {
    /// Whether the encoder's device is gone, so the stream should continue on another encoder.
    pub fn is_device_lost(&self) -> bool {
        matches!(self, VideoError::Hardware { device_lost: true, .. })
    }
}

/// A video encoder for one stream: what a room drives, whichever implementation is behind it.
pub trait VideoEncoder: Send + std::fmt::Debug {
    /// The codec it writes.
    fn codec(&self) -> VideoCodec;
    /// The implementation, for logs and the `encoder` metric label (`openh264`, `vp8`).
    fn name(&self) -> &'static str;
    /// The picture format it reads: the conversion stage the room runs for it.
    fn input(&self) -> PictureFormat;
    /// Encodes one picture shown at `pts` (time since the stream began; it drives rate control
    /// and periodic keyframes). The bytes live until the next call.
    fn encode(&mut self, picture: Picture<'_>, pts: Duration) -> Result<EncodedFrame<'_>, VideoError>;
    /// Makes the next encoded picture a keyframe (a new viewer, a browser's PLI or FIR).
    fn request_keyframe(&mut self);
    /// Changes the target bitrate and the rate pictures come at (rate control budgets each
    /// picture from both) from the next picture on, without a new stream or keyframe.
    fn set_rate(&mut self, bitrate_bps: u32, fps: f32) -> Result<(), VideoError>;
}

/// A software encoder for `codec`: OpenH264 for H264, libvpx for VP8.
pub fn software_encoder(codec: VideoCodec, config: VideoConfig) -> Result<Box<dyn VideoEncoder>, VideoError> {
    Ok(match codec {
        VideoCodec::H264 => Box::new(H264Encoder::new(config)?),
        VideoCodec::Vp8 => Box::new(Vp8Encoder::new(config)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::convert;
    use crate::pattern::TestPattern;

    #[test]
    fn config_is_checked_once_for_every_encoder() {
        assert!(VideoConfig::default().check().is_ok());
        for bad in [
            VideoConfig { bitrate_bps: 999, ..VideoConfig::default() },
            VideoConfig { bitrate_bps: u32::MAX, ..VideoConfig::default() },
            VideoConfig { max_fps: f32::NAN, ..VideoConfig::default() },
            VideoConfig { max_fps: 0.5, ..VideoConfig::default() },
        ] {
            for codec in VideoCodec::ALL {
                let err = software_encoder(codec, bad.clone()).unwrap_err();
                assert!(err.to_string().contains("invalid"), "{codec:?} {bad:?}: {err}");
            }
        }
    }

    /// Every software encoder, driven only through the trait: keyframe first, then on request,
    /// bitrate changes without a new keyframe, and a lower bitrate spends fewer bits.
    #[test]
    fn every_software_encoder_behaves_the_same_through_the_seam() {
        let mut pattern = TestPattern::new(256, 240);
        let mut i420 = I420Frame::default();
        for codec in VideoCodec::ALL {
            let mut enc = software_encoder(codec, VideoConfig { keyframe_interval: None, ..VideoConfig::default() })
                .expect("encoder");
            assert_eq!(enc.codec(), codec);
            assert_eq!(enc.input(), PictureFormat::I420);
            let mut bytes = [0usize; 2];
            let mut keyframes = vec![];
            for n in 0..120u32 {
                if n == 60 {
                    enc.set_rate(150_000, 60.0).expect("bitrate change");
                }
                if n == 100 {
                    enc.request_keyframe();
                }
                convert(&pattern.render(n, crate::PixelFormat::Xrgb8888), &mut i420).unwrap();
                let out = enc.encode(Picture::I420(&i420), Duration::from_millis(u64::from(n) * 16)).unwrap();
                assert!(!out.data.is_empty(), "{codec:?} frame {n} empty");
                if out.keyframe {
                    keyframes.push(n);
                }
                // Steady-state windows before and after the change.
                if (20..60).contains(&n) {
                    bytes[0] += out.data.len();
                } else if (70..100).contains(&n) {
                    bytes[1] += out.data.len();
                }
            }
            assert_eq!(keyframes, vec![0, 100], "{codec:?}: keyframes only first and on request");
            let (before, after) = (bytes[0] as f64 / 40.0, bytes[1] as f64 / 30.0);
            assert!(after < before * 0.6, "{codec:?}: {before:.0} B/frame at 1.5 Mbps, {after:.0} at 150 kbps");
            assert!(enc.set_rate(10, 60.0).is_err());
            assert!(enc.set_rate(150_000, 0.0).is_err());
        }
    }

    /// Told half the frame rate, every encoder spends the same bits per second on every other
    /// picture (congestion control's frame-rate step relies on it).
    #[test]
    fn every_software_encoder_keeps_its_bitrate_when_given_half_the_pictures() {
        let mut pattern = TestPattern::new(256, 240);
        let mut i420 = I420Frame::default();
        for codec in VideoCodec::ALL {
            let mut per_second = [0f64; 2];
            for (i, step) in [1u32, 2].into_iter().enumerate() {
                let config = VideoConfig { bitrate_bps: 300_000, keyframe_interval: None, ..VideoConfig::default() };
                let mut enc = software_encoder(codec, config).expect("encoder");
                enc.set_rate(300_000, 60.0 / step as f32).expect("rate");
                let mut bytes = 0usize;
                for n in (0..360u32).step_by(step as usize) {
                    convert(&pattern.render(n, crate::PixelFormat::Xrgb8888), &mut i420).unwrap();
                    let pts = Duration::from_micros(u64::from(n) * 16_667);
                    let out = enc.encode(Picture::I420(&i420), pts).unwrap();
                    if n >= 120 {
                        bytes += out.data.len();
                    }
                }
                per_second[i] = bytes as f64 * 8.0 / 4.0;
            }
            eprintln!("{codec:?}: {:.0} bps at 60 fps, {:.0} bps at 30 fps", per_second[0], per_second[1]);
            let ratio = per_second[1] / per_second[0];
            assert!((0.7..1.3).contains(&ratio), "{codec:?}: {per_second:?}");
        }
    }
}
