//! retrofarm-nvenc-double: a test double of NVIDIA's NVENC API (`libnvidia-encode.so.1`),
//! for testing `retrofarm-nvenc` on machines without an NVIDIA GPU.
//!
//! A `cdylib` that exports `NvEncodeAPIGetMaxSupportedVersion` and
//! `NvEncodeAPICreateInstance` like the driver, and fills the NVENC 12.1 function table with
//! an implementation over OpenH264 of every function retrofarm calls (the rest return
//! `NV_ENC_ERR_UNIMPLEMENTED`). It checks what a careful driver would: struct versions, the
//! API version, handles, call order (initialise before buffers, unlock before encode, encode
//! before reading, map before encode), and the input's size, format and pitch.
//!
//! **What it proves and what it does not.** It proves that retrofarm uses the API as the
//! header documents it and chooses the settings it means to (it records them). It does not
//! model NVIDIA's hardware: speed, picture quality, rate control, real session limits, CUDA
//! contexts and device memory are not there. A `CUdeviceptr` registered with
//! `nvEncRegisterResource` is read as a *host* address, because there is no CUDA here: tests
//! register host memory.
//!
//! It exports the marker symbol `retrofarm_nvenc_double`; `retrofarm-nvenc`'s loader refuses a
//! library with that marker unless `RETROFARM_NVENC_TEST_DOUBLE=1`, so the double cannot be
//! mistaken for the driver in production.
//!
//! # Knobs (environment, read when a session opens unless said otherwise)
//!
//! - `RETROFARM_NVENC_DOUBLE_RECORD=<file>`: append one JSON object per line for each event
//!   (`open`, `open_refused`, `preset_config`, `initialize`, `encode`, `reconfigure`,
//!   `register`, `map`, `unmap`, `unregister`, `device_lost`, `destroy`) with the settings
//!   involved (preset, tuning, rate control mode, bitrate, VBV size, GOP length, IDR period,
//!   `frameIntervalP`, `repeatSPSPPS`, profile, forced IDRs, ...).
//! - `RETROFARM_NVENC_DOUBLE_MAX_SESSIONS=<n>`: opening a session while `n` are open returns
//!   `NV_ENC_ERR_OUT_OF_MEMORY`, as the driver does when a GPU has no session left.
//! - `RETROFARM_NVENC_DOUBLE_MAX_VERSION=<major.minor>` (read by
//!   `NvEncodeAPIGetMaxSupportedVersion` and `NvEncodeAPICreateInstance`): the newest API
//!   version reported, `(major << 4) | minor` as the driver encodes it; default 12.1. Below
//!   12.1, `NvEncodeAPICreateInstance` returns `NV_ENC_ERR_INVALID_VERSION`.
//! - `RETROFARM_NVENC_DOUBLE_FAIL_AFTER=<n>`: once a session has encoded `n` pictures, the
//!   next picture's first call and every call after it return `NV_ENC_ERR_DEVICE_NOT_EXIST`,
//!   as after a lost device (destroy calls still free what they name).
//!
//! No panic crosses the C boundary: every entry point catches unwinding and returns
//! `NV_ENC_ERR_GENERIC`.

// The whole crate is an implementation of a C API: exported functions that take raw pointers
// from C. Each unsafe block says what it relies on (`// SAFETY:`).
#![allow(unsafe_code)]

mod entry;
mod record;
mod session;

/// The marker by which `retrofarm-nvenc` recognises this library as the test double.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static retrofarm_nvenc_double: u32 = 1;

pub use entry::{NvEncodeAPICreateInstance, NvEncodeAPIGetMaxSupportedVersion};
