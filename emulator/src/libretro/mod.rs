//! The libretro frontend: `libretro-sys` for the base types, [`ffi`] for what it lacks, [`core`]
//! to load a core, [`session`] to run one game and dispatch its callbacks, [`options`] for core
//! options, [`log`] for the cores' messages, [`bios`] for the BIOS files some cores need, [`content`] for the files a CD image is made of.

mod abort;
pub mod bios;
pub mod content;
pub mod core;
pub mod ffi;
pub mod log;
pub mod options;
pub mod session;

pub use session::{Io, MemoryKind, SaveRamError, Session, SessionConfig, SessionError, SystemInfo};
