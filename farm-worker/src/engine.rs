//! The worker's decision logic: sessions, their WebRTC peers, which room each is in, and what
//! the rooms must do. Sans-IO in the manner of str0m's `Rtc` and quinn-proto: inputs come in
//! through [`Engine::handle`] with the current time, and [`Engine::poll_output`] hands out what
//! to do (datagrams to send, messages for the coordinator, rooms to start or stop, keyframes,
//! input) until it returns [`Output::Timeout`]. No socket, no clock, no metrics: the driver
//! (`driver.rs`) owns those, and tests run the engine on a virtual clock.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use retrofarm_media::VideoCodec;
use retrofarm_proto::browser::GameInfo;
use retrofarm_proto::control::{CoordMsg, WorkerMsg};
use retrofarm_proto::game::{GameCommand, GameReply, Screen};
use retrofarm_proto::ids::{RoomId, SessionId};
use retrofarm_proto::input::PadState;
use retrofarm_proto::ErrorCode;
use str0m::bwe::BweKind;
use str0m::media::{Frequency, MediaTime};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Event, IceConnectionState};
use tracing::{debug, info, warn};

use crate::congestion::{self, GroupRate, RateConfig};
use crate::keyframes::{KeyframeLimit, KEYFRAME_INTERVAL};
use crate::library::Library;
use crate::link::Status;
use crate::peer::Peer;
use crate::polling::PollSchedule;
use crate::roombook::{RoomBook, SPECTATOR};

/// How long a peer may wait for the browser's answer by default. Below the ~23 s after which
/// the DTLS handshake, retrying from 1 s with doubling and ±25 % jitter, gives up on its own.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How often sessions are checked for a missed answer.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// Game commands a session may have waiting behind the one being carried out; a flood beyond
/// this is dropped.
const MAX_COMMANDS: usize = 16;
/// Rounds of peer polling per [`Engine::poll_output`] before the driver gets a turn.
const MAX_ROUNDS: usize = 8;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// ICE host candidates of the shared UDP socket.
    pub candidates: Vec<SocketAddr>,
    /// How long a peer may wait for the browser's answer.
    pub connect_timeout: Duration,
    /// How long a room whose last player left keeps running for one to come back (a page
    /// reload, a network change) before it closes; zero: it closes at once.
    pub linger: Duration,
    /// Congestion control: the video bitrate's limits, and whether it follows the links.
    pub rate: RateConfig,
}

/// Encoded media from a room, on its way to the room's viewers.
#[derive(Debug, Clone)]
pub enum Media {
    /// One encoded video frame.
    Video {
        /// The room.
        room: RoomId,
        /// Its codec: only viewers that get this codec are sent it.
        codec: VideoCodec,
        /// The frame, shared by every viewer of that codec.
        data: Arc<[u8]>,
        /// RTP time, 90 kHz.
        rtp_90k: u64,
        /// When the emulator finished the frame (CLOCK_MONOTONIC ns), for the "sent" stage.
        emulated_ns: u64,
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
}

/// Something that happened, for the engine to act on.
#[derive(Debug)]
pub enum Input<'a> {
    /// A command from the coordinator.
    Command(CoordMsg),
    /// Encoded media from a room.
    Media(Media),
    /// A datagram arrived on the shared socket.
    Datagram {
        /// Who sent it.
        source: SocketAddr,
        /// The local address it arrived on.
        destination: SocketAddr,
        /// Its bytes.
        contents: &'a [u8],
    },
    /// The shape a room's picture is to be shown at, when it is first known and when it
    /// changes: its viewers' pages hear it on their `control` channel.
    Screen {
        /// The room.
        room: RoomId,
        /// Its shape.
        screen: Screen,
    },
    /// A room stopped on its own (its emulator died, failed to start or its encoder failed).
    RoomEnded {
        /// The room.
        room: RoomId,
        /// What happened, for the players.
        reason: String,
    },
    /// How many rooms this host can hold, as the driver last measured.
    Capacity(u32),
    /// The answer to a player's [`Output::Game`] command, for their `control` channel.
    GameReply {
        /// The player's session.
        session: SessionId,
        /// The answer.
        reply: GameReply,
    },
    /// What the driver found for an [`Output::Resume`]: the game the room's autosave is of,
    /// or why it cannot resume.
    Resumed {
        /// The room.
        room: RoomId,
        /// The game's name, or the reason for the players.
        game: Result<String, String>,
    },
    /// The host is going down (SIGTERM, an upgrade): no new rooms from now on (the coordinator
    /// hears the host is full), rooms nobody plays close at once; running games go on.
    Drain,
    /// The drain is over: every room closes (and is saved by the driver), its players are told
    /// `message` with `worker_lost`, which has their page offer to continue elsewhere.
    Shutdown {
        /// What the players read.
        message: String,
    },
    /// The games folder was scanned again: new rooms start from this library (running ones
    /// go on with their game), and the coordinator hears the new list if it changed.
    Library(Library),
    /// Only time passed.
    Timeout,
}

/// Something for the driver to do.
#[derive(Debug)]
pub enum Output {
    /// Send a datagram on the shared socket.
    Transmit(Transmit),
    /// Send a message to the coordinator.
    Coordinator(WorkerMsg),
    /// Start a room's emulator.
    StartRoom(RoomStart),
    /// Stop a room and free what it holds.
    StopRoom(RoomId),
    /// The video codecs a room's connected viewers need (it encodes only those).
    WantedCodecs {
        /// The room.
        room: RoomId,
        /// The codecs, each once.
        codecs: Vec<VideoCodec>,
    },
    /// The room's next frame in `codec` must be a keyframe.
    Keyframe {
        /// The room.
        room: RoomId,
        /// The codec.
        codec: VideoCodec,
    },
    /// The room's `codec` stream must follow a new bitrate (its viewers' links changed).
    VideoRate {
        /// The room.
        room: RoomId,
        /// The codec.
        codec: VideoCodec,
        /// Video bits per second.
        bitrate_bps: u32,
    },
    /// A player's pad changed.
    Pad {
        /// The room.
        room: RoomId,
        /// The player's port, 1..=4.
        port: u8,
        /// The new state.
        pad: PadState,
    },
    /// A player's game command (save, load, slots, reset): the driver carries it out and
    /// answers with [`Input::GameReply`].
    Game {
        /// The room.
        room: RoomId,
        /// The player's session.
        session: SessionId,
        /// The command.
        command: GameCommand,
    },
    /// A player opened a room this worker does not run: find the room's autosave and answer
    /// with [`Input::Resumed`]; the room then starts from it ([`RoomStart::resume`]).
    Resume(RoomId),
    /// The status the link reports changed.
    Status(Status),
    /// Nothing more until this time, or until the next input.
    Timeout(Instant),
}

/// What a new room runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomStart {
    /// The room.
    pub room: RoomId,
    /// The libretro core.
    pub core: PathBuf,
    /// The ROM.
    pub rom: PathBuf,
    /// The game's name.
    pub game: String,
    /// Start from the room's autosave (found by the driver for [`Output::Resume`]).
    pub resume: bool,
}

/// Cumulative counters, for the driver to export.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    /// Video payload bytes written to peers.
    pub video_bytes: u64,
    /// Audio payload bytes written to peers.
    pub audio_bytes: u64,
    /// Rooms that ended on their own (emulator crash, start or encoder failure).
    pub rooms_failed: u64,
    /// Viewers connected now.
    pub viewers: usize,
    /// Rooms running now.
    pub rooms: usize,
    /// Times a room's bitrate was lowered to its viewers' links.
    pub rate_decreases: u64,
    /// Times it was raised again.
    pub rate_increases: u64,
    /// Keyframe requests held back to the interval's end (a PLI burst).
    pub keyframes_deferred: u64,
    /// RTP packets sent to viewers, retransmissions included (str0m's egress stats).
    pub packets_sent: u64,
    /// Packets the viewers reported lost (RTCP receiver reports, cumulative).
    pub packets_lost: u64,
}

/// What a viewer's page measured of its stream ([`GameCommand::Report`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewerReport {
    /// Video frames decoded.
    pub frames: u32,
    /// Over this many milliseconds.
    pub ms: u32,
    /// Freezes.
    pub freezes: u32,
    /// Their total length in milliseconds.
    pub freeze_ms: u32,
}

/// Measurements that come one by one, for the driver's histograms.
#[derive(Debug, Default)]
pub struct Samples {
    /// Round-trip times reported by peers.
    pub rtt: Vec<Duration>,
    /// Emulated-at stamps (CLOCK_MONOTONIC ns) of video frames written to peers since the
    /// last call: they leave with the transmits the driver sends next.
    pub sent_emulated_ns: Vec<u64>,
    /// What viewers' pages measured.
    pub viewer_reports: Vec<ViewerReport>,
}

/// One browser session on this worker.
#[derive(Debug)]
struct Session {
    peer: Peer,
    /// The remote address its datagrams last came from.
    source: Option<SocketAddr>,
    /// The bandwidth estimate of its link (str0m's TWCC estimator), once there is one.
    estimate: Option<u64>,
    /// Per media line, the cumulative packets sent and lost at the last egress stats.
    egress: HashMap<str0m::media::Mid, (u64, u64)>,
}

/// Something learned while polling a peer, acted on afterwards.
enum Action {
    Connected(SessionId),
    Keyframe(SessionId),
    /// The session's link estimate or loss changed.
    Rate(SessionId),
    Input(SessionId, PadState),
    Game(SessionId, Vec<u8>),
    /// The session's `control` channel opened: it hears the room's screen.
    ControlOpen(SessionId),
    Dead(SessionId),
}

/// The engine.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    library: Library,
    /// The library's games as reported ([`Status::games`]).
    games: Arc<[GameInfo]>,
    /// Which session is in which room, on which port.
    book: RoomBook,
    sessions: HashMap<SessionId, Session>,
    /// The session each remote address last spoke for: a datagram finds its peer without
    /// asking every peer.
    sources: HashMap<SocketAddr, SessionId>,
    /// Which peers to poll next, and when.
    polls: PollSchedule<SessionId>,
    queue: VecDeque<Output>,
    now: Instant,
    capacity: u32,
    next_housekeeping: Instant,
    last_status: Option<Status>,
    /// Rooms, sessions or capacity may have changed since the status was last compared.
    status_stale: bool,
    counters: Counters,
    losses: HashMap<SessionId, f64>,
    samples: Samples,
    /// Sessions waiting for a room to resume from its autosave: (session, port).
    resuming: HashMap<RoomId, Vec<(SessionId, u8)>>,
    /// Rooms without players, and since when: they close after [`EngineConfig::linger`].
    empty_since: HashMap<RoomId, Instant>,
    /// Per session, its game commands in order: the first is being carried out by the driver;
    /// a command that was refused here waits as its answer, so answers go out in order.
    commands: HashMap<SessionId, VecDeque<Result<GameCommand, GameReply>>>,
    /// Each (room, codec) stream's bitrate.
    rates: HashMap<(RoomId, VideoCodec), GroupRate>,
    /// Each stream's keyframes, at most one per [`KEYFRAME_INTERVAL`].
    keyframes: KeyframeLimit<(RoomId, VideoCodec)>,
    /// Draining ([`Input::Drain`]): no new rooms.
    draining: bool,
    /// Each running room's picture shape, as its room last reported it.
    screens: HashMap<RoomId, Screen>,
}

impl Engine {
    /// A new engine at time `now`, with the games of `library` and room for `capacity` rooms
    /// until the driver measures otherwise.
    pub fn new(cfg: EngineConfig, library: Library, capacity: u32, now: Instant) -> Self {
        Self {
            cfg,
            games: library.infos().into(),
            library,
            book: RoomBook::new(),
            sessions: HashMap::new(),
            sources: HashMap::new(),
            polls: PollSchedule::new(),
            queue: VecDeque::new(),
            now,
            capacity,
            next_housekeeping: now + HOUSEKEEPING,
            last_status: None,
            status_stale: true,
            counters: Counters::default(),
            losses: HashMap::new(),
            samples: Samples::default(),
            resuming: HashMap::new(),
            empty_since: HashMap::new(),
            commands: HashMap::new(),
            rates: HashMap::new(),
            keyframes: KeyframeLimit::new(KEYFRAME_INTERVAL),
            draining: false,
            screens: HashMap::new(),
        }
    }

    /// Feeds one input that happened at `now`.
    pub fn handle(&mut self, now: Instant, input: Input<'_>) {
        self.now = self.now.max(now);
        match input {
            Input::Command(cmd) => self.command(cmd),
            Input::Media(m) => self.media(m),
            Input::Datagram { source, destination, contents } => self.datagram(source, destination, contents),
            Input::RoomEnded { room, reason } => {
                if self.close_room(&room, ErrorCode::RoomClosed, reason) {
                    self.counters.rooms_failed += 1;
                }
            }
            Input::Drain => {
                if !self.draining {
                    self.draining = true;
                    self.status_stale = true;
                    info!(rooms = self.book.room_count(), "draining: no new rooms; running games go on");
                    let empty: Vec<RoomId> = self.empty_since.keys().cloned().collect();
                    for room in empty {
                        self.close_empty(&room);
                    }
                }
            }
            Input::Shutdown { message } => {
                self.draining = true;
                for room in self.book.room_ids() {
                    self.close_room(&room, ErrorCode::WorkerLost, message.clone());
                }
            }
            Input::Capacity(c) => {
                self.status_stale |= self.capacity != c;
                self.capacity = c;
            }
            Input::GameReply { session, reply } => {
                // The command being carried out is answered; then the next ones.
                if let Some(q) = self.commands.get_mut(&session) {
                    q.pop_front();
                }
                self.send_control(&session, &reply);
                self.next_command(&session);
            }
            Input::Resumed { room, game } => self.resumed(room, game),
            Input::Library(library) => {
                let games: Arc<[GameInfo]> = library.infos().into();
                self.library = library;
                if games != self.games {
                    info!(games = games.len(), "the games changed");
                    self.games = games;
                    self.status_stale = true;
                    self.send(WorkerMsg::Games { games: self.games.to_vec() });
                }
            }
            Input::Screen { room, screen } => {
                if !self.book.has_room(&room) {
                    return;
                }
                self.screens.insert(room.clone(), screen);
                let viewers: Vec<SessionId> = self.book.sessions_in(&room).cloned().collect();
                for id in viewers {
                    self.send_control(&id, &GameReply::Screen(screen));
                }
            }
            Input::Timeout => {}
        }
    }

    /// The next thing to do; [`Output::Timeout`] when there is nothing until that time or the
    /// next input.
    pub fn poll_output(&mut self) -> Output {
        for _ in 0..MAX_ROUNDS {
            if let Some(o) = self.queue.pop_front() {
                return o;
            }
            if self.now >= self.next_housekeeping {
                self.housekeeping();
                continue;
            }
            if self.keyframes.next_due().is_some_and(|t| t <= self.now) {
                for (room, codec) in self.keyframes.take_due(self.now) {
                    self.queue.push_back(Output::Keyframe { room, codec });
                }
                continue;
            }
            if !self.poll_peers() {
                break;
            }
        }
        if let Some(o) = self.queue.pop_front() {
            return o;
        }
        // Rebuilt only after rooms, sessions or capacity changed: not on every media event.
        if std::mem::take(&mut self.status_stale) {
            let status = self.status();
            if self.last_status.as_ref() != Some(&status) {
                self.last_status = Some(status.clone());
                return Output::Status(status);
            }
        }
        if self.polls.has_touched() {
            // Polling rounds ran out with work left: come back at once.
            return Output::Timeout(self.now);
        }
        let next = [self.polls.next_deadline(), self.keyframes.next_due()]
            .into_iter()
            .flatten()
            .fold(self.next_housekeeping, Instant::min);
        Output::Timeout(next)
    }

    /// Counters for the driver to export.
    pub fn counters(&self) -> Counters {
        let viewers = self.sessions.values().filter(|s| s.peer.payloads.is_some()).count();
        Counters { viewers, rooms: self.book.room_count(), ..self.counters }
    }

    /// Takes the samples gathered since the last call.
    pub fn take_samples(&mut self) -> Samples {
        std::mem::take(&mut self.samples)
    }

    /// Rooms open (running, starting or waiting for their players).
    pub fn room_count(&self) -> usize {
        self.book.room_count()
    }

    /// What the coordinator is told: load and rooms.
    pub fn status(&self) -> Status {
        let capacity = if self.draining { 0 } else { self.capacity };
        Status { load: self.book.load(capacity), rooms: self.book.infos(), games: self.games.clone() }
    }

    fn send(&mut self, msg: WorkerMsg) {
        self.queue.push_back(Output::Coordinator(msg));
    }

    fn command(&mut self, cmd: CoordMsg) {
        match cmd {
            CoordMsg::StartSession { session, game, room, port } => self.start(session, game, room, port),
            CoordMsg::Answer { session, sdp } => {
                let Some(s) = self.sessions.get_mut(&session) else { return };
                self.polls.touch(&session);
                if let Err(e) = s.peer.accept_answer(&sdp) {
                    warn!(%session, error = %format!("{e:#}"), "bad SDP answer");
                    self.end(&session, ErrorCode::Malformed, format!("the browser's SDP answer was refused: {e:#}"));
                }
            }
            CoordMsg::Ice { session, candidate } => {
                let (Some(s), Some(c)) = (self.sessions.get_mut(&session), candidate) else { return };
                self.polls.touch(&session);
                if let Err(e) = s.peer.add_remote_candidate(&c) {
                    debug!(%session, error = %e, "ignoring ICE candidate");
                }
            }
            CoordMsg::EndSession { session } => self.remove(&session),
            CoordMsg::Registered { .. } | CoordMsg::Refused { .. } => {}
        }
    }

    fn refuse(&mut self, session: SessionId, code: ErrorCode, message: String) {
        self.send(WorkerMsg::SessionEnded { session, code, message });
    }

    fn start(&mut self, session: SessionId, game: String, room: Option<RoomId>, port: u8) {
        if let Some(r) = room.as_ref().filter(|r| !self.book.has_room(r)) {
            // Not running here: it ended, or ran on a worker that is gone. It resumes from its
            // autosave, if it has one.
            let waiting = self.resuming.entry(r.clone()).or_default();
            if waiting.is_empty() {
                self.queue.push_back(Output::Resume(r.clone()));
            }
            return waiting.push((session, port));
        }
        self.join(session, game, room, port, None)
    }

    /// A room's autosave was looked up: its waiting sessions start it (the first) and join it,
    /// or are told why not.
    fn resumed(&mut self, room: RoomId, game: Result<String, String>) {
        let waiting = self.resuming.remove(&room).unwrap_or_default();
        for (session, port) in waiting {
            match &game {
                Ok(_) if self.book.has_room(&room) => self.join(session, String::new(), Some(room.clone()), port, None),
                Ok(game) => self.join(session, game.clone(), None, port, Some(room.clone())),
                Err(why) => self.refuse(session, ErrorCode::UnknownRoom, why.clone()),
            }
        }
    }

    /// Joins `room`, or starts `game` in a new room (with the id `resume` when it resumes one
    /// from its autosave).
    fn join(&mut self, session: SessionId, game: String, room: Option<RoomId>, port: u8, resume: Option<RoomId>) {
        // A new room needs its game and that game's core; joining a room needs neither.
        let new_room = match (&room, self.library.get(&game)) {
            (Some(_), _) => None,
            (None, None) => {
                return self.refuse(session, ErrorCode::UnknownGame, format!("no game named {game:?} on this worker"))
            }
            (None, Some(g)) => match &g.core_path {
                Some(core) => Some((core.clone(), g.rom.clone())),
                None => {
                    let msg = format!("this server lacks the {} emulator core; its operator must install it", g.core);
                    warn!(core = %g.core, "libretro core not found: run scripts/fetch-cores.sh or set cores_dir");
                    return self.refuse(session, ErrorCode::Internal, msg);
                }
            },
        };
        let can_create = !self.draining && (self.book.room_count() as u32) < self.capacity;
        self.status_stale = true;
        let id = resume.clone().unwrap_or_else(new_room_id);
        let joined = match self.book.join(session.clone(), &game, room.as_ref(), port, id, can_create) {
            Ok(j) => j,
            Err(r) => return self.refuse(session, r.code, r.message),
        };
        let (peer, sdp) = match Peer::offer(self.now, &self.cfg.candidates, &self.cfg.rate) {
            Ok(x) => x,
            Err(e) => {
                self.remove(&session);
                return self.refuse(session, ErrorCode::Internal, format!("cannot create the WebRTC peer: {e:#}"));
            }
        };
        if let (true, Some((core, rom))) = (joined.created, new_room) {
            let start =
                RoomStart { room: joined.room.clone(), core, rom, game: joined.game.clone(), resume: resume.is_some() };
            self.queue.push_back(Output::StartRoom(start));
        }
        if self.empty_since.remove(&joined.room).is_some() {
            info!(room = %joined.room, "a player came back to the waiting room");
        }
        info!(%session, room = %joined.room, game = %joined.game, port, created = joined.created, "session started");
        self.sessions.insert(session.clone(), Session { peer, source: None, estimate: None, egress: HashMap::new() });
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

    /// Forgets a session and leaves its room (which closes when it was the last one in it).
    fn remove(&mut self, session: &SessionId) {
        self.status_stale = true;
        for waiting in self.resuming.values_mut() {
            waiting.retain(|(s, _)| s != session);
        }
        self.commands.remove(session);
        self.drop_peer(session);
        match self.book.leave(session) {
            Some((room, true)) if self.cfg.linger.is_zero() || self.draining => self.close_empty(&room),
            Some((room, true)) => {
                info!(%room, linger = ?self.cfg.linger, "last player left: the room waits for one to come back");
                self.empty_since.insert(room.clone(), self.now);
                // Nobody watches: it encodes nothing meanwhile.
                self.update_wanted(&room);
            }
            Some((room, false)) => self.update_wanted(&room),
            None => {}
        }
    }

    /// Starts the session's next game command: answers refused ones at once, hands the first
    /// real one to the driver (whose answer, [`Input::GameReply`], comes before the next).
    fn next_command(&mut self, session: &SessionId) {
        loop {
            let front = self.commands.get(session).and_then(|q| q.front().cloned());
            let command = match front {
                None => {
                    self.commands.remove(session);
                    return;
                }
                Some(Err(reply)) => {
                    self.commands.get_mut(session).map(VecDeque::pop_front);
                    self.send_control(session, &reply);
                    continue;
                }
                Some(Ok(command)) => command,
            };
            let refused = |message: &str| GameReply::Failed { command: command.kind().into(), message: message.into() };
            let reply = match (self.place(session), &command) {
                (None, _) => refused("you are not in a room"),
                (Some((_, SPECTATOR)), GameCommand::Load { .. } | GameCommand::Reset) => {
                    refused("spectators cannot change the game: take a player port first")
                }
                (Some((room, _)), GameCommand::Port { port }) => self.switch_port(session, room, *port),
                (Some((room, _)), _) => {
                    info!(%session, %room, command = command.kind(), "game command");
                    return self.queue.push_back(Output::Game { room, session: session.clone(), command });
                }
            };
            self.commands.get_mut(session).map(VecDeque::pop_front);
            self.send_control(session, &reply);
        }
    }

    /// Moves a player to another port of its room (or to watching); the port it leaves has its
    /// buttons released.
    fn switch_port(&mut self, session: &SessionId, room: RoomId, port: u8) -> GameReply {
        match self.book.switch(session, port) {
            Ok(old) => {
                info!(%session, %room, from = old, to = port, "player switched ports");
                if old != SPECTATOR && old != port {
                    self.queue.push_back(Output::Pad { room, port: old, pad: PadState::default() });
                }
                if let Some(s) = self.sessions.get_mut(session) {
                    // The new port starts from a released pad and the sender's next sequence.
                    s.peer.pad = Default::default();
                }
                GameReply::Port { port }
            }
            Err(r) => GameReply::Failed { command: "port".into(), message: r.message },
        }
    }

    /// Writes a game reply on the session's `control` channel.
    fn send_control(&mut self, session: &SessionId, reply: &GameReply) {
        if let Some(s) = self.sessions.get_mut(session) {
            if !s.peer.send_control(&reply.encode()) {
                debug!(%session, "control channel closed; reply dropped");
            }
            self.polls.touch(session);
        }
    }

    /// Closes a room nobody is in.
    fn close_empty(&mut self, room: &RoomId) {
        self.empty_since.remove(room);
        if self.book.close(room).is_some() {
            info!(%room, "room closed: last player left");
            self.status_stale = true;
            self.queue.push_back(Output::StopRoom(room.clone()));
            self.send(WorkerMsg::RoomClosed { room: room.clone() });
            self.forget_streams(room);
        }
    }

    /// Disconnects and forgets a session's peer.
    fn drop_peer(&mut self, session: &SessionId) {
        if let Some(mut s) = self.sessions.remove(session) {
            s.peer.rtc.disconnect();
            if let Some(addr) = s.source {
                self.sources.remove(&addr);
            }
        }
        self.polls.remove(session);
        self.losses.remove(session);
    }

    fn media(&mut self, m: Media) {
        let now = self.now;
        // Which peers get it, on which m-line and payload type, at what RTP time.
        let (room, codec, time, data) = match m {
            Media::Video { room, codec, data, rtp_90k, emulated_ns } => {
                self.samples.sent_emulated_ns.push(emulated_ns);
                (room, Some(codec), MediaTime::from_90khz(rtp_90k), data)
            }
            Media::Audio { room, data, rtp_48k } => {
                (room, None, MediaTime::new(rtp_48k, Frequency::FORTY_EIGHT_KHZ), data)
            }
        };
        let members: Vec<SessionId> = self.book.sessions_in(&room).cloned().collect();
        for id in members {
            let Some(s) = self.sessions.get_mut(&id) else { continue };
            let Some(payloads) = s.peer.payloads else { continue };
            let target = match codec {
                Some(c) => payloads.video().filter(|(vc, _)| *vc == c).map(|(_, pt)| (s.peer.video, pt)),
                None => payloads.opus.map(|pt| (s.peer.audio, pt)),
            };
            let Some((mid, pt)) = target else { continue };
            let Some(mut w) = s.peer.rtc.writer(mid) else { continue };
            if codec.is_some() {
                w = w.playout_delay(MediaTime::from_90khz(0), MediaTime::from_90khz(0));
            }
            match w.write(pt, now, time, Arc::clone(&data)) {
                Ok(()) if codec.is_some() => self.counters.video_bytes += data.len() as u64,
                Ok(()) => self.counters.audio_bytes += data.len() as u64,
                Err(e) => debug!(session = %id, error = %e, "media write failed"),
            }
            self.polls.touch(&id);
        }
    }

    /// Tells a room which codecs its connected viewers need.
    fn update_wanted(&mut self, room: &RoomId) {
        let mut codecs: Vec<VideoCodec> = self
            .book
            .sessions_in(room)
            .filter_map(|s| self.sessions.get(s)?.peer.payloads?.video().map(|(c, _)| c))
            .collect();
        codecs.sort();
        codecs.dedup();
        for codec in &codecs {
            self.update_rate(room, *codec);
        }
        self.queue.push_back(Output::WantedCodecs { room: room.clone(), codecs });
    }

    /// The room and codec of the stream a session is sent.
    fn stream_of(&self, session: &SessionId) -> Option<(RoomId, VideoCodec)> {
        let (codec, _) = self.sessions.get(session)?.peer.payloads?.video()?;
        Some((self.place(session)?.0, codec))
    }

    /// Asks for a keyframe of a stream, at most one per [`KEYFRAME_INTERVAL`]: a request inside
    /// the interval is answered at its end.
    fn keyframe(&mut self, room: RoomId, codec: VideoCodec) {
        if self.keyframes.request(self.now, (room.clone(), codec)) {
            self.queue.push_back(Output::Keyframe { room, codec });
        } else {
            self.counters.keyframes_deferred += 1;
        }
    }

    /// Sets a (room, codec) stream's bitrate from its viewers' links: the slowest one's budget
    /// (see [`congestion`]).
    fn update_rate(&mut self, room: &RoomId, codec: VideoCodec) {
        let cfg = self.cfg.rate;
        if !cfg.enabled {
            return;
        }
        let budgets: Vec<u64> = self
            .book
            .sessions_in(room)
            .filter(|id| self.stream_of(id).is_some_and(|(_, c)| c == codec))
            .filter_map(|id| {
                let estimate = self.sessions.get(id)?.estimate?;
                Some(congestion::viewer_budget(estimate, self.losses.get(id).copied().unwrap_or(0.0)))
            })
            .collect();
        let Some(budget) = congestion::group_budget(&cfg, budgets) else { return };
        let now = self.now;
        let rate = self.rates.entry((room.clone(), codec)).or_insert_with(|| GroupRate::new(now, cfg.ceiling_bps));
        let before = rate.bps();
        if let Some(bitrate_bps) = rate.update(now, budget) {
            if bitrate_bps < before {
                self.counters.rate_decreases += 1;
            } else {
                self.counters.rate_increases += 1;
            }
            debug!(%room, ?codec, from = before, to = bitrate_bps, "video bitrate follows the viewers' links");
            self.queue.push_back(Output::VideoRate { room: room.clone(), codec, bitrate_bps });
        }
    }

    /// Forgets a closed room's streams.
    fn forget_streams(&mut self, room: &RoomId) {
        self.screens.remove(room);
        self.rates.retain(|(r, _), _| r != room);
        self.keyframes.forget(|(r, _)| r == room);
    }

    /// Closes a room with players in it (it stopped on its own, or the host shuts down): its
    /// players are told why with `code`, the coordinator once. False when it was closed already.
    fn close_room(&mut self, room: &RoomId, code: ErrorCode, reason: String) -> bool {
        self.empty_since.remove(room);
        let Some(members) = self.book.close(room) else {
            // Already closed (the last player left, or it was reported before).
            debug!(%room, "ended room was already closed");
            return false;
        };
        self.status_stale = true;
        warn!(%room, %reason, players = members.len(), "room ended");
        for s in members {
            self.drop_peer(&s);
            self.refuse(s, code, reason.clone());
        }
        self.queue.push_back(Output::StopRoom(room.clone()));
        self.send(WorkerMsg::RoomClosed { room: room.clone() });
        self.forget_streams(room);
        true
    }

    fn datagram(&mut self, source: SocketAddr, destination: SocketAddr, contents: &[u8]) {
        let Ok(contents) = contents.try_into() else { return };
        let input = str0m::Input::Receive(self.now, Receive { proto: Protocol::Udp, source, destination, contents });
        // The peer this address spoke for last time, else whichever peer claims it.
        let known = self
            .sources
            .get(&source)
            .filter(|id| self.sessions.get(*id).is_some_and(|s| s.peer.rtc.accepts(&input)))
            .cloned();
        let id = match known {
            Some(id) => id,
            None => match self.sessions.iter().find(|(_, s)| s.peer.rtc.accepts(&input)) {
                Some((id, _)) => id.clone(),
                None => return debug!(%source, "datagram for no peer"),
            },
        };
        let Some(s) = self.sessions.get_mut(&id) else { return };
        if s.source != Some(source) {
            if let Some(old) = s.source.replace(source) {
                self.sources.remove(&old);
            }
            self.sources.insert(source, id.clone());
        }
        self.polls.touch(&id);
        if let Err(e) = s.peer.rtc.handle_input(input) {
            debug!(error = %e, "peer rejected a datagram");
        }
    }

    /// Polls the peers that were fed something or whose timeout passed until each waits, then
    /// acts on what they reported. False when no peer was due.
    fn poll_peers(&mut self) -> bool {
        let now = self.now;
        let due = self.polls.take_due(now);
        if due.is_empty() {
            return false;
        }
        let mut actions = Vec::new();
        for (id, expired) in due {
            let Some(s) = self.sessions.get_mut(&id) else { continue };
            let rtc = &mut s.peer.rtc;
            if expired {
                if let Err(e) = rtc.handle_input(str0m::Input::Timeout(now)) {
                    debug!(session = %id, error = %e, "peer timeout failed");
                }
            }
            loop {
                match rtc.poll_output() {
                    Ok(str0m::Output::Transmit(t)) => self.queue.push_back(Output::Transmit(t)),
                    Ok(str0m::Output::Timeout(t)) => {
                        self.polls.set_deadline(&id, t);
                        break;
                    }
                    Ok(str0m::Output::Event(ev)) => match ev {
                        Event::Connected => actions.push(Action::Connected(id.clone())),
                        Event::KeyframeRequest(_) => actions.push(Action::Keyframe(id.clone())),
                        Event::ChannelOpen(cid, _) if cid == s.peer.control => {
                            actions.push(Action::ControlOpen(id.clone()));
                        }
                        Event::ChannelData(d) if d.id == s.peer.control => {
                            actions.push(Action::Game(id.clone(), d.data));
                        }
                        Event::ChannelData(d) => match PadState::decode(&d.data) {
                            Ok(pad) => actions.push(Action::Input(id.clone(), pad)),
                            Err(e) => debug!(session = %id, error = %e, "ignoring bad input packet"),
                        },
                        Event::MediaEgressStats(st) => {
                            let lost = st.remote.as_ref().map_or(0, |r| r.packets_lost);
                            let (sent0, lost0) = s.egress.insert(st.mid, (st.packets, lost)).unwrap_or((0, 0));
                            self.counters.packets_sent += st.packets.saturating_sub(sent0);
                            self.counters.packets_lost += lost.saturating_sub(lost0);
                        }
                        Event::PeerStats(st) => {
                            if let Some(rtt) = st.rtt {
                                self.samples.rtt.push(rtt);
                            }
                            if let Some(loss) = st.egress_loss_fraction {
                                self.losses.insert(id.clone(), f64::from(loss));
                                actions.push(Action::Rate(id.clone()));
                            }
                        }
                        Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                            s.estimate = Some(estimate.as_u64());
                            actions.push(Action::Rate(id.clone()));
                        }
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                            debug!(session = %id, "ICE disconnected")
                        }
                        _ => {}
                    },
                    Err(e) => {
                        warn!(session = %id, error = %e, "peer failed");
                        rtc.disconnect();
                        break;
                    }
                }
            }
            if !rtc.is_alive() {
                actions.push(Action::Dead(id.clone()));
            }
        }
        for a in actions {
            self.act(a);
        }
        true
    }

    /// Ends the sessions whose browser never answered.
    fn housekeeping(&mut self) {
        self.next_housekeeping = self.now + HOUSEKEEPING;
        let linger = self.cfg.linger;
        let expired: Vec<RoomId> = self
            .empty_since
            .iter()
            .filter(|(_, since)| self.now.duration_since(**since) >= linger)
            .map(|(room, _)| room.clone())
            .collect();
        for room in expired {
            if self.book.is_empty(&room) {
                self.close_empty(&room);
            } else {
                self.empty_since.remove(&room);
            }
        }
        let timeout = self.cfg.connect_timeout;
        let unanswered: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.peer.answered() && self.now.duration_since(s.peer.created) > timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in unanswered {
            let msg = format!("the browser did not answer the offer within {} s", timeout.as_secs());
            self.end(&id, ErrorCode::Internal, msg);
        }
    }

    /// The room and port of a session.
    fn place(&self, session: &SessionId) -> Option<(RoomId, u8)> {
        self.book.session(session).cloned()
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Connected(id) => {
                let Some(s) = self.sessions.get_mut(&id) else { return };
                let payloads = s.peer.choose_payloads();
                info!(session = %id, ?payloads, "peer connected");
                let Some((codec, _)) = payloads.video() else {
                    let msg = "your browser accepts neither H264 nor VP8 video".to_string();
                    return self.end(&id, ErrorCode::Internal, msg);
                };
                if let Some((room, _)) = self.place(&id) {
                    self.update_wanted(&room);
                    // A new viewer needs a keyframe to start decoding.
                    self.keyframe(room, codec);
                }
            }
            Action::Keyframe(id) => {
                if let Some((room, codec)) = self.stream_of(&id) {
                    self.keyframe(room, codec);
                }
            }
            Action::Rate(id) => {
                if let Some((room, codec)) = self.stream_of(&id) {
                    self.update_rate(&room, codec);
                }
            }
            Action::Input(id, pad) => {
                let Some(pad) = self.sessions.get_mut(&id).and_then(|s| s.peer.pad.apply(pad)) else { return };
                // A spectator's pad drives nothing.
                if let Some((room, port)) = self.place(&id).filter(|(_, port)| *port != SPECTATOR) {
                    self.queue.push_back(Output::Pad { room, port, pad });
                }
            }
            Action::ControlOpen(id) => {
                let screen = self.place(&id).and_then(|(room, _)| self.screens.get(&room).copied());
                if let Some(screen) = screen {
                    self.send_control(&id, &GameReply::Screen(screen));
                }
            }
            Action::Game(id, bytes) => {
                let entry = match GameCommand::decode(&bytes) {
                    Ok(GameCommand::Report { frames, ms, freezes, freeze_ms }) => {
                        // Measurements, not a command: counted, never answered or queued.
                        let report = ViewerReport { frames, ms, freezes, freeze_ms };
                        return self.samples.viewer_reports.push(report);
                    }
                    Err(e) => {
                        Err(GameReply::Failed { command: "unknown".into(), message: format!("bad command: {e}") })
                    }
                    Ok(c) if self.place(&id).is_none() => {
                        Err(GameReply::Failed { command: c.kind().into(), message: "you are not in a room".into() })
                    }
                    Ok(c) => Ok(c),
                };
                let q = self.commands.entry(id.clone()).or_default();
                if q.len() >= MAX_COMMANDS {
                    return debug!(session = %id, "game command flood: dropped");
                }
                q.push_back(entry);
                if q.len() == 1 {
                    self.next_command(&id);
                }
            }
            Action::Dead(id) => {
                let answered = self.sessions.get(&id).is_some_and(|s| s.peer.answered());
                let msg = if answered {
                    "the WebRTC connection to the game server was lost or never established".to_string()
                } else {
                    "the browser did not answer the offer in time".to_string()
                };
                self.end(&id, ErrorCode::Internal, msg)
            }
        }
    }
}

fn new_room_id() -> RoomId {
    RoomId::new(format!("{:08x}", rand::random::<u32>())).expect("hex is a valid id")
}
