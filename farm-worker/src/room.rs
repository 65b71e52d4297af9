//! Rooms as the driver runs them: each room's emulator child process and the job the encoder
//! pool runs for it.
//!
//! The driver owns every room through [`Rooms`] (one [`RoomHandle`] each); dropping the handle
//! stops the room and, once the pool lets go of its job, kills the emulator. The pool holds
//! only the room's [`RoomJob`]: the emulator's shared memory, the encoders and the flags the
//! handle sets. Frames never leave shared memory until the job converts them: a pool thread
//! reads the room's newest frame in place, runs the conversion stage its encoders ask for once
//! (itself, or by handing the frame to the [`GpuStage`], whose answer wakes the job again),
//! encodes it once per codec the viewers need, and sends the results to the driver.
//!
//! Every way a room can end on its own (the emulator fails to start, dies or stalls, an
//! encoder fails) arrives at the driver as one [`RoomEvent::Ended`]; the engine decides the
//! rest, and the driver stops the room when the engine says so.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use retrofarm_emulator::{AvInfo, Emulator, EmulatorConfig, FrameMeta, GameSave, PixelFormat as EmuFormat, PortInput};
use retrofarm_media::{
    convert_placed, software_encoder, AudioConfig, AudioEncoder, GpuNv12, I420Frame, Picture, PictureFormat,
    PixelFormat, Placement, RgbFrame, VideoCodec, VideoConfig, VideoEncoder,
};
use retrofarm_proto::game::Screen;
use retrofarm_proto::ids::RoomId;
use retrofarm_proto::input::PadState;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::congestion::frame_divisor;
use crate::engine::{Media, RoomStart};
use crate::gpu_stage::{GpuLink, GpuStage, Submit};
use crate::nvenc::Nvenc;
use crate::pool::{EncodePool, Job, Wakeup};
use crate::saves::SaveFile;
use crate::saving::RoomGame;

/// While a room's picture stays the same, every sixth frame is still encoded: viewers keep
/// getting ten frames a second at 60 fps (no "frozen" stream), and rate control keeps its clock.
const MAX_REPEATS: u32 = 5;

/// What every room runs with, from the worker's configuration.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    /// Core options (libretro variables): every room's, each core's, each game's.
    pub options: crate::config::RoomOptions,
    /// The system directory of every room (BIOS files, read-only to the emulator); `None`:
    /// each room's own folder.
    pub bios_dir: Option<PathBuf>,
    /// Video encoder settings.
    pub video: VideoConfig,
    /// Frames identical to the one before are not encoded again (see [`MAX_REPEATS`]).
    pub skip_repeats: bool,
    /// Whole-number upscaling of every frame before encoding (1 = as the core draws it).
    pub scale: u32,
    /// The encoded picture's size, the scaled frame centred on black; `None`: the scaled size.
    pub canvas: Option<(u32, u32)>,
    /// Where each room gets its own folder (`<rooms_dir>/<room>`): the core's save directory
    /// and the battery RAM it starts with. Removed when the room stops.
    pub rooms_dir: PathBuf,
    /// How each emulator process sandboxes itself.
    pub sandbox: retrofarm_emulator::sandbox::Mode,
    /// Address-space limit of each emulator process in MiB.
    pub memory_mib: Option<u64>,
}

/// When a frame passed each stage, CLOCK_MONOTONIC nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamps {
    /// The emulator finished the frame.
    pub emulated: u64,
    /// Converted into the encoders' picture format.
    pub converted: u64,
    /// Encoded.
    pub encoded: u64,
}

/// How one video frame was made, for the driver's histograms.
#[derive(Debug, Clone, Copy)]
pub struct VideoTiming {
    /// The encoder's name (`encoder` label).
    pub encoder: &'static str,
    /// Stage timestamps.
    pub stamps: Stamps,
    /// Time inside the encoder.
    pub encode_time: Duration,
}

/// What rooms report to the driver.
#[derive(Debug)]
pub enum RoomEvent {
    /// The emulator of a starting room runs.
    Started {
        /// The room.
        room: RoomId,
        /// The emulator (boxed: the events that carry media stay small).
        emulator: Box<Emulator>,
    },
    /// Encoded media, for the engine; video comes with its timing.
    Media(Media, Option<VideoTiming>),
    /// The shape the room's picture is to be shown at changed (or is first known).
    Screen {
        /// The room.
        room: RoomId,
        /// Its shape.
        screen: Screen,
    },
    /// The room stopped on its own.
    Ended {
        /// The room.
        room: RoomId,
        /// What happened, for the players.
        reason: String,
    },
}

/// Cumulative counters of one room: its emulator's and its job's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomCounters {
    /// Frames the emulator published.
    pub emulated: u64,
    /// Frames it finished after their deadline.
    pub late: u64,
    /// Frames overwritten in the ring before the job read them.
    pub ring_overrun: u64,
    /// Frames the job skipped because a newer one was ready (the encoders were busy).
    pub encoder_busy: u64,
    /// Nanoseconds the emulator spent in `retro_run`.
    pub emulate_ns: u64,
    /// Frames equal to the one before, left out.
    pub repeated: u64,
    /// Media dropped because the driver's queue was full.
    pub send_queue: u64,
    /// Frames left out of a stream by its frame-rate step (its viewers' links are slow).
    pub rate_skipped: u64,
    /// Frames encoded, by encoder name.
    pub encoded: BTreeMap<&'static str, u64>,
}

/// Counters the job keeps (the emulator keeps its own in shared memory).
#[derive(Debug, Default)]
struct Tally {
    repeated: u64,
    send_queue: u64,
    rate_skipped: u64,
    encoded: BTreeMap<&'static str, u64>,
}

/// What the handle tells the job, and the job's counters.
#[derive(Debug, Default)]
struct Control {
    /// Per codec: the next frame must be a keyframe.
    keyframe: [AtomicBool; 2],
    /// Per codec: some viewer needs it (a room encodes only those).
    wanted: [AtomicBool; 2],
    /// Per codec: the bitrate congestion control asks for; 0 until it asks.
    bitrate: [AtomicU32; 2],
    stopped: AtomicBool,
    tally: Mutex<Tally>,
}

impl Control {
    fn wanted(&self, codec: VideoCodec) -> bool {
        self.wanted[codec as usize].load(Ordering::Relaxed)
    }
}

/// What the job keeps between frames (used by one pool thread at a time).
#[derive(Debug, Default)]
struct Encoders {
    /// One encoder per codec some viewer needs.
    video: Vec<VideoOut>,
    opus: Option<AudioEncoder>,
    i420: I420Frame,
    pcm: Vec<i16>,
    first_ns: Option<u64>,
    last_frame: Option<u64>,
    /// Hash of the newest frame's pixels.
    last_hash: Option<u64>,
    /// Frames left out since the last one encoded.
    repeats: u32,
    /// The frame the GPU stage converts now, with its stamps.
    on_gpu: Option<(FrameMeta, Stamps)>,
    /// Where the GPU stage left the last picture it converted for an encoder that reads it
    /// there (the room's NV12 slot).
    nv12: Option<GpuNv12>,
    /// The GPU stage failed this room: convert on the CPU.
    gpu_off: bool,
    /// NVENC's device was lost under this room: encode on the CPU.
    nvenc_off: bool,
    /// The picture's shape last reported to the engine.
    screen: Option<Screen>,
}

/// One codec's encoder and the rate it follows.
struct VideoOut {
    encoder: Box<dyn VideoEncoder>,
    /// The bitrate it was last set to; 0: the configured one.
    bitrate: u32,
    /// Its frame-rate step: 1 encodes every frame, 2 every other one.
    divisor: u32,
    /// What it spent.
    spent: Spent,
}

/// What an encoder spent, lately.
#[derive(Debug, Default)]
struct Spent {
    /// When the last frame it encoded was shown.
    last_pts: Option<Duration>,
    /// The bits it spent since the window began (a picture's time).
    window: Option<(Duration, u64)>,
    /// Per second over the last whole window.
    bps: Option<u32>,
}

impl std::fmt::Debug for VideoOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoOut").field("encoder", &self.encoder.name()).field("bitrate", &self.bitrate).finish()
    }
}

impl VideoOut {
    fn new(encoder: Box<dyn VideoEncoder>) -> Self {
        Self { encoder, bitrate: 0, divisor: 1, spent: Spent::default() }
    }

    /// Whether its frame-rate step leaves out the frame shown at `pts` (frames come at `fps`).
    fn steps_over(&self, pts: Duration, fps: f64) -> bool {
        let Some(last) = self.spent.last_pts.filter(|_| self.divisor > 1) else { return false };
        pts.saturating_sub(last).as_secs_f64() < (f64::from(self.divisor) - 0.5) / fps
    }
}

impl Spent {
    /// Counts a picture of `bytes` shown at `pts`.
    fn add(&mut self, pts: Duration, bytes: usize) {
        const WINDOW: Duration = Duration::from_secs(1);
        self.last_pts = Some(pts);
        let (start, bits) = self.window.get_or_insert((pts, 0));
        *bits += bytes as u64 * 8;
        let elapsed = pts.saturating_sub(*start);
        if elapsed >= WINDOW {
            self.bps = Some((*bits as f64 / elapsed.as_secs_f64()).min(f64::from(u32::MAX)) as u32);
            self.window = None;
        }
    }
}

/// The pool's part of a room.
pub struct RoomJob {
    id: RoomId,
    emulator: Arc<Emulator>,
    /// The GPU conversion stage, when the worker has one.
    gpu: Option<GpuLink>,
    /// NVENC, when the worker has it.
    nvenc: Option<Arc<Nvenc>>,
    settings: RoomSettings,
    control: Arc<Control>,
    encoders: Mutex<Encoders>,
    queued: AtomicBool,
    events: mpsc::Sender<RoomEvent>,
}

impl std::fmt::Debug for RoomJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomJob").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The shape the encoded picture is to be shown at: the core's aspect for its nominal frame,
/// widened or narrowed by the canvas the frame is placed on (the borders are part of the
/// picture), and the core's rotation.
fn screen_of(av: &AvInfo, scale: u32, canvas: Option<(u32, u32)>) -> Screen {
    let (w, h) = (av.base_width as f32, av.base_height.max(1) as f32);
    let core = Screen::new(av.aspect_ratio, w / h, av.rotation);
    match Placement::new(av.base_width, av.base_height, scale, canvas) {
        // One source pixel is (aspect * h / w) as wide as high; the canvas keeps that shape.
        Ok(p) => Screen::new(core.aspect * h / w * p.width as f32 / p.height as f32, w / h, core.rotation),
        Err(_) => core,
    }
}

/// The media crate's name for an emulator frame's pixel format.
pub fn pixel_format(f: EmuFormat) -> PixelFormat {
    match f {
        EmuFormat::Xrgb8888 => PixelFormat::Xrgb8888,
        EmuFormat::Rgb565 => PixelFormat::Rgb565,
        EmuFormat::Orgb1555 => PixelFormat::Xrgb1555,
    }
}

impl RoomJob {
    fn send(&self, ev: RoomEvent) {
        if self.events.try_send(ev).is_err() {
            self.control.tally.lock().expect("room tally").send_queue += 1;
        }
    }

    fn encode(&self, enc: &mut Encoders) -> Result<(), String> {
        let emu = &self.emulator;
        let screen = screen_of(&emu.av_info(), self.settings.scale, self.settings.canvas);
        if enc.screen != Some(screen) {
            // Sent again on the next frame if the driver's queue is full now.
            if self.events.try_send(RoomEvent::Screen { room: self.id.clone(), screen }).is_ok() {
                enc.screen = Some(screen);
            }
        }
        self.match_encoders(enc)?;
        if enc.video.is_empty() {
            // Nobody watches yet: keep the rings drained, encode nothing.
            enc.last_frame = emu.latest_frame().map(|f| f.meta().number);
            enc.pcm.clear();
            emu.drain_audio(&mut enc.pcm);
            return Ok(());
        }
        if self.gpu_result(enc)? {
            // Still converting the last frame: newer ones wait for the next turn.
            return self.encode_audio(enc);
        }
        if let Some(frame) = emu.latest_frame() {
            let m = *frame.meta();
            if enc.last_frame != Some(m.number) {
                enc.last_frame = Some(m.number);
                if self.settings.skip_repeats && self.is_repeat(frame.data(), &m, enc) && frame.is_intact() {
                    self.control.tally.lock().expect("room tally").repeated += 1;
                    return self.encode_audio(enc);
                }
                // Converted on the GPU when the worker has one, else here. Every encoder can read
                // the I420 picture; one that reads NV12 on the GPU gets the room's slot too.
                let placement = Placement::new(m.width, m.height, self.settings.scale, self.settings.canvas)
                    .map_err(|e| format!("the core's {}x{} frame cannot be placed: {e}", m.width, m.height))?;
                let stamps = Stamps { emulated: m.emulated_at_ns, ..Stamps::default() };
                if let (Some(gpu), false) = (&self.gpu, enc.gpu_off) {
                    let submit = Submit {
                        emulator: self.emulator.clone(),
                        ticket: frame.ticket(),
                        offset: frame.offset(),
                        format: pixel_format(m.format),
                        width: m.width,
                        height: m.height,
                        stride: m.stride as usize,
                        placement,
                        picture: std::mem::take(&mut enc.i420),
                        slot: enc.video.iter().any(|v| v.encoder.input() == PictureFormat::GpuNv12),
                    };
                    match gpu.submit(submit) {
                        Ok(()) => {
                            enc.on_gpu = Some((m, stamps));
                            return self.encode_audio(enc);
                        }
                        Err(back) => {
                            enc.i420 = back.picture;
                            enc.gpu_off = true;
                        }
                    }
                }
                let src = RgbFrame {
                    format: pixel_format(m.format),
                    width: m.width,
                    height: m.height,
                    stride: m.stride as usize,
                    data: frame.data(),
                };
                let converted = if placement.is_identity() {
                    retrofarm_media::convert(&src, &mut enc.i420)
                } else {
                    convert_placed(&src, &placement, &mut enc.i420)
                };
                // The writer may have lapped us while we read the slot: skip a torn frame.
                if converted.is_ok() && frame.is_intact() {
                    enc.nv12 = None;
                    self.encode_converted(enc, &m, stamps)?;
                }
            }
        }
        self.encode_audio(enc)
    }

    /// Takes the GPU stage's answer for the frame it converts, and encodes it. True while the
    /// stage still has the frame.
    fn gpu_result(&self, enc: &mut Encoders) -> Result<bool, String> {
        let (Some(gpu), Some((m, stamps))) = (&self.gpu, enc.on_gpu) else { return Ok(false) };
        let Some(done) = gpu.take() else { return Ok(true) };
        enc.on_gpu = None;
        match done.result {
            Ok(picture) => {
                enc.i420 = picture;
                enc.nv12 = done.nv12;
                // The emulator may have lapped the ring while the GPU read the slot.
                if self.emulator.is_intact(done.ticket) {
                    self.encode_converted(enc, &m, stamps)?;
                }
            }
            Err(e) => {
                warn!(room = %self.id, error = %e, "GPU conversion failed: this room converts on the CPU from now on");
                enc.gpu_off = true;
            }
        }
        Ok(false)
    }

    /// Encodes the picture in `enc.i420` (and `enc.nv12`, when the GPU left it there),
    /// converted from frame `m`.
    fn encode_converted(&self, enc: &mut Encoders, m: &FrameMeta, stamps: Stamps) -> Result<(), String> {
        let converted = retrofarm_emulator::monotonic_ns();
        let t0 = *enc.first_ns.get_or_insert(m.emulated_at_ns);
        let pts = Duration::from_nanos(m.emulated_at_ns.saturating_sub(t0));
        enc.repeats = 0;
        self.encode_video(enc, pts, Stamps { converted, ..stamps })
    }

    /// Keeps one encoder per wanted codec: makes the missing ones, drops the unwanted.
    fn match_encoders(&self, enc: &mut Encoders) -> Result<(), String> {
        enc.video.retain(|v| self.control.wanted(v.encoder.codec()));
        for codec in VideoCodec::ALL {
            if self.control.wanted(codec) && !enc.video.iter().any(|v| v.encoder.codec() == codec) {
                let e = match self.nvenc_encoder(codec, enc.nvenc_off) {
                    Some(e) => e,
                    None => software_encoder(codec, self.settings.video.clone())
                        .map_err(|e| format!("{} encoder: {e}", codec.name()))?,
                };
                enc.video.push(VideoOut::new(e));
            }
        }
        Ok(())
    }

    /// An NVENC encoder for an H264 stream when the worker has NVENC and a session is free.
    fn nvenc_encoder(&self, codec: VideoCodec, off: bool) -> Option<Box<dyn VideoEncoder>> {
        let nvenc = self.nvenc.as_ref().filter(|_| codec == VideoCodec::H264 && !off)?;
        // The picture's size: the core's nominal frame, placed as every frame is.
        let av = self.emulator.av_info();
        let (w, h) = Placement::new(av.base_width, av.base_height, self.settings.scale, self.settings.canvas)
            .map_or((av.base_width, av.base_height), |p| (p.width, p.height));
        match nvenc.encoder(self.settings.video.clone(), w, h) {
            Ok(e) => Some(e),
            Err(why) => {
                info!(room = %self.id, %why, "this room encodes H264 with openh264");
                None
            }
        }
    }

    /// Encodes the converted frame with every encoder, each at the rate congestion control
    /// asks of its codec.
    fn encode_video(&self, enc: &mut Encoders, pts: Duration, stamps: Stamps) -> Result<(), String> {
        let Encoders { video, i420, nvenc_off, nv12, .. } = enc;
        let pixels = u32::try_from(i420.width() * i420.height()).unwrap_or(u32::MAX);
        // The core's frame rate, read once for every encoder's rate and step.
        let fps = self.emulator.av_info().fps.max(1.0);
        let picture = match nv12 {
            Some(nv12) => Picture::Gpu { nv12, i420 },
            None => Picture::I420(i420),
        };
        let mut lost = Vec::new();
        for out in video.iter_mut() {
            let codec = out.encoder.codec();
            let keyframe = self.control.keyframe[codec as usize].swap(false, Ordering::Relaxed);
            if keyframe {
                out.encoder.request_keyframe();
            }
            let name = out.encoder.name();
            let result = self.follow_rate(out, pixels, fps as f32);
            let result = match result {
                Ok(()) if !keyframe && out.steps_over(pts, fps) => {
                    self.control.tally.lock().expect("room tally").rate_skipped += 1;
                    continue;
                }
                Ok(()) => out.encoder.encode(picture, pts),
                Err(e) => Err(e),
            };
            let frame = match result {
                Ok(encoded) => {
                    out.spent.add(pts, encoded.data.len());
                    encoded
                }
                Err(err) if err.is_device_lost() => {
                    // The stream goes on in software from the next frame, with a keyframe.
                    warn!(room = %self.id, encoder = name, error = %err, "encoder device lost: this room encodes on the CPU from now on");
                    *nvenc_off = true;
                    lost.push(codec);
                    continue;
                }
                Err(err) => return Err(format!("{name} encoder: {err}")),
            };
            if frame.data.is_empty() {
                continue;
            }
            let stamps = Stamps { encoded: retrofarm_emulator::monotonic_ns(), ..stamps };
            *self.control.tally.lock().expect("room tally").encoded.entry(name).or_default() += 1;
            let media = Media::Video {
                room: self.id.clone(),
                codec,
                data: Arc::from(frame.data),
                rtp_90k: (pts.as_nanos() * 9 / 100_000) as u64,
                emulated_ns: stamps.emulated,
            };
            let timing = VideoTiming { encoder: name, stamps, encode_time: frame.encode_time };
            self.send(RoomEvent::Media(media, Some(timing)));
        }
        // Lost encoders go; the next frame makes software ones, which start with a keyframe.
        video.retain(|v| !lost.contains(&v.encoder.codec()));
        Ok(())
    }

    /// Gives an encoder the bitrate congestion control last asked of its codec, and the
    /// frame-rate step that bitrate allows for pictures of `pixels` given what the encoder
    /// spends. A rate the encoder refuses is logged and left (the stream goes on at the old
    /// one); a lost device is an error.
    fn follow_rate(&self, out: &mut VideoOut, pixels: u32, fps: f32) -> Result<(), retrofarm_media::VideoError> {
        let bitrate = self.control.bitrate[out.encoder.codec() as usize].load(Ordering::Relaxed);
        if bitrate == 0 {
            return Ok(());
        }
        let divisor = frame_divisor(bitrate, out.spent.bps, pixels, fps, out.divisor);
        if (bitrate, divisor) == (out.bitrate, out.divisor) {
            return Ok(());
        }
        match out.encoder.set_rate(bitrate, fps / divisor as f32) {
            Ok(()) => {
                if divisor != out.divisor {
                    info!(room = %self.id, bitrate, divisor, "frame-rate step: every {divisor}. frame is encoded");
                }
                (out.bitrate, out.divisor) = (bitrate, divisor);
                Ok(())
            }
            Err(e) if e.is_device_lost() => Err(e),
            Err(e) => {
                warn!(room = %self.id, encoder = out.encoder.name(), bitrate, error = %e, "encoder refused a new rate");
                // Not asked again until the rate changes.
                (out.bitrate, out.divisor) = (bitrate, divisor);
                Ok(())
            }
        }
    }

    /// Whether a frame shows exactly what the last one did, and so need not be encoded: no
    /// viewer waits for a keyframe and fewer than [`MAX_REPEATS`] frames in a row were left
    /// out. Remembers its hash and counts it.
    fn is_repeat(&self, pixels: &[u8], m: &retrofarm_emulator::FrameMeta, enc: &mut Encoders) -> bool {
        let shape = (u64::from(m.width) << 32) | u64::from(m.height);
        let hash = xxhash_rust::xxh3::xxh3_64_with_seed(pixels, shape);
        let same = enc.last_hash.replace(hash) == Some(hash);
        let keyframe_wanted = VideoCodec::ALL
            .iter()
            .any(|c| self.control.wanted(*c) && self.control.keyframe[*c as usize].load(Ordering::Relaxed));
        let skip = same && enc.repeats < MAX_REPEATS && !keyframe_wanted;
        enc.repeats += u32::from(skip);
        skip
    }

    /// Encodes the audio the emulator wrote since the last call.
    fn encode_audio(&self, enc: &mut Encoders) -> Result<(), String> {
        enc.pcm.clear();
        if self.emulator.drain_audio(&mut enc.pcm) > 0 {
            let opus = match &mut enc.opus {
                Some(o) => o,
                None => enc.opus.insert(
                    AudioEncoder::new(AudioConfig::new(self.emulator.av_info().sample_rate))
                        .map_err(|e| format!("audio encoder: {e}"))?,
                ),
            };
            opus.push(&enc.pcm).map_err(|e| format!("audio encoder: {e}"))?;
            while let Some(p) = opus.pop() {
                let media = Media::Audio { room: self.id.clone(), data: Arc::from(p.data), rtp_48k: p.timestamp };
                self.send(RoomEvent::Media(media, None));
            }
        }
        Ok(())
    }
}

impl Job for RoomJob {
    fn run(&self) -> bool {
        if self.control.stopped.load(Ordering::Relaxed) {
            return false;
        }
        // Drain before reading: a frame published from here on wakes the pool again.
        self.emulator.clear_event();
        let mut enc = self.encoders.lock().expect("room encoders");
        if let Err(reason) = self.encode(&mut enc) {
            warn!(room = %self.id, %reason, "room encoder failed");
            self.control.stopped.store(true, Ordering::Relaxed);
            // Pool threads are not runtime threads: blocking here is allowed, and the driver
            // must hear of the end.
            let _ = self.events.blocking_send(RoomEvent::Ended { room: self.id.clone(), reason });
            return false;
        }
        // A frame published while we worked gets its own turn, unless the GPU stage has this
        // room's last one: its answer wakes the job.
        let newest = self.emulator.counters().frames_published;
        enc.on_gpu.is_none() && enc.last_frame.is_some_and(|n| newest > n + 1)
    }

    fn queued(&self) -> &AtomicBool {
        &self.queued
    }
}

/// A running room: its job and its place in the pool's wake set (dropped first).
struct Running {
    _wakeup: Wakeup,
    job: Arc<RoomJob>,
}

/// The driver's handle on a room; dropping it stops the room and kills its emulator.
pub struct RoomHandle {
    control: Arc<Control>,
    /// `None` while the emulator starts.
    running: Option<Running>,
    /// The game's name.
    game: String,
    /// The core's file name.
    core: String,
    /// The room's own folder.
    dir: PathBuf,
}

impl std::fmt::Debug for RoomHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomHandle").field("running", &self.running.is_some()).finish_non_exhaustive()
    }
}

/// The emulator settings of a room whose folder is `dir`, running `game` (`rom`) on `core`.
fn emulator_config(
    settings: &RoomSettings,
    dir: &std::path::Path,
    core: &std::path::Path,
    rom: &std::path::Path,
    game: &str,
) -> EmulatorConfig {
    let mut cfg = EmulatorConfig::core(core, rom);
    let core_name = core.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    cfg.options = settings.options.for_room(&core_name, game);
    cfg.port_devices = settings.options.devices_for(&core_name);
    cfg.save_dir = dir.to_owned();
    // The BIOS folder, which the sandbox lets the emulator read; without one, the room's own
    // folder (a core needing a BIOS then ends the room, naming the file it lacks).
    cfg.system_dir = settings.bios_dir.clone().unwrap_or_else(|| dir.to_owned());
    cfg.sandbox = settings.sandbox;
    cfg.memory_mib = settings.memory_mib;
    cfg
}

/// Spawns a room's emulator in its own folder, restoring `restore` (battery RAM through the
/// file `sram`, then the state).
fn start_emulator(
    mut cfg: EmulatorConfig,
    sram: &std::path::Path,
    restore: Option<SaveFile>,
) -> Result<Emulator, String> {
    std::fs::create_dir_all(&cfg.save_dir)
        .map_err(|e| format!("the game could not start: cannot make its folder {}: {e}", cfg.save_dir.display()))?;
    let (state, battery) = restore.map_or((None, None), |r| (r.state, r.sram));
    if let Some(bytes) = &battery {
        std::fs::write(sram, bytes)
            .map_err(|e| format!("the game could not start: cannot write its battery RAM: {e}"))?;
        cfg = cfg.sram_file(sram);
    }
    let emulator = Emulator::spawn(cfg).map_err(|e| format!("the game could not start: {e}"))?;
    if state.is_some() {
        let save = GameSave { state, sram: None };
        emulator
            .load_game(&save, Duration::from_secs(5))
            .map_err(|e| format!("the saved game could not be restored: {e}"))?;
    }
    Ok(emulator)
}

impl RoomHandle {
    fn game_of(&self, room: &RoomId) -> Option<RoomGame> {
        let emulator = self.running.as_ref()?.job.emulator.clone();
        Some(RoomGame { room: room.clone(), game: self.game.clone(), core: self.core.clone(), emulator })
    }

    /// Makes every codec's next frame a keyframe (the picture changed for everyone: a loaded
    /// save, a reset).
    pub fn request_keyframes(&self) {
        for codec in VideoCodec::ALL {
            self.request_keyframe(codec);
        }
    }

    /// Sets a player's pad and pointer (ports 1..=4). Ignored until the emulator runs.
    pub fn set_input(&self, port: u8, pad: PadState) {
        if let Some(r) = &self.running {
            let input = PortInput { buttons: pad.buttons, axes: pad.axes, pointer: pad.pointer };
            let _ = r.job.emulator.set_port(port, input);
        }
    }

    /// Makes the next frame encoded with `codec` a keyframe.
    pub fn request_keyframe(&self, codec: VideoCodec) {
        self.control.keyframe[codec as usize].store(true, Ordering::Relaxed);
    }

    /// Sets the bitrate of the room's `codec` stream (congestion control), from its next frame.
    pub fn set_bitrate(&self, codec: VideoCodec, bps: u32) {
        self.control.bitrate[codec as usize].store(bps, Ordering::Relaxed);
    }

    /// Sets which codecs the room's viewers need; the room encodes only those.
    pub fn set_wanted(&self, codecs: &[VideoCodec]) {
        for c in VideoCodec::ALL {
            self.control.wanted[c as usize].store(codecs.contains(&c), Ordering::Relaxed);
        }
    }

    /// The room's counters; `None` until its emulator runs.
    pub fn counters(&self) -> Option<RoomCounters> {
        let job = &self.running.as_ref()?.job;
        let c = job.emulator.counters();
        let t = self.control.tally.lock().expect("room tally");
        Some(RoomCounters {
            emulated: c.frames_published,
            late: c.frames_late,
            ring_overrun: c.reader.missed,
            encoder_busy: c.reader.skipped,
            emulate_ns: c.emulate_ns_total,
            repeated: t.repeated,
            send_queue: t.send_queue,
            rate_skipped: t.rate_skipped,
            encoded: t.encoded.clone(),
        })
    }
}

impl Drop for RoomHandle {
    fn drop(&mut self) {
        self.control.stopped.store(true, Ordering::Relaxed);
    }
}

/// Every room of the worker, owned by the driver.
#[derive(Debug)]
pub struct Rooms {
    map: HashMap<RoomId, RoomHandle>,
    pool: Arc<EncodePool>,
    gpu: Option<Arc<GpuStage>>,
    nvenc: Option<Arc<Nvenc>>,
    settings: RoomSettings,
    events: mpsc::Sender<RoomEvent>,
}

impl Rooms {
    /// No rooms yet; their jobs will run on `pool`, convert on `gpu` when given, and report
    /// to `events`.
    pub fn new(
        pool: Arc<EncodePool>,
        gpu: Option<Arc<GpuStage>>,
        nvenc: Option<Arc<Nvenc>>,
        settings: RoomSettings,
        events: mpsc::Sender<RoomEvent>,
    ) -> Self {
        Self { map: HashMap::new(), pool, gpu, nvenc, settings, events }
    }

    /// Starts a room's emulator (in the background: [`RoomEvent::Started`] or
    /// [`RoomEvent::Ended`] follows), from `restore` when it resumes: its battery RAM is there
    /// from the first frame, its state is loaded before the room's first frame is encoded.
    pub fn start(&mut self, start: RoomStart, restore: Option<SaveFile>) {
        let RoomStart { room, core, rom, game, .. } = start;
        let dir = self.settings.rooms_dir.join(room.as_str());
        let cfg = emulator_config(&self.settings, &dir, &core, &rom, &game);
        let core_name = core.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let events = self.events.clone();
        let id = room.clone();
        let sram = dir.join("battery.srm");
        tokio::task::spawn_blocking(move || {
            let ev = match start_emulator(cfg, &sram, restore) {
                Ok(emulator) => RoomEvent::Started { room: id, emulator: Box::new(emulator) },
                Err(reason) => RoomEvent::Ended { room: id, reason },
            };
            let _ = events.blocking_send(ev);
        });
        let handle = RoomHandle { control: Arc::default(), running: None, game, core: core_name, dir };
        self.map.insert(room, handle);
    }

    /// Hands a started emulator to its room and the room's job to the pool. An emulator whose
    /// room was stopped meanwhile is dropped (killed). An error is the reason the room ends.
    pub fn started(&mut self, room: RoomId, emulator: Box<Emulator>) -> Result<(), String> {
        let Some(handle) = self.map.get_mut(&room) else { return Ok(()) };
        let av = emulator.av_info();
        info!(%room, fps = av.fps, w = av.base_width, h = av.base_height, rate = av.sample_rate, pid = emulator.pid(), "emulator running");
        let period = Duration::from_secs_f64(1.0 / av.fps.max(1.0));
        let job = Arc::new(RoomJob {
            gpu: self.gpu.as_ref().map(|g| g.link(room.clone())),
            nvenc: self.nvenc.clone(),
            id: room,
            emulator: Arc::from(emulator),
            settings: self.settings.clone(),
            control: handle.control.clone(),
            encoders: Mutex::new(Encoders::default()),
            queued: AtomicBool::new(false),
            events: self.events.clone(),
        });
        let wakeup = self
            .pool
            .wake_on(job.emulator.event_fd(), job.clone(), period)
            .map_err(|e| format!("cannot watch the emulator's frames: {e}"))?;
        // Frames published before the wake-up was registered.
        self.pool.submit(job.clone(), Instant::now() + period);
        handle.running = Some(Running { _wakeup: wakeup, job });
        Ok(())
    }

    /// Stops a room.
    /// Stops a room; returns its game while the emulator still runs (for a last save), which
    /// ends when the last holder drops it. The room's folder is removed.
    pub fn stop(&mut self, room: &RoomId) -> Option<RoomGame> {
        let handle = self.map.remove(room)?;
        let game = handle.game_of(room);
        if let Err(e) = std::fs::remove_dir_all(&handle.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!(%room, dir = %handle.dir.display(), error = %e, "cannot remove the room's folder");
            }
        }
        game
    }

    /// A running room's game, for saving.
    pub fn game(&self, room: &RoomId) -> Option<RoomGame> {
        self.map.get(room)?.game_of(room)
    }

    /// Every running room's game.
    pub fn games(&self) -> Vec<RoomGame> {
        self.map.iter().filter_map(|(id, h)| h.game_of(id)).collect()
    }

    /// A room's handle.
    pub fn get(&self, room: &RoomId) -> Option<&RoomHandle> {
        self.map.get(room)
    }

    /// Counters of every running room.
    pub fn counters(&self) -> impl Iterator<Item = (&RoomId, RoomCounters)> {
        self.map.iter().filter_map(|(id, h)| Some((id, h.counters()?)))
    }

    /// The running rooms' jobs, for a health check off the async threads ([`check_health`]).
    pub fn jobs(&self) -> Vec<Arc<RoomJob>> {
        self.map.values().filter_map(|h| Some(h.running.as_ref()?.job.clone())).collect()
    }

    /// Number of rooms, starting ones included.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Checks that each room's emulator still runs (blocking: reading a dead child's last words
/// takes up to half a second) and reports each one that does not as [`RoomEvent::Ended`].
pub fn check_health(jobs: &[Arc<RoomJob>], events: &mpsc::Sender<RoomEvent>) {
    for job in jobs {
        if job.control.stopped.load(Ordering::Relaxed) {
            continue;
        }
        if let Err(e) = job.emulator.health() {
            job.control.stopped.store(true, Ordering::Relaxed);
            let _ = events
                .blocking_send(RoomEvent::Ended { room: job.id.clone(), reason: format!("the game stopped: {e}") });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_picture_is_shown_at_the_cores_shape_borders_included() {
        let nes = AvInfo {
            base_width: 256,
            base_height: 224,
            max_width: 256,
            max_height: 240,
            aspect_ratio: 4.0 / 3.0,
            rotation: 0,
            fps: 60.0,
            sample_rate: 48_000.0,
            pixel_format: EmuFormat::Xrgb8888,
        };
        let close = |s: Screen, want: f32| (s.aspect - want).abs() < 1e-4;
        assert!(close(screen_of(&nes, 1, None), 4.0 / 3.0));
        assert!(close(screen_of(&nes, 3, None), 4.0 / 3.0));
        // On a 320x240 canvas the borders widen the picture: pixels keep the core's shape.
        assert!(close(screen_of(&nes, 1, Some((320, 240))), 4.0 / 3.0 * 224.0 / 256.0 * 320.0 / 240.0));
        // A core without an aspect of its own: square pixels. A vertical one keeps its turn.
        let square = AvInfo { aspect_ratio: 0.0, rotation: 1, ..nes };
        assert_eq!(screen_of(&square, 1, None), Screen { aspect: 256.0 / 224.0, rotation: 1 });
        assert_eq!(screen_of(&AvInfo { aspect_ratio: f32::NAN, ..nes }, 1, None).aspect, 256.0 / 224.0);
    }

    fn settings(bios_dir: Option<PathBuf>) -> RoomSettings {
        let cfg: crate::config::Config = toml::from_str(
            "[core_options]\nnestopia_audio_type = \"stereo\"\n[core_options.mednafen_psx]\nbeetle_psx_analog_toggle = \"enabled\"\n\
             [game_options.\"Some Disc\"]\nbeetle_psx_analog_toggle = \"disabled\"\n\
             [port_devices.mednafen_psx_libretro]\n1 = \"DualShock\"\n2 = \"DualShock\"\n",
        )
        .unwrap();
        RoomSettings {
            options: cfg.room_options(),
            bios_dir,
            video: VideoConfig::default(),
            skip_repeats: true,
            scale: 1,
            canvas: None,
            rooms_dir: std::env::temp_dir(),
            sandbox: retrofarm_emulator::sandbox::Mode::Auto,
            memory_mib: Some(1024),
        }
    }

    #[test]
    fn a_room_gets_its_core_and_game_options_and_the_bios_folder() {
        let (core, rom) = (Path::new("/cores/mednafen_psx_libretro.so"), Path::new("/games/Some Disc.cue"));
        let cfg = emulator_config(&settings(None), Path::new("/rooms/r1"), core, rom, "Some Disc");
        assert_eq!(cfg.system_dir, PathBuf::from("/rooms/r1"), "no bios_dir: the room's own folder");
        assert_eq!(cfg.save_dir, PathBuf::from("/rooms/r1"));
        let mut options = cfg.options.clone();
        options.sort();
        assert_eq!(
            options,
            vec![
                ("beetle_psx_analog_toggle".to_string(), "disabled".to_string()),
                ("nestopia_audio_type".to_string(), "stereo".to_string())
            ]
        );
        let bios = settings(Some(PathBuf::from("/srv/bios")));
        let cfg = emulator_config(&bios, Path::new("/rooms/r2"), core, rom, "Other Disc");
        assert_eq!((cfg.system_dir, cfg.save_dir), (PathBuf::from("/srv/bios"), PathBuf::from("/rooms/r2")));
        assert!(cfg.options.contains(&("beetle_psx_analog_toggle".to_string(), "enabled".to_string())));
        assert_eq!(cfg.port_devices, [(1, "DualShock".to_string()), (2, "DualShock".to_string())]);
        let nes = emulator_config(&bios, Path::new("/rooms/r3"), Path::new("/c/nestopia_libretro.so"), rom, "Walk");
        assert!(nes.port_devices.is_empty(), "another core's devices are not this one's");
    }

    /// With the real PlayStation core and the emulator binary (built by `cargo build`): a room
    /// whose BIOS folder lacks the BIOS ends with the reason players and the log get.
    #[test]
    fn a_room_without_its_bios_ends_naming_the_file_and_the_folder() {
        let Some(core) = retrofarm_emulator::find_core("mednafen_psx", None) else {
            eprintln!("SKIP: mednafen_psx not fetched (scripts/fetch-cores.sh)");
            return;
        };
        if retrofarm_emulator::find_binary(None).is_err() {
            eprintln!("SKIP: the retrofarm-emulator binary is not built (cargo build --workspace --bins)");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let (bios, games, room) = (tmp.path().join("bios"), tmp.path().join("games"), tmp.path().join("room"));
        for d in [&bios, &games] {
            std::fs::create_dir_all(d).unwrap();
        }
        let rom = games.join("Some Disc.cue");
        std::fs::write(&rom, "FILE \"Some Disc.bin\" BINARY\n  TRACK 01 MODE2/2352\n").unwrap();
        let cfg = emulator_config(&settings(Some(bios.clone())), &room, &core, &rom, "Some Disc");
        let reason = start_emulator(cfg, &room.join("battery.srm"), None).unwrap_err();
        assert!(reason.starts_with("the game could not start: "), "{reason}");
        for needed in ["PlayStation BIOS", "scph5501.bin", &bios.display().to_string(), "bios_dir"] {
            assert!(reason.contains(needed), "the reason names {needed}: {reason}");
        }
    }
}
