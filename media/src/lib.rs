//! retrofarm-media: turns what an emulator core produces into what a browser plays.
//!
//! - [`convert`](mod@convert): XRGB8888 / RGB565 / 0RGB1555 frames to I420 (BT.601 limited range);
//! - [`h264`]: I420 to H264 Annex-B access units with OpenH264, for WebRTC;
//! - [`vp8`]: I420 to VP8 frames with libvpx, for browsers that take no H264;
//! - [`video`]: the one seam rooms use, [`VideoEncoder`], over both (and later the GPU's);
//! - [`audio`]: interleaved stereo `i16` at any rate to 48 kHz Opus packets;
//! - [`pattern`]: a synthetic moving game-like picture for tests and benchmarks;
//! - [`quality`]: PSNR, how the tests and benchmarks judge an encoder's pictures.
//!
//! Plain computation, no IO: every call reports how long it took so the worker can export
//! per-stage timings.

pub mod audio;
pub mod convert;
pub mod h264;
pub mod pattern;
pub mod quality;
pub mod video;
pub mod vp8;

pub use audio::{AudioConfig, AudioEncoder, AudioError, AudioTiming, OpusFrameDuration, OpusPacket};
pub use convert::{convert, convert_placed, ConvertError, I420Frame, PixelFormat, Placement, RgbFrame};
pub use h264::{H264Encoder, H264Error, SpsProfile};
pub use pattern::TestPattern;
pub use quality::psnr_plane;
pub use video::{
    software_encoder, EncodedFrame, GpuNv12, Picture, PictureFormat, VideoCodec, VideoConfig, VideoEncoder, VideoError,
};
pub use vp8::{Vp8Decoder, Vp8Encoder, Vp8Error};
