//! The probe core: a libretro core of our own for measurement.
//!
//! It renders 256x240 XRGB8888 at 60 fps, drawing its frame counter and the port-1 buttons it
//! read for that frame as big black/white cells ([`marker`]) that survive lossy video coding,
//! so a receiver can tell from a decoded picture which frame it is and which input it reflects;
//! where port 1's pointer presses, it paints a white square (a touch screen's test).
//! It plays a 440 Hz sine (48 kHz stereo) so audio flows, loads with any content or none, and
//! costs next to nothing to run: a room of it measures what the streaming path costs.
//!
//! Built as `libretrofarm_probe_core.so` (cdylib). The whole crate is the C ABI of libretro,
//! hence `unsafe_code` is allowed here and nowhere else in the workspace.
#![allow(unsafe_code)]

pub mod marker;
pub mod misbehave;

use std::ffi::{c_char, c_uint, c_void, CStr};
use std::sync::Mutex;

use marker::{Marker, HEIGHT, WIDTH};

/// Frames per second.
pub const FPS: f64 = 60.0;
/// Audio sample rate in Hz.
pub const SAMPLE_RATE: u32 = 48_000;
/// Stereo audio frames per video frame.
pub const AUDIO_FRAMES_PER_FRAME: usize = SAMPLE_RATE as usize / 60;
/// The tone's frequency in Hz.
pub const TONE_HZ: u32 = 440;
/// Samples in one period of the tone pattern (440/48000 = 11/1200: 11 cycles in 1200 samples).
const TONE_PERIOD: u64 = 1200;

const API_VERSION: c_uint = 1;
const ENV_SET_PIXEL_FORMAT: c_uint = 10;
const ENV_SET_SUPPORT_NO_GAME: c_uint = 18;
const ENV_SET_ROTATION: c_uint = 1;
const PIXEL_FORMAT_XRGB8888: c_uint = 1;
const DEVICE_JOYPAD: c_uint = 1;
const DEVICE_POINTER: c_uint = 6;
const REGION_NTSC: c_uint = 0;

/// `struct retro_system_info`.
#[repr(C)]
#[derive(Debug)]
pub struct SystemInfo {
    library_name: *const c_char,
    library_version: *const c_char,
    valid_extensions: *const c_char,
    need_fullpath: bool,
    block_extract: bool,
}

/// `struct retro_game_geometry`.
#[repr(C)]
#[derive(Debug)]
pub struct GameGeometry {
    base_width: c_uint,
    base_height: c_uint,
    max_width: c_uint,
    max_height: c_uint,
    aspect_ratio: f32,
}

/// `struct retro_system_timing`.
#[repr(C)]
#[derive(Debug)]
pub struct SystemTiming {
    fps: f64,
    sample_rate: f64,
}

/// `struct retro_system_av_info`.
#[repr(C)]
#[derive(Debug)]
pub struct SystemAvInfo {
    geometry: GameGeometry,
    timing: SystemTiming,
}

/// `struct retro_game_info` (never read: any content, or none, is accepted).
#[repr(C)]
#[derive(Debug)]
pub struct GameInfo {
    path: *const c_char,
    data: *const c_void,
    size: usize,
    meta: *const c_char,
}

type EnvironmentFn = unsafe extern "C" fn(cmd: c_uint, data: *mut c_void) -> bool;
type VideoRefreshFn = unsafe extern "C" fn(data: *const c_void, width: c_uint, height: c_uint, pitch: usize);
type AudioSampleFn = unsafe extern "C" fn(left: i16, right: i16);
type AudioSampleBatchFn = unsafe extern "C" fn(data: *const i16, frames: usize) -> usize;
type InputPollFn = unsafe extern "C" fn();
type InputStateFn = unsafe extern "C" fn(port: c_uint, device: c_uint, index: c_uint, id: c_uint) -> i16;

/// The frontend's callbacks.
#[derive(Clone, Copy, Default)]
struct Frontend {
    environment: Option<EnvironmentFn>,
    video: Option<VideoRefreshFn>,
    audio_sample: Option<AudioSampleFn>,
    audio_batch: Option<AudioSampleBatchFn>,
    input_poll: Option<InputPollFn>,
    input_state: Option<InputStateFn>,
}

static FRONTEND: Mutex<Frontend> = Mutex::new(Frontend {
    environment: None,
    video: None,
    audio_sample: None,
    audio_batch: None,
    input_poll: None,
    input_state: None,
});

/// The running "game": plain Rust, no FFI, so it can be tested directly.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Frames run since load or reset.
    pub frame: u64,
    /// Buttons read for the last frame.
    pub buttons: u16,
    /// Stereo samples produced so far (the tone's phase).
    pub samples: u64,
    /// The last picture, XRGB8888.
    pub pixels: Vec<u32>,
    /// The last frame's audio, interleaved stereo.
    pub audio: Vec<i16>,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            frame: 0,
            buttons: 0,
            samples: 0,
            pixels: vec![0; WIDTH * HEIGHT],
            audio: Vec::with_capacity(AUDIO_FRAMES_PER_FRAME * 2),
        }
    }
}

impl Probe {
    /// Runs one frame with `buttons` held: draws the picture and the frame's audio.
    pub fn step(&mut self, buttons: u16) {
        self.buttons = buttons;
        let m = Marker { counter: self.frame as u16, buttons };
        marker::render(&mut self.pixels, self.frame, m);
        self.audio.clear();
        for _ in 0..AUDIO_FRAMES_PER_FRAME {
            let phase = (self.samples % TONE_PERIOD) as f64 / SAMPLE_RATE as f64;
            let v = (0.2 * 32767.0 * (2.0 * std::f64::consts::PI * f64::from(TONE_HZ) * phase).sin()) as i16;
            self.audio.extend_from_slice(&[v, v]);
            self.samples += 1;
        }
        self.frame += 1;
    }

    /// Paints a white 16x16 square where a pointer presses (libretro's -0x7fff..=0x7fff across
    /// and down the picture), below the marker rows: what a touch screen test looks for.
    pub fn touch(&mut self, x: i16, y: i16) {
        let at = |v: i16, size: usize| (i64::from(v) + 0x7fff) as usize * (size - 1) / 0xfffe;
        let (cx, cy) = (at(x, WIDTH), at(y, HEIGHT).max(marker::MARKER_ROWS * marker::CELL + 8));
        for row in cy.saturating_sub(8)..(cy + 8).min(HEIGHT) {
            for col in cx.saturating_sub(8)..(cx + 8).min(WIDTH) {
                self.pixels[row * WIDTH + col] = 0x00FF_FFFF;
            }
        }
    }

    /// Save state: frame counter and tone phase.
    pub fn save(&self) -> [u8; STATE_LEN] {
        let mut out = [0; STATE_LEN];
        out[..8].copy_from_slice(&self.frame.to_le_bytes());
        out[8..].copy_from_slice(&self.samples.to_le_bytes());
        out
    }

    /// Restores [`Self::save`].
    pub fn load(&mut self, state: &[u8]) -> bool {
        let (Some(f), Some(s)) = (state.get(..8), state.get(8..STATE_LEN)) else { return false };
        self.frame = u64::from_le_bytes(f.try_into().expect("8 bytes"));
        self.samples = u64::from_le_bytes(s.try_into().expect("8 bytes"));
        true
    }
}

/// Bytes of a save state.
pub const STATE_LEN: usize = 16;

static GAME: Mutex<Option<Probe>> = Mutex::new(None);
/// What the content asked the core to do wrong, if anything ([`misbehave`]).
static MISBEHAVE: Mutex<Option<misbehave::Misbehaviour>> = Mutex::new(None);

fn frontend() -> Frontend {
    *FRONTEND.lock().unwrap_or_else(|e| e.into_inner())
}

fn set_frontend(f: impl FnOnce(&mut Frontend)) {
    f(&mut FRONTEND.lock().unwrap_or_else(|e| e.into_inner()));
}

fn game() -> std::sync::MutexGuard<'static, Option<Probe>> {
    GAME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Calls the frontend's environment callback.
fn environment(cmd: c_uint, data: *mut c_void) -> bool {
    match frontend().environment {
        // SAFETY: the frontend gave us this callback in retro_set_environment; `data` points at
        // the type libretro.h defines for `cmd` (callers below pass exactly that).
        Some(env) => unsafe { env(cmd, data) },
        None => false,
    }
}

const LIBRARY_NAME: &CStr = c"retrofarm probe";
const LIBRARY_VERSION: &CStr = c"1";
const VALID_EXTENSIONS: &CStr = c"probe|bin|txt";

/// libretro API version.
#[no_mangle]
pub extern "C" fn retro_api_version() -> c_uint {
    API_VERSION
}

/// Fills `info`.
///
/// # Safety
/// `info` is NULL or points at a writable `retro_system_info`.
#[no_mangle]
pub unsafe extern "C" fn retro_get_system_info(info: *mut SystemInfo) {
    if info.is_null() {
        return;
    }
    let value = SystemInfo {
        library_name: LIBRARY_NAME.as_ptr(),
        library_version: LIBRARY_VERSION.as_ptr(),
        valid_extensions: VALID_EXTENSIONS.as_ptr(),
        // The content is never read: do not make the frontend load it.
        need_fullpath: true,
        block_extract: false,
    };
    // SAFETY: non-NULL and, per the contract, a writable retro_system_info; the strings are
    // 'static.
    unsafe { info.write(value) };
}

/// Fills `info`: 256x240, 60 fps, 48 kHz.
///
/// # Safety
/// `info` is NULL or points at a writable `retro_system_av_info`.
#[no_mangle]
pub unsafe extern "C" fn retro_get_system_av_info(info: *mut SystemAvInfo) {
    if info.is_null() {
        return;
    }
    let value = SystemAvInfo {
        geometry: GameGeometry {
            base_width: WIDTH as c_uint,
            base_height: HEIGHT as c_uint,
            max_width: WIDTH as c_uint,
            max_height: HEIGHT as c_uint,
            aspect_ratio: WIDTH as f32 / HEIGHT as f32,
        },
        timing: SystemTiming { fps: FPS, sample_rate: f64::from(SAMPLE_RATE) },
    };
    // SAFETY: non-NULL and, per the contract, a writable retro_system_av_info.
    unsafe { info.write(value) };
}

/// Keeps the environment callback and announces that no content is needed.
#[no_mangle]
pub extern "C" fn retro_set_environment(cb: Option<EnvironmentFn>) {
    set_frontend(|f| f.environment = cb);
    let mut yes = true;
    environment(ENV_SET_SUPPORT_NO_GAME, (&raw mut yes).cast());
}

/// Keeps the video callback.
#[no_mangle]
pub extern "C" fn retro_set_video_refresh(cb: Option<VideoRefreshFn>) {
    set_frontend(|f| f.video = cb);
}

/// Keeps the single-sample audio callback (unused: audio goes out in batches).
#[no_mangle]
pub extern "C" fn retro_set_audio_sample(cb: Option<AudioSampleFn>) {
    set_frontend(|f| f.audio_sample = cb);
}

/// Keeps the batch audio callback.
#[no_mangle]
pub extern "C" fn retro_set_audio_sample_batch(cb: Option<AudioSampleBatchFn>) {
    set_frontend(|f| f.audio_batch = cb);
}

/// Keeps the input poll callback.
#[no_mangle]
pub extern "C" fn retro_set_input_poll(cb: Option<InputPollFn>) {
    set_frontend(|f| f.input_poll = cb);
}

/// Keeps the input state callback.
#[no_mangle]
pub extern "C" fn retro_set_input_state(cb: Option<InputStateFn>) {
    set_frontend(|f| f.input_state = cb);
}

/// Nothing to set up before a game loads.
#[no_mangle]
pub extern "C" fn retro_init() {}

/// Forgets the game and the callbacks.
#[no_mangle]
pub extern "C" fn retro_deinit() {
    *game() = None;
    set_frontend(|f| *f = Frontend::default());
}

/// Every port is a RetroPad.
#[no_mangle]
pub extern "C" fn retro_set_controller_port_device(_port: c_uint, _device: c_uint) {}

/// Restarts the counter and the tone.
#[no_mangle]
pub extern "C" fn retro_reset() {
    if let Some(g) = game().as_mut() {
        g.frame = 0;
        g.samples = 0;
    }
}

/// One frame: poll input, draw, send the picture and 800 stereo samples.
#[no_mangle]
pub extern "C" fn retro_run() {
    let f = frontend();
    let mut guard = game();
    let Some(g) = guard.as_mut() else { return };
    if let Some(poll) = f.input_poll {
        // SAFETY: a frontend callback taking nothing, called from retro_run as libretro allows.
        unsafe { poll() };
    }
    let mut buttons = 0u16;
    if let Some(state) = f.input_state {
        for id in 0..16 {
            // SAFETY: a frontend callback with a valid port, device and button id.
            if unsafe { state(0, DEVICE_JOYPAD, 0, id) } != 0 {
                buttons |= 1 << id;
            }
        }
    }
    // Port 1's pointer: x, y and whether it presses (RETRO_DEVICE_ID_POINTER_*).
    let pointer = f.input_state.map(|state| {
        // SAFETY: a frontend callback with a valid port, device and id.
        std::array::from_fn::<i16, 3, _>(|id| unsafe { state(0, DEVICE_POINTER, 0, id as c_uint) })
    });
    if let Some(m) = MISBEHAVE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        m.frame(g.frame);
    }
    g.step(buttons);
    if let Some([x, y, 1]) = pointer {
        g.touch(x, y);
    }
    if let Some(video) = f.video {
        // SAFETY: `pixels` holds HEIGHT rows of WIDTH XRGB8888 pixels (pitch WIDTH * 4 bytes)
        // and stays alive and unchanged for the call.
        unsafe { video(g.pixels.as_ptr().cast(), WIDTH as c_uint, HEIGHT as c_uint, WIDTH * 4) };
    }
    if let Some(batch) = f.audio_batch {
        let mut sent = 0;
        while sent < AUDIO_FRAMES_PER_FRAME {
            let rest = &g.audio[sent * 2..];
            // SAFETY: `rest` holds `rest.len() / 2` interleaved stereo frames, alive for the call.
            let n = unsafe { batch(rest.as_ptr(), rest.len() / 2) };
            if n == 0 {
                break;
            }
            sent += n;
        }
    } else if let Some(sample) = f.audio_sample {
        for pair in g.audio.chunks_exact(2) {
            // SAFETY: a frontend callback taking two plain values.
            unsafe { sample(pair[0], pair[1]) };
        }
    }
}

/// Save state size.
#[no_mangle]
pub extern "C" fn retro_serialize_size() -> usize {
    STATE_LEN
}

/// Writes the save state.
///
/// # Safety
/// `data` is NULL or points at `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn retro_serialize(data: *mut c_void, size: usize) -> bool {
    let guard = game();
    let Some(g) = guard.as_ref() else { return false };
    if data.is_null() || size < STATE_LEN {
        return false;
    }
    let state = g.save();
    // SAFETY: `data` has at least STATE_LEN writable bytes (checked above, per the contract);
    // a local array cannot overlap it.
    unsafe { std::ptr::copy_nonoverlapping(state.as_ptr(), data.cast::<u8>(), STATE_LEN) };
    true
}

/// Restores a save state.
///
/// # Safety
/// `data` is NULL or points at `size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn retro_unserialize(data: *const c_void, size: usize) -> bool {
    let mut guard = game();
    let Some(g) = guard.as_mut() else { return false };
    if data.is_null() || size < STATE_LEN {
        return false;
    }
    // SAFETY: `data` has at least STATE_LEN readable bytes (checked above, per the contract).
    let state = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), STATE_LEN) };
    g.load(state)
}

/// No cheats.
#[no_mangle]
pub extern "C" fn retro_cheat_reset() {}

/// No cheats.
#[no_mangle]
pub extern "C" fn retro_cheat_set(_index: c_uint, _enabled: bool, _code: *const c_char) {}

/// Starts the probe with any content, or none. Fails only when the frontend refuses XRGB8888
/// or the content asks for a misbehaviour it cannot parse.
///
/// # Safety
/// `game` is NULL or points at a valid `retro_game_info` whose path is NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn retro_load_game(game_info: *const GameInfo) -> bool {
    let mut format = PIXEL_FORMAT_XRGB8888;
    if !environment(ENV_SET_PIXEL_FORMAT, (&raw mut format).cast()) {
        return false;
    }
    // SAFETY: per the contract above.
    let path = unsafe { game_info.as_ref() }
        .filter(|g| !g.path.is_null())
        // SAFETY: a non-null path is a NUL-terminated string (libretro.h).
        .map(|g| std::path::PathBuf::from(unsafe { CStr::from_ptr(g.path) }.to_string_lossy().into_owned()));
    let misbehaviour = match &path {
        Some(p) => match misbehave::Misbehaviour::parse(&content_head(p), p.clone()) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("probe: {e}");
                return false;
            }
        },
        None => None,
    };
    // Content `retrofarm-probe rotate N` asks the frontend to show the picture turned N
    // quarter turns counter-clockwise, as a vertical arcade or WonderSwan game does.
    if let Some(turns) = path.as_deref().map(content_head).as_deref().and_then(rotation) {
        let mut turns = turns;
        if !environment(ENV_SET_ROTATION, (&raw mut turns).cast()) {
            eprintln!("probe: the frontend refused rotation {turns}");
        }
    }
    *MISBEHAVE.lock().unwrap_or_else(|e| e.into_inner()) = misbehaviour;
    *game() = Some(Probe::default());
    true
}

/// The quarter turns content of the form `retrofarm-probe rotate N` asks for.
fn rotation(head: &str) -> Option<c_uint> {
    head.trim().strip_prefix("retrofarm-probe rotate ")?.trim().parse().ok()
}

/// The first 4 KiB of the content, as text (where a misbehaviour would be named).
fn content_head(path: &std::path::Path) -> String {
    use std::io::Read as _;
    let mut head = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(4096).read_to_end(&mut head);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Special content types are not supported.
#[no_mangle]
pub extern "C" fn retro_load_game_special(_type: c_uint, _info: *const GameInfo, _num: usize) -> bool {
    false
}

/// Forgets the game.
#[no_mangle]
pub extern "C" fn retro_unload_game() {
    *game() = None;
}

/// NTSC (60 fps).
#[no_mangle]
pub extern "C" fn retro_get_region() -> c_uint {
    REGION_NTSC
}

/// No memory regions are exposed.
#[no_mangle]
pub extern "C" fn retro_get_memory_data(_id: c_uint) -> *mut c_void {
    std::ptr::null_mut()
}

/// No memory regions are exposed.
#[no_mangle]
pub extern "C" fn retro_get_memory_size(_id: c_uint) -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_counter_and_input() {
        let mut p = Probe::default();
        for n in 0..70u64 {
            let buttons = if n % 3 == 0 { 1 << 8 } else { (n as u16) << 4 };
            p.step(buttons);
            let bytes: Vec<u8> = p.pixels.iter().flat_map(|x| x.to_le_bytes()).collect();
            let m = marker::decode_xrgb(&bytes, WIDTH, HEIGHT, WIDTH * 4).expect("a probe frame");
            assert_eq!(m, Marker { counter: n as u16, buttons });
            assert_eq!(p.audio.len(), AUDIO_FRAMES_PER_FRAME * 2);
        }
    }

    #[test]
    fn the_tone_is_a_continuous_440_hz_sine() {
        let mut p = Probe::default();
        let mut all = Vec::new();
        for _ in 0..60 {
            p.step(0);
            all.extend(p.audio.chunks_exact(2).map(|s| {
                assert_eq!(s[0], s[1]);
                s[0]
            }));
        }
        assert_eq!(all.len(), SAMPLE_RATE as usize);
        let crossings = all.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
        assert!((439..=441).contains(&crossings), "{crossings} rising zero crossings in 1 s");
        let peak = all.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((6000..=6600).contains(&peak), "peak {peak}");
    }

    #[test]
    fn save_states_restore_the_counter() {
        let mut p = Probe::default();
        for _ in 0..10 {
            p.step(0);
        }
        let s = p.save();
        p.step(0);
        assert!(p.load(&s));
        assert_eq!(p.frame, 10);
        assert!(!p.load(&s[..3]));
    }
}
