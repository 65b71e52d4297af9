//! The C side: the exported entry points and the function table. Each function checks its
//! pointers, finds the session, and hands safe references to `session`; no panic escapes.

use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::PoisonError;

use retrofarm_nvenc::api::{self, Encoder, GUID, NVENCSTATUS, NV_ENCODE_API_FUNCTION_LIST};

use crate::record;
use crate::session::{self, Fail, Outcome, Session};

/// Runs `f`, turning a panic into `NV_ENC_ERR_GENERIC`.
fn guard(f: impl FnOnce() -> NVENCSTATUS) -> NVENCSTATUS {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(api::NV_ENC_ERR_GENERIC)
}

/// Runs `f` on the session behind `encoder`, recording a failure for
/// `nvEncGetLastErrorString`.
fn on_session(encoder: Encoder, f: impl FnOnce(&mut Session) -> Outcome) -> NVENCSTATUS {
    guard(|| {
        let Some(shared) = session::find(encoder) else { return api::NV_ENC_ERR_INVALID_PTR };
        let mut session = shared.lock().unwrap_or_else(PoisonError::into_inner);
        match f(&mut session) {
            Ok(()) => api::NV_ENC_SUCCESS,
            Err(Fail(status, message)) => {
                session.set_last_error(&message);
                status
            }
        }
    })
}

fn null() -> Fail {
    Fail(api::NV_ENC_ERR_INVALID_PTR, "null pointer".into())
}

/// `NvEncodeAPIGetMaxSupportedVersion`: 12.1 unless `RETROFARM_NVENC_DOUBLE_MAX_VERSION` says
/// otherwise, packed as `(major << 4) | minor`.
///
/// # Safety
///
/// `version` must be null or point to a writable `u32`.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "C" fn NvEncodeAPIGetMaxSupportedVersion(version: *mut u32) -> NVENCSTATUS {
    guard(|| {
        // SAFETY: the caller passes null or a writable u32 (the header's contract).
        match unsafe { version.as_mut() } {
            Some(version) => {
                *version = record::max_version();
                api::NV_ENC_SUCCESS
            }
            None => api::NV_ENC_ERR_INVALID_PTR,
        }
    })
}

/// `NvEncodeAPICreateInstance`: fills the 12.1 function table.
///
/// # Safety
///
/// `list` must be null or point to a writable `NV_ENCODE_API_FUNCTION_LIST`.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "C" fn NvEncodeAPICreateInstance(list: *mut NV_ENCODE_API_FUNCTION_LIST) -> NVENCSTATUS {
    guard(|| {
        // SAFETY: the caller passes null or a writable function table (the header's contract).
        let Some(list) = (unsafe { list.as_mut() }) else { return api::NV_ENC_ERR_INVALID_PTR };
        if list.version != api::NV_ENCODE_API_FUNCTION_LIST_VER {
            return api::NV_ENC_ERR_INVALID_VERSION;
        }
        // A driver older than the caller's header refuses its table.
        if record::max_version() < ((api::NVENCAPI_MAJOR_VERSION << 4) | api::NVENCAPI_MINOR_VERSION) {
            return api::NV_ENC_ERR_INVALID_VERSION;
        }
        fill(list);
        api::NV_ENC_SUCCESS
    })
}

fn fill(list: &mut NV_ENCODE_API_FUNCTION_LIST) {
    list.nvEncOpenEncodeSession = Some(open_session_legacy);
    list.nvEncGetEncodeGUIDCount = Some(unimplemented_count);
    list.nvEncGetEncodeProfileGUIDCount = Some(unimplemented_guid_count);
    list.nvEncGetEncodeProfileGUIDs = Some(unimplemented_guid_guids);
    list.nvEncGetEncodeGUIDs = Some(unimplemented_guids);
    list.nvEncGetInputFormatCount = Some(unimplemented_guid_count);
    list.nvEncGetInputFormats = Some(unimplemented_formats);
    list.nvEncGetEncodeCaps = Some(unimplemented_caps);
    list.nvEncGetEncodePresetCount = Some(unimplemented_guid_count);
    list.nvEncGetEncodePresetGUIDs = Some(unimplemented_guid_guids);
    list.nvEncGetEncodePresetConfig = Some(unimplemented_preset_config);
    list.nvEncInitializeEncoder = Some(initialize_encoder);
    list.nvEncCreateInputBuffer = Some(create_input_buffer);
    list.nvEncDestroyInputBuffer = Some(destroy_input_buffer);
    list.nvEncCreateBitstreamBuffer = Some(create_bitstream_buffer);
    list.nvEncDestroyBitstreamBuffer = Some(destroy_bitstream_buffer);
    list.nvEncEncodePicture = Some(encode_picture);
    list.nvEncLockBitstream = Some(lock_bitstream);
    list.nvEncUnlockBitstream = Some(unlock_bitstream);
    list.nvEncLockInputBuffer = Some(lock_input_buffer);
    list.nvEncUnlockInputBuffer = Some(unlock_input_buffer);
    list.nvEncGetEncodeStats = Some(unimplemented_ptr);
    list.nvEncGetSequenceParams = Some(unimplemented_ptr);
    list.nvEncRegisterAsyncEvent = Some(unimplemented_ptr);
    list.nvEncUnregisterAsyncEvent = Some(unimplemented_ptr);
    list.nvEncMapInputResource = Some(map_input_resource);
    list.nvEncUnmapInputResource = Some(unmap_input_resource);
    list.nvEncDestroyEncoder = Some(destroy_encoder);
    list.nvEncInvalidateRefFrames = Some(unimplemented_invalidate);
    list.nvEncOpenEncodeSessionEx = Some(open_encode_session_ex);
    list.nvEncRegisterResource = Some(register_resource);
    list.nvEncUnregisterResource = Some(unregister_resource);
    list.nvEncReconfigureEncoder = Some(reconfigure_encoder);
    list.nvEncCreateMVBuffer = Some(unimplemented_ptr);
    list.nvEncDestroyMVBuffer = Some(unimplemented_ptr);
    list.nvEncRunMotionEstimationOnly = Some(unimplemented_ptr);
    list.nvEncGetLastErrorString = Some(get_last_error_string);
    list.nvEncSetIOCudaStreams = Some(unimplemented_streams);
    list.nvEncGetEncodePresetConfigEx = Some(get_encode_preset_config_ex);
    list.nvEncGetSequenceParamEx = Some(unimplemented_sequence_ex);
    list.nvEncRestoreEncoderState = Some(unimplemented_ptr);
    list.nvEncLookaheadPicture = Some(unimplemented_ptr);
}

// --- Implemented -----------------------------------------------------------------------------

unsafe extern "C" fn open_encode_session_ex(
    params: *mut api::NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS,
    encoder: *mut Encoder,
) -> NVENCSTATUS {
    guard(|| {
        // SAFETY: the caller passes null or live structs of the header's types.
        let (Some(params), Some(encoder)) = (unsafe { params.as_ref() }, unsafe { encoder.as_mut() }) else {
            return api::NV_ENC_ERR_INVALID_PTR;
        };
        match session::open(params) {
            Ok(handle) => {
                *encoder = handle;
                api::NV_ENC_SUCCESS
            }
            Err(Fail(status, _)) => {
                *encoder = std::ptr::null_mut();
                status
            }
        }
    })
}

unsafe extern "C" fn get_encode_preset_config_ex(
    encoder: Encoder,
    codec: GUID,
    preset: GUID,
    tuning: api::NV_ENC_TUNING_INFO,
    config: *mut api::NV_ENC_PRESET_CONFIG,
) -> NVENCSTATUS {
    on_session(encoder, |session| {
        // SAFETY: the caller passes null or a live struct of the header's type.
        let config = unsafe { config.as_mut() }.ok_or_else(null)?;
        session.preset_config(codec, preset, tuning, config)
    })
}

unsafe extern "C" fn initialize_encoder(encoder: Encoder, params: *mut api::NV_ENC_INITIALIZE_PARAMS) -> NVENCSTATUS {
    on_session(encoder, |session| {
        // SAFETY: the caller passes null or a live struct, whose encodeConfig is null or live.
        let params = unsafe { params.as_ref() }.ok_or_else(null)?;
        // SAFETY: as above.
        let config = unsafe { params.encodeConfig.as_ref() };
        session.initialize(params, config)
    })
}

unsafe extern "C" fn reconfigure_encoder(encoder: Encoder, params: *mut api::NV_ENC_RECONFIGURE_PARAMS) -> NVENCSTATUS {
    on_session(encoder, |session| {
        // SAFETY: as in `initialize_encoder`.
        let params = unsafe { params.as_ref() }.ok_or_else(null)?;
        // SAFETY: as above.
        let config = unsafe { params.reInitEncodeParams.encodeConfig.as_ref() };
        session.reconfigure(params, config)
    })
}

unsafe extern "C" fn create_input_buffer(
    encoder: Encoder,
    params: *mut api::NV_ENC_CREATE_INPUT_BUFFER,
) -> NVENCSTATUS {
    on_session(encoder, |session| {
        // SAFETY: the caller passes null or a live struct of the header's type.
        session.create_input(unsafe { params.as_mut() }.ok_or_else(null)?)
    })
}

unsafe extern "C" fn destroy_input_buffer(encoder: Encoder, buffer: api::NV_ENC_INPUT_PTR) -> NVENCSTATUS {
    on_session(encoder, |session| session.destroy_input(buffer))
}

unsafe extern "C" fn lock_input_buffer(encoder: Encoder, params: *mut api::NV_ENC_LOCK_INPUT_BUFFER) -> NVENCSTATUS {
    on_session(encoder, |session| {
        // SAFETY: the caller passes null or a live struct of the header's type.
        session.lock_input(unsafe { params.as_mut() }.ok_or_else(null)?)
    })
}

unsafe extern "C" fn unlock_input_buffer(encoder: Encoder, buffer: api::NV_ENC_INPUT_PTR) -> NVENCSTATUS {
    on_session(encoder, |session| session.unlock_input(buffer))
}

unsafe extern "C" fn create_bitstream_buffer(
    encoder: Encoder,
    params: *mut api::NV_ENC_CREATE_BITSTREAM_BUFFER,
) -> NVENCSTATUS {
    on_session(encoder, |session| {
        // SAFETY: the caller passes null or a live struct of the header's type.
        session.create_output(unsafe { params.as_mut() }.ok_or_else(null)?)
    })
}

unsafe extern "C" fn destroy_bitstream_buffer(encoder: Encoder, buffer: api::NV_ENC_OUTPUT_PTR) -> NVENCSTATUS {
    on_session(encoder, |session| session.destroy_output(buffer))
}

unsafe extern "C" fn encode_picture(encoder: Encoder, params: *mut api::NV_ENC_PIC_PARAMS) -> NVENCSTATUS {
    on_session(encoder, |session| {
        // SAFETY: the caller passes null or a live struct of the header's type.
        session.encode(unsafe { params.as_ref() }.ok_or_else(null)?)
    })
}

unsafe extern "C" fn lock_bitstream(encoder: Encoder, params: *mut api::NV_ENC_LOCK_BITSTREAM) -> NVENCSTATUS {
    on_session(encoder, |session| {
        // SAFETY: the caller passes null or a live struct of the header's type.
        session.lock_output(unsafe { params.as_mut() }.ok_or_else(null)?)
    })
}

unsafe extern "C" fn unlock_bitstream(encoder: Encoder, buffer: api::NV_ENC_OUTPUT_PTR) -> NVENCSTATUS {
    on_session(encoder, |session| session.unlock_output(buffer))
}

unsafe extern "C" fn register_resource(encoder: Encoder, params: *mut api::NV_ENC_REGISTER_RESOURCE) -> NVENCSTATUS {
    on_session(encoder, |session| {
        // SAFETY: the caller passes null or a live struct of the header's type.
        session.register(unsafe { params.as_mut() }.ok_or_else(null)?)
    })
}

unsafe extern "C" fn unregister_resource(encoder: Encoder, resource: api::NV_ENC_REGISTERED_PTR) -> NVENCSTATUS {
    on_session(encoder, |session| session.unregister(resource))
}

unsafe extern "C" fn map_input_resource(encoder: Encoder, params: *mut api::NV_ENC_MAP_INPUT_RESOURCE) -> NVENCSTATUS {
    on_session(encoder, |session| {
        // SAFETY: the caller passes null or a live struct of the header's type.
        session.map(unsafe { params.as_mut() }.ok_or_else(null)?)
    })
}

unsafe extern "C" fn unmap_input_resource(encoder: Encoder, mapped: api::NV_ENC_INPUT_PTR) -> NVENCSTATUS {
    on_session(encoder, |session| session.unmap(mapped))
}

unsafe extern "C" fn destroy_encoder(encoder: Encoder) -> NVENCSTATUS {
    guard(|| match session::destroy(encoder) {
        Ok(()) => api::NV_ENC_SUCCESS,
        Err(Fail(status, _)) => status,
    })
}

unsafe extern "C" fn get_last_error_string(encoder: Encoder) -> *const c_char {
    catch_unwind(AssertUnwindSafe(|| match session::find(encoder) {
        // The string lives in the session until its next failure, as the API promises.
        Some(shared) => shared.lock().unwrap_or_else(PoisonError::into_inner).last_error_ptr(),
        None => c"".as_ptr(),
    }))
    .unwrap_or(c"".as_ptr())
}

// --- Not implemented: NV_ENC_ERR_UNIMPLEMENTED, one stub per signature -------------------------

unsafe extern "C" fn open_session_legacy(
    _device: *mut c_void,
    _device_type: u32,
    _encoder: *mut Encoder,
) -> NVENCSTATUS {
    api::NV_ENC_ERR_UNIMPLEMENTED
}

unsafe extern "C" fn unimplemented_count(_encoder: Encoder, _count: *mut u32) -> NVENCSTATUS {
    api::NV_ENC_ERR_UNIMPLEMENTED
}

unsafe extern "C" fn unimplemented_guid_count(_encoder: Encoder, _guid: GUID, _count: *mut u32) -> NVENCSTATUS {
    api::NV_ENC_ERR_UNIMPLEMENTED
}

unsafe extern "C" fn unimplemented_guid_guids(
    _encoder: Encoder,
    _guid: GUID,
    _guids: *mut GUID,
    _size: u32,
    _count: *mut u32,
) -> NVENCSTATUS {
    api::NV_ENC_ERR_UNIMPLEMENTED
}

unsafe extern "C" fn unimplemented_guids(
    _encoder: Encoder,
    _guids: *mut GUID,
    _size: u32,
    _count: *mut u32,
) -> NVENCSTATUS {
    api::NV_ENC_ERR_UNIMPLEMENTED
}

unsafe extern "C" fn unimplemented_formats(
    _encoder: Encoder,
    _guid: GUID,
    _formats: *mut api::NV_ENC_BUFFER_FORMAT,
    _size: u32,
    _count: *mut u32,
) -> NVENCSTATUS {
    api::NV_ENC_ERR_UNIMPLEMENTED
}

unsafe extern "C" fn unimplemented_caps(
    _encoder: Encoder,
    _guid: GUID,
    _param: *mut c_void,
    _value: *mut i32,
) -> NVENCSTATUS {
    api::NV_ENC_ERR_UNIMPLEMENTED
}

unsafe extern "C" fn unimplemented_preset_config(
    _encoder: Encoder,
    _codec: GUID,
    _preset: GUID,
    _config: *mut api::NV_ENC_PRESET_CONFIG,
) -> NVENCSTATUS {
    api::NV_ENC_ERR_UNIMPLEMENTED
}

unsafe extern "C" fn unimplemented_ptr(_encoder: Encoder, _params: *mut c_void) -> NVENCSTATUS {
    api::NV_ENC_ERR_UNIMPLEMENTED
}

unsafe extern "C" fn unimplemented_invalidate(_encoder: Encoder, _timestamp: u64) -> NVENCSTATUS {
    api::NV_ENC_ERR_UNIMPLEMENTED
}

unsafe extern "C" fn unimplemented_streams(
    _encoder: Encoder,
    _input: *mut c_void,
    _output: *mut c_void,
) -> NVENCSTATUS {
    api::NV_ENC_ERR_UNIMPLEMENTED
}

unsafe extern "C" fn unimplemented_sequence_ex(
    _encoder: Encoder,
    _params: *mut api::NV_ENC_INITIALIZE_PARAMS,
    _payload: *mut c_void,
) -> NVENCSTATUS {
    api::NV_ENC_ERR_UNIMPLEMENTED
}
