//! Files a game is made of besides the one the core is given: a CD image's `.cue` sheet names
//! its track files (`.bin`), an `.m3u` playlist names the discs of a multi-disc game, a
//! CloneCD `.ccd` comes with its `.img` and `.sub`. The sandbox lets the emulator read only the
//! game's files (docs/sandbox.md), so it must be told about these too.

use std::path::{Path, PathBuf};

/// Largest sheet or playlist read, in bytes (real ones are a few hundred).
const MAX_SHEET: u64 = 64 * 1024;
/// How deep playlists may nest (a playlist of cue sheets is one level).
const MAX_DEPTH: u32 = 2;

/// The other files `rom` refers to, resolved against its folder, that exist; empty for a
/// single-file game. Unreadable or oversized sheets give nothing (the core will say the game
/// does not load).
pub fn companion_files(rom: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    collect(rom, 0, &mut out);
    out.retain(|p| p != rom);
    out
}

fn collect(sheet: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    let ext = sheet.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    let dir = sheet.parent().unwrap_or(Path::new(""));
    let named: Vec<PathBuf> = match ext.as_str() {
        "cue" | "toc" => {
            read_sheet(sheet).map(|t| cue_files(&t)).unwrap_or_default().into_iter().map(|f| dir.join(f)).collect()
        }
        "m3u" if depth < MAX_DEPTH => {
            read_sheet(sheet).map(|t| m3u_entries(&t)).unwrap_or_default().into_iter().map(|f| dir.join(f)).collect()
        }
        "ccd" => ["img", "sub"].iter().map(|e| sheet.with_extension(e)).collect(),
        _ => Vec::new(),
    };
    for file in named {
        if !file.is_file() || out.contains(&file) {
            continue;
        }
        out.push(file.clone());
        collect(&file, depth + 1, out);
    }
}

fn read_sheet(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = Vec::new();
    std::fs::File::open(path).ok()?.take(MAX_SHEET).read_to_end(&mut text).ok()?;
    Some(String::from_utf8_lossy(&text).into_owned())
}

/// The file names of a cue sheet's `FILE "name" TYPE` lines (or a cdrdao toc's `FILE` and
/// `DATAFILE` lines), quoted or not.
fn cue_files(text: &str) -> Vec<String> {
    let mut files = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some((keyword, rest)) = line.split_once(char::is_whitespace) else { continue };
        if !matches!(keyword.to_ascii_uppercase().as_str(), "FILE" | "DATAFILE") {
            continue;
        }
        let rest = rest.trim_start();
        let name = match rest.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next().unwrap_or_default(),
            None => rest.split_whitespace().next().unwrap_or_default(),
        };
        if !name.is_empty() {
            files.push(name.to_string());
        }
    }
    files
}

/// The entries of an m3u playlist: every line but blanks and `#` comments.
fn m3u_entries(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheets_name_their_files() {
        let cue = "REM x\nFILE \"Game (Track 1).bin\" BINARY\n  TRACK 01 MODE2/2352\n    INDEX 01 00:00:00\n\
                   file track2.bin BINARY\n  TRACK 02 AUDIO\nFILE \"\" WAVE\n";
        assert_eq!(cue_files(cue), vec!["Game (Track 1).bin", "track2.bin"]);
        assert_eq!(cue_files("DATAFILE \"a.bin\" #0\nTRACK MODE1\n"), vec!["a.bin"]);
        assert_eq!(m3u_entries("#EXTM3U\nDisc 1.cue\n\n  Disc 2.cue \n"), vec!["Disc 1.cue", "Disc 2.cue"]);
    }

    #[test]
    fn companions_are_resolved_and_must_exist() {
        let dir = std::env::temp_dir().join(format!("retrofarm-content-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
        write("d1.cue", "FILE \"d1.bin\" BINARY\nFILE \"missing.bin\" BINARY\n");
        write("d1.bin", "");
        write("d2.cue", "FILE \"d2.bin\" BINARY\n");
        write("d2.bin", "");
        write("game.m3u", "d1.cue\nd2.cue\ngame.m3u\n");
        write("c.ccd", "");
        write("c.img", "");
        assert_eq!(companion_files(&dir.join("d1.cue")), vec![dir.join("d1.bin")]);
        assert_eq!(
            companion_files(&dir.join("game.m3u")),
            vec![dir.join("d1.cue"), dir.join("d1.bin"), dir.join("d2.cue"), dir.join("d2.bin")]
        );
        assert_eq!(companion_files(&dir.join("c.ccd")), vec![dir.join("c.img")]);
        assert!(companion_files(&dir.join("Walk.nes")).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
