//! Loading a libretro core (`dlopen` through libloading) into a table of its entry points.
#![allow(unsafe_code)]

use std::os::raw::{c_uint, c_void};
use std::path::{Path, PathBuf};

use libloading::Library;

use super::ffi::{sys, SerializeFn};

/// Why a core could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// dlopen failed (missing file, missing dependency, not a shared object).
    #[error("cannot load core {path}: {source}")]
    Open {
        /// The core's path.
        path: PathBuf,
        /// What the loader said.
        source: libloading::Error,
    },
    /// A required `retro_*` symbol is missing: not a libretro core.
    #[error("{path} is not a libretro core: missing symbol {symbol}: {source}")]
    Symbol {
        /// The core's path.
        path: PathBuf,
        /// The missing symbol.
        symbol: &'static str,
        /// What the loader said.
        source: libloading::Error,
    },
    /// The core speaks another libretro API version.
    #[error("{path} implements libretro API {found}, expected {expected}")]
    ApiVersion {
        /// The core's path.
        path: PathBuf,
        /// Version reported.
        found: c_uint,
        /// Version we speak.
        expected: c_uint,
    },
}

/// The core's entry points (field `x` is the symbol `retro_x`). Copies of function pointers:
/// valid while the `Core` (which keeps the library loaded) lives.
#[derive(Clone, Copy, Debug)]
pub struct CoreFns {
    pub set_environment: unsafe extern "C" fn(sys::EnvironmentFn),
    pub set_video_refresh: unsafe extern "C" fn(sys::VideoRefreshFn),
    pub set_audio_sample: unsafe extern "C" fn(sys::AudioSampleFn),
    pub set_audio_sample_batch: unsafe extern "C" fn(sys::AudioSampleBatchFn),
    pub set_input_poll: unsafe extern "C" fn(sys::InputPollFn),
    pub set_input_state: unsafe extern "C" fn(sys::InputStateFn),
    pub init: unsafe extern "C" fn(),
    pub deinit: unsafe extern "C" fn(),
    pub api_version: unsafe extern "C" fn() -> c_uint,
    pub get_system_info: unsafe extern "C" fn(*mut sys::SystemInfo),
    pub get_system_av_info: unsafe extern "C" fn(*mut sys::SystemAvInfo),
    pub set_controller_port_device: unsafe extern "C" fn(c_uint, c_uint),
    pub reset: unsafe extern "C" fn(),
    pub run: unsafe extern "C" fn(),
    pub serialize_size: unsafe extern "C" fn() -> usize,
    pub serialize: SerializeFn,
    pub unserialize: unsafe extern "C" fn(*const c_void, usize) -> bool,
    pub load_game: unsafe extern "C" fn(*const sys::GameInfo) -> bool,
    pub unload_game: unsafe extern "C" fn(),
    pub get_memory_data: unsafe extern "C" fn(c_uint) -> *mut c_void,
    pub get_memory_size: unsafe extern "C" fn(c_uint) -> usize,
}

/// A loaded core library. Load at most one per process: cores keep global state, and loading
/// the same file twice returns the same handle.
#[derive(Debug)]
pub struct Core {
    fns: CoreFns,
    path: PathBuf,
    _lib: Library,
}

impl Core {
    /// Loads the core at `path` and resolves its entry points.
    pub fn load(path: &Path) -> Result<Self, CoreError> {
        // SAFETY: loading a libretro core runs its static initialisers; that is the point of
        // this process (one core per child process, nothing else shares its globals).
        let lib = unsafe { Library::new(path) }.map_err(|source| CoreError::Open { path: path.to_owned(), source })?;
        macro_rules! sym {
            ($name:literal) => {{
                // SAFETY: the symbol is declared by libretro.h with exactly the type of the
                // field it is stored in; the pointer is copied out and stays valid while `lib`
                // (kept in the returned Core) is loaded.
                match unsafe { lib.get(concat!($name, "\0").as_bytes()) } {
                    Ok(s) => *s,
                    Err(source) => return Err(CoreError::Symbol { path: path.to_owned(), symbol: $name, source }),
                }
            }};
        }
        let fns = CoreFns {
            set_environment: sym!("retro_set_environment"),
            set_video_refresh: sym!("retro_set_video_refresh"),
            set_audio_sample: sym!("retro_set_audio_sample"),
            set_audio_sample_batch: sym!("retro_set_audio_sample_batch"),
            set_input_poll: sym!("retro_set_input_poll"),
            set_input_state: sym!("retro_set_input_state"),
            init: sym!("retro_init"),
            deinit: sym!("retro_deinit"),
            api_version: sym!("retro_api_version"),
            get_system_info: sym!("retro_get_system_info"),
            get_system_av_info: sym!("retro_get_system_av_info"),
            set_controller_port_device: sym!("retro_set_controller_port_device"),
            reset: sym!("retro_reset"),
            run: sym!("retro_run"),
            serialize_size: sym!("retro_serialize_size"),
            serialize: sym!("retro_serialize"),
            unserialize: sym!("retro_unserialize"),
            load_game: sym!("retro_load_game"),
            unload_game: sym!("retro_unload_game"),
            get_memory_data: sym!("retro_get_memory_data"),
            get_memory_size: sym!("retro_get_memory_size"),
        };
        // SAFETY: retro_api_version takes nothing and may be called at any time.
        let found = unsafe { (fns.api_version)() };
        if found != sys::API_VERSION {
            return Err(CoreError::ApiVersion { path: path.to_owned(), found, expected: sys::API_VERSION });
        }
        Ok(Self { fns, path: path.to_owned(), _lib: lib })
    }

    /// The entry points.
    pub fn fns(&self) -> &CoreFns {
        &self.fns
    }

    /// Where the core was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
