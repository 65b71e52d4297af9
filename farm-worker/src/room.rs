//! A running room: its emulator child process, its encoders, and the task that starts the
//! emulator, hands its frame eventfd to the encoder pool and watches its health.
//!
//! Frames never leave shared memory until the pool converts them: a pool thread reads the
//! room's newest frame in place from the emulator's frame ring, converts it once, encodes it
//! once per codec its viewers need, and hands the results to the engine.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use retrofarm_emulator::{Emulator, EmulatorConfig, PixelFormat as EmuFormat};
use retrofarm_media::{
    AudioConfig, AudioEncoder, EncodedFrame, H264Config, H264Encoder, I420Frame, PixelFormat, RgbFrame, Vp8Config,
    Vp8Encoder,
};
use retrofarm_proto::ids::RoomId;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::metrics::{metrics, CPU};
use crate::pool::{EncodePool, Job};

/// While a room's picture stays the same, every sixth frame is still encoded: viewers keep
/// getting ten frames a second at 60 fps (no "frozen" stream), and rate control keeps its clock.
const MAX_REPEATS: u32 = 5;

/// A video codec a room can encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H264 constrained baseline (openh264).
    H264 = 0,
    /// VP8 (libvpx), for browsers whose answer has no usable H264.
    Vp8 = 1,
}

impl VideoCodec {
    /// Both codecs.
    pub const ALL: [VideoCodec; 2] = [VideoCodec::H264, VideoCodec::Vp8];

    /// The `encoder` metric label.
    pub fn encoder(self) -> &'static str {
        match self {
            VideoCodec::H264 => "openh264",
            VideoCodec::Vp8 => "vp8",
        }
    }
}

/// When a frame passed each stage, CLOCK_MONOTONIC nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamps {
    /// The emulator finished the frame.
    pub emulated: u64,
    /// Converted to I420.
    pub converted: u64,
    /// Encoded.
    pub encoded: u64,
}

/// What a room reports to the engine.
#[derive(Debug)]
pub enum MediaEvent {
    /// One encoded video frame.
    Video {
        /// The room.
        room: RoomId,
        /// Its codec.
        codec: VideoCodec,
        /// The frame, shared by every viewer of that codec.
        data: Arc<[u8]>,
        /// Whether it is a keyframe.
        keyframe: bool,
        /// RTP time, 90 kHz, from the emulated-at timestamp.
        rtp_90k: u64,
        /// Stage timestamps.
        stamps: Stamps,
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
    /// Frames identical to the one before are not encoded again (see [`MAX_REPEATS`]).
    pub skip_repeats: bool,
}

#[derive(Default)]
struct Encoders {
    h264: Option<H264Encoder>,
    vp8: Option<Vp8Encoder>,
    opus: Option<AudioEncoder>,
    i420: I420Frame,
    pcm: Vec<i16>,
    first_ns: Option<u64>,
    last_frame: Option<u64>,
    /// Hash of the newest frame's pixels.
    last_hash: Option<u64>,
    /// Frames left out since the last one encoded.
    repeats: u32,
}

/// A room's shared state: the emulator, its encoders and flags.
pub struct Room {
    /// The room id.
    pub id: RoomId,
    spec: RoomSpec,
    emulator: OnceLock<Emulator>,
    encoders: Mutex<Encoders>,
    queued: AtomicBool,
    /// Per codec: the next frame must be a keyframe.
    keyframe: [AtomicBool; 2],
    /// Per codec: some viewer needs it (a room encodes only those).
    wanted: [AtomicBool; 2],
    stopped: AtomicBool,
    events: mpsc::Sender<MediaEvent>,
}

fn format(f: EmuFormat) -> PixelFormat {
    match f {
        EmuFormat::Xrgb8888 => PixelFormat::Xrgb8888,
        EmuFormat::Rgb565 => PixelFormat::Rgb565,
        EmuFormat::Orgb1555 => PixelFormat::Xrgb1555,
    }
}

impl Room {
    /// The emulator, once it runs.
    pub fn emulator(&self) -> Option<&Emulator> {
        self.emulator.get()
    }

    fn send(&self, ev: MediaEvent) {
        if self.events.try_send(ev).is_err() {
            metrics().frames_dropped.with_label_values(&["send_queue", CPU]).inc();
        }
    }

    fn encode(&self, emu: &Emulator, enc: &mut Encoders) -> Result<(), String> {
        if !VideoCodec::ALL.iter().any(|c| self.wanted[*c as usize].load(Ordering::Relaxed)) {
            // Nobody watches yet: keep the rings drained, encode nothing.
            enc.last_frame = emu.latest_frame().map(|f| f.meta().number);
            enc.pcm.clear();
            emu.drain_audio(&mut enc.pcm);
            return Ok(());
        }
        if let Some(frame) = emu.latest_frame() {
            let m = *frame.meta();
            if enc.last_frame != Some(m.number) {
                enc.last_frame = Some(m.number);
                if self.spec.skip_repeats && self.is_repeat(frame.data(), &m, enc) && frame.is_intact() {
                    metrics().frames_repeated.with_label_values(&[CPU]).inc();
                    return self.encode_audio(emu, enc);
                }
                let src = RgbFrame {
                    format: format(m.format),
                    width: m.width,
                    height: m.height,
                    stride: m.stride as usize,
                    data: frame.data(),
                };
                let converted = retrofarm_media::convert(&src, &mut enc.i420);
                // The writer may have lapped us while we read the slot: skip a torn frame.
                if converted.is_ok() && frame.is_intact() {
                    let converted = retrofarm_emulator::monotonic_ns();
                    let t0 = *enc.first_ns.get_or_insert(m.emulated_at_ns);
                    let pts = Duration::from_nanos(m.emulated_at_ns.saturating_sub(t0));
                    let stamps = Stamps { emulated: m.emulated_at_ns, converted, encoded: 0 };
                    enc.repeats = 0;
                    for codec in VideoCodec::ALL {
                        self.encode_video(codec, enc, pts, stamps)?;
                    }
                }
            }
        }
        self.encode_audio(emu, enc)
    }

    /// Whether a frame shows exactly what the last one did, and so need not be encoded: no
    /// viewer waits for a keyframe and fewer than [`MAX_REPEATS`] frames in a row were left
    /// out. Remembers its hash and counts it.
    fn is_repeat(&self, pixels: &[u8], m: &retrofarm_emulator::FrameMeta, enc: &mut Encoders) -> bool {
        let shape = (u64::from(m.width) << 32) | u64::from(m.height);
        let hash = xxhash_rust::xxh3::xxh3_64_with_seed(pixels, shape);
        let same = enc.last_hash.replace(hash) == Some(hash);
        let keyframe_wanted = VideoCodec::ALL.iter().any(|c| {
            self.wanted[*c as usize].load(Ordering::Relaxed) && self.keyframe[*c as usize].load(Ordering::Relaxed)
        });
        let skip = same && enc.repeats < MAX_REPEATS && !keyframe_wanted;
        enc.repeats += u32::from(skip);
        skip
    }

    /// Encodes the audio the emulator wrote since the last call.
    fn encode_audio(&self, emu: &Emulator, enc: &mut Encoders) -> Result<(), String> {
        enc.pcm.clear();
        if emu.drain_audio(&mut enc.pcm) > 0 {
            let opus = match &mut enc.opus {
                Some(o) => o,
                None => enc.opus.insert(
                    AudioEncoder::new(AudioConfig::new(emu.av_info().sample_rate))
                        .map_err(|e| format!("audio encoder: {e}"))?,
                ),
            };
            opus.push(&enc.pcm).map_err(|e| format!("audio encoder: {e}"))?;
            while let Some(p) = opus.pop() {
                self.send(MediaEvent::Audio { room: self.id.clone(), data: Arc::from(p.data), rtp_48k: p.timestamp });
            }
        }
        Ok(())
    }
}

impl Room {
    /// Encodes the converted frame with `codec` when a viewer wants it, dropping the encoder
    /// when none does.
    fn encode_video(
        &self,
        codec: VideoCodec,
        enc: &mut Encoders,
        pts: Duration,
        mut stamps: Stamps,
    ) -> Result<(), String> {
        if !self.wanted[codec as usize].load(Ordering::Relaxed) {
            match codec {
                VideoCodec::H264 => enc.h264 = None,
                VideoCodec::Vp8 => enc.vp8 = None,
            }
            return Ok(());
        }
        let keyframe = self.keyframe[codec as usize].swap(false, Ordering::Relaxed);
        let fail = |e: &dyn std::fmt::Display| format!("{} encoder: {e}", codec.encoder());
        let out: EncodedFrame<'_> = match codec {
            VideoCodec::H264 => {
                let h = match &mut enc.h264 {
                    Some(h) => h,
                    None => enc.h264.insert(H264Encoder::new(self.spec.h264.clone()).map_err(|e| fail(&e))?),
                };
                if keyframe {
                    h.request_keyframe();
                }
                h.encode(&enc.i420, pts).map_err(|e| fail(&e))?
            }
            VideoCodec::Vp8 => {
                let cfg = Vp8Config {
                    bitrate_bps: self.spec.h264.bitrate_bps,
                    max_fps: self.spec.h264.max_fps,
                    keyframe_interval: self.spec.h264.keyframe_interval,
                };
                let v = match &mut enc.vp8 {
                    Some(v) => v,
                    None => enc.vp8.insert(Vp8Encoder::new(cfg).map_err(|e| fail(&e))?),
                };
                if keyframe {
                    v.request_keyframe();
                }
                v.encode(&enc.i420, pts).map_err(|e| fail(&e))?
            }
        };
        if out.data.is_empty() {
            return Ok(());
        }
        stamps.encoded = retrofarm_emulator::monotonic_ns();
        let m = metrics();
        m.frames_encoded.with_label_values(&[codec.encoder(), CPU]).inc();
        m.encode_duration.with_label_values(&[codec.encoder()]).observe(out.encode_time.as_secs_f64());
        let since = |t: u64| t.saturating_sub(stamps.emulated) as f64 / 1e9;
        m.stage_latency.with_label_values(&["converted"]).observe(since(stamps.converted));
        m.stage_latency.with_label_values(&["encoded"]).observe(since(stamps.encoded));
        self.send(MediaEvent::Video {
            room: self.id.clone(),
            codec,
            data: Arc::from(out.data),
            keyframe: out.keyframe,
            rtp_90k: (pts.as_nanos() * 9 / 100_000) as u64,
            stamps,
        });
        Ok(())
    }
}

impl Job for Room {
    fn run(&self) -> bool {
        let Some(emu) = self.emulator.get() else { return false };
        if self.stopped.load(Ordering::Relaxed) {
            return false;
        }
        // Drain before reading: a frame published from here on wakes the pool again.
        emu.clear_event();
        let mut enc = self.encoders.lock().expect("room encoders");
        if let Err(reason) = self.encode(emu, &mut enc) {
            warn!(room = %self.id, %reason, "room encoder failed");
            self.stopped.store(true, Ordering::Relaxed);
            // Pool threads are not runtime threads: blocking here is allowed and the engine
            // must hear of the death.
            let _ = self.events.blocking_send(MediaEvent::Died { room: self.id.clone(), reason });
            return false;
        }
        // A frame published while we worked gets its own turn.
        let newest = emu.counters().frames_published;
        enc.last_frame.is_some_and(|n| newest > n + 1)
    }

    fn queued(&self) -> &AtomicBool {
        &self.queued
    }
}

/// The engine's handle on a room; dropping it stops the room and kills its emulator.
pub struct RoomHandle {
    room: Arc<Room>,
    watcher: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RoomHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomHandle").field("room", &self.room.id).finish_non_exhaustive()
    }
}

impl RoomHandle {
    /// Starts the room's emulator and feeds its frames to `pool`; results go to `events`.
    pub fn start(spec: RoomSpec, pool: Arc<EncodePool>, events: mpsc::Sender<MediaEvent>) -> Self {
        let room = Arc::new(Room {
            id: spec.room.clone(),
            spec,
            emulator: OnceLock::new(),
            encoders: Mutex::new(Encoders::default()),
            queued: AtomicBool::new(false),
            keyframe: Default::default(),
            wanted: Default::default(),
            stopped: AtomicBool::new(false),
            events,
        });
        let watcher = tokio::spawn(watch(room.clone(), pool));
        Self { room, watcher }
    }

    /// The room.
    pub fn room(&self) -> &Arc<Room> {
        &self.room
    }

    /// Sets a player's pad (ports 1..=4). Ignored until the emulator runs.
    pub fn set_input(&self, port: u8, buttons: u16, axes: [i16; 4]) {
        if let Some(e) = self.room.emulator.get() {
            let _ = e.set_input(port, buttons, axes);
        }
    }

    /// Makes the next frame encoded with `codec` a keyframe.
    pub fn request_keyframe(&self, codec: VideoCodec) {
        self.room.keyframe[codec as usize].store(true, Ordering::Relaxed);
    }

    /// Sets which codecs the room's viewers need; the room encodes only those.
    pub fn set_wanted(&self, h264: bool, vp8: bool) {
        self.room.wanted[VideoCodec::H264 as usize].store(h264, Ordering::Relaxed);
        self.room.wanted[VideoCodec::Vp8 as usize].store(vp8, Ordering::Relaxed);
    }
}

impl Drop for RoomHandle {
    fn drop(&mut self) {
        self.room.stopped.store(true, Ordering::Relaxed);
        self.watcher.abort();
    }
}

/// Starts the emulator, has the pool wake the room on every published frame, and reports the
/// emulator's death.
async fn watch(room: Arc<Room>, pool: Arc<EncodePool>) {
    let events = room.events.clone();
    let id = room.id.clone();
    let died = |reason: String| async move {
        let _ = events.send(MediaEvent::Died { room: id, reason }).await;
    };
    let mut cfg = EmulatorConfig::core(&room.spec.core, &room.spec.rom);
    cfg.options = room.spec.options.clone();
    let emu = match tokio::task::spawn_blocking(move || Emulator::spawn(cfg)).await {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => return died(format!("the game could not start: {e}")).await,
        Err(e) => return died(format!("the game could not start: {e}")).await,
    };
    let av = emu.av_info();
    info!(room = %room.id, fps = av.fps, w = av.base_width, h = av.base_height, rate = av.sample_rate, pid = emu.pid(), "emulator running");
    let period = Duration::from_secs_f64(1.0 / av.fps.max(1.0));
    let emu = room.emulator.get_or_init(|| emu);
    let _watch = match pool.watch(emu.event_fd(), room.clone(), period) {
        Ok(w) => w,
        Err(e) => return died(format!("cannot watch the emulator: {e}")).await,
    };
    // Frames published before the watch began.
    pool.submit(room.clone(), Instant::now() + period);
    let mut health = tokio::time::interval(Duration::from_millis(250));
    while !room.stopped.load(Ordering::Relaxed) {
        health.tick().await;
        if let Err(e) = emu.health() {
            room.stopped.store(true, Ordering::Relaxed);
            return died(format!("the game stopped: {e}")).await;
        }
    }
}
