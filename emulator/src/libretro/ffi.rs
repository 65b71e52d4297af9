//! What `libretro-sys` 0.1.1 lacks or gets wrong, from libretro.h (RetroArch 1.14):
//! newer environment commands, `retro_serialize`'s `bool` return, the core-option structs and a
//! log callback type we can actually implement (the real one is C-variadic).

use std::os::raw::{c_char, c_int, c_uint, c_void};

pub use libretro_sys as sys;

/// Marks experimental environment commands.
pub const ENVIRONMENT_EXPERIMENTAL: c_uint = 0x10000;

/// `RETRO_ENVIRONMENT_*` commands, all of them up to libretro.h of RetroArch 1.14.
pub mod env {
    use super::ENVIRONMENT_EXPERIMENTAL as EXP;
    use std::os::raw::c_uint;

    pub const SET_ROTATION: c_uint = 1;
    pub const GET_OVERSCAN: c_uint = 2;
    pub const GET_CAN_DUPE: c_uint = 3;
    pub const SET_MESSAGE: c_uint = 6;
    pub const SHUTDOWN: c_uint = 7;
    pub const SET_PERFORMANCE_LEVEL: c_uint = 8;
    pub const GET_SYSTEM_DIRECTORY: c_uint = 9;
    pub const SET_PIXEL_FORMAT: c_uint = 10;
    pub const SET_INPUT_DESCRIPTORS: c_uint = 11;
    pub const SET_KEYBOARD_CALLBACK: c_uint = 12;
    pub const SET_DISK_CONTROL_INTERFACE: c_uint = 13;
    pub const SET_HW_RENDER: c_uint = 14;
    pub const GET_VARIABLE: c_uint = 15;
    pub const SET_VARIABLES: c_uint = 16;
    pub const GET_VARIABLE_UPDATE: c_uint = 17;
    pub const SET_SUPPORT_NO_GAME: c_uint = 18;
    pub const GET_LIBRETRO_PATH: c_uint = 19;
    pub const SET_FRAME_TIME_CALLBACK: c_uint = 21;
    pub const SET_AUDIO_CALLBACK: c_uint = 22;
    pub const GET_RUMBLE_INTERFACE: c_uint = 23;
    pub const GET_INPUT_DEVICE_CAPABILITIES: c_uint = 24;
    pub const GET_SENSOR_INTERFACE: c_uint = 25 | EXP;
    pub const GET_CAMERA_INTERFACE: c_uint = 26 | EXP;
    pub const GET_LOG_INTERFACE: c_uint = 27;
    pub const GET_PERF_INTERFACE: c_uint = 28;
    pub const GET_LOCATION_INTERFACE: c_uint = 29;
    pub const GET_CORE_ASSETS_DIRECTORY: c_uint = 30;
    pub const GET_SAVE_DIRECTORY: c_uint = 31;
    pub const SET_SYSTEM_AV_INFO: c_uint = 32;
    pub const SET_PROC_ADDRESS_CALLBACK: c_uint = 33;
    pub const SET_SUBSYSTEM_INFO: c_uint = 34;
    pub const SET_CONTROLLER_INFO: c_uint = 35;
    pub const SET_MEMORY_MAPS: c_uint = 36 | EXP;
    pub const SET_GEOMETRY: c_uint = 37;
    pub const GET_USERNAME: c_uint = 38;
    pub const GET_LANGUAGE: c_uint = 39;
    pub const GET_CURRENT_SOFTWARE_FRAMEBUFFER: c_uint = 40 | EXP;
    pub const GET_HW_RENDER_INTERFACE: c_uint = 41 | EXP;
    pub const SET_SUPPORT_ACHIEVEMENTS: c_uint = 42 | EXP;
    pub const SET_HW_RENDER_CONTEXT_NEGOTIATION_INTERFACE: c_uint = 43 | EXP;
    pub const SET_SERIALIZATION_QUIRKS: c_uint = 44;
    pub const SET_HW_SHARED_CONTEXT: c_uint = 44 | EXP;
    pub const GET_VFS_INTERFACE: c_uint = 45 | EXP;
    pub const GET_LED_INTERFACE: c_uint = 46 | EXP;
    pub const GET_AUDIO_VIDEO_ENABLE: c_uint = 47 | EXP;
    pub const GET_MIDI_INTERFACE: c_uint = 48 | EXP;
    pub const GET_FASTFORWARDING: c_uint = 49 | EXP;
    pub const GET_TARGET_REFRESH_RATE: c_uint = 50 | EXP;
    pub const GET_INPUT_BITMASKS: c_uint = 51 | EXP;
    pub const GET_CORE_OPTIONS_VERSION: c_uint = 52;
    pub const SET_CORE_OPTIONS: c_uint = 53;
    pub const SET_CORE_OPTIONS_INTL: c_uint = 54;
    pub const SET_CORE_OPTIONS_DISPLAY: c_uint = 55;
    pub const GET_PREFERRED_HW_RENDER: c_uint = 56;
    pub const GET_DISK_CONTROL_INTERFACE_VERSION: c_uint = 57;
    pub const SET_DISK_CONTROL_EXT_INTERFACE: c_uint = 58;
    pub const GET_MESSAGE_INTERFACE_VERSION: c_uint = 59;
    pub const SET_MESSAGE_EXT: c_uint = 60;
    pub const GET_INPUT_MAX_USERS: c_uint = 61;
    pub const SET_AUDIO_BUFFER_STATUS_CALLBACK: c_uint = 62;
    pub const SET_MINIMUM_AUDIO_LATENCY: c_uint = 63;
    pub const SET_FASTFORWARDING_OVERRIDE: c_uint = 64;
    pub const SET_CONTENT_INFO_OVERRIDE: c_uint = 65;
    pub const GET_GAME_INFO_EXT: c_uint = 66;
    pub const SET_CORE_OPTIONS_V2: c_uint = 67;
    pub const SET_CORE_OPTIONS_V2_INTL: c_uint = 68;
    pub const SET_CORE_OPTIONS_UPDATE_DISPLAY_CALLBACK: c_uint = 69;
    pub const SET_VARIABLE: c_uint = 70;
    pub const GET_THROTTLE_STATE: c_uint = 71 | EXP;
    pub const GET_SAVESTATE_CONTEXT: c_uint = 72 | EXP;
}

/// `RETRO_DEVICE_ID_JOYPAD_MASK`: with GET_INPUT_BITMASKS, input_state returns all buttons.
pub const DEVICE_ID_JOYPAD_MASK: c_uint = 256;
/// `RETRO_DEVICE_INDEX_ANALOG_BUTTON`: analog values of digital buttons.
pub const DEVICE_INDEX_ANALOG_BUTTON: c_uint = 2;
/// `RETRO_HW_FRAME_BUFFER_VALID`: video_refresh data for hardware-rendered frames.
pub const HW_FRAME_BUFFER_VALID: usize = usize::MAX;
/// Values per core option, including the NULL terminator.
pub const NUM_CORE_OPTION_VALUES_MAX: usize = 128;

/// `retro_serialize` as it really is: it returns whether it succeeded.
pub type SerializeFn = unsafe extern "C" fn(data: *mut c_void, size: usize) -> bool;

/// The log callback we hand out (the real `retro_log_printf_t` is variadic, which stable Rust
/// cannot define: see [`super::log`]).
pub use super::log::LogPrintfFn;

/// `struct retro_log_callback`.
#[repr(C)]
#[derive(Debug)]
pub struct LogCallback {
    /// The log function.
    pub log: LogPrintfFn,
}

/// `struct retro_core_option_value`.
#[repr(C)]
#[derive(Debug)]
pub struct CoreOptionValue {
    /// The value the core sees.
    pub value: *const c_char,
    /// Human-readable label (may be NULL).
    pub label: *const c_char,
}

/// `struct retro_core_option_definition` (v1).
#[repr(C)]
#[derive(Debug)]
pub struct CoreOptionDefinition {
    /// Variable key; NULL terminates the array.
    pub key: *const c_char,
    /// Description.
    pub desc: *const c_char,
    /// Sub-label.
    pub info: *const c_char,
    /// Possible values, NULL-terminated.
    pub values: [CoreOptionValue; NUM_CORE_OPTION_VALUES_MAX],
    /// Default value (NULL = the first).
    pub default_value: *const c_char,
}

/// `struct retro_core_options_intl`.
#[repr(C)]
#[derive(Debug)]
pub struct CoreOptionsIntl {
    /// English definitions (required).
    pub us: *const CoreOptionDefinition,
    /// Localised definitions (ignored).
    pub local: *const CoreOptionDefinition,
}

/// `struct retro_core_option_v2_category`.
#[repr(C)]
#[derive(Debug)]
pub struct CoreOptionV2Category {
    /// Category key; NULL terminates.
    pub key: *const c_char,
    /// Description.
    pub desc: *const c_char,
    /// Sub-label.
    pub info: *const c_char,
}

/// `struct retro_core_option_v2_definition`.
#[repr(C)]
#[derive(Debug)]
pub struct CoreOptionV2Definition {
    /// Variable key; NULL terminates the array.
    pub key: *const c_char,
    /// Description.
    pub desc: *const c_char,
    /// Description inside its category.
    pub desc_categorized: *const c_char,
    /// Sub-label.
    pub info: *const c_char,
    /// Sub-label inside its category.
    pub info_categorized: *const c_char,
    /// Category key (may be NULL).
    pub category_key: *const c_char,
    /// Possible values, NULL-terminated.
    pub values: [CoreOptionValue; NUM_CORE_OPTION_VALUES_MAX],
    /// Default value (NULL = the first).
    pub default_value: *const c_char,
}

/// `struct retro_core_options_v2`.
#[repr(C)]
#[derive(Debug)]
pub struct CoreOptionsV2 {
    /// Categories (may be NULL).
    pub categories: *const CoreOptionV2Category,
    /// Definitions, key-NULL-terminated.
    pub definitions: *const CoreOptionV2Definition,
}

/// `struct retro_core_options_v2_intl`.
#[repr(C)]
#[derive(Debug)]
pub struct CoreOptionsV2Intl {
    /// English options (required).
    pub us: *const CoreOptionsV2,
    /// Localised options (ignored).
    pub local: *const CoreOptionsV2,
}

/// `struct retro_message_ext` (we read only `msg`).
#[repr(C)]
#[derive(Debug)]
pub struct MessageExt {
    /// Message text.
    pub msg: *const c_char,
    /// Duration in ms.
    pub duration: c_uint,
    /// Priority.
    pub priority: c_uint,
    /// A `retro_log_level`.
    pub level: c_int,
    /// A `retro_message_target`.
    pub target: c_int,
    /// A `retro_message_type`.
    pub kind: c_int,
    /// Progress percentage or -1.
    pub progress: i8,
}

/// `RETRO_LOG_*` levels.
pub mod log_level {
    use std::os::raw::c_uint;
    pub const DEBUG: c_uint = 0;
    pub const INFO: c_uint = 1;
    pub const WARN: c_uint = 2;
    pub const ERROR: c_uint = 3;
}
