//! The worker's engine: one task that owns the rooms, the WebRTC peers and the UDP socket they
//! all share, driven by commands from the coordinator link, datagrams, encoded media from the
//! rooms, and timers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use retrofarm_media::H264Config;
use retrofarm_proto::control::{CoordMsg, Load, RoomInfo, WorkerMsg};
use retrofarm_proto::ids::{RoomId, SessionId};
use retrofarm_proto::input::PadState;
use retrofarm_proto::ErrorCode;
use str0m::media::MediaTime;
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::admission::{self, CostMeter};
use crate::library::Library;
use crate::metrics::{metrics, CPU};
use crate::peer::Peer;
use crate::polling::PollSchedule;
use crate::pool::EncodePool;
use crate::room::{MediaEvent, RoomHandle, RoomSpec, VideoCodec};
use crate::roombook::RoomBook;

/// How long a peer may wait for the browser's answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Most media events or datagrams taken per wake-up before the peers are polled: the batch
/// amortizes polling, the cap bounds how long a frame waits for its turn.
const BATCH: usize = 64;

/// What the link reports to the coordinator on (re-)registration and in heartbeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Current load.
    pub load: Load,
    /// Rooms running.
    pub rooms: Vec<RoomInfo>,
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most rooms at once.
    pub max_rooms: u32,
    /// ICE host candidates of the shared socket.
    pub candidates: Vec<SocketAddr>,
    /// Where libretro cores are (None: the default search path).
    pub cores_dir: Option<PathBuf>,
    /// Core options applied to every room.
    pub core_options: Vec<(String, String)>,
    /// Video encoder settings.
    pub h264: H264Config,
    /// Whether frames identical to the one before are left out (not encoded again).
    pub skip_repeated_frames: bool,
    /// Encoder pool threads (None: one per core).
    pub encoder_threads: Option<usize>,
    /// CPU cores rooms may use in all.
    pub cpu_budget_cores: f64,
    /// Cost of a room, in cores, assumed until one is measured.
    pub room_cost_prior: f64,
}

/// Cumulative counters of one room's emulator at the last tick.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    published: u64,
    late: u64,
    missed: u64,
    skipped: u64,
    emulate_ns: u64,
}

/// Measurement state for admission and metrics, updated once a second.
#[derive(Debug)]
struct Meter {
    cost: CostMeter,
    capacity: u32,
    last: Instant,
    last_cpu: Duration,
    seen: HashMap<RoomId, Seen>,
}

/// Something learned while polling peers, acted on afterwards.
enum Action {
    Connected(SessionId),
    Keyframe(SessionId),
    Input(SessionId, PadState),
    Dead(SessionId),
}

/// Rooms, peers and the shared UDP socket.
pub struct Engine {
    cfg: EngineConfig,
    library: Library,
    book: RoomBook,
    rooms: HashMap<RoomId, RoomHandle>,
    peers: HashMap<SessionId, Peer>,
    /// Which peers to poll next, and when.
    polls: PollSchedule<SessionId>,
    /// The session each remote address last spoke for: a datagram finds its peer without
    /// asking every peer.
    sources: HashMap<SocketAddr, SessionId>,
    up: mpsc::Sender<WorkerMsg>,
    status: watch::Sender<Status>,
    pool: Arc<EncodePool>,
    meter: Meter,
    /// Emulated-at stamps of frames written since the last transmit, for the "sent" stage.
    sent: Vec<u64>,
    media_tx: mpsc::Sender<MediaEvent>,
    media_rx: mpsc::Receiver<MediaEvent>,
    /// Rooms, sessions or capacity may have changed since the status was last published.
    status_stale: bool,
}

impl Engine {
    /// A new engine; `up` carries messages to the coordinator, `status` publishes load.
    pub fn new(
        cfg: EngineConfig,
        library: Library,
        up: mpsc::Sender<WorkerMsg>,
        status: watch::Sender<Status>,
    ) -> anyhow::Result<Self> {
        let (media_tx, media_rx) = mpsc::channel(1024);
        let pool = cfg.encoder_threads.map_or_else(EncodePool::per_core, EncodePool::new);
        let pool = Arc::new(pool.map_err(|e| {
            anyhow::anyhow!("cannot start the encoder pool: {e} (is the open-file limit, `ulimit -n`, too low?)")
        })?);
        info!(threads = pool.threads(), "encoder pool started");
        let cost = CostMeter::new(cfg.room_cost_prior);
        let capacity = admission::capacity(cfg.cpu_budget_cores, cost.per_room(), cfg.max_rooms);
        let meter = Meter {
            cost,
            capacity,
            last: Instant::now(),
            last_cpu: retrofarm_emulator::process_cpu_time(),
            seen: HashMap::new(),
        };
        let mut e = Self {
            pool,
            meter,
            sent: Vec::new(),
            cfg,
            library,
            book: RoomBook::new(),
            rooms: HashMap::new(),
            peers: HashMap::new(),
            polls: PollSchedule::new(),
            sources: HashMap::new(),
            up,
            status,
            media_tx,
            media_rx,
            status_stale: false,
        };
        e.publish();
        Ok(e)
    }

    fn send(&self, msg: WorkerMsg) {
        if self.up.try_send(msg).is_err() {
            debug!("coordinator link is down or backed up; message dropped");
        }
    }

    fn publish(&mut self) {
        self.status_stale = false;
        let status = Status { load: self.book.load(self.meter.capacity), rooms: self.book.infos() };
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
    }

    /// Runs until `down` closes.
    pub async fn run(mut self, socket: UdpSocket, mut down: mpsc::Receiver<CoordMsg>) {
        let local = self.cfg.candidates.first().copied().unwrap_or(socket.local_addr().expect("bound socket"));
        let mut buf = vec![0u8; 2048];
        let mut next = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let sleep = tokio::time::sleep_until(next.into());
            tokio::select! {
                cmd = down.recv() => {
                    let Some(cmd) = cmd else { break };
                    self.command(cmd);
                }
                Some(ev) = self.media_rx.recv() => self.media(ev),
                res = socket.recv_from(&mut buf) => match res {
                    Ok((n, source)) => self.datagram(&buf[..n], source, local),
                    Err(e) => warn!(error = %e, "UDP receive failed"),
                },
                _ = tick.tick() => self.tick(),
                // A peer's timeout: drive() gives it the time.
                _ = sleep => {}
            }
            self.take_ready(&socket, &mut buf, local);
            next = self.drive(&socket);
            // Everything written above went out in drive(): the frames' "sent" stage.
            if !self.sent.is_empty() {
                let now = retrofarm_emulator::monotonic_ns();
                let h = metrics().stage_latency.with_label_values(&["sent"]);
                for emulated in self.sent.drain(..) {
                    h.observe(now.saturating_sub(emulated) as f64 / 1e9);
                }
            }
            if self.status_stale {
                self.publish();
            }
        }
    }

    /// Takes the media events and datagrams that are already waiting, up to [`BATCH`] of each,
    /// so that one round of polling serves them all.
    fn take_ready(&mut self, socket: &UdpSocket, buf: &mut [u8], local: SocketAddr) {
        for _ in 0..BATCH {
            let Ok(ev) = self.media_rx.try_recv() else { break };
            self.media(ev);
        }
        for _ in 0..BATCH {
            match socket.try_recv_from(buf) {
                Ok((n, source)) => self.datagram(&buf[..n], source, local),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    warn!(error = %e, "UDP receive failed");
                    break;
                }
            }
        }
    }

    fn command(&mut self, cmd: CoordMsg) {
        match cmd {
            CoordMsg::StartSession { session, game, room, port, ice_servers: _ } => {
                self.start(session, game, room, port)
            }
            CoordMsg::Answer { session, sdp } => {
                let Some(peer) = self.peers.get_mut(&session) else { return };
                self.polls.touch(&session);
                if let Err(e) = peer.accept_answer(&sdp) {
                    warn!(%session, error = %format!("{e:#}"), "bad SDP answer");
                    self.end(&session, ErrorCode::Malformed, format!("the browser's SDP answer was refused: {e:#}"));
                }
            }
            CoordMsg::Ice { session, candidate } => {
                let (Some(peer), Some(c)) = (self.peers.get_mut(&session), candidate) else { return };
                self.polls.touch(&session);
                if let Err(e) = peer.add_remote_candidate(&c) {
                    debug!(%session, error = %e, "ignoring ICE candidate");
                }
            }
            CoordMsg::EndSession { session } => self.remove(&session),
            CoordMsg::Registered { .. } | CoordMsg::Refused { .. } => {}
        }
    }

    fn refuse(&self, session: SessionId, code: ErrorCode, message: String) {
        self.send(WorkerMsg::SessionEnded { session, code, message });
    }

    fn start(&mut self, session: SessionId, game: String, room: Option<RoomId>, port: u8) {
        let game_entry = match (&room, self.library.get(&game)) {
            (Some(_), _) => None,
            (None, Some(g)) => Some(g.clone()),
            (None, None) => {
                return self.refuse(session, ErrorCode::UnknownGame, format!("no game named {game:?} on this worker"))
            }
        };
        let core = match &game_entry {
            Some(g) => match retrofarm_emulator::find_core(&g.core, self.cfg.cores_dir.as_deref()) {
                Some(c) => Some(c),
                None => {
                    let msg = format!("this server lacks the {} emulator core; its operator must install it", g.core);
                    warn!(core = %g.core, "libretro core not found: run scripts/fetch-cores.sh or set cores_dir");
                    return self.refuse(session, ErrorCode::Internal, msg);
                }
            },
            None => None,
        };
        self.status_stale = true;
        let can_create = (self.book.room_count() as u32) < self.meter.capacity;
        let joined = match self.book.join(session.clone(), &game, room.as_ref(), port, new_room_id(), can_create) {
            Ok(j) => j,
            Err(r) => return self.refuse(session, r.code, r.message),
        };
        let (peer, sdp) = match Peer::offer(Instant::now(), &self.cfg.candidates) {
            Ok(x) => x,
            Err(e) => {
                self.leave(&session);
                return self.refuse(session, ErrorCode::Internal, format!("cannot create the WebRTC peer: {e:#}"));
            }
        };
        if let (true, Some(g), Some(core)) = (joined.created, game_entry, core) {
            let spec = RoomSpec {
                room: joined.room.clone(),
                core,
                rom: g.rom,
                options: self.cfg.core_options.clone(),
                h264: self.cfg.h264.clone(),
                skip_repeats: self.cfg.skip_repeated_frames,
            };
            let handle = RoomHandle::start(spec, self.pool.clone(), self.media_tx.clone());
            self.rooms.insert(joined.room.clone(), handle);
        }
        info!(%session, room = %joined.room, game = %joined.game, port, created = joined.created, "session started");
        self.peers.insert(session.clone(), peer);
        self.polls.touch(&session);
        self.send(WorkerMsg::SessionStarted { session: session.clone(), room: joined.room, game: joined.game, port });
        self.send(WorkerMsg::Offer { session: session.clone(), sdp });
        // Our candidates are in the offer; tell the browser there are no more.
        self.send(WorkerMsg::Ice { session, candidate: None });
    }

    /// Ends a session on the worker's side and tells its browser why.
    fn end(&mut self, session: &SessionId, code: ErrorCode, message: String) {
        self.remove(session);
        self.send(WorkerMsg::SessionEnded { session: session.clone(), code, message });
    }

    fn remove(&mut self, session: &SessionId) {
        self.drop_peer(session);
        self.leave(session);
    }

    /// Disconnects and forgets a session's peer.
    fn drop_peer(&mut self, session: &SessionId) {
        if let Some(mut p) = self.peers.remove(session) {
            p.rtc.disconnect();
        }
        self.polls.remove(session);
        self.sources.retain(|_, s| s != session);
    }

    fn leave(&mut self, session: &SessionId) {
        self.status_stale = true;
        match self.book.leave(session) {
            Some((room, true)) => {
                info!(%room, "room closed: last player left");
                self.stop_room(&room);
                self.send(WorkerMsg::RoomClosed { room });
            }
            Some((room, false)) => self.update_wanted(&room),
            None => {}
        }
    }

    fn stop_room(&mut self, room: &RoomId) {
        // Dropping the handle stops the room; its emulator dies with the last reference.
        self.rooms.remove(room);
    }

    fn media(&mut self, ev: MediaEvent) {
        let now = Instant::now();
        // Which peers get it, on which m-line and payload type, at what RTP time.
        let (room, codec, time, data) = match ev {
            MediaEvent::Video { room, codec, data, keyframe: _, rtp_90k, stamps } => {
                self.sent.push(stamps.emulated);
                (room, Some(codec), MediaTime::from_90khz(rtp_90k), data)
            }
            MediaEvent::Audio { room, data, rtp_48k } => {
                (room, None, MediaTime::new(rtp_48k, str0m::media::Frequency::FORTY_EIGHT_KHZ), data)
            }
            MediaEvent::Died { room, reason } => return self.room_died(&room, reason),
        };
        let kind = if codec.is_some() { "video" } else { "audio" };
        let sessions: Vec<SessionId> = self.book.sessions_in(&room).cloned().collect();
        for s in sessions {
            let Some(peer) = self.peers.get_mut(&s) else { continue };
            let Some(payloads) = peer.payloads else { continue };
            let target = match codec {
                Some(c) => payloads.video().filter(|(vc, _)| *vc == c).map(|(_, pt)| (peer.video, pt)),
                None => payloads.opus.map(|pt| (peer.audio, pt)),
            };
            let Some((mid, pt)) = target else { continue };
            self.polls.touch(&s);
            if let Some(mut w) = peer.rtc.writer(mid) {
                if codec.is_some() {
                    w = w.playout_delay(MediaTime::from_90khz(0), MediaTime::from_90khz(0));
                }
                match w.write(pt, now, time, Arc::clone(&data)) {
                    Ok(()) => metrics().sent_bytes.with_label_values(&[kind]).inc_by(data.len() as u64),
                    Err(e) => debug!(session = %s, error = %e, "media write failed"),
                }
            }
        }
    }

    /// Tells a room which codecs its connected viewers need.
    fn update_wanted(&self, room: &RoomId) {
        let Some(handle) = self.rooms.get(room) else { return };
        let codecs: Vec<VideoCodec> =
            self.book.sessions_in(room).filter_map(|s| self.peers.get(s)?.payloads?.video().map(|(c, _)| c)).collect();
        handle.set_wanted(codecs.contains(&VideoCodec::H264), codecs.contains(&VideoCodec::Vp8));
    }

    fn room_died(&mut self, room: &RoomId, reason: String) {
        self.status_stale = true;
        metrics().emulator_crashes.inc();
        let sessions = self.book.close(room);
        warn!(%room, %reason, players = sessions.len(), "room died");
        for s in sessions {
            self.drop_peer(&s);
            self.refuse(s, ErrorCode::RoomClosed, reason.clone());
        }
        self.stop_room(room);
        self.send(WorkerMsg::RoomClosed { room: room.clone() });
    }

    fn datagram(&mut self, data: &[u8], source: SocketAddr, local: SocketAddr) {
        let Ok(contents) = data.try_into() else { return };
        let input =
            Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents });
        // The peer this address spoke for last time, else whichever peer claims it.
        let known = self.sources.get(&source).filter(|s| self.peers.get(*s).is_some_and(|p| p.rtc.accepts(&input)));
        let session = match known {
            Some(s) => s.clone(),
            None => match self.peers.iter().find(|(_, p)| p.rtc.accepts(&input)) {
                Some((s, _)) => {
                    self.sources.insert(source, s.clone());
                    s.clone()
                }
                None => return debug!(%source, "datagram for no peer"),
            },
        };
        let Some(p) = self.peers.get_mut(&session) else { return };
        self.polls.touch(&session);
        if let Err(e) = p.rtc.handle_input(input) {
            debug!(error = %e, "peer rejected a datagram");
        }
    }

    /// Polls the peers that were fed something or whose timeout passed until each waits, then
    /// acts on what they reported; returns when the engine must wake for a peer's timeout.
    fn drive(&mut self, socket: &UdpSocket) -> Instant {
        let now = Instant::now();
        let mut actions = Vec::new();
        let mut losses = Vec::new();
        for (session, expired) in self.polls.take_due(now) {
            let Some(p) = self.peers.get_mut(&session) else { continue };
            if expired {
                if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                    debug!(%session, error = %e, "peer timeout failed");
                }
            }
            loop {
                match p.rtc.poll_output() {
                    Ok(Output::Transmit(t)) => {
                        if let Err(e) = socket.try_send_to(&t.contents, t.destination) {
                            debug!(error = %e, "UDP send dropped");
                        }
                    }
                    Ok(Output::Timeout(t)) => {
                        self.polls.set_deadline(&session, t);
                        break;
                    }
                    Ok(Output::Event(ev)) => match ev {
                        Event::Connected => actions.push(Action::Connected(session.clone())),
                        Event::KeyframeRequest(_) => actions.push(Action::Keyframe(session.clone())),
                        Event::ChannelData(d) => match PadState::decode(&d.data) {
                            Ok(pad) => actions.push(Action::Input(session.clone(), pad)),
                            Err(e) => debug!(%session, error = %e, "ignoring bad input packet"),
                        },
                        Event::PeerStats(st) => {
                            if let Some(rtt) = st.rtt {
                                metrics().peer_rtt.observe(rtt.as_secs_f64());
                            }
                            if let Some(loss) = st.egress_loss_fraction {
                                losses.push(f64::from(loss));
                            }
                        }
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                            debug!(%session, "ICE disconnected")
                        }
                        _ => {}
                    },
                    Err(e) => {
                        warn!(%session, error = %e, "peer failed");
                        p.rtc.disconnect();
                        break;
                    }
                }
            }
            if !p.rtc.is_alive() {
                actions.push(Action::Dead(session.clone()));
            }
        }
        if !losses.is_empty() {
            metrics().peer_loss.set(losses.iter().sum::<f64>() / losses.len() as f64);
        }
        for a in actions {
            self.act(a);
        }
        if self.polls.has_touched() {
            // Acting (a keyframe request, a closed room) fed some peer: poll again at once.
            return now;
        }
        let idle = now + Duration::from_secs(1);
        self.polls.next_deadline().map_or(idle, |t| t.min(idle))
    }

    /// Once a second: exports the emulators' counters and re-measures capacity.
    fn tick(&mut self) {
        self.status_stale = true;
        let m = metrics();
        let now = Instant::now();
        let unanswered: Vec<SessionId> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.answered() && now.duration_since(p.created) > CONNECT_TIMEOUT)
            .map(|(s, _)| s.clone())
            .collect();
        for s in unanswered {
            self.act(Action::Dead(s));
        }
        let cpu = retrofarm_emulator::process_cpu_time();
        let mut used = cpu.saturating_sub(self.meter.last_cpu);
        let mut seen = HashMap::new();
        for (id, handle) in &self.rooms {
            let Some(emu) = handle.room().emulator() else { continue };
            let c = emu.counters();
            let cur = Seen {
                published: c.frames_published,
                late: c.frames_late,
                missed: c.reader.missed,
                skipped: c.reader.skipped,
                emulate_ns: c.emulate_ns_total,
            };
            let prev = self.meter.seen.get(id).copied().unwrap_or_default();
            m.frames_emulated.with_label_values(&[CPU]).inc_by(cur.published.saturating_sub(prev.published));
            m.frames_late.with_label_values(&[CPU]).inc_by(cur.late.saturating_sub(prev.late));
            m.frames_dropped.with_label_values(&["ring_overrun", CPU]).inc_by(cur.missed.saturating_sub(prev.missed));
            m.frames_dropped.with_label_values(&["encoder_busy", CPU]).inc_by(cur.skipped.saturating_sub(prev.skipped));
            used += Duration::from_nanos(cur.emulate_ns.saturating_sub(prev.emulate_ns));
            seen.insert(id.clone(), cur);
        }
        // Only rooms measured over the whole interval count towards the cost.
        let steady = seen.keys().filter(|id| self.meter.seen.contains_key(*id)).count();
        if steady > 0 && steady == seen.len() {
            self.meter.cost.sample(used, now.duration_since(self.meter.last), steady);
        }
        self.meter.seen = seen;
        self.meter.last = now;
        self.meter.last_cpu = cpu;
        self.meter.capacity =
            admission::capacity(self.cfg.cpu_budget_cores, self.meter.cost.per_room(), self.cfg.max_rooms);
        let rooms = self.book.room_count() as i64;
        m.rooms.set(rooms);
        m.viewers.set(self.peers.values().filter(|p| p.payloads.is_some()).count() as i64);
        m.capacity_rooms.set(i64::from(self.meter.capacity));
        m.capacity_free.set((i64::from(self.meter.capacity) - rooms).max(0));
        m.room_cpu.set(self.meter.cost.per_room());
    }

    fn room_of(&self, session: &SessionId) -> Option<(&RoomHandle, u8)> {
        let (room, port) = self.book.session(session)?;
        Some((self.rooms.get(room)?, *port))
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Connected(s) => {
                let Some(peer) = self.peers.get_mut(&s) else { return };
                let payloads = peer.choose_payloads();
                info!(session = %s, ?payloads, "peer connected");
                let Some((codec, _)) = payloads.video() else {
                    let msg = "your browser accepts neither H264 nor VP8 video".to_string();
                    return self.end(&s, ErrorCode::Internal, msg);
                };
                // A new viewer needs a keyframe to start decoding.
                if let Some((room, _)) = self.room_of(&s) {
                    room.request_keyframe(codec);
                }
                if let Some((room, _)) = self.book.session(&s).cloned() {
                    self.update_wanted(&room);
                }
            }
            Action::Keyframe(s) => {
                let codec = self.peers.get(&s).and_then(|p| p.payloads?.video()).map(|(c, _)| c);
                if let (Some((room, _)), Some(codec)) = (self.room_of(&s), codec) {
                    room.request_keyframe(codec);
                }
            }
            Action::Input(s, pad) => {
                let Some(pad) = self.peers.get_mut(&s).and_then(|p| p.pad.apply(pad)) else { return };
                if let Some((room, port)) = self.room_of(&s) {
                    room.set_input(port, pad.buttons, pad.axes);
                }
            }
            Action::Dead(s) => self.end(
                &s,
                ErrorCode::Internal,
                "the WebRTC connection to the game server was lost or never established".into(),
            ),
        }
    }
}

fn new_room_id() -> RoomId {
    RoomId::new(format!("{:08x}", rand::random::<u32>())).expect("hex is a valid id")
}
