//! The only unsafe code of the VP8 path: calls into libvpx through `env-libvpx-sys`'s
//! pre-generated bindings (no bindgen, no libclang), behind small owning types that free what
//! they made in `Drop`.
//!
//! Everything here checks what it hands to libvpx: image planes are checked against the
//! dimensions before their pointers go across, and every buffer libvpx hands back is copied
//! out before the next call that may invalidate it.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_long, c_uint, c_ulong};
use std::ptr;

use vpx_sys as vpx;

use super::Vp8Error;
use crate::convert::I420Frame;

/// The largest width or height VP8 can code (14 bits in the frame header).
pub const MAX_DIMENSION: usize = 16383;

/// The libvpx encoder configuration (`vpx_codec_enc_cfg_t`) fields we set.
///
/// [`Vp8Encoder::libvpx_config`](super::Vp8Encoder::libvpx_config) reads them back from the
/// running encoder, so tests check what libvpx holds rather than what we meant to give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LibvpxConfig {
    /// `g_w`: width in pixels.
    pub width: u32,
    /// `g_h`: height in pixels.
    pub height: u32,
    /// `g_threads`: encoding threads (1: parallelism comes from rooms).
    pub threads: u32,
    /// `g_timebase` as (numerator, denominator) seconds per pts unit.
    pub timebase: (i32, i32),
    /// `g_lag_in_frames`: frames held back for look-ahead (0: each frame comes out at once).
    pub lag_in_frames: u32,
    /// `g_error_resilient` has `VPX_ERROR_RESILIENT_DEFAULT`.
    pub error_resilient: bool,
    /// `rc_end_usage` is `VPX_CBR`.
    pub cbr: bool,
    /// `rc_target_bitrate` in kbit/s.
    pub target_kbps: u32,
    /// `rc_min_quantizer` (0..=63).
    pub min_quantizer: u32,
    /// `rc_max_quantizer` (0..=63).
    pub max_quantizer: u32,
    /// `rc_undershoot_pct`.
    pub undershoot_pct: u32,
    /// `rc_overshoot_pct`.
    pub overshoot_pct: u32,
    /// `rc_buf_sz` in ms of the target bitrate.
    pub buffer_ms: u32,
    /// `rc_buf_initial_sz` in ms.
    pub buffer_initial_ms: u32,
    /// `rc_buf_optimal_sz` in ms.
    pub buffer_optimal_ms: u32,
    /// `rc_dropframe_thresh` (0: never drop a frame).
    pub drop_frame_threshold: u32,
    /// `kf_mode` is `VPX_KF_AUTO` (false: keyframes only when forced).
    pub auto_keyframes: bool,
    /// `kf_max_dist`.
    pub keyframe_max_distance: u32,
}

/// Encoder controls (`vpx_codec_control`) set once after initialisation; libvpx cannot report
/// most of them back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LibvpxControls {
    /// `VP8E_SET_CPUUSED`: -16..=16; negative is a fixed speed for real-time mode.
    pub cpu_used: i32,
    /// `VP8E_SET_TOKEN_PARTITIONS`: log2 of the DCT token partitions (0: one).
    pub token_partitions: i32,
    /// `VP8E_SET_STATIC_THRESHOLD`: macroblocks that changed less than this are skipped.
    pub static_threshold: u32,
    /// `VP8E_SET_NOISE_SENSITIVITY`: temporal denoiser (0: off).
    pub noise_sensitivity: u32,
    /// `VP8E_SET_MAX_INTRA_BITRATE_PCT`: keyframe size cap in % of a frame's budget (0: none).
    pub max_intra_bitrate_pct: u32,
    /// `VP8E_SET_SCREEN_CONTENT_MODE`: 0 off, 1 on, 2 on with aggressive rate control.
    pub screen_content_mode: u32,
}

/// libvpx's message for an error code (a static string).
fn err_name(err: vpx::vpx_codec_err_t) -> String {
    // SAFETY: vpx_codec_err_to_string takes any code and returns a pointer to a static,
    // NUL-terminated string (or NULL, handled by `c_string`).
    let text = unsafe { vpx::vpx_codec_err_to_string(err) };
    c_string(text).unwrap_or_else(|| format!("error {}", err as u32))
}

/// Copies a NUL-terminated C string, if any.
fn c_string(text: *const c_char) -> Option<String> {
    if text.is_null() {
        return None;
    }
    // SAFETY: non-null pointers passed here come from libvpx, which returns NUL-terminated
    // strings that stay valid at least until the next call on the same context; we copy now.
    Some(unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned())
}

/// A `vpx_codec_ctx_t` before initialisation: all null, as libvpx expects.
fn empty_context() -> Box<vpx::vpx_codec_ctx_t> {
    Box::new(vpx::vpx_codec_ctx_t {
        name: ptr::null(),
        iface: ptr::null_mut(),
        err: vpx::vpx_codec_err_t::VPX_CODEC_OK,
        err_detail: ptr::null(),
        init_flags: 0,
        config: vpx::vpx_codec_ctx__bindgen_ty_1 { raw: ptr::null() },
        priv_: ptr::null_mut(),
    })
}

/// An initialised libvpx context (encoder or decoder), destroyed on drop.
///
/// Boxed so its address never changes after `vpx_codec_*_init`.
struct Context(Box<vpx::vpx_codec_ctx_t>);

impl Context {
    fn ptr(&mut self) -> *mut vpx::vpx_codec_ctx_t {
        &mut *self.0
    }

    /// The error of the last failed call on this context, with libvpx's detail if it has one.
    fn error(&mut self, call: &'static str, err: vpx::vpx_codec_err_t) -> Vp8Error {
        // SAFETY: the context is initialised (a `Context` only exists after a successful init);
        // vpx_codec_error_detail returns NULL or a string owned by the context, copied at once.
        let detail = c_string(unsafe { vpx::vpx_codec_error_detail(self.ptr()) });
        let message = match detail {
            Some(detail) => format!("{} ({detail})", err_name(err)),
            None => err_name(err),
        };
        Vp8Error::Codec { call, message }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context was initialised successfully and is destroyed exactly once, here.
        // The result only says whether the context was valid, which it was.
        unsafe {
            vpx::vpx_codec_destroy(self.ptr());
        }
    }
}

// SAFETY: a libvpx context has no thread affinity (no thread-local state; with one thread it
// starts no threads of its own). Moving it to another thread is sound; every use goes through
// `&mut self`, so it is never used from two threads at once.
unsafe impl Send for Context {}

/// A libvpx VP8 encoder instance for one frame size.
pub struct Encoder {
    // Dropped first: libvpx may refer to `cfg` until its context is destroyed.
    context: Context,
    /// The configuration handed to `vpx_codec_enc_init`, kept alive as long as the context
    /// (VP8 copies it, but the context's `config.enc` pointed at it first).
    cfg: Box<vpx::vpx_codec_enc_cfg_t>,
    width: usize,
    height: usize,
}

// SAFETY: the boxed configuration is plain data that only this encoder refers to (its only
// pointers, the unused two-pass statistics buffers, are set to null); the context is Send (see
// above). An encoder is only ever used through `&mut self`, from one thread at a time.
unsafe impl Send for Encoder {}

impl Encoder {
    /// Initialises libvpx's VP8 encoder with `config` and then applies `controls`.
    pub fn new(config: &LibvpxConfig, controls: &LibvpxControls) -> Result<Self, Vp8Error> {
        let width = config.width as usize;
        let height = config.height as usize;
        if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(Vp8Error::FrameSize { width, height });
        }
        // SAFETY: vpx_codec_vp8_cx takes nothing and returns a pointer to libvpx's static
        // interface table.
        let iface = unsafe { vpx::vpx_codec_vp8_cx() };
        let mut cfg = std::mem::MaybeUninit::<vpx::vpx_codec_enc_cfg_t>::uninit();
        // SAFETY: `cfg` is writable memory of the right type; on success libvpx has written the
        // whole struct (it assigns its default configuration to `*cfg`).
        let err = unsafe { vpx::vpx_codec_enc_config_default(iface, cfg.as_mut_ptr(), 0) };
        if err != vpx::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(Vp8Error::Codec { call: "vpx_codec_enc_config_default", message: err_name(err) });
        }
        // SAFETY: initialised by the successful call above.
        let mut cfg = Box::new(unsafe { cfg.assume_init() });
        cfg.g_w = config.width;
        cfg.g_h = config.height;
        cfg.g_threads = config.threads;
        cfg.g_timebase = vpx::vpx_rational { num: config.timebase.0, den: config.timebase.1 };
        cfg.g_pass = vpx::vpx_enc_pass::VPX_RC_ONE_PASS;
        // One pass: no statistics buffers (their pointers are the config's only pointers).
        cfg.rc_twopass_stats_in = vpx::vpx_fixed_buf_t { buf: ptr::null_mut(), sz: 0 };
        cfg.rc_firstpass_mb_stats_in = vpx::vpx_fixed_buf_t { buf: ptr::null_mut(), sz: 0 };
        cfg.g_lag_in_frames = config.lag_in_frames;
        cfg.g_error_resilient = if config.error_resilient { vpx::VPX_ERROR_RESILIENT_DEFAULT } else { 0 };
        cfg.rc_end_usage = if config.cbr { vpx::vpx_rc_mode::VPX_CBR } else { vpx::vpx_rc_mode::VPX_VBR };
        cfg.rc_target_bitrate = config.target_kbps;
        cfg.rc_min_quantizer = config.min_quantizer;
        cfg.rc_max_quantizer = config.max_quantizer;
        cfg.rc_undershoot_pct = config.undershoot_pct;
        cfg.rc_overshoot_pct = config.overshoot_pct;
        cfg.rc_buf_sz = config.buffer_ms;
        cfg.rc_buf_initial_sz = config.buffer_initial_ms;
        cfg.rc_buf_optimal_sz = config.buffer_optimal_ms;
        cfg.rc_dropframe_thresh = config.drop_frame_threshold;
        cfg.rc_resize_allowed = 0;
        cfg.kf_mode =
            if config.auto_keyframes { vpx::vpx_kf_mode::VPX_KF_AUTO } else { vpx::vpx_kf_mode::VPX_KF_DISABLED };
        cfg.kf_min_dist = 0;
        cfg.kf_max_dist = config.keyframe_max_distance;

        let mut context = empty_context();
        // SAFETY: `context` is a zeroed, boxed (address-stable) context; `iface` is valid and
        // `cfg` is boxed and kept as long as the context. The ABI version is the one the
        // bindings were generated for, which their build script matched to the installed libvpx.
        let err = unsafe {
            vpx::vpx_codec_enc_init_ver(&mut *context, iface, &*cfg, 0, vpx::VPX_ENCODER_ABI_VERSION as c_int)
        };
        if err != vpx::vpx_codec_err_t::VPX_CODEC_OK {
            // libvpx already tore down a context whose init failed; its detail string may be
            // gone with it, so only the code is reported.
            return Err(Vp8Error::Codec { call: "vpx_codec_enc_init", message: err_name(err) });
        }
        let mut encoder = Encoder { context: Context(context), cfg, width, height };
        encoder.control_int("VP8E_SET_CPUUSED", vpx::vp8e_enc_control_id::VP8E_SET_CPUUSED, controls.cpu_used)?;
        encoder.control_int(
            "VP8E_SET_TOKEN_PARTITIONS",
            vpx::vp8e_enc_control_id::VP8E_SET_TOKEN_PARTITIONS,
            controls.token_partitions,
        )?;
        encoder.control_uint(
            "VP8E_SET_STATIC_THRESHOLD",
            vpx::vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD,
            controls.static_threshold,
        )?;
        encoder.control_uint(
            "VP8E_SET_NOISE_SENSITIVITY",
            vpx::vp8e_enc_control_id::VP8E_SET_NOISE_SENSITIVITY,
            controls.noise_sensitivity,
        )?;
        encoder.control_uint(
            "VP8E_SET_MAX_INTRA_BITRATE_PCT",
            vpx::vp8e_enc_control_id::VP8E_SET_MAX_INTRA_BITRATE_PCT,
            controls.max_intra_bitrate_pct,
        )?;
        encoder.control_uint(
            "VP8E_SET_SCREEN_CONTENT_MODE",
            vpx::vp8e_enc_control_id::VP8E_SET_SCREEN_CONTENT_MODE,
            controls.screen_content_mode,
        )?;
        Ok(encoder)
    }

    /// A control whose argument is a C `int`.
    fn control_int(&mut self, call: &'static str, id: vpx::vp8e_enc_control_id, value: i32) -> Result<(), Vp8Error> {
        // SAFETY: the context is an initialised VP8 encoder, and every control passed here
        // takes one `int` argument (VPX_CTRL_USE_TYPE in vp8cx.h), which is what we pass.
        let err = unsafe { vpx::vpx_codec_control_(self.context.ptr(), id as c_int, value as c_int) };
        match err {
            vpx::vpx_codec_err_t::VPX_CODEC_OK => Ok(()),
            err => Err(self.context.error(call, err)),
        }
    }

    /// A control whose argument is a C `unsigned int`.
    fn control_uint(&mut self, call: &'static str, id: vpx::vp8e_enc_control_id, value: u32) -> Result<(), Vp8Error> {
        // SAFETY: the context is an initialised VP8 encoder, and every control passed here
        // takes one `unsigned int` argument (VPX_CTRL_USE_TYPE in vp8cx.h), which we pass.
        let err = unsafe { vpx::vpx_codec_control_(self.context.ptr(), id as c_int, value as c_uint) };
        match err {
            vpx::vpx_codec_err_t::VPX_CODEC_OK => Ok(()),
            err => Err(self.context.error(call, err)),
        }
    }

    /// Changes the target bitrate of the running encoder (`vpx_codec_enc_config_set`: rate
    /// control picks it up at the next frame, without a keyframe).
    pub fn set_target_kbps(&mut self, kbps: u32) -> Result<(), Vp8Error> {
        self.cfg.rc_target_bitrate = kbps;
        // SAFETY: the context is an initialised VP8 encoder and `cfg` a complete
        // configuration that lives as long as the context (libvpx copies what it needs).
        let err = unsafe { vpx::vpx_codec_enc_config_set(self.context.ptr(), &*self.cfg) };
        match err {
            vpx::vpx_codec_err_t::VPX_CODEC_OK => Ok(()),
            err => Err(self.context.error("vpx_codec_enc_config_set", err)),
        }
    }

    /// The configuration as the running encoder holds it (libvpx's own copy).
    pub fn config(&self) -> Option<LibvpxConfig> {
        // SAFETY: an encoder context's `config` union holds the `enc` pointer (set by
        // vpx_codec_enc_init); reading a pointer member of a union of pointers is always sound.
        let cfg = unsafe { self.context.0.config.enc };
        if cfg.is_null() {
            return None;
        }
        // SAFETY: non-null, pointing either at libvpx's own copy of the configuration (VP8
        // installs one at init), which lives as long as the context, or at `cfg`, which lives
        // as long as `self`; both are borrowed through `&self` and copied out at once.
        let cfg = unsafe { &*cfg };
        Some(LibvpxConfig {
            width: cfg.g_w,
            height: cfg.g_h,
            threads: cfg.g_threads,
            timebase: (cfg.g_timebase.num, cfg.g_timebase.den),
            lag_in_frames: cfg.g_lag_in_frames,
            error_resilient: cfg.g_error_resilient & vpx::VPX_ERROR_RESILIENT_DEFAULT != 0,
            cbr: cfg.rc_end_usage == vpx::vpx_rc_mode::VPX_CBR,
            target_kbps: cfg.rc_target_bitrate,
            min_quantizer: cfg.rc_min_quantizer,
            max_quantizer: cfg.rc_max_quantizer,
            undershoot_pct: cfg.rc_undershoot_pct,
            overshoot_pct: cfg.rc_overshoot_pct,
            buffer_ms: cfg.rc_buf_sz,
            buffer_initial_ms: cfg.rc_buf_initial_sz,
            buffer_optimal_ms: cfg.rc_buf_optimal_sz,
            drop_frame_threshold: cfg.rc_dropframe_thresh,
            auto_keyframes: cfg.kf_mode == vpx::vpx_kf_mode::VPX_KF_AUTO,
            keyframe_max_distance: cfg.kf_max_dist,
        })
    }

    /// Encodes `frame` (which must have the size the encoder was made for) at `pts` (in
    /// timebase units, increasing) lasting `duration`, in real-time mode. Replaces `out` with
    /// the compressed frame and returns whether it is a keyframe; `out` is left empty if
    /// libvpx dropped the frame.
    pub fn encode(
        &mut self,
        frame: &I420Frame,
        pts: i64,
        duration: u64,
        force_keyframe: bool,
        out: &mut Vec<u8>,
    ) -> Result<bool, Vp8Error> {
        let (width, height) = (frame.width(), frame.height());
        if (width, height) != (self.width, self.height) {
            return Err(Vp8Error::FrameSize { width, height });
        }
        let (chroma_width, chroma_height) = (width.div_ceil(2), height.div_ceil(2));
        let (y_stride, c_stride) = (frame.y_stride(), frame.chroma_stride());
        // libvpx reads `rows` rows of `columns` bytes, `stride` apart, from each plane: make sure
        // every one of them is inside the slice before handing its pointer over.
        let fits = |plane: &[u8], stride: usize, columns: usize, rows: usize| {
            stride >= columns
                && c_int::try_from(stride).is_ok()
                && stride.checked_mul(rows - 1).and_then(|n| n.checked_add(columns)).is_some_and(|n| n <= plane.len())
        };
        if !(fits(frame.y(), y_stride, width, height)
            && fits(frame.u(), c_stride, chroma_width, chroma_height)
            && fits(frame.v(), c_stride, chroma_width, chroma_height))
        {
            return Err(Vp8Error::FrameSize { width, height });
        }
        // A borrowed I420 picture; libvpx only reads it (the pointer it takes is const) and
        // copies it into its look-ahead buffer before vpx_codec_encode returns.
        let image = vpx::vpx_image_t {
            fmt: vpx::vpx_img_fmt::VPX_IMG_FMT_I420,
            cs: vpx::vpx_color_space::VPX_CS_BT_601,
            range: vpx::vpx_color_range::VPX_CR_STUDIO_RANGE,
            w: width as c_uint,
            h: height as c_uint,
            bit_depth: 8,
            d_w: width as c_uint,
            d_h: height as c_uint,
            r_w: width as c_uint,
            r_h: height as c_uint,
            x_chroma_shift: 1,
            y_chroma_shift: 1,
            planes: [
                frame.y().as_ptr().cast_mut(),
                frame.u().as_ptr().cast_mut(),
                frame.v().as_ptr().cast_mut(),
                ptr::null_mut(),
            ],
            stride: [y_stride as c_int, c_stride as c_int, c_stride as c_int, 0],
            bps: 12,
            user_priv: ptr::null_mut(),
            img_data: ptr::null_mut(),
            img_data_owner: 0,
            self_allocd: 0,
            fb_priv: ptr::null_mut(),
        };
        let flags: c_long = if force_keyframe { vpx::VPX_EFLAG_FORCE_KF as c_long } else { 0 };
        // SAFETY: the context is an initialised VP8 encoder; `image` describes planes that were
        // checked above to hold every byte libvpx reads, and they outlive the call (libvpx copies
        // the picture before returning and keeps no pointer to it).
        let err = unsafe {
            vpx::vpx_codec_encode(
                self.context.ptr(),
                &image,
                pts,
                duration as c_ulong,
                flags,
                c_ulong::from(vpx::VPX_DL_REALTIME),
            )
        };
        if err != vpx::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(self.context.error("vpx_codec_encode", err));
        }

        out.clear();
        let mut keyframe = false;
        let mut frames = 0;
        let mut iter: vpx::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: the context is initialised; `iter` starts null and is only advanced by
            // libvpx. The packet returned stays valid until the next encode call on the context.
            let packet = unsafe { vpx::vpx_codec_get_cx_data(self.context.ptr(), &mut iter) };
            if packet.is_null() {
                break;
            }
            // SAFETY: non-null packets point at a packet in the encoder's output list (see above).
            let packet = unsafe { &*packet };
            if packet.kind != vpx::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                continue;
            }
            // SAFETY: for a VPX_CODEC_CX_FRAME_PKT the `frame` member of the union is the
            // active one.
            let data = unsafe { packet.data.frame };
            frames += 1;
            if frames > 1 {
                // Cannot happen with no look-ahead and no partition output; two frames glued
                // together would not decode, so say so instead.
                return Err(Vp8Error::Codec {
                    call: "vpx_codec_get_cx_data",
                    message: "more than one frame for one picture".into(),
                });
            }
            if data.sz > 0 && !data.buf.is_null() {
                // SAFETY: libvpx's frame packet holds `sz` bytes at `buf`, valid until the next
                // encode call; we copy them now.
                let bytes = unsafe { std::slice::from_raw_parts(data.buf.cast::<u8>(), data.sz as usize) };
                out.extend_from_slice(bytes);
            }
            keyframe = data.flags & vpx::VPX_FRAME_IS_KEY != 0;
        }
        Ok(keyframe)
    }
}

/// A libvpx VP8 decoder (one thread), for tests and diagnostics.
pub struct Decoder {
    context: Context,
}

impl Decoder {
    /// Initialises libvpx's VP8 decoder.
    pub fn new() -> Result<Self, Vp8Error> {
        let cfg = vpx::vpx_codec_dec_cfg_t { threads: 1, w: 0, h: 0 };
        let mut context = empty_context();
        // SAFETY: vpx_codec_vp8_dx returns libvpx's static decoder interface; `context` is a
        // zeroed, boxed context and `cfg` is valid for the call (libvpx copies it). The ABI
        // version is the bindings', matched to the installed libvpx by build.rs.
        let err = unsafe {
            vpx::vpx_codec_dec_init_ver(
                &mut *context,
                vpx::vpx_codec_vp8_dx(),
                &cfg,
                0,
                vpx::VPX_DECODER_ABI_VERSION as c_int,
            )
        };
        if err != vpx::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(Vp8Error::Codec { call: "vpx_codec_dec_init", message: err_name(err) });
        }
        Ok(Decoder { context: Context(context) })
    }

    /// Decodes one compressed frame into `out` (resized to the picture's size, rounded up to
    /// even). Returns whether a picture came out.
    pub fn decode(&mut self, data: &[u8], out: &mut I420Frame) -> Result<bool, Vp8Error> {
        if data.is_empty() {
            return Err(Vp8Error::Input("empty VP8 frame"));
        }
        let size = c_uint::try_from(data.len()).map_err(|_| Vp8Error::Input("VP8 frame over 4 GiB"))?;
        // SAFETY: the context is an initialised VP8 decoder; `data` is valid for `size` bytes
        // for the call, and libvpx does not keep the pointer past it (no frame threading).
        let err = unsafe { vpx::vpx_codec_decode(self.context.ptr(), data.as_ptr(), size, ptr::null_mut(), 0) };
        if err != vpx::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(self.context.error("vpx_codec_decode", err));
        }
        let mut got = false;
        let mut iter: vpx::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: the context is initialised; `iter` starts null and is advanced by libvpx.
            // The image stays valid until the next decode call.
            let image = unsafe { vpx::vpx_codec_get_frame(self.context.ptr(), &mut iter) };
            if image.is_null() {
                break;
            }
            // SAFETY: non-null: a decoded image owned by the decoder (see above).
            let image = unsafe { &*image };
            if !got {
                copy_image(image, out)?;
                got = true;
            }
        }
        Ok(got)
    }
}

/// Copies an 8-bit I420 `vpx_image_t` from the decoder into `out`.
fn copy_image(image: &vpx::vpx_image_t, out: &mut I420Frame) -> Result<(), Vp8Error> {
    let (width, height) = (image.d_w as usize, image.d_h as usize);
    if image.fmt != vpx::vpx_img_fmt::VPX_IMG_FMT_I420 || image.x_chroma_shift != 1 || image.y_chroma_shift != 1 {
        return Err(Vp8Error::Codec { call: "vpx_codec_get_frame", message: "not an 8-bit I420 picture".into() });
    }
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(Vp8Error::FrameSize { width, height });
    }
    out.resize(width, height);
    let (y_stride, c_stride) = (out.y_stride(), out.chroma_stride());
    let (chroma_width, chroma_height) = (width.div_ceil(2), height.div_ceil(2));
    let (y, u, v) = out.planes_mut();
    for (plane, dst, dst_stride, columns, rows) in [
        (0, y, y_stride, width, height),
        (1, u, c_stride, chroma_width, chroma_height),
        (2, v, c_stride, chroma_width, chroma_height),
    ] {
        let src = image.planes[plane];
        let src_stride = image.stride[plane];
        let Ok(src_stride) = usize::try_from(src_stride) else {
            return Err(Vp8Error::Codec { call: "vpx_codec_get_frame", message: "negative stride".into() });
        };
        if src.is_null() || src_stride < columns {
            return Err(Vp8Error::Codec { call: "vpx_codec_get_frame", message: "bad plane".into() });
        }
        for row in 0..rows {
            // SAFETY: libvpx's decoded image has `rows` rows of at least `columns` bytes,
            // `src_stride` apart (checked to be at least `columns`), starting at `src`, all
            // valid until the next decode call.
            let line = unsafe { std::slice::from_raw_parts(src.add(row * src_stride), columns) };
            dst[row * dst_stride..][..columns].copy_from_slice(line);
        }
    }
    Ok(())
}
