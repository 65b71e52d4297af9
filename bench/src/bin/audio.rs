//! `audio`: what Opus costs per room and how faithful it stays, per encoder complexity, on the
//! benchmark ROM's own audio.
//!
//! The ROM's audio (nestopia: 48 kHz, the same sample on both channels) goes through
//! [`AudioEncoder`] as the worker uses it, and so does a stereo version of it (the right channel
//! delayed by 5 ms and at 70 %, so that the channels differ and the encoder codes both). Each is
//! decoded again with libopus and compared with its source. Prints, per complexity: CPU µs per
//! video frame (60 fps), bitrate, and the SNR of the decoded signal against its source, both
//! without DC (the NES's sound is all above zero; Opus removes DC): a rough, non-perceptual
//! measure, but a fair one between complexities at one bitrate. `--quick`: 300 frames,
//! complexities 0 and 5 (CI). Flags: `--frames N --kbps N`.

use anyhow::Result;
use retrofarm_bench::{arg, games, quick, sysstat};
use retrofarm_media::{AudioConfig, AudioEncoder};

/// Decoded output lags the input by Opus's look-ahead (2.5 ms at 48 kHz in low-delay mode).
const LOOKAHEAD: usize = 120;

struct Run {
    us_per_frame: f64,
    kbps: f64,
    snr_db: f64,
    mono_share: f64,
}

/// Encodes `pcm` (interleaved stereo at `rate`) in 1/60 s pushes, decodes it, and measures.
fn run(pcm: &[i16], rate: f64, complexity: i32) -> Result<Run> {
    let mut config = AudioConfig::new(rate);
    config.complexity = complexity;
    if let Some(kbps) = arg::<i32>("--kbps") {
        config.bitrate_bps = kbps * 1000;
    }
    let mut enc = AudioEncoder::new(config)?;
    let per_frame = (rate / 60.0).round() as usize * 2;
    let mut packets = vec![];
    let (mut mono, mut total) = (0usize, 0usize);
    let t0 = sysstat::self_cpu();
    for chunk in pcm.chunks(per_frame) {
        let whole = chunk.len() - chunk.len() % 2;
        enc.push(&chunk[..whole])?;
        while let Some(p) = enc.pop() {
            packets.push(p);
        }
        mono += usize::from(enc.is_coding_mono());
        total += 1;
    }
    let cpu = sysstat::self_cpu() - t0;
    let frames = pcm.len().div_ceil(per_frame);
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Stereo)?;
    let mut out = Vec::with_capacity(pcm.len() + 5760 * 2);
    let mut buf = vec![0i16; 5760 * 2];
    let mut bytes = 0usize;
    for p in &packets {
        let n = dec.decode(&p.data, &mut buf, false)?;
        out.extend_from_slice(&buf[..n * 2]);
        bytes += p.data.len();
    }
    // The NES's sound is all above zero and Opus filters out DC: compare both without it.
    let (src, dec) = (dc_blocked(pcm), dc_blocked(&out[(LOOKAHEAD * 2).min(out.len())..]));
    // Skip the first half second (encoder start-up); compare what both have.
    let (mut signal, mut noise) = (0f64, 0f64);
    for (s, d) in src.iter().zip(&dec).skip(24_000 * 2) {
        signal += s * s;
        noise += (s - d) * (s - d);
    }
    let seconds = pcm.len() as f64 / 2.0 / rate;
    Ok(Run {
        us_per_frame: cpu.as_secs_f64() * 1e6 / frames as f64,
        kbps: bytes as f64 * 8.0 / seconds / 1000.0,
        snr_db: 10.0 * (signal / noise.max(1e-9)).log10(),
        mono_share: mono as f64 / total.max(1) as f64,
    })
}

/// Interleaved stereo with a first-order DC blocker (corner ≈ 40 Hz) on each channel.
fn dc_blocked(pcm: &[i16]) -> Vec<f64> {
    let mut out = Vec::with_capacity(pcm.len());
    let (mut x1, mut y1) = ([0f64; 2], [0f64; 2]);
    for (i, &v) in pcm.iter().enumerate() {
        let c = i % 2;
        let x = f64::from(v);
        let y = x - x1[c] + 0.995 * y1[c];
        (x1[c], y1[c]) = (x, y);
        out.push(y);
    }
    out
}

/// The mono source made stereo: the right channel 5 ms late and at 70 %.
fn widen(pcm: &[i16], rate: f64) -> Vec<i16> {
    let delay = (rate * 0.005).round() as usize;
    let frames = pcm.len() / 2;
    let mut out = Vec::with_capacity(pcm.len());
    for n in 0..frames {
        let l = pcm[2 * n];
        let r = if n >= delay { (f64::from(pcm[2 * (n - delay) + 1]) * 0.7) as i16 } else { 0 };
        out.push(l);
        out.push(r);
    }
    out
}

fn main() -> Result<()> {
    let q = quick();
    let frames: u64 = arg("--frames").unwrap_or(if q { 300 } else { 3600 });
    let rom = games::rom();
    let Some(core) = games::core_or_skip("audio") else { return Ok(()) };
    println!(
        "== audio: Opus per room by complexity, on {frames} frames of {}",
        rom.file_name().unwrap_or_default().to_string_lossy()
    );
    println!("host: {} × {} CPUs; load average {:.2}", sysstat::cpu_model(), sysstat::cpus(), sysstat::loadavg());
    let d = games::dump(&core, &rom, frames, &games::dump_cache())?;
    let game = d.audio_samples()?;
    let mono_source = game.chunks_exact(2).all(|lr| lr[0] == lr[1]);
    println!(
        "audio: {:.1} s at {} Hz, channels {}",
        game.len() as f64 / 2.0 / d.sample_rate,
        d.sample_rate,
        if mono_source { "identical (mono)" } else { "differ (stereo)" }
    );
    let wide = widen(&game, d.sample_rate);
    let complexities: &[i32] = if q { &[0, 5] } else { &[0, 1, 2, 3, 4, 5, 7, 10] };
    println!();
    println!("complexity | source | µs per video frame | kbit/s | SNR dB | coded as mono");
    println!("---: | --- | ---: | ---: | ---: | ---:");
    for &c in complexities {
        for (name, pcm) in [("game", &game), ("game, widened to stereo", &wide)] {
            // Best of three for the cost; the output is the same every time.
            let mut best: Option<Run> = None;
            for _ in 0..if q { 1 } else { 3 } {
                let r = run(pcm, d.sample_rate, c)?;
                if best.as_ref().is_none_or(|b| r.us_per_frame < b.us_per_frame) {
                    best = Some(r);
                }
            }
            let r = best.expect("one run");
            println!(
                "{c} | {name} | {:.1} | {:.0} | {:.1} | {:.0} %",
                r.us_per_frame,
                r.kbps,
                r.snr_db,
                r.mono_share * 100.0
            );
        }
    }
    Ok(())
}
