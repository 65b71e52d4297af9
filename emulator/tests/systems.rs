//! Every system of docs/systems.md on its Debian core (fetched by scripts/fetch-cores.sh), in
//! an emulator child as a room runs it: the game starts, frames arrive at the size and rate the
//! core declares, and, where we have a game of our own for the system, input changes the
//! picture. Our games are the homebrew NES game of games/ and the test programs of
//! tests/roms, generated here; for the other systems no freely licensed ROM exists that we
//! could ship, so their tests say so and run the core on a placeholder. Runs without
//! ../shared; a test skips, saying why, only when its core was not fetched.

mod roms;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use retrofarm_emulator::sandbox::Mode;
use retrofarm_emulator::{cores, AvInfo, Emulator, EmulatorConfig, Error, InputScript, PacingMode, PixelFormat};

const BIN: &str = env!("CARGO_BIN_EXE_retrofarm-emulator");

/// The core's path, or `None` after saying why the test skips.
fn core(name: &str) -> Option<PathBuf> {
    let found = cores::find_core(name, None);
    if found.is_none() {
        eprintln!("SKIP: libretro core '{name}' not found in {:?}; run scripts/fetch-cores.sh", cores::core_dirs(None));
    }
    found
}

/// A folder of its own for one test (games, BIOS, saves), removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("retrofarm-systems-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn sub(&self, name: &str) -> PathBuf {
        let d = self.0.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.sub("games").join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A room's emulator settings: the game in its own folder, the system directory and the save
/// directory apart, every sandbox layer on (as a worker runs it).
fn room(core: &Path, rom: &Path, dir: &TempDir) -> EmulatorConfig {
    let mut cfg = EmulatorConfig::core(core, rom).binary(BIN);
    cfg.system_dir = dir.sub("bios");
    cfg.save_dir = dir.sub("room");
    cfg.sandbox = Mode::Auto;
    cfg
}

/// One frame as the worker received it.
#[derive(Clone, Debug)]
struct Seen {
    width: u32,
    height: u32,
    format: PixelFormat,
    /// The pixel in the middle of the picture.
    centre: [u8; 3],
}

/// Runs `frames` frames unpaced, keeping every one.
fn run(cfg: EmulatorConfig, frames: u64) -> (AvInfo, Vec<Seen>) {
    let cfg = cfg.pacing(PacingMode::Unpaced).frame_limit(frames).frame_slots(frames as u32);
    let emu = Emulator::spawn(cfg).unwrap_or_else(|e| panic!("the game does not start: {e}"));
    let status = emu.wait_exit(Duration::from_secs(60)).unwrap().expect("the child finishes its frames");
    assert!(status.success(), "child failed: {status}\n{}", emu.stderr_tail());
    let mut seen = Vec::new();
    while let Some(f) = emu.next_frame() {
        let m = *f.meta();
        let bpp = m.format.bytes_per_pixel();
        let at = (m.height / 2) as usize * m.stride as usize + (m.width / 2) as usize * bpp;
        let centre = m.format.to_rgb(&f.data()[at..at + bpp]);
        assert!(f.is_intact());
        seen.push(Seen { width: m.width, height: m.height, format: m.format, centre });
    }
    assert_eq!(seen.len() as u64, frames, "every frame arrives");
    (emu.av_info(), seen)
}

/// The core's declared geometry, pixel format and rate are what the system has, and every frame
/// has that size and format.
fn assert_declared(system: &str, av: &AvInfo, frames: &[Seen], size: (u32, u32), format: PixelFormat, fps: f64) {
    assert_declared_varying(system, av, frames, size, size, format, fps);
}

/// The same for a core whose frames change size with what the game sets up (`retro_video_refresh`
/// may send any size up to the declared maximum): the declared size is `declared`, these frames
/// are all `frame`, within the maximum.
fn assert_declared_varying(
    system: &str,
    av: &AvInfo,
    frames: &[Seen],
    declared: (u32, u32),
    frame: (u32, u32),
    format: PixelFormat,
    fps: f64,
) {
    assert_eq!((av.base_width, av.base_height, av.pixel_format), (declared.0, declared.1, format), "{system}: {av:?}");
    assert!(frame.0 <= av.max_width && frame.1 <= av.max_height, "{system}: {frame:?} beyond the maximum {av:?}");
    assert!((av.fps - fps).abs() < 0.01, "{system}: {} fps declared, the system runs at {fps}", av.fps);
    assert!(av.sample_rate > 0.0, "{system}: no audio rate");
    for (n, f) in frames.iter().enumerate() {
        assert_eq!((f.width, f.height, f.format), (frame.0, frame.1, format), "{system}: frame {n}");
    }
}

/// Runs paced for about a second and measures the rate frames come at (the least-squares
/// slope of their emulation times, which a few late frames hardly move); `None` when the host
/// stalled the child.
fn paced_rate(cfg: EmulatorConfig) -> Option<f64> {
    let emu = Emulator::spawn(cfg.pacing(PacingMode::Paced)).unwrap();
    let mut points = Vec::new();
    let end = Instant::now() + Duration::from_millis(1200);
    while Instant::now() < end {
        assert!(emu.wait_frame(Duration::from_secs(1)).unwrap(), "frames keep coming");
        while let Some(f) = emu.next_frame() {
            let m = *f.meta();
            points.push((m.number as f64, m.emulated_at_ns as f64 / 1e9));
        }
    }
    if emu.counters().reanchors > 0 {
        // The host stalled the child for more than three frames and the schedule restarted:
        // the rate over this second says nothing about the pacing.
        return None;
    }
    let n = points.len() as f64;
    let (mean_x, mean_y) = points.iter().fold((0.0, 0.0), |(x, y), p| (x + p.0 / n, y + p.1 / n));
    let (cov, var) =
        points.iter().fold((0.0, 0.0), |(c, v), p| (c + (p.0 - mean_x) * (p.1 - mean_y), v + (p.0 - mean_x).powi(2)));
    Some(var / cov)
}

/// Frames come at the declared rate, within 1%.
fn assert_paced(system: &str, cfg: EmulatorConfig, fps: f64) {
    let Some(measured) = paced_rate(cfg) else {
        eprintln!("{system}: the host stalled the child (re-anchored schedule): paced rate not checked");
        return;
    };
    assert!((measured - fps).abs() < fps * 0.01, "{system}: paced at {measured:.3} fps, declared {fps}");
    eprintln!("{system}: paced at {measured:.3} fps (declared {fps})");
}

/// The centre colours at the frames given, which must all differ; and the picture is the same
/// again once the input is released.
fn assert_input_changes_picture(system: &str, frames: &[Seen], at: &[(usize, &str)], released: usize) {
    let colours: Vec<[u8; 3]> = at.iter().map(|(n, _)| frames[*n].centre).collect();
    for (i, (n, what)) in at.iter().enumerate() {
        for (j, (m, other)) in at.iter().enumerate().skip(i + 1) {
            assert_ne!(colours[i], colours[j], "{system}: {what} (frame {n}) and {other} (frame {m}) look the same");
        }
    }
    assert_eq!(frames[released].centre, colours[0], "{system}: released, the picture is as before");
    eprintln!("{system}: centre colours {:?}", at.iter().zip(&colours).map(|((_, w), c)| (*w, *c)).collect::<Vec<_>>());
}

/// Holds Right, Left, Up on pad 1 for 30 frames each from frame 60, then nothing.
fn dpad_script() -> InputScript {
    InputScript::parse("60 1 RIGHT; 90 1 LEFT; 120 1 UP; 150 1 -").unwrap()
}

const DPAD_FRAMES: &[(usize, &str)] = &[(55, "nothing held"), (85, "Right"), (115, "Left"), (145, "Up")];

#[test]
fn game_boy_on_gambatte() {
    let Some(core) = core("gambatte") else { return };
    let dir = TempDir::new("gb");
    let rom = dir.write("Retrofarm Test.gb", &roms::game_boy());
    let (av, frames) = run(room(&core, &rom, &dir).input_script(dpad_script()), 180);
    assert_declared("Game Boy", &av, &frames, (160, 144), PixelFormat::Rgb565, 59.7275);
    assert_input_changes_picture("Game Boy (gambatte)", &frames, DPAD_FRAMES, 175);
    assert_paced("Game Boy", room(&core, &rom, &dir), av.fps);
}

#[test]
fn super_nes_on_bsnes_mercury() {
    let Some(core) = core("bsnes_mercury_performance") else { return };
    let dir = TempDir::new("snes");
    let rom = dir.write("Retrofarm Test.sfc", &roms::super_nes());
    let (av, frames) = run(room(&core, &rom, &dir).input_script(dpad_script()), 180);
    // 21.477 MHz / (1364 × 262 − 2) master cycles per frame, NTSC (the ROM's header says).
    assert_declared("Super NES", &av, &frames, (256, 224), PixelFormat::Xrgb8888, 60.0988);
    assert_input_changes_picture("Super NES (bsnes-mercury)", &frames, DPAD_FRAMES, 175);
    // The colours the ROM chose, through the whole frontend: BGR555 dark blue, then red.
    assert_eq!(frames[55].centre, [0, 0, 99], "dark blue (0, 0, 12/31)");
    assert_eq!(frames[85].centre, [255, 0, 0], "red");
    assert_paced("Super NES", room(&core, &rom, &dir), av.fps);
}

#[test]
fn nes_on_nestopia_with_our_homebrew_game() {
    let Some(core) = core("nestopia") else { return };
    let dir = TempDir::new("nes");
    let rom = cores::repo_root().join("games/Retrofarm Walk.nes");
    let mut cfg = room(&core, &rom, &dir).input_script(InputScript::parse("20 1 RIGHT; 50 1 -").unwrap());
    cfg.options.push(("nestopia_overscan_v".into(), "disabled".into()));
    let (av, frames) = run(cfg, 60);
    assert_declared("NES", &av, &frames, (256, 240), PixelFormat::Xrgb8888, 60.0);
    // games/README.md: the white block starts at (64,112) and moves 2 px a frame while Right
    // is held: after 30 frames it covers x 124..139, so the middle pixel (128,120) turns white.
    let [r, g, b] = frames[15].centre;
    assert!(r < 20 && g < 60 && b > 120, "the dark blue background before moving: {:?}", frames[15].centre);
    assert_eq!(frames[55].centre, [255, 255, 255], "the block walked right into the middle");
    assert_paced("NES", room(&core, &rom, &dir), av.fps);
}

#[test]
fn super_nes_with_a_multitap_and_a_device_the_core_lacks() {
    let Some(core) = core("bsnes_mercury_performance") else { return };
    let dir = TempDir::new("snes-multitap");
    let rom = dir.write("Retrofarm Test.sfc", &roms::super_nes());
    // The multitap on port 2 (named as the core names it, any case): player 1 plays on.
    let mut cfg = room(&core, &rom, &dir).input_script(dpad_script());
    cfg.port_devices = vec![(2, "multitap".into())];
    let (_, frames) = run(cfg, 180);
    assert_input_changes_picture("Super NES with a multitap", &frames, DPAD_FRAMES, 175);
    // A device the core does not have there: the error lists what it has.
    let mut cfg = room(&core, &rom, &dir);
    cfg.port_devices = vec![(1, "Zapper".into())];
    let msg = Emulator::spawn(cfg).unwrap_err().to_string();
    for needed in ["\"Zapper\" for player 1", "\"SNES Joypad\" (1)", "\"SNES Mouse\" (2)", "port_devices"] {
        assert!(msg.contains(needed), "the error names {needed}: {msg}");
    }
}

#[test]
fn game_boy_advance_on_mgba() {
    let Some(core) = core("mgba") else { return };
    let dir = TempDir::new("gba");
    let rom = dir.write("Retrofarm Test.gba", &roms::game_boy_advance());
    let (av, frames) = run(room(&core, &rom, &dir).input_script(dpad_script()), 180);
    assert_declared("Game Boy Advance", &av, &frames, (240, 160), PixelFormat::Rgb565, 59.7275);
    assert_input_changes_picture("Game Boy Advance (mGBA)", &frames, DPAD_FRAMES, 175);
    assert_eq!(frames[85].centre, [255, 0, 0], "red, as the ROM chose");
    assert_paced("Game Boy Advance", room(&core, &rom, &dir), av.fps);
}

/// What the placeholder tests print: nobody should mistake them for a game test.
fn no_free_rom(system: &str, placeholder: &str) {
    eprintln!(
        "{system}: no freely licensed ROM exists for this system that we could ship, so input is NOT tested; \
         the core is loaded and run on {placeholder}"
    );
}

/// What a placeholder run must show: the size the core declares, the size of its frames, the
/// pixel format and the frame rate.
struct Expect {
    declared: (u32, u32),
    frame: (u32, u32),
    format: PixelFormat,
    fps: f64,
}

/// Runs a placeholder: the core starts in a sandboxed child, its frames come at the declared
/// size and rate, none is dropped.
fn placeholder(system: &str, core: &Path, rom: &Path, dir: &TempDir, e: Expect) {
    let (av, frames) = run(room(core, rom, dir), 120);
    assert_declared_varying(system, &av, &frames, e.declared, e.frame, e.format, e.fps);
    assert_paced(system, room(core, rom, dir), av.fps);
}

#[test]
fn playstation_on_beetle_psx_with_a_placeholder_disc_and_bios() {
    let Some(core) = core("mednafen_psx") else { return };
    no_free_rom("PlayStation", "an empty ISO 9660 disc and a BIOS file of zeros (a real BIOS is Sony's)");
    let dir = TempDir::new("psx");
    let cue = roms::psx_disc(&dir.sub("games"), "Placeholder");
    std::fs::write(dir.sub("bios").join("scph5501.bin"), vec![0u8; 512 * 1024]).unwrap();
    // The disc's track (.bin) is a second file, which the sandbox lets the child read too.
    let (av, frames) = run(room(&core, &cue, &dir), 120);
    // NTSC (the region defaults to North America without a licence string).
    // The picture is as wide as the GPU's display mode: 256 pixels until a program sets one.
    assert_declared_varying("PlayStation", &av, &frames, (320, 240), (256, 240), PixelFormat::Xrgb8888, 59.941);
    assert_paced("PlayStation", room(&core, &cue, &dir), av.fps);
}

#[test]
fn playstation_without_its_bios_is_a_clear_error() {
    let Some(core) = core("mednafen_psx") else { return };
    let dir = TempDir::new("psx-nobios");
    let cue = roms::psx_disc(&dir.sub("games"), "Placeholder");
    let cfg = room(&core, &cue, &dir);
    let bios = cfg.system_dir.clone();
    let err = Emulator::spawn(cfg).unwrap_err();
    assert!(matches!(err, Error::Startup { .. }), "{err:?}");
    let msg = err.to_string();
    for needed in ["PlayStation BIOS", "scph5501.bin", "scph5500.bin", "scph5502.bin", &bios.display().to_string()] {
        assert!(msg.contains(needed), "the error names {needed}: {msg}");
    }
    eprintln!("{msg}");
}

#[test]
fn a_core_that_throws_while_loading_says_so() {
    // beetle-psx throws a C++ exception out of retro_load_game for a disc it cannot read (here
    // sectors of zeros, which fail its EDC check): the child dies of SIGABRT, and the error says
    // the core aborted in retro_load_game instead of only "Rust cannot catch foreign exceptions".
    let Some(core) = core("mednafen_psx") else { return };
    let dir = TempDir::new("psx-throws");
    std::fs::write(dir.sub("bios").join("scph5501.bin"), vec![0u8; 512 * 1024]).unwrap();
    let games = dir.sub("games");
    std::fs::write(games.join("Broken.bin"), vec![0u8; 2352 * 32]).unwrap();
    let cue = dir.write("Broken.cue", b"FILE \"Broken.bin\" BINARY\n  TRACK 01 MODE2/2352\n    INDEX 01 00:00:00\n");
    let err = Emulator::spawn(EmulatorConfig { sandbox: Mode::Off, ..room(&core, &cue, &dir) }).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("SIGABRT"), "{msg}");
    assert!(msg.contains("the core aborted the process in retro_load_game: it could not load this game"), "{msg}");
}

#[test]
fn pc_engine_on_beetle_pce_fast_with_a_placeholder() {
    let Some(core) = core("mednafen_pce_fast") else { return };
    no_free_rom("PC Engine", "a 256 KiB HuCard whose program loops forever");
    let dir = TempDir::new("pce");
    // HuC6280: bank 0 is mapped at $E000 at reset; the vector at $FFFE points at `jmp $E000`.
    let mut card = vec![0u8; 256 * 1024];
    card[..3].copy_from_slice(&[0x4C, 0x00, 0xE0]);
    card[0x1FFE..0x2000].copy_from_slice(&0xE000u16.to_le_bytes());
    let rom = dir.write("Placeholder.pce", &card);
    // The core declares 288x232 (its nominal picture) and sends what the video chip shows: 256
    // pixels by 239 lines (pce_initial_scanline 3 to pce_last_scanline 241) before a game sets
    // its own mode.
    let e = Expect { declared: (288, 232), frame: (256, 239), format: PixelFormat::Rgb565, fps: 59.82 };
    placeholder("PC Engine", &core, &rom, &dir, e);
}

#[test]
fn wonderswan_on_beetle_wswan_with_a_placeholder() {
    let Some(core) = core("mednafen_wswan") else { return };
    no_free_rom("WonderSwan", "a 64 KiB cartridge whose program loops forever");
    let dir = TempDir::new("ws");
    // V30MZ: execution starts at FFFF:0000, the ROM's last 16 bytes, with a far jump to
    // F000:0000 (the bank's start), where `jmp $` loops.
    let mut cart = vec![0u8; 64 * 1024];
    cart[..2].copy_from_slice(&[0xEB, 0xFE]);
    let reset = cart.len() - 16;
    cart[reset..reset + 5].copy_from_slice(&[0xEA, 0x00, 0x00, 0x00, 0xF0]);
    let rom = dir.write("Placeholder.ws", &cart);
    let e = Expect { declared: (224, 144), frame: (224, 144), format: PixelFormat::Rgb565, fps: 75.47 };
    placeholder("WonderSwan", &core, &rom, &dir, e);
}

#[test]
fn virtual_boy_on_beetle_vb_with_a_placeholder() {
    let Some(core) = core("mednafen_vb") else { return };
    no_free_rom("Virtual Boy", "a 512 KiB cartridge of zeros (V810 no-operations)");
    let dir = TempDir::new("vb");
    let rom = dir.write("Placeholder.vb", &vec![0u8; 512 * 1024]);
    let e = Expect { declared: (384, 224), frame: (384, 224), format: PixelFormat::Xrgb8888, fps: 50.27 };
    placeholder("Virtual Boy", &core, &rom, &dir, e);
}

#[test]
fn nintendo_ds_on_desmume_with_a_placeholder() {
    let Some(core) = core("desmume") else { return };
    no_free_rom("Nintendo DS", "a 1 MiB cartridge of zeros (desmume boots it without a BIOS)");
    let dir = TempDir::new("nds");
    let rom = dir.write("Placeholder.nds", &vec![0u8; 1024 * 1024]);
    // Both screens, one above the other.
    let e = Expect { declared: (256, 384), frame: (256, 384), format: PixelFormat::Rgb565, fps: 60.0 };
    placeholder("Nintendo DS", &core, &rom, &dir, e);
}
