//! The game library: ROM files in the games folder, and its subfolders, whose extension maps
//! to a configured core; each named after its file, cleaned of dump tags.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use retrofarm_emulator::cores::system_of_extension;
use retrofarm_emulator::libretro::content::companion_files;
use retrofarm_proto::browser::GameInfo;
use tracing::warn;

/// The deepest subfolder level scanned under the games folder.
pub const MAX_DEPTH: usize = 8;
/// Folder entries looked at, at most: a games folder pointed at a whole disk stops there.
pub const MAX_ENTRIES: usize = 200_000;

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Library {
    games: BTreeMap<String, Game>,
    /// Files left out because another game has their name already.
    pub duplicates: Vec<PathBuf>,
}

impl Library {
    /// Builds the library from file paths; `cores` maps a lower-case extension to a core file
    /// name. Files with other extensions are ignored, and so are the discs a playlist
    /// (`.m3u`) lists: the playlist is the game. A game is named after its file without the
    /// extension and the dump tags ([`clean_name`]); when two clean names are the same, both
    /// keep their tags; when even those are the same (files of one name in two folders), the
    /// first in path order wins and the other is in [`Library::duplicates`].
    pub fn from_paths(paths: impl IntoIterator<Item = PathBuf>, cores: &BTreeMap<String, String>) -> Self {
        let mut roms: Vec<(PathBuf, String, &String)> = paths
            .into_iter()
            .filter_map(|rom| {
                let ext = rom.extension()?.to_str()?.to_ascii_lowercase();
                let core = cores.get(&ext)?;
                Some((rom, ext, core))
            })
            .collect();
        roms.sort();
        let listed: BTreeSet<PathBuf> =
            roms.iter().filter(|(_, ext, _)| ext == "m3u").flat_map(|(rom, _, _)| companion_files(rom)).collect();
        roms.retain(|(rom, _, _)| !listed.contains(rom));

        let stem = |rom: &Path| rom.file_stem().and_then(|s| s.to_str()).map(str::to_string);
        // The file names each clean name comes from.
        let mut stems: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (rom, _, _) in &roms {
            if let Some(stem) = stem(rom) {
                stems.entry(clean_name(&stem)).or_default().insert(stem);
            }
        }
        let mut library = Library::default();
        for (rom, ext, core) in roms {
            let Some(stem) = stem(&rom) else { continue };
            let clean = clean_name(&stem);
            let name = if stems[&clean].len() == 1 { clean } else { stem };
            if library.games.contains_key(&name) {
                library.duplicates.push(rom);
                continue;
            }
            let system = system_of_extension(&ext).map_or(ext.clone(), |s| s.id.to_string());
            let game = Game { info: GameInfo { name: name.clone(), system }, rom, core: core.clone(), core_path: None };
            library.games.insert(name, game);
        }
        library
    }

    /// Scans `dir` and its subfolders (at most [`MAX_DEPTH`] levels, hidden ones skipped).
    /// Only an unreadable `dir` is an error; an unreadable subfolder is skipped with a warning.
    pub fn scan(dir: &Path, cores: &BTreeMap<String, String>) -> Result<Self> {
        let mut files = Vec::new();
        let mut seen = 0;
        let mut folders = vec![(dir.to_path_buf(), 0)];
        while let Some((folder, depth)) = folders.pop() {
            let entries = match std::fs::read_dir(&folder) {
                Ok(entries) => entries,
                Err(e) if depth == 0 => {
                    return Err(e).with_context(|| {
                        format!("cannot read the games folder {}: set games_dir in the worker config", dir.display())
                    })
                }
                Err(e) => {
                    warn!(folder = %folder.display(), error = %e, "cannot read a folder of the games folder: its games are left out");
                    continue;
                }
            };
            for entry in entries.filter_map(|e| e.ok()) {
                seen += 1;
                if seen > MAX_ENTRIES {
                    warn!(dir = %dir.display(), "the games folder holds over {MAX_ENTRIES} entries: the rest are left out");
                    return Ok(Self::from_paths(files, cores));
                }
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let path = entry.path();
                // Followed links: a loop ends at MAX_DEPTH.
                if path.is_dir() {
                    if depth < MAX_DEPTH {
                        folders.push((path, depth + 1));
                    }
                } else if path.is_file() {
                    files.push(path);
                }
            }
        }
        Ok(Self::from_paths(files, cores))
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

/// Where the library comes from: what [`Library::load`] scans, at start and at each rescan.
#[derive(Debug, Clone)]
pub struct LibrarySource {
    /// The games folder.
    pub dir: PathBuf,
    /// Lower-case extension to core file name.
    pub cores: BTreeMap<String, String>,
    /// Where cores are looked for first (`cores_dir`).
    pub cores_dir: Option<PathBuf>,
}

impl Library {
    /// Scans the source's folder and finds each game's core, warning about what is left out.
    pub fn load(source: &LibrarySource) -> Result<Self> {
        let mut library = Library::scan(&source.dir, &source.cores)?;
        for core in library.resolve_cores(|c| retrofarm_emulator::find_core(c, source.cores_dir.as_deref())) {
            warn!(%core, "libretro core not found: its games will be refused (run scripts/fetch-cores.sh or set cores_dir)");
        }
        for rom in &library.duplicates {
            warn!(rom = %rom.display(), "a game of the same name is in the games folder already: this file is left out (rename it)");
        }
        Ok(library)
    }
}

/// A game's name from its file name: the dump tags of No-Intro and GoodTools sets taken off
/// the end (`[!]`, `[b1]`, `(USA)`, `(En,Fr,De)`, `(Rev 1)`, `(v1.1)`), underscores read as
/// spaces. Tags that tell games apart (`(Demo)`, `(Beta)`, `(Disc 1)`) stay.
pub fn clean_name(stem: &str) -> String {
    let mut name = stem.replace('_', " ");
    loop {
        let trimmed = name.trim_end();
        let tag_start = match trimmed.chars().last() {
            Some(']') => trimmed.rfind('['),
            Some(')') => trimmed.rfind('(').filter(|&i| is_dump_tag(&trimmed[i + 1..trimmed.len() - 1])),
            _ => None,
        };
        match tag_start {
            Some(i) if !trimmed[..i].trim().is_empty() => name = trimmed[..i].to_string(),
            _ => return trimmed.trim_start().to_string(),
        }
    }
}

/// Whether a parenthesised tag only says where or how a dump was made: regions, languages,
/// revisions and versions.
fn is_dump_tag(tag: &str) -> bool {
    const REGIONS: &[&str] = &[
        "usa",
        "europe",
        "japan",
        "world",
        "asia",
        "korea",
        "china",
        "taiwan",
        "hong kong",
        "brazil",
        "australia",
        "canada",
        "france",
        "germany",
        "spain",
        "italy",
        "netherlands",
        "sweden",
        "uk",
        "u",
        "e",
        "j",
        "ue",
        "ju",
        "jue",
        "eu",
        "pal",
        "ntsc",
        "unl",
    ];
    let lower = tag.trim().to_ascii_lowercase();
    let words: Vec<&str> = lower.split(',').map(str::trim).collect();
    let region = words.iter().all(|w| REGIONS.contains(w));
    let languages = words.iter().all(|w| w.len() == 2 && w.chars().all(|c| c.is_ascii_alphabetic()))
        || words.iter().all(|w| w.len() == 5 && w.as_bytes()[2] == b'-');
    let revision = lower
        .strip_prefix("rev ")
        .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'));
    let version =
        lower.strip_prefix('v').is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'));
    !lower.is_empty() && (region || languages || revision || version)
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
        assert_eq!(lib.get("Disc").unwrap().info.system, "psx");
        assert_eq!(lib.get("Pocket").unwrap().info.system, "gb");
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
    fn names_lose_their_dump_tags_but_not_what_tells_games_apart() {
        for (stem, want) in [
            ("Super Game (USA)", "Super Game"),
            ("Super Game (USA, Europe) (Rev 1) [!]", "Super Game"),
            ("Super_Game_(E)_[b1]", "Super Game"),
            ("Super Game (En,Fr,De) (v1.1)", "Super Game"),
            ("Alwa's Awakening (Demo)", "Alwa's Awakening (Demo)"),
            ("Quest (Disc 1) (Japan)", "Quest (Disc 1)"),
            ("Retrofarm Walk", "Retrofarm Walk"),
            ("(USA)", "(USA)"),
            ("[!]", "[!]"),
            ("  Spaced  (World)  ", "Spaced"),
        ] {
            assert_eq!(clean_name(stem), want, "{stem}");
        }
    }

    #[test]
    fn clean_names_that_collide_keep_their_tags_and_one_file_per_name_wins() {
        let lib = Library::from_paths(
            ["g/Quest (USA).nes", "g/Quest (Europe).nes", "g/Walk (USA).nes", "g/a/Walk (USA).nes"].map(PathBuf::from),
            &default_cores(),
        );
        let names: Vec<String> = lib.infos().into_iter().map(|g| g.name).collect();
        assert_eq!(names, ["Quest (Europe)", "Quest (USA)", "Walk"]);
        assert_eq!(lib.get("Walk").unwrap().rom, PathBuf::from("g/Walk (USA).nes"));
        assert_eq!(lib.duplicates, [PathBuf::from("g/a/Walk (USA).nes")]);
    }

    #[test]
    fn subfolders_are_scanned_hidden_ones_and_a_playlists_discs_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |rel: &str, text: &str| {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("Top.nes", "");
        write("nes/homebrew/Deep (USA).nes", "");
        write(".trash/Gone.nes", "");
        write("psx/Saga/Saga (Disc 1).cue", "FILE \"Saga (Disc 1).bin\" BINARY\n");
        write("psx/Saga/Saga (Disc 2).cue", "FILE \"Saga (Disc 2).bin\" BINARY\n");
        write("psx/Saga/Saga.m3u", "Saga (Disc 1).cue\nSaga (Disc 2).cue\n");
        write("psx/Single.cue", "FILE \"Single.bin\" BINARY\n");
        let mut deep = root.to_path_buf();
        for level in 0..=MAX_DEPTH {
            deep = deep.join(format!("d{level}"));
        }
        write(deep.join("TooDeep.nes").strip_prefix(root).unwrap().to_str().unwrap(), "");
        let lib = Library::scan(root, &default_cores()).unwrap();
        let names: Vec<(String, String)> = lib.infos().into_iter().map(|g| (g.name, g.system)).collect();
        let want = [("Deep", "nes"), ("Saga", "psx"), ("Single", "psx"), ("Top", "nes")];
        assert_eq!(names, want.map(|(n, s)| (n.to_string(), s.to_string())));
        assert_eq!(lib.get("Saga").unwrap().rom, root.join("psx/Saga/Saga.m3u"));
    }

    #[test]
    fn missing_folder_says_what_to_do() {
        let e = Library::scan(Path::new("/nonexistent/games"), &default_cores()).unwrap_err();
        assert!(format!("{e:#}").contains("games_dir"));
    }
}
