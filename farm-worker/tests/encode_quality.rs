//! Frames the worker encodes decode back (openh264's decoder) with PSNR ≥ 35 dB against the
//! emulator's own frames: real cores in child processes, the worker's conversion and encoder
//! settings.

use std::path::PathBuf;
use std::time::Duration;

use farm_worker::room::pixel_format;
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use retrofarm_emulator::{cores, Emulator, EmulatorConfig, InputScript, PacingMode};
use retrofarm_media::{convert, psnr_plane, H264Encoder, I420Frame, RgbFrame, VideoConfig};

/// Runs `frames` frames of `rom` at the core's rate (as a room does) and returns the worst Y, U and V PSNR of the round trip.
fn round_trip(core: &str, rom: PathBuf, script: &str, frames: u64) -> Option<(f64, f64, f64, usize)> {
    let (core, rom) = cores::core_and_rom(core, &rom)?;
    let cfg = EmulatorConfig::core(core, rom)
        .pacing(PacingMode::Paced)
        .frame_limit(frames)
        .frame_slots(64)
        .input_script(InputScript::parse(script).unwrap());
    let emu = Emulator::spawn(cfg).unwrap();
    // The worker's own settings: its default bitrate.
    let kbps = farm_worker::config::Config::default().video_kbps;
    let mut enc = H264Encoder::new(VideoConfig { bitrate_bps: kbps * 1000, ..VideoConfig::default() }).unwrap();
    let mut dec = Decoder::new().unwrap();
    let mut i420 = I420Frame::default();
    let (mut wy, mut wu, mut wv, mut n) = (f64::INFINITY, f64::INFINITY, f64::INFINITY, 0);
    let mut pts = Duration::ZERO;
    loop {
        let got = emu.wait_frame(Duration::from_secs(5)).unwrap();
        emu.clear_event();
        while let Some(frame) = emu.next_frame() {
            let m = *frame.meta();
            let format = pixel_format(m.format);
            let src =
                RgbFrame { format, width: m.width, height: m.height, stride: m.stride as usize, data: frame.data() };
            convert(&src, &mut i420).unwrap();
            if !frame.is_intact() {
                continue; // overwritten while read: the worker skips such frames too
            }
            pts += Duration::from_micros(16_667);
            let au = enc.encode(&i420, pts).unwrap();
            let pic = dec.decode(au.data).unwrap().expect("a picture per frame");
            let (w, h) = pic.dimensions();
            let (ys, us, vs) = pic.strides();
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            wy = wy.min(psnr_plane(pic.y(), ys, i420.y(), i420.y_stride(), w, h));
            wu = wu.min(psnr_plane(pic.u(), us, i420.u(), i420.chroma_stride(), cw, ch));
            wv = wv.min(psnr_plane(pic.v(), vs, i420.v(), i420.chroma_stride(), cw, ch));
            n += 1;
        }
        if !got && !emu.is_alive() {
            break;
        }
        if n as u64 >= frames {
            break;
        }
    }
    Some((wy, wu, wv, n))
}

fn check(r: Option<(f64, f64, f64, usize)>, frames: usize) {
    let Some((y, u, v, n)) = r else { return };
    eprintln!("worst PSNR over {n} frames: Y {y:.1} dB, U {u:.1} dB, V {v:.1} dB");
    assert!(n >= frames * 9 / 10, "only {n} frames");
    assert!(y >= 35.0 && u >= 35.0 && v >= 35.0, "worst PSNR Y {y:.1} U {u:.1} V {v:.1} dB");
}

#[test]
fn our_game_on_nestopia_round_trips_at_35_db() {
    let rom = cores::repo_root().join("games/Retrofarm Walk.nes");
    check(round_trip("nestopia", rom, "10 1 RIGHT; 60 1 DOWN+A; 100 2 LEFT; 140 1 -", 180), 180);
}

#[test]
fn alwas_awakening_round_trips_at_35_db() {
    let rom = cores::shared_roms_dir().join("Alwa's Awakening (Demo).nes");
    check(round_trip("nestopia", rom, "60 1 START; 66 1 -; 150 1 START; 156 1 -; 200 1 RIGHT", 300), 300);
}

#[test]
fn sushi_the_cat_on_mgba_round_trips_at_35_db() {
    let rom = cores::shared_roms_dir().join("Sushi The Cat.gba");
    check(round_trip("mgba", rom, "100 1 START; 106 1 -; 180 1 A; 186 1 -; 220 1 RIGHT", 300), 300);
}
