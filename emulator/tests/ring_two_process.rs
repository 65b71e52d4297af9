//! The shared-memory ring with the writer (the child binary running the test pattern) and the
//! reader (this test) in two processes.

use std::process::Command;
use std::time::{Duration, Instant};

use retrofarm_emulator::{buttons, Emulator, EmulatorConfig, Error, Health, PacingMode, PixelFormat, TestPattern};

const BIN: &str = env!("CARGO_BIN_EXE_retrofarm-emulator");

fn config(pattern: TestPattern) -> EmulatorConfig {
    EmulatorConfig::test_pattern(pattern).binary(BIN)
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig} {pid} failed");
}

#[test]
fn frames_arrive_intact_in_order_with_audio_and_input() {
    let pattern =
        TestPattern { width: 128, height: 96, fps: 120.0, format: PixelFormat::Xrgb8888, sample_rate: 48_000 };
    let total = 240;
    let emu = Emulator::spawn(config(pattern).frame_slots(64).frame_limit(total)).unwrap();
    let av = emu.av_info();
    assert_eq!((av.base_width, av.base_height, av.fps, av.pixel_format), (128, 96, 120.0, PixelFormat::Xrgb8888));
    assert_eq!(emu.layout().slot_offset(0) % 4096, 0);

    let mut expected = 0u64;
    let mut audio = Vec::new();
    let mut saw_start = false;
    let mut sent = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while expected < total {
        assert!(Instant::now() < deadline, "timed out at frame {expected}");
        emu.wait_frame(Duration::from_millis(500)).unwrap();
        while let Some(frame) = emu.next_frame() {
            let m = *frame.meta();
            assert_eq!(m.number, expected, "frames must come in order, none missing");
            assert_eq!((m.width, m.height, m.stride), (128, 96, 128 * 4));
            let pressed = pattern.verify(m.number, frame.data());
            assert!(frame.is_intact(), "a paced writer with 64 slots never laps the reader");
            let pressed = pressed.unwrap_or_else(|| panic!("frame {} has wrong pixels", m.number));
            saw_start |= pressed == buttons::START;
            assert!(m.emulated_at_ns > 0 && m.emulated_at_ns <= retrofarm_emulator::monotonic_ns());
            expected += 1;
        }
        if expected >= 20 && !sent {
            emu.set_input(1, buttons::START, [0; 4]).unwrap();
            sent = true;
        }
        emu.drain_audio(&mut audio);
    }
    assert!(saw_start, "input written by the parent reaches the child");
    assert!(matches!(emu.set_input(5, 0, [0; 4]), Err(Error::InvalidPort(5))));
    assert_eq!(emu.wait_exit(Duration::from_secs(10)).unwrap().map(|s| s.success()), Some(true));
    assert_eq!(emu.health().unwrap(), Health::Finished);
    emu.drain_audio(&mut audio);
    // Audio: every stereo frame, in order, exactly as many as 240 frames at 48 kHz / 120 fps.
    assert_eq!(audio.len() / 2, 240 * 48_000 / 120);
    for (i, pair) in audio.chunks(2).enumerate() {
        assert_eq!(pair, [i as i16, !(i as i16)]);
    }
    let c = emu.counters();
    assert_eq!((c.frames_published, c.frames_dropped, c.reader.missed, c.audio_frames_dropped), (total, 0, 0, 0));
    assert_eq!(c.runs, total);
}

#[test]
fn a_slow_reader_makes_the_writer_drop_never_block() {
    let pattern = TestPattern { width: 64, height: 48, fps: 60.0, format: PixelFormat::Rgb565, sample_rate: 32_768 };
    let total = 3000;
    let emu = Emulator::spawn(config(pattern).pacing(PacingMode::Unpaced).frame_slots(4).frame_limit(total)).unwrap();
    let start = Instant::now();
    let mut read = 0u64;
    let mut last = None;
    // Read one frame every 20 ms: at that rate 3000 frames would take a minute.
    while emu.is_alive() && start.elapsed() < Duration::from_secs(30) {
        if let Some(frame) = emu.next_frame() {
            let n = frame.meta().number;
            assert!(last.is_none_or(|l| n > l), "frame numbers only grow");
            last = Some(n);
            let ok = pattern.verify(n, frame.data()).is_some();
            if frame.is_intact() {
                assert!(ok, "frame {n} reported intact but its pixels are wrong");
            }
            read += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let writer_time = start.elapsed();
    assert_eq!(emu.wait_exit(Duration::from_secs(5)).unwrap().map(|s| s.success()), Some(true));
    let c = emu.counters();
    assert_eq!(c.frames_published, total, "the writer finished all frames");
    assert!(read < 1000, "the reader was slow ({read} frames read)");
    assert!(writer_time < Duration::from_secs(25), "the writer did not wait for the reader ({writer_time:?})");
    // Everything the reader did not consume was dropped by the writer (except the last slots).
    assert!(c.frames_dropped >= total - read - 4, "dropped {} of {total}, read {read}", c.frames_dropped);
    // The newest frames are still there.
    let newest = emu.latest_frame().expect("the ring keeps the newest frames");
    assert_eq!(newest.meta().number, total - 1);
    assert!(pattern.verify(total - 1, newest.data()).is_some() && newest.is_intact());
}

#[test]
fn a_dead_or_hung_writer_is_detected() {
    let pattern = TestPattern { width: 32, height: 32, fps: 60.0, ..TestPattern::default() };
    let mut cfg = config(pattern);
    cfg.stall_timeout = Duration::from_millis(300);
    let emu = Emulator::spawn(cfg).unwrap();
    assert!(emu.wait_frame(Duration::from_secs(5)).unwrap());
    assert_eq!(emu.health().unwrap(), Health::Running);

    // A stopped (hung) child: alive, but its heartbeat goes stale.
    signal(emu.pid(), "-STOP");
    std::thread::sleep(Duration::from_millis(600));
    match emu.health() {
        Err(e @ Error::Stalled { .. }) => assert!(e.to_string().contains("hung"), "{e}"),
        other => panic!("expected a stall, got {other:?}"),
    }
    signal(emu.pid(), "-CONT");
    let until = Instant::now() + Duration::from_secs(5);
    while emu.health().is_err() {
        assert!(Instant::now() < until, "child did not recover after SIGCONT");
        std::thread::sleep(Duration::from_millis(10));
    }

    // A killed child: the exit is reported with its cause.
    signal(emu.pid(), "-KILL");
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
    let text = err.to_string();
    assert!(matches!(err, Error::ChildExited { .. }), "{err:?}");
    assert!(text.contains("died") && text.contains("SIGKILL"), "{text}");
    assert!(!emu.is_alive());
    // Waiting for frames from a dead writer fails instead of hanging (once the ring is drained).
    while emu.next_frame().is_some() {}
    assert!(emu.wait_frame(Duration::from_secs(1)).is_err());
}

#[test]
fn kill_through_the_api_is_reported() {
    let emu = Emulator::spawn(config(TestPattern { width: 16, height: 16, ..TestPattern::default() })).unwrap();
    let status = emu.kill().unwrap();
    assert!(!status.success());
    assert!(matches!(emu.health(), Err(Error::ChildExited { .. })));
}

#[test]
fn startup_failures_carry_the_childs_explanation() {
    let rom = std::env::temp_dir().join(format!("retrofarm-not-a-rom-{}", std::process::id()));
    std::fs::write(&rom, b"nothing").unwrap();
    let err = Emulator::spawn(EmulatorConfig::core("/etc/hostname", &rom).binary(BIN)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Startup { .. }), "{err:?}");
    assert!(text.contains("cannot load core /etc/hostname"), "{text}");

    let err = Emulator::spawn(EmulatorConfig::core("/etc/hostname", "/no/such/rom.nes").binary(BIN)).unwrap_err();
    assert!(err.to_string().contains("cannot read ROM /no/such/rom.nes"), "{err}");

    let err = Emulator::spawn(EmulatorConfig::core("/etc/hostname", &rom).binary("/no/such/binary")).unwrap_err();
    assert!(matches!(err, Error::BinaryNotFound { .. }), "{err:?}");
    std::fs::remove_file(&rom).unwrap();
}

#[test]
fn the_binary_is_found_next_to_the_test_executable() {
    if std::env::var_os(retrofarm_emulator::host::BIN_ENV).is_some() {
        eprintln!("skipping: {} is set", retrofarm_emulator::host::BIN_ENV);
        return;
    }
    let found = retrofarm_emulator::find_binary(None).unwrap();
    assert_eq!(found.file_name().unwrap(), "retrofarm-emulator");
}

#[test]
fn the_binary_reports_bad_arguments() {
    let out = Command::new(BIN).arg("--frobnicate").arg("1").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument"));
    let out = Command::new(BIN).args(["--core", "/etc/hostname", "--rom", "/etc/hostname"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot load core"));
}
