//! A running room: its emulator child process and the thread that encodes what it produces.
//!
//! The room thread waits for each frame the emulator publishes in shared memory (one eventfd
//! wake-up per frame), converts and encodes it once for every viewer, encodes the audio, and
//! hands the results to the engine. It never blocks the emulator: the emulator's frame ring
//! drops frames the thread did not take, and results the engine cannot take are dropped here.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use retrofarm_emulator::{Emulator, EmulatorConfig, PixelFormat as EmuFormat};
use retrofarm_media::{AudioConfig, AudioEncoder, H264Config, H264Encoder, I420Frame, PixelFormat, RgbFrame};
use retrofarm_proto::ids::RoomId;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// What a room reports to the engine.
#[derive(Debug)]
pub enum MediaEvent {
    /// One encoded video frame (H264 access unit, Annex B).
    Video {
        /// The room.
        room: RoomId,
        /// The access unit, shared by every viewer.
        data: Arc<[u8]>,
        /// Whether it is an IDR.
        keyframe: bool,
        /// RTP time, 90 kHz, from the emulated-at timestamp.
        rtp_90k: u64,
    },
    /// One Opus packet.
    Audio {
        /// The room.
        room: RoomId,
        /// The packet.
        data: Arc<[u8]>,
        /// RTP time, 48 kHz.
        rtp_48k: u64,
    },
    /// The emulator stopped (crashed, killed, or failed to start).
    Died {
        /// The room.
        room: RoomId,
        /// What happened, for the players.
        reason: String,
    },
}

/// What a room runs.
#[derive(Debug, Clone)]
pub struct RoomSpec {
    /// The room.
    pub room: RoomId,
    /// libretro core.
    pub core: PathBuf,
    /// ROM.
    pub rom: PathBuf,
    /// Core options.
    pub options: Vec<(String, String)>,
    /// Video encoder settings.
    pub h264: H264Config,
}

/// Counters a room keeps (read by metrics and tests).
#[derive(Debug, Default)]
pub struct RoomStats {
    /// Frames encoded.
    pub frames_encoded: AtomicU64,
    /// Encoded frames the engine could not take.
    pub frames_dropped: AtomicU64,
}

/// The engine's handle on a room; dropping it stops the thread and kills the emulator.
pub struct RoomHandle {
    emulator: Arc<OnceLock<Emulator>>,
    keyframe: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Counters.
    pub stats: Arc<RoomStats>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RoomHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomHandle").finish_non_exhaustive()
    }
}

impl RoomHandle {
    /// Starts the emulator and the room thread; results go to `events`.
    pub fn start(spec: RoomSpec, events: mpsc::Sender<MediaEvent>) -> Self {
        let emulator = Arc::new(OnceLock::new());
        let keyframe = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(RoomStats::default());
        let thread = {
            let (emulator, keyframe, stop, stats) = (emulator.clone(), keyframe.clone(), stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name(format!("room-{}", spec.room))
                .spawn(move || {
                    let room = spec.room.clone();
                    if let Err(reason) = run(spec, &emulator, &keyframe, &stop, &stats, &events) {
                        if !stop.load(Ordering::Relaxed) {
                            warn!(%room, %reason, "room ended");
                            let _ = events.blocking_send(MediaEvent::Died { room, reason });
                        }
                    }
                })
                .expect("spawning a room thread")
        };
        Self { emulator, keyframe, stop, stats, thread: Some(thread) }
    }

    /// Sets a player's pad (ports 1..=4). Ignored until the emulator runs.
    pub fn set_input(&self, port: u8, buttons: u16, axes: [i16; 4]) {
        if let Some(e) = self.emulator.get() {
            let _ = e.set_input(port, buttons, axes);
        }
    }

    /// Makes the next encoded frame an IDR.
    pub fn request_keyframe(&self) {
        self.keyframe.store(true, Ordering::Relaxed);
    }

    /// The emulator's process id, once started.
    pub fn emulator_pid(&self) -> Option<u32> {
        self.emulator.get().map(Emulator::pid)
    }
}

impl Drop for RoomHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn format(f: EmuFormat) -> PixelFormat {
    match f {
        EmuFormat::Xrgb8888 => PixelFormat::Xrgb8888,
        EmuFormat::Rgb565 => PixelFormat::Rgb565,
        EmuFormat::Orgb1555 => PixelFormat::Xrgb1555,
    }
}

fn run(
    spec: RoomSpec,
    slot: &OnceLock<Emulator>,
    keyframe: &AtomicBool,
    stop: &AtomicBool,
    stats: &RoomStats,
    events: &mpsc::Sender<MediaEvent>,
) -> Result<(), String> {
    let mut cfg = EmulatorConfig::core(&spec.core, &spec.rom);
    cfg.options = spec.options.clone();
    let emu = Emulator::spawn(cfg).map_err(|e| format!("the game could not start: {e}"))?;
    let av = emu.av_info();
    info!(room = %spec.room, fps = av.fps, w = av.base_width, h = av.base_height, rate = av.sample_rate, "emulator running");
    let emu = slot.get_or_init(|| emu);

    let mut h264 = H264Encoder::new(H264Config { max_fps: av.fps as f32, ..spec.h264.clone() })
        .map_err(|e| format!("video encoder: {e}"))?;
    let mut opus = AudioEncoder::new(AudioConfig::new(av.sample_rate)).map_err(|e| format!("audio encoder: {e}"))?;
    let mut i420 = I420Frame::new(av.base_width as usize, av.base_height as usize);
    let mut pcm = Vec::new();
    let mut first_ns: Option<u64> = None;
    let room = spec.room;

    while !stop.load(Ordering::Relaxed) {
        match emu.wait_frame(Duration::from_millis(100)) {
            Ok(true) => {}
            Ok(false) => {
                emu.health().map_err(|e| format!("the game stopped: {e}"))?;
                continue;
            }
            Err(e) => return Err(format!("the game stopped: {e}")),
        }
        emu.clear_event();
        if let Some(frame) = emu.latest_frame() {
            let m = *frame.meta();
            let src = RgbFrame {
                format: format(m.format),
                width: m.width,
                height: m.height,
                stride: m.stride as usize,
                data: frame.data(),
            };
            if i420.width() != m.width as usize || i420.height() != m.height as usize {
                i420.resize(m.width as usize, m.height as usize);
            }
            let converted = retrofarm_media::convert(&src, &mut i420);
            // The slot may have been overwritten while we read it: skip a torn frame.
            if converted.is_ok() && frame.is_intact() {
                if keyframe.swap(false, Ordering::Relaxed) {
                    h264.request_keyframe();
                }
                let t0 = *first_ns.get_or_insert(m.emulated_at_ns);
                let pts = Duration::from_nanos(m.emulated_at_ns.saturating_sub(t0));
                let enc = h264.encode(&i420, pts).map_err(|e| format!("video encoder: {e}"))?;
                if !enc.data.is_empty() {
                    stats.frames_encoded.fetch_add(1, Ordering::Relaxed);
                    let ev = MediaEvent::Video {
                        room: room.clone(),
                        data: Arc::from(enc.data),
                        keyframe: enc.keyframe,
                        rtp_90k: (pts.as_nanos() * 9 / 100_000) as u64,
                    };
                    if events.try_send(ev).is_err() {
                        stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        pcm.clear();
        if emu.drain_audio(&mut pcm) > 0 {
            opus.push(&pcm).map_err(|e| format!("audio encoder: {e}"))?;
            while let Some(p) = opus.pop() {
                let ev = MediaEvent::Audio { room: room.clone(), data: Arc::from(p.data), rtp_48k: p.timestamp };
                let _ = events.try_send(ev);
            }
        }
    }
    Ok(())
}
