//! Our own declarations of the subset of NVIDIA's NVENC API (`nvEncodeAPI.h`, version 12.1)
//! that retrofarm uses, for x86_64 Linux.
//!
//! Written by hand from the header (no bindgen, no copy of the header): names follow the header
//! so each item can be checked against it. Every struct keeps the header's reserved arrays, so
//! it has the header's exact size; `const` assertions below check each size and the offsets of
//! the fields we use. The figures were obtained by compiling a C program against the 12.1
//! header with gcc on x86_64 (`sizeof`/`offsetof`, and the bit each bitfield sets).
//!
//! C enums are `u32` here (gcc gives an enum without negative values the type `unsigned int`),
//! bitfields are one `u32` with mask constants (gcc on x86_64 allocates bitfields from the
//! least significant bit), and reserved fields are private: make structs with `Default`, which
//! zeroes them (as the API requires) and sets `version` where the struct has one.

#![allow(non_camel_case_types, non_snake_case)]

use std::ffi::{c_char, c_void};
use std::fmt;

// ---------------------------------------------------------------------------------------------
// Versions

/// `NVENCAPI_MAJOR_VERSION`: the API version these declarations follow is 12.1.
pub const NVENCAPI_MAJOR_VERSION: u32 = 12;
/// `NVENCAPI_MINOR_VERSION`.
pub const NVENCAPI_MINOR_VERSION: u32 = 1;
/// `NVENCAPI_VERSION`: `major | (minor << 24)`, what `apiVersion` fields carry.
pub const NVENCAPI_VERSION: u32 = NVENCAPI_MAJOR_VERSION | (NVENCAPI_MINOR_VERSION << 24);

/// `NVENCAPI_STRUCT_VERSION(ver)`: the `version` field of a struct at struct version `ver`.
pub const fn nvencapi_struct_version(ver: u32) -> u32 {
    NVENCAPI_VERSION | (ver << 16) | (0x7 << 28)
}

/// `NV_ENCODE_API_FUNCTION_LIST_VER`.
pub const NV_ENCODE_API_FUNCTION_LIST_VER: u32 = nvencapi_struct_version(2);
/// `NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER`.
pub const NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER: u32 = nvencapi_struct_version(1);
/// `NV_ENC_INITIALIZE_PARAMS_VER`.
pub const NV_ENC_INITIALIZE_PARAMS_VER: u32 = nvencapi_struct_version(6) | (1 << 31);
/// `NV_ENC_CONFIG_VER`.
pub const NV_ENC_CONFIG_VER: u32 = nvencapi_struct_version(8) | (1 << 31);
/// `NV_ENC_RC_PARAMS_VER`.
pub const NV_ENC_RC_PARAMS_VER: u32 = nvencapi_struct_version(1);
/// `NV_ENC_PRESET_CONFIG_VER`.
pub const NV_ENC_PRESET_CONFIG_VER: u32 = nvencapi_struct_version(4) | (1 << 31);
/// `NV_ENC_CREATE_INPUT_BUFFER_VER`.
pub const NV_ENC_CREATE_INPUT_BUFFER_VER: u32 = nvencapi_struct_version(1);
/// `NV_ENC_LOCK_INPUT_BUFFER_VER`.
pub const NV_ENC_LOCK_INPUT_BUFFER_VER: u32 = nvencapi_struct_version(1);
/// `NV_ENC_CREATE_BITSTREAM_BUFFER_VER`.
pub const NV_ENC_CREATE_BITSTREAM_BUFFER_VER: u32 = nvencapi_struct_version(1);
/// `NV_ENC_REGISTER_RESOURCE_VER`.
pub const NV_ENC_REGISTER_RESOURCE_VER: u32 = nvencapi_struct_version(4);
/// `NV_ENC_MAP_INPUT_RESOURCE_VER`.
pub const NV_ENC_MAP_INPUT_RESOURCE_VER: u32 = nvencapi_struct_version(4);
/// `NV_ENC_PIC_PARAMS_VER`.
pub const NV_ENC_PIC_PARAMS_VER: u32 = nvencapi_struct_version(6) | (1 << 31);
/// `NV_ENC_LOCK_BITSTREAM_VER`.
pub const NV_ENC_LOCK_BITSTREAM_VER: u32 = nvencapi_struct_version(1) | (1 << 31);
/// `NV_ENC_RECONFIGURE_PARAMS_VER`.
pub const NV_ENC_RECONFIGURE_PARAMS_VER: u32 = nvencapi_struct_version(1) | (1 << 31);

/// `NVENC_INFINITE_GOPLENGTH`: no periodic I/IDR pictures.
pub const NVENC_INFINITE_GOPLENGTH: u32 = 0xffff_ffff;

// ---------------------------------------------------------------------------------------------
// GUID

/// The header's `GUID` (the Windows layout).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GUID {
    /// First 8 hex digits.
    pub Data1: u32,
    /// Next 4 hex digits.
    pub Data2: u16,
    /// Next 4 hex digits.
    pub Data3: u16,
    /// The last 16 hex digits, as bytes.
    pub Data4: [u8; 8],
}

impl GUID {
    /// A GUID from its parts, as the header writes them.
    pub const fn new(data1: u32, data2: u16, data3: u16, data4: [u8; 8]) -> Self {
        GUID { Data1: data1, Data2: data2, Data3: data3, Data4: data4 }
    }
}

impl fmt::Display for GUID {
    /// The registry form, `6BC82762-4E63-4CA4-AA85-1E50F321F6BF`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.Data4;
        write!(
            f,
            "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
            self.Data1, self.Data2, self.Data3, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
        )
    }
}

impl fmt::Debug for GUID {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GUID({self})")
    }
}

/// `NV_ENC_CODEC_H264_GUID` {6BC82762-4E63-4CA4-AA85-1E50F321F6BF}.
pub const NV_ENC_CODEC_H264_GUID: GUID =
    GUID::new(0x6bc82762, 0x4e63, 0x4ca4, [0xaa, 0x85, 0x1e, 0x50, 0xf3, 0x21, 0xf6, 0xbf]);

/// `NV_ENC_CODEC_PROFILE_AUTOSELECT_GUID` {BFD6F8E7-233C-4341-8B3E-4818523803F4}.
pub const NV_ENC_CODEC_PROFILE_AUTOSELECT_GUID: GUID =
    GUID::new(0xbfd6f8e7, 0x233c, 0x4341, [0x8b, 0x3e, 0x48, 0x18, 0x52, 0x38, 0x03, 0xf4]);
/// `NV_ENC_H264_PROFILE_BASELINE_GUID` {0727BCAA-78C4-4C83-8C2F-EF3DFF267C6A}.
pub const NV_ENC_H264_PROFILE_BASELINE_GUID: GUID =
    GUID::new(0x0727bcaa, 0x78c4, 0x4c83, [0x8c, 0x2f, 0xef, 0x3d, 0xff, 0x26, 0x7c, 0x6a]);
/// `NV_ENC_H264_PROFILE_MAIN_GUID` {60B5C1D4-67FE-4790-94D5-C4726D7B6E6D}.
pub const NV_ENC_H264_PROFILE_MAIN_GUID: GUID =
    GUID::new(0x60b5c1d4, 0x67fe, 0x4790, [0x94, 0xd5, 0xc4, 0x72, 0x6d, 0x7b, 0x6e, 0x6d]);
/// `NV_ENC_H264_PROFILE_HIGH_GUID` {E7CBC309-4F7A-4B89-AF2A-D537C92BE310}.
pub const NV_ENC_H264_PROFILE_HIGH_GUID: GUID =
    GUID::new(0xe7cbc309, 0x4f7a, 0x4b89, [0xaf, 0x2a, 0xd5, 0x37, 0xc9, 0x2b, 0xe3, 0x10]);
/// `NV_ENC_H264_PROFILE_CONSTRAINED_HIGH_GUID` {AEC1BD87-E85B-48F2-84C3-98BCA6285072}.
pub const NV_ENC_H264_PROFILE_CONSTRAINED_HIGH_GUID: GUID =
    GUID::new(0xaec1bd87, 0xe85b, 0x48f2, [0x84, 0xc3, 0x98, 0xbc, 0xa6, 0x28, 0x50, 0x72]);

/// `NV_ENC_PRESET_P1_GUID` {FC0A8D3E-45F8-4CF8-80C7-298871590EBF}: fastest.
pub const NV_ENC_PRESET_P1_GUID: GUID =
    GUID::new(0xfc0a8d3e, 0x45f8, 0x4cf8, [0x80, 0xc7, 0x29, 0x88, 0x71, 0x59, 0x0e, 0xbf]);
/// `NV_ENC_PRESET_P2_GUID` {F581CFB8-88D6-4381-93F0-DF13F9C27DAB}.
pub const NV_ENC_PRESET_P2_GUID: GUID =
    GUID::new(0xf581cfb8, 0x88d6, 0x4381, [0x93, 0xf0, 0xdf, 0x13, 0xf9, 0xc2, 0x7d, 0xab]);
/// `NV_ENC_PRESET_P3_GUID` {36850110-3A07-441F-94D5-3670631F91F6}.
pub const NV_ENC_PRESET_P3_GUID: GUID =
    GUID::new(0x36850110, 0x3a07, 0x441f, [0x94, 0xd5, 0x36, 0x70, 0x63, 0x1f, 0x91, 0xf6]);
/// `NV_ENC_PRESET_P4_GUID` {90A7B826-DF06-4862-B9D2-CD6D73A08681}.
pub const NV_ENC_PRESET_P4_GUID: GUID =
    GUID::new(0x90a7b826, 0xdf06, 0x4862, [0xb9, 0xd2, 0xcd, 0x6d, 0x73, 0xa0, 0x86, 0x81]);
/// `NV_ENC_PRESET_P5_GUID` {21C6E6B4-297A-4CBA-998F-B6CBDE72ADE3}.
pub const NV_ENC_PRESET_P5_GUID: GUID =
    GUID::new(0x21c6e6b4, 0x297a, 0x4cba, [0x99, 0x8f, 0xb6, 0xcb, 0xde, 0x72, 0xad, 0xe3]);
/// `NV_ENC_PRESET_P6_GUID` {8E75C279-6299-4AB6-8302-0B215A335CF5}.
pub const NV_ENC_PRESET_P6_GUID: GUID =
    GUID::new(0x8e75c279, 0x6299, 0x4ab6, [0x83, 0x02, 0x0b, 0x21, 0x5a, 0x33, 0x5c, 0xf5]);
/// `NV_ENC_PRESET_P7_GUID` {84848C12-6F71-4C13-931B-53E283F57974}: slowest, best quality.
pub const NV_ENC_PRESET_P7_GUID: GUID =
    GUID::new(0x84848c12, 0x6f71, 0x4c13, [0x93, 0x1b, 0x53, 0xe2, 0x83, 0xf5, 0x79, 0x74]);

// ---------------------------------------------------------------------------------------------
// Enums (C enums are 4 bytes: plain u32 values here)

/// `NVENCSTATUS`: what every API function returns.
pub type NVENCSTATUS = u32;
/// No error.
pub const NV_ENC_SUCCESS: NVENCSTATUS = 0;
/// No encode-capable device was found.
pub const NV_ENC_ERR_NO_ENCODE_DEVICE: NVENCSTATUS = 1;
/// The device passed is not supported.
pub const NV_ENC_ERR_UNSUPPORTED_DEVICE: NVENCSTATUS = 2;
/// The encoder device passed is not valid.
pub const NV_ENC_ERR_INVALID_ENCODERDEVICE: NVENCSTATUS = 3;
/// The device passed is invalid.
pub const NV_ENC_ERR_INVALID_DEVICE: NVENCSTATUS = 4;
/// The device is gone: destroy the session and make a new one (device lost).
pub const NV_ENC_ERR_DEVICE_NOT_EXIST: NVENCSTATUS = 5;
/// A pointer passed is invalid.
pub const NV_ENC_ERR_INVALID_PTR: NVENCSTATUS = 6;
/// A completion event is invalid.
pub const NV_ENC_ERR_INVALID_EVENT: NVENCSTATUS = 7;
/// A parameter is invalid.
pub const NV_ENC_ERR_INVALID_PARAM: NVENCSTATUS = 8;
/// Calls were made in the wrong order.
pub const NV_ENC_ERR_INVALID_CALL: NVENCSTATUS = 9;
/// Out of memory; at session open, also what the driver returns when no session is left.
pub const NV_ENC_ERR_OUT_OF_MEMORY: NVENCSTATUS = 10;
/// The encoder was not initialised.
pub const NV_ENC_ERR_ENCODER_NOT_INITIALIZED: NVENCSTATUS = 11;
/// A parameter is not supported.
pub const NV_ENC_ERR_UNSUPPORTED_PARAM: NVENCSTATUS = 12;
/// A non-blocking lock found the buffer busy.
pub const NV_ENC_ERR_LOCK_BUSY: NVENCSTATUS = 13;
/// A buffer is too small.
pub const NV_ENC_ERR_NOT_ENOUGH_BUFFER: NVENCSTATUS = 14;
/// A struct version is wrong.
pub const NV_ENC_ERR_INVALID_VERSION: NVENCSTATUS = 15;
/// Mapping an input resource failed.
pub const NV_ENC_ERR_MAP_FAILED: NVENCSTATUS = 16;
/// The encoder buffers this input (B-frames): feed more before locking output.
pub const NV_ENC_ERR_NEED_MORE_INPUT: NVENCSTATUS = 17;
/// The encoder is busy: retry.
pub const NV_ENC_ERR_ENCODER_BUSY: NVENCSTATUS = 18;
/// The completion event was not registered.
pub const NV_ENC_ERR_EVENT_NOT_REGISTERD: NVENCSTATUS = 19;
/// An unknown internal error.
pub const NV_ENC_ERR_GENERIC: NVENCSTATUS = 20;
/// The feature is not available for this license.
pub const NV_ENC_ERR_INCOMPATIBLE_CLIENT_KEY: NVENCSTATUS = 21;
/// The feature is not implemented.
pub const NV_ENC_ERR_UNIMPLEMENTED: NVENCSTATUS = 22;
/// Registering a resource failed.
pub const NV_ENC_ERR_RESOURCE_REGISTER_FAILED: NVENCSTATUS = 23;
/// The resource is not registered.
pub const NV_ENC_ERR_RESOURCE_NOT_REGISTERED: NVENCSTATUS = 24;
/// The resource is not mapped.
pub const NV_ENC_ERR_RESOURCE_NOT_MAPPED: NVENCSTATUS = 25;
/// More output buffers are needed.
pub const NV_ENC_ERR_NEED_MORE_OUTPUT: NVENCSTATUS = 26;

/// The header's name of a status code (`NV_ENC_ERR_...`), or `None` for an unknown one.
pub fn status_name(status: NVENCSTATUS) -> Option<&'static str> {
    const NAMES: [&str; 27] = [
        "NV_ENC_SUCCESS",
        "NV_ENC_ERR_NO_ENCODE_DEVICE",
        "NV_ENC_ERR_UNSUPPORTED_DEVICE",
        "NV_ENC_ERR_INVALID_ENCODERDEVICE",
        "NV_ENC_ERR_INVALID_DEVICE",
        "NV_ENC_ERR_DEVICE_NOT_EXIST",
        "NV_ENC_ERR_INVALID_PTR",
        "NV_ENC_ERR_INVALID_EVENT",
        "NV_ENC_ERR_INVALID_PARAM",
        "NV_ENC_ERR_INVALID_CALL",
        "NV_ENC_ERR_OUT_OF_MEMORY",
        "NV_ENC_ERR_ENCODER_NOT_INITIALIZED",
        "NV_ENC_ERR_UNSUPPORTED_PARAM",
        "NV_ENC_ERR_LOCK_BUSY",
        "NV_ENC_ERR_NOT_ENOUGH_BUFFER",
        "NV_ENC_ERR_INVALID_VERSION",
        "NV_ENC_ERR_MAP_FAILED",
        "NV_ENC_ERR_NEED_MORE_INPUT",
        "NV_ENC_ERR_ENCODER_BUSY",
        "NV_ENC_ERR_EVENT_NOT_REGISTERD",
        "NV_ENC_ERR_GENERIC",
        "NV_ENC_ERR_INCOMPATIBLE_CLIENT_KEY",
        "NV_ENC_ERR_UNIMPLEMENTED",
        "NV_ENC_ERR_RESOURCE_REGISTER_FAILED",
        "NV_ENC_ERR_RESOURCE_NOT_REGISTERED",
        "NV_ENC_ERR_RESOURCE_NOT_MAPPED",
        "NV_ENC_ERR_NEED_MORE_OUTPUT",
    ];
    NAMES.get(status as usize).copied()
}

/// `NV_ENC_PARAMS_RC_MODE`.
pub type NV_ENC_PARAMS_RC_MODE = u32;
/// Constant QP.
pub const NV_ENC_PARAMS_RC_CONSTQP: NV_ENC_PARAMS_RC_MODE = 0;
/// Variable bitrate.
pub const NV_ENC_PARAMS_RC_VBR: NV_ENC_PARAMS_RC_MODE = 1;
/// Constant bitrate.
pub const NV_ENC_PARAMS_RC_CBR: NV_ENC_PARAMS_RC_MODE = 2;

/// `NV_ENC_TUNING_INFO`.
pub type NV_ENC_TUNING_INFO = u32;
/// Undefined (invalid for encoding).
pub const NV_ENC_TUNING_INFO_UNDEFINED: NV_ENC_TUNING_INFO = 0;
/// Latency-tolerant encoding.
pub const NV_ENC_TUNING_INFO_HIGH_QUALITY: NV_ENC_TUNING_INFO = 1;
/// Low-latency streaming.
pub const NV_ENC_TUNING_INFO_LOW_LATENCY: NV_ENC_TUNING_INFO = 2;
/// Ultra-low-latency streaming.
pub const NV_ENC_TUNING_INFO_ULTRA_LOW_LATENCY: NV_ENC_TUNING_INFO = 3;
/// Lossless encoding.
pub const NV_ENC_TUNING_INFO_LOSSLESS: NV_ENC_TUNING_INFO = 4;

/// `NV_ENC_PIC_STRUCT`.
pub type NV_ENC_PIC_STRUCT = u32;
/// A progressive frame.
pub const NV_ENC_PIC_STRUCT_FRAME: NV_ENC_PIC_STRUCT = 1;

/// `NV_ENC_PIC_TYPE`.
pub type NV_ENC_PIC_TYPE = u32;
/// Forward predicted.
pub const NV_ENC_PIC_TYPE_P: NV_ENC_PIC_TYPE = 0;
/// Bi-directionally predicted.
pub const NV_ENC_PIC_TYPE_B: NV_ENC_PIC_TYPE = 1;
/// Intra (not IDR).
pub const NV_ENC_PIC_TYPE_I: NV_ENC_PIC_TYPE = 2;
/// IDR: a decoder can start here.
pub const NV_ENC_PIC_TYPE_IDR: NV_ENC_PIC_TYPE = 3;
/// Skipped.
pub const NV_ENC_PIC_TYPE_SKIPPED: NV_ENC_PIC_TYPE = 5;
/// Unknown.
pub const NV_ENC_PIC_TYPE_UNKNOWN: NV_ENC_PIC_TYPE = 0xff;

/// `NV_ENC_BUFFER_FORMAT`.
pub type NV_ENC_BUFFER_FORMAT = u32;
/// Undefined.
pub const NV_ENC_BUFFER_FORMAT_UNDEFINED: NV_ENC_BUFFER_FORMAT = 0;
/// NV12: the Y plane, then interleaved U and V at half resolution.
pub const NV_ENC_BUFFER_FORMAT_NV12: NV_ENC_BUFFER_FORMAT = 0x1;
/// YV12: Y, then V, then U.
pub const NV_ENC_BUFFER_FORMAT_YV12: NV_ENC_BUFFER_FORMAT = 0x10;
/// IYUV (I420): Y, then U, then V.
pub const NV_ENC_BUFFER_FORMAT_IYUV: NV_ENC_BUFFER_FORMAT = 0x100;

/// `NV_ENC_LEVEL` (only the value we use).
pub type NV_ENC_LEVEL = u32;
/// The driver picks the level.
pub const NV_ENC_LEVEL_AUTOSELECT: NV_ENC_LEVEL = 0;
/// H264 level 3.1 (what `profile-level-id=42e01f` names).
pub const NV_ENC_LEVEL_H264_31: NV_ENC_LEVEL = 31;

/// `NV_ENC_PIC_FLAGS` bits of [`NV_ENC_PIC_PARAMS::encodePicFlags`].
pub type NV_ENC_PIC_FLAGS = u32;
/// Encode this picture as an intra picture.
pub const NV_ENC_PIC_FLAG_FORCEINTRA: NV_ENC_PIC_FLAGS = 0x1;
/// Encode this picture as an IDR (needs `enablePTD = 1`).
pub const NV_ENC_PIC_FLAG_FORCEIDR: NV_ENC_PIC_FLAGS = 0x2;
/// Write SPS and PPS before this picture.
pub const NV_ENC_PIC_FLAG_OUTPUT_SPSPPS: NV_ENC_PIC_FLAGS = 0x4;
/// End of the input stream.
pub const NV_ENC_PIC_FLAG_EOS: NV_ENC_PIC_FLAGS = 0x8;

/// `NV_ENC_MEMORY_HEAP` (deprecated; leave 0).
pub type NV_ENC_MEMORY_HEAP = u32;

/// `NV_ENC_H264_ENTROPY_CODING_MODE`.
pub type NV_ENC_H264_ENTROPY_CODING_MODE = u32;
/// The driver picks.
pub const NV_ENC_H264_ENTROPY_CODING_MODE_AUTOSELECT: NV_ENC_H264_ENTROPY_CODING_MODE = 0;
/// CABAC (not in baseline profile).
pub const NV_ENC_H264_ENTROPY_CODING_MODE_CABAC: NV_ENC_H264_ENTROPY_CODING_MODE = 1;
/// CAVLC (what baseline profile uses).
pub const NV_ENC_H264_ENTROPY_CODING_MODE_CAVLC: NV_ENC_H264_ENTROPY_CODING_MODE = 2;

/// `NV_ENC_INPUT_RESOURCE_TYPE`.
pub type NV_ENC_INPUT_RESOURCE_TYPE = u32;
/// A CUDA device pointer (`CUdeviceptr`).
pub const NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR: NV_ENC_INPUT_RESOURCE_TYPE = 1;
/// A CUDA array.
pub const NV_ENC_INPUT_RESOURCE_TYPE_CUDAARRAY: NV_ENC_INPUT_RESOURCE_TYPE = 2;

/// `NV_ENC_BUFFER_USAGE`.
pub type NV_ENC_BUFFER_USAGE = u32;
/// A registered resource used as input picture.
pub const NV_ENC_INPUT_IMAGE: NV_ENC_BUFFER_USAGE = 0;

/// `NV_ENC_DEVICE_TYPE`.
pub type NV_ENC_DEVICE_TYPE = u32;
/// The device is a CUDA context (`CUcontext`).
pub const NV_ENC_DEVICE_TYPE_CUDA: NV_ENC_DEVICE_TYPE = 1;

/// `NV_ENC_INPUT_PTR`: an input buffer (or mapped resource) handle.
pub type NV_ENC_INPUT_PTR = *mut c_void;
/// `NV_ENC_OUTPUT_PTR`: a bitstream buffer handle.
pub type NV_ENC_OUTPUT_PTR = *mut c_void;
/// `NV_ENC_REGISTERED_PTR`: a registered resource handle.
pub type NV_ENC_REGISTERED_PTR = *mut c_void;

// ---------------------------------------------------------------------------------------------
// Zeroed construction

/// Implements `Default` as all-zero bytes, setting `version` where given.
macro_rules! zeroed_default {
    ($($ty:ident $(=> $version:expr)?),* $(,)?) => {$(
        impl Default for $ty {
            fn default() -> Self {
                // SAFETY: every field of this struct (integers, raw pointers, `Option` of
                // function pointers, GUIDs, arrays and unions of those) is valid as all-zero
                // bytes, which is also what the API asks reserved fields to be.
                #[allow(unused_mut)]
                let mut value: Self = unsafe { std::mem::zeroed() };
                $(value.version = $version;)?
                value
            }
        }
    )*};
}

/// Implements a `Debug` that names the struct only (its reserved arrays make the derive useless).
macro_rules! opaque_debug {
    ($($ty:ident),* $(,)?) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($ty), " { .. }"))
            }
        }
    )*};
}

// ---------------------------------------------------------------------------------------------
// Structs

/// `NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS`: opens a session on a device.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS {
    /// [`NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER`].
    pub version: u32,
    /// [`NV_ENC_DEVICE_TYPE_CUDA`].
    pub deviceType: NV_ENC_DEVICE_TYPE,
    /// The device: a `CUcontext` for CUDA.
    pub device: *mut c_void,
    reserved: *mut c_void,
    /// [`NVENCAPI_VERSION`].
    pub apiVersion: u32,
    reserved1: [u32; 253],
    reserved2: [*mut c_void; 64],
}

/// `NV_ENC_QP`: a QP per picture type.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NV_ENC_QP {
    /// P pictures.
    pub qpInterP: u32,
    /// B pictures.
    pub qpInterB: u32,
    /// Intra pictures.
    pub qpIntra: u32,
}

/// `NV_ENC_RC_PARAMS`: rate control.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NV_ENC_RC_PARAMS {
    /// [`NV_ENC_RC_PARAMS_VER`].
    pub version: u32,
    /// [`NV_ENC_PARAMS_RC_CBR`], ...
    pub rateControlMode: NV_ENC_PARAMS_RC_MODE,
    /// Initial / constant QP.
    pub constQP: NV_ENC_QP,
    /// Average bitrate in bits per second.
    pub averageBitRate: u32,
    /// Peak bitrate (VBR; ignored for CBR).
    pub maxBitRate: u32,
    /// VBV (HRD) buffer size in bits; 0 for the default.
    pub vbvBufferSize: u32,
    /// VBV initial delay in bits; 0 for the default.
    pub vbvInitialDelay: u32,
    /// The bitfields `enableMinQP` ... `enableExtLookahead` (`RC_*` masks).
    pub flags: u32,
    /// Minimum QP (with `enableMinQP`).
    pub minQP: NV_ENC_QP,
    /// Maximum QP (with `enableMaxQP`).
    pub maxQP: NV_ENC_QP,
    /// Initial QP hint (with `enableInitialRCQP`).
    pub initialRCQP: NV_ENC_QP,
    /// Temporal layers whose QP changed (constant QP).
    pub temporallayerIdxMask: u32,
    /// Temporal layer QPs (constant QP).
    pub temporalLayerQP: [u8; 8],
    /// Target constant-quality level (VBR).
    pub targetQuality: u8,
    /// Fractional part of `targetQuality`.
    pub targetQualityLSB: u8,
    /// Lookahead depth.
    pub lookaheadDepth: u16,
    /// I/P bit ratio with single-frame VBV.
    pub lowDelayKeyFrameScale: u8,
    /// AV1 `deltaQ_y_dc`.
    pub yDcQPIndexOffset: i8,
    /// AV1 `deltaQ_u_dc`.
    pub uDcQPIndexOffset: i8,
    /// AV1 `deltaQ_v_dc`.
    pub vDcQPIndexOffset: i8,
    /// `NV_ENC_QP_MAP_MODE`.
    pub qpMapMode: u32,
    /// `NV_ENC_MULTI_PASS`.
    pub multiPass: u32,
    /// Base/alpha layer bitrate ratio.
    pub alphaLayerBitrateRatio: u32,
    /// H264 `chroma_qp_index_offset`.
    pub cbQPIndexOffset: i8,
    /// H264 `second_chroma_qp_index_offset`.
    pub crQPIndexOffset: i8,
    reserved2: u16,
    reserved: [u32; 4],
}

/// `NV_ENC_RC_PARAMS::enableAQ`.
pub const RC_ENABLE_AQ: u32 = 1 << 3;
/// `NV_ENC_RC_PARAMS::enableLookahead`.
pub const RC_ENABLE_LOOKAHEAD: u32 = 1 << 5;
/// `NV_ENC_RC_PARAMS::zeroReorderDelay`.
pub const RC_ZERO_REORDER_DELAY: u32 = 1 << 9;
/// `NV_ENC_RC_PARAMS::enableNonRefP`.
pub const RC_ENABLE_NON_REF_P: u32 = 1 << 10;

/// `NV_ENC_CONFIG_H264_VUI_PARAMETERS`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NV_ENC_CONFIG_H264_VUI_PARAMETERS {
    /// `overscan_info_present_flag`.
    pub overscanInfoPresentFlag: u32,
    /// `overscan_appropriate_flag`.
    pub overscanInfo: u32,
    /// `video_signal_type_present_flag`.
    pub videoSignalTypePresentFlag: u32,
    /// `video_format`.
    pub videoFormat: u32,
    /// `video_full_range_flag`.
    pub videoFullRangeFlag: u32,
    /// `colour_description_present_flag`.
    pub colourDescriptionPresentFlag: u32,
    /// `colour_primaries`.
    pub colourPrimaries: u32,
    /// `transfer_characteristics`.
    pub transferCharacteristics: u32,
    /// `matrix_coefficients`.
    pub colourMatrix: u32,
    /// `chroma_loc_info_present_flag`.
    pub chromaSampleLocationFlag: u32,
    /// `chroma_sample_loc_type_top_field`.
    pub chromaSampleLocationTop: u32,
    /// `chroma_sample_loc_type_bottom_field`.
    pub chromaSampleLocationBot: u32,
    /// `bitstream_restriction_flag`.
    pub bitstreamRestrictionFlag: u32,
    /// `timing_info_present_flag`.
    pub timingInfoPresentFlag: u32,
    /// `num_units_in_tick`.
    pub numUnitInTicks: u32,
    /// `time_scale`.
    pub timeScale: u32,
    reserved: [u32; 12],
}

/// `NV_ENC_CONFIG_H264`: H264 settings.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NV_ENC_CONFIG_H264 {
    /// The bitfields `enableTemporalSVC` ... `enableTimeCode` (`H264_*` masks; see
    /// [`NV_ENC_CONFIG_H264::flag`]).
    pub flags: u32,
    /// [`NV_ENC_LEVEL`].
    pub level: NV_ENC_LEVEL,
    /// Pictures between IDRs ([`NVENC_INFINITE_GOPLENGTH`]: none).
    pub idrPeriod: u32,
    /// 4:4:4 separate colour planes.
    pub separateColourPlaneFlag: u32,
    /// `disable_deblocking_filter_idc`.
    pub disableDeblockingFilterIDC: u32,
    /// Temporal layers.
    pub numTemporalLayers: u32,
    /// SPS id.
    pub spsId: u32,
    /// PPS id.
    pub ppsId: u32,
    /// `NV_ENC_H264_ADAPTIVE_TRANSFORM_MODE`.
    pub adaptiveTransformMode: u32,
    /// `NV_ENC_H264_FMO_MODE`.
    pub fmoMode: u32,
    /// `NV_ENC_H264_BDIRECT_MODE`.
    pub bdirectMode: u32,
    /// [`NV_ENC_H264_ENTROPY_CODING_MODE`].
    pub entropyCodingMode: NV_ENC_H264_ENTROPY_CODING_MODE,
    /// `NV_ENC_STEREO_PACKING_MODE`.
    pub stereoMode: u32,
    /// Intra refresh period.
    pub intraRefreshPeriod: u32,
    /// Intra refresh length in pictures.
    pub intraRefreshCnt: u32,
    /// DPB size (0: driver default).
    pub maxNumRefFrames: u32,
    /// Slice mode (with `sliceModeData`).
    pub sliceMode: u32,
    /// Slice mode parameter.
    pub sliceModeData: u32,
    /// VUI.
    pub h264VUIParameters: NV_ENC_CONFIG_H264_VUI_PARAMETERS,
    /// LTR frames.
    pub ltrNumFrames: u32,
    /// LTR trust mode.
    pub ltrTrustMode: u32,
    /// 1 for 4:2:0, 3 for 4:4:4.
    pub chromaFormatIDC: u32,
    /// Max temporal layers.
    pub maxTemporalLayers: u32,
    /// `NV_ENC_BFRAME_REF_MODE`.
    pub useBFramesAsRef: u32,
    /// `NV_ENC_NUM_REF_FRAMES` for L0.
    pub numRefL0: u32,
    /// `NV_ENC_NUM_REF_FRAMES` for L1.
    pub numRefL1: u32,
    reserved1: [u32; 267],
    reserved2: [*mut c_void; 64],
}

/// `NV_ENC_CONFIG_H264::outputAUD`.
pub const H264_OUTPUT_AUD: u32 = 1 << 6;
/// `NV_ENC_CONFIG_H264::disableSPSPPS`.
pub const H264_DISABLE_SPSPPS: u32 = 1 << 7;
/// `NV_ENC_CONFIG_H264::enableIntraRefresh`.
pub const H264_ENABLE_INTRA_REFRESH: u32 = 1 << 10;
/// `NV_ENC_CONFIG_H264::repeatSPSPPS`: SPS and PPS before every IDR.
pub const H264_REPEAT_SPSPPS: u32 = 1 << 12;
/// `NV_ENC_CONFIG_H264::enableLTR`.
pub const H264_ENABLE_LTR: u32 = 1 << 14;
/// `NV_ENC_CONFIG_H264::enableFillerDataInsertion`.
pub const H264_ENABLE_FILLER_DATA: u32 = 1 << 17;

impl NV_ENC_CONFIG_H264 {
    /// Whether the bitfield `mask` (one of the `H264_*` constants) is set.
    pub fn flag(&self, mask: u32) -> bool {
        self.flags & mask != 0
    }

    /// Sets or clears the bitfield `mask`.
    pub fn set_flag(&mut self, mask: u32, on: bool) {
        if on {
            self.flags |= mask;
        } else {
            self.flags &= !mask;
        }
    }
}

/// `NV_ENC_CODEC_CONFIG`: the codec's settings. Only the H264 member is declared; the union
/// is as large as its largest member, `NV_ENC_CONFIG_H264` (HEVC's is 1560 bytes, AV1's
/// 1552, the reserved array 1280).
#[repr(C)]
#[derive(Clone, Copy)]
pub union NV_ENC_CODEC_CONFIG {
    /// H264.
    pub h264Config: NV_ENC_CONFIG_H264,
    reserved: [u32; 320],
}

impl NV_ENC_CODEC_CONFIG {
    /// The H264 member.
    pub fn h264(&self) -> &NV_ENC_CONFIG_H264 {
        // SAFETY: the H264 member spans the whole union and every bit pattern is a valid
        // NV_ENC_CONFIG_H264 (integers and raw pointers only).
        unsafe { &self.h264Config }
    }

    /// The H264 member, writable.
    pub fn h264_mut(&mut self) -> &mut NV_ENC_CONFIG_H264 {
        // SAFETY: as in `h264`.
        unsafe { &mut self.h264Config }
    }
}

impl fmt::Debug for NV_ENC_CONFIG_H264 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NV_ENC_CONFIG_H264")
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("level", &self.level)
            .field("idrPeriod", &self.idrPeriod)
            .field("entropyCodingMode", &self.entropyCodingMode)
            .field("maxNumRefFrames", &self.maxNumRefFrames)
            .field("sliceMode", &self.sliceMode)
            .field("sliceModeData", &self.sliceModeData)
            .field("chromaFormatIDC", &self.chromaFormatIDC)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for NV_ENC_CONFIG {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NV_ENC_CONFIG")
            .field("version", &format_args!("{:#x}", self.version))
            .field("profileGUID", &self.profileGUID)
            .field("gopLength", &self.gopLength)
            .field("frameIntervalP", &self.frameIntervalP)
            .field("rcParams", &self.rcParams)
            .field("encodeCodecConfig", &self.encodeCodecConfig)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for NV_ENC_CODEC_CONFIG {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NV_ENC_CODEC_CONFIG").field("h264Config", self.h264()).finish()
    }
}

/// `NV_ENC_CONFIG`: the encoder's settings.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NV_ENC_CONFIG {
    /// [`NV_ENC_CONFIG_VER`].
    pub version: u32,
    /// Codec profile (`NV_ENC_H264_PROFILE_*_GUID`).
    pub profileGUID: GUID,
    /// Pictures per GOP ([`NVENC_INFINITE_GOPLENGTH`]: one GOP).
    pub gopLength: u32,
    /// 1: IPP (no B-frames), 2: IBP, ...
    pub frameIntervalP: i32,
    /// Monochrome encoding.
    pub monoChromeEncoding: u32,
    /// `NV_ENC_PARAMS_FRAME_FIELD_MODE`.
    pub frameFieldMode: u32,
    /// `NV_ENC_MV_PRECISION`.
    pub mvPrecision: u32,
    /// Rate control.
    pub rcParams: NV_ENC_RC_PARAMS,
    /// Codec settings.
    pub encodeCodecConfig: NV_ENC_CODEC_CONFIG,
    reserved: [u32; 278],
    reserved2: [*mut c_void; 64],
}

/// `NV_ENC_PRESET_CONFIG`: what `nvEncGetEncodePresetConfigEx` fills.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NV_ENC_PRESET_CONFIG {
    /// [`NV_ENC_PRESET_CONFIG_VER`].
    pub version: u32,
    /// The preset's settings (set `presetCfg.version` to [`NV_ENC_CONFIG_VER`] first).
    pub presetCfg: NV_ENC_CONFIG,
    reserved1: [u32; 255],
    reserved2: [*mut c_void; 64],
}

/// `NV_ENC_INITIALIZE_PARAMS`: the session's settings.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NV_ENC_INITIALIZE_PARAMS {
    /// [`NV_ENC_INITIALIZE_PARAMS_VER`].
    pub version: u32,
    /// [`NV_ENC_CODEC_H264_GUID`].
    pub encodeGUID: GUID,
    /// `NV_ENC_PRESET_P*_GUID`.
    pub presetGUID: GUID,
    /// Encoded width.
    pub encodeWidth: u32,
    /// Encoded height.
    pub encodeHeight: u32,
    /// Display aspect ratio width.
    pub darWidth: u32,
    /// Display aspect ratio height.
    pub darHeight: u32,
    /// Frame rate numerator.
    pub frameRateNum: u32,
    /// Frame rate denominator.
    pub frameRateDen: u32,
    /// 1 for asynchronous mode (Windows only); 0 on Linux.
    pub enableEncodeAsync: u32,
    /// 1: the encoder decides picture types.
    pub enablePTD: u32,
    /// The bitfields `reportSliceOffsets` ... `enableOutputStats`.
    pub flags: u32,
    /// Must be 0.
    pub privDataSize: u32,
    /// Must be null.
    pub privData: *mut c_void,
    /// The encoder settings (from the preset config, then changed).
    pub encodeConfig: *mut NV_ENC_CONFIG,
    /// Largest width this session may be reconfigured to.
    pub maxEncodeWidth: u32,
    /// Largest height this session may be reconfigured to.
    pub maxEncodeHeight: u32,
    /// `NVENC_EXTERNAL_ME_HINT_COUNTS_PER_BLOCKTYPE[2]` (unused).
    pub maxMEHintCountsPerBlock: [[u32; 4]; 2],
    /// [`NV_ENC_TUNING_INFO`].
    pub tuningInfo: NV_ENC_TUNING_INFO,
    /// Input format (D3D12 only).
    pub bufferFormat: NV_ENC_BUFFER_FORMAT,
    /// State buffers.
    pub numStateBuffers: u32,
    /// `NV_ENC_OUTPUT_STATS_LEVEL`.
    pub outputStatsLevel: u32,
    reserved: [u32; 285],
    reserved2: [*mut c_void; 64],
}

/// `NV_ENC_RECONFIGURE_PARAMS`: changes a running session.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NV_ENC_RECONFIGURE_PARAMS {
    /// [`NV_ENC_RECONFIGURE_PARAMS_VER`].
    pub version: u32,
    /// The new session settings.
    pub reInitEncodeParams: NV_ENC_INITIALIZE_PARAMS,
    /// The bitfields `resetEncoder` (bit 0) and `forceIDR` (bit 1).
    pub flags: u32,
}

/// `NV_ENC_RECONFIGURE_PARAMS::resetEncoder`.
pub const RECONFIGURE_RESET_ENCODER: u32 = 1 << 0;
/// `NV_ENC_RECONFIGURE_PARAMS::forceIDR`.
pub const RECONFIGURE_FORCE_IDR: u32 = 1 << 1;

/// `NV_ENC_CREATE_INPUT_BUFFER`: a host input buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NV_ENC_CREATE_INPUT_BUFFER {
    /// [`NV_ENC_CREATE_INPUT_BUFFER_VER`].
    pub version: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Deprecated: 0.
    pub memoryHeap: NV_ENC_MEMORY_HEAP,
    /// [`NV_ENC_BUFFER_FORMAT_NV12`].
    pub bufferFmt: NV_ENC_BUFFER_FORMAT,
    reserved: u32,
    /// Out: the buffer.
    pub inputBuffer: NV_ENC_INPUT_PTR,
    /// An existing system-memory buffer (unused).
    pub pSysMemBuffer: *mut c_void,
    reserved1: [u32; 57],
    reserved2: [*mut c_void; 63],
}

/// `NV_ENC_LOCK_INPUT_BUFFER`: maps an input buffer for writing.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NV_ENC_LOCK_INPUT_BUFFER {
    /// [`NV_ENC_LOCK_INPUT_BUFFER_VER`].
    pub version: u32,
    /// The bitfield `doNotWait` (bit 0).
    pub flags: u32,
    /// The buffer to lock.
    pub inputBuffer: NV_ENC_INPUT_PTR,
    /// Out: where to write the picture.
    pub bufferDataPtr: *mut c_void,
    /// Out: bytes per row.
    pub pitch: u32,
    reserved1: [u32; 251],
    reserved2: [*mut c_void; 64],
}

/// `NV_ENC_CREATE_BITSTREAM_BUFFER`: an output buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NV_ENC_CREATE_BITSTREAM_BUFFER {
    /// [`NV_ENC_CREATE_BITSTREAM_BUFFER_VER`].
    pub version: u32,
    /// Deprecated: 0.
    pub size: u32,
    /// Deprecated: 0.
    pub memoryHeap: NV_ENC_MEMORY_HEAP,
    reserved: u32,
    /// Out: the buffer.
    pub bitstreamBuffer: NV_ENC_OUTPUT_PTR,
    /// Reserved output.
    pub bitstreamBufferPtr: *mut c_void,
    reserved1: [u32; 58],
    reserved2: [*mut c_void; 64],
}

/// `NV_ENC_REGISTER_RESOURCE`: registers a CUDA allocation as an input picture.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NV_ENC_REGISTER_RESOURCE {
    /// [`NV_ENC_REGISTER_RESOURCE_VER`].
    pub version: u32,
    /// [`NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR`].
    pub resourceType: NV_ENC_INPUT_RESOURCE_TYPE,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Bytes per row (a multiple of 4).
    pub pitch: u32,
    /// DirectX only: 0.
    pub subResourceIndex: u32,
    /// The resource: a `CUdeviceptr` value.
    pub resourceToRegister: *mut c_void,
    /// Out: the registered handle.
    pub registeredResource: NV_ENC_REGISTERED_PTR,
    /// [`NV_ENC_BUFFER_FORMAT_NV12`].
    pub bufferFormat: NV_ENC_BUFFER_FORMAT,
    /// [`NV_ENC_INPUT_IMAGE`].
    pub bufferUsage: NV_ENC_BUFFER_USAGE,
    /// D3D12 only: null.
    pub pInputFencePoint: *mut c_void,
    /// Out (reconstructed output with D3D11 only).
    pub chromaOffset: [u32; 2],
    reserved1: [u32; 245],
    reserved2: [*mut c_void; 61],
}

/// `NV_ENC_MAP_INPUT_RESOURCE`: maps a registered resource for one encode.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NV_ENC_MAP_INPUT_RESOURCE {
    /// [`NV_ENC_MAP_INPUT_RESOURCE_VER`].
    pub version: u32,
    /// Deprecated: 0.
    pub subResourceIndex: u32,
    /// Deprecated: null.
    pub inputResource: *mut c_void,
    /// The registered handle.
    pub registeredResource: NV_ENC_REGISTERED_PTR,
    /// Out: the input handle for [`NV_ENC_PIC_PARAMS::inputBuffer`].
    pub mappedResource: NV_ENC_INPUT_PTR,
    /// Out: the format for [`NV_ENC_PIC_PARAMS::bufferFmt`].
    pub mappedBufferFmt: NV_ENC_BUFFER_FORMAT,
    reserved1: [u32; 251],
    reserved2: [*mut c_void; 63],
}

/// `NV_ENC_TIME_CODE` (unused; for the layout of [`NV_ENC_PIC_PARAMS_H264`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NV_ENC_TIME_CODE {
    /// `NV_ENC_DISPLAY_PIC_STRUCT`.
    pub displayPicStruct: u32,
    /// `NV_ENC_CLOCK_TIMESTAMP_SET[3]`: a bitfield word and `timeOffset` each.
    pub clockTimestamp: [[u32; 2]; 3],
}

/// `NV_ENC_PIC_PARAMS_H264`: H264 per-picture settings.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NV_ENC_PIC_PARAMS_H264 {
    /// Display POC (without PTD).
    pub displayPOCSyntax: u32,
    reserved3: u32,
    /// Reference picture (without PTD).
    pub refPicFlag: u32,
    /// Colour plane id.
    pub colourPlaneId: u32,
    /// Forces an intra refresh of this many pictures.
    pub forceIntraRefreshWithFrameCnt: u32,
    /// The bitfields `constrainedFrame` ... `ltrUseFrames`.
    pub flags: u32,
    /// Deprecated.
    pub sliceTypeData: *mut u8,
    /// Deprecated.
    pub sliceTypeArrayCnt: u32,
    /// SEI payloads.
    pub seiPayloadArrayCnt: u32,
    /// `NV_ENC_SEI_PAYLOAD*`.
    pub seiPayloadArray: *mut c_void,
    /// Slice mode.
    pub sliceMode: u32,
    /// Slice mode parameter.
    pub sliceModeData: u32,
    /// LTR index to mark.
    pub ltrMarkFrameIdx: u32,
    /// LTR frames to use.
    pub ltrUseFrameBitmap: u32,
    /// Reserved: 0.
    pub ltrUsageMode: u32,
    /// Slices forced intra.
    pub forceIntraSliceCount: u32,
    /// Their indices.
    pub forceIntraSliceIdx: *mut u32,
    /// `NV_ENC_PIC_PARAMS_H264_EXT` (MVC; a 128-byte, 8-aligned union).
    pub h264ExtPicParams: [u64; 16],
    /// Picture timing SEI clock timestamps.
    pub timeCode: NV_ENC_TIME_CODE,
    reserved: [u32; 203],
    reserved2: [*mut c_void; 61],
}

/// `NV_ENC_CODEC_PIC_PARAMS`: the codec's per-picture settings. Only the H264 member is
/// declared; the union is 1552 bytes (its largest member is AV1's), hence the padding.
#[repr(C)]
#[derive(Clone, Copy)]
pub union NV_ENC_CODEC_PIC_PARAMS {
    /// H264.
    pub h264PicParams: NV_ENC_PIC_PARAMS_H264,
    padding: [u64; 194],
}

/// `NV_ENC_PIC_PARAMS`: one picture to encode.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NV_ENC_PIC_PARAMS {
    /// [`NV_ENC_PIC_PARAMS_VER`].
    pub version: u32,
    /// Input width.
    pub inputWidth: u32,
    /// Input height.
    pub inputHeight: u32,
    /// Input bytes per row.
    pub inputPitch: u32,
    /// [`NV_ENC_PIC_FLAGS`] bits.
    pub encodePicFlags: u32,
    /// Frame index (optional).
    pub frameIdx: u32,
    /// Opaque timestamp, returned with the output.
    pub inputTimeStamp: u64,
    /// Duration.
    pub inputDuration: u64,
    /// Input buffer or mapped resource.
    pub inputBuffer: NV_ENC_INPUT_PTR,
    /// Output bitstream buffer.
    pub outputBitstream: NV_ENC_OUTPUT_PTR,
    /// Completion event (async mode only).
    pub completionEvent: *mut c_void,
    /// Input format.
    pub bufferFmt: NV_ENC_BUFFER_FORMAT,
    /// [`NV_ENC_PIC_STRUCT_FRAME`].
    pub pictureStruct: NV_ENC_PIC_STRUCT,
    /// Picture type (without PTD).
    pub pictureType: NV_ENC_PIC_TYPE,
    /// Codec per-picture settings.
    pub codecPicParams: NV_ENC_CODEC_PIC_PARAMS,
    /// `NVENC_EXTERNAL_ME_HINT_COUNTS_PER_BLOCKTYPE[2]`.
    pub meHintCountsPerBlock: [[u32; 4]; 2],
    /// External ME hints.
    pub meExternalHints: *mut c_void,
    reserved1: [u32; 6],
    reserved2: [*mut c_void; 2],
    /// QP delta / emphasis map.
    pub qpDeltaMap: *mut i8,
    /// Its size.
    pub qpDeltaMapSize: u32,
    /// Reserved bitfields: 0.
    pub reservedBitFields: u32,
    /// ME hint reference distances.
    pub meHintRefPicDist: [u16; 2],
    /// Alpha input (HEVC).
    pub alphaBuffer: NV_ENC_INPUT_PTR,
    /// AV1 ME SB hints.
    pub meExternalSbHints: *mut c_void,
    /// Their count.
    pub meSbHintsCount: u32,
    /// State buffer index.
    pub stateBufferIdx: u32,
    /// Reconstructed output buffer.
    pub outputReconBuffer: NV_ENC_OUTPUT_PTR,
    reserved3: [u32; 284],
    reserved4: [*mut c_void; 57],
}

/// `NV_ENC_LOCK_BITSTREAM`: reads an encoded picture.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NV_ENC_LOCK_BITSTREAM {
    /// [`NV_ENC_LOCK_BITSTREAM_VER`].
    pub version: u32,
    /// The bitfields `doNotWait` (bit 0), `ltrFrame`, `getRCStats`.
    pub flags: u32,
    /// The bitstream buffer to lock.
    pub outputBitstream: NV_ENC_OUTPUT_PTR,
    /// Slice offsets (in/out).
    pub sliceOffsets: *mut u32,
    /// Out: frame index.
    pub frameIdx: u32,
    /// Out: status of the picture.
    pub hwEncodeStatus: u32,
    /// Out: slices.
    pub numSlices: u32,
    /// Out: bytes at `bitstreamBufferPtr`.
    pub bitstreamSizeInBytes: u32,
    /// Out: the input's timestamp.
    pub outputTimeStamp: u64,
    /// Out: duration.
    pub outputDuration: u64,
    /// Out: the encoded bytes (Annex B).
    pub bitstreamBufferPtr: *mut c_void,
    /// Out: [`NV_ENC_PIC_TYPE`].
    pub pictureType: NV_ENC_PIC_TYPE,
    /// Out: [`NV_ENC_PIC_STRUCT`].
    pub pictureStruct: NV_ENC_PIC_STRUCT,
    /// Out: average QP.
    pub frameAvgQP: u32,
    /// Out: SATD cost.
    pub frameSatd: u32,
    /// Out: LTR index.
    pub ltrFrameIdx: u32,
    /// Out: LTR frames used.
    pub ltrFrameBitmap: u32,
    /// Out: temporal id.
    pub temporalId: u32,
    /// Out: intra MBs.
    pub intraMBCount: u32,
    /// Out: inter MBs.
    pub interMBCount: u32,
    /// Out: average MV x.
    pub averageMVX: i32,
    /// Out: average MV y.
    pub averageMVY: i32,
    /// Out: alpha layer bytes.
    pub alphaLayerSizeInBytes: u32,
    /// Size of `outputStatsPtr`.
    pub outputStatsPtrSize: u32,
    /// Output stats buffer.
    pub outputStatsPtr: *mut c_void,
    /// Out: display order index.
    pub frameIdxDisplay: u32,
    reserved1: [u32; 220],
    reserved2: [*mut c_void; 63],
    reservedInternal: [u32; 8],
}

/// `NV_ENC_LOCK_BITSTREAM::doNotWait`.
pub const LOCK_DO_NOT_WAIT: u32 = 1 << 0;

zeroed_default!(
    NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS => NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER,
    NV_ENC_RC_PARAMS => NV_ENC_RC_PARAMS_VER,
    NV_ENC_CONFIG_H264_VUI_PARAMETERS,
    NV_ENC_CONFIG_H264,
    NV_ENC_CODEC_CONFIG,
    NV_ENC_CONFIG => NV_ENC_CONFIG_VER,
    NV_ENC_PRESET_CONFIG => NV_ENC_PRESET_CONFIG_VER,
    NV_ENC_INITIALIZE_PARAMS => NV_ENC_INITIALIZE_PARAMS_VER,
    NV_ENC_RECONFIGURE_PARAMS => NV_ENC_RECONFIGURE_PARAMS_VER,
    NV_ENC_CREATE_INPUT_BUFFER => NV_ENC_CREATE_INPUT_BUFFER_VER,
    NV_ENC_LOCK_INPUT_BUFFER => NV_ENC_LOCK_INPUT_BUFFER_VER,
    NV_ENC_CREATE_BITSTREAM_BUFFER => NV_ENC_CREATE_BITSTREAM_BUFFER_VER,
    NV_ENC_REGISTER_RESOURCE => NV_ENC_REGISTER_RESOURCE_VER,
    NV_ENC_MAP_INPUT_RESOURCE => NV_ENC_MAP_INPUT_RESOURCE_VER,
    NV_ENC_PIC_PARAMS_H264,
    NV_ENC_CODEC_PIC_PARAMS,
    NV_ENC_PIC_PARAMS => NV_ENC_PIC_PARAMS_VER,
    NV_ENC_LOCK_BITSTREAM => NV_ENC_LOCK_BITSTREAM_VER,
    NV_ENCODE_API_FUNCTION_LIST => NV_ENCODE_API_FUNCTION_LIST_VER,
);

opaque_debug!(
    NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS,
    NV_ENC_PRESET_CONFIG,
    NV_ENC_INITIALIZE_PARAMS,
    NV_ENC_RECONFIGURE_PARAMS,
    NV_ENC_CREATE_INPUT_BUFFER,
    NV_ENC_LOCK_INPUT_BUFFER,
    NV_ENC_CREATE_BITSTREAM_BUFFER,
    NV_ENC_REGISTER_RESOURCE,
    NV_ENC_MAP_INPUT_RESOURCE,
    NV_ENC_PIC_PARAMS_H264,
    NV_ENC_CODEC_PIC_PARAMS,
    NV_ENC_PIC_PARAMS,
    NV_ENC_LOCK_BITSTREAM,
);

// ---------------------------------------------------------------------------------------------
// Entry points and the function table

/// `NvEncodeAPIGetMaxSupportedVersion`: writes `(major << 4) | minor` of the newest API the
/// driver supports.
pub type PNvEncodeAPIGetMaxSupportedVersion = unsafe extern "C" fn(version: *mut u32) -> NVENCSTATUS;
/// `NvEncodeAPICreateInstance`: fills the function table (whose `version` the caller sets).
pub type PNvEncodeAPICreateInstance =
    unsafe extern "C" fn(functionList: *mut NV_ENCODE_API_FUNCTION_LIST) -> NVENCSTATUS;

/// A session handle (`void* encoder`).
pub type Encoder = *mut c_void;

/// `PNVENCOPENENCODESESSION`.
pub type PNVENCOPENENCODESESSION =
    Option<unsafe extern "C" fn(device: *mut c_void, deviceType: u32, encoder: *mut Encoder) -> NVENCSTATUS>;
/// `PNVENCGETENCODEGUIDCOUNT`.
pub type PNVENCGETENCODEGUIDCOUNT = Option<unsafe extern "C" fn(encoder: Encoder, count: *mut u32) -> NVENCSTATUS>;
/// `PNVENCGETENCODEGUIDS`.
pub type PNVENCGETENCODEGUIDS =
    Option<unsafe extern "C" fn(encoder: Encoder, guids: *mut GUID, size: u32, count: *mut u32) -> NVENCSTATUS>;
/// `PNVENCGETENCODEPRESETCOUNT` (the header also types the profile count with it).
pub type PNVENCGETENCODEPRESETCOUNT =
    Option<unsafe extern "C" fn(encoder: Encoder, encodeGUID: GUID, count: *mut u32) -> NVENCSTATUS>;
/// `PNVENCGETENCODEPRESETGUIDS` (the header also types the profile GUIDs with it).
pub type PNVENCGETENCODEPRESETGUIDS = Option<
    unsafe extern "C" fn(
        encoder: Encoder,
        encodeGUID: GUID,
        guids: *mut GUID,
        size: u32,
        count: *mut u32,
    ) -> NVENCSTATUS,
>;
/// `PNVENCGETINPUTFORMATCOUNT`.
pub type PNVENCGETINPUTFORMATCOUNT =
    Option<unsafe extern "C" fn(encoder: Encoder, encodeGUID: GUID, count: *mut u32) -> NVENCSTATUS>;
/// `PNVENCGETINPUTFORMATS`.
pub type PNVENCGETINPUTFORMATS = Option<
    unsafe extern "C" fn(
        encoder: Encoder,
        encodeGUID: GUID,
        formats: *mut NV_ENC_BUFFER_FORMAT,
        size: u32,
        count: *mut u32,
    ) -> NVENCSTATUS,
>;
/// `PNVENCGETENCODECAPS` (`NV_ENC_CAPS_PARAM*` left opaque).
pub type PNVENCGETENCODECAPS = Option<
    unsafe extern "C" fn(encoder: Encoder, encodeGUID: GUID, capsParam: *mut c_void, capsVal: *mut i32) -> NVENCSTATUS,
>;
/// `PNVENCGETENCODEPRESETCONFIG`.
pub type PNVENCGETENCODEPRESETCONFIG = Option<
    unsafe extern "C" fn(
        encoder: Encoder,
        encodeGUID: GUID,
        presetGUID: GUID,
        presetConfig: *mut NV_ENC_PRESET_CONFIG,
    ) -> NVENCSTATUS,
>;
/// `PNVENCGETENCODEPRESETCONFIGEX`.
pub type PNVENCGETENCODEPRESETCONFIGEX = Option<
    unsafe extern "C" fn(
        encoder: Encoder,
        encodeGUID: GUID,
        presetGUID: GUID,
        tuningInfo: NV_ENC_TUNING_INFO,
        presetConfig: *mut NV_ENC_PRESET_CONFIG,
    ) -> NVENCSTATUS,
>;
/// `PNVENCINITIALIZEENCODER`.
pub type PNVENCINITIALIZEENCODER =
    Option<unsafe extern "C" fn(encoder: Encoder, params: *mut NV_ENC_INITIALIZE_PARAMS) -> NVENCSTATUS>;
/// `PNVENCCREATEINPUTBUFFER`.
pub type PNVENCCREATEINPUTBUFFER =
    Option<unsafe extern "C" fn(encoder: Encoder, params: *mut NV_ENC_CREATE_INPUT_BUFFER) -> NVENCSTATUS>;
/// `PNVENCDESTROYINPUTBUFFER`.
pub type PNVENCDESTROYINPUTBUFFER =
    Option<unsafe extern "C" fn(encoder: Encoder, inputBuffer: NV_ENC_INPUT_PTR) -> NVENCSTATUS>;
/// `PNVENCCREATEBITSTREAMBUFFER`.
pub type PNVENCCREATEBITSTREAMBUFFER =
    Option<unsafe extern "C" fn(encoder: Encoder, params: *mut NV_ENC_CREATE_BITSTREAM_BUFFER) -> NVENCSTATUS>;
/// `PNVENCDESTROYBITSTREAMBUFFER`.
pub type PNVENCDESTROYBITSTREAMBUFFER =
    Option<unsafe extern "C" fn(encoder: Encoder, bitstreamBuffer: NV_ENC_OUTPUT_PTR) -> NVENCSTATUS>;
/// `PNVENCENCODEPICTURE`.
pub type PNVENCENCODEPICTURE =
    Option<unsafe extern "C" fn(encoder: Encoder, params: *mut NV_ENC_PIC_PARAMS) -> NVENCSTATUS>;
/// `PNVENCLOCKBITSTREAM`.
pub type PNVENCLOCKBITSTREAM =
    Option<unsafe extern "C" fn(encoder: Encoder, params: *mut NV_ENC_LOCK_BITSTREAM) -> NVENCSTATUS>;
/// `PNVENCUNLOCKBITSTREAM`.
pub type PNVENCUNLOCKBITSTREAM =
    Option<unsafe extern "C" fn(encoder: Encoder, bitstreamBuffer: NV_ENC_OUTPUT_PTR) -> NVENCSTATUS>;
/// `PNVENCLOCKINPUTBUFFER`.
pub type PNVENCLOCKINPUTBUFFER =
    Option<unsafe extern "C" fn(encoder: Encoder, params: *mut NV_ENC_LOCK_INPUT_BUFFER) -> NVENCSTATUS>;
/// `PNVENCUNLOCKINPUTBUFFER`.
pub type PNVENCUNLOCKINPUTBUFFER =
    Option<unsafe extern "C" fn(encoder: Encoder, inputBuffer: NV_ENC_INPUT_PTR) -> NVENCSTATUS>;
/// `PNVENCGETENCODESTATS` (`NV_ENC_STAT*` left opaque).
pub type PNVENCGETENCODESTATS = Option<unsafe extern "C" fn(encoder: Encoder, stats: *mut c_void) -> NVENCSTATUS>;
/// `PNVENCGETSEQUENCEPARAMS` (`NV_ENC_SEQUENCE_PARAM_PAYLOAD*` left opaque).
pub type PNVENCGETSEQUENCEPARAMS = Option<unsafe extern "C" fn(encoder: Encoder, payload: *mut c_void) -> NVENCSTATUS>;
/// `PNVENCREGISTERASYNCEVENT` / `PNVENCUNREGISTERASYNCEVENT` (`NV_ENC_EVENT_PARAMS*` opaque).
pub type PNVENCREGISTERASYNCEVENT = Option<unsafe extern "C" fn(encoder: Encoder, params: *mut c_void) -> NVENCSTATUS>;
/// `PNVENCMAPINPUTRESOURCE`.
pub type PNVENCMAPINPUTRESOURCE =
    Option<unsafe extern "C" fn(encoder: Encoder, params: *mut NV_ENC_MAP_INPUT_RESOURCE) -> NVENCSTATUS>;
/// `PNVENCUNMAPINPUTRESOURCE`.
pub type PNVENCUNMAPINPUTRESOURCE =
    Option<unsafe extern "C" fn(encoder: Encoder, mappedInputBuffer: NV_ENC_INPUT_PTR) -> NVENCSTATUS>;
/// `PNVENCDESTROYENCODER`.
pub type PNVENCDESTROYENCODER = Option<unsafe extern "C" fn(encoder: Encoder) -> NVENCSTATUS>;
/// `PNVENCINVALIDATEREFFRAMES`.
pub type PNVENCINVALIDATEREFFRAMES = Option<unsafe extern "C" fn(encoder: Encoder, timeStamp: u64) -> NVENCSTATUS>;
/// `PNVENCOPENENCODESESSIONEX`.
pub type PNVENCOPENENCODESESSIONEX = Option<
    unsafe extern "C" fn(params: *mut NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS, encoder: *mut Encoder) -> NVENCSTATUS,
>;
/// `PNVENCREGISTERRESOURCE`.
pub type PNVENCREGISTERRESOURCE =
    Option<unsafe extern "C" fn(encoder: Encoder, params: *mut NV_ENC_REGISTER_RESOURCE) -> NVENCSTATUS>;
/// `PNVENCUNREGISTERRESOURCE`.
pub type PNVENCUNREGISTERRESOURCE =
    Option<unsafe extern "C" fn(encoder: Encoder, registered: NV_ENC_REGISTERED_PTR) -> NVENCSTATUS>;
/// `PNVENCRECONFIGUREENCODER`.
pub type PNVENCRECONFIGUREENCODER =
    Option<unsafe extern "C" fn(encoder: Encoder, params: *mut NV_ENC_RECONFIGURE_PARAMS) -> NVENCSTATUS>;
/// `PNVENCCREATEMVBUFFER` (`NV_ENC_CREATE_MV_BUFFER*` opaque).
pub type PNVENCCREATEMVBUFFER = Option<unsafe extern "C" fn(encoder: Encoder, params: *mut c_void) -> NVENCSTATUS>;
/// `PNVENCDESTROYMVBUFFER`.
pub type PNVENCDESTROYMVBUFFER =
    Option<unsafe extern "C" fn(encoder: Encoder, mvBuffer: NV_ENC_OUTPUT_PTR) -> NVENCSTATUS>;
/// `PNVENCRUNMOTIONESTIMATIONONLY` (`NV_ENC_MEONLY_PARAMS*` opaque).
pub type PNVENCRUNMOTIONESTIMATIONONLY =
    Option<unsafe extern "C" fn(encoder: Encoder, params: *mut c_void) -> NVENCSTATUS>;
/// `PNVENCGETLASTERROR`: a NUL-terminated description of the session's last error.
pub type PNVENCGETLASTERROR = Option<unsafe extern "C" fn(encoder: Encoder) -> *const c_char>;
/// `PNVENCSETIOCUDASTREAMS`.
pub type PNVENCSETIOCUDASTREAMS =
    Option<unsafe extern "C" fn(encoder: Encoder, input: *mut c_void, output: *mut c_void) -> NVENCSTATUS>;
/// `PNVENCGETSEQUENCEPARAMEX` (`NV_ENC_SEQUENCE_PARAM_PAYLOAD*` opaque).
pub type PNVENCGETSEQUENCEPARAMEX = Option<
    unsafe extern "C" fn(encoder: Encoder, params: *mut NV_ENC_INITIALIZE_PARAMS, payload: *mut c_void) -> NVENCSTATUS,
>;
/// `PNVENCRESTOREENCODERSTATE` (`NV_ENC_RESTORE_ENCODER_STATE_PARAMS*` opaque).
pub type PNVENCRESTOREENCODERSTATE = Option<unsafe extern "C" fn(encoder: Encoder, params: *mut c_void) -> NVENCSTATUS>;
/// `PNVENCLOOKAHEADPICTURE` (`NV_ENC_LOOKAHEAD_PIC_PARAMS*` opaque).
pub type PNVENCLOOKAHEADPICTURE = Option<unsafe extern "C" fn(encoder: Encoder, params: *mut c_void) -> NVENCSTATUS>;

/// `NV_ENCODE_API_FUNCTION_LIST`: the whole table, in the header's order, so the layout is the
/// driver's. Entries are `None` until `NvEncodeAPICreateInstance` fills them.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NV_ENCODE_API_FUNCTION_LIST {
    /// [`NV_ENCODE_API_FUNCTION_LIST_VER`].
    pub version: u32,
    reserved: u32,
    /// `NvEncOpenEncodeSession`.
    pub nvEncOpenEncodeSession: PNVENCOPENENCODESESSION,
    /// `NvEncGetEncodeGUIDCount`.
    pub nvEncGetEncodeGUIDCount: PNVENCGETENCODEGUIDCOUNT,
    /// `NvEncGetEncodeProfileGUIDCount`.
    pub nvEncGetEncodeProfileGUIDCount: PNVENCGETENCODEPRESETCOUNT,
    /// `NvEncGetEncodeProfileGUIDs`.
    pub nvEncGetEncodeProfileGUIDs: PNVENCGETENCODEPRESETGUIDS,
    /// `NvEncGetEncodeGUIDs`.
    pub nvEncGetEncodeGUIDs: PNVENCGETENCODEGUIDS,
    /// `NvEncGetInputFormatCount`.
    pub nvEncGetInputFormatCount: PNVENCGETINPUTFORMATCOUNT,
    /// `NvEncGetInputFormats`.
    pub nvEncGetInputFormats: PNVENCGETINPUTFORMATS,
    /// `NvEncGetEncodeCaps`.
    pub nvEncGetEncodeCaps: PNVENCGETENCODECAPS,
    /// `NvEncGetEncodePresetCount`.
    pub nvEncGetEncodePresetCount: PNVENCGETENCODEPRESETCOUNT,
    /// `NvEncGetEncodePresetGUIDs`.
    pub nvEncGetEncodePresetGUIDs: PNVENCGETENCODEPRESETGUIDS,
    /// `NvEncGetEncodePresetConfig`.
    pub nvEncGetEncodePresetConfig: PNVENCGETENCODEPRESETCONFIG,
    /// `NvEncInitializeEncoder`.
    pub nvEncInitializeEncoder: PNVENCINITIALIZEENCODER,
    /// `NvEncCreateInputBuffer`.
    pub nvEncCreateInputBuffer: PNVENCCREATEINPUTBUFFER,
    /// `NvEncDestroyInputBuffer`.
    pub nvEncDestroyInputBuffer: PNVENCDESTROYINPUTBUFFER,
    /// `NvEncCreateBitstreamBuffer`.
    pub nvEncCreateBitstreamBuffer: PNVENCCREATEBITSTREAMBUFFER,
    /// `NvEncDestroyBitstreamBuffer`.
    pub nvEncDestroyBitstreamBuffer: PNVENCDESTROYBITSTREAMBUFFER,
    /// `NvEncEncodePicture`.
    pub nvEncEncodePicture: PNVENCENCODEPICTURE,
    /// `NvEncLockBitstream`.
    pub nvEncLockBitstream: PNVENCLOCKBITSTREAM,
    /// `NvEncUnlockBitstream`.
    pub nvEncUnlockBitstream: PNVENCUNLOCKBITSTREAM,
    /// `NvEncLockInputBuffer`.
    pub nvEncLockInputBuffer: PNVENCLOCKINPUTBUFFER,
    /// `NvEncUnlockInputBuffer`.
    pub nvEncUnlockInputBuffer: PNVENCUNLOCKINPUTBUFFER,
    /// `NvEncGetEncodeStats`.
    pub nvEncGetEncodeStats: PNVENCGETENCODESTATS,
    /// `NvEncGetSequenceParams`.
    pub nvEncGetSequenceParams: PNVENCGETSEQUENCEPARAMS,
    /// `NvEncRegisterAsyncEvent`.
    pub nvEncRegisterAsyncEvent: PNVENCREGISTERASYNCEVENT,
    /// `NvEncUnregisterAsyncEvent`.
    pub nvEncUnregisterAsyncEvent: PNVENCREGISTERASYNCEVENT,
    /// `NvEncMapInputResource`.
    pub nvEncMapInputResource: PNVENCMAPINPUTRESOURCE,
    /// `NvEncUnmapInputResource`.
    pub nvEncUnmapInputResource: PNVENCUNMAPINPUTRESOURCE,
    /// `NvEncDestroyEncoder`.
    pub nvEncDestroyEncoder: PNVENCDESTROYENCODER,
    /// `NvEncInvalidateRefFrames`.
    pub nvEncInvalidateRefFrames: PNVENCINVALIDATEREFFRAMES,
    /// `NvEncOpenEncodeSessionEx`.
    pub nvEncOpenEncodeSessionEx: PNVENCOPENENCODESESSIONEX,
    /// `NvEncRegisterResource`.
    pub nvEncRegisterResource: PNVENCREGISTERRESOURCE,
    /// `NvEncUnregisterResource`.
    pub nvEncUnregisterResource: PNVENCUNREGISTERRESOURCE,
    /// `NvEncReconfigureEncoder`.
    pub nvEncReconfigureEncoder: PNVENCRECONFIGUREENCODER,
    reserved1: *mut c_void,
    /// `NvEncCreateMVBuffer`.
    pub nvEncCreateMVBuffer: PNVENCCREATEMVBUFFER,
    /// `NvEncDestroyMVBuffer`.
    pub nvEncDestroyMVBuffer: PNVENCDESTROYMVBUFFER,
    /// `NvEncRunMotionEstimationOnly`.
    pub nvEncRunMotionEstimationOnly: PNVENCRUNMOTIONESTIMATIONONLY,
    /// `NvEncGetLastErrorString`.
    pub nvEncGetLastErrorString: PNVENCGETLASTERROR,
    /// `NvEncSetIOCudaStreams`.
    pub nvEncSetIOCudaStreams: PNVENCSETIOCUDASTREAMS,
    /// `NvEncGetEncodePresetConfigEx`.
    pub nvEncGetEncodePresetConfigEx: PNVENCGETENCODEPRESETCONFIGEX,
    /// `NvEncGetSequenceParamEx`.
    pub nvEncGetSequenceParamEx: PNVENCGETSEQUENCEPARAMEX,
    /// `NvEncRestoreEncoderState`.
    pub nvEncRestoreEncoderState: PNVENCRESTOREENCODERSTATE,
    /// `NvEncLookaheadPicture`.
    pub nvEncLookaheadPicture: PNVENCLOOKAHEADPICTURE,
    reserved2: [*mut c_void; 275],
}

impl NV_ENCODE_API_FUNCTION_LIST {
    /// The number of function entries in the table (all but the reserved ones).
    pub const ENTRIES: usize = 42;

    /// Every function entry's name and whether it is filled, in table order.
    pub fn entries(&self) -> [(&'static str, bool); Self::ENTRIES] {
        [
            ("nvEncOpenEncodeSession", self.nvEncOpenEncodeSession.is_some()),
            ("nvEncGetEncodeGUIDCount", self.nvEncGetEncodeGUIDCount.is_some()),
            ("nvEncGetEncodeProfileGUIDCount", self.nvEncGetEncodeProfileGUIDCount.is_some()),
            ("nvEncGetEncodeProfileGUIDs", self.nvEncGetEncodeProfileGUIDs.is_some()),
            ("nvEncGetEncodeGUIDs", self.nvEncGetEncodeGUIDs.is_some()),
            ("nvEncGetInputFormatCount", self.nvEncGetInputFormatCount.is_some()),
            ("nvEncGetInputFormats", self.nvEncGetInputFormats.is_some()),
            ("nvEncGetEncodeCaps", self.nvEncGetEncodeCaps.is_some()),
            ("nvEncGetEncodePresetCount", self.nvEncGetEncodePresetCount.is_some()),
            ("nvEncGetEncodePresetGUIDs", self.nvEncGetEncodePresetGUIDs.is_some()),
            ("nvEncGetEncodePresetConfig", self.nvEncGetEncodePresetConfig.is_some()),
            ("nvEncInitializeEncoder", self.nvEncInitializeEncoder.is_some()),
            ("nvEncCreateInputBuffer", self.nvEncCreateInputBuffer.is_some()),
            ("nvEncDestroyInputBuffer", self.nvEncDestroyInputBuffer.is_some()),
            ("nvEncCreateBitstreamBuffer", self.nvEncCreateBitstreamBuffer.is_some()),
            ("nvEncDestroyBitstreamBuffer", self.nvEncDestroyBitstreamBuffer.is_some()),
            ("nvEncEncodePicture", self.nvEncEncodePicture.is_some()),
            ("nvEncLockBitstream", self.nvEncLockBitstream.is_some()),
            ("nvEncUnlockBitstream", self.nvEncUnlockBitstream.is_some()),
            ("nvEncLockInputBuffer", self.nvEncLockInputBuffer.is_some()),
            ("nvEncUnlockInputBuffer", self.nvEncUnlockInputBuffer.is_some()),
            ("nvEncGetEncodeStats", self.nvEncGetEncodeStats.is_some()),
            ("nvEncGetSequenceParams", self.nvEncGetSequenceParams.is_some()),
            ("nvEncRegisterAsyncEvent", self.nvEncRegisterAsyncEvent.is_some()),
            ("nvEncUnregisterAsyncEvent", self.nvEncUnregisterAsyncEvent.is_some()),
            ("nvEncMapInputResource", self.nvEncMapInputResource.is_some()),
            ("nvEncUnmapInputResource", self.nvEncUnmapInputResource.is_some()),
            ("nvEncDestroyEncoder", self.nvEncDestroyEncoder.is_some()),
            ("nvEncInvalidateRefFrames", self.nvEncInvalidateRefFrames.is_some()),
            ("nvEncOpenEncodeSessionEx", self.nvEncOpenEncodeSessionEx.is_some()),
            ("nvEncRegisterResource", self.nvEncRegisterResource.is_some()),
            ("nvEncUnregisterResource", self.nvEncUnregisterResource.is_some()),
            ("nvEncReconfigureEncoder", self.nvEncReconfigureEncoder.is_some()),
            ("nvEncCreateMVBuffer", self.nvEncCreateMVBuffer.is_some()),
            ("nvEncDestroyMVBuffer", self.nvEncDestroyMVBuffer.is_some()),
            ("nvEncRunMotionEstimationOnly", self.nvEncRunMotionEstimationOnly.is_some()),
            ("nvEncGetLastErrorString", self.nvEncGetLastErrorString.is_some()),
            ("nvEncSetIOCudaStreams", self.nvEncSetIOCudaStreams.is_some()),
            ("nvEncGetEncodePresetConfigEx", self.nvEncGetEncodePresetConfigEx.is_some()),
            ("nvEncGetSequenceParamEx", self.nvEncGetSequenceParamEx.is_some()),
            ("nvEncRestoreEncoderState", self.nvEncRestoreEncoderState.is_some()),
            ("nvEncLookaheadPicture", self.nvEncLookaheadPicture.is_some()),
        ]
    }
}

impl fmt::Debug for NV_ENCODE_API_FUNCTION_LIST {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let filled = self.entries().iter().filter(|(_, present)| *present).count();
        write!(f, "NV_ENCODE_API_FUNCTION_LIST {{ version: {:#x}, {filled}/{} entries }}", self.version, Self::ENTRIES)
    }
}

// ---------------------------------------------------------------------------------------------
// Layout checks: sizes and offsets from `sizeof`/`offsetof` of the 12.1 header, gcc, x86_64.

#[cfg(target_arch = "x86_64")]
mod layout {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    const _: () = assert!(size_of::<GUID>() == 16 && align_of::<GUID>() == 4);
    const _: () = assert!(size_of::<NV_ENCODE_API_FUNCTION_LIST>() == 2552);
    const _: () = assert!(size_of::<NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS>() == 1552);
    const _: () = assert!(size_of::<NV_ENC_INITIALIZE_PARAMS>() == 1808);
    const _: () = assert!(size_of::<NV_ENC_CONFIG>() == 3584);
    const _: () = assert!(size_of::<NV_ENC_RC_PARAMS>() == 128 && align_of::<NV_ENC_RC_PARAMS>() == 4);
    const _: () = assert!(size_of::<NV_ENC_QP>() == 12);
    const _: () = assert!(size_of::<NV_ENC_CODEC_CONFIG>() == 1792);
    const _: () = assert!(size_of::<NV_ENC_CONFIG_H264>() == 1792);
    const _: () = assert!(size_of::<NV_ENC_CONFIG_H264_VUI_PARAMETERS>() == 112);
    const _: () = assert!(size_of::<NV_ENC_PRESET_CONFIG>() == 5128);
    const _: () = assert!(size_of::<NV_ENC_CREATE_INPUT_BUFFER>() == 776);
    const _: () = assert!(size_of::<NV_ENC_LOCK_INPUT_BUFFER>() == 1544);
    const _: () = assert!(size_of::<NV_ENC_CREATE_BITSTREAM_BUFFER>() == 776);
    const _: () = assert!(size_of::<NV_ENC_REGISTER_RESOURCE>() == 1536);
    const _: () = assert!(size_of::<NV_ENC_MAP_INPUT_RESOURCE>() == 1544);
    const _: () = assert!(size_of::<NV_ENC_PIC_PARAMS>() == 3360);
    const _: () = assert!(size_of::<NV_ENC_CODEC_PIC_PARAMS>() == 1552);
    const _: () = assert!(size_of::<NV_ENC_PIC_PARAMS_H264>() == 1536);
    const _: () = assert!(size_of::<NV_ENC_TIME_CODE>() == 28);
    const _: () = assert!(size_of::<NV_ENC_LOCK_BITSTREAM>() == 1552);
    const _: () = assert!(size_of::<NV_ENC_RECONFIGURE_PARAMS>() == 1824);

    type L = NV_ENCODE_API_FUNCTION_LIST;
    const _: () = assert!(offset_of!(L, nvEncOpenEncodeSession) == 8);
    const _: () = assert!(offset_of!(L, nvEncReconfigureEncoder) == 264);
    const _: () = assert!(offset_of!(L, nvEncGetEncodePresetConfigEx) == 320);
    const _: () = assert!(offset_of!(L, nvEncLookaheadPicture) == 344);
    const _: () = assert!(offset_of!(L, reserved2) == 352);

    type O = NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS;
    const _: () = assert!(offset_of!(O, device) == 8 && offset_of!(O, apiVersion) == 24);
    const _: () = assert!(offset_of!(O, reserved2) == 1040);

    type I = NV_ENC_INITIALIZE_PARAMS;
    const _: () = assert!(offset_of!(I, presetGUID) == 20 && offset_of!(I, enablePTD) == 64);
    const _: () = assert!(offset_of!(I, privDataSize) == 72 && offset_of!(I, privData) == 80);
    const _: () = assert!(offset_of!(I, encodeConfig) == 88 && offset_of!(I, maxEncodeWidth) == 96);
    const _: () = assert!(offset_of!(I, maxMEHintCountsPerBlock) == 104 && offset_of!(I, tuningInfo) == 136);
    const _: () = assert!(offset_of!(I, outputStatsLevel) == 148 && offset_of!(I, reserved) == 152);
    const _: () = assert!(offset_of!(I, reserved2) == 1296);

    type C = NV_ENC_CONFIG;
    const _: () = assert!(offset_of!(C, profileGUID) == 4 && offset_of!(C, gopLength) == 20);
    const _: () = assert!(offset_of!(C, frameIntervalP) == 24 && offset_of!(C, rcParams) == 40);
    const _: () = assert!(offset_of!(C, encodeCodecConfig) == 168 && offset_of!(C, reserved) == 1960);
    const _: () = assert!(offset_of!(C, reserved2) == 3072);

    type R = NV_ENC_RC_PARAMS;
    const _: () = assert!(offset_of!(R, averageBitRate) == 20 && offset_of!(R, vbvBufferSize) == 28);
    const _: () = assert!(offset_of!(R, vbvInitialDelay) == 32 && offset_of!(R, flags) == 36);
    const _: () = assert!(offset_of!(R, minQP) == 40 && offset_of!(R, temporalLayerQP) == 80);
    const _: () = assert!(offset_of!(R, lookaheadDepth) == 90 && offset_of!(R, qpMapMode) == 96);
    const _: () = assert!(offset_of!(R, multiPass) == 100 && offset_of!(R, cbQPIndexOffset) == 108);
    const _: () = assert!(offset_of!(R, reserved2) == 110 && offset_of!(R, reserved) == 112);

    type H = NV_ENC_CONFIG_H264;
    const _: () = assert!(offset_of!(H, level) == 4 && offset_of!(H, idrPeriod) == 8);
    const _: () = assert!(offset_of!(H, adaptiveTransformMode) == 32 && offset_of!(H, entropyCodingMode) == 44);
    const _: () = assert!(offset_of!(H, maxNumRefFrames) == 60 && offset_of!(H, sliceMode) == 64);
    const _: () = assert!(offset_of!(H, h264VUIParameters) == 72 && offset_of!(H, ltrNumFrames) == 184);
    const _: () = assert!(offset_of!(H, chromaFormatIDC) == 192 && offset_of!(H, numRefL1) == 208);
    const _: () = assert!(offset_of!(H, reserved1) == 212 && offset_of!(H, reserved2) == 1280);

    type P = NV_ENC_PRESET_CONFIG;
    const _: () = assert!(offset_of!(P, presetCfg) == 8 && offset_of!(P, reserved1) == 3592);
    const _: () = assert!(offset_of!(P, reserved2) == 4616);

    type CI = NV_ENC_CREATE_INPUT_BUFFER;
    const _: () = assert!(offset_of!(CI, inputBuffer) == 24 && offset_of!(CI, pSysMemBuffer) == 32);
    const _: () = assert!(offset_of!(CI, reserved1) == 40 && offset_of!(CI, reserved2) == 272);

    type LI = NV_ENC_LOCK_INPUT_BUFFER;
    const _: () = assert!(offset_of!(LI, inputBuffer) == 8 && offset_of!(LI, bufferDataPtr) == 16);
    const _: () = assert!(offset_of!(LI, pitch) == 24 && offset_of!(LI, reserved2) == 1032);

    type CB = NV_ENC_CREATE_BITSTREAM_BUFFER;
    const _: () = assert!(offset_of!(CB, bitstreamBuffer) == 16 && offset_of!(CB, reserved1) == 32);
    const _: () = assert!(offset_of!(CB, reserved2) == 264);

    type RR = NV_ENC_REGISTER_RESOURCE;
    const _: () = assert!(offset_of!(RR, resourceToRegister) == 24 && offset_of!(RR, registeredResource) == 32);
    const _: () = assert!(offset_of!(RR, bufferFormat) == 40 && offset_of!(RR, pInputFencePoint) == 48);
    const _: () = assert!(offset_of!(RR, chromaOffset) == 56 && offset_of!(RR, reserved1) == 64);
    const _: () = assert!(offset_of!(RR, reserved2) == 1048);

    type M = NV_ENC_MAP_INPUT_RESOURCE;
    const _: () = assert!(offset_of!(M, inputResource) == 8 && offset_of!(M, registeredResource) == 16);
    const _: () = assert!(offset_of!(M, mappedResource) == 24 && offset_of!(M, mappedBufferFmt) == 32);
    const _: () = assert!(offset_of!(M, reserved2) == 1040);

    type PP = NV_ENC_PIC_PARAMS;
    const _: () = assert!(offset_of!(PP, encodePicFlags) == 16 && offset_of!(PP, inputTimeStamp) == 24);
    const _: () = assert!(offset_of!(PP, inputBuffer) == 40 && offset_of!(PP, outputBitstream) == 48);
    const _: () = assert!(offset_of!(PP, bufferFmt) == 64 && offset_of!(PP, pictureType) == 72);
    const _: () = assert!(offset_of!(PP, codecPicParams) == 80 && offset_of!(PP, meHintCountsPerBlock) == 1632);
    const _: () = assert!(offset_of!(PP, meExternalHints) == 1664 && offset_of!(PP, qpDeltaMap) == 1712);
    const _: () = assert!(offset_of!(PP, meHintRefPicDist) == 1728 && offset_of!(PP, alphaBuffer) == 1736);
    const _: () = assert!(offset_of!(PP, outputReconBuffer) == 1760 && offset_of!(PP, reserved3) == 1768);
    const _: () = assert!(offset_of!(PP, reserved4) == 2904);

    type PH = NV_ENC_PIC_PARAMS_H264;
    const _: () = assert!(offset_of!(PH, sliceTypeData) == 24 && offset_of!(PH, seiPayloadArray) == 40);
    const _: () = assert!(offset_of!(PH, forceIntraSliceIdx) == 72 && offset_of!(PH, h264ExtPicParams) == 80);
    const _: () = assert!(offset_of!(PH, timeCode) == 208 && offset_of!(PH, reserved) == 236);
    const _: () = assert!(offset_of!(PH, reserved2) == 1048);

    type LB = NV_ENC_LOCK_BITSTREAM;
    const _: () = assert!(offset_of!(LB, outputBitstream) == 8 && offset_of!(LB, bitstreamSizeInBytes) == 36);
    const _: () = assert!(offset_of!(LB, outputTimeStamp) == 40 && offset_of!(LB, bitstreamBufferPtr) == 56);
    const _: () = assert!(offset_of!(LB, pictureType) == 64 && offset_of!(LB, outputStatsPtr) == 120);
    const _: () = assert!(offset_of!(LB, frameIdxDisplay) == 128 && offset_of!(LB, reserved2) == 1016);
    const _: () = assert!(offset_of!(LB, reservedInternal) == 1520);

    type RC = NV_ENC_RECONFIGURE_PARAMS;
    const _: () = assert!(offset_of!(RC, reInitEncodeParams) == 8 && offset_of!(RC, flags) == 1816);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version words, as the header's macros compute them (printed by a C program).
    #[test]
    fn versions_match_the_header_macros() {
        assert_eq!(NVENCAPI_VERSION, 0x0100_000c);
        assert_eq!(NV_ENCODE_API_FUNCTION_LIST_VER, 0x7102_000c);
        assert_eq!(NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER, 0x7101_000c);
        assert_eq!(NV_ENC_INITIALIZE_PARAMS_VER, 0xf106_000c);
        assert_eq!(NV_ENC_CONFIG_VER, 0xf108_000c);
        assert_eq!(NV_ENC_RC_PARAMS_VER, 0x7101_000c);
        assert_eq!(NV_ENC_PRESET_CONFIG_VER, 0xf104_000c);
        assert_eq!(NV_ENC_CREATE_INPUT_BUFFER_VER, 0x7101_000c);
        assert_eq!(NV_ENC_LOCK_INPUT_BUFFER_VER, 0x7101_000c);
        assert_eq!(NV_ENC_CREATE_BITSTREAM_BUFFER_VER, 0x7101_000c);
        assert_eq!(NV_ENC_REGISTER_RESOURCE_VER, 0x7104_000c);
        assert_eq!(NV_ENC_MAP_INPUT_RESOURCE_VER, 0x7104_000c);
        assert_eq!(NV_ENC_PIC_PARAMS_VER, 0xf106_000c);
        assert_eq!(NV_ENC_LOCK_BITSTREAM_VER, 0xf101_000c);
        assert_eq!(NV_ENC_RECONFIGURE_PARAMS_VER, 0xf101_000c);
    }

    #[test]
    fn guids_print_in_registry_form() {
        assert_eq!(NV_ENC_CODEC_H264_GUID.to_string(), "6BC82762-4E63-4CA4-AA85-1E50F321F6BF");
        assert_eq!(NV_ENC_H264_PROFILE_BASELINE_GUID.to_string(), "0727BCAA-78C4-4C83-8C2F-EF3DFF267C6A");
        assert_eq!(NV_ENC_PRESET_P1_GUID.to_string(), "FC0A8D3E-45F8-4CF8-80C7-298871590EBF");
    }

    #[test]
    fn defaults_are_zero_with_the_version_set() {
        let pic = NV_ENC_PIC_PARAMS::default();
        assert_eq!(pic.version, NV_ENC_PIC_PARAMS_VER);
        assert!(pic.inputBuffer.is_null() && pic.encodePicFlags == 0);
        let list = NV_ENCODE_API_FUNCTION_LIST::default();
        assert!(list.entries().iter().all(|(_, present)| !present));
        assert_eq!(status_name(NV_ENC_ERR_DEVICE_NOT_EXIST), Some("NV_ENC_ERR_DEVICE_NOT_EXIST"));
        assert_eq!(status_name(NV_ENC_ERR_NEED_MORE_OUTPUT), Some("NV_ENC_ERR_NEED_MORE_OUTPUT"));
        assert_eq!(status_name(99), None);
    }

    #[test]
    fn h264_bitfields() {
        let mut h264 = NV_ENC_CONFIG_H264::default();
        h264.set_flag(H264_REPEAT_SPSPPS, true);
        assert_eq!(h264.flags, 0x1000);
        assert!(h264.flag(H264_REPEAT_SPSPPS));
        h264.set_flag(H264_REPEAT_SPSPPS, false);
        assert_eq!(h264.flags, 0);
    }
}
