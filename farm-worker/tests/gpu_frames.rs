//! Real cores' frames through the GPU converter: nestopia (our homebrew game, and the shared NES
//! ROM) and mGBA (the shared GBA ROM) write their frames into their rings in child processes;
//! the rings are imported once, and one batch mixing both systems at scales 1 to 3 (one
//! letterboxed) equals the CPU reference byte for byte. Skips, saying why, without a Vulkan
//! device, a core or a shared ROM.

use std::path::PathBuf;
use std::time::Duration;

use farm_worker::room::pixel_format;
use retrofarm_emulator::{cores, Emulator, EmulatorConfig, InputScript, PacingMode};
use retrofarm_gpu::{Converter, DeviceChoice, Job, SourceMode};
use retrofarm_media::{convert_placed, I420Frame, Placement, RgbFrame};

const FRAMES: u64 = 90;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Runs `rom` on `core` for [`FRAMES`] frames, keeping every one in the ring.
fn run(core: &str, rom: PathBuf, script: &str) -> Option<Emulator> {
    let (core, rom) = cores::core_and_rom(core, &rom)?;
    let cfg = EmulatorConfig::core(core, rom)
        .pacing(PacingMode::Unpaced)
        .frame_limit(FRAMES)
        .frame_slots(FRAMES as u32)
        .input_script(InputScript::parse(script).unwrap());
    let emu = Emulator::spawn(cfg).unwrap();
    let status = emu.wait_exit(Duration::from_secs(120)).unwrap().expect("the core finishes its frames");
    assert!(status.success(), "{}", emu.stderr_tail());
    Some(emu)
}

#[test]
fn real_nestopia_and_mgba_frames_convert_bit_exact_in_one_batch() {
    let mut conv = match Converter::open(DeviceChoice::Any) {
        Ok(c) => c,
        Err(e) => return eprintln!("SKIP: no Vulkan device: {e}"),
    };
    let shared = repo().join("../shared/roms");
    let runs: Vec<(&str, Emulator)> = [
        ("nestopia", repo().join("games/Retrofarm Walk.nes"), "10 1 RIGHT;50 1 -;20 2 LEFT"),
        ("nestopia", shared.join("Alwa's Awakening (Demo).nes"), "30 1 START;36 1 -"),
        ("mgba", shared.join("Sushi The Cat.gba"), "30 1 START;36 1 -"),
    ]
    .into_iter()
    .filter_map(|(core, rom, script)| Some((core, run(core, rom, script)?)))
    .collect();
    if runs.is_empty() {
        return eprintln!("SKIP: no core ran");
    }

    // Every 20th frame of every room, at a scale by turns, one of them letterboxed.
    let mut jobs = Vec::new();
    let mut sources = Vec::new();
    let mut expected = Vec::new();
    for (core, emu) in &runs {
        let (ptr, len) = emu.mapping();
        // SAFETY: the emulator (and its mapping) outlives the converter's use: the sources are
        // released below, before `runs` is dropped.
        #[allow(unsafe_code)]
        let source = unsafe { conv.import(ptr, len) }.unwrap();
        assert_eq!(conv.source_mode(source), Some(SourceMode::HostImport), "{core}: ring imported without copies");
        sources.push(source);
        let mut i = 0u32;
        while let Some(frame) = emu.next_frame() {
            let m = *frame.meta();
            if m.number % 20 != 0 {
                continue;
            }
            i += 1;
            let scale = 1 + i % 3;
            let canvas = (i == 2).then(|| (m.width * scale + 64, m.height * scale + 32));
            let placement = Placement::new(m.width, m.height, scale, canvas).unwrap();
            let src = RgbFrame {
                format: pixel_format(m.format),
                width: m.width,
                height: m.height,
                stride: m.stride as usize,
                data: frame.data(),
            };
            let mut want = I420Frame::default();
            convert_placed(&src, &placement, &mut want).unwrap();
            expected.push((format!("{core} frame {} {}x{} x{scale}", m.number, m.width, m.height), want));
            jobs.push(Job {
                source,
                offset: frame.offset() as usize,
                format: src.format,
                width: m.width,
                height: m.height,
                stride: src.stride,
                placement,
                slot: None,
            });
        }
    }
    assert!(jobs.len() >= 3 * runs.len(), "frames to compare: {}", jobs.len());
    let mut out = vec![I420Frame::default(); jobs.len()];
    let report = conv.convert(&jobs, &mut out).unwrap();
    assert_eq!((report.jobs, report.submits, report.staged_bytes), (jobs.len(), 1, 0));
    for ((what, want), got) in expected.iter().zip(&out) {
        assert!(got == want, "{what}: the GPU's picture differs from the CPU reference");
    }
    eprintln!("{} real frames from {} rooms equal the CPU reference in one dispatch", jobs.len(), runs.len());
    for s in sources {
        conv.release(s);
    }
}
