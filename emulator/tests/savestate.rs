//! The libretro session in-process (one core per test process, as the FFI requires): save
//! states through `retro_serialize` (with its real bool return) restore the exact same frames.

use retrofarm_emulator::libretro::{Io, Session, SessionConfig};
use retrofarm_emulator::shm::frame_ring::VideoInput;
use retrofarm_emulator::{buttons, cores, PixelFormat, PortInput};

#[derive(Default)]
struct Capture {
    frames: Vec<u64>,
    duplicates: usize,
    samples: usize,
    polls: usize,
    buttons: u16,
}

impl Io for Capture {
    fn video(&mut self, frame: VideoInput<'_>) {
        match frame {
            VideoInput::Pixels { data, width, height, pitch, format } => {
                let row = width as usize * format.bytes_per_pixel();
                let mut h = 0xcbf2_9ce4_8422_2325u64;
                for y in 0..height as usize {
                    for &b in &data[y * pitch..y * pitch + row] {
                        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
                    }
                }
                self.frames.push(h);
            }
            VideoInput::Duplicate => self.duplicates += 1,
        }
    }
    fn audio(&mut self, samples: &[i16]) {
        self.samples += samples.len() / 2;
    }
    fn poll_input(&mut self) {
        self.polls += 1;
    }
    fn input(&self, port: u32) -> PortInput {
        PortInput { buttons: if port == 0 { self.buttons } else { 0 }, ..PortInput::default() }
    }
}

#[test]
fn nestopia_save_states_replay_exactly() {
    let Some(core) = cores::find_core("nestopia", None) else {
        eprintln!("SKIP: nestopia not found in {:?}; run scripts/fetch-cores.sh", cores::core_dirs(None));
        return;
    };
    let rom = cores::shared_roms_dir().join("Alwa's Awakening (Demo).nes");
    if !rom.is_file() {
        eprintln!("SKIP: needs {}", rom.display());
        return;
    }
    let mut s = Session::load(&core, &rom, &SessionConfig::default(), Capture::default()).unwrap();
    assert_eq!(s.system_info().library_name, "Nestopia");
    assert_eq!(s.av_info().pixel_format, PixelFormat::Xrgb8888);
    assert!(s.options().iter().any(|o| o.key == "nestopia_overscan_v"));
    for n in 0..130 {
        s.io().buttons = if (120..126).contains(&n) { buttons::START } else { 0 };
        s.run();
    }
    let state = s.serialize().expect("nestopia can save states");
    let mark = s.io().frames.len();
    for _ in 0..60 {
        s.run();
    }
    let first: Vec<u64> = s.io().frames[mark..].to_vec();
    assert!(s.unserialize(&state));
    let mark = s.io().frames.len();
    for _ in 0..60 {
        s.run();
    }
    let again: Vec<u64> = s.io().frames[mark..].to_vec();
    assert_eq!(first, again, "frames after restoring a state repeat exactly");
    let io = s.io();
    assert!(io.polls >= 250 && io.samples > 48_000 * 4);
}
