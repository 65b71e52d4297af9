//! retrofarm-emulator: runs one libretro core per child process and shares its frames, audio
//! and input with the worker through shared memory.
//!
//! - [`host`]: the parent's API ([`Emulator::spawn`], frames, audio, input, health).
//! - [`child`]: the child's loop (the `retrofarm-emulator` binary).
//! - [`control`]: the command channel (save, load, reset) from the parent to the child.
//! - [`shm`]: the shared-memory layout, frame ring, PCM ring and input block.
//! - [`pacing`]: the drift-free frame schedule.
//! - [`libretro`]: loading a core and answering its callbacks.
//! - [`cores`]: where cores (and test ROMs) are found.
//! - [`sandbox`]: what the child may touch (files, network, processes, memory).
//!
//! Why a process per room, the memory layout and the pacing are explained in
//! `docs/decisions/emulator.md`.

pub mod args;
pub mod av;
pub mod buttons;
pub mod child;
pub mod control;
pub mod cores;
pub mod host;
pub mod libretro;
pub mod pacing;
pub mod sandbox;
pub mod script;
pub mod shm;
pub mod synthetic;
mod sys;

pub use av::{AvInfo, PixelFormat};
pub use control::GameSave;
pub use cores::find_core;
pub use host::{find_binary, Emulator, EmulatorConfig, Error, Health};
pub use pacing::{Pacer, PacingMode, Tick};
pub use script::InputScript;
pub use shm::frame_ring::{Frame, FrameMeta, FrameTicket};
pub use shm::input::PortInput;
pub use shm::Counters;
pub use synthetic::TestPattern;

/// Eventfds, as the frame wake-ups use them: created non-blocking and close-on-exec, signalled
/// and drained without ever blocking.
pub use sys::{eventfd, eventfd_drain, eventfd_notify};

/// Ignores SIGINT from now on (an emulator child, whose worker decides when it ends).
pub fn ignore_interrupts() {
    sys::ignore_sigint();
}

/// CPU time (user + system) this process has used so far.
pub fn process_cpu_time() -> std::time::Duration {
    sys::process_cpu_time()
}

/// CLOCK_MONOTONIC in nanoseconds, the clock of [`FrameMeta::emulated_at_ns`] and heartbeats.
pub fn monotonic_ns() -> u64 {
    sys::monotonic_ns()
}
