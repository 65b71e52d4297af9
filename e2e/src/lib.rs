//! Test harness for end-to-end tests: starts real `retrofarm-coordinator` and
//! `retrofarm-worker` processes on loopback ports, and plays the browser's part with a
//! WebSocket client ([`browser`]) and a str0m WebRTC peer ([`rtc`]).

pub mod browser;
pub mod figures;
pub mod netns;
pub mod player;
pub mod procs;
pub mod rtc;
pub mod video;

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("e2e is in the repo").to_path_buf()
}

/// `../shared/roms` next to the repository, when present (CI has it).
pub fn shared_roms() -> Option<PathBuf> {
    let p = repo_root().parent()?.join("shared/roms");
    p.is_dir().then_some(p)
}
