//! Real libretro cores (Debian's nestopia and mgba, fetched by scripts/fetch-cores.sh) running
//! the shared ROMs in child processes. Each test skips, saying why, when a core or ROM is
//! missing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use retrofarm_emulator::{cores, Emulator, EmulatorConfig, Error, InputScript, PacingMode, PixelFormat};

const BIN: &str = env!("CARGO_BIN_EXE_retrofarm-emulator");
const NES_ROM: &str = "Alwa's Awakening (Demo).nes";
const GBA_ROM: &str = "Sushi The Cat.gba";

fn core_and_rom(core: &str, rom: &str) -> Option<(PathBuf, PathBuf)> {
    cores::core_and_rom(core, &cores::shared_roms_dir().join(rom))
}

/// FNV-1a over 8-byte words: fast enough in a debug build, good enough to tell frames apart.
fn hash(data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        h = (h ^ u64::from_le_bytes(w.try_into().unwrap())).wrapping_mul(0x0000_0100_0000_01b3);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

struct Run {
    hashes: Vec<u64>,
    audio_frames: usize,
    per_frame: Duration,
}

/// Runs `frames` frames unpaced with `script`, keeping every frame (one slot per frame, so
/// nothing is dropped), then hashes them.
fn run_scripted(config: EmulatorConfig, frames: u64) -> (Emulator, Run) {
    let config = config.pacing(PacingMode::Unpaced).frame_limit(frames).frame_slots(frames as u32).binary(BIN);
    let emu = Emulator::spawn(config).unwrap();
    let status = emu.wait_exit(Duration::from_secs(120)).unwrap().expect("child finishes its frames");
    assert!(status.success(), "child failed: {status}\n{}", emu.stderr_tail());
    let mut hashes = Vec::new();
    while let Some(f) = emu.next_frame() {
        assert_eq!(f.meta().number, hashes.len() as u64);
        let h = hash(f.data());
        assert!(f.is_intact());
        hashes.push(h);
    }
    let c = emu.counters();
    assert_eq!(c.frames_dropped, 0);
    let audio_frames = c.audio_frames_written as usize;
    let per_frame = Duration::from_nanos(c.emulate_ns_total / c.runs.max(1));
    (emu, Run { hashes, audio_frames, per_frame })
}

fn distinct(h: &[u64]) -> usize {
    let mut v = h.to_vec();
    v.sort_unstable();
    v.dedup();
    v.len()
}

/// Two runs of the same script gave every frame, the same frames, a game that actually renders
/// (not a still screen) and the audio the core's rate implies.
fn assert_repeatable_and_playing(core: &str, a: &Run, b: &Run, av: &retrofarm_emulator::AvInfo, frames: u64) {
    assert_eq!(a.hashes.len(), frames as usize);
    assert_eq!(a.hashes, b.hashes, "same ROM + same input script = same frames");
    let d = distinct(&a.hashes);
    assert!(d > 100, "the game renders changing frames ({d} distinct of {frames})");
    let expected_audio = frames as f64 / av.fps * av.sample_rate;
    assert!(
        (a.audio_frames as f64 - expected_audio).abs() < expected_audio * 0.02,
        "audio: {} stereo frames, expected ~{expected_audio}",
        a.audio_frames
    );
    eprintln!("{core}: {d} distinct frames, {:?} per frame (unpaced, in a child)", a.per_frame);
}

/// Through the logo and menus, a new game, then walking right and jumping in the first room.
fn alwa_script() -> InputScript {
    InputScript::parse(
        "120 1 START; 126 1 -; 200 1 START; 206 1 -; 400 1 A; 406 1 -; 450 1 A; 456 1 -; \
         500 1 A; 506 1 -; 550 1 A; 556 1 -; 600 1 RIGHT; 650 1 RIGHT+A; 660 1 RIGHT",
    )
    .unwrap()
}

/// Through the title and "let's go!", then running right and jumping.
fn sushi_script() -> InputScript {
    InputScript::parse(
        "150 1 START; 156 1 -; 220 1 START; 226 1 -; 280 1 A; 286 1 RIGHT; 400 1 START; 406 1 -; \
         450 1 A; 456 1 RIGHT; 600 1 RIGHT+A; 610 1 RIGHT",
    )
    .unwrap()
}

#[test]
fn nestopia_plays_alwa_deterministically() {
    let Some((core, rom)) = core_and_rom("nestopia", NES_ROM) else {
        return;
    };
    let frames = 800;
    let mut config = EmulatorConfig::core(&core, &rom).input_script(alwa_script());
    // Show all 240 lines (the core crops 8 top and bottom by default).
    config.options.push(("nestopia_overscan_v".into(), "disabled".into()));
    let (emu, a) = run_scripted(config.clone(), frames);
    let av = emu.av_info();
    assert_eq!((av.base_width, av.base_height, av.pixel_format), (256, 240, PixelFormat::Xrgb8888));
    assert_eq!(av.sample_rate, 48_000.0);
    assert!((av.fps - 60.0).abs() < 0.2, "NTSC NES rate, as the core reports it: {}", av.fps);
    drop(emu);
    let (_, b) = run_scripted(config, frames);
    assert_repeatable_and_playing("nestopia", &a, &b, &av, frames);
}

#[test]
fn nestopia_default_options_crop_overscan() {
    let Some((core, rom)) = core_and_rom("nestopia", NES_ROM) else {
        return;
    };
    let emu = Emulator::spawn(EmulatorConfig::core(&core, &rom).binary(BIN).frame_limit(2)).unwrap();
    let av = emu.av_info();
    assert_eq!((av.base_width, av.base_height), (256, 224));
}

#[test]
fn mgba_plays_sushi_the_cat_deterministically() {
    let Some((core, rom)) = core_and_rom("mgba", GBA_ROM) else {
        return;
    };
    let frames = 800;
    let config = EmulatorConfig::core(&core, &rom).input_script(sushi_script());
    let (emu, a) = run_scripted(config.clone(), frames);
    let av = emu.av_info();
    assert_eq!((av.base_width, av.base_height, av.pixel_format), (240, 160, PixelFormat::Rgb565));
    // 2^24 Hz / 280896 cycles per frame = 59.7275005696 fps (mGBA reports it as f32).
    assert!((av.fps - 59.7275).abs() < 1e-4, "GBA rate is 59.7275, not 60: {}", av.fps);
    assert_eq!(av.sample_rate, 32_768.0);
    drop(emu);
    let (_, b) = run_scripted(config, frames);
    assert_repeatable_and_playing("mgba", &a, &b, &av, frames);
}

#[test]
fn paced_mgba_runs_at_the_gba_rate() {
    let Some((core, rom)) = core_and_rom("mgba", GBA_ROM) else {
        return;
    };
    let emu = Emulator::spawn(EmulatorConfig::core(&core, &rom).binary(BIN)).unwrap();
    // Wake on the eventfd for every frame and note how long after emulation it arrived.
    let mut first = None;
    let mut last = None;
    let mut wake_us = Vec::new();
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        assert!(emu.wait_frame(Duration::from_secs(1)).unwrap());
        while let Some(f) = emu.next_frame() {
            let m = *f.meta();
            wake_us.push((retrofarm_emulator::monotonic_ns() - m.emulated_at_ns) / 1000);
            first.get_or_insert((m.number, m.emulated_at_ns));
            last = Some((m.number, m.emulated_at_ns));
        }
    }
    let (first, last) = (first.unwrap(), last.unwrap());
    let fps = (last.0 - first.0) as f64 / ((last.1 - first.1) as f64 / 1e9);
    assert!((fps - 59.7275).abs() < 0.5, "paced rate {fps}");
    wake_us.sort_unstable();
    let p50 = wake_us[wake_us.len() / 2];
    let p99 = wake_us[wake_us.len() * 99 / 100];
    let c = emu.counters();
    assert_eq!(c.reader.missed, 0);
    eprintln!(
        "paced mgba: {fps:.4} fps over {} frames, late {} of {}, reanchors {}; frame -> reader wake-up p50 {p50} us, p99 {p99} us",
        last.0 - first.0,
        c.frames_late,
        c.runs,
        c.reanchors
    );
}

#[test]
fn killing_a_core_child_is_detected() {
    let Some((core, rom)) = core_and_rom("nestopia", NES_ROM) else {
        return;
    };
    let emu = Emulator::spawn(EmulatorConfig::core(&core, &rom).binary(BIN)).unwrap();
    assert!(emu.wait_frame(Duration::from_secs(5)).unwrap());
    let ok = std::process::Command::new("kill").args(["-KILL", &emu.pid().to_string()]).status().unwrap().success();
    assert!(ok);
    let until = Instant::now() + Duration::from_secs(5);
    let err = loop {
        match emu.health() {
            Err(e) => break e,
            Ok(_) => {
                assert!(Instant::now() < until, "death not detected");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    assert!(matches!(err, Error::ChildExited { .. }), "{err:?}");
    assert!(err.to_string().contains("SIGKILL"), "{err}");
}

#[test]
fn a_core_refusing_the_rom_is_a_clear_error() {
    let Some((core, _)) = core_and_rom("mgba", GBA_ROM) else {
        return;
    };
    let rom = std::env::temp_dir().join(format!("retrofarm-garbage-{}.gba", std::process::id()));
    std::fs::write(&rom, vec![0x5au8; 1024]).unwrap();
    let err = Emulator::spawn(EmulatorConfig::core(&core, &rom).binary(BIN)).unwrap_err();
    std::fs::remove_file(&rom).unwrap();
    assert!(matches!(err, Error::Startup { .. }), "{err:?}");
    assert!(err.to_string().contains("refused to load"), "{err}");
}
