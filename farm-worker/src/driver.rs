//! The thin async driver around the [`Engine`]: it owns the shared UDP socket, the rooms, the
//! encoder pool, the clock and the metrics. Each wake-up (a coordinator command, media or a
//! report from a room, datagrams, a timer) becomes engine inputs; then the driver carries out
//! the engine's outputs until it asks to sleep.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, Signal, SignalKind};

use retrofarm_proto::control::{CoordMsg, WorkerMsg};
use retrofarm_proto::game::{GameCommand, GameReply};
use retrofarm_proto::ids::{RoomId, SessionId};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::admission::{self, RoomCosts};
use crate::engine::{Counters, Engine, Input, Output};
use crate::gpu_stage::GpuStage;
use crate::http::{RoomsHealth, ENCODERS};
use crate::library::{Library, LibrarySource};
use crate::link::Status;
use crate::metrics::{metrics, CPU};
use crate::nvenc::Nvenc;
use crate::pool::EncodePool;
use crate::room::{self, RoomCounters, RoomEvent, RoomSettings, Rooms, VideoTiming};
use crate::saves::{SaveFile, SaveStore};
use crate::saving;

/// Most room events or datagrams taken per wake-up before the engine is polled: the batch
/// amortizes polling, the cap bounds how long a frame waits for its turn.
const BATCH: usize = 64;
/// How often the rooms' emulators are checked.
const HEALTH: Duration = Duration::from_millis(250);
/// How often capacity is measured and counters exported.
const MEASURE: Duration = Duration::from_secs(1);
/// How long a stopping worker waits for its closing rooms' saves.
const SHUTDOWN_SAVES: Duration = Duration::from_secs(20);

/// Driver settings.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// What every room runs with.
    pub room: RoomSettings,
    /// Encoder pool threads (None: one per core).
    pub encoder_threads: Option<usize>,
    /// CPU cores rooms may use in all.
    pub cpu_budget_cores: f64,
    /// Cost of a room, in cores, assumed until one is measured.
    pub room_cost_prior: f64,
    /// Most rooms at once.
    pub max_rooms: u32,
    /// The GPU conversion stage, when the worker has a usable GPU.
    pub gpu: Option<Arc<GpuStage>>,
    /// NVENC, when the worker can encode on it.
    pub nvenc: Option<Arc<Nvenc>>,
    /// Where `/healthz` finds each room's encoders.
    pub rooms_health: RoomsHealth,
    /// Where saves go; `None`: the worker keeps none (players cannot save, rooms do not resume).
    pub saves: Option<SaveStore>,
    /// How often every room is saved (and each room once more when it closes); `None`: never.
    pub autosave: Option<Duration>,
    /// How long SIGTERM waits for running games to end before it closes (and saves) them.
    pub drain: Duration,
    /// The games folder, scanned again on SIGHUP and every `rescan`.
    pub library: LibrarySource,
    /// How often the games folder is scanned again; `None`: only on SIGHUP.
    pub rescan: Option<Duration>,
}

impl DriverConfig {
    /// The capacity to start with, before any room is measured.
    pub fn initial_capacity(&self) -> u32 {
        admission::capacity(self.cpu_budget_cores, self.room_cost_prior, self.max_rooms)
    }
}

/// Measures what rooms cost and exports counters as deltas, once a second.
#[derive(Debug)]
struct Meter {
    cost: RoomCosts,
    last: Instant,
    last_cpu: Duration,
    rooms: HashMap<RoomId, RoomCounters>,
    engine: Counters,
    /// The GPU stage's batches, frames and wait (µs) at the last export.
    gpu: [u64; 3],
    /// NVENC's zero-copy pictures at the last export.
    zero_copy: u64,
}

/// The driver.
pub struct Driver {
    cfg: DriverConfig,
    engine: Engine,
    socket: UdpSocket,
    local: SocketAddr,
    rooms: Rooms,
    events_tx: mpsc::Sender<RoomEvent>,
    events: mpsc::Receiver<RoomEvent>,
    up: mpsc::Sender<WorkerMsg>,
    status: watch::Sender<Status>,
    meter: Meter,
    /// A health check runs on a blocking thread.
    checking: Arc<AtomicBool>,
    /// An autosave round runs.
    autosaving: Arc<AtomicBool>,
    /// A rescan of the games folder runs.
    scanning: Arc<AtomicBool>,
    /// What save tasks report back.
    done_tx: mpsc::UnboundedSender<Done>,
    done: mpsc::UnboundedReceiver<Done>,
    /// Autosaves found for rooms about to resume, until the engine starts them.
    restores: HashMap<RoomId, SaveFile>,
    /// The saves of closing rooms, which the worker waits for before it exits.
    closing: tokio::task::JoinSet<()>,
    signals: Signals,
}

/// The signals the worker acts on, handled from the driver's creation on (before systemd hears
/// `READY=1`: a reload that came first would otherwise kill the worker).
struct Signals {
    /// Drain, then stop.
    term: Signal,
    /// Stop now.
    int: Signal,
    /// Scan the games folder again.
    hup: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// What a save task found or did, for the driver's loop.
#[derive(Debug)]
enum Done {
    /// A rescan of the games folder finished.
    Library(Result<Library, String>),
    /// A player's command was carried out.
    Reply { session: SessionId, room: RoomId, reply: GameReply },
    /// A room's autosave, or why it cannot resume.
    Resumed { room: RoomId, found: Result<SaveFile, String> },
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("local", &self.local).field("rooms", &self.rooms.len()).finish_non_exhaustive()
    }
}

impl Driver {
    /// A driver for `engine` on `socket`; `up` carries messages to the coordinator, `status`
    /// publishes what the link reports.
    pub fn new(
        cfg: DriverConfig,
        engine: Engine,
        socket: UdpSocket,
        local: SocketAddr,
        up: mpsc::Sender<WorkerMsg>,
        status: watch::Sender<Status>,
    ) -> anyhow::Result<Self> {
        let pool = cfg.encoder_threads.map_or_else(EncodePool::per_core, EncodePool::new).map_err(|e| {
            anyhow::anyhow!("cannot start the encoder pool: {e} (is the open-file limit, `ulimit -n`, too low?)")
        })?;
        info!(threads = pool.threads(), "encoder pool started");
        let signals = Signals::new().map_err(|e| anyhow::anyhow!("cannot handle SIGTERM, SIGINT and SIGHUP: {e}"))?;
        let (events_tx, events) = mpsc::channel(1024);
        let (done_tx, done) = mpsc::unbounded_channel();
        let rooms = Rooms::new(Arc::new(pool), cfg.gpu.clone(), cfg.nvenc.clone(), cfg.room.clone(), events_tx.clone());
        let meter = Meter {
            cost: RoomCosts::new(cfg.room_cost_prior),
            last: Instant::now(),
            last_cpu: retrofarm_emulator::process_cpu_time(),
            rooms: HashMap::new(),
            engine: Counters::default(),
            gpu: [0; 3],
            zero_copy: 0,
        };
        Ok(Self {
            cfg,
            engine,
            socket,
            local,
            rooms,
            events_tx,
            events,
            up,
            status,
            meter,
            checking: Arc::new(AtomicBool::new(false)),
            autosaving: Arc::new(AtomicBool::new(false)),
            scanning: Arc::new(AtomicBool::new(false)),
            done_tx,
            done,
            restores: HashMap::new(),
            closing: tokio::task::JoinSet::new(),
            signals,
        })
    }

    /// Runs until `down` (the coordinator's commands) closes, or until a drain ends: SIGTERM
    /// stops new rooms and waits up to [`DriverConfig::drain`] for the running games to end,
    /// SIGINT (or a second signal) ends the wait at once; then every room closes and is saved,
    /// and `run` returns once the saves are done. Feeds systemd's watchdog from this loop.
    pub async fn run(mut self, mut down: mpsc::Receiver<CoordMsg>) {
        let mut buf = vec![0u8; 2048];
        let mut health = tokio::time::interval(HEALTH);
        let mut measure = tokio::time::interval(MEASURE);
        let mut autosave = tokio::time::interval(self.cfg.autosave.unwrap_or(Duration::from_secs(3600)));
        autosave.tick().await;
        let watchdog = retrofarm_link::systemd::watchdog_interval();
        let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        let mut rescan = tokio::time::interval(self.cfg.rescan.unwrap_or(Duration::from_secs(3600)));
        rescan.tick().await;
        let mut drain_until: Option<Instant> = None;
        let mut wake = self.flush();
        loop {
            let sleep = tokio::time::sleep_until(drain_until.map_or(wake, |d| d.min(wake)).into());
            tokio::select! {
                cmd = down.recv() => {
                    let Some(cmd) = cmd else { break };
                    self.engine.handle(Instant::now(), Input::Command(cmd));
                }
                Some(ev) = self.events.recv() => self.room_event(ev),
                res = self.socket.recv_from(&mut buf) => match res {
                    Ok((n, source)) => self.datagram(&buf[..n], source),
                    Err(e) => warn!(error = %e, "UDP receive failed"),
                },
                _ = health.tick() => self.check_health(),
                _ = measure.tick() => self.measure(),
                _ = autosave.tick(), if self.cfg.autosave.is_some() => self.autosave(),
                Some(done) = self.done.recv() => self.done(done),
                _ = watchdog_tick.tick(), if watchdog.is_some() => retrofarm_link::systemd::notify("WATCHDOG=1"),
                _ = rescan.tick(), if self.cfg.rescan.is_some() => self.rescan(),
                _ = self.signals.hup.recv() => {
                    info!("SIGHUP: scanning the games folder again");
                    self.rescan();
                }
                _ = self.signals.term.recv() => self.drain(&mut drain_until, self.cfg.drain),
                _ = self.signals.int.recv() => self.drain(&mut drain_until, Duration::ZERO),
                _ = sleep => self.engine.handle(Instant::now(), Input::Timeout),
            }
            self.take_ready(&mut buf);
            wake = self.flush();
            if drain_until.is_some_and(|until| self.engine.room_count() == 0 || Instant::now() >= until) {
                break;
            }
        }
        self.shut_down().await;
    }

    /// Starts draining, or shortens a drain to `wait`.
    fn drain(&mut self, until: &mut Option<Instant>, wait: Duration) {
        let deadline = Instant::now() + if until.is_some() { Duration::ZERO } else { wait };
        if until.is_none() {
            let rooms = self.engine.room_count();
            info!(rooms, wait = ?wait, "stopping: no new rooms; running games may go on for the drain time");
            retrofarm_link::systemd::notify(&format!(
                "STOPPING=1\nSTATUS=draining: {rooms} rooms, up to {} s",
                wait.as_secs()
            ));
            self.engine.handle(Instant::now(), Input::Drain);
        } else {
            info!("stopping now");
        }
        *until = Some(until.map_or(deadline, |u| u.min(deadline)));
    }

    /// Closes every room (each is saved as it closes), tells its players, and waits (bounded)
    /// for the saves.
    async fn shut_down(&mut self) {
        let message = match self.cfg.saves {
            Some(_) => "this game server is shutting down for maintenance; your game was saved: reload the page to continue it on another server",
            None => "this game server is shutting down for maintenance: reload the page to play on another server",
        };
        self.engine.handle(Instant::now(), Input::Shutdown { message: message.into() });
        self.flush();
        let saves = self.closing.len();
        if saves > 0 {
            info!(rooms = saves, "saving the closing rooms");
        }
        let waited =
            tokio::time::timeout(SHUTDOWN_SAVES, async { while self.closing.join_next().await.is_some() {} }).await;
        if waited.is_err() {
            warn!(
                left = self.closing.len(),
                "closing rooms' saves did not finish in {SHUTDOWN_SAVES:?}: the last autosave of those rooms remains"
            );
        }
        info!("worker stopped");
    }

    /// Takes the room events and datagrams that are already waiting, up to [`BATCH`] of each,
    /// so that one round of polling serves them all.
    fn take_ready(&mut self, buf: &mut [u8]) {
        for _ in 0..BATCH {
            let Ok(ev) = self.events.try_recv() else { break };
            self.room_event(ev);
        }
        for _ in 0..BATCH {
            match self.socket.try_recv_from(buf) {
                Ok((n, source)) => self.datagram(&buf[..n], source),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    warn!(error = %e, "UDP receive failed");
                    break;
                }
            }
        }
    }

    fn datagram(&mut self, contents: &[u8], source: SocketAddr) {
        let input = Input::Datagram { source, destination: self.local, contents };
        self.engine.handle(Instant::now(), input);
    }

    fn room_event(&mut self, ev: RoomEvent) {
        match ev {
            RoomEvent::Started { room, emulator } => {
                if let Err(reason) = self.rooms.started(room.clone(), emulator) {
                    self.engine.handle(Instant::now(), Input::RoomEnded { room, reason });
                }
            }
            RoomEvent::Media(media, timing) => {
                if let Some(t) = timing {
                    observe(&t);
                }
                self.engine.handle(Instant::now(), Input::Media(media));
            }
            RoomEvent::Screen { room, screen } => self.engine.handle(Instant::now(), Input::Screen { room, screen }),
            RoomEvent::Ended { room, reason } => self.engine.handle(Instant::now(), Input::RoomEnded { room, reason }),
        }
    }

    /// Carries out the engine's outputs; returns when it next wants the time.
    fn flush(&mut self) -> Instant {
        let wake = loop {
            match self.engine.poll_output() {
                Output::Transmit(t) => {
                    if let Err(e) = self.socket.try_send_to(&t.contents, t.destination) {
                        debug!(error = %e, "UDP send dropped");
                    }
                }
                Output::Coordinator(msg) => {
                    if self.up.try_send(msg).is_err() {
                        debug!("coordinator link is down or backed up; message dropped");
                    }
                }
                Output::StartRoom(start) => {
                    let restore = if start.resume { self.restores.remove(&start.room) } else { None };
                    self.rooms.start(start, restore);
                }
                Output::StopRoom(room) => {
                    if let (Some(game), Some(store)) = (self.rooms.stop(&room), self.cfg.saves.clone()) {
                        // The last save; the emulator ends when it is done.
                        self.closing.spawn(async move {
                            let saved = saving::autosave(&store, &game).await;
                            count_save("close", saved.is_ok());
                            match saved {
                                Ok(()) => info!(room = %game.room, "room saved as it closed"),
                                Err(e) => warn!(room = %game.room, error = %e, "the closing room could not be saved"),
                            }
                        });
                    }
                }
                Output::Game { room, session, command } => self.game_command(room, session, command),
                Output::Resume(room) => {
                    let (store, done) = (self.cfg.saves.clone(), self.done_tx.clone());
                    tokio::spawn(async move {
                        let found = saving::find(store.as_ref(), &room).await;
                        count_save("resume", found.is_ok());
                        let _ = done.send(Done::Resumed { room, found });
                    });
                }
                Output::WantedCodecs { room, codecs } => {
                    if let Some(r) = self.rooms.get(&room) {
                        r.set_wanted(&codecs);
                    }
                }
                Output::Keyframe { room, codec } => {
                    if let Some(r) = self.rooms.get(&room) {
                        r.request_keyframe(codec);
                    }
                }
                Output::VideoRate { room, codec, bitrate_bps } => {
                    if let Some(r) = self.rooms.get(&room) {
                        r.set_bitrate(codec, bitrate_bps);
                    }
                }
                Output::Pad { room, port, pad } => {
                    if let Some(r) = self.rooms.get(&room) {
                        r.set_input(port, pad);
                    }
                }
                Output::Status(s) => {
                    self.status.send_replace(s);
                }
                Output::Timeout(t) => break t,
            }
        };
        // A found autosave the engine did not start a room from (the game is not here, the
        // worker is full): the players were told.
        self.restores.clear();
        // Everything written to the peers went out above: the frames' "sent" stage.
        let samples = self.engine.take_samples();
        let m = metrics();
        if !samples.sent_emulated_ns.is_empty() {
            let now = retrofarm_emulator::monotonic_ns();
            let h = m.stage_latency.with_label_values(&["sent"]);
            for emulated in samples.sent_emulated_ns {
                h.observe(now.saturating_sub(emulated) as f64 / 1e9);
            }
        }
        for rtt in samples.rtt {
            m.peer_rtt.observe(rtt.as_secs_f64());
        }
        for r in samples.viewer_reports {
            let secs = f64::from(r.ms) / 1000.0;
            m.viewer_frames.inc_by(u64::from(r.frames));
            m.viewer_seconds.inc_by(secs);
            m.viewer_freezes.inc_by(u64::from(r.freezes));
            m.viewer_freeze_seconds.inc_by(f64::from(r.freeze_ms) / 1000.0);
            m.viewer_fps.observe(f64::from(r.frames) / secs);
        }
        wake
    }

    /// Carries out a player's game command in its own task; the answer comes back as
    /// [`Done::Reply`].
    fn game_command(&mut self, room: RoomId, session: SessionId, command: GameCommand) {
        let Some(game) = self.rooms.game(&room) else {
            let reply =
                GameReply::Failed { command: command.kind().into(), message: "the game is still starting".into() };
            return self.engine.handle(Instant::now(), Input::GameReply { session, reply });
        };
        let (store, done) = (self.cfg.saves.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            let reply = saving::command(store.as_ref(), game, command).await;
            let _ = done.send(Done::Reply { session, room, reply });
        });
    }

    /// Scans the games folder on a blocking thread; [`Done::Library`] brings the result.
    fn rescan(&self) {
        if self.scanning.swap(true, Ordering::AcqRel) {
            return;
        }
        let (source, done, scanning) = (self.cfg.library.clone(), self.done_tx.clone(), self.scanning.clone());
        tokio::task::spawn_blocking(move || {
            let _ = done.send(Done::Library(Library::load(&source).map_err(|e| format!("{e:#}"))));
            scanning.store(false, Ordering::Release);
        });
    }

    fn done(&mut self, done: Done) {
        let now = Instant::now();
        match done {
            Done::Library(Ok(library)) => self.engine.handle(now, Input::Library(library)),
            Done::Library(Err(e)) => {
                warn!(error = %e, "rescan of the games folder failed: the games stay as they were")
            }
            Done::Reply { session, room, reply } => {
                match &reply {
                    GameReply::Saved { .. } => count_save("save", true),
                    GameReply::Loaded { .. } => count_save("load", true),
                    GameReply::Failed { command, .. } if matches!(command.as_str(), "save" | "load") => {
                        count_save(command, false)
                    }
                    _ => {}
                }
                if matches!(reply, GameReply::Loaded { .. } | GameReply::Reset) {
                    // Every viewer's picture changed at once: everyone gets a keyframe.
                    if let Some(r) = self.rooms.get(&room) {
                        r.request_keyframes();
                    }
                }
                if let GameReply::Failed { command, message } = &reply {
                    warn!(%room, %session, command, %message, "game command failed");
                }
                self.engine.handle(now, Input::GameReply { session, reply });
            }
            Done::Resumed { room, found } => {
                let game = found.map(|save| {
                    let game = save.header.game.clone();
                    info!(%room, %game, "resuming the room from its autosave");
                    self.restores.insert(room.clone(), save);
                    game
                });
                self.engine.handle(now, Input::Resumed { room, game });
            }
        }
    }

    /// Saves every running room, in one background task (skipped while the last round runs).
    fn autosave(&mut self) {
        let Some(store) = self.cfg.saves.clone() else { return };
        let games = self.rooms.games();
        if games.is_empty() || self.autosaving.swap(true, Ordering::AcqRel) {
            return;
        }
        let busy = self.autosaving.clone();
        tokio::spawn(async move {
            for game in games {
                let saved = saving::autosave(&store, &game).await;
                count_save("autosave", saved.is_ok());
                if let Err(e) = saved {
                    warn!(room = %game.room, error = %e, "autosave failed");
                }
            }
            busy.store(false, Ordering::Release);
        });
    }

    /// Checks the emulators on a blocking thread; a dead one comes back as a room event.
    fn check_health(&mut self) {
        if self.rooms.is_empty() || self.checking.swap(true, Ordering::AcqRel) {
            return;
        }
        let jobs = self.rooms.jobs();
        let (events, checking) = (self.events_tx.clone(), self.checking.clone());
        tokio::task::spawn_blocking(move || {
            room::check_health(&jobs, &events);
            checking.store(false, Ordering::Release);
        });
    }

    /// Once a second: exports counters, re-measures what a room costs and tells the engine
    /// how many rooms fit.
    fn measure(&mut self) {
        let m = metrics();
        let now = Instant::now();
        let cpu = retrofarm_emulator::process_cpu_time();
        let mut used = cpu.saturating_sub(self.meter.last_cpu);
        let mut seen = HashMap::new();
        let mut encoders = BTreeMap::new();
        // Frames are counted under the device that converts them.
        let gpu = self.cfg.gpu.as_deref();
        let label = gpu.filter(|g| !g.has_failed()).map_or(CPU, |g| g.label());
        if let Some(g) = gpu {
            let c = g.counters();
            let now = [&c.batches, &c.frames, &c.wait_us].map(|a| a.load(Ordering::Relaxed));
            let [b, f, w] = [0, 1, 2].map(|i| now[i].saturating_sub(self.meter.gpu[i]));
            m.gpu_batches.with_label_values(&[g.label()]).inc_by(b);
            m.gpu_frames.with_label_values(&[g.label()]).inc_by(f);
            m.gpu_wait.with_label_values(&[g.label()]).inc_by(w as f64 / 1e6);
            m.gpu_failed.with_label_values(&[g.label()]).set(i64::from(g.has_failed()));
            self.meter.gpu = now;
        }
        if let Some(n) = &self.cfg.nvenc {
            m.nvenc_sessions.set(i64::from(n.sessions()));
            m.nvenc_budget.set(i64::from(n.budget()));
            let zero_copy = n.zero_copy_frames();
            m.nvenc_zero_copy.inc_by(zero_copy.saturating_sub(self.meter.zero_copy));
            self.meter.zero_copy = zero_copy;
        }
        for (id, cur) in self.rooms.counters() {
            let prev = self.meter.rooms.get(id).cloned().unwrap_or_default();
            let d = |f: fn(&RoomCounters) -> u64| f(&cur).saturating_sub(f(&prev));
            m.frames_emulated.with_label_values(&[label]).inc_by(d(|c| c.emulated));
            m.frames_late.with_label_values(&[label]).inc_by(d(|c| c.late));
            m.frames_repeated.with_label_values(&[label]).inc_by(d(|c| c.repeated));
            m.frames_dropped.with_label_values(&["ring_overrun", label]).inc_by(d(|c| c.ring_overrun));
            m.frames_dropped.with_label_values(&["encoder_busy", label]).inc_by(d(|c| c.encoder_busy));
            m.frames_dropped.with_label_values(&["send_queue", label]).inc_by(d(|c| c.send_queue));
            m.frames_dropped.with_label_values(&["rate_step", label]).inc_by(d(|c| c.rate_skipped));
            let mut active = Vec::new();
            for (encoder, n) in &cur.encoded {
                let before = prev.encoded.get(encoder).copied().unwrap_or(0);
                m.frames_encoded.with_label_values(&[encoder, label]).inc_by(n.saturating_sub(before));
                if *n > before {
                    active.push(*encoder);
                }
            }
            encoders.insert(id.clone(), active);
            used += Duration::from_nanos(d(|c| c.emulate_ns));
            seen.insert(id.clone(), cur);
        }
        // Only rooms measured over the whole interval count towards the cost.
        let steady = seen.keys().filter(|id| self.meter.rooms.contains_key(*id)).count();
        // Rooms encoding on NVENC: one session each (a room encodes H264 once).
        let (sessions, on_nvenc) = match &self.cfg.nvenc {
            Some(n) if !n.is_lost() => (n.budget(), n.sessions() as usize),
            _ => (0, 0),
        };
        if steady > 0 && steady == seen.len() {
            self.meter.cost.sample(used, now.duration_since(self.meter.last), steady, on_nvenc);
        }
        self.meter.rooms = seen;
        for encoder in ENCODERS {
            let n = encoders.values().filter(|active| active.contains(&encoder)).count();
            m.rooms_encoding.with_label_values(&[encoder]).set(n as i64);
        }
        self.cfg.rooms_health.update(&encoders);
        self.meter.last = now;
        self.meter.last_cpu = cpu;
        let cost = &self.meter.cost;
        let capacity = admission::mixed_capacity(
            self.cfg.cpu_budget_cores,
            cost.nvenc.per_room(),
            cost.cpu.per_room(),
            sessions,
            self.cfg.max_rooms,
        );
        self.engine.handle(now, Input::Capacity(capacity));

        let c = self.engine.counters();
        let prev = std::mem::replace(&mut self.meter.engine, c);
        m.sent_bytes.with_label_values(&["video"]).inc_by(c.video_bytes.saturating_sub(prev.video_bytes));
        m.sent_bytes.with_label_values(&["audio"]).inc_by(c.audio_bytes.saturating_sub(prev.audio_bytes));
        m.emulator_crashes.inc_by(c.rooms_failed.saturating_sub(prev.rooms_failed));
        m.video_rate_changes.with_label_values(&["down"]).inc_by(c.rate_decreases.saturating_sub(prev.rate_decreases));
        m.video_rate_changes.with_label_values(&["up"]).inc_by(c.rate_increases.saturating_sub(prev.rate_increases));
        m.keyframes_deferred.inc_by(c.keyframes_deferred.saturating_sub(prev.keyframes_deferred));
        m.peer_packets_sent.inc_by(c.packets_sent.saturating_sub(prev.packets_sent));
        m.peer_packets_lost.inc_by(c.packets_lost.saturating_sub(prev.packets_lost));
        m.rooms.set(c.rooms as i64);
        m.viewers.set(c.viewers as i64);
        m.capacity_rooms.set(i64::from(capacity));
        m.capacity_free.set((i64::from(capacity) - c.rooms as i64).max(0));
        m.room_cpu.set(if on_nvenc > 0 { cost.nvenc.per_room() } else { cost.cpu.per_room() });
    }
}

/// Records how a video frame was made.
fn observe(t: &VideoTiming) {
    let m = metrics();
    m.encode_duration.with_label_values(&[t.encoder]).observe(t.encode_time.as_secs_f64());
    let since = |at: u64| at.saturating_sub(t.stamps.emulated) as f64 / 1e9;
    m.stage_latency.with_label_values(&["converted"]).observe(since(t.stamps.converted));
    m.stage_latency.with_label_values(&["encoded"]).observe(since(t.stamps.encoded));
}

/// Counts a save of `kind` in `retrofarm_saves_total`.
fn count_save(kind: &str, ok: bool) {
    metrics().saves.with_label_values(&[kind, if ok { "ok" } else { "failed" }]).inc();
}
