//! The probe core in the worker's emulator process, and its marker through a real H264 round
//! trip. `cargo test` builds the core (target/<profile>/deps/libretrofarm_probe_core.so); the
//! emulator child binary comes from `cargo build --workspace --bins`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;

use common::core_path;
use retrofarm_emulator::shm::input::Pointer;
use retrofarm_emulator::{Emulator, EmulatorConfig, PixelFormat, PortInput};
use retrofarm_probe_core::marker::{self, Marker, HEIGHT, WIDTH};
use retrofarm_probe_core::Probe;

fn spawn() -> Emulator {
    // Any file will do as content: the core only reads it for a command.
    spawn_with(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
}

fn spawn_with(rom: PathBuf) -> Emulator {
    match Emulator::spawn(EmulatorConfig::core(core_path(), rom)) {
        Ok(e) => e,
        Err(e @ retrofarm_emulator::Error::BinaryNotFound { .. }) => {
            panic!("{e}: run `cargo build --workspace --bins` before the tests")
        }
        Err(e) => panic!("the probe core did not start: {e}"),
    }
}

/// Reads frames for `d`, returning (frame number, marker) of each.
fn frames(emu: &Emulator, d: Duration) -> Vec<(u64, Marker)> {
    let end = Instant::now() + d;
    let mut out = vec![];
    while Instant::now() < end {
        if !emu.wait_frame(Duration::from_millis(100)).unwrap() {
            continue;
        }
        while let Some(f) = emu.next_frame() {
            let m = *f.meta();
            assert_eq!(m.format, PixelFormat::Xrgb8888);
            assert_eq!((m.width as usize, m.height as usize), (WIDTH, HEIGHT));
            let mk = marker::decode_xrgb(f.data(), m.width as usize, m.height as usize, m.stride as usize);
            if f.is_intact() {
                out.push((m.number, mk.expect("every frame carries a marker")));
            }
        }
    }
    out
}

#[test]
fn loads_in_the_emulator_and_counts_one_per_frame() {
    let emu = spawn();
    let av = emu.av_info();
    assert_eq!((av.base_width, av.base_height, av.fps, av.sample_rate), (256, 240, 60.0, 48_000.0));
    assert_eq!(av.pixel_format, PixelFormat::Xrgb8888);
    let seen = frames(&emu, Duration::from_millis(700));
    assert!(seen.len() >= 30, "only {} frames in 0.7 s", seen.len());
    for (n, m) in &seen {
        assert_eq!(m.counter, *n as u16, "frame {n} shows counter {}", m.counter);
        assert_eq!(m.buttons, 0);
    }
    for w in seen.windows(2) {
        assert_eq!(w[1].1.counter.wrapping_sub(w[0].1.counter) as u64, w[1].0 - w[0].0);
    }
    let mut pcm = vec![];
    let got = emu.drain_audio(&mut pcm);
    assert!(got >= 800 * 30, "{got} stereo frames of audio");
    assert!(pcm.iter().any(|&s| s > 5000), "the tone is audible");
}

#[test]
fn the_input_marker_follows_set_input() {
    let emu = spawn();
    frames(&emu, Duration::from_millis(100));
    for buttons in [1u16 << 8, (1 << 4) | (1 << 3), 0xFFFF, 0] {
        emu.set_input(1, buttons, [0; 4]).unwrap();
        // Another port's input never shows.
        emu.set_input(2, 0x00F0, [0; 4]).unwrap();
        let seen = frames(&emu, Duration::from_millis(150));
        let first = seen.iter().position(|(_, m)| m.buttons == buttons).expect("the marker shows the new input");
        assert!(first <= 3, "input showed {first} frames late");
        assert!(seen[first..].iter().all(|(_, m)| m.buttons == buttons), "{seen:?}");
    }
}

#[test]
fn the_marker_survives_h264_at_a_low_bitrate() {
    use retrofarm_media::{H264Encoder, I420Frame, PixelFormat as Px, RgbFrame, VideoConfig};
    let mut enc = H264Encoder::new(VideoConfig { bitrate_bps: 300_000, ..VideoConfig::default() }).unwrap();
    let mut dec = openh264::decoder::Decoder::new().unwrap();
    let mut probe = Probe::default();
    let mut i420 = I420Frame::new(WIDTH, HEIGHT);
    let mut decoded = 0;
    for n in 0..180u64 {
        let buttons = if (n / 20) % 2 == 1 { 1 << 8 } else { 0 };
        probe.step(buttons);
        let bytes: Vec<u8> = probe.pixels.iter().flat_map(|p| p.to_le_bytes()).collect();
        let src = RgbFrame {
            format: Px::Xrgb8888,
            width: WIDTH as u32,
            height: HEIGHT as u32,
            stride: WIDTH * 4,
            data: &bytes,
        };
        retrofarm_media::convert(&src, &mut i420).unwrap();
        let out = enc.encode(&i420, Duration::from_micros(n * 16_667)).unwrap();
        if out.data.is_empty() {
            continue;
        }
        let Some(pic) = dec.decode(out.data).unwrap() else { continue };
        use openh264::formats::YUVSource;
        let (w, h) = pic.dimensions();
        let (ys, _, _) = pic.strides();
        let m = marker::decode_luma(pic.y(), w, h, ys).expect("marker readable after H264");
        assert_eq!(m, Marker { counter: n as u16, buttons }, "frame {n}");
        decoded += 1;
    }
    assert!(decoded >= 170, "{decoded} pictures decoded");
}

#[test]
fn a_core_that_turns_its_picture_is_heard() {
    assert_eq!(spawn().av_info().rotation, 0);
    let dir = tempfile::tempdir().unwrap();
    let rom = dir.path().join("vertical.bin");
    std::fs::write(&rom, "retrofarm-probe rotate 1\n").unwrap();
    let emu = spawn_with(rom);
    let av = emu.av_info();
    assert_eq!(av.rotation, 1, "{av:?}");
    // The picture itself is not turned: the page shows it turned.
    assert_eq!((av.base_width, av.base_height), (256, 240));
    assert!(!frames(&emu, Duration::from_millis(200)).is_empty());
}

/// The pixel at (x, y) of the newest frame, once frames come.
fn pixel(emu: &Emulator, x: usize, y: usize) -> u32 {
    let mut last = None;
    let end = Instant::now() + Duration::from_millis(300);
    while Instant::now() < end {
        if emu.wait_frame(Duration::from_millis(50)).unwrap() {
            while let Some(f) = emu.next_frame() {
                let m = *f.meta();
                let at = y * m.stride as usize + x * 4;
                last = Some(u32::from_le_bytes(f.data()[at..at + 4].try_into().unwrap()));
            }
        }
    }
    last.expect("frames came") & 0x00FF_FFFF
}

#[test]
fn a_pointer_reaches_the_core_where_it_presses() {
    let emu = spawn();
    let (x, y) = (WIDTH * 3 / 4, HEIGHT * 3 / 4);
    assert_ne!(pixel(&emu, x, y), 0x00FF_FFFF, "nothing there before a touch");
    // Three quarters across and down: 0x3fff in libretro's -0x7fff..=0x7fff.
    let touch = PortInput { pointer: Pointer { x: 0x3fff, y: 0x3fff, pressed: true }, ..PortInput::default() };
    emu.set_port(1, touch).unwrap();
    assert_eq!(pixel(&emu, x, y), 0x00FF_FFFF, "the touch shows where it was");
    // Hovering is not touching; another player's pointer is not player 1's.
    emu.set_port(1, PortInput { pointer: Pointer { pressed: false, ..touch.pointer }, ..touch }).unwrap();
    emu.set_port(2, touch).unwrap();
    assert_ne!(pixel(&emu, x, y), 0x00FF_FFFF);
}
