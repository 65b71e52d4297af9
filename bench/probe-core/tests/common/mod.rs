//! What the probe core's integration tests share.

use std::path::PathBuf;

/// The built core: next to this test (deps/) or one level up (target/<profile>/).
pub fn core_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let candidates =
        [deps.join("libretrofarm_probe_core.so"), deps.parent().unwrap().join("libretrofarm_probe_core.so")];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| panic!("probe core not built; looked at {candidates:?}"))
}
