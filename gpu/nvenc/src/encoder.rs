//! [`NvencEncoder`]: one NVENC H264 session behind [`retrofarm_media::VideoEncoder`].
//!
//! Settings, for low-latency streaming to browsers (the same stream shape as the OpenH264
//! path, so a viewer cannot tell them apart):
//! - preset P1 (configurable P1–P3), tuning ultra-low-latency; the preset's configuration is
//!   read with `nvEncGetEncodePresetConfigEx` and then changed:
//! - CBR at the configured bitrate with a VBV of one frame's bits (bitrate / fps), so no
//!   picture waits in a buffer;
//! - one infinite GOP (`gopLength` and `idrPeriod` = `NVENC_INFINITE_GOPLENGTH`): IDRs come
//!   only on the first picture, on request (`NV_ENC_PIC_FLAG_FORCEIDR`) and every
//!   `keyframe_interval` of presentation time, as with OpenH264;
//! - `frameIntervalP = 1`: no B-frames, every picture comes out as soon as it went in;
//! - baseline profile, CAVLC: the stream is constrained-baseline compatible, what Chromium
//!   offers as `profile-level-id=42e01f`; level left to the driver (it picks the lowest that
//!   fits the size and rate);
//! - `repeatSPSPPS = 1` (SPS and PPS before every IDR), `enablePTD = 1` (NVENC decides
//!   picture types), synchronous mode (`enableEncodeAsync = 0`; Linux has no other).
//!
//! Input: host input buffers (`nvEncCreateInputBuffer`, NV12): each I420 picture is copied
//! into the locked buffer at the driver's pitch. The zero-copy path
//! ([`NvencEncoder::register_cuda_nv12`], [`NvencEncoder::encode_registered`]) registers a CUDA
//! allocation holding NV12 (`nvEncRegisterResource` with `NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR`)
//! and maps it for each picture; it needs CUDA hardware, and is exercised here only against
//! the test double.
//!
//! Output: one bitstream buffer; after `nvEncEncodePicture`, `nvEncLockBitstream` blocks until
//! the picture is encoded, the Annex-B bytes are copied out, and the buffer is unlocked.

use std::ffi::c_void;
use std::fmt;
use std::ptr;
use std::time::{Duration, Instant};

use retrofarm_media::{
    EncodedFrame, I420Frame, Picture, PictureFormat, VideoCodec, VideoConfig, VideoEncoder, VideoError,
};

use crate::api::{self, Encoder, NVENCSTATUS};
use crate::error::{NvencError, Phase};
use crate::loader::Library;
use crate::nv12;

/// An NVENC preset: P1 is the fastest. Presets from P3 on may enable B-frames for some
/// tunings; retrofarm forces them off (`frameIntervalP = 1`) whatever the preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Preset {
    /// `NV_ENC_PRESET_P1_GUID`: fastest, lowest quality.
    #[default]
    P1,
    /// `NV_ENC_PRESET_P2_GUID`.
    P2,
    /// `NV_ENC_PRESET_P3_GUID`.
    P3,
}

impl Preset {
    /// The preset's GUID.
    pub fn guid(self) -> api::GUID {
        match self {
            Preset::P1 => api::NV_ENC_PRESET_P1_GUID,
            Preset::P2 => api::NV_ENC_PRESET_P2_GUID,
            Preset::P3 => api::NV_ENC_PRESET_P3_GUID,
        }
    }

    /// `P1`, `P2` or `P3`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::P1 => "P1",
            Preset::P2 => "P2",
            Preset::P3 => "P3",
        }
    }
}

/// An NVENC tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tuning {
    /// `NV_ENC_TUNING_INFO_ULTRA_LOW_LATENCY`.
    #[default]
    UltraLowLatency,
    /// `NV_ENC_TUNING_INFO_LOW_LATENCY`.
    LowLatency,
}

impl Tuning {
    /// The `NV_ENC_TUNING_INFO` value.
    pub fn info(self) -> api::NV_ENC_TUNING_INFO {
        match self {
            Tuning::UltraLowLatency => api::NV_ENC_TUNING_INFO_ULTRA_LOW_LATENCY,
            Tuning::LowLatency => api::NV_ENC_TUNING_INFO_LOW_LATENCY,
        }
    }
}

/// NVENC-specific choices; the rest comes from [`VideoConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NvencOptions {
    /// The preset (default P1).
    pub preset: Preset,
    /// The tuning (default ultra-low-latency).
    pub tuning: Tuning,
}

/// The frame rate as NVENC's fraction: whole rates as `n/1`, others in thousandths.
pub fn frame_rate(fps: f32) -> (u32, u32) {
    if fps.fract() == 0.0 {
        (fps as u32, 1)
    } else {
        ((f64::from(fps) * 1000.0).round() as u32, 1000)
    }
}

/// One frame's bits at `bps` and `fps`: the VBV size that lets no picture wait.
pub fn vbv_bits(bps: u32, fps: f32) -> u32 {
    (f64::from(bps) / f64::from(fps)).round().max(1.0) as u32
}

/// Sets CBR at `bps` with a one-frame VBV.
fn set_rate(rc: &mut api::NV_ENC_RC_PARAMS, bps: u32, fps: f32) {
    rc.rateControlMode = api::NV_ENC_PARAMS_RC_CBR;
    rc.averageBitRate = bps;
    rc.maxBitRate = bps;
    let vbv = vbv_bits(bps, fps);
    rc.vbvBufferSize = vbv;
    rc.vbvInitialDelay = vbv;
}

/// Changes a preset's configuration into retrofarm's low-latency one (see the module docs).
pub fn apply_low_latency(config: &mut api::NV_ENC_CONFIG, video: &VideoConfig) {
    config.version = api::NV_ENC_CONFIG_VER;
    config.profileGUID = api::NV_ENC_H264_PROFILE_BASELINE_GUID;
    config.gopLength = api::NVENC_INFINITE_GOPLENGTH;
    config.frameIntervalP = 1;
    set_rate(&mut config.rcParams, video.bitrate_bps, video.max_fps);
    // Lookahead delays output by its depth.
    config.rcParams.flags &= !api::RC_ENABLE_LOOKAHEAD;
    config.rcParams.lookaheadDepth = 0;
    let h264 = config.encodeCodecConfig.h264_mut();
    h264.idrPeriod = api::NVENC_INFINITE_GOPLENGTH;
    h264.set_flag(api::H264_REPEAT_SPSPPS, true);
    h264.set_flag(api::H264_DISABLE_SPSPPS, false);
    h264.level = api::NV_ENC_LEVEL_AUTOSELECT;
    // Baseline has no CABAC.
    h264.entropyCodingMode = api::NV_ENC_H264_ENTROPY_CODING_MODE_CAVLC;
    h264.chromaFormatIDC = 1;
}

/// A CUDA allocation registered with an encoder's session as an NV12 input picture. Made by
/// [`NvencEncoder::register_cuda_nv12`]; valid until unregistered or until the session is
/// replaced (a size change) or dropped.
#[derive(Debug)]
pub struct RegisteredInput {
    handle: usize,
    pitch: u32,
    width: u32,
    height: u32,
    serial: u64,
}

impl RegisteredInput {
    /// The picture size it was registered for.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

/// One NVENC session and its buffers. Dropping it destroys the buffers, then the session.
struct Session {
    library: Library,
    encoder: Encoder,
    input: api::NV_ENC_INPUT_PTR,
    bitstream: api::NV_ENC_OUTPUT_PTR,
    registered: Vec<api::NV_ENC_REGISTERED_PTR>,
    init: Box<api::NV_ENC_INITIALIZE_PARAMS>,
    config: Box<api::NV_ENC_CONFIG>,
    width: u32,
    height: u32,
}

impl Session {
    /// Opens, configures and initialises a session and creates its buffers.
    fn open(
        library: &Library,
        device: *mut c_void,
        video: &VideoConfig,
        options: NvencOptions,
        (width, height): (u32, u32),
    ) -> Result<Session, NvencError> {
        let fns = *library.fns();
        let mut params = api::NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS::default();
        params.deviceType = api::NV_ENC_DEVICE_TYPE_CUDA;
        params.device = device;
        params.apiVersion = api::NVENCAPI_VERSION;
        let mut encoder: Encoder = ptr::null_mut();
        // SAFETY: both pointers point at live values of the header's types; `device` is what
        // the caller of `NvencEncoder::new` vouched for (null or a CUDA context).
        let status = unsafe { (fns.open_session_ex)(&mut params, &mut encoder) };
        if status != api::NV_ENC_SUCCESS {
            return Err(NvencError::from_status("nvEncOpenEncodeSessionEx", status, Phase::Open, String::new()));
        }
        if encoder.is_null() {
            return Err(NvencError::Invalid("nvEncOpenEncodeSessionEx returned no session"));
        }
        // From here on, dropping `session` destroys what was made.
        let mut session = Session {
            library: library.clone(),
            encoder,
            input: ptr::null_mut(),
            bitstream: ptr::null_mut(),
            registered: Vec::new(),
            init: Box::default(),
            config: Box::default(),
            width,
            height,
        };

        let mut preset = Box::new(api::NV_ENC_PRESET_CONFIG::default());
        preset.presetCfg.version = api::NV_ENC_CONFIG_VER;
        preset.presetCfg.rcParams.version = api::NV_ENC_RC_PARAMS_VER;
        // SAFETY: a live session handle and a live, versioned NV_ENC_PRESET_CONFIG.
        let status = unsafe {
            (fns.get_preset_config_ex)(
                encoder,
                api::NV_ENC_CODEC_H264_GUID,
                options.preset.guid(),
                options.tuning.info(),
                &mut *preset,
            )
        };
        session.check("nvEncGetEncodePresetConfigEx", Phase::Setup, status)?;
        *session.config = preset.presetCfg;
        apply_low_latency(&mut session.config, video);

        let (rate_num, rate_den) = frame_rate(video.max_fps);
        let init = &mut *session.init;
        init.encodeGUID = api::NV_ENC_CODEC_H264_GUID;
        init.presetGUID = options.preset.guid();
        init.tuningInfo = options.tuning.info();
        init.encodeWidth = width;
        init.encodeHeight = height;
        init.darWidth = width;
        init.darHeight = height;
        init.maxEncodeWidth = width;
        init.maxEncodeHeight = height;
        init.frameRateNum = rate_num;
        init.frameRateDen = rate_den;
        init.enableEncodeAsync = 0;
        init.enablePTD = 1;
        init.encodeConfig = &mut *session.config;
        // SAFETY: a live session; `init` and the config it points to live in boxes owned by
        // the session, so the pointer stays valid for as long as the driver may use it.
        let status = unsafe { (fns.initialize)(encoder, &mut *session.init) };
        session.check("nvEncInitializeEncoder", Phase::Setup, status)?;

        let mut create = api::NV_ENC_CREATE_INPUT_BUFFER::default();
        create.width = width;
        create.height = height;
        create.bufferFmt = api::NV_ENC_BUFFER_FORMAT_NV12;
        // SAFETY: a live, initialised session and a live, versioned struct.
        let status = unsafe { (fns.create_input_buffer)(encoder, &mut create) };
        session.check("nvEncCreateInputBuffer", Phase::Setup, status)?;
        session.input = create.inputBuffer;

        let mut create = api::NV_ENC_CREATE_BITSTREAM_BUFFER::default();
        // SAFETY: as above.
        let status = unsafe { (fns.create_bitstream_buffer)(encoder, &mut create) };
        session.check("nvEncCreateBitstreamBuffer", Phase::Setup, status)?;
        session.bitstream = create.bitstreamBuffer;
        if session.input.is_null() || session.bitstream.is_null() {
            return Err(NvencError::Invalid("NVENC returned a null buffer"));
        }
        Ok(session)
    }

    /// `Ok` for success, else the classified error with the driver's description.
    fn check(&self, call: &'static str, phase: Phase, status: NVENCSTATUS) -> Result<(), NvencError> {
        if status == api::NV_ENC_SUCCESS {
            Ok(())
        } else {
            Err(NvencError::from_status(call, status, phase, self.library.last_error(self.encoder)))
        }
    }

    /// Copies `frame` into the input buffer, encodes it and reads the output into `out`.
    /// Returns whether the picture is an IDR.
    fn encode_host(
        &mut self,
        frame: &I420Frame,
        flags: u32,
        timestamp: u64,
        index: u32,
        out: &mut Vec<u8>,
    ) -> Result<bool, NvencError> {
        let fns = *self.library.fns();
        let mut lock = api::NV_ENC_LOCK_INPUT_BUFFER::default();
        lock.inputBuffer = self.input;
        // SAFETY: a live session, its own input buffer, a live versioned struct.
        let status = unsafe { (fns.lock_input_buffer)(self.encoder, &mut lock) };
        self.check("nvEncLockInputBuffer", Phase::Stream, status)?;
        let (width, height) = (self.width as usize, self.height as usize);
        let pitch = lock.pitch as usize;
        let copied = if lock.bufferDataPtr.is_null() || pitch < width {
            Err(NvencError::Invalid("nvEncLockInputBuffer returned no buffer or a pitch below the width"))
        } else {
            // SAFETY: a locked NV12 input buffer of `width`x`height` holds `height` luma rows
            // and `height / 2` chroma rows, `pitch` bytes apart, and is writable by us alone
            // until it is unlocked below.
            let data =
                unsafe { std::slice::from_raw_parts_mut(lock.bufferDataPtr.cast::<u8>(), nv12::len(pitch, height)) };
            nv12::copy_from_i420(frame, data, pitch, height);
            Ok(())
        };
        // SAFETY: the buffer locked above.
        let status = unsafe { (fns.unlock_input_buffer)(self.encoder, self.input) };
        copied?;
        self.check("nvEncUnlockInputBuffer", Phase::Stream, status)?;
        self.encode_and_read(self.input, lock.pitch, api::NV_ENC_BUFFER_FORMAT_NV12, flags, timestamp, index, out)
    }

    /// Maps a registered resource, encodes it, reads the output and unmaps it.
    fn encode_mapped(
        &mut self,
        input: &RegisteredInput,
        flags: u32,
        timestamp: u64,
        index: u32,
        out: &mut Vec<u8>,
    ) -> Result<bool, NvencError> {
        let fns = *self.library.fns();
        let mut map = api::NV_ENC_MAP_INPUT_RESOURCE::default();
        map.registeredResource = input.handle as api::NV_ENC_REGISTERED_PTR;
        // SAFETY: a live session and a resource registered with it (checked by the caller).
        let status = unsafe { (fns.map_input_resource)(self.encoder, &mut map) };
        self.check("nvEncMapInputResource", Phase::Stream, status)?;
        let result =
            self.encode_and_read(map.mappedResource, input.pitch, map.mappedBufferFmt, flags, timestamp, index, out);
        // SAFETY: the mapping made above; in synchronous mode the encode is complete once
        // its bitstream was locked, so the input may be unmapped.
        let status = unsafe { (fns.unmap_input_resource)(self.encoder, map.mappedResource) };
        let keyframe = result?;
        self.check("nvEncUnmapInputResource", Phase::Stream, status)?;
        Ok(keyframe)
    }

    #[allow(clippy::too_many_arguments)]
    fn encode_and_read(
        &mut self,
        input: api::NV_ENC_INPUT_PTR,
        pitch: u32,
        format: api::NV_ENC_BUFFER_FORMAT,
        flags: u32,
        timestamp: u64,
        index: u32,
        out: &mut Vec<u8>,
    ) -> Result<bool, NvencError> {
        let fns = *self.library.fns();
        let mut pic = api::NV_ENC_PIC_PARAMS::default();
        pic.inputWidth = self.width;
        pic.inputHeight = self.height;
        pic.inputPitch = pitch;
        pic.encodePicFlags = flags;
        pic.frameIdx = index;
        pic.inputTimeStamp = timestamp;
        pic.inputBuffer = input;
        pic.outputBitstream = self.bitstream;
        pic.bufferFmt = format;
        pic.pictureStruct = api::NV_ENC_PIC_STRUCT_FRAME;
        // SAFETY: a live session, its own (unlocked or mapped) input and output buffers, a
        // live versioned struct.
        let status = unsafe { (fns.encode_picture)(self.encoder, &mut pic) };
        out.clear();
        if status == api::NV_ENC_ERR_NEED_MORE_INPUT {
            // Only with B-frames, which are off: nothing to read for this picture.
            return Ok(false);
        }
        self.check("nvEncEncodePicture", Phase::Stream, status)?;

        let mut lock = api::NV_ENC_LOCK_BITSTREAM::default();
        lock.outputBitstream = self.bitstream;
        // SAFETY: a live session, its own bitstream buffer holding the picture just encoded;
        // `doNotWait` is 0, so the call returns once the picture is complete.
        let status = unsafe { (fns.lock_bitstream)(self.encoder, &mut lock) };
        self.check("nvEncLockBitstream", Phase::Stream, status)?;
        let len = lock.bitstreamSizeInBytes as usize;
        let copied = if len > 0 && lock.bitstreamBufferPtr.is_null() {
            Err(NvencError::Invalid("nvEncLockBitstream returned no data"))
        } else {
            if len > 0 {
                // SAFETY: a locked bitstream buffer holds `bitstreamSizeInBytes` bytes at
                // `bitstreamBufferPtr`, readable until it is unlocked below.
                out.extend_from_slice(unsafe { std::slice::from_raw_parts(lock.bitstreamBufferPtr.cast::<u8>(), len) });
            }
            Ok(lock.pictureType == api::NV_ENC_PIC_TYPE_IDR)
        };
        // SAFETY: the buffer locked above.
        let status = unsafe { (fns.unlock_bitstream)(self.encoder, self.bitstream) };
        let keyframe = copied?;
        self.check("nvEncUnlockBitstream", Phase::Stream, status)?;
        Ok(keyframe)
    }

    /// Changes the CBR rate and the frame rate it budgets for in the running session: no new
    /// session, no IDR.
    fn reconfigure_rate(&mut self, bps: u32, fps: f32) -> Result<(), NvencError> {
        let fns = *self.library.fns();
        let previous = (self.config.rcParams, self.init.frameRateNum, self.init.frameRateDen);
        set_rate(&mut self.config.rcParams, bps, fps);
        (self.init.frameRateNum, self.init.frameRateDen) = frame_rate(fps);
        let mut params = Box::new(api::NV_ENC_RECONFIGURE_PARAMS::default());
        params.reInitEncodeParams = *self.init;
        params.reInitEncodeParams.encodeConfig = &mut *self.config;
        // resetEncoder = 0, forceIDR = 0: the stream goes on.
        params.flags = 0;
        // SAFETY: a live session; the params and the config they point to live across the call.
        let status = unsafe { (fns.reconfigure)(self.encoder, &mut *params) };
        if let Err(error) = self.check("nvEncReconfigureEncoder", Phase::Stream, status) {
            (self.config.rcParams, self.init.frameRateNum, self.init.frameRateDen) = previous;
            return Err(error);
        }
        Ok(())
    }

    fn register(&mut self, device_ptr: u64, pitch: u32) -> Result<api::NV_ENC_REGISTERED_PTR, NvencError> {
        let fns = *self.library.fns();
        let mut register = api::NV_ENC_REGISTER_RESOURCE::default();
        register.resourceType = api::NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR;
        register.width = self.width;
        register.height = self.height;
        register.pitch = pitch;
        register.resourceToRegister = device_ptr as *mut c_void;
        register.bufferFormat = api::NV_ENC_BUFFER_FORMAT_NV12;
        register.bufferUsage = api::NV_ENC_INPUT_IMAGE;
        // SAFETY: a live session and struct; the caller of `register_cuda_nv12` vouched for
        // the allocation.
        let status = unsafe { (fns.register_resource)(self.encoder, &mut register) };
        self.check("nvEncRegisterResource", Phase::Setup, status)?;
        if register.registeredResource.is_null() {
            return Err(NvencError::Invalid("nvEncRegisterResource returned no handle"));
        }
        self.registered.push(register.registeredResource);
        Ok(register.registeredResource)
    }

    fn unregister(&mut self, handle: api::NV_ENC_REGISTERED_PTR) -> Result<(), NvencError> {
        let Some(at) = self.registered.iter().position(|&h| h == handle) else {
            return Err(NvencError::Invalid("the input is not registered with this session"));
        };
        self.registered.swap_remove(at);
        let fns = *self.library.fns();
        // SAFETY: a live session and a resource registered with it, not mapped (mappings
        // last one encode).
        let status = unsafe { (fns.unregister_resource)(self.encoder, handle) };
        self.check("nvEncUnregisterResource", Phase::Setup, status)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let fns = *self.library.fns();
        // SAFETY: every handle was made on this session and is destroyed once, buffers before
        // the session. Failures (a lost device) are ignored: there is nothing left to do.
        unsafe {
            for handle in self.registered.drain(..) {
                (fns.unregister_resource)(self.encoder, handle);
            }
            if !self.input.is_null() {
                (fns.destroy_input_buffer)(self.encoder, self.input);
            }
            if !self.bitstream.is_null() {
                (fns.destroy_bitstream_buffer)(self.encoder, self.bitstream);
            }
            (fns.destroy_encoder)(self.encoder);
        }
    }
}

/// An H264 encoder on an NVIDIA GPU's NVENC, for one stream: what a room drives through
/// [`VideoEncoder`] (codec H264, name `nvenc`).
///
/// It reads I420 pictures from CPU memory and copies them into an NVENC input buffer; the
/// picture size may change (a new session is opened, and its first picture is an IDR).
/// Errors come back as [`NvencError`] from the inherent methods; through [`VideoEncoder`] they
/// become a `VideoError::Hardware` whose `is_device_lost()` says whether to move the stream to
/// a software encoder ([`NvencEncoder::last_error`] keeps the typed error). After a lost device every call fails
/// at once: drop the encoder and encode on the CPU.
pub struct NvencEncoder {
    library: Library,
    device: *mut c_void,
    options: NvencOptions,
    config: VideoConfig,
    size: (u32, u32),
    session: Option<Session>,
    serial: u64,
    keyframe_requested: bool,
    last_keyframe: Option<Duration>,
    frame_index: u32,
    out: Vec<u8>,
    last_error: Option<NvencError>,
    lost: bool,
}

// SAFETY: the raw pointers are NVENC handles and a CUDA context, which NVENC lets any thread
// use as long as one session is driven by one thread at a time; every call goes through
// `&mut self`, so it is. The `Library` is Send and Sync.
unsafe impl Send for NvencEncoder {}

impl fmt::Debug for NvencEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NvencEncoder")
            .field("library", &self.library)
            .field("options", &self.options)
            .field("config", &self.config)
            .field("size", &self.size)
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

impl NvencEncoder {
    /// Opens an NVENC session for `width`x`height` pictures with the default options (P1,
    /// ultra-low-latency). Fails with [`NvencError::NoMoreSessions`] when the GPU has no
    /// session left.
    ///
    /// # Safety
    ///
    /// `device` must be a valid CUDA context (`CUcontext`) that outlives the encoder, or null
    /// for the test double (which has no CUDA); what NVIDIA's driver does with null is not
    /// verified.
    pub unsafe fn new(
        library: &Library,
        device: *mut c_void,
        config: VideoConfig,
        width: u32,
        height: u32,
    ) -> Result<Self, NvencError> {
        // SAFETY: the caller's promise, passed on.
        unsafe { Self::with_options(library, device, config, width, height, NvencOptions::default()) }
    }

    /// As [`NvencEncoder::new`], with a preset and tuning.
    ///
    /// # Safety
    ///
    /// As [`NvencEncoder::new`].
    pub unsafe fn with_options(
        library: &Library,
        device: *mut c_void,
        config: VideoConfig,
        width: u32,
        height: u32,
        options: NvencOptions,
    ) -> Result<Self, NvencError> {
        config.check().map_err(NvencError::Invalid)?;
        check_size(width, height)?;
        let session = Session::open(library, device, &config, options, (width, height))?;
        Ok(NvencEncoder {
            library: library.clone(),
            device,
            options,
            config,
            size: (width, height),
            session: Some(session),
            serial: 1,
            keyframe_requested: false,
            last_keyframe: None,
            frame_index: 0,
            out: Vec::new(),
            last_error: None,
            lost: false,
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &VideoConfig {
        &self.config
    }

    /// The preset and tuning.
    pub fn options(&self) -> NvencOptions {
        self.options
    }

    /// The session's picture size.
    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    /// The library the session runs on.
    pub fn library(&self) -> &Library {
        &self.library
    }

    /// Whether the device was lost: every further call fails; drop the encoder.
    pub fn is_device_lost(&self) -> bool {
        self.lost
    }

    /// The last error, with the driver's details (what `VideoError` cannot carry).
    pub fn last_error(&self) -> Option<&NvencError> {
        self.last_error.as_ref()
    }

    /// Makes the next picture an IDR with SPS and PPS (a new viewer, a PLI or FIR).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// Encodes one I420 picture shown at `pts` (time since the stream began; it drives the
    /// periodic IDR, and goes to NVENC as the timestamp in microseconds). The bytes (Annex B)
    /// live until the next call.
    pub fn encode_i420(&mut self, frame: &I420Frame, pts: Duration) -> Result<EncodedFrame<'_>, NvencError> {
        let started = Instant::now();
        let size = (to_u32(frame.width())?, to_u32(frame.height())?);
        self.usable()?;
        if size != self.size || self.session.is_none() {
            // A new size, or a session that failed to open for the last one.
            self.resize(size)?;
        }
        let flags = self.picture_flags(pts);
        let (index, timestamp) = (self.frame_index, micros(pts));
        let session = self.session.as_mut().ok_or(NvencError::Invalid("no NVENC session"))?;
        let result = session.encode_host(frame, flags, timestamp, index, &mut self.out);
        self.finish(result, pts, started)
    }

    /// Registers a CUDA allocation holding an NV12 picture of the session's size (`pitch`
    /// bytes per row, a multiple of 4; chroma rows after `height` luma rows) as an input,
    /// for [`NvencEncoder::encode_registered`]: the zero-copy path. Needs CUDA hardware; the
    /// test double reads the "device pointer" as host memory.
    ///
    /// # Safety
    ///
    /// `device_ptr` must be a `CUdeviceptr` in the encoder's CUDA context, of at least
    /// `pitch * height * 3 / 2` bytes, valid until the input is unregistered or the encoder
    /// dropped. (With the test double: a host pointer to that many readable bytes.)
    pub unsafe fn register_cuda_nv12(&mut self, device_ptr: u64, pitch: u32) -> Result<RegisteredInput, NvencError> {
        self.usable()?;
        if pitch < self.size.0 || !pitch.is_multiple_of(4) {
            return Err(NvencError::Invalid("the pitch must be at least the width and a multiple of 4"));
        }
        if device_ptr == 0 {
            return Err(NvencError::Invalid("null device pointer"));
        }
        let session = self.session.as_mut().ok_or(NvencError::Invalid("no NVENC session"))?;
        let handle = match session.register(device_ptr, pitch) {
            Ok(handle) => handle,
            Err(error) => return Err(self.failed(error)),
        };
        Ok(RegisteredInput {
            handle: handle as usize,
            pitch,
            width: self.size.0,
            height: self.size.1,
            serial: self.serial,
        })
    }

    /// Encodes the NV12 picture in a registered CUDA allocation, shown at `pts`, without a
    /// copy: the resource is mapped for this picture and unmapped once its bitstream is read.
    pub fn encode_registered(
        &mut self,
        input: &RegisteredInput,
        pts: Duration,
    ) -> Result<EncodedFrame<'_>, NvencError> {
        let started = Instant::now();
        self.usable()?;
        if input.serial != self.serial {
            return Err(NvencError::Invalid("the input was registered with an earlier session"));
        }
        let flags = self.picture_flags(pts);
        let (index, timestamp) = (self.frame_index, micros(pts));
        let session = self.session.as_mut().ok_or(NvencError::Invalid("no NVENC session"))?;
        let result = session.encode_mapped(input, flags, timestamp, index, &mut self.out);
        self.finish(result, pts, started)
    }

    /// Unregisters an input. (Dropping the encoder, or a size change, unregisters every input.)
    pub fn unregister(&mut self, input: RegisteredInput) -> Result<(), NvencError> {
        if input.serial != self.serial {
            // Its session is gone, and the registration with it.
            return Ok(());
        }
        match self.session.as_mut() {
            Some(session) => session.unregister(input.handle as api::NV_ENC_REGISTERED_PTR),
            None => Ok(()),
        }
    }

    /// Changes the target bitrate and frame rate from the next picture on with
    /// `nvEncReconfigureEncoder`: the same session, no IDR.
    pub fn set_rate(&mut self, bps: u32, fps: f32) -> Result<(), NvencError> {
        VideoConfig { bitrate_bps: bps, max_fps: fps, ..self.config.clone() }.check().map_err(NvencError::Invalid)?;
        self.usable()?;
        if let Some(session) = self.session.as_mut() {
            if let Err(error) = session.reconfigure_rate(bps, fps) {
                return Err(self.failed(error));
            }
        }
        self.config.bitrate_bps = bps;
        self.config.max_fps = fps;
        Ok(())
    }

    /// Err with the recorded error once the device is lost.
    fn usable(&self) -> Result<(), NvencError> {
        match (&self.last_error, self.lost) {
            (Some(error), true) => Err(error.clone()),
            _ => Ok(()),
        }
    }

    /// Replaces the session with one of the new size (the old one is destroyed first, so
    /// the GPU never holds both).
    fn resize(&mut self, size: (u32, u32)) -> Result<(), NvencError> {
        check_size(size.0, size.1)?;
        self.session = None;
        self.serial += 1;
        self.size = size;
        self.last_keyframe = None;
        match Session::open(&self.library, self.device, &self.config, self.options, size) {
            Ok(session) => {
                self.session = Some(session);
                Ok(())
            }
            Err(error) => Err(self.failed(error)),
        }
    }

    fn picture_flags(&self, pts: Duration) -> u32 {
        let periodic = match (self.last_keyframe, self.config.keyframe_interval) {
            (Some(last), Some(interval)) => pts < last || pts - last >= interval,
            _ => false,
        };
        if self.keyframe_requested || periodic {
            api::NV_ENC_PIC_FLAG_FORCEIDR | api::NV_ENC_PIC_FLAG_OUTPUT_SPSPPS
        } else {
            0
        }
    }

    fn finish(
        &mut self,
        result: Result<bool, NvencError>,
        pts: Duration,
        started: Instant,
    ) -> Result<EncodedFrame<'_>, NvencError> {
        match result {
            Ok(keyframe) => {
                if keyframe {
                    self.keyframe_requested = false;
                    self.last_keyframe = Some(pts);
                }
                self.frame_index = self.frame_index.wrapping_add(1);
                Ok(EncodedFrame { data: &self.out, keyframe, encode_time: started.elapsed() })
            }
            Err(error) => Err(self.failed(error)),
        }
    }

    /// Records an error; a lost device also ends the session at once.
    fn failed(&mut self, error: NvencError) -> NvencError {
        if error.is_device_lost() {
            self.lost = true;
            self.session = None;
        }
        self.last_error = Some(error.clone());
        error
    }
}

fn check_size(width: u32, height: u32) -> Result<(), NvencError> {
    if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(NvencError::Invalid("the picture size must be even and not zero"));
    }
    Ok(())
}

fn to_u32(n: usize) -> Result<u32, NvencError> {
    u32::try_from(n).map_err(|_| NvencError::Invalid("picture too large"))
}

fn micros(pts: Duration) -> u64 {
    u64::try_from(pts.as_micros()).unwrap_or(u64::MAX)
}

impl VideoEncoder for NvencEncoder {
    fn codec(&self) -> VideoCodec {
        VideoCodec::H264
    }

    fn name(&self) -> &'static str {
        "nvenc"
    }

    fn input(&self) -> PictureFormat {
        PictureFormat::I420
    }

    fn encode(&mut self, picture: Picture<'_>, pts: Duration) -> Result<EncodedFrame<'_>, VideoError> {
        // Reading a GPU picture in place needs it registered first: the worker's NVENC wrapper
        // does that; on its own the encoder takes the copy in CPU memory.
        self.encode_i420(picture.i420(), pts).map_err(VideoError::from)
    }

    fn request_keyframe(&mut self) {
        NvencEncoder::request_keyframe(self);
    }

    fn set_rate(&mut self, bitrate_bps: u32, fps: f32) -> Result<(), VideoError> {
        NvencEncoder::set_rate(self, bitrate_bps, fps).map_err(VideoError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_latency_settings_override_the_preset() {
        let mut config = api::NV_ENC_CONFIG::default();
        // What a preset might hand back.
        config.gopLength = 250;
        config.frameIntervalP = 3;
        config.profileGUID = api::NV_ENC_H264_PROFILE_HIGH_GUID;
        config.rcParams.rateControlMode = api::NV_ENC_PARAMS_RC_VBR;
        config.rcParams.flags = api::RC_ENABLE_LOOKAHEAD;
        config.encodeCodecConfig.h264_mut().idrPeriod = 250;
        config.encodeCodecConfig.h264_mut().entropyCodingMode = api::NV_ENC_H264_ENTROPY_CODING_MODE_CABAC;
        let video = VideoConfig { bitrate_bps: 1_500_000, max_fps: 60.0, keyframe_interval: None };
        apply_low_latency(&mut config, &video);
        assert_eq!(config.gopLength, api::NVENC_INFINITE_GOPLENGTH);
        assert_eq!(config.frameIntervalP, 1);
        assert_eq!(config.profileGUID, api::NV_ENC_H264_PROFILE_BASELINE_GUID);
        assert_eq!(config.rcParams.rateControlMode, api::NV_ENC_PARAMS_RC_CBR);
        assert_eq!((config.rcParams.averageBitRate, config.rcParams.vbvBufferSize), (1_500_000, 25_000));
        assert_eq!(config.rcParams.flags & api::RC_ENABLE_LOOKAHEAD, 0);
        let h264 = config.encodeCodecConfig.h264();
        assert_eq!(h264.idrPeriod, api::NVENC_INFINITE_GOPLENGTH);
        assert!(h264.flag(api::H264_REPEAT_SPSPPS));
        assert_eq!(h264.entropyCodingMode, api::NV_ENC_H264_ENTROPY_CODING_MODE_CAVLC);
    }

    #[test]
    fn frame_rates_and_vbv() {
        assert_eq!(frame_rate(60.0), (60, 1));
        assert_eq!(frame_rate(60.0988), (60099, 1000));
        assert_eq!(vbv_bits(1_500_000, 60.0), 25_000);
        assert_eq!(vbv_bits(1000, 240.0), 4);
    }
}
