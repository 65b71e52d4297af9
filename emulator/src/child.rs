//! The child's main loop: a frame source (a libretro core or the test pattern), a pacer, the
//! shared-memory writer and the control channel. The writer never waits for the reader, and
//! commands are answered between frames.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::args::{ChildArgs, SourceSpec};
use crate::av::AvInfo;
use crate::control::commands::{self, Game};
use crate::control::serve::Server;
use crate::libretro::{Io, MemoryKind, Session, SessionConfig};
use crate::pacing::{Pacer, Tick};
use crate::sandbox;
use crate::script::InputScript;
use crate::shm::frame_ring::VideoInput;
use crate::shm::input::{InputSnapshot, PortInput};
use crate::shm::layout::{Layout, HEADER_LEN};
use crate::shm::{self, WriterShm};
use crate::synthetic::TestPattern;
use crate::sys;

/// The libretro [`Io`] of the child: frames into the ring, audio into the PCM ring (once per
/// frame), input from the input block or from a script.
#[derive(Debug, Default)]
pub struct ShmIo {
    shm: Option<WriterShm>,
    audio: Vec<i16>,
    script: Option<InputScript>,
    frame: u64,
    input: InputSnapshot,
}

impl ShmIo {
    fn shm(&mut self) -> &mut WriterShm {
        self.shm.as_mut().expect("shared memory is attached before the first frame")
    }

    /// Called before each `retro_run` with its 0-based index.
    fn begin_frame(&mut self, frame: u64) {
        self.frame = frame;
        self.audio.clear();
    }

    /// Called after each `retro_run`: audio out, frame published.
    fn end_frame(&mut self, emulated_at_ns: u64, emulate_ns: u64) {
        let audio = std::mem::take(&mut self.audio);
        let shm = self.shm();
        shm.push_audio(&audio);
        shm.publish_frame(emulated_at_ns, emulate_ns);
        self.audio = audio;
    }
}

impl Io for ShmIo {
    fn video(&mut self, frame: VideoInput<'_>) {
        if let Some(shm) = &mut self.shm {
            // Rejections are counted in the header.
            let _ = shm.stage_video(frame);
        }
    }

    fn audio(&mut self, samples: &[i16]) {
        self.audio.extend_from_slice(samples);
    }

    fn poll_input(&mut self) {
        match &mut self.script {
            Some(script) => script.apply(self.frame, &mut self.input),
            None => {
                if let Some(shm) = &mut self.shm {
                    self.input = *shm.poll_input();
                }
            }
        }
    }

    fn input(&self, port: u32) -> PortInput {
        self.input.get(port as usize).copied().unwrap_or_default()
    }
}

/// Something that produces one frame per call.
trait FrameSource: Game {
    fn av_info(&self) -> AvInfo;
    fn io(&mut self) -> &mut ShmIo;
    fn run_frame(&mut self);
    fn take_av_change(&mut self) -> Option<AvInfo>;
    fn shutdown_requested(&self) -> bool;
}

impl FrameSource for Session<ShmIo> {
    fn av_info(&self) -> AvInfo {
        Session::av_info(self)
    }
    fn io(&mut self) -> &mut ShmIo {
        Session::io(self)
    }
    fn run_frame(&mut self) {
        self.run();
    }
    fn take_av_change(&mut self) -> Option<AvInfo> {
        Session::take_av_change(self)
    }
    fn shutdown_requested(&self) -> bool {
        Session::shutdown_requested(self)
    }
}

impl Game for Session<ShmIo> {
    fn save_state(&mut self) -> Option<Vec<u8>> {
        self.serialize()
    }
    fn load_state(&mut self, data: &[u8]) -> bool {
        self.unserialize(data)
    }
    fn save_ram(&mut self) -> Option<&mut [u8]> {
        self.memory_mut(MemoryKind::SaveRam)
    }
    fn reset(&mut self) {
        Session::reset(self);
    }
}

struct PatternSource {
    pattern: TestPattern,
    io: ShmIo,
    n: u64,
    pixels: Vec<u8>,
    samples: Vec<i16>,
}

impl FrameSource for PatternSource {
    fn av_info(&self) -> AvInfo {
        self.pattern.av_info()
    }
    fn io(&mut self) -> &mut ShmIo {
        &mut self.io
    }
    fn run_frame(&mut self) {
        self.io.poll_input();
        let buttons = self.io.input(0).buttons;
        self.pattern.render(self.n, buttons, &mut self.pixels);
        self.pattern.audio(self.n, &mut self.samples);
        let p = &self.pattern;
        let pitch = p.width as usize * p.format.bytes_per_pixel();
        self.io.video(VideoInput::Pixels {
            data: &self.pixels,
            width: p.width,
            height: p.height,
            pitch,
            format: p.format,
        });
        let samples = std::mem::take(&mut self.samples);
        self.io.audio(&samples);
        self.samples = samples;
        self.n += 1;
    }
    fn take_av_change(&mut self) -> Option<AvInfo> {
        None
    }
    fn shutdown_requested(&self) -> bool {
        false
    }
}

/// The pattern's state is its frame counter (8 bytes LE), so the control channel can be
/// tested without a core; it has no battery RAM.
impl Game for PatternSource {
    fn save_state(&mut self) -> Option<Vec<u8>> {
        Some(self.n.to_le_bytes().to_vec())
    }
    fn load_state(&mut self, data: &[u8]) -> bool {
        match <[u8; 8]>::try_from(data) {
            Ok(b) => {
                self.n = u64::from_le_bytes(b);
                true
            }
            Err(_) => false,
        }
    }
    fn save_ram(&mut self) -> Option<&mut [u8]> {
        None
    }
    fn reset(&mut self) {
        self.n = 0;
    }
}

/// How a run ended, with what it measured.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Summary {
    /// `retro_run` calls.
    pub runs: u64,
    /// Frames published.
    pub frames: u64,
    /// Frames that started late.
    pub late: u64,
    /// Re-anchors.
    pub reanchors: u64,
    /// Mean ns per `retro_run`.
    pub mean_emulate_ns: u64,
    /// Wall time of the loop.
    pub wall: Duration,
    /// CPU time the process spent in the loop (user + system).
    pub cpu: Duration,
    /// The av info at the end.
    pub av: AvInfo,
    /// The core asked to shut down.
    pub core_shutdown: bool,
}

fn private_fds() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    let shm = sys::memfd_create("retrofarm-standalone")?;
    std::fs::File::from(shm.try_clone()?).set_len(HEADER_LEN)?;
    Ok((shm, sys::eventfd()?))
}

/// Runs the child: load, announce, loop until the frame limit, the core's shutdown or the
/// parent's death. Startup errors are also left in the shared header for the parent.
/// Returns None when it only listed the core's options.
pub fn run(args: ChildArgs) -> anyhow::Result<Option<Summary>> {
    let (shm_fd, event_fd) = match (args.shm_fd, args.event_fd) {
        (Some(s), Some(e)) => (
            sys::adopt_inherited_fd(s).with_context(|| format!("shared memory fd {s}"))?,
            sys::adopt_inherited_fd(e).with_context(|| format!("eventfd {e}"))?,
        ),
        _ => private_fds()?,
    };
    let control = match args.control_fd {
        Some(c) => {
            let fd = sys::adopt_inherited_fd(c).with_context(|| format!("control socket fd {c}"))?;
            Some(Server::new(fd).with_context(|| format!("control socket fd {c}"))?)
        }
        None => None,
    };
    if let Err(e) = sandbox(&args) {
        let msg = format!("{e:#}");
        let _ = shm::report_failure(shm_fd.as_fd(), &msg);
        return Err(e);
    }
    let script = match &args.input_script {
        Some(text) => Some(InputScript::parse(text).map_err(|e| anyhow::anyhow!("input script: {e}"))?),
        None => None,
    };
    let io = ShmIo { script, ..ShmIo::default() };
    let started = match &args.source {
        SourceSpec::Core { core, rom } => {
            let config = SessionConfig {
                system_dir: args.system_dir.clone(),
                save_dir: args.save_dir.clone(),
                options: args.options.clone(),
                port_devices: args.port_devices.clone(),
            };
            // Our error messages already include their causes: flatten them.
            match Session::load(core, rom, &config, io) {
                Ok(s) => {
                    if args.list_options {
                        for o in s.options() {
                            println!("{} = {}  (allowed: {})", o.key, o.default, o.values.join("|"));
                        }
                        for (i, devices) in s.port_devices().iter().enumerate() {
                            let names: Vec<String> = devices.iter().map(|d| format!("{} ({})", d.name, d.id)).collect();
                            println!("port device {}: {}", i + 1, names.join(", "));
                        }
                        println!("av: {:?}", s.av_info());
                        return Ok(None);
                    }
                    Ok(Box::new(s) as Box<dyn FrameSource>)
                }
                Err(e) => Err(anyhow::anyhow!("{e}")),
            }
        }
        SourceSpec::TestPattern(p) => {
            Ok(Box::new(PatternSource { pattern: *p, io, n: 0, pixels: Vec::new(), samples: Vec::new() })
                as Box<dyn FrameSource>)
        }
    };
    let mut source = match started {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("{e:#}");
            let _ = shm::report_failure(shm_fd.as_fd(), &msg);
            return Err(e);
        }
    };
    // After retro_load_game, before the first retro_run: what a cartridge's battery kept.
    if let Some(path) = &args.sram {
        match commands::load_save_ram_file(source.as_mut(), path) {
            Ok(Some(n)) => tracing::debug!(bytes = n, path = %path.display(), "battery save loaded"),
            Ok(None) => tracing::debug!(path = %path.display(), "no battery save yet"),
            Err(msg) => {
                let _ = shm::report_failure(shm_fd.as_fd(), &msg);
                bail!(msg);
            }
        }
    }
    let av = source.av_info();
    let layout = match Layout::new(args.frame_slots, av.max_frame_bytes(), args.pcm_capacity) {
        Ok(l) => l,
        Err(e) => {
            let _ = shm::report_failure(shm_fd.as_fd(), &e.to_string());
            bail!(e);
        }
    };
    let total_len = layout.total_len;
    let writer = WriterShm::create(shm_fd, event_fd, layout, &av).context("setting up shared memory")?;
    if args.sandbox != sandbox::Mode::Off {
        sandbox::limit_file_size(total_len).context("limiting file sizes")?;
    }
    source.io().shm = Some(writer);
    run_loop(source.as_mut(), &args, control).map(Some)
}

/// Sandboxes this process before the core is loaded (its constructors run inside), and says
/// on stderr what was enforced.
fn sandbox(args: &ChildArgs) -> anyhow::Result<()> {
    let mut owned: Vec<std::path::PathBuf> = Vec::new();
    if let SourceSpec::Core { core, rom } = &args.source {
        owned.extend([core.clone(), rom.clone()]);
        // A disc image's other files (a cue's tracks, an m3u's discs).
        owned.extend(crate::libretro::content::companion_files(rom));
    }
    owned.extend(args.sram.clone());
    let files: Vec<&std::path::Path> = owned.iter().map(std::path::PathBuf::as_path).collect();
    let memory = args.memory_mib.map(|m| m << 20);
    let policy = sandbox::Policy::for_room(args.sandbox, &files, &args.system_dir, &args.save_dir, memory);
    let report = sandbox::apply(&policy).context("sandboxing the emulator")?;
    if args.sandbox != sandbox::Mode::Off {
        if report.missing.is_empty() {
            eprintln!("retrofarm-emulator: sandbox: {report}");
        } else {
            eprintln!("retrofarm-emulator: warning: sandbox incomplete: {report}");
        }
    }
    Ok(())
}

fn run_loop(source: &mut dyn FrameSource, args: &ChildArgs, mut control: Option<Server>) -> anyhow::Result<Summary> {
    let mut av = source.av_info();
    let start = Instant::now();
    let cpu_start = sys::process_cpu_time();
    let mut pacer = Pacer::with_mode(args.pacing, av.fps, start);
    let parent = std::os::unix::process::parent_id();
    let standalone = args.shm_fd.is_none();
    let mut runs = 0u64;
    let mut emulate_total = 0u64;
    let mut core_shutdown = false;
    loop {
        let now_ns = sys::monotonic_ns();
        source.io().shm().heartbeat(now_ns);
        if args.frame_limit.is_some_and(|limit| runs >= limit) {
            break;
        }
        if !standalone && std::os::unix::process::parent_id() != parent {
            bail!("parent process exited");
        }
        // Between frames: answer the parent's commands.
        if let Some(c) = &mut control {
            c.serve(|request| commands::answer(&mut *source, request));
        }
        match pacer.poll(Instant::now()) {
            Tick::WaitUntil(t) => {
                // Short sleeps keep the heartbeat fresh even at low frame rates; a command
                // from the parent ends the sleep early.
                let d = t.saturating_duration_since(Instant::now()).min(Duration::from_millis(50));
                match &control {
                    Some(c) => c.wait(d),
                    None => std::thread::sleep(d),
                }
            }
            Tick::Run { late, reanchored } => {
                source.io().begin_frame(runs);
                let t0 = sys::monotonic_ns();
                source.run_frame();
                let t1 = sys::monotonic_ns();
                let emulate_ns = t1 - t0;
                let io = source.io();
                io.end_frame(t1, emulate_ns);
                io.shm().count_run(emulate_ns, late, reanchored);
                runs += 1;
                emulate_total += emulate_ns;
                if let Some(new_av) = source.take_av_change() {
                    source.io().shm().set_av(&new_av);
                    if new_av.fps != av.fps {
                        pacer.set_fps(new_av.fps);
                    }
                    av = new_av;
                }
                if source.shutdown_requested() {
                    core_shutdown = true;
                    break;
                }
            }
        }
    }
    let wall = start.elapsed();
    let cpu = sys::process_cpu_time().saturating_sub(cpu_start);
    let shm = source.io().shm();
    shm.finish();
    let stats = pacer.stats();
    Ok(Summary {
        runs,
        frames: shm.frames_published(),
        late: stats.late,
        reanchors: stats.reanchors,
        mean_emulate_ns: emulate_total.checked_div(runs).unwrap_or(0),
        wall,
        cpu,
        av,
        core_shutdown,
    })
}
