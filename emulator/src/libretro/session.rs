//! One core with one game loaded: the frontend side of the libretro API.
//!
//! libretro callbacks carry no user pointer, so each call into the core publishes the
//! session's state in a per-thread "current instance" slot that the `extern "C"` callbacks
//! read. Callbacks arriving on another thread (none of our cores do that) find no instance and
//! are ignored. Video, audio and input go to an [`Io`] implementation.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_uint, c_void};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use super::abort::{self, InCore, Stage};
use super::bios::MissingBios;
use super::core::{Core, CoreError};
use super::ffi::{self, env, sys};
use super::log::{log_cb, LOG_THRESHOLD};
use super::options::{OptionDef, OptionStore};
use crate::av::{AvInfo, PixelFormat};
use crate::shm::frame_ring::VideoInput;
use crate::shm::input::PortInput;

/// Where the session's video, audio and input go.
pub trait Io: 'static {
    /// A frame from `retro_video_refresh` (or "same frame again").
    fn video(&mut self, frame: VideoInput<'_>);
    /// Interleaved stereo samples.
    fn audio(&mut self, samples: &[i16]);
    /// `retro_input_poll`: refresh the input state.
    fn poll_input(&mut self);
    /// Input of libretro port `port` (0-based) as of the last poll.
    fn input(&self, port: u32) -> PortInput;
}

/// Settings for loading a game.
#[derive(Clone, Debug, Default)]
pub struct SessionConfig {
    /// GET_SYSTEM_DIRECTORY (BIOS files etc.).
    pub system_dir: PathBuf,
    /// GET_SAVE_DIRECTORY.
    pub save_dir: PathBuf,
    /// Core option overrides (key, value).
    pub options: Vec<(String, String)>,
    /// Devices other than the RetroPad by player port (1..=4), by the name or number the core
    /// declares them with (`SET_CONTROLLER_INFO`).
    pub port_devices: Vec<(u8, String)>,
}

/// A device the core offers on a port (`SET_CONTROLLER_INFO`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortDevice {
    /// Its name, e.g. `Multitap`.
    pub name: String,
    /// The id `retro_set_controller_port_device` takes.
    pub id: u32,
}

/// The device id for `wanted` (a name, case-insensitive, or a number) among what the core
/// offers on that port; the error names what it offers.
pub fn resolve_device(offered: &[PortDevice], wanted: &str) -> Result<u32, String> {
    offered
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(wanted.trim()) || wanted.trim().parse() == Ok(d.id))
        .map(|d| d.id)
        .ok_or_else(|| {
            let names: Vec<String> = offered.iter().map(|d| format!("{:?} ({})", d.name, d.id)).collect();
            match names.is_empty() {
                true => "the core declares no devices for it".into(),
                false => format!("the core offers {}", names.join(", ")),
            }
        })
}

/// Why a game could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The core did not load.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The ROM could not be read.
    #[error("cannot read ROM {path}: {source}")]
    Rom {
        /// The ROM path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `retro_load_game` returned false.
    #[error("core {core} refused to load {rom} (retro_load_game returned false)")]
    LoadGame {
        /// Core path.
        core: PathBuf,
        /// ROM path.
        rom: PathBuf,
    },
    /// The core reported nonsense av info.
    #[error("core reported invalid av info: {0}")]
    AvInfo(String),
    /// A path contains a NUL byte.
    #[error("path contains a NUL byte: {0}")]
    Path(PathBuf),
    /// A configured port device is not one the core offers.
    #[error("core {core} has no device {device:?} for player {port}: {offered} (set port_devices to one of them)")]
    PortDevice {
        /// Core path.
        core: PathBuf,
        /// The player port, 1..=4.
        port: u8,
        /// What was asked for.
        device: String,
        /// What the core offers there.
        offered: String,
    },
    /// The core needs a BIOS file that is not in the system directory.
    #[error(transparent)]
    Bios(#[from] MissingBios),
}

/// Why battery RAM could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaveRamError {
    /// The game has no battery RAM at all.
    #[error("this game has no battery save RAM, but the save carries {given} bytes of it: it belongs to another game")]
    NoSaveRam {
        /// Bytes offered.
        given: usize,
    },
    /// More bytes than the game's battery RAM holds.
    #[error(
        "the saved battery RAM is {given} bytes but this game's holds only {expected} bytes: it belongs to another \
         game or core"
    )]
    TooLarge {
        /// Bytes offered.
        given: usize,
        /// The core's battery RAM size.
        expected: usize,
    },
}

/// A memory region a core exposes (`RETRO_MEMORY_*`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// Battery-backed save RAM: what a cartridge keeps when switched off.
    SaveRam,
    /// The real-time clock's state.
    Rtc,
    /// The console's work RAM.
    SystemRam,
    /// Video RAM.
    VideoRam,
}

impl MemoryKind {
    /// The `RETRO_MEMORY_*` id.
    pub fn raw(self) -> c_uint {
        match self {
            MemoryKind::SaveRam => sys::MEMORY_SAVE_RAM,
            MemoryKind::Rtc => sys::MEMORY_RTC,
            MemoryKind::SystemRam => sys::MEMORY_SYSTEM_RAM,
            MemoryKind::VideoRam => sys::MEMORY_VIDEO_RAM,
        }
    }
}

/// `retro_get_system_info`, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemInfo {
    /// Core name, e.g. "mGBA".
    pub library_name: String,
    /// Core version.
    pub library_version: String,
    /// File extensions it loads, `|`-separated.
    pub valid_extensions: String,
    /// The core wants a path, not the ROM bytes.
    pub need_fullpath: bool,
}

/// The callbacks' view of a session.
trait Callbacks {
    fn environment(&mut self, cmd: c_uint, data: *mut c_void) -> bool;
    fn video(&mut self, frame: VideoInput<'_>);
    fn audio(&mut self, samples: &[i16]);
    fn input_poll(&mut self);
    fn input_state(&mut self, port: c_uint, device: c_uint, index: c_uint, id: c_uint) -> i16;
    fn pixel_format(&self) -> PixelFormat;
}

thread_local! {
    static CURRENT: Cell<Option<NonNull<dyn Callbacks>>> = const { Cell::new(None) };
}

/// Publishes a session as this thread's current instance for the duration of a core call,
/// and notes which call it is (for a core that aborts the process: [`abort`]).
struct Enter {
    previous: Option<NonNull<dyn Callbacks>>,
    _stage: InCore,
}

impl Enter {
    fn new(state: NonNull<dyn Callbacks>, stage: Stage) -> Self {
        Self { previous: CURRENT.with(|c| c.replace(Some(state))), _stage: InCore::new(stage) }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

fn with_current<R>(f: impl FnOnce(&mut dyn Callbacks) -> R) -> Option<R> {
    let ptr = CURRENT.with(Cell::get)?;
    // SAFETY: the pointer was published by `Enter` from a live boxed state owned by a Session
    // that is inside a core call on this thread; no other reference to the state is active
    // while the core runs (the Session only touches it between core calls), and callbacks are
    // not re-entered.
    Some(f(unsafe { &mut *ptr.as_ptr() }))
}

unsafe extern "C" fn environment_cb(cmd: c_uint, data: *mut c_void) -> bool {
    with_current(|s| s.environment(cmd, data)).unwrap_or(false)
}

unsafe extern "C" fn video_cb(data: *const c_void, width: c_uint, height: c_uint, pitch: usize) {
    with_current(|s| {
        if data.is_null() {
            s.video(VideoInput::Duplicate);
            return;
        }
        if data as usize == ffi::HW_FRAME_BUFFER_VALID || width == 0 || height == 0 {
            return;
        }
        let format = s.pixel_format();
        let len = pitch * (height as usize - 1) + width as usize * format.bytes_per_pixel();
        // SAFETY: libretro guarantees `data` points at `height` rows of `pitch` bytes (the last
        // row at least `width` pixels) in the negotiated format, valid during this call.
        let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        s.video(VideoInput::Pixels { data: bytes, width, height, pitch, format });
    });
}

unsafe extern "C" fn audio_sample_cb(left: i16, right: i16) {
    with_current(|s| s.audio(&[left, right]));
}

unsafe extern "C" fn audio_batch_cb(data: *const i16, frames: usize) -> usize {
    if data.is_null() {
        return 0;
    }
    // SAFETY: libretro passes `frames` interleaved stereo frames (2 × i16 each), valid during
    // this call.
    let samples = unsafe { std::slice::from_raw_parts(data, frames * 2) };
    with_current(|s| s.audio(samples));
    frames
}

unsafe extern "C" fn input_poll_cb() {
    with_current(|s| s.input_poll());
}

unsafe extern "C" fn input_state_cb(port: c_uint, device: c_uint, index: c_uint, id: c_uint) -> i16 {
    with_current(|s| s.input_state(port, device, index, id)).unwrap_or(0)
}

/// Everything the callbacks touch.
struct State<I: Io> {
    io: I,
    pixel_format: PixelFormat,
    av: Option<AvInfo>,
    av_changed: bool,
    /// The core's `SET_ROTATION`, kept apart: cores set it before the av info exists.
    rotation: u8,
    /// The devices the core offers per port (`SET_CONTROLLER_INFO`), index 0 = player 1.
    controllers: Vec<Vec<PortDevice>>,
    options: OptionStore,
    system_dir: CString,
    save_dir: CString,
    core_path: CString,
    shutdown: bool,
    unknown: HashSet<c_uint>,
}

/// Reads a NUL-terminated C string, or None for NULL.
///
/// # Safety
/// `p` must be NULL or point at a NUL-terminated string valid for the call.
unsafe fn c_str<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: guaranteed by the caller.
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

/// Decodes a NULL-terminated `values` array and default into an [`OptionDef`].
///
/// # Safety
/// `values` entries and `default` follow the libretro core-option contract.
unsafe fn option_def(key: &str, values: &[ffi::CoreOptionValue], default: *const c_char) -> OptionDef {
    let values: Vec<String> = values
        .iter()
        // SAFETY: each non-NULL value is a NUL-terminated string owned by the core.
        .map_while(|v| unsafe { c_str(v.value) }.map(str::to_owned))
        .collect();
    // SAFETY: as above.
    let default = unsafe { c_str(default) }.map(str::to_owned).or_else(|| values.first().cloned()).unwrap_or_default();
    OptionDef { key: key.to_owned(), values, default }
}

impl<I: Io> State<I> {
    fn log_unknown(&mut self, cmd: c_uint) {
        if self.unknown.insert(cmd) {
            tracing::debug!(cmd, "unsupported environment command");
            if LOG_THRESHOLD.load(Ordering::Relaxed) == ffi::log_level::DEBUG {
                let experimental = if cmd & ffi::ENVIRONMENT_EXPERIMENTAL != 0 { " (experimental)" } else { "" };
                eprintln!(
                    "[frontend debug] unsupported environment command {}{experimental}: answered false",
                    cmd & !ffi::ENVIRONMENT_EXPERIMENTAL
                );
            }
        }
    }

    /// Writes a value through an out-pointer, refusing NULL.
    ///
    /// # Safety
    /// `data` must be NULL or point at a writable `T`.
    unsafe fn put<T>(data: *mut c_void, value: T) -> bool {
        if data.is_null() {
            return false;
        }
        // SAFETY: non-NULL and, per the caller, a writable T.
        unsafe { data.cast::<T>().write(value) };
        true
    }

    /// `SET_ROTATION`: quarter turns counter-clockwise, 0..=3.
    fn rotate(&mut self, quarter_turns: c_uint) -> bool {
        let Ok(r @ 0..=3) = u8::try_from(quarter_turns) else { return false };
        self.rotation = r;
        if let Some(av) = &mut self.av {
            av.rotation = r;
            self.av_changed = true;
        }
        true
    }

    fn geometry(&mut self, g: &sys::GameGeometry) {
        if let Some(av) = &mut self.av {
            av.base_width = g.base_width;
            av.base_height = g.base_height;
            av.aspect_ratio = g.aspect_ratio;
            av.max_width = av.max_width.max(g.base_width);
            av.max_height = av.max_height.max(g.base_height);
            self.av_changed = true;
        }
    }
}

impl<I: Io> Callbacks for State<I> {
    fn environment(&mut self, cmd: c_uint, data: *mut c_void) -> bool {
        // SAFETY: for every arm, libretro.h defines the type `data` points at for each
        // command; we only read or write that type, and check for NULL where it may be NULL.
        unsafe {
            match cmd {
                env::GET_CAN_DUPE => Self::put(data, true),
                env::GET_OVERSCAN => Self::put(data, false),
                env::SET_PIXEL_FORMAT => {
                    if data.is_null() {
                        return false;
                    }
                    match PixelFormat::from_raw(*data.cast::<c_uint>()) {
                        Some(f) => {
                            self.pixel_format = f;
                            if let Some(av) = &mut self.av {
                                av.pixel_format = f;
                                self.av_changed = true;
                            }
                            true
                        }
                        None => false,
                    }
                }
                env::GET_SYSTEM_DIRECTORY | env::GET_CORE_ASSETS_DIRECTORY => Self::put(data, self.system_dir.as_ptr()),
                env::GET_SAVE_DIRECTORY => Self::put(data, self.save_dir.as_ptr()),
                env::GET_LIBRETRO_PATH => Self::put(data, self.core_path.as_ptr()),
                env::GET_LOG_INTERFACE => Self::put(data, ffi::LogCallback { log: log_cb as ffi::LogPrintfFn }),
                env::GET_LANGUAGE => Self::put::<c_uint>(data, 0),
                env::GET_INPUT_MAX_USERS => Self::put::<c_uint>(data, 4),
                env::GET_CORE_OPTIONS_VERSION => Self::put::<c_uint>(data, 2),
                env::GET_AUDIO_VIDEO_ENABLE | 47 => Self::put::<i32>(data, 0b11),
                env::GET_FASTFORWARDING | 49 => Self::put(data, false),
                env::GET_TARGET_REFRESH_RATE | 50 => Self::put::<f32>(data, self.av.map_or(60.0, |a| a.fps as f32)),
                env::GET_INPUT_BITMASKS | 51 => true,
                env::SET_CONTROLLER_INFO => {
                    if data.is_null() {
                        return false;
                    }
                    self.controllers = controller_info(data.cast());
                    true
                }
                env::GET_INPUT_DEVICE_CAPABILITIES => Self::put::<u64>(
                    data,
                    (1 << sys::DEVICE_JOYPAD) | (1 << sys::DEVICE_ANALOG) | (1 << sys::DEVICE_POINTER),
                ),
                env::GET_VARIABLE => {
                    if data.is_null() {
                        return false;
                    }
                    let var = &mut *data.cast::<sys::Variable>();
                    match c_str(var.key).and_then(|k| self.options.get(k)) {
                        Some(v) => {
                            var.value = v.as_ptr();
                            true
                        }
                        None => {
                            var.value = std::ptr::null();
                            false
                        }
                    }
                }
                env::GET_VARIABLE_UPDATE => {
                    let changed = self.options.take_changed();
                    Self::put(data, changed)
                }
                env::SET_VARIABLES => {
                    let mut defs = Vec::new();
                    let mut p = data.cast::<sys::Variable>().cast_const();
                    while !p.is_null() && !(*p).key.is_null() {
                        if let (Some(k), Some(v)) = (c_str((*p).key), c_str((*p).value)) {
                            defs.extend(OptionDef::from_legacy(k, v));
                        }
                        p = p.add(1);
                    }
                    self.options.declare(defs);
                    true
                }
                env::SET_CORE_OPTIONS | env::SET_CORE_OPTIONS_INTL => {
                    let mut p = data.cast::<ffi::CoreOptionDefinition>().cast_const();
                    if cmd == env::SET_CORE_OPTIONS_INTL && !data.is_null() {
                        p = (*data.cast::<ffi::CoreOptionsIntl>()).us;
                    }
                    let mut defs = Vec::new();
                    while !p.is_null() && !(*p).key.is_null() {
                        if let Some(k) = c_str((*p).key) {
                            defs.push(option_def(k, &(*p).values, (*p).default_value));
                        }
                        p = p.add(1);
                    }
                    self.options.declare(defs);
                    true
                }
                env::SET_CORE_OPTIONS_V2 | env::SET_CORE_OPTIONS_V2_INTL => {
                    let mut opts = data.cast::<ffi::CoreOptionsV2>().cast_const();
                    if cmd == env::SET_CORE_OPTIONS_V2_INTL && !data.is_null() {
                        opts = (*data.cast::<ffi::CoreOptionsV2Intl>()).us;
                    }
                    let mut defs = Vec::new();
                    if !opts.is_null() {
                        let mut p = (*opts).definitions;
                        while !p.is_null() && !(*p).key.is_null() {
                            if let Some(k) = c_str((*p).key) {
                                defs.push(option_def(k, &(*p).values, (*p).default_value));
                            }
                            p = p.add(1);
                        }
                    }
                    self.options.declare(defs);
                    true
                }
                env::SET_VARIABLE => {
                    if data.is_null() {
                        return true; // "is SET_VARIABLE supported?"
                    }
                    let var = &*data.cast::<sys::Variable>();
                    match (c_str(var.key), c_str(var.value)) {
                        (Some(k), Some(v)) => self.options.set(k, v),
                        _ => false,
                    }
                }
                env::SET_CORE_OPTIONS_DISPLAY | env::SET_CORE_OPTIONS_UPDATE_DISPLAY_CALLBACK => true,
                env::SET_GEOMETRY => {
                    if data.is_null() {
                        return false;
                    }
                    let g = (*data.cast::<sys::GameGeometry>()).clone();
                    self.geometry(&g);
                    true
                }
                env::SET_SYSTEM_AV_INFO => {
                    if data.is_null() {
                        return false;
                    }
                    let info = &*data.cast::<sys::SystemAvInfo>();
                    match av_from_sys(info, self.pixel_format) {
                        Ok(av) => {
                            self.av = Some(av);
                            self.av_changed = true;
                            true
                        }
                        Err(e) => {
                            tracing::warn!("ignoring SET_SYSTEM_AV_INFO: {e}");
                            false
                        }
                    }
                }
                env::SET_MESSAGE => {
                    if !data.is_null() {
                        if let Some(m) = c_str((*data.cast::<sys::Message>()).msg) {
                            eprintln!("[core message] {m}");
                        }
                    }
                    true
                }
                env::SET_MESSAGE_EXT => {
                    if !data.is_null() {
                        if let Some(m) = c_str((*data.cast::<ffi::MessageExt>()).msg) {
                            eprintln!("[core message] {m}");
                        }
                    }
                    true
                }
                env::SHUTDOWN => {
                    self.shutdown = true;
                    true
                }
                env::SET_ROTATION => !data.is_null() && self.rotate(*data.cast::<c_uint>()),
                env::SET_PERFORMANCE_LEVEL
                | env::SET_INPUT_DESCRIPTORS
                | env::SET_SUBSYSTEM_INFO
                | env::SET_MEMORY_MAPS
                | env::SET_SUPPORT_ACHIEVEMENTS
                | env::SET_SERIALIZATION_QUIRKS
                | env::SET_SUPPORT_NO_GAME
                | env::SET_CONTENT_INFO_OVERRIDE
                | env::SET_MINIMUM_AUDIO_LATENCY => true,
                _ => {
                    self.log_unknown(cmd);
                    false
                }
            }
        }
    }

    fn video(&mut self, frame: VideoInput<'_>) {
        self.io.video(frame);
    }

    fn audio(&mut self, samples: &[i16]) {
        self.io.audio(samples);
    }

    fn input_poll(&mut self) {
        self.io.poll_input();
    }

    fn input_state(&mut self, port: c_uint, device: c_uint, index: c_uint, id: c_uint) -> i16 {
        if port >= 4 {
            return 0;
        }
        let input = self.io.input(port);
        match device & sys::DEVICE_MASK {
            sys::DEVICE_JOYPAD => {
                if id == ffi::DEVICE_ID_JOYPAD_MASK {
                    input.buttons as i16
                } else if id < 16 {
                    ((input.buttons >> id) & 1) as i16
                } else {
                    0
                }
            }
            sys::DEVICE_ANALOG => match index {
                0 | 1 if id < 2 => input.axes[(index * 2 + id) as usize],
                ffi::DEVICE_INDEX_ANALOG_BUTTON if id < 16 && (input.buttons >> id) & 1 == 1 => 0x7fff,
                _ => 0,
            },
            // One pointer per port (index 0: no multi-touch).
            sys::DEVICE_POINTER if index == 0 => match id {
                sys::DEVICE_ID_POINTER_X => input.pointer.x,
                sys::DEVICE_ID_POINTER_Y => input.pointer.y,
                sys::DEVICE_ID_POINTER_PRESSED => i16::from(input.pointer.pressed),
                _ => 0,
            },
            _ => 0,
        }
    }

    fn pixel_format(&self) -> PixelFormat {
        self.pixel_format
    }
}

/// Copies a `SET_CONTROLLER_INFO` array (ended by an entry without types), at most 16 ports of
/// 64 devices each.
///
/// # Safety
/// `info` points at such an array whose descriptions are valid for the call.
unsafe fn controller_info(info: *const sys::ControllerInfo) -> Vec<Vec<PortDevice>> {
    let mut ports = Vec::new();
    for i in 0..16 {
        // SAFETY: the array goes on until its terminating entry (per the contract).
        let port = unsafe { &*info.add(i) };
        if port.types.is_null() {
            break;
        }
        let devices = (0..port.num_types.min(64) as usize)
            .filter_map(|j| {
                // SAFETY: `num_types` descriptions follow `types`.
                let d = unsafe { &*port.types.add(j) };
                Some(PortDevice { name: c_str(d.desc)?.to_owned(), id: d.id })
            })
            .collect();
        ports.push(devices);
    }
    ports
}

fn av_from_sys(info: &sys::SystemAvInfo, pixel_format: PixelFormat) -> Result<AvInfo, SessionError> {
    let g = &info.geometry;
    let t = &info.timing;
    if !(t.fps.is_finite() && t.fps > 0.0 && t.fps < 1000.0) {
        return Err(SessionError::AvInfo(format!("fps {}", t.fps)));
    }
    if g.base_width == 0 || g.base_height == 0 || g.base_width > 8192 || g.base_height > 8192 {
        return Err(SessionError::AvInfo(format!("geometry {}x{}", g.base_width, g.base_height)));
    }
    Ok(AvInfo {
        base_width: g.base_width,
        base_height: g.base_height,
        max_width: g.max_width.clamp(g.base_width, 8192),
        max_height: g.max_height.clamp(g.base_height, 8192),
        aspect_ratio: g.aspect_ratio,
        rotation: 0,
        fps: t.fps,
        sample_rate: t.sample_rate,
        pixel_format,
    })
}

fn cstring(p: &Path) -> Result<CString, SessionError> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| SessionError::Path(p.to_owned()))
}

/// A core with a game loaded. Unloads and deinitialises the core when dropped.
pub struct Session<I: Io> {
    state: NonNull<State<I>>,
    core: Core,
    info: SystemInfo,
    inited: bool,
    loaded: bool,
    rom_path: CString,
    rom_data: Vec<u8>,
}

impl<I: Io> std::fmt::Debug for Session<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("core", &self.core.path()).field("info", &self.info).finish()
    }
}

impl<I: Io> Session<I> {
    /// Loads the core, initialises it and loads `rom`.
    pub fn load(core_path: &Path, rom: &Path, config: &SessionConfig, io: I) -> Result<Self, SessionError> {
        if let Ok(level) = std::env::var("RETROFARM_CORE_LOG") {
            let l = match level.as_str() {
                "debug" => ffi::log_level::DEBUG,
                "info" => ffi::log_level::INFO,
                "error" => ffi::log_level::ERROR,
                _ => ffi::log_level::WARN,
            };
            LOG_THRESHOLD.store(l, Ordering::Relaxed);
        }
        let system_dir = cstring(&config.system_dir)?;
        let save_dir = cstring(&config.save_dir)?;
        let core_cpath = cstring(core_path)?;
        let rom_path = cstring(rom)?;
        match std::fs::metadata(rom) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(SessionError::Rom { path: rom.to_owned(), source: std::io::ErrorKind::IsADirectory.into() })
            }
            Err(source) => return Err(SessionError::Rom { path: rom.to_owned(), source }),
        }
        super::bios::check(core_path, rom, &config.system_dir)?;
        abort::install();
        let core = Core::load(core_path)?;
        let state = Box::new(State {
            io,
            pixel_format: PixelFormat::Orgb1555,
            av: None,
            av_changed: false,
            rotation: 0,
            controllers: Vec::new(),
            options: OptionStore::new(config.options.iter().cloned()),
            system_dir,
            save_dir,
            core_path: core_cpath,
            shutdown: false,
            unknown: HashSet::new(),
        });
        // From here on, Drop cleans up whatever was started.
        let mut session = Self {
            state: NonNull::from(Box::leak(state)),
            core,
            info: SystemInfo {
                library_name: String::new(),
                library_version: String::new(),
                valid_extensions: String::new(),
                need_fullpath: false,
            },
            inited: false,
            loaded: false,
            rom_path,
            rom_data: Vec::new(),
        };
        let f = *session.core.fns();
        {
            let _cur = session.enter(Stage::Init);
            // SAFETY: documented libretro start-up order; callbacks find the state through
            // the current-instance slot published by `_cur`.
            unsafe {
                (f.set_environment)(environment_cb);
                (f.init)();
                (f.set_video_refresh)(video_cb);
                (f.set_audio_sample)(audio_sample_cb);
                (f.set_audio_sample_batch)(audio_batch_cb);
                (f.set_input_poll)(input_poll_cb);
                (f.set_input_state)(input_state_cb);
            }
        }
        session.inited = true;
        session.info = session.system_info_raw();
        if !session.info.need_fullpath {
            session.rom_data =
                std::fs::read(rom).map_err(|source| SessionError::Rom { path: rom.to_owned(), source })?;
        }
        let game = sys::GameInfo {
            path: session.rom_path.as_ptr(),
            data: if session.rom_data.is_empty() { std::ptr::null() } else { session.rom_data.as_ptr().cast() },
            size: session.rom_data.len(),
            meta: std::ptr::null(),
        };
        let loaded = {
            let _cur = session.enter(Stage::LoadGame);
            // SAFETY: `game` points at our path and data, kept alive by the session.
            unsafe { (f.load_game)(&game) }
        };
        if !loaded {
            return Err(SessionError::LoadGame { core: core_path.to_owned(), rom: rom.to_owned() });
        }
        session.loaded = true;
        let mut raw = sys::SystemAvInfo {
            geometry: sys::GameGeometry {
                base_width: 0,
                base_height: 0,
                max_width: 0,
                max_height: 0,
                aspect_ratio: 0.0,
            },
            timing: sys::SystemTiming { fps: 0.0, sample_rate: 0.0 },
        };
        {
            let _cur = session.enter(Stage::Other);
            // SAFETY: `raw` is a valid SystemAvInfo to fill; a game is loaded.
            unsafe { (f.get_system_av_info)(&mut raw) };
            let offered = session.state_mut().controllers.clone();
            for port in 1..=4u8 {
                let device = match config.port_devices.iter().rev().find(|(p, _)| *p == port) {
                    None => sys::DEVICE_JOYPAD,
                    Some((_, wanted)) => {
                        let here = offered.get(usize::from(port - 1)).map_or(&[][..], Vec::as_slice);
                        resolve_device(here, wanted).map_err(|offered| SessionError::PortDevice {
                            core: core_path.to_owned(),
                            port,
                            device: wanted.clone(),
                            offered,
                        })?
                    }
                };
                // SAFETY: plain call with a valid port and a device id the core declared.
                unsafe { (f.set_controller_port_device)(c_uint::from(port - 1), device) };
            }
        }
        let pf = session.state_mut().pixel_format;
        let av = av_from_sys(&raw, pf)?;
        let st = session.state_mut();
        st.av = Some(AvInfo { rotation: st.rotation, ..av });
        st.av_changed = false;
        Ok(session)
    }

    fn enter(&self, stage: Stage) -> Enter {
        let ptr: NonNull<dyn Callbacks> = self.state;
        Enter::new(ptr, stage)
    }

    fn state_mut(&mut self) -> &mut State<I> {
        // SAFETY: the state lives as long as the session; `&mut self` proves no core call
        // (and so no callback) is in progress.
        unsafe { self.state.as_mut() }
    }

    fn state(&self) -> &State<I> {
        // SAFETY: as in `state_mut`; shared access between core calls.
        unsafe { self.state.as_ref() }
    }

    fn system_info_raw(&self) -> SystemInfo {
        let mut raw = sys::SystemInfo {
            library_name: std::ptr::null(),
            library_version: std::ptr::null(),
            valid_extensions: std::ptr::null(),
            need_fullpath: false,
            block_extract: false,
        };
        // SAFETY: `raw` is a valid struct to fill; the strings it receives are static in the
        // core and copied immediately.
        unsafe {
            (self.core.fns().get_system_info)(&mut raw);
            SystemInfo {
                library_name: c_str(raw.library_name).unwrap_or_default().to_owned(),
                library_version: c_str(raw.library_version).unwrap_or_default().to_owned(),
                valid_extensions: c_str(raw.valid_extensions).unwrap_or_default().to_owned(),
                need_fullpath: raw.need_fullpath,
            }
        }
    }

    /// What the core says about itself.
    pub fn system_info(&self) -> &SystemInfo {
        &self.info
    }

    /// The devices the core offers per player port (index 0 = player 1).
    pub fn port_devices(&self) -> &[Vec<PortDevice>] {
        &self.state().controllers
    }

    /// Current av info (updated by SET_GEOMETRY / SET_SYSTEM_AV_INFO / SET_PIXEL_FORMAT).
    pub fn av_info(&self) -> AvInfo {
        self.state().av.expect("av info is set once loaded")
    }

    /// The av info, if it changed since the last call.
    pub fn take_av_change(&mut self) -> Option<AvInfo> {
        let st = self.state_mut();
        std::mem::take(&mut st.av_changed).then(|| st.av.expect("loaded"))
    }

    /// Whether the core asked to shut down (RETRO_ENVIRONMENT_SHUTDOWN).
    pub fn shutdown_requested(&self) -> bool {
        self.state().shutdown
    }

    /// The I/O sink.
    pub fn io(&mut self) -> &mut I {
        &mut self.state_mut().io
    }

    /// Declared core options and their definitions.
    pub fn options(&self) -> &[OptionDef] {
        self.state().options.definitions()
    }

    /// Runs one frame (`retro_run`).
    pub fn run(&mut self) {
        let _cur = self.enter(Stage::Run);
        // SAFETY: a game is loaded; callbacks reach the state through `_cur`.
        unsafe { (self.core.fns().run)() };
    }

    /// Resets the game.
    pub fn reset(&mut self) {
        let _cur = self.enter(Stage::Other);
        // SAFETY: a game is loaded.
        unsafe { (self.core.fns().reset)() };
    }

    /// Saves the emulator state, or None if the core cannot.
    pub fn serialize(&mut self) -> Option<Vec<u8>> {
        let _cur = self.enter(Stage::Other);
        // SAFETY: a game is loaded.
        let size = unsafe { (self.core.fns().serialize_size)() };
        if size == 0 {
            return None;
        }
        let mut buf = vec![0u8; size];
        // SAFETY: `buf` has exactly `size` writable bytes, as retro_serialize requires.
        let ok = unsafe { (self.core.fns().serialize)(buf.as_mut_ptr().cast(), size) };
        ok.then_some(buf)
    }

    /// Restores a state from [`Self::serialize`].
    pub fn unserialize(&mut self, data: &[u8]) -> bool {
        let _cur = self.enter(Stage::Other);
        // SAFETY: `data` is readable for its length.
        unsafe { (self.core.fns().unserialize)(data.as_ptr().cast(), data.len()) }
    }

    /// Where the core keeps memory region `kind` and its size; None when it has none.
    fn memory_raw(&self, kind: MemoryKind) -> Option<(NonNull<u8>, usize)> {
        let f = self.core.fns();
        let _cur = self.enter(Stage::Other);
        // SAFETY: a game is loaded; both functions accept any id and answer 0 / NULL for a
        // region the core does not have.
        let (size, data) = unsafe { ((f.get_memory_size)(kind.raw()), (f.get_memory_data)(kind.raw())) };
        let data = NonNull::new(data.cast::<u8>())?;
        (size > 0).then_some((data, size))
    }

    /// The core's memory region `kind` (e.g. [`MemoryKind::SaveRam`]), None if it has none.
    pub fn memory(&self, kind: MemoryKind) -> Option<&[u8]> {
        let (data, size) = self.memory_raw(kind)?;
        // SAFETY: libretro promises `size` bytes at `data`, valid while the game is loaded.
        // The core only changes them inside its own calls (run, unserialize, reset), which
        // take `&mut self` and so cannot happen while this borrow lives.
        Some(unsafe { std::slice::from_raw_parts(data.as_ptr(), size) })
    }

    /// The core's memory region `kind`, writable (how a frontend loads battery RAM).
    pub fn memory_mut(&mut self, kind: MemoryKind) -> Option<&mut [u8]> {
        let (data, size) = self.memory_raw(kind)?;
        // SAFETY: as in `memory`; `&mut self` also rules out any other slice of it.
        Some(unsafe { std::slice::from_raw_parts_mut(data.as_ptr(), size) })
    }

    /// A copy of the battery save RAM, None if the game has none.
    pub fn save_ram(&self) -> Option<Vec<u8>> {
        self.memory(MemoryKind::SaveRam).map(<[u8]>::to_vec)
    }

    /// Copies `data` into the battery save RAM; see [`crate::control::commands::copy_save_ram`]
    /// for the size rules.
    pub fn load_save_ram(&mut self, data: &[u8]) -> Result<(), SaveRamError> {
        crate::control::commands::copy_save_ram(self.memory_mut(MemoryKind::SaveRam), data)
    }
}

impl<I: Io> Drop for Session<I> {
    fn drop(&mut self) {
        {
            let _cur = self.enter(Stage::Other);
            if self.loaded {
                // SAFETY: a game is loaded; unloading it is the first step of shutting down.
                unsafe { (self.core.fns().unload_game)() };
            }
            if self.inited {
                // SAFETY: retro_init ran; retro_deinit is its counterpart.
                unsafe { (self.core.fns().deinit)() };
            }
        }
        // SAFETY: the state came from Box::leak in `load`; the core is deinitialised and no
        // longer calls back.
        drop(unsafe { Box::from_raw(self.state.as_ptr()) });
    }
}
