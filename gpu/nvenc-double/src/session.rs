//! Sessions, their buffers and the encoding itself, in safe Rust: `entry` turns the C calls
//! into calls on a [`Session`] found by its handle.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_void, CString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Level, Profile,
    RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSlices;
use openh264::{OpenH264API, Timestamp};
use retrofarm_media::h264::nal_units;
use retrofarm_media::I420Frame;
use retrofarm_nvenc::api::{self, NVENCSTATUS};
use retrofarm_nvenc::nv12;
use serde_json::{json, Value};

use crate::record::{self, Knobs};

/// A failed call: the status and what `nvEncGetLastErrorString` will say.
pub struct Fail(pub NVENCSTATUS, pub String);

pub type Outcome<T = ()> = Result<T, Fail>;

fn fail<T>(status: NVENCSTATUS, message: impl Into<String>) -> Outcome<T> {
    Err(Fail(status, message.into()))
}

// Handle kinds live in different ranges, so one passed where another is expected is caught.
const SESSION_TAG: usize = 0x5e55_0000_0000;
const INPUT_TAG: usize = 0x1b00_0000_0000;
const OUTPUT_TAG: usize = 0xb500_0000_0000;
const REGISTERED_TAG: usize = 0x4e60_0000_0000;
const MAPPED_TAG: usize = 0x3a90_0000_0000;

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

fn next_handle(tag: usize) -> usize {
    tag | NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

fn as_ptr(handle: usize) -> *mut c_void {
    handle as *mut c_void
}

type Shared = Arc<Mutex<Session>>;

/// Every open session, by handle.
static SESSIONS: Mutex<BTreeMap<usize, Shared>> = Mutex::new(BTreeMap::new());

/// The session behind `handle`, if it is one.
pub fn find(handle: *mut c_void) -> Option<Shared> {
    SESSIONS.lock().unwrap_or_else(PoisonError::into_inner).get(&(handle as usize)).cloned()
}

/// `nvEncOpenEncodeSessionEx`.
pub fn open(params: &api::NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS) -> Outcome<*mut c_void> {
    let knobs = Knobs::read();
    if params.version != api::NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER {
        return fail(api::NV_ENC_ERR_INVALID_VERSION, "NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS version");
    }
    if params.apiVersion != api::NVENCAPI_VERSION {
        return fail(api::NV_ENC_ERR_INVALID_VERSION, "apiVersion is not NVENCAPI_VERSION 12.1");
    }
    if params.deviceType != api::NV_ENC_DEVICE_TYPE_CUDA {
        return fail(api::NV_ENC_ERR_UNSUPPORTED_DEVICE, "the double takes CUDA devices only");
    }
    let mut sessions = SESSIONS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(max) = knobs.max_sessions {
        if sessions.len() >= max {
            record::write(
                knobs.record.as_ref(),
                json!({"event": "open_refused", "reason": "max_sessions", "max_sessions": max, "open_sessions": sessions.len()}),
            );
            return fail(api::NV_ENC_ERR_OUT_OF_MEMORY, format!("no session left ({max} open)"));
        }
    }
    let handle = next_handle(SESSION_TAG);
    record::write(
        knobs.record.as_ref(),
        json!({
            "event": "open", "session": handle, "device_type": "cuda", "device_null": params.device.is_null(),
            "api_version": "12.1", "open_sessions": sessions.len() + 1,
        }),
    );
    let session = Session::new(handle, knobs);
    sessions.insert(handle, Arc::new(Mutex::new(session)));
    Ok(as_ptr(handle))
}

/// `nvEncDestroyEncoder`: removes the session whatever its state.
pub fn destroy(handle: *mut c_void) -> Outcome {
    let removed = SESSIONS.lock().unwrap_or_else(PoisonError::into_inner).remove(&(handle as usize));
    let Some(shared) = removed else { return fail(api::NV_ENC_ERR_INVALID_PTR, "not a session") };
    let session = shared.lock().unwrap_or_else(PoisonError::into_inner);
    session.event(json!({
        "event": "destroy", "frames": session.frames, "input_buffers_left": session.inputs.len(),
        "bitstream_buffers_left": session.outputs.len(), "registered_left": session.registered.len(),
        "mapped_left": session.mapped.len(),
    }));
    if session.lost {
        return fail(api::NV_ENC_ERR_DEVICE_NOT_EXIST, "device lost");
    }
    Ok(())
}

/// The settings `nvEncInitializeEncoder` took.
struct Settings {
    width: u32,
    height: u32,
    preset: api::GUID,
    tuning: u32,
    rate_num: u32,
    rate_den: u32,
    config: api::NV_ENC_CONFIG,
}

struct InputBuffer {
    height: u32,
    pitch: u32,
    data: Box<[u8]>,
    locked: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OutputState {
    Empty,
    Ready,
    Locked,
}

struct Bitstream {
    data: Vec<u8>,
    state: OutputState,
    picture_type: u32,
    timestamp: u64,
    frame_idx: u32,
}

struct Registered {
    address: usize,
    width: u32,
    height: u32,
    pitch: u32,
}

/// One session's state.
pub struct Session {
    handle: usize,
    record: Option<PathBuf>,
    fail_after: Option<u64>,
    lost: bool,
    last_error: CString,
    settings: Option<Settings>,
    encoder: Option<Encoder>,
    inputs: HashMap<usize, InputBuffer>,
    outputs: HashMap<usize, Bitstream>,
    registered: HashMap<usize, Registered>,
    mapped: HashMap<usize, usize>,
    frames: u64,
    idrs: u64,
    force_idr_next: bool,
    sps_pps: Vec<u8>,
    picture: I420Frame,
}

// SAFETY: the only raw pointers a Session holds are the reserved pointer fields of its copy
// of NV_ENC_CONFIG, which are never read; everything else is owned data. Sessions are used
// behind a Mutex.
unsafe impl Send for Session {}

impl Session {
    fn new(handle: usize, knobs: Knobs) -> Self {
        Session {
            handle,
            record: knobs.record,
            fail_after: knobs.fail_after,
            lost: false,
            last_error: CString::default(),
            settings: None,
            encoder: None,
            inputs: HashMap::new(),
            outputs: HashMap::new(),
            registered: HashMap::new(),
            mapped: HashMap::new(),
            frames: 0,
            idrs: 0,
            force_idr_next: false,
            sps_pps: Vec::new(),
            picture: I420Frame::default(),
        }
    }

    /// Records `event` with this session's handle.
    fn event(&self, mut event: Value) {
        if let Value::Object(fields) = &mut event {
            fields.insert("session".into(), self.handle.into());
        }
        record::write(self.record.as_ref(), event);
    }

    /// Remembers a failure for `nvEncGetLastErrorString`.
    pub fn set_last_error(&mut self, message: &str) {
        self.last_error = CString::new(message.replace('\0', " ")).unwrap_or_default();
    }

    /// The last error as a C string, valid until the next failure on this session.
    pub fn last_error_ptr(&self) -> *const std::ffi::c_char {
        self.last_error.as_ptr()
    }

    /// Fails once the device is lost. A call that starts a picture (`starting`) loses the
    /// device when `RETROFARM_NVENC_DOUBLE_FAIL_AFTER` pictures were encoded.
    pub fn alive(&mut self, starting: bool) -> Outcome {
        if !self.lost && starting && self.fail_after.is_some_and(|n| self.frames >= n) {
            self.lost = true;
            self.event(json!({"event": "device_lost", "frames": self.frames}));
        }
        if self.lost {
            return fail(api::NV_ENC_ERR_DEVICE_NOT_EXIST, "the device is lost (RETROFARM_NVENC_DOUBLE_FAIL_AFTER)");
        }
        Ok(())
    }

    fn settings(&self) -> Outcome<&Settings> {
        self.settings
            .as_ref()
            .map_or_else(|| fail(api::NV_ENC_ERR_ENCODER_NOT_INITIALIZED, "nvEncInitializeEncoder was not called"), Ok)
    }

    /// `nvEncGetEncodePresetConfigEx`: a preset's defaults, for the caller to change.
    pub fn preset_config(
        &mut self,
        codec: api::GUID,
        preset: api::GUID,
        tuning: u32,
        config: &mut api::NV_ENC_PRESET_CONFIG,
    ) -> Outcome {
        self.alive(false)?;
        if config.version != api::NV_ENC_PRESET_CONFIG_VER || config.presetCfg.version != api::NV_ENC_CONFIG_VER {
            return fail(api::NV_ENC_ERR_INVALID_VERSION, "NV_ENC_PRESET_CONFIG or its presetCfg version");
        }
        if codec != api::NV_ENC_CODEC_H264_GUID {
            return fail(api::NV_ENC_ERR_UNSUPPORTED_PARAM, "the double encodes H264 only");
        }
        if !record::is_preset(&preset) {
            return fail(api::NV_ENC_ERR_INVALID_PARAM, "unknown preset GUID");
        }
        if !(api::NV_ENC_TUNING_INFO_HIGH_QUALITY..=api::NV_ENC_TUNING_INFO_LOSSLESS).contains(&tuning) {
            return fail(api::NV_ENC_ERR_INVALID_PARAM, "invalid tuning info");
        }
        // Defaults in the spirit of the driver's, deliberately not what retrofarm wants, so
        // the record shows that the caller set each setting itself.
        let low_latency =
            matches!(tuning, api::NV_ENC_TUNING_INFO_LOW_LATENCY | api::NV_ENC_TUNING_INFO_ULTRA_LOW_LATENCY);
        let cfg = &mut config.presetCfg;
        cfg.profileGUID = api::NV_ENC_CODEC_PROFILE_AUTOSELECT_GUID;
        cfg.gopLength = 250;
        cfg.frameIntervalP = if low_latency { 1 } else { 3 };
        cfg.frameFieldMode = 1;
        cfg.rcParams.version = api::NV_ENC_RC_PARAMS_VER;
        cfg.rcParams.rateControlMode = if low_latency { api::NV_ENC_PARAMS_RC_CBR } else { api::NV_ENC_PARAMS_RC_VBR };
        cfg.rcParams.averageBitRate = 5_000_000;
        cfg.rcParams.maxBitRate = 0;
        cfg.rcParams.vbvBufferSize = 0;
        cfg.rcParams.vbvInitialDelay = 0;
        let h264 = cfg.encodeCodecConfig.h264_mut();
        h264.idrPeriod = 250;
        h264.level = api::NV_ENC_LEVEL_AUTOSELECT;
        h264.entropyCodingMode = api::NV_ENC_H264_ENTROPY_CODING_MODE_AUTOSELECT;
        h264.chromaFormatIDC = 1;
        h264.set_flag(api::H264_REPEAT_SPSPPS, false);
        self.event(json!({
            "event": "preset_config", "preset": record::preset_name(&preset), "tuning": record::tuning_name(tuning),
        }));
        Ok(())
    }

    /// `nvEncInitializeEncoder`.
    pub fn initialize(
        &mut self,
        params: &api::NV_ENC_INITIALIZE_PARAMS,
        config: Option<&api::NV_ENC_CONFIG>,
    ) -> Outcome {
        self.alive(false)?;
        if self.settings.is_some() {
            return fail(api::NV_ENC_ERR_INVALID_CALL, "already initialised");
        }
        let settings = check_init(params, config)?;
        self.event(settings_event("initialize", &settings, params));
        self.settings = Some(settings);
        Ok(())
    }

    /// `nvEncReconfigureEncoder`: a new rate (and anything else that does not need a new
    /// session) from the next picture on.
    pub fn reconfigure(
        &mut self,
        params: &api::NV_ENC_RECONFIGURE_PARAMS,
        config: Option<&api::NV_ENC_CONFIG>,
    ) -> Outcome {
        self.alive(true)?;
        let current = self.settings()?;
        if params.version != api::NV_ENC_RECONFIGURE_PARAMS_VER {
            return fail(api::NV_ENC_ERR_INVALID_VERSION, "NV_ENC_RECONFIGURE_PARAMS version");
        }
        let init = &params.reInitEncodeParams;
        let next = check_init(init, config)?;
        if (next.width, next.height) != (current.width, current.height) {
            return fail(api::NV_ENC_ERR_UNIMPLEMENTED, "the double does not change the size of a session");
        }
        let reset = params.flags & api::RECONFIGURE_RESET_ENCODER != 0;
        let force_idr = params.flags & api::RECONFIGURE_FORCE_IDR != 0;
        let mut event = settings_event("reconfigure", &next, init);
        event["reset_encoder"] = reset.into();
        event["force_idr"] = force_idr.into();
        self.event(event);
        let bitrate = next.config.rcParams.averageBitRate;
        let previous = current.config.rcParams.averageBitRate;
        self.settings = Some(next);
        if reset || force_idr {
            self.force_idr_next = true;
        }
        if bitrate != previous {
            match (&mut self.encoder, self.frames) {
                (Some(encoder), 1..) => set_openh264_bitrate(encoder, bitrate, previous)?,
                // Not set up yet: the first picture's configuration carries the rate.
                _ => self.encoder = None,
            }
        }
        Ok(())
    }

    /// `nvEncCreateInputBuffer`.
    pub fn create_input(&mut self, params: &mut api::NV_ENC_CREATE_INPUT_BUFFER) -> Outcome {
        self.alive(false)?;
        if params.version != api::NV_ENC_CREATE_INPUT_BUFFER_VER {
            return fail(api::NV_ENC_ERR_INVALID_VERSION, "NV_ENC_CREATE_INPUT_BUFFER version");
        }
        let settings = self.settings()?;
        if params.bufferFmt != api::NV_ENC_BUFFER_FORMAT_NV12 {
            return fail(api::NV_ENC_ERR_UNIMPLEMENTED, "the double's input buffers are NV12 only");
        }
        if params.width < settings.width || params.height < settings.height || !params.height.is_multiple_of(2) {
            return fail(api::NV_ENC_ERR_INVALID_PARAM, "input buffer smaller than the encode size");
        }
        // Wider than the picture on purpose, as the driver's pitch usually is: a caller that
        // ignores the pitch shows at once.
        let pitch = params.width.next_multiple_of(128) + 128;
        let len = nv12::len(pitch as usize, params.height as usize);
        let handle = next_handle(INPUT_TAG);
        self.inputs.insert(
            handle,
            InputBuffer { height: params.height, pitch, data: vec![0u8; len].into_boxed_slice(), locked: false },
        );
        params.inputBuffer = as_ptr(handle);
        Ok(())
    }

    /// `nvEncDestroyInputBuffer`.
    pub fn destroy_input(&mut self, handle: *mut c_void) -> Outcome {
        if self.inputs.remove(&(handle as usize)).is_none() {
            return fail(api::NV_ENC_ERR_INVALID_PTR, "not an input buffer of this session");
        }
        self.alive(false)
    }

    /// `nvEncLockInputBuffer`.
    pub fn lock_input(&mut self, params: &mut api::NV_ENC_LOCK_INPUT_BUFFER) -> Outcome {
        self.alive(true)?;
        if params.version != api::NV_ENC_LOCK_INPUT_BUFFER_VER {
            return fail(api::NV_ENC_ERR_INVALID_VERSION, "NV_ENC_LOCK_INPUT_BUFFER version");
        }
        let Some(buffer) = self.inputs.get_mut(&(params.inputBuffer as usize)) else {
            return fail(api::NV_ENC_ERR_INVALID_PTR, "not an input buffer of this session");
        };
        if buffer.locked {
            return fail(api::NV_ENC_ERR_INVALID_CALL, "input buffer already locked");
        }
        buffer.locked = true;
        params.bufferDataPtr = buffer.data.as_mut_ptr().cast();
        params.pitch = buffer.pitch;
        Ok(())
    }

    /// `nvEncUnlockInputBuffer`.
    pub fn unlock_input(&mut self, handle: *mut c_void) -> Outcome {
        self.alive(false)?;
        let Some(buffer) = self.inputs.get_mut(&(handle as usize)) else {
            return fail(api::NV_ENC_ERR_INVALID_PTR, "not an input buffer of this session");
        };
        if !buffer.locked {
            return fail(api::NV_ENC_ERR_INVALID_CALL, "input buffer not locked");
        }
        buffer.locked = false;
        Ok(())
    }

    /// `nvEncCreateBitstreamBuffer`.
    pub fn create_output(&mut self, params: &mut api::NV_ENC_CREATE_BITSTREAM_BUFFER) -> Outcome {
        self.alive(false)?;
        if params.version != api::NV_ENC_CREATE_BITSTREAM_BUFFER_VER {
            return fail(api::NV_ENC_ERR_INVALID_VERSION, "NV_ENC_CREATE_BITSTREAM_BUFFER version");
        }
        self.settings()?;
        let handle = next_handle(OUTPUT_TAG);
        self.outputs.insert(
            handle,
            Bitstream {
                data: Vec::new(),
                state: OutputState::Empty,
                picture_type: api::NV_ENC_PIC_TYPE_UNKNOWN,
                timestamp: 0,
                frame_idx: 0,
            },
        );
        params.bitstreamBuffer = as_ptr(handle);
        Ok(())
    }

    /// `nvEncDestroyBitstreamBuffer`.
    pub fn destroy_output(&mut self, handle: *mut c_void) -> Outcome {
        if self.outputs.remove(&(handle as usize)).is_none() {
            return fail(api::NV_ENC_ERR_INVALID_PTR, "not a bitstream buffer of this session");
        }
        self.alive(false)
    }

    /// `nvEncRegisterResource`.
    pub fn register(&mut self, params: &mut api::NV_ENC_REGISTER_RESOURCE) -> Outcome {
        self.alive(true)?;
        if params.version != api::NV_ENC_REGISTER_RESOURCE_VER {
            return fail(api::NV_ENC_ERR_INVALID_VERSION, "NV_ENC_REGISTER_RESOURCE version");
        }
        let settings = self.settings()?;
        if params.resourceType != api::NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR {
            return fail(api::NV_ENC_ERR_UNIMPLEMENTED, "the double registers CUDA device pointers only");
        }
        if params.bufferFormat != api::NV_ENC_BUFFER_FORMAT_NV12 || params.bufferUsage != api::NV_ENC_INPUT_IMAGE {
            return fail(api::NV_ENC_ERR_UNIMPLEMENTED, "the double registers NV12 input images only");
        }
        if params.resourceToRegister.is_null() {
            return fail(api::NV_ENC_ERR_INVALID_PTR, "null resource");
        }
        if (params.width, params.height) != (settings.width, settings.height) {
            return fail(api::NV_ENC_ERR_INVALID_PARAM, "resource size is not the encode size");
        }
        if params.pitch < params.width || !params.pitch.is_multiple_of(4) {
            return fail(api::NV_ENC_ERR_INVALID_PARAM, "pitch below the width or not a multiple of 4");
        }
        let handle = next_handle(REGISTERED_TAG);
        self.registered.insert(
            handle,
            Registered {
                address: params.resourceToRegister as usize,
                width: params.width,
                height: params.height,
                pitch: params.pitch,
            },
        );
        params.registeredResource = as_ptr(handle);
        self.event(json!({
            "event": "register", "resource_type": "cuda_device_ptr", "width": params.width, "height": params.height,
            "pitch": params.pitch, "format": "nv12",
        }));
        Ok(())
    }

    /// `nvEncUnregisterResource`.
    pub fn unregister(&mut self, handle: *mut c_void) -> Outcome {
        if self.registered.remove(&(handle as usize)).is_none() {
            return fail(api::NV_ENC_ERR_RESOURCE_NOT_REGISTERED, "not registered with this session");
        }
        self.mapped.retain(|_, registered| *registered != handle as usize);
        self.event(json!({"event": "unregister"}));
        self.alive(false)
    }

    /// `nvEncMapInputResource`.
    pub fn map(&mut self, params: &mut api::NV_ENC_MAP_INPUT_RESOURCE) -> Outcome {
        self.alive(true)?;
        if params.version != api::NV_ENC_MAP_INPUT_RESOURCE_VER {
            return fail(api::NV_ENC_ERR_INVALID_VERSION, "NV_ENC_MAP_INPUT_RESOURCE version");
        }
        let registered = params.registeredResource as usize;
        if !self.registered.contains_key(&registered) {
            return fail(api::NV_ENC_ERR_RESOURCE_NOT_REGISTERED, "not registered with this session");
        }
        if self.mapped.values().any(|&r| r == registered) {
            return fail(api::NV_ENC_ERR_MAP_FAILED, "already mapped");
        }
        let handle = next_handle(MAPPED_TAG);
        self.mapped.insert(handle, registered);
        params.mappedResource = as_ptr(handle);
        params.mappedBufferFmt = api::NV_ENC_BUFFER_FORMAT_NV12;
        self.event(json!({"event": "map"}));
        Ok(())
    }

    /// `nvEncUnmapInputResource`.
    pub fn unmap(&mut self, handle: *mut c_void) -> Outcome {
        self.alive(false)?;
        if self.mapped.remove(&(handle as usize)).is_none() {
            return fail(api::NV_ENC_ERR_RESOURCE_NOT_MAPPED, "not mapped");
        }
        self.event(json!({"event": "unmap"}));
        Ok(())
    }

    /// `nvEncEncodePicture`: encodes synchronously into the output buffer.
    pub fn encode(&mut self, params: &api::NV_ENC_PIC_PARAMS) -> Outcome {
        self.alive(true)?;
        if params.version != api::NV_ENC_PIC_PARAMS_VER {
            return fail(api::NV_ENC_ERR_INVALID_VERSION, "NV_ENC_PIC_PARAMS version");
        }
        let settings = self.settings()?;
        let (width, height) = (settings.width, settings.height);
        if (params.inputWidth, params.inputHeight) != (width, height) {
            return fail(api::NV_ENC_ERR_INVALID_PARAM, "input size is not the encode size");
        }
        if params.bufferFmt != api::NV_ENC_BUFFER_FORMAT_NV12 {
            return fail(api::NV_ENC_ERR_INVALID_PARAM, "bufferFmt is not the input's format (NV12)");
        }
        if params.pictureStruct != api::NV_ENC_PIC_STRUCT_FRAME {
            return fail(api::NV_ENC_ERR_UNIMPLEMENTED, "the double encodes progressive frames only");
        }
        let output = params.outputBitstream as usize;
        match self.outputs.get(&output) {
            None => return fail(api::NV_ENC_ERR_INVALID_PTR, "not a bitstream buffer of this session"),
            Some(out) if out.state == OutputState::Locked => {
                return fail(api::NV_ENC_ERR_INVALID_CALL, "the bitstream buffer is locked")
            }
            Some(_) => {}
        }

        // Read the picture into I420.
        let input = params.inputBuffer as usize;
        let source = if let Some(buffer) = self.inputs.get(&input) {
            if buffer.locked {
                return fail(api::NV_ENC_ERR_INVALID_CALL, "the input buffer is still locked");
            }
            if params.inputPitch != buffer.pitch {
                return fail(api::NV_ENC_ERR_INVALID_PARAM, "inputPitch is not the buffer's pitch");
            }
            nv12::copy_to_i420(
                &buffer.data,
                buffer.pitch as usize,
                buffer.height as usize,
                width as usize,
                height as usize,
                &mut self.picture,
            );
            "buffer"
        } else if let Some(registered) = self.mapped.get(&input).and_then(|r| self.registered.get(r)) {
            if params.inputPitch != registered.pitch {
                return fail(api::NV_ENC_ERR_INVALID_PARAM, "inputPitch is not the registered pitch");
            }
            let (pitch, rows) = (registered.pitch as usize, registered.height as usize);
            // SAFETY: the double has no CUDA: a registered "device pointer" is a host address
            // of an NV12 picture, `pitch * rows * 3 / 2` bytes, which the registering caller
            // keeps valid while it is registered (the contract of
            // `NvencEncoder::register_cuda_nv12` with the double).
            let data = unsafe { std::slice::from_raw_parts(registered.address as *const u8, nv12::len(pitch, rows)) };
            nv12::copy_to_i420(
                data,
                pitch,
                rows,
                registered.width as usize,
                registered.height as usize,
                &mut self.picture,
            );
            "registered"
        } else if self.registered.contains_key(&input) {
            return fail(api::NV_ENC_ERR_RESOURCE_NOT_MAPPED, "a registered resource must be mapped to be encoded");
        } else {
            return fail(api::NV_ENC_ERR_INVALID_PTR, "not an input buffer or mapped resource of this session");
        };

        let flags = params.encodePicFlags;
        let forced =
            self.force_idr_next || flags & (api::NV_ENC_PIC_FLAG_FORCEIDR | api::NV_ENC_PIC_FLAG_FORCEINTRA) != 0;
        if self.encoder.is_none() {
            let config = openh264_config(self.settings()?);
            let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
                .or_else(|e| fail(api::NV_ENC_ERR_GENERIC, format!("openh264: {e}")))?;
            self.encoder = Some(encoder);
        }
        let Some(encoder) = self.encoder.as_mut() else {
            return fail(api::NV_ENC_ERR_GENERIC, "no OpenH264 encoder");
        };
        if forced {
            encoder.force_intra_frame();
        }
        let (w, h) = (self.picture.width(), self.picture.height());
        let yuv = YUVSlices::new(
            (self.picture.y(), self.picture.u(), self.picture.v()),
            (w, h),
            (self.picture.y_stride(), self.picture.chroma_stride(), self.picture.chroma_stride()),
        );
        let stream = encoder
            .encode_at(&yuv, Timestamp::from_millis(params.inputTimeStamp / 1000))
            .or_else(|e| fail(api::NV_ENC_ERR_GENERIC, format!("openh264: {e}")))?;
        let picture_type = match stream.frame_type() {
            FrameType::IDR => api::NV_ENC_PIC_TYPE_IDR,
            FrameType::I => api::NV_ENC_PIC_TYPE_I,
            FrameType::P => api::NV_ENC_PIC_TYPE_P,
            FrameType::Skip => api::NV_ENC_PIC_TYPE_SKIPPED,
            _ => api::NV_ENC_PIC_TYPE_UNKNOWN,
        };
        let encoded = stream.to_vec();
        self.force_idr_next = false;

        // SPS and PPS as NVENC writes them: with the first IDR, before every IDR with
        // repeatSPSPPS, and before any picture flagged NV_ENC_PIC_FLAG_OUTPUT_SPSPPS.
        let repeat = self.settings()?.config.encodeCodecConfig.h264().flag(api::H264_REPEAT_SPSPPS);
        let wants_headers = flags & api::NV_ENC_PIC_FLAG_OUTPUT_SPSPPS != 0;
        let data = if picture_type == api::NV_ENC_PIC_TYPE_IDR {
            let (headers, rest) = split_headers(&encoded);
            if self.idrs == 0 {
                self.sps_pps = headers.clone();
            }
            let keep = self.idrs == 0 || repeat || wants_headers;
            self.idrs += 1;
            if keep {
                [headers, rest].concat()
            } else {
                rest
            }
        } else if wants_headers {
            [self.sps_pps.clone(), encoded].concat()
        } else {
            encoded
        };

        self.frames += 1;
        self.event(json!({
            "event": "encode", "frame": self.frames, "frame_idx": params.frameIdx, "input": source,
            "flags": flags, "force_idr": flags & api::NV_ENC_PIC_FLAG_FORCEIDR != 0,
            "output_spspps": wants_headers, "picture_type": record::picture_type_name(picture_type),
            "bytes": data.len(),
        }));
        if let Some(out) = self.outputs.get_mut(&output) {
            out.data = data;
            out.state = OutputState::Ready;
            out.picture_type = picture_type;
            out.timestamp = params.inputTimeStamp;
            out.frame_idx = params.frameIdx;
        }
        Ok(())
    }

    /// `nvEncLockBitstream`.
    pub fn lock_output(&mut self, params: &mut api::NV_ENC_LOCK_BITSTREAM) -> Outcome {
        self.alive(false)?;
        if params.version != api::NV_ENC_LOCK_BITSTREAM_VER {
            return fail(api::NV_ENC_ERR_INVALID_VERSION, "NV_ENC_LOCK_BITSTREAM version");
        }
        let Some(out) = self.outputs.get_mut(&(params.outputBitstream as usize)) else {
            return fail(api::NV_ENC_ERR_INVALID_PTR, "not a bitstream buffer of this session");
        };
        match out.state {
            OutputState::Ready => {}
            OutputState::Locked => return fail(api::NV_ENC_ERR_INVALID_CALL, "already locked"),
            OutputState::Empty => return fail(api::NV_ENC_ERR_INVALID_CALL, "nothing was encoded into this buffer"),
        }
        out.state = OutputState::Locked;
        params.bitstreamBufferPtr = out.data.as_mut_ptr().cast();
        params.bitstreamSizeInBytes = u32::try_from(out.data.len()).unwrap_or(u32::MAX);
        params.pictureType = out.picture_type;
        params.pictureStruct = api::NV_ENC_PIC_STRUCT_FRAME;
        params.outputTimeStamp = out.timestamp;
        params.frameIdx = out.frame_idx;
        params.frameIdxDisplay = out.frame_idx;
        params.numSlices = 1;
        params.hwEncodeStatus = 0;
        Ok(())
    }

    /// `nvEncUnlockBitstream`.
    pub fn unlock_output(&mut self, handle: *mut c_void) -> Outcome {
        self.alive(false)?;
        let Some(out) = self.outputs.get_mut(&(handle as usize)) else {
            return fail(api::NV_ENC_ERR_INVALID_PTR, "not a bitstream buffer of this session");
        };
        if out.state != OutputState::Locked {
            return fail(api::NV_ENC_ERR_INVALID_CALL, "not locked");
        }
        out.state = OutputState::Empty;
        Ok(())
    }
}

/// Checks `NV_ENC_INITIALIZE_PARAMS` (and the config it points to) for what the double
/// implements.
fn check_init(params: &api::NV_ENC_INITIALIZE_PARAMS, config: Option<&api::NV_ENC_CONFIG>) -> Outcome<Settings> {
    if params.version != api::NV_ENC_INITIALIZE_PARAMS_VER {
        return fail(api::NV_ENC_ERR_INVALID_VERSION, "NV_ENC_INITIALIZE_PARAMS version");
    }
    if params.encodeGUID != api::NV_ENC_CODEC_H264_GUID {
        return fail(api::NV_ENC_ERR_UNSUPPORTED_PARAM, "the double encodes H264 only");
    }
    if !record::is_preset(&params.presetGUID) {
        return fail(api::NV_ENC_ERR_INVALID_PARAM, "unknown preset GUID");
    }
    if params.encodeWidth == 0
        || params.encodeHeight == 0
        || !params.encodeWidth.is_multiple_of(2)
        || !params.encodeHeight.is_multiple_of(2)
    {
        return fail(api::NV_ENC_ERR_INVALID_PARAM, "encode size must be even and not zero");
    }
    if params.frameRateNum == 0 || params.frameRateDen == 0 {
        return fail(api::NV_ENC_ERR_INVALID_PARAM, "frame rate not set");
    }
    if params.enableEncodeAsync != 0 {
        return fail(api::NV_ENC_ERR_UNSUPPORTED_PARAM, "asynchronous mode does not exist on Linux");
    }
    if params.enablePTD != 1 {
        return fail(api::NV_ENC_ERR_UNIMPLEMENTED, "the double needs enablePTD = 1");
    }
    if params.privDataSize != 0 || !params.privData.is_null() {
        return fail(api::NV_ENC_ERR_INVALID_PARAM, "privData must be empty");
    }
    let Some(config) = config else {
        return fail(api::NV_ENC_ERR_UNIMPLEMENTED, "the double needs encodeConfig");
    };
    if config.version != api::NV_ENC_CONFIG_VER {
        return fail(api::NV_ENC_ERR_INVALID_VERSION, "NV_ENC_CONFIG version");
    }
    if config.frameIntervalP != 1 {
        return fail(api::NV_ENC_ERR_UNIMPLEMENTED, "the double does not make B-frames (frameIntervalP must be 1)");
    }
    if config.rcParams.rateControlMode == api::NV_ENC_PARAMS_RC_CONSTQP {
        return fail(api::NV_ENC_ERR_UNIMPLEMENTED, "the double has no constant QP");
    }
    if config.rcParams.averageBitRate == 0 {
        return fail(api::NV_ENC_ERR_INVALID_PARAM, "averageBitRate not set");
    }
    let profile = record::profile_name(&config.profileGUID);
    if profile.starts_with("unknown") {
        return fail(api::NV_ENC_ERR_UNSUPPORTED_PARAM, "unknown H264 profile GUID");
    }
    let h264 = config.encodeCodecConfig.h264();
    if profile == "baseline" && h264.entropyCodingMode == api::NV_ENC_H264_ENTROPY_CODING_MODE_CABAC {
        return fail(api::NV_ENC_ERR_INVALID_PARAM, "baseline profile has no CABAC");
    }
    if h264.chromaFormatIDC != 1 {
        return fail(api::NV_ENC_ERR_UNIMPLEMENTED, "the double encodes 4:2:0 only");
    }
    Ok(Settings {
        width: params.encodeWidth,
        height: params.encodeHeight,
        preset: params.presetGUID,
        tuning: params.tuningInfo,
        rate_num: params.frameRateNum,
        rate_den: params.frameRateDen,
        config: *config,
    })
}

/// The recorded form of the settings.
fn settings_event(name: &str, s: &Settings, params: &api::NV_ENC_INITIALIZE_PARAMS) -> Value {
    let rc = &s.config.rcParams;
    let h264 = s.config.encodeCodecConfig.h264();
    json!({
        "event": name,
        "codec": "h264",
        "preset": record::preset_name(&s.preset),
        "tuning": record::tuning_name(s.tuning),
        "width": s.width,
        "height": s.height,
        "max_width": params.maxEncodeWidth,
        "max_height": params.maxEncodeHeight,
        "frame_rate_num": s.rate_num,
        "frame_rate_den": s.rate_den,
        "enable_ptd": params.enablePTD,
        "enable_encode_async": params.enableEncodeAsync,
        "profile": record::profile_name(&s.config.profileGUID),
        "rc_mode": record::rc_mode_name(rc.rateControlMode),
        "average_bitrate": rc.averageBitRate,
        "max_bitrate": rc.maxBitRate,
        "vbv_buffer_size": rc.vbvBufferSize,
        "vbv_initial_delay": rc.vbvInitialDelay,
        "lookahead": rc.flags & api::RC_ENABLE_LOOKAHEAD != 0,
        "gop_length": s.config.gopLength,
        "frame_interval_p": s.config.frameIntervalP,
        "idr_period": h264.idrPeriod,
        "repeat_spspps": u32::from(h264.flag(api::H264_REPEAT_SPSPPS)),
        "level": h264.level,
        "entropy_coding_mode": h264.entropyCodingMode,
    })
}

/// OpenH264 settings standing in for the session's.
fn openh264_config(settings: &Settings) -> EncoderConfig {
    let rc = &settings.config.rcParams;
    let fps = settings.rate_num as f32 / settings.rate_den as f32;
    let idr_period = settings.config.encodeCodecConfig.h264().idrPeriod;
    let period = if idr_period == api::NVENC_INFINITE_GOPLENGTH {
        IntraFramePeriod::auto()
    } else {
        IntraFramePeriod::from_num_frames(idr_period)
    };
    EncoderConfig::new()
        .usage_type(UsageType::CameraVideoRealTime)
        .profile(Profile::Baseline)
        // High enough that OpenH264's level limit never caps a bitrate a reconfigure raises.
        .level(Level::Level_4_1)
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(rc.averageBitRate))
        .max_frame_rate(FrameRate::from_hz(fps))
        .skip_frames(false)
        .complexity(Complexity::Low)
        .num_threads(1)
        .sps_pps_strategy(SpsPpsStrategy::ConstantId)
        .intra_frame_period(period)
        .scene_change_detect(false)
}

/// Changes a running OpenH264 encoder's target bitrate (`ENCODER_OPTION_BITRATE`, as
/// retrofarm-media does). The openh264 crate caps layer 0's peak at the first target, so a
/// higher rate raises that cap first (`ENCODER_OPTION_MAX_BITRATE`).
fn set_openh264_bitrate(encoder: &mut Encoder, bps: u32, previous: u32) -> Outcome {
    use std::ffi::c_int;
    /// `SBitrateInfo` of codec_app_def.h.
    #[repr(C)]
    struct BitrateInfo {
        layer: c_int,
        bitrate: c_int,
    }
    const ENCODER_OPTION_BITRATE: c_int = 5;
    const ENCODER_OPTION_MAX_BITRATE: c_int = 6;
    const SPATIAL_LAYER_0: c_int = 0;
    const SPATIAL_LAYER_ALL: c_int = 4;
    let bitrate = c_int::try_from(bps).unwrap_or(c_int::MAX);
    let mut set = |option: c_int, layer: c_int| {
        let mut info = BitrateInfo { layer, bitrate };
        // SAFETY: the encoder is set up (it encoded a picture); both options read one
        // SBitrateInfo through the pointer, which points at a live value of that layout.
        let code = unsafe { encoder.raw_api().set_option(option, (&raw mut info).cast::<c_void>()) };
        if code == 0 {
            Ok(())
        } else {
            fail(
                api::NV_ENC_ERR_INVALID_PARAM,
                format!("openh264 refused the bitrate {bps} (option {option}, code {code})"),
            )
        }
    };
    if bps > previous {
        set(ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0)?;
    }
    set(ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL)
}

/// Splits an access unit into its SPS and PPS and the rest, each re-prefixed with 4-byte
/// start codes.
fn split_headers(access_unit: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut headers, mut rest) = (Vec::new(), Vec::new());
    for nal in nal_units(access_unit) {
        let Some(&first) = nal.first() else { continue };
        let target = if matches!(first & 0x1f, 7 | 8) { &mut headers } else { &mut rest };
        target.extend_from_slice(&[0, 0, 0, 1]);
        target.extend_from_slice(nal);
    }
    (headers, rest)
}
