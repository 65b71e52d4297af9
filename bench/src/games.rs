//! The ROM and core the benchmarks run, a games folder for the worker, and a scripted input.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use retrofarm_emulator::libretro::{Io, Session, SessionConfig};
use retrofarm_emulator::shm::frame_ring::VideoInput;
use retrofarm_emulator::{PixelFormat, PortInput};

/// The benchmark game: a commercial-quality NES game from ../shared/roms.
pub const SHARED_ROM: &str = "Alwa's Awakening (Demo).nes";
/// The fallback: the project's own game.
pub const OWN_ROM: &str = "Retrofarm Walk.nes";
/// The core that runs both.
pub const CORE: &str = "nestopia";
/// Core options the worker applies to every room (its default configuration).
pub fn core_options() -> Vec<(String, String)> {
    farm_worker::config::Config::default().core_options.into_iter().collect()
}

/// The worker's default H264 bitrate, kbit/s.
pub fn video_kbps() -> u32 {
    farm_worker::config::Config::default().video_kbps
}

/// The ROM to run: Alwa's Awakening when ../shared/roms has it, else Retrofarm Walk (saying so).
pub fn rom() -> PathBuf {
    let shared = retrofarm_emulator::cores::shared_roms_dir().join(SHARED_ROM);
    if shared.is_file() {
        return shared;
    }
    eprintln!("note: {} is absent; running the project's own {OWN_ROM} instead", shared.display());
    crate::repo_root().join("games").join(OWN_ROM)
}

/// The nestopia core.
pub fn core() -> Result<PathBuf> {
    retrofarm_emulator::find_core(CORE, None).ok_or_else(|| {
        anyhow!(
            "libretro core {CORE} not found in {:?}: run scripts/fetch-cores.sh",
            retrofarm_emulator::cores::core_dirs(None)
        )
    })
}

/// The nestopia core, or `None` after printing why `bench` is skipped without it.
pub fn core_or_skip(bench: &str) -> Option<PathBuf> {
    core().map_err(|e| println!("{bench}: SKIPPED: {e}")).ok()
}

/// A temporary games folder holding `rom` (symlinked) as `<name>.nes`; returns it and the game
/// name the worker will list.
pub fn games_dir(rom: &Path, name: &str) -> Result<(tempfile::TempDir, String)> {
    let dir = tempfile::Builder::new().prefix("retrofarm-bench-games-").tempdir()?;
    let ext = rom.extension().and_then(|e| e.to_str()).unwrap_or("nes");
    std::os::unix::fs::symlink(rom, dir.path().join(format!("{name}.{ext}")))?;
    Ok((dir, name.to_string()))
}

/// RetroPad bits.
pub mod pad {
    /// B.
    pub const B: u16 = 1 << 0;
    /// START.
    pub const START: u16 = 1 << 3;
    /// LEFT.
    pub const LEFT: u16 = 1 << 6;
    /// RIGHT.
    pub const RIGHT: u16 = 1 << 7;
    /// A.
    pub const A: u16 = 1 << 8;
}

/// A player's script, by 1/60 s frame: press START through the title screens, then walk right
/// and left, jumping every 45 frames, hitting B now and then. `offset` shifts the pattern so
/// rooms do not all do the same thing at once.
pub fn scripted_buttons(frame: u64, offset: u64) -> u16 {
    if frame < 480 {
        // START pressed for 6 frames every 2 s: title, menu, game.
        return if frame % 120 >= 114 { pad::START } else { 0 };
    }
    let t = frame - 480 + offset;
    let mut b = if (t / 600).is_multiple_of(2) { pad::RIGHT } else { pad::LEFT };
    if t % 45 < 8 {
        b |= pad::A;
    }
    if t % 200 < 4 {
        b |= pad::B;
    }
    b
}

/// Collects frames (packed XRGB8888) and audio in process.
struct DumpIo {
    frame: Vec<u8>,
    audio: Vec<i16>,
    buttons: u16,
    n: u64,
    error: Option<String>,
}

impl Io for DumpIo {
    fn video(&mut self, frame: VideoInput<'_>) {
        let VideoInput::Pixels { data, width, height, pitch, format } = frame else { return };
        if format != PixelFormat::Xrgb8888 {
            self.error = Some(format!("expected XRGB8888 frames, got {format:?}"));
            return;
        }
        let row = width as usize * 4;
        self.frame.clear();
        for y in 0..height as usize {
            self.frame.extend_from_slice(&data[y * pitch..y * pitch + row]);
        }
    }
    fn audio(&mut self, samples: &[i16]) {
        self.audio.extend_from_slice(samples);
    }
    fn poll_input(&mut self) {
        self.buttons = scripted_buttons(self.n, 0);
    }
    fn input(&self, port: u32) -> PortInput {
        if port == 0 {
            PortInput { buttons: self.buttons, axes: [0; 4], ..PortInput::default() }
        } else {
            PortInput::default()
        }
    }
}

/// Frames and audio dumped from the emulator.
#[derive(Debug, Clone)]
pub struct Dump {
    /// Packed XRGB8888 frames (BGRx bytes), back to back.
    pub video: PathBuf,
    /// Interleaved s16le stereo.
    pub audio: PathBuf,
    /// Frame geometry.
    pub width: u32,
    /// Frame geometry.
    pub height: u32,
    /// Frames in `video`.
    pub frames: u64,
    /// Audio sample rate.
    pub sample_rate: f64,
}

impl Dump {
    /// Bytes per frame.
    pub fn frame_len(&self) -> usize {
        self.width as usize * self.height as usize * 4
    }

    /// The audio, interleaved stereo samples.
    pub fn audio_samples(&self) -> Result<Vec<i16>> {
        let bytes = std::fs::read(&self.audio).with_context(|| format!("reading {}", self.audio.display()))?;
        Ok(bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect())
    }
}

/// Where dumps are kept between runs: `$TMPDIR/retrofarm-bench-frames`.
pub fn dump_cache() -> PathBuf {
    std::env::temp_dir().join("retrofarm-bench-frames")
}

/// Runs `rom` on `core` in this process for `frames` frames with the scripted input and writes
/// the frames and audio into `dir` (reused when already there).
pub fn dump(core: &Path, rom: &Path, frames: u64, dir: &Path) -> Result<Dump> {
    std::fs::create_dir_all(dir)?;
    let stem = rom.file_stem().and_then(|s| s.to_str()).unwrap_or("rom").replace(|c: char| !c.is_alphanumeric(), "_");
    let video = dir.join(format!("{stem}-{frames}.bgrx"));
    let audio = dir.join(format!("{stem}-{frames}.s16"));
    let meta = dir.join(format!("{stem}-{frames}.txt"));
    if let Ok(text) = std::fs::read_to_string(&meta) {
        let v: Vec<f64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if let [w, h, rate] = v[..] {
            let d = Dump {
                video: video.clone(),
                audio: audio.clone(),
                width: w as u32,
                height: h as u32,
                frames,
                sample_rate: rate,
            };
            if std::fs::metadata(&video).map(|m| m.len()).ok() == Some(d.frame_len() as u64 * frames) {
                return Ok(d);
            }
        }
    }
    let save = tempfile::tempdir()?;
    let config = SessionConfig {
        system_dir: save.path().into(),
        save_dir: save.path().into(),
        options: core_options(),
        port_devices: vec![],
    };
    let io = DumpIo { frame: vec![], audio: vec![], buttons: 0, n: 0, error: None };
    let mut session = Session::load(core, rom, &config, io).map_err(|e| anyhow!("{e}"))?;
    let av = session.av_info();
    let mut vf = std::io::BufWriter::new(std::fs::File::create(&video)?);
    let mut af = std::io::BufWriter::new(std::fs::File::create(&audio)?);
    let (mut w, mut h) = (0, 0);
    for n in 0..frames {
        session.io().n = n;
        session.run();
        let io = session.io();
        if let Some(e) = io.error.take() {
            bail!("{e}");
        }
        if n == 0 {
            (w, h) = (av.base_width, av.base_height);
        }
        if io.frame.len() != w as usize * h as usize * 4 {
            bail!("frame {n} is {} bytes, not {w}x{h}x4", io.frame.len());
        }
        vf.write_all(&io.frame)?;
        let bytes: Vec<u8> = io.audio.drain(..).flat_map(i16::to_le_bytes).collect();
        af.write_all(&bytes)?;
    }
    vf.flush()?;
    af.flush()?;
    std::fs::write(&meta, format!("{w} {h} {}", av.sample_rate)).context("writing the dump's description")?;
    Ok(Dump { video, audio, width: w, height: h, frames, sample_rate: av.sample_rate })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_starts_the_game_then_plays() {
        assert_eq!(scripted_buttons(0, 0), 0);
        assert_eq!(scripted_buttons(119, 0), pad::START);
        assert_eq!(scripted_buttons(480, 0) & pad::RIGHT, pad::RIGHT);
        assert_eq!(scripted_buttons(480 + 600, 0) & pad::LEFT, pad::LEFT);
        assert!((480..2000).any(|f| scripted_buttons(f, 0) & pad::A != 0));
    }
}
