//! A note on stderr when a core aborts the process, saying in which call.
//!
//! Some cores end the process themselves: a C++ exception thrown out of the core (mednafen's
//! cores throw for a missing or unreadable file) cannot be caught in Rust and aborts with
//! "Rust cannot catch foreign exceptions"; a failed `assert` aborts too. The worker then sees a
//! child killed by SIGABRT and its last stderr lines; this handler adds the line that says what
//! the core was doing, e.g. that it could not load the game.
#![allow(unsafe_code)]

use std::os::raw::c_int;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Once;

/// The core call under way.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Stage {
    /// None: the frontend itself.
    Frontend = 0,
    /// `retro_init`.
    Init = 1,
    /// `retro_load_game`.
    LoadGame = 2,
    /// `retro_run`.
    Run = 3,
    /// Any other core call (saving, loading a state, unloading).
    Other = 4,
}

static STAGE: AtomicU8 = AtomicU8::new(Stage::Frontend as u8);
static INSTALL: Once = Once::new();

/// The note for a stage (a static string: the signal handler cannot allocate).
fn note(stage: u8) -> &'static [u8] {
    match stage {
        1 => b"retrofarm-emulator: the core aborted the process in retro_init\n",
        2 => {
            b"retrofarm-emulator: the core aborted the process in retro_load_game: it could not load this game \
               (a C++ exception or a failed check inside the core; its messages above may say why: a missing \
               or unreadable file, an unsupported image)\n"
        }
        3 => {
            b"retrofarm-emulator: the core aborted the process in retro_run (a C++ exception or a failed check \
               inside the core)\n"
        }
        4 => b"retrofarm-emulator: the core aborted the process (a C++ exception or a failed check inside the core)\n",
        _ => b"",
    }
}

extern "C" fn on_abort(_signal: c_int) {
    let note = note(STAGE.load(Ordering::Relaxed));
    if !note.is_empty() {
        // SAFETY: write(2) is async-signal-safe; `note` is a static buffer.
        unsafe { libc::write(2, note.as_ptr().cast(), note.len()) };
    }
    // Returning lets abort() go on: glibc restores the default action and raises SIGABRT again
    // (SA_RESETHAND has already restored it), so the process still dies of SIGABRT.
}

/// Installs the SIGABRT handler once per process.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        // SAFETY: a zeroed sigaction is valid; we set a handler that only calls write(2) and
        // only reads an atomic.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_abort as extern "C" fn(c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGABRT, &action, std::ptr::null_mut());
        }
    });
}

/// Marks a core call as under way until dropped.
pub(crate) struct InCore {
    previous: u8,
}

impl InCore {
    pub(crate) fn new(stage: Stage) -> Self {
        Self { previous: STAGE.swap(stage as u8, Ordering::Relaxed) }
    }
}

impl Drop for InCore {
    fn drop(&mut self) {
        STAGE.store(self.previous, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_nest_and_have_notes() {
        {
            let _load = InCore::new(Stage::LoadGame);
            assert_eq!(STAGE.load(Ordering::Relaxed), Stage::LoadGame as u8);
            {
                let _inner = InCore::new(Stage::Other);
                assert_eq!(STAGE.load(Ordering::Relaxed), Stage::Other as u8);
            }
            assert_eq!(STAGE.load(Ordering::Relaxed), Stage::LoadGame as u8);
        }
        assert_eq!(STAGE.load(Ordering::Relaxed), Stage::Frontend as u8);
        assert!(note(Stage::Frontend as u8).is_empty());
        assert!(std::str::from_utf8(note(Stage::LoadGame as u8)).unwrap().contains("could not load this game"));
    }
}
