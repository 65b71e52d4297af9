//! The game library: ROM files in the games folder whose extension maps to a configured core.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use retrofarm_proto::browser::GameInfo;

/// A game the worker can start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Game {
    /// Name and system, as reported to the coordinator.
    pub info: GameInfo,
    /// The ROM file.
    pub rom: PathBuf,
    /// File name of the libretro core that runs it.
    pub core: String,
    /// Where that core was found ([`Library::resolve_cores`]); `None`: not installed, so the
    /// game is refused with an explanation.
    pub core_path: Option<PathBuf>,
}

/// All games, by name.
#[derive(Debug, Clone, Default)]
pub struct Library {
    games: BTreeMap<String, Game>,
}

impl Library {
    /// Builds the library from file paths; `cores` maps a lower-case extension (the system)
    /// to a core file name. Files with other extensions are ignored. When two files share a
    /// name, the first in path order wins.
    pub fn from_paths(paths: impl IntoIterator<Item = PathBuf>, cores: &BTreeMap<String, String>) -> Self {
        let mut paths: Vec<PathBuf> = paths.into_iter().collect();
        paths.sort();
        let mut games = BTreeMap::new();
        for rom in paths {
            let Some(ext) = rom.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase) else { continue };
            let Some(core) = cores.get(&ext) else { continue };
            let Some(name) = rom.file_stem().and_then(|s| s.to_str()).map(str::to_string) else { continue };
            games.entry(name.clone()).or_insert(Game {
                info: GameInfo { name, system: ext },
                rom,
                core: core.clone(),
                core_path: None,
            });
        }
        Self { games }
    }

    /// Scans `dir` (not recursively).
    pub fn scan(dir: &Path, cores: &BTreeMap<String, String>) -> Result<Self> {
        let entries = std::fs::read_dir(dir).with_context(|| {
            format!("cannot read the games folder {}: set games_dir in the worker config", dir.display())
        })?;
        let paths = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file());
        Ok(Self::from_paths(paths, cores))
    }

    /// Finds each game's core with `find` (a core file name to its path); returns the names
    /// of the cores that were not found.
    pub fn resolve_cores(&mut self, find: impl Fn(&str) -> Option<PathBuf>) -> Vec<String> {
        let mut missing = Vec::new();
        for g in self.games.values_mut() {
            g.core_path = find(&g.core);
            if g.core_path.is_none() && !missing.contains(&g.core) {
                missing.push(g.core.clone());
            }
        }
        missing
    }

    /// A game by name.
    pub fn get(&self, name: &str) -> Option<&Game> {
        self.games.get(name)
    }

    /// What the coordinator is told.
    pub fn infos(&self) -> Vec<GameInfo> {
        self.games.values().map(|g| g.info.clone()).collect()
    }

    /// Number of games.
    pub fn len(&self) -> usize {
        self.games.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.games.is_empty()
    }
}

/// The default extension → core mapping: every system of docs/systems.md on its Debian core
/// ([`retrofarm_emulator::cores::SYSTEMS`]).
pub fn default_cores() -> BTreeMap<String, String> {
    use retrofarm_emulator::cores::{core_file_name, SYSTEMS};
    SYSTEMS.iter().flat_map(|s| s.extensions.iter().map(|e| (e.to_string(), core_file_name(s.core)))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_extensions_to_cores_and_ignores_the_rest() {
        let lib = Library::from_paths(
            ["g/Walk.nes", "g/Sushi.GBA", "g/readme.txt", "g/noext", "g/a/Walk.nes"].map(PathBuf::from),
            &default_cores(),
        );
        assert_eq!(lib.len(), 2);
        assert_eq!(lib.get("Walk").unwrap().core, "nestopia_libretro.so");
        assert_eq!(lib.get("Walk").unwrap().rom, PathBuf::from("g/Walk.nes"));
        assert_eq!(lib.get("Sushi").unwrap().info.system, "gba");
        assert!(lib.get("readme").is_none());
    }

    #[test]
    fn every_system_is_mapped_by_default() {
        let cores = default_cores();
        for (ext, core) in [
            ("nes", "nestopia_libretro.so"),
            ("gba", "mgba_libretro.so"),
            ("gb", "gambatte_libretro.so"),
            ("gbc", "gambatte_libretro.so"),
            ("sfc", "bsnes_mercury_performance_libretro.so"),
            ("smc", "bsnes_mercury_performance_libretro.so"),
            ("cue", "mednafen_psx_libretro.so"),
            ("m3u", "mednafen_psx_libretro.so"),
            ("pce", "mednafen_pce_fast_libretro.so"),
            ("ws", "mednafen_wswan_libretro.so"),
            ("wsc", "mednafen_wswan_libretro.so"),
            ("vb", "mednafen_vb_libretro.so"),
            ("nds", "desmume_libretro.so"),
        ] {
            assert_eq!(cores.get(ext).map(String::as_str), Some(core), "{ext}");
        }
        // Ambiguous: DS and Virtual Boy dumps and CD tracks.
        assert!(!cores.contains_key("bin"));
        let lib = Library::from_paths(
            ["g/Disc.cue", "g/Disc.bin", "g/Pocket.gbc", "g/Hudson.pce"].map(PathBuf::from),
            &cores,
        );
        assert_eq!(lib.len(), 3, "a disc's track is not a game of its own");
        assert_eq!(lib.get("Disc").unwrap().info.system, "cue");
    }

    #[test]
    fn cores_are_resolved_once_and_missing_ones_named() {
        let mut lib = Library::from_paths(["g/Walk.nes", "g/Sushi.gba"].map(PathBuf::from), &default_cores());
        let missing = lib.resolve_cores(|c| (c == "nestopia_libretro.so").then(|| PathBuf::from("/cores").join(c)));
        assert_eq!(missing, vec!["mgba_libretro.so".to_string()]);
        assert_eq!(lib.get("Walk").unwrap().core_path, Some(PathBuf::from("/cores/nestopia_libretro.so")));
        assert_eq!(lib.get("Sushi").unwrap().core_path, None);
    }

    #[test]
    fn missing_folder_says_what_to_do() {
        let e = Library::scan(Path::new("/nonexistent/games"), &default_cores()).unwrap_err();
        assert!(format!("{e:#}").contains("games_dir"));
    }
}
