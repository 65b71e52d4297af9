//! The control channel with real child processes: save, load and reset through
//! `Emulator::{save_game, load_game, reset}`, on the test pattern (whose state is its frame
//! counter) and on real cores (skipped, saying why, when a core or ROM is missing).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use retrofarm_emulator::control::REFUSED_STATE;
use retrofarm_emulator::{
    buttons, cores, Emulator, EmulatorConfig, Error, GameSave, Health, PacingMode, PixelFormat, TestPattern,
};

const BIN: &str = env!("CARGO_BIN_EXE_retrofarm-emulator");
const T: Duration = Duration::from_secs(5);

fn pattern() -> TestPattern {
    TestPattern { width: 64, height: 48, fps: 60.0, format: PixelFormat::Xrgb8888, sample_rate: 48_000 }
}

fn spawn_pattern() -> Emulator {
    Emulator::spawn(EmulatorConfig::test_pattern(pattern()).binary(BIN)).unwrap()
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig} {pid} failed");
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("retrofarm-control-{}-{name}", std::process::id()))
}

/// The newest frame numbered `min` or later (waiting for it), copied out intact.
fn frame_from(emu: &Emulator, min: u64) -> (u64, Vec<u8>) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < end, "no frame numbered {min} or later; stderr:\n{}", emu.stderr_tail());
        emu.wait_frame(Duration::from_millis(200)).unwrap();
        if let Some(f) = emu.latest_frame() {
            let n = f.meta().number;
            if n >= min {
                if let Some(data) = f.to_vec() {
                    return (n, data);
                }
            }
        }
    }
}

/// Which pattern frame (picture number) `data` is, searching `range`.
fn picture(data: &[u8], range: std::ops::RangeInclusive<u64>) -> Option<u64> {
    range.into_iter().find(|&n| pattern().verify(n, data).is_some())
}

fn counter(save: &GameSave) -> u64 {
    u64::from_le_bytes(save.state.as_deref().expect("the pattern always has a state").try_into().unwrap())
}

#[test]
fn pattern_load_returns_to_the_saved_frame() {
    let emu = spawn_pattern();
    frame_from(&emu, 10);
    let save = emu.save_game(T).unwrap();
    assert_eq!(save.sram, None, "the pattern has no battery RAM");
    let saved = counter(&save);
    assert!(saved >= 10, "saved counter {saved}");
    // Run on well past the save.
    let (_, data) = frame_from(&emu, saved + 30);
    let later = picture(&data, saved + 20..=saved + 600).expect("the picture moved on");
    let before = emu.counters().frames_published;
    emu.load_game(&save, T).unwrap();
    let after = emu.counters().frames_published;
    // Frame `m` published after the load shows picture saved + (m - frames at the load).
    let (m, data) = frame_from(&emu, after);
    let shown = picture(&data, saved + (m - after)..=saved + (m - before)).unwrap_or_else(|| {
        panic!("frame {m} after the load should show picture {saved} + {}..={}", m - after, m - before)
    });
    assert!(shown < later, "the counter went back: {shown} < {later}");
    let again = counter(&emu.save_game(T).unwrap());
    assert!((saved..saved + 60).contains(&again), "counter {again} right after loading {saved}");
    assert_eq!(emu.health().unwrap(), Health::Running);
}

#[test]
fn pattern_reset_restarts_the_counter() {
    let emu = spawn_pattern();
    frame_from(&emu, 20);
    let before = emu.counters().frames_published;
    emu.reset(T).unwrap();
    let after = emu.counters().frames_published;
    let (m, data) = frame_from(&emu, after);
    assert!(picture(&data, m - after..=m - before).is_some(), "frame {m} shows a picture counted from 0");
    assert!(counter(&emu.save_game(T).unwrap()) < 60);
}

#[test]
fn a_refused_load_is_explained_and_the_game_runs_on() {
    let emu = spawn_pattern();
    frame_from(&emu, 5);
    let garbage = GameSave { state: Some(vec![1, 2, 3]), sram: None };
    let before = counter(&emu.save_game(T).unwrap());
    let err = emu.load_game(&garbage, T).unwrap_err();
    assert!(matches!(err, Error::CommandFailed { command: "load", .. }), "{err:?}");
    assert_eq!(err.to_string(), REFUSED_STATE);
    let err = emu.load_game(&GameSave { state: None, sram: Some(vec![0; 8192]) }, T).unwrap_err();
    assert!(err.to_string().contains("no battery save RAM"), "{err}");
    // Still running, counter not disturbed.
    let published = emu.counters().frames_published;
    frame_from(&emu, published + 3);
    let after = counter(&emu.save_game(T).unwrap());
    assert!(after > before, "the counter kept going: {before} -> {after}");
    assert_eq!(emu.health().unwrap(), Health::Running);
}

#[test]
fn commands_from_many_threads_each_get_their_own_answer() {
    let emu = spawn_pattern();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut last = 0;
                for _ in 0..10 {
                    let n = counter(&emu.save_game(T).unwrap());
                    assert!(n >= last, "answers in order per thread: {last} then {n}");
                    last = n;
                }
            });
        }
    });
}

#[test]
fn a_stopped_child_times_out_and_a_killed_one_is_reported() {
    let emu = spawn_pattern();
    frame_from(&emu, 20);
    signal(emu.pid(), "-STOP");
    let t = Instant::now();
    let err = emu.save_game(Duration::from_millis(300)).unwrap_err();
    let waited = t.elapsed();
    assert!(matches!(err, Error::CommandTimeout { command: "save", .. }), "{err:?}");
    assert!(err.to_string().contains("did not answer 'save' within 300ms"), "{err}");
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(2), "{waited:?}");
    signal(emu.pid(), "-CONT");
    // The late answer to the timed-out save is dropped: each call below gets its own (a reset
    // answered with a Saved would be an error).
    let before = counter(&emu.save_game(T).unwrap());
    assert!(before >= 20, "the counter ran on: {before}");
    emu.reset(T).unwrap();
    let after = counter(&emu.save_game(T).unwrap());
    assert!(after < before, "reset answered in turn: {before} -> {after}");

    signal(emu.pid(), "-KILL");
    let t = Instant::now();
    let err = emu.save_game(Duration::from_secs(30)).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "death noticed at once, not at the timeout");
    assert!(matches!(err, Error::ChildExited { .. }), "{err:?}");
    assert!(err.to_string().contains("SIGKILL"), "{err}");
    let err = emu.reset(T).unwrap_err();
    assert!(matches!(err, Error::ChildExited { .. }), "{err:?}");
}

#[test]
fn a_finished_child_says_it_takes_no_more_commands() {
    let config = EmulatorConfig::test_pattern(pattern()).binary(BIN).pacing(PacingMode::Unpaced).frame_limit(3);
    let emu = Emulator::spawn(config).unwrap();
    assert!(emu.wait_exit(T).unwrap().is_some_and(|s| s.success()));
    let err = emu.save_game(T).unwrap_err();
    assert!(err.to_string().contains("finished"), "{err}");
}

#[test]
fn a_battery_save_for_a_game_without_battery_ram_fails_the_start() {
    let missing = temp_path("missing.srm");
    let emu = Emulator::spawn(EmulatorConfig::test_pattern(pattern()).binary(BIN).sram_file(&missing)).unwrap();
    assert_eq!(emu.save_game(T).unwrap().sram, None, "a missing file is a first start");
    drop(emu);
    let path = temp_path("pattern.srm");
    std::fs::write(&path, [0u8; 32]).unwrap();
    let err = Emulator::spawn(EmulatorConfig::test_pattern(pattern()).binary(BIN).sram_file(&path)).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(err, Error::Startup { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("pattern.srm") && msg.contains("no battery save RAM") && msg.contains("move"), "{msg}");
}

/// Top-left corner of player 1's white block in an XRGB8888 frame.
fn white_block(data: &[u8], width: u32, height: u32, stride: u32) -> Option<(u32, u32)> {
    (0..height).find_map(|y| {
        (0..width).find_map(|x| {
            let i = (y * stride + x * 4) as usize;
            (data[i..i + 3] == [0xff, 0xff, 0xff]).then_some((x, y))
        })
    })
}

/// The block's position in the newest frame numbered `min` or later, with the frame's bytes.
fn block_from(emu: &Emulator, min: u64) -> (u64, (u32, u32), Vec<u8>) {
    let (n, data) = frame_from(emu, min);
    let av = emu.av_info();
    let stride = data.len() as u32 / av.base_height;
    let pos = white_block(&data, av.base_width, av.base_height, stride)
        .unwrap_or_else(|| panic!("no white block in frame {n}"));
    (n, pos, data)
}

/// Holds Right until the block is at least `dx` pixels right of `x0`, then lets go; returns
/// where it stopped.
fn walk_right(emu: &Emulator, x0: u32, dx: u32) -> (u32, u32) {
    emu.set_input(1, buttons::RIGHT, [0; 4]).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < end, "the block did not move right");
        let published = emu.counters().frames_published;
        let (_, (x, _), _) = block_from(emu, published);
        if x >= x0 + dx {
            break;
        }
    }
    emu.set_input(1, 0, [0; 4]).unwrap();
    // Released: the block stops on the next frames.
    let published = emu.counters().frames_published;
    block_from(emu, published + 3).1
}

#[test]
fn nestopia_load_puts_the_block_back_and_reset_restarts() {
    let rom = cores::repo_root().join("games/Retrofarm Walk.nes");
    let Some((core, rom)) = cores::core_and_rom("nestopia", &rom) else {
        return;
    };
    let emu = Emulator::spawn(EmulatorConfig::core(&core, &rom).binary(BIN)).unwrap();
    assert_eq!(emu.av_info().pixel_format, PixelFormat::Xrgb8888);
    let (_, start, _) = block_from(&emu, 10);
    assert_eq!(start.0, 64, "player 1 starts at x 64");

    let save = emu.save_game(T).unwrap();
    let state_len = save.state.as_ref().map(Vec::len).expect("nestopia saves states");
    eprintln!("nestopia: state {state_len} bytes, battery RAM {:?}", save.sram.as_ref().map(Vec::len));
    let published = emu.counters().frames_published;
    let (_, at_save, picture_at_save) = block_from(&emu, published);
    assert_eq!(at_save, start);

    let moved = walk_right(&emu, start.0, 40);
    assert!(moved.0 >= start.0 + 40 && moved.1 == start.1, "walked to {moved:?}");

    // A state the core refuses changes nothing.
    let err = emu.load_game(&GameSave { state: Some(vec![0x42; 1000]), sram: None }, T).unwrap_err();
    assert_eq!(err.to_string(), REFUSED_STATE);
    let published = emu.counters().frames_published;
    assert_eq!(block_from(&emu, published + 2).1, moved, "still where it walked to");

    emu.load_game(&save, T).unwrap();
    let published = emu.counters().frames_published;
    let (n, pos, picture) = block_from(&emu, published);
    assert_eq!(pos, at_save, "frame {n}, the first after the load, shows the block where it was saved");
    assert!(picture == picture_at_save, "the whole picture is the saved one");

    let moved = walk_right(&emu, start.0, 30);
    assert!(moved.0 >= start.0 + 30);
    emu.reset(T).unwrap();
    // The game clears its RAM at reset; the blocks are back from the 5th frame on.
    let published = emu.counters().frames_published;
    assert_eq!(block_from(&emu, published + 10).1, start, "reset puts the block at its start");
    assert_eq!(emu.health().unwrap(), Health::Running);
}

/// Runs `emu` (unpaced) until it has called `retro_run` `runs` times.
fn run_until(emu: &Emulator, runs: u64) {
    let end = Instant::now() + Duration::from_secs(60);
    while emu.counters().runs < runs {
        assert!(Instant::now() < end, "stuck at {} runs", emu.counters().runs);
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn mgba_battery_ram_round_trips_and_survives_a_restart() {
    let roms = cores::shared_roms_dir();
    let rom = ["anguna.gba", "Sushi The Cat.gba"].iter().map(|r| roms.join(r)).find(|r| r.is_file());
    let Some((core, rom)) = cores::core_and_rom("mgba", &rom.unwrap_or_else(|| roms.join("anguna.gba"))) else {
        return;
    };
    let game = rom.file_name().unwrap().to_string_lossy().into_owned();
    let config = || EmulatorConfig::core(&core, &rom).binary(BIN);
    let path = temp_path("game.srm");

    // Early on (paced, ~30 frames in), the battery RAM is what mGBA sets up before the game
    // touches it: bytes we write come back.
    let emu = Emulator::spawn(config()).unwrap();
    frame_from(&emu, 30);
    let save = emu.save_game(T).unwrap();
    let sram = save.sram.expect("GBA games have battery RAM");
    let state_len = save.state.as_ref().map(Vec::len).expect("mGBA saves states");
    eprintln!("mgba {game}: state {state_len} bytes, battery RAM {} bytes at start", sram.len());
    assert!([512, 8 << 10, 32 << 10, 64 << 10, 128 << 10].contains(&sram.len()), "{} bytes", sram.len());
    let ours: Vec<u8> = (0..sram.len()).map(|i| (i * 7 + 3) as u8).collect();
    emu.load_game(&GameSave { state: None, sram: Some(ours.clone()) }, T).unwrap();
    let published = emu.counters().frames_published;
    frame_from(&emu, published + 5);
    assert_eq!(emu.save_game(T).unwrap().sram.as_deref(), Some(&ours[..]), "battery RAM read back");
    // More than fits is refused clearly, and the game runs on.
    let err = emu.load_game(&GameSave { state: None, sram: Some(vec![0; sram.len() + 1]) }, T).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&format!("only {} bytes", sram.len())) && msg.contains("another game"), "{msg}");
    assert_eq!(emu.health().unwrap(), Health::Running);
    drop(emu);

    // A new child started with those bytes in a file has them too.
    std::fs::write(&path, &ours).unwrap();
    let emu = Emulator::spawn(config().sram_file(&path)).unwrap();
    frame_from(&emu, 30);
    assert_eq!(emu.save_game(T).unwrap().sram.as_deref(), Some(&ours[..]), "battery RAM survives a restart");
    drop(emu);

    // The game's own save, once it has run a while (anguna detects SRAM and writes its save by
    // ~500 frames; its battery RAM is then 32 KiB, less than the 128 KiB mGBA reports at the
    // next start), survives a restart too.
    let fast = || config().pacing(PacingMode::Unpaced).frame_slots(2);
    let emu = Emulator::spawn(fast()).unwrap();
    run_until(&emu, 900);
    let real = emu.save_game(T).unwrap().sram.unwrap();
    drop(emu);
    let written = real.iter().filter(|&&b| b != 0xff).count();
    eprintln!("mgba {game}: after 900 frames, battery RAM {} bytes, {written} written", real.len());
    std::fs::write(&path, &real).unwrap();
    let emu = Emulator::spawn(fast().sram_file(&path)).unwrap();
    run_until(&emu, 900);
    assert!(emu.save_game(T).unwrap().sram == Some(real), "the game's own save survives a restart");
    drop(emu);

    // A file larger than any battery RAM stops the start with a message that says what to do.
    std::fs::write(&path, vec![0u8; (128 << 10) + 1]).unwrap();
    let err = Emulator::spawn(config().sram_file(&path)).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(err, Error::Startup { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("game.srm") && msg.contains("131073 bytes") && msg.contains("move the file away"), "{msg}");
}
