//! The libretro frontend: `libretro-sys` for the base types, [`ffi`] for what it lacks, [`core`]
//! to load a core, [`session`] to run one game and dispatch its callbacks, [`options`] for core
//! options.

pub mod core;
pub mod ffi;
pub mod options;
pub mod session;

pub use session::{Io, MemoryKind, SaveRamError, Session, SessionConfig, SessionError, SystemInfo};
