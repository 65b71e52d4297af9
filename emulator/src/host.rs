//! The parent's API: spawn an emulator child for a room and talk to it through shared memory.
//!
//! ```no_run
//! use retrofarm_emulator::{buttons, Emulator, EmulatorConfig};
//! # fn main() -> Result<(), retrofarm_emulator::Error> {
//! let emu = Emulator::spawn(EmulatorConfig::core("mgba_libretro.so", "game.gba"))?;
//! println!("{:?}", emu.av_info());
//! emu.set_input(1, buttons::START, [0; 4])?;
//! while emu.wait_frame(std::time::Duration::from_secs(1))? {
//!     while let Some(frame) = emu.next_frame() {
//!         let pixels = frame.data(); // borrowed from shared memory, no copy
//!         let _ = pixels;
//!         if !frame.is_intact() { /* the writer lapped us: discard */ }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Saving and loading go through the control channel ([`crate::control`]):
//!
//! ```no_run
//! # use retrofarm_emulator::{Emulator, EmulatorConfig};
//! # use std::time::Duration;
//! # fn main() -> Result<(), retrofarm_emulator::Error> {
//! let emu = Emulator::spawn(EmulatorConfig::core("mgba_libretro.so", "game.gba").sram_file("game.srm"))?;
//! let save = emu.save_game(Duration::from_secs(2))?; // state + battery RAM
//! emu.load_game(&save, Duration::from_secs(2))?;
//! emu.reset(Duration::from_secs(2))?;
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::args::{ChildArgs, SourceSpec};
use crate::av::AvInfo;
use crate::control::client::{CallError, Client};
use crate::control::{GameSave, Reply, Request, WireError, MAX_FRAME_LEN};
use crate::pacing::PacingMode;
use crate::sandbox::{Mode, DEFAULT_MEMORY_MIB};
use crate::script::InputScript;
use crate::shm::frame_ring::{Frame, FrameTicket};
use crate::shm::input::PortInput;
use crate::shm::layout::{Layout, WriterState, HEADER_LEN, MAGIC, MAX_PORTS, VERSION};
use crate::shm::region::Region;
use crate::shm::{self, AttachError, Counters, ReaderShm};
use crate::synthetic::TestPattern;
use crate::sys;

/// Environment variable naming the `retrofarm-emulator` binary to spawn.
pub const BIN_ENV: &str = "RETROFARM_EMULATOR_BIN";
/// File name of the child binary.
pub const BIN_NAME: &str = "retrofarm-emulator";

/// How to start an emulator child.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// What to run.
    pub source: SourceSpec,
    /// GET_SYSTEM_DIRECTORY for the core (BIOS files).
    pub system_dir: PathBuf,
    /// GET_SAVE_DIRECTORY for the core (battery saves).
    pub save_dir: PathBuf,
    /// Paced at the core's rate, or as fast as possible.
    pub pacing: PacingMode,
    /// Stop after this many frames.
    pub frame_limit: Option<u64>,
    /// Frame ring slots (default 8).
    pub frame_slots: u32,
    /// PCM ring capacity in stereo frames, a power of two (default 65536: ~1.4 s at 48 kHz).
    pub pcm_capacity: u64,
    /// Scripted input replayed by the child instead of the input block.
    pub input_script: Option<InputScript>,
    /// Core option overrides (key, value).
    pub options: Vec<(String, String)>,
    /// Devices other than the RetroPad by player port (1..=4), as the core names them.
    pub port_devices: Vec<(u8, String)>,
    /// The child binary; else `$RETROFARM_EMULATOR_BIN`, else next to the current executable.
    pub binary: Option<PathBuf>,
    /// How long the child may take to load the core and game.
    pub startup_timeout: Duration,
    /// How old the child's heartbeat may get before it counts as hung.
    pub stall_timeout: Duration,
    /// Battery save loaded into the game's save RAM before its first frame. A missing file is a
    /// first start; a file larger than the game's battery RAM fails the start-up; a shorter one
    /// fills its start (see [`crate::control::commands::copy_save_ram`]).
    pub sram: Option<PathBuf>,
    /// How the child sandboxes itself (default [`Mode::Auto`]; docs/sandbox.md).
    pub sandbox: Mode,
    /// The child's address-space limit in MiB (default [`DEFAULT_MEMORY_MIB`]; None = none).
    pub memory_mib: Option<u64>,
}

impl EmulatorConfig {
    /// Runs `rom` on the libretro core at `core`, paced, with defaults.
    pub fn core(core: impl Into<PathBuf>, rom: impl Into<PathBuf>) -> Self {
        Self::with_source(SourceSpec::Core { core: core.into(), rom: rom.into() })
    }

    /// Runs the built-in test pattern.
    pub fn test_pattern(pattern: TestPattern) -> Self {
        Self::with_source(SourceSpec::TestPattern(pattern))
    }

    fn with_source(source: SourceSpec) -> Self {
        Self {
            source,
            system_dir: std::env::temp_dir(),
            save_dir: std::env::temp_dir(),
            pacing: PacingMode::Paced,
            frame_limit: None,
            frame_slots: 8,
            pcm_capacity: 1 << 16,
            input_script: None,
            options: Vec::new(),
            port_devices: Vec::new(),
            binary: None,
            startup_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(2),
            sram: None,
            sandbox: Mode::Auto,
            memory_mib: Some(DEFAULT_MEMORY_MIB),
        }
    }

    /// Sets paced/unpaced.
    pub fn pacing(mut self, pacing: PacingMode) -> Self {
        self.pacing = pacing;
        self
    }

    /// Stops the child after `frames` frames.
    pub fn frame_limit(mut self, frames: u64) -> Self {
        self.frame_limit = Some(frames);
        self
    }

    /// Sets the number of frame slots.
    pub fn frame_slots(mut self, slots: u32) -> Self {
        self.frame_slots = slots;
        self
    }

    /// Replays `script` instead of reading the input block.
    pub fn input_script(mut self, script: InputScript) -> Self {
        self.input_script = Some(script);
        self
    }

    /// Uses this child binary.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Loads the battery save at `path` before the first frame (if the file exists). Nothing
    /// is written back to it: save with [`Emulator::save_game`] and store the bytes.
    pub fn sram_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.sram = Some(path.into());
        self
    }
}

/// What can go wrong with an emulator child.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The child binary was not found.
    #[error("emulator binary '{BIN_NAME}' not found (set {BIN_ENV}); looked at: {searched:?}")]
    BinaryNotFound {
        /// Paths tried.
        searched: Vec<PathBuf>,
    },
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The child could not be started.
    #[error("cannot start {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The child failed while loading the core or the game.
    #[error("emulator failed to start: {message}{}", stderr_suffix(.stderr))]
    Startup {
        /// What the child reported (or how it died).
        message: String,
        /// The exit status, once known.
        status: Option<ExitStatus>,
        /// The last lines of its stderr.
        stderr: String,
    },
    /// The child neither started nor failed in time.
    #[error("emulator did not start within {after:?}{}", stderr_suffix(.stderr))]
    StartupTimeout {
        /// The timeout.
        after: Duration,
        /// The last lines of its stderr.
        stderr: String,
    },
    /// The child's shared memory was unusable.
    #[error(transparent)]
    Attach(#[from] AttachError),
    /// The child is gone.
    #[error("emulator process {pid} died: {status}{}{}", .message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default(), stderr_suffix(.stderr))]
    ChildExited {
        /// Its pid.
        pid: u32,
        /// How it ended.
        status: ExitStatus,
        /// The message it left in shared memory, if any.
        message: Option<String>,
        /// The last lines of its stderr.
        stderr: String,
    },
    /// The child is alive but has not advanced its heartbeat.
    #[error("emulator process {pid} is hung: no heartbeat for {since:?}")]
    Stalled {
        /// Its pid.
        pid: u32,
        /// Age of the last heartbeat.
        since: Duration,
    },
    /// The child wrote nonsense where the header's fixed fields or its clock live: a broken
    /// or hostile core scribbling over the shared memory.
    #[error("emulator process {pid} corrupted its shared memory ({what}); the room must end")]
    Corrupt {
        /// Its pid.
        pid: u32,
        /// What was found broken.
        what: &'static str,
    },
    /// Ports are 1..=4.
    #[error("input port {0} outside 1..=4")]
    InvalidPort(u8),
    /// The child did not answer a command in time.
    #[error(
        "emulator process {pid} did not answer '{command}' within {after:?}: it is busy or hung \
         (check health(); restart the room if it stays silent)"
    )]
    CommandTimeout {
        /// Its pid.
        pid: u32,
        /// The command ("save", "load", "reset").
        command: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The child could not carry out a command (e.g. it refused a saved state); the game runs
    /// on as before. The message is the child's reason.
    #[error("{reason}")]
    CommandFailed {
        /// The command ("save", "load", "reset").
        command: &'static str,
        /// Why, in words for the player or operator.
        reason: String,
    },
    /// A save too large for one control message.
    #[error(
        "a control message of {len} bytes exceeds the {MAX_FRAME_LEN}-byte (64 MiB) limit: this save cannot be sent"
    )]
    MessageTooLarge {
        /// Bytes it would take.
        len: u64,
    },
    /// The control channel cannot be used (the child finished, closed it, or answered nonsense).
    #[error("control channel to emulator process {pid}: {detail}")]
    Control {
        /// Its pid.
        pid: u32,
        /// What happened and what to do.
        detail: String,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("; stderr:\n{}", stderr.trim_end())
    }
}

/// The writer's condition when it is not an error.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Producing frames.
    Running,
    /// Stopped on purpose (frame limit, core shutdown); remaining frames can still be read.
    Finished,
}

/// Looks for the child binary: `explicit`, then `$RETROFARM_EMULATOR_BIN`, then next to the
/// current executable, then in its parent directory (test binaries live in target/*/deps).
pub fn find_binary(explicit: Option<&Path>) -> Result<PathBuf, Error> {
    let mut searched = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = explicit {
        candidates.push(p.to_owned());
    } else if let Some(p) = std::env::var_os(BIN_ENV).filter(|p| !p.is_empty()) {
        candidates.push(PathBuf::from(p));
    } else if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join(BIN_NAME));
            if let Some(up) = dir.parent() {
                candidates.push(up.join(BIN_NAME));
            }
        }
    }
    for c in candidates {
        if c.is_file() {
            return Ok(c);
        }
        searched.push(c);
    }
    Err(Error::BinaryNotFound { searched })
}

/// The last lines of the child's stderr (and stdout), collected by a thread.
#[derive(Debug, Default)]
struct StderrTail {
    lines: Mutex<VecDeque<String>>,
    done: AtomicBool,
}

const STDERR_LINES: usize = 40;
/// Longer lines are cut here: a child writing without newlines costs the worker no memory.
const STDERR_LINE_MAX: usize = 1024;

impl StderrTail {
    /// Reads the child's output to its end, keeping the last lines and logging each (the
    /// child's warnings at warn level, the rest at debug). Memory stays bounded whatever the
    /// child writes; a child that floods only slows itself (its pipe fills).
    fn collect(&self, out: impl std::io::Read, pid: u32) {
        let mut reader = BufReader::with_capacity(16 << 10, out);
        let mut line = Vec::with_capacity(STDERR_LINE_MAX);
        loop {
            line.clear();
            match read_line_capped(&mut reader, &mut line, STDERR_LINE_MAX) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            if text.starts_with("retrofarm-emulator: warning:") {
                tracing::warn!(target: "retrofarm_emulator::child", pid, "{text}");
            } else {
                tracing::debug!(target: "retrofarm_emulator::child", pid, "{text}");
            }
            let mut l = self.lines.lock().unwrap_or_else(|e| e.into_inner());
            if l.len() == STDERR_LINES {
                l.pop_front();
            }
            l.push_back(text.to_owned());
        }
        self.done.store(true, Ordering::Release);
    }

    fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// Waits (briefly) for the child's stderr to close so the tail is complete.
    fn settle(&self, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        while !self.done.load(Ordering::Acquire) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.text()
    }
}

/// Reads one line into `line`, keeping at most `max` bytes of it and skipping the rest.
/// Returns the bytes consumed (0 at the end).
fn read_line_capped(r: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(consumed);
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        r.consume(n);
        consumed += n;
        if done {
            return Ok(consumed);
        }
    }
}

#[derive(Debug)]
struct ChildSlot {
    child: Child,
    status: Option<ExitStatus>,
}

impl ChildSlot {
    fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }
}

/// A running emulator child and its shared memory. Dropping it kills the child.
#[derive(Debug)]
pub struct Emulator {
    shm: ReaderShm,
    memfd: OwnedFd,
    event: OwnedFd,
    child: Mutex<ChildSlot>,
    pid: u32,
    stderr: Arc<StderrTail>,
    stall_timeout: Duration,
    last_av: Mutex<AvInfo>,
    control: Mutex<Client>,
}

impl Emulator {
    /// Creates the shared memory, eventfd and control socket, starts the child with them
    /// inherited, and waits until it has loaded the game and published its av info.
    pub fn spawn(config: EmulatorConfig) -> Result<Self, Error> {
        let binary = find_binary(config.binary.as_deref())?;
        let io = |context| move |source| Error::Io { context, source };
        let memfd = sys::memfd_create("retrofarm-room").map_err(io("memfd_create"))?;
        std::fs::File::from(memfd.try_clone().map_err(io("dup memfd"))?)
            .set_len(HEADER_LEN)
            .map_err(io("sizing shared memory"))?;
        // The child may grow the file but never shrink it under our mappings.
        sys::seal_shrink(memfd.as_fd()).map_err(io("sealing shared memory"))?;
        let event = sys::eventfd().map_err(io("eventfd"))?;
        let header = Region::map(memfd.as_fd(), HEADER_LEN).map_err(io("mapping shared memory header"))?;
        // socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC): only this child inherits its end.
        let (control, child_control) = UnixStream::pair().map_err(io("socketpair for the control channel"))?;
        let control = Client::new(control).map_err(io("setting up the control channel"))?;

        let mut args = ChildArgs::new(config.source.clone());
        args.shm_fd = Some(memfd.as_raw_fd());
        args.event_fd = Some(event.as_raw_fd());
        args.control_fd = Some(child_control.as_raw_fd());
        args.sram = config.sram.clone();
        args.system_dir = config.system_dir.clone();
        args.save_dir = config.save_dir.clone();
        args.pacing = config.pacing;
        args.frame_limit = config.frame_limit;
        args.frame_slots = config.frame_slots;
        args.pcm_capacity = config.pcm_capacity;
        args.input_script = config.input_script.as_ref().map(InputScript::to_text);
        args.options = config.options.clone();
        args.port_devices = config.port_devices.clone();
        args.sandbox = config.sandbox;
        args.memory_mib = config.memory_mib;

        let (out_r, out_w) = std::io::pipe().map_err(io("pipe"))?;
        let out_w2 = out_w.try_clone().map_err(io("pipe"))?;
        let mut cmd = Command::new(&binary);
        cmd.args(args.to_args()).stdin(Stdio::null()).stdout(out_w2).stderr(out_w);
        sys::keep_across_exec(&mut cmd, vec![memfd.as_raw_fd(), event.as_raw_fd(), child_control.as_raw_fd()]);
        let child = cmd.spawn().map_err(|source| Error::Spawn { binary: binary.clone(), source })?;
        drop(cmd); // closes our copies of the pipe's write end
        drop(child_control); // the child's alone now: its death closes the channel
        let pid = child.id();
        let stderr = Arc::new(StderrTail::default());
        {
            let tail = stderr.clone();
            std::thread::Builder::new()
                .name(format!("emu-{pid}-stderr"))
                .spawn(move || tail.collect(out_r, pid))
                .map_err(io("spawning stderr reader"))?;
        }
        let mut slot = ChildSlot { child, status: None };

        let deadline = Instant::now() + config.startup_timeout;
        loop {
            match shm::read_state(header.header()) {
                Some(WriterState::Running | WriterState::Finished) => break,
                Some(WriterState::Failed) => {
                    let message = shm::read_error(header.header()).unwrap_or_else(|| "unknown error".into());
                    let status = wait_briefly(&mut slot, Duration::from_secs(2));
                    return Err(Error::Startup { message, status, stderr: stderr.settle(Duration::from_secs(1)) });
                }
                Some(WriterState::Starting) | None => {}
            }
            if let Some(status) = slot.try_wait().map_err(io("waiting for child"))? {
                let message = shm::read_error(header.header()).unwrap_or_else(|| format!("child exited: {status}"));
                return Err(Error::Startup {
                    message,
                    status: Some(status),
                    stderr: stderr.settle(Duration::from_secs(1)),
                });
            }
            if Instant::now() >= deadline {
                let _ = slot.child.kill();
                let _ = slot.child.wait();
                return Err(Error::StartupTimeout {
                    after: config.startup_timeout,
                    stderr: stderr.settle(Duration::from_secs(1)),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let shm = match ReaderShm::attach(memfd.as_fd(), &header) {
            Ok(s) => s,
            Err(e) => {
                let _ = slot.child.kill();
                let _ = slot.child.wait();
                return Err(e.into());
            }
        };
        drop(header);
        let av = shm.av_info().ok_or(Error::Attach(AttachError::NoAvInfo))?;
        Ok(Self {
            shm,
            memfd,
            event,
            child: Mutex::new(slot),
            pid,
            stderr,
            stall_timeout: config.stall_timeout,
            last_av: Mutex::new(av),
            control: Mutex::new(control),
        })
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The core's current av info (exact fps, geometry, sample rate, pixel format).
    pub fn av_info(&self) -> AvInfo {
        let mut last = self.last_av.lock().unwrap_or_else(|e| e.into_inner());
        // A writer that died mid-update leaves the seqlock odd: keep the last good value.
        if let Some(av) = self.shm.av_info() {
            *last = av;
        }
        *last
    }

    /// Sets the controls of `player` (1..=4): RetroPad bitmask ([`crate::buttons`]) and axes
    /// (left x, left y, right x, right y), the pointer at rest.
    pub fn set_input(&self, player: u8, buttons: u16, axes: [i16; 4]) -> Result<(), Error> {
        self.set_port(player, PortInput { buttons, axes, ..PortInput::default() })
    }

    /// Sets everything `player` (1..=4) controls at once. The child sees it at its next
    /// `retro_input_poll`.
    pub fn set_port(&self, player: u8, input: PortInput) -> Result<(), Error> {
        if !(1..=MAX_PORTS as u8).contains(&player) {
            return Err(Error::InvalidPort(player));
        }
        self.shm.set_input(usize::from(player - 1), input);
        Ok(())
    }

    /// The oldest unread frame still in the ring, borrowed without copying. Frames come in
    /// order; frames the writer overwrote before we got to them are skipped and counted.
    pub fn next_frame(&self) -> Option<Frame<'_>> {
        self.shm.next_frame()
    }

    /// The newest frame, skipping (and counting) older unread ones.
    pub fn latest_frame(&self) -> Option<Frame<'_>> {
        self.shm.latest_frame()
    }

    /// Whether a frame read earlier (see [`Frame::ticket`]) is still untouched in the ring.
    pub fn is_intact(&self, ticket: FrameTicket) -> bool {
        self.shm.is_intact(ticket)
    }

    /// Appends new audio (interleaved i16 stereo at `av_info().sample_rate`) to `out`; returns
    /// the number of stereo frames appended.
    pub fn drain_audio(&self, out: &mut Vec<i16>) -> usize {
        self.shm.drain_audio(out)
    }

    /// Frames, drops, late frames, audio and heartbeat counters.
    pub fn counters(&self) -> Counters {
        self.shm.counters()
    }

    /// The eventfd the child signals once per published frame (for `tokio::io::unix::AsyncFd`);
    /// read it with [`Self::clear_event`].
    pub fn event_fd(&self) -> BorrowedFd<'_> {
        self.event.as_fd()
    }

    /// Resets the eventfd; returns how many frames were signalled since the last call.
    pub fn clear_event(&self) -> u64 {
        sys::eventfd_drain(self.event.as_fd()).unwrap_or(0)
    }

    /// The shared memory file (for importing the frame ring into a GPU API).
    pub fn shm_fd(&self) -> BorrowedFd<'_> {
        self.memfd.as_fd()
    }

    /// The shared memory layout.
    pub fn layout(&self) -> &Layout {
        self.shm.layout()
    }

    /// Base address and length of the parent's mapping of the shared memory.
    pub fn mapping(&self) -> (*const u8, usize) {
        (self.shm.region().as_ptr(), self.shm.region().len())
    }

    /// Waits up to `timeout` for an unread frame. Ok(false) on timeout; an error when the
    /// child is dead or hung and no unread frame is left.
    pub fn wait_frame(&self, timeout: Duration) -> Result<bool, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.shm.has_unread_frames() {
                self.clear_event();
                return Ok(true);
            }
            if self.health()? == Health::Finished {
                return Ok(false);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let slice = (deadline - now).min(Duration::from_millis(100));
            sys::poll_readable(self.event.as_fd(), Some(slice))
                .map_err(|source| Error::Io { context: "poll eventfd", source })?;
        }
    }

    /// Ok while the child runs (or finished on purpose); an error naming the cause once it has
    /// died (exit status, its message, its stderr) or stopped beating.
    pub fn health(&self) -> Result<Health, Error> {
        let state = shm::read_state(self.shm.header());
        let status = self.try_wait()?;
        if let Some(status) = status {
            if state == Some(WriterState::Finished) && status.success() {
                return Ok(Health::Finished);
            }
            return Err(Error::ChildExited {
                pid: self.pid,
                status,
                message: shm::read_error(self.shm.header()),
                stderr: self.stderr.settle(Duration::from_millis(500)),
            });
        }
        if state == Some(WriterState::Finished) {
            return Ok(Health::Finished);
        }
        let h = self.shm.header();
        if h.magic.load(Ordering::Relaxed) != MAGIC || h.version.load(Ordering::Relaxed) != VERSION {
            return Err(Error::Corrupt { pid: self.pid, what: "header overwritten" });
        }
        let beat = self.shm.counters().heartbeat_ns;
        let now = sys::monotonic_ns();
        // The child stamps the heartbeat from the same clock just before we read it: a stamp
        // from the future is noise.
        if beat > now + 1_000_000_000 {
            return Err(Error::Corrupt { pid: self.pid, what: "heartbeat from the future" });
        }
        let age = Duration::from_nanos(now.saturating_sub(beat));
        if age > self.stall_timeout {
            return Err(Error::Stalled { pid: self.pid, since: age });
        }
        Ok(Health::Running)
    }

    /// Whether the child process still exists.
    pub fn is_alive(&self) -> bool {
        matches!(self.try_wait(), Ok(None))
    }

    /// The child's exit status, if it has exited (non-blocking).
    pub fn try_wait(&self) -> Result<Option<ExitStatus>, Error> {
        let mut slot = self.child.lock().unwrap_or_else(|e| e.into_inner());
        slot.try_wait().map_err(|source| Error::Io { context: "waiting for child", source })
    }

    /// Waits up to `timeout` for the child to exit by itself.
    pub fn wait_exit(&self, timeout: Duration) -> Result<Option<ExitStatus>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(Some(s));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Kills the child (SIGKILL) and reaps it.
    pub fn kill(&self) -> Result<ExitStatus, Error> {
        let mut slot = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.try_wait().map_err(|source| Error::Io { context: "waiting for child", source })? {
            return Ok(s);
        }
        let _ = slot.child.kill();
        let status = slot.child.wait().map_err(|source| Error::Io { context: "reaping child", source })?;
        slot.status = Some(status);
        Ok(status)
    }

    /// The last lines the child wrote to stderr/stdout.
    pub fn stderr_tail(&self) -> String {
        self.stderr.text()
    }

    /// Saves the game between two frames: the core's state (None if the core cannot save
    /// states) and its battery RAM (None if the game has none). Fails with
    /// [`Error::CommandTimeout`] if the child does not answer within `timeout`, or
    /// [`Error::ChildExited`] if it died.
    pub fn save_game(&self, timeout: Duration) -> Result<GameSave, Error> {
        match self.command("save", &Request::Save, timeout)? {
            Reply::Saved { state, sram } => Ok(GameSave { state, sram }),
            other => Err(self.unexpected("save", &other)),
        }
    }

    /// Restores a [`GameSave`] between two frames: the state, then the battery RAM (no larger
    /// than the game's; see [`crate::control::commands::copy_save_ram`]). A save the core
    /// refuses is [`Error::CommandFailed`] with the child's reason, and the game runs on as
    /// before.
    pub fn load_game(&self, save: &GameSave, timeout: Duration) -> Result<(), Error> {
        let request = Request::Load { state: save.state.clone(), sram: save.sram.clone() };
        match self.command("load", &request, timeout)? {
            Reply::Loaded => Ok(()),
            other => Err(self.unexpected("load", &other)),
        }
    }

    /// Presses the console's reset button (`retro_reset`) between two frames.
    pub fn reset(&self, timeout: Duration) -> Result<(), Error> {
        match self.command("reset", &Request::Reset, timeout)? {
            Reply::Done => Ok(()),
            other => Err(self.unexpected("reset", &other)),
        }
    }

    /// Sends one request and waits for its answer. Calls from several threads take turns;
    /// the time spent waiting for a turn counts against `timeout`.
    fn command(&self, name: &'static str, request: &Request, timeout: Duration) -> Result<Reply, Error> {
        let deadline = Instant::now() + timeout;
        let result = self.control.lock().unwrap_or_else(|e| e.into_inner()).call(request, deadline);
        match result {
            Ok(Reply::Failed(reason)) => Err(Error::CommandFailed { command: name, reason }),
            Ok(reply) => Ok(reply),
            Err(CallError::Timeout) => match self.exit_error(Duration::ZERO) {
                Some(e) => Err(e),
                None => Err(Error::CommandTimeout { pid: self.pid, command: name, after: timeout }),
            },
            Err(CallError::Encode(WireError::TooLarge { len })) => Err(Error::MessageTooLarge { len }),
            Err(e) => Err(self.exit_error(Duration::from_secs(1)).unwrap_or_else(|| Error::Control {
                pid: self.pid,
                detail: format!(
                    "'{name}' failed: {e}; the emulator runs on without commands (see its stderr), restart the room to \
                     save or load again{}",
                    stderr_suffix(&self.stderr.text())
                ),
            })),
        }
    }

    /// Why the child no longer answers, once it has exited (waiting up to `grace` for it to).
    fn exit_error(&self, grace: Duration) -> Option<Error> {
        let status = self.wait_exit(grace).ok().flatten()?;
        if status.success() && shm::read_state(self.shm.header()) == Some(WriterState::Finished) {
            return Some(Error::Control {
                pid: self.pid,
                detail: "the emulator has finished (frame limit or core shutdown) and takes no more commands".into(),
            });
        }
        Some(Error::ChildExited {
            pid: self.pid,
            status,
            message: shm::read_error(self.shm.header()),
            stderr: self.stderr.settle(Duration::from_millis(500)),
        })
    }

    fn unexpected(&self, name: &str, reply: &Reply) -> Error {
        let kind = match reply {
            Reply::Saved { .. } => "Saved",
            Reply::Loaded => "Loaded",
            Reply::Done => "Done",
            Reply::Failed(_) => "Failed",
        };
        Error::Control {
            pid: self.pid,
            detail: format!("'{name}' was answered with {kind}: parent and child are from different builds"),
        }
    }
}

fn wait_briefly(slot: &mut ChildSlot, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = slot.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            let _ = slot.child.kill();
            return slot.child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The eventfd (see [`Emulator::event_fd`]), so `tokio::io::unix::AsyncFd` can wrap an
/// `Emulator` (or an `Arc<Emulator>`) directly.
impl AsRawFd for Emulator {
    fn as_raw_fd(&self) -> RawFd {
        self.event.as_raw_fd()
    }
}

/// The eventfd, as for [`AsRawFd`].
impl AsFd for Emulator {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.event.as_fd()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Emulator>();
    }

    #[test]
    fn long_lines_are_cut_and_the_rest_skipped() {
        let mut input = vec![b'x'; 5000];
        input.extend_from_slice(b"\nshort\nno newline at the end");
        let mut r = BufReader::with_capacity(64, &input[..]);
        let mut line = Vec::new();
        assert_eq!(read_line_capped(&mut r, &mut line, 100).unwrap(), 5001);
        assert_eq!(line, vec![b'x'; 100]);
        line.clear();
        read_line_capped(&mut r, &mut line, 100).unwrap();
        assert_eq!(line, b"short\n");
        line.clear();
        read_line_capped(&mut r, &mut line, 100).unwrap();
        assert_eq!(line, b"no newline at the end");
        line.clear();
        assert_eq!(read_line_capped(&mut r, &mut line, 100).unwrap(), 0);
    }

    #[test]
    fn errors_read_well() {
        let e = Error::Startup { message: "core said no".into(), status: None, stderr: "line 1\nline 2\n".into() };
        assert_eq!(e.to_string(), "emulator failed to start: core said no; stderr:\nline 1\nline 2");
        let e = Error::StartupTimeout { after: Duration::from_secs(1), stderr: String::new() };
        assert_eq!(e.to_string(), "emulator did not start within 1s");
    }

    #[test]
    fn explicit_binary_must_exist() {
        match find_binary(Some(Path::new("/no/such/emulator"))) {
            Err(Error::BinaryNotFound { searched }) => {
                assert_eq!(searched, vec![PathBuf::from("/no/such/emulator")])
            }
            other => panic!("{other:?}"),
        }
    }
}
