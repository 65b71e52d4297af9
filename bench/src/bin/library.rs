//! `library`: what a scan of the games folder costs, the work a worker repeats every
//! `games_rescan_secs` (and on SIGHUP). Writes a folder of empty ROM files in subfolders (as an
//! operator sorts a collection: `<system>/<letter>/<name> (USA) [!].<ext>`), then scans it
//! with [`Library::load`] several times and prints the files, the games found and the scan time
//! (median and slowest). Flags: `--games N` (default 20,000), `--runs N` (default 5);
//! `--quick`: 2,000 games, 3 runs (CI).

use std::time::Instant;

use anyhow::Result;
use farm_worker::library::{default_cores, Library, LibrarySource};
use retrofarm_bench::{arg, percentile, quick};

fn main() -> Result<()> {
    let games: usize = arg("--games").unwrap_or(if quick() { 2_000 } else { 20_000 });
    let runs: usize = arg("--runs").unwrap_or(if quick() { 3 } else { 5 });
    let dir = tempfile::tempdir()?;
    let systems = [("nes", "nes"), ("snes", "sfc"), ("gba", "gba"), ("gb", "gb"), ("psx", "m3u")];
    for i in 0..games {
        let (system, ext) = systems[i % systems.len()];
        let letter = (b'A' + (i / systems.len() % 26) as u8) as char;
        let folder = dir.path().join(system).join(letter.to_string());
        std::fs::create_dir_all(&folder)?;
        std::fs::write(folder.join(format!("{letter} Game {i} (USA) [!].{ext}")), b"")?;
    }
    let source = LibrarySource { dir: dir.path().to_path_buf(), cores: default_cores(), cores_dir: None };
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let library = Library::load(&source)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        found = library.len();
    }
    println!(
        "library: {games} files in {} folders, {found} games; scan median {:.1} ms, slowest {:.1} ms ({runs} runs)",
        1 + systems.len() * (1 + games.div_ceil(systems.len()).min(26)),
        percentile(&times, 50.0),
        percentile(&times, 100.0),
    );
    anyhow::ensure!(found == games, "found {found} games of {games}");
    Ok(())
}
