//! The systems we run and their cores ([`SYSTEMS`]), finding libretro cores (and, for tests,
//! the shared ROMs).
//!
//! Search order for a core: an explicit directory, `$RETROFARM_CORES_DIR`, the repository's
//! `.deps/cores/usr/lib/x86_64-linux-gnu/libretro` (filled by `scripts/fetch-cores.sh`), then
//! Debian's `/usr/lib/x86_64-linux-gnu/libretro`.

use std::path::{Path, PathBuf};

/// A system workers run, with the core that runs it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct System {
    /// Short id the game list names it by (`nes`, `snes`, `psx`…).
    pub id: &'static str,
    /// What players know it as.
    pub name: &'static str,
    /// The core: its file is `<core>_libretro.so`.
    pub core: &'static str,
    /// The Debian 12 package that ships the core (`scripts/fetch-cores.sh` fetches it).
    pub package: &'static str,
    /// Lower-case ROM extensions mapped to the core by default (the worker's `cores`).
    pub extensions: &'static [&'static str],
}

/// Every system of docs/systems.md: each libretro core Debian 12 ships for a console we run.
/// An extension appears once: `.cue` sheets are PlayStation discs (PC Engine CD games need
/// their own mapping), `.bin` is mapped to nothing (DS, Virtual Boy and CD tracks all use it).
pub const SYSTEMS: &[System] = &[
    System {
        id: "nes",
        name: "NES / Famicom",
        core: "nestopia",
        package: "libretro-nestopia",
        extensions: &["nes", "fds"],
    },
    System { id: "gba", name: "Game Boy Advance", core: "mgba", package: "libretro-mgba", extensions: &["gba"] },
    System {
        id: "gb",
        name: "Game Boy / Game Boy Color",
        core: "gambatte",
        package: "libretro-gambatte",
        extensions: &["gb", "gbc"],
    },
    System {
        id: "snes",
        name: "Super NES / Super Famicom",
        core: "bsnes_mercury_performance",
        package: "libretro-bsnes-mercury-performance",
        extensions: &["sfc", "smc"],
    },
    System {
        id: "psx",
        name: "PlayStation",
        core: "mednafen_psx",
        package: "libretro-beetle-psx",
        extensions: &["cue", "ccd", "toc", "m3u"],
    },
    System {
        id: "pce",
        name: "PC Engine / TurboGrafx-16",
        core: "mednafen_pce_fast",
        package: "libretro-beetle-pce-fast",
        extensions: &["pce"],
    },
    System {
        id: "ws",
        name: "WonderSwan / WonderSwan Color",
        core: "mednafen_wswan",
        package: "libretro-beetle-wswan",
        extensions: &["ws", "wsc"],
    },
    System {
        id: "vb",
        name: "Virtual Boy",
        core: "mednafen_vb",
        package: "libretro-beetle-vb",
        extensions: &["vb", "vboy"],
    },
    System { id: "nds", name: "Nintendo DS", core: "desmume", package: "libretro-desmume", extensions: &["nds"] },
];

/// The system a lower-case ROM extension is mapped to by default.
pub fn system_of_extension(ext: &str) -> Option<&'static System> {
    SYSTEMS.iter().find(|s| s.extensions.contains(&ext))
}

/// Environment variable naming a directory of `*_libretro.so` files.
pub const CORES_DIR_ENV: &str = "RETROFARM_CORES_DIR";
/// Where Debian installs cores.
pub const SYSTEM_CORES_DIR: &str = "/usr/lib/x86_64-linux-gnu/libretro";
/// Where `scripts/fetch-cores.sh` extracts cores, relative to the repository root.
pub const REPO_CORES_DIR: &str = ".deps/cores/usr/lib/x86_64-linux-gnu/libretro";

/// The repository root this crate was built from.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_owned).unwrap_or_default()
}

/// The shared test ROMs: `<repo>/../shared/roms`.
pub fn shared_roms_dir() -> PathBuf {
    repo_root().join("../shared/roms")
}

/// For tests: core `core` and the ROM at `rom`, or `None` after printing why the test skips
/// (a core not fetched, a shared ROM absent outside CI).
pub fn core_and_rom(core: &str, rom: &Path) -> Option<(PathBuf, PathBuf)> {
    let Some(core_path) = find_core(core, None) else {
        eprintln!("SKIP: libretro core '{core}' not found in {:?}; run scripts/fetch-cores.sh", core_dirs(None));
        return None;
    };
    if !rom.is_file() {
        eprintln!("SKIP: this test needs the ROM {} (shared/roms beside the repository)", rom.display());
        return None;
    }
    Some((core_path, rom.to_owned()))
}

/// Directories searched for cores, in order.
pub fn core_dirs(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = explicit {
        dirs.push(d.to_owned());
    }
    if let Some(d) = std::env::var_os(CORES_DIR_ENV).filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(repo_root().join(REPO_CORES_DIR));
    dirs.push(PathBuf::from(SYSTEM_CORES_DIR));
    dirs
}

/// The file name of core `name`: `"mgba"` → `mgba_libretro.so` (names ending in `.so` are
/// taken as they are).
pub fn core_file_name(name: &str) -> String {
    if name.ends_with(".so") {
        name.to_owned()
    } else {
        format!("{name}_libretro.so")
    }
}

/// Finds core `name` (e.g. `"nestopia"`, `"mgba"`) in [`core_dirs`].
pub fn find_core(name: &str, explicit_dir: Option<&Path>) -> Option<PathBuf> {
    let file = core_file_name(name);
    core_dirs(explicit_dir).into_iter().map(|d| d.join(&file)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_dir_wins() {
        let dir = std::env::temp_dir().join(format!("retrofarm-cores-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("fake_libretro.so"), b"").unwrap();
        assert_eq!(find_core("fake", Some(&dir)), Some(dir.join("fake_libretro.so")));
        assert_eq!(find_core("surely-not-a-core", Some(&dir)), None);
        assert_eq!(core_dirs(Some(&dir))[0], dir);
        assert!(core_dirs(None).last().unwrap().ends_with("libretro"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_system_is_fetched_and_extensions_are_unique() {
        let script = std::fs::read_to_string(repo_root().join("scripts/fetch-cores.sh")).unwrap();
        let fetched = script.split_once("packages=(").unwrap().1.split_once("\n)").unwrap().0;
        let mut seen = Vec::new();
        for s in SYSTEMS {
            assert!(fetched.lines().any(|l| l.split_whitespace().next() == Some(s.package)), "{s:?}");
            assert!(script.contains(&format!("{}) echo {}", s.package, core_file_name(s.core))), "{s:?}");
            for e in s.extensions {
                assert_eq!(*e, e.to_ascii_lowercase());
                assert!(!seen.contains(e), "{e} is mapped twice");
                seen.push(e);
            }
        }
    }

    #[test]
    fn names_map_to_files() {
        assert_eq!(core_file_name("nestopia"), "nestopia_libretro.so");
        assert_eq!(core_file_name("x.so"), "x.so");
    }
}
