//! retrofarm-nvenc: H264 encoding on NVIDIA GPUs through NVENC, for retrofarm workers.
//!
//! - [`Library`] loads NVIDIA's `libnvidia-encode.so.1` at run time (`dlopen`: the binary
//!   links no NVIDIA library and runs on hosts without the driver), checks the driver's API
//!   version (12.1, driver 535, or newer) before anything else and fills the function table;
//! - [`NvencEncoder`] is one NVENC session behind [`retrofarm_media::VideoEncoder`] (codec
//!   H264, name `nvenc`), set up for low-latency streaming (P1, ultra-low-latency, CBR with a
//!   one-frame VBV, infinite GOP, no B-frames, baseline profile; see [`encoder`]);
//! - [`api`] holds our own `#[repr(C)]` declarations of the NVENC 12.1 subset we use, with
//!   every struct's size checked at compile time.
//!
//! # How this is tested
//!
//! No machine of the project has an NVIDIA GPU. The tests load `retrofarm-nvenc-double`, a
//! library that exports the NVENC entry points and implements the function table over
//! OpenH264, records every session's settings, and can inject the driver's failures (no
//! session left, an old driver, a lost device). It proves that this crate uses the API as the
//! header documents it (struct versions, call order, buffer handling, the settings chosen);
//! it does **not** prove anything about NVIDIA's hardware or driver: speed, quality, session
//! limits and the CUDA zero-copy path still need a run on a GPU with NVENC. The loader refuses
//! the double unless `RETROFARM_NVENC_TEST_DOUBLE=1` is set, so it cannot stand in for the
//! driver in production.

#![warn(missing_docs)]
// NVENC is a C API reached through function pointers: every call is `unsafe`. The unsafe code
// is confined to this crate; each block says why it is sound (`// SAFETY:`), and the public
// API is safe except where the caller hands NVENC raw GPU memory (`NvencEncoder::new`'s CUDA
// context, `NvencEncoder::register_cuda_nv12`).
#![allow(unsafe_code)]

pub mod api;
pub mod cuda;
pub mod encoder;
mod error;
mod loader;
pub mod nv12;

pub use cuda::{CudaContext, CudaError, CudaStatus, CudaVersion, ExternalBuffer, CUDA_LIBRARY_NAME};
pub use encoder::{NvencEncoder, NvencOptions, Preset, RegisteredInput, Tuning};
pub use error::{ApiVersion, NvencError, Status};
pub use loader::{Library, LIBRARY_NAME, REQUIRED, TEST_DOUBLE_ENV, TEST_DOUBLE_MARKER};
