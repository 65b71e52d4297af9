//! `peer`: CPU per room of our media path against the GStreamer pipeline an operator could run
//! instead, on the same NES frames and audio.
//!
//! The benchmark ROM is run once in process (nestopia, scripted input) and its frames (BGRx)
//! and audio (s16le stereo) dumped to files (cached in $TMPDIR/retrofarm-bench-frames). Then:
//!
//! - ours: `retrofarm_media::convert` (XRGB8888 → I420) + openh264 (the worker's settings and
//!   default bitrate) on every frame, Opus (96 kbps, complexity 5, 20 ms) on the audio, one
//!   thread, CPU time measured around those calls only;
//! - GStreamer (`gst-launch-1.0`, Debian's packages): filesrc → rawvideoparse → videoconvert →
//!   x264enc tune=zerolatency speed-preset=ultrafast → rtph264pay → fakesink, and filesrc →
//!   rawaudioparse → audioconvert → audioresample → opusenc → rtpopuspay → fakesink, with the
//!   same bitrates; also openh264enc with our encoder's settings. The child's CPU time comes
//!   from getrusage (bash's `time`). Start-up and file reading are taken out by running each
//!   pipeline over all frames and over the first few, and its source alone the same way:
//!   cost per frame = Δ(full) − Δ(source), each Δ = (long run − short run) / frames between
//!   (the short run reads a dump of the first tenth of the frames).
//!
//! Prints µs per frame and cores per room at 60 fps, best of 3 runs, and the ratio; also ours
//! with `--rooms N` (default 16) rooms taking turns frame by frame on one thread, as a worker's
//! pool serves them, so each room's encoder state is cold when its turn comes.
//! `--quick`: 120 frames, one run, 4 rooms (CI). Flags: `--frames N --runs N --rooms N`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use retrofarm_bench::games::{self, Dump};
use retrofarm_bench::{arg, quick, sysstat};
use retrofarm_media::{AudioConfig, AudioEncoder, H264Encoder, I420Frame, PixelFormat, RgbFrame, VideoConfig};

/// CPU µs per video frame.
#[derive(Debug, Clone, Copy)]
struct Cost {
    video: f64,
    audio: f64,
}

impl Cost {
    fn total(&self) -> f64 {
        self.video + self.audio
    }
    fn min(self, o: Cost) -> Cost {
        Cost { video: self.video.min(o.video), audio: self.audio.min(o.audio) }
    }
}

/// One room's encoders.
struct Room {
    i420: I420Frame,
    h264: H264Encoder,
    opus: AudioEncoder,
}

/// Ours, on every frame of `d`, for `rooms` rooms taking turns frame by frame (as a pool
/// thread serves many rooms: each room's encoder state is cold when its turn comes; every room
/// gets the same pictures). Returns CPU µs per frame per room and the video bitrate in kbit/s.
fn ours(d: &Dump, rooms: usize) -> Result<(Cost, f64)> {
    let pcm = d.audio_samples()?;
    let per_frame = (pcm.len() / 2) as f64 / d.frames as f64;
    let mut video = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&d.video)?);
    let mut frame = vec![0u8; d.frame_len()];
    let config = VideoConfig { bitrate_bps: games::video_kbps() * 1000, ..VideoConfig::default() };
    let mut all = (0..rooms.max(1))
        .map(|_| -> Result<Room> {
            Ok(Room {
                i420: I420Frame::new(d.width as usize, d.height as usize),
                h264: H264Encoder::new(config.clone())?,
                opus: AudioEncoder::new(AudioConfig::new(d.sample_rate))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let (mut v_cpu, mut a_cpu, mut bytes) = (Duration::ZERO, Duration::ZERO, 0usize);
    for n in 0..d.frames {
        video.read_exact(&mut frame)?;
        let a = (n as f64 * per_frame) as usize * 2;
        let b = (((n + 1) as f64 * per_frame) as usize * 2).min(pcm.len());
        for room in &mut all {
            let t0 = sysstat::self_cpu();
            let src = RgbFrame {
                format: PixelFormat::Xrgb8888,
                width: d.width,
                height: d.height,
                stride: d.width as usize * 4,
                data: &frame,
            };
            retrofarm_media::convert(&src, &mut room.i420)?;
            let out = room.h264.encode(&room.i420, Duration::from_micros(n * 1_000_000 / 60))?;
            bytes += out.data.len();
            let t1 = sysstat::self_cpu();
            room.opus.push(&pcm[a..b])?;
            while room.opus.pop().is_some() {}
            let t2 = sysstat::self_cpu();
            v_cpu += t1 - t0;
            a_cpu += t2 - t1;
        }
    }
    let count = (d.frames * all.len() as u64) as f64;
    let us = |t: Duration| t.as_secs_f64() * 1e6 / count;
    let kbps = bytes as f64 * 8.0 / (count / 60.0) / 1000.0;
    Ok((Cost { video: us(v_cpu), audio: us(a_cpu) }, kbps))
}

/// [`ours`] with `rooms` rooms on the first `frames` frames.
fn ours_interleaved(
    core: &std::path::Path,
    rom: &std::path::Path,
    cache: &std::path::Path,
    rooms: usize,
    frames: u64,
) -> Result<Cost> {
    let d = games::dump(core, rom, frames, cache)?;
    Ok(ours(&d, rooms)?.0)
}

/// CPU time of one `gst-launch-1.0` run of `pipeline` (user + system, ms resolution: bash's
/// `time` reads getrusage of the waited-for child).
fn gst_cpu(pipeline: &str) -> Result<Duration> {
    let out = Command::new("bash")
        .arg("-c")
        .arg("TIMEFORMAT='%3U %3S'; time gst-launch-1.0 -q \"$@\" >/dev/null")
        .arg("bash")
        .args(pipeline.split_whitespace())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("running gst-launch-1.0 under bash")?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("gst-launch-1.0 {pipeline}\nfailed: {}\n{err}", out.status);
    }
    let last = err.lines().last().unwrap_or("");
    let secs: Vec<f64> = last.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    match secs[..] {
        [user, sys] => Ok(Duration::from_secs_f64(user + sys)),
        _ => bail!("no CPU time from bash's time in {err:?}"),
    }
}

/// Bitrate in kbit/s of what `pipeline` hands its final fakesink (an extra, untimed run).
fn gst_kbps(pipeline: &str, frames: u64) -> Result<f64> {
    let out = Command::new("gst-launch-1.0")
        .arg("-v")
        .args(pipeline.split_whitespace())
        .args(["!", "fakesink", "silent=false", "sync=false"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .context("running gst-launch-1.0")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let bytes: u64 = text
        .lines()
        .filter(|l| l.contains("last-message = chain"))
        .filter_map(|l| l.split_once(" bytes")?.0.rsplit_once('(')?.1.parse::<u64>().ok())
        .sum();
    Ok(bytes as f64 * 8.0 / (frames as f64 / 60.0) / 1000.0)
}

/// The source part of each branch: the long dump or the short one (its first frames; a
/// separate file because rawaudioparse pulls from filesrc and ignores `num-buffers`).
struct Sources<'a> {
    long: &'a Dump,
    short: &'a Dump,
}

impl Sources<'_> {
    fn dump(&self, frames: u64) -> &Dump {
        if frames == self.long.frames {
            self.long
        } else {
            self.short
        }
    }
    fn video(&self, frames: u64) -> String {
        let d = self.dump(frames);
        format!(
            "filesrc location={} blocksize={} ! rawvideoparse width={} height={} format=bgrx framerate=60/1",
            d.video.display(),
            d.frame_len(),
            d.width,
            d.height
        )
    }
    fn audio(&self, frames: u64) -> String {
        let d = self.dump(frames);
        format!(
            "filesrc location={} ! rawaudioparse format=pcm pcm-format=s16le sample-rate={} num-channels=2",
            d.audio.display(),
            d.sample_rate.round() as u32
        )
    }
}

/// CPU µs per frame of `tail` after a source: marginal cost over (long − short) frames, minus
/// the source's own marginal cost.
fn gst_marginal(src: impl Fn(u64) -> String, tail: &str, long: u64, short: u64) -> Result<f64> {
    let run = |frames: u64, with_tail: bool| {
        let p = if with_tail {
            format!("{} ! {tail} ! fakesink sync=false", src(frames))
        } else {
            format!("{} ! fakesink sync=false", src(frames))
        };
        gst_cpu(&p)
    };
    let full = run(long, true)?.saturating_sub(run(short, true)?);
    let source = run(long, false)?.saturating_sub(run(short, false)?);
    Ok(full.saturating_sub(source).as_secs_f64() * 1e6 / (long - short) as f64)
}

fn main() -> Result<()> {
    let q = quick();
    let frames: u64 = arg("--frames").unwrap_or(if q { 120 } else { 3600 });
    let runs: usize = arg("--runs").unwrap_or(if q { 1 } else { 3 });
    let short = (frames / 10).max(10);
    let rom = games::rom();
    let Some(core) = games::core_or_skip("peer") else { return Ok(()) };
    println!(
        "== peer: media CPU per room, ours vs GStreamer, on {frames} frames of {}",
        rom.file_name().unwrap_or_default().to_string_lossy()
    );
    println!("host: {} × {} CPUs; load average {:.2}", sysstat::cpu_model(), sysstat::cpus(), sysstat::loadavg());
    let cache = games::dump_cache();
    let d = games::dump(&core, &rom, frames, &cache)?;
    println!(
        "frames: {} ({}x{} BGRx), audio: {} ({} Hz stereo)",
        d.video.display(),
        d.width,
        d.height,
        d.audio.display(),
        d.sample_rate
    );

    let mut best: Option<Cost> = None;
    let mut kbps = 0.0;
    for _ in 0..runs {
        let (c, k) = ours(&d, 1)?;
        best = Some(best.map_or(c, |b| b.min(c)));
        kbps = k;
    }
    let ours = best.expect("at least one run");
    // The same work spread over many rooms, as in a worker (cold caches): one run, fewer frames.
    let many: usize = arg("--rooms").unwrap_or(if q { 4 } else { 16 });
    let interleaved = ours_interleaved(&core, &rom, &cache, many, (frames / 6).max(60))?;
    let row = |name: &str, c: Cost| {
        println!("{name:<44} {:>9.1} {:>9.1} {:>9.1} {:>10.4}", c.video, c.audio, c.total(), c.total() * 60.0 / 1e6);
    };
    println!(
        "\n{:<44} {:>9} {:>9} {:>9} {:>10}",
        "CPU per frame, best of runs", "video µs", "audio µs", "total µs", "cores/room"
    );
    row("ours: yuv convert + openh264 + opus", ours);
    println!("  (ours: H264 at {kbps:.0} kbit/s)");
    row(&format!("ours, {many} rooms taking turns (cold caches)"), interleaved);

    if Command::new("gst-launch-1.0").arg("--version").stdout(Stdio::null()).status().is_err() {
        println!("\nGStreamer is not installed: apt-get install gstreamer1.0-tools gstreamer1.0-plugins-{{base,good,bad,ugly}}");
        println!("peer: GStreamer comparison SKIPPED");
        return Ok(());
    }
    let d_short = games::dump(&core, &rom, short, &cache)?;
    let sources = Sources { long: &d, short: &d_short };
    let kbps = games::video_kbps();
    let x264 = &format!("videoconvert n-threads=1 ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast bitrate={kbps} key-int-max=600 threads=1 ! rtph264pay config-interval=-1");
    let openh264 = &format!("videoconvert n-threads=1 ! video/x-raw,format=I420 ! openh264enc usage-type=camera complexity=low rate-control=bitrate bitrate={} gop-size=600 multi-thread=1 scene-change-detection=false enable-frame-skip=false ! rtph264pay config-interval=-1", kbps * 1000);
    let convert = "videoconvert n-threads=1 ! video/x-raw,format=I420";
    let opus = "audioconvert ! audioresample ! opusenc bitrate=96000 complexity=5 frame-size=20 ! rtpopuspay";
    let measure = |tail: &str, video: bool| -> Result<f64> {
        let mut best = f64::INFINITY;
        for _ in 0..runs {
            let v = if video {
                gst_marginal(|n| sources.video(n), tail, frames, short)?
            } else {
                gst_marginal(|n| sources.audio(n), tail, frames, short)?
            };
            best = best.min(v);
        }
        Ok(best)
    };
    let gst_audio = measure(opus, false)?;
    let gst_x264 = Cost { video: measure(x264, true)?, audio: gst_audio };
    row("GStreamer: videoconvert + x264enc ultrafast", gst_x264);
    let has_openh264 = Command::new("gst-inspect-1.0")
        .arg("openh264enc")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let gst_oh = if has_openh264 {
        let c = Cost { video: measure(openh264, true)?, audio: gst_audio };
        row("GStreamer: videoconvert + openh264enc", c);
        Some(c)
    } else {
        println!("(GStreamer's openh264enc is not installed)");
        None
    };
    let conv = measure(convert, true)?;
    println!(
        "  (GStreamer videoconvert BGRx→I420 alone: {conv:.1} µs/frame; opusenc + rtpopuspay: {gst_audio:.1} µs/frame)"
    );
    // RTP payload bytes (headers included): close enough to compare with our encoder's output.
    let x264_kbps = gst_kbps(&format!("{} ! {x264}", sources.video(frames)), frames)?;
    println!("  (GStreamer x264enc: RTP at {x264_kbps:.0} kbit/s)");
    println!("\n== peer summary");
    println!(
        "ours / GStreamer (x264 ultrafast): {:.2} (target <= 0.8): {:.4} vs {:.4} cores per room",
        ours.total() / gst_x264.total(),
        ours.total() * 60.0 / 1e6,
        gst_x264.total() * 60.0 / 1e6
    );
    if let Some(c) = gst_oh {
        println!("ours / GStreamer (openh264enc, same encoder settings): {:.2}", ours.total() / c.total());
    }
    Ok(())
}
