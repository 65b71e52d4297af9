//! BIOS files some cores need in their system directory (`GET_SYSTEM_DIRECTORY`), checked
//! before the core is loaded: without it beetle-psx throws a C++ exception out of
//! `retro_load_game`, which aborts the process with nothing but "Rust cannot catch foreign
//! exceptions". A missing file is instead an error naming the files that would do and the
//! folder they belong in. docs/systems.md lists what each system needs.

use std::fmt;
use std::path::{Path, PathBuf};

/// The BIOS a core needs for some or all of its games.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The core: its file name without `_libretro.so`.
    pub core: &'static str,
    /// What needs it, for the message ("PlayStation").
    pub system: &'static str,
    /// Lower-case extensions of the games that need it; empty: every game.
    pub extensions: &'static [&'static str],
    /// Files any one of which will do (as the core spells them: Linux names are
    /// case-sensitive), each with what it is.
    pub any_of: &'static [(&'static str, &'static str)],
}

/// What Debian 12's cores need. Not listed because they run without one: gambatte (it skips
/// the boot ROM), mgba (its own HLE BIOS), desmume (HLE BIOS and firmware), beetle-wswan,
/// beetle-vb, beetle-pce-fast with HuCards. Not checkable up front: bsnes-mercury's
/// coprocessor programs (`dsp1.program.rom`…), needed by a few SNES games only.
pub const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        core: "mednafen_psx",
        system: "PlayStation",
        extensions: &[],
        // Mednafen picks the one of the disc's region.
        any_of: &[
            ("scph5501.bin", "SCPH-5501, North America"),
            ("scph5500.bin", "SCPH-5500, Japan"),
            ("scph5502.bin", "SCPH-5502, Europe"),
        ],
    },
    Requirement {
        core: "mednafen_pce_fast",
        system: "PC Engine CD",
        extensions: &["cue", "ccd", "toc", "m3u"],
        any_of: &[("syscard3.pce", "Super System Card 3.0")],
    },
    Requirement {
        core: "nestopia",
        system: "Famicom Disk System",
        extensions: &["fds"],
        any_of: &[("disksys.rom", "Famicom Disk System BIOS")],
    },
];

/// A BIOS that is not there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingBios {
    /// The core's file name.
    pub core: String,
    /// What needs it.
    pub requirement: Requirement,
    /// The system directory searched.
    pub system_dir: PathBuf,
}

impl fmt::Display for MissingBios {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.requirement;
        let files: Vec<String> = r.any_of.iter().map(|(file, what)| format!("{file} ({what})")).collect();
        let (head, last) = files.split_at(files.len() - 1);
        let list = if head.is_empty() { last[0].clone() } else { format!("{} or {}", head.join(", "), last[0]) };
        let none = if files.len() > 1 { "none of them is there" } else { "it is not there" };
        write!(
            f,
            "{} needs the {} BIOS in its system directory {}: {list}; {none}. Copy the file there \
             (a worker's system directory is its bios_dir)",
            self.core,
            r.system,
            self.system_dir.display()
        )
    }
}

impl std::error::Error for MissingBios {}

/// The core's short name: `/x/mednafen_psx_libretro.so` → `mednafen_psx`.
pub fn core_name(core: &Path) -> &str {
    let file = core.file_name().and_then(|f| f.to_str()).unwrap_or_default();
    let stem = file.strip_suffix(".so").unwrap_or(file);
    stem.strip_suffix("_libretro").unwrap_or(stem)
}

/// What `core` needs to run `rom`, if anything.
pub fn requirement(core: &Path, rom: &Path) -> Option<&'static Requirement> {
    let name = core_name(core);
    let ext = rom.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    REQUIREMENTS.iter().find(|r| r.core == name && (r.extensions.is_empty() || r.extensions.contains(&ext.as_str())))
}

/// Checks that `system_dir` holds the BIOS `core` needs for `rom`. When several files would
/// do and only some are there, says on stderr which games will still fail.
pub fn check(core: &Path, rom: &Path, system_dir: &Path) -> Result<(), MissingBios> {
    let Some(r) = requirement(core, rom) else { return Ok(()) };
    let (present, absent): (Vec<_>, Vec<_>) = r.any_of.iter().partition(|(f, _)| system_dir.join(f).is_file());
    if present.is_empty() {
        return Err(MissingBios {
            core: core.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
            requirement: *r,
            system_dir: system_dir.to_owned(),
        });
    }
    if !absent.is_empty() {
        let absent: Vec<String> = absent.iter().map(|(file, what)| format!("{file} ({what})")).collect();
        eprintln!(
            "retrofarm-emulator: {} BIOS files missing from {}: {}; a game that needs one of them will not start",
            r.system,
            system_dir.display(),
            absent.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_requirements() {
        assert_eq!(core_name(Path::new("/c/mednafen_psx_libretro.so")), "mednafen_psx");
        assert_eq!(core_name(Path::new("nestopia_libretro.so")), "nestopia");
        assert_eq!(core_name(Path::new("odd.so")), "odd");
        let psx = Path::new("/c/mednafen_psx_libretro.so");
        assert_eq!(requirement(psx, Path::new("g/Game.cue")).unwrap().system, "PlayStation");
        let pce = Path::new("/c/mednafen_pce_fast_libretro.so");
        assert!(requirement(pce, Path::new("g/Card.pce")).is_none(), "HuCards need no BIOS");
        assert_eq!(requirement(pce, Path::new("g/Disc.CUE")).unwrap().any_of[0].0, "syscard3.pce");
        assert!(requirement(Path::new("/c/nestopia_libretro.so"), Path::new("g/Walk.nes")).is_none());
        assert!(requirement(Path::new("/c/gambatte_libretro.so"), Path::new("g/x.gb")).is_none());
    }

    #[test]
    fn a_missing_bios_is_named_with_its_folder() {
        let dir = std::env::temp_dir().join(format!("retrofarm-bios-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let psx = Path::new("/c/mednafen_psx_libretro.so");
        let e = check(psx, Path::new("g/Game.cue"), &dir).unwrap_err();
        let msg = e.to_string();
        assert_eq!(
            msg,
            format!(
                "mednafen_psx_libretro.so needs the PlayStation BIOS in its system directory {}: scph5501.bin \
                 (SCPH-5501, North America), scph5500.bin (SCPH-5500, Japan) or scph5502.bin (SCPH-5502, Europe); \
                 none of them is there. Copy the file there (a worker's system directory is its bios_dir)",
                dir.display()
            )
        );
        let e = check(Path::new("/c/mednafen_pce_fast_libretro.so"), Path::new("g/D.cue"), &dir).unwrap_err();
        assert!(e.to_string().contains("syscard3.pce (Super System Card 3.0); it is not there"), "{e}");
        // One region's BIOS is enough to start.
        std::fs::write(dir.join("scph5502.bin"), b"").unwrap();
        check(psx, Path::new("g/Game.cue"), &dir).unwrap();
        check(Path::new("/c/gambatte_libretro.so"), Path::new("g/x.gb"), Path::new("/nonexistent")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
