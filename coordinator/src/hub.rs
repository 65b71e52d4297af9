//! The coordinator's decision logic: browser sessions, worker registrations and the signaling
//! relay between them. Sans-IO: inputs are method calls with the current time (monotonic
//! `Instant`s for timeouts; wall-clock `SystemTime` where a browser's `init` is built, for the
//! expiry of its TURN credentials), outputs are queued [`Output`]s that the network drivers
//! deliver.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use retrofarm_proto::browser::{ChosenWorker, ClientMsg, IceServer, ServerMsg};
use retrofarm_proto::control::{CoordMsg, WorkerMsg, PROTOCOL_VERSION};
use retrofarm_proto::ids::{RoomId, SessionId, WorkerId};
use retrofarm_proto::{DecodeError, ErrorCode};
use tracing::{debug, info, warn};

use crate::registry::{ConnId, Departed, Registration, Registry};
use crate::selection::{self, SelectError};
use crate::turn::TurnRest;

/// Something for a driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send to a browser.
    Browser(SessionId, ServerMsg),
    /// Send to a worker connection.
    Worker(ConnId, CoordMsg),
    /// Close a worker connection (refused, or its heartbeats stopped).
    CloseWorker(ConnId, String),
}

/// Where a browser session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Waiting for the browser's latency results.
    Checking,
    /// A worker is chosen (or none was free); the browser may start a game.
    Ready,
    /// `start_session` sent to the worker.
    Starting,
    /// In a room.
    Playing(RoomId),
}

#[derive(Debug)]
struct Session {
    zone: Option<String>,
    worker: Option<WorkerId>,
    phase: Phase,
    /// The last stream ended (quit, refused, room or worker gone): signaling the browser had
    /// already sent for it is dropped quietly instead of answered with `bad_state`.
    ended: bool,
    /// The share link's room, when it is not running: the worker chosen by latency resumes it.
    resume: Option<RoomId>,
}

/// A worker whose connection ended, while its sessions wait for it to come back.
#[derive(Debug)]
struct Away {
    /// When its players are told it is lost.
    until: Instant,
    /// What happened, for them.
    how: &'static str,
    /// What its sessions' browsers sent it meanwhile (a quit), delivered when it is back.
    pending: Vec<CoordMsg>,
    /// The rooms it ran: a share link to one waits for it rather than resume a second copy.
    rooms: Vec<RoomId>,
    /// Browsers that opened a share link to one of its rooms meanwhile, with the room and when
    /// they connected (their TURN credentials count from then).
    waiting: Vec<(SessionId, RoomId, SystemTime)>,
}

/// Most messages kept for a worker that is away.
const MAX_PENDING: usize = 1024;

/// Coordinator settings the hub needs.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// ICE servers (STUN/TURN) handed to browsers in `init`.
    pub ice_servers: Vec<IceServer>,
    /// A TURN server whose time-limited credentials are minted for each session and added to
    /// `ice_servers` in its `init`.
    pub turn: Option<TurnRest>,
    /// How often workers must heartbeat.
    pub heartbeat: Duration,
    /// Silence after which a worker is dropped.
    pub heartbeat_timeout: Duration,
    /// How long a dropped worker's sessions wait for it to come back (a link that dropped,
    /// this coordinator restarting on its side) before their players are told it is lost:
    /// their games stream straight from the worker meanwhile.
    pub worker_grace: Duration,
}

/// Counters for observability.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Malformed / oversized / unknown browser messages.
    pub bad_messages: u64,
    /// Placements that found no free worker.
    pub no_capacity: u64,
    /// Sessions started on a worker.
    pub placed: u64,
    /// Share links to a room that was not running (a worker resumes it from its autosave, or
    /// says it has none).
    pub unknown_room: u64,
    /// Placements refused: the game does not exist.
    pub unknown_game: u64,
}

/// Sessions, workers and rooms.
#[derive(Debug)]
pub struct Hub {
    cfg: HubConfig,
    registry: Registry,
    sessions: HashMap<SessionId, Session>,
    /// Workers whose connection ended, until when their sessions wait for them.
    away: HashMap<WorkerId, Away>,
    out: VecDeque<Output>,
    stats: Stats,
}

impl Hub {
    /// An empty hub.
    pub fn new(cfg: HubConfig) -> Self {
        Self {
            registry: Registry::new(cfg.heartbeat_timeout),
            cfg,
            sessions: HashMap::new(),
            away: HashMap::new(),
            out: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// The next thing to deliver.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The registry (read-only).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Browser sessions connected.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    fn send_browser(&mut self, s: &SessionId, msg: ServerMsg) {
        self.out.push_back(Output::Browser(s.clone(), msg));
    }

    fn error(&mut self, s: &SessionId, code: ErrorCode, message: impl Into<String>) {
        self.send_browser(s, ServerMsg::error(code, message));
    }

    // ---- browsers ------------------------------------------------------------------------

    /// A browser opened `/ws`, maybe with a share-link room and a zone; `wall` is the
    /// wall-clock time (TURN credentials expire at a unix time).
    pub fn browser_connected(&mut self, id: SessionId, room: Option<RoomId>, zone: Option<String>, wall: SystemTime) {
        let mut session = Session { zone, worker: None, phase: Phase::Ready, ended: false, resume: None };
        if let Some(room) = room {
            if let Some((worker, _)) = self.registry.room(&room) {
                let worker = worker.clone();
                self.sessions.insert(id.clone(), session);
                return self.init(&id, worker, Some(room), wall);
            }
            // Its worker is away: wait for it (or for its grace to end) rather than resume a
            // second copy of the room elsewhere.
            if let Some(away) = self.away.values_mut().find(|a| a.rooms.contains(&room)) {
                debug!(session = %id, %room, "the room's worker is away: the session waits for it");
                away.waiting.push((id.clone(), room, wall));
                self.sessions.insert(id, session);
                return;
            }
            // Not running: the nearest worker resumes it from its autosave, if it has one.
            self.stats.unknown_room += 1;
            session.resume = Some(room);
        }
        self.sessions.insert(id.clone(), session);
        self.check_latency(&id);
    }

    fn check_latency(&mut self, id: &SessionId) {
        let zone = self.sessions.get(id).and_then(|s| s.zone.clone());
        match selection::ping_targets(&self.registry.candidates(), zone.as_deref()) {
            Ok(workers) => {
                self.set_phase(id, Phase::Checking);
                self.send_browser(id, ServerMsg::CheckLatency { workers });
            }
            Err(e) => self.no_capacity(id, e),
        }
    }

    fn no_capacity(&mut self, id: &SessionId, e: SelectError) {
        self.stats.no_capacity += 1;
        self.set_phase(id, Phase::Ready);
        self.error(id, ErrorCode::NoFreeWorker, e.to_string());
    }

    fn set_phase(&mut self, id: &SessionId, phase: Phase) {
        if let Some(s) = self.sessions.get_mut(id) {
            s.phase = phase;
        }
    }

    /// Ends the session's stream: back to `Ready`, late signaling ignored.
    fn stream_ended(&mut self, id: &SessionId) {
        if let Some(s) = self.sessions.get_mut(id) {
            s.phase = Phase::Ready;
            s.ended = true;
        }
    }

    fn init(&mut self, id: &SessionId, worker: WorkerId, room: Option<RoomId>, wall: SystemTime) {
        let Some(w) = self.registry.get(&worker) else { return };
        let mut ice_servers = self.cfg.ice_servers.clone();
        if let Some(turn) = &self.cfg.turn {
            ice_servers.push(turn.ice_server(id, wall));
        }
        let msg = ServerMsg::Init {
            session: id.clone(),
            ice_servers,
            games: w.games.clone(),
            worker: ChosenWorker { id: worker.clone(), zone: w.zone.clone() },
            room,
        };
        if let Some(s) = self.sessions.get_mut(id) {
            s.worker = Some(worker);
            s.phase = Phase::Ready;
        }
        self.send_browser(id, msg);
    }

    /// A browser sent something that did not decode.
    pub fn browser_bad_message(&mut self, id: &SessionId, err: &DecodeError) {
        self.stats.bad_messages += 1;
        self.error(id, err.code(), err.to_string());
    }

    /// A browser sent a valid message; `wall` is the wall-clock time.
    pub fn browser_message(&mut self, id: &SessionId, msg: ClientMsg, wall: SystemTime) {
        let Some(s) = self.sessions.get(id) else { return };
        let (phase, worker, zone, ended) = (s.phase.clone(), s.worker.clone(), s.zone.clone(), s.ended);
        match (msg, phase) {
            (ClientMsg::Latency { results }, Phase::Checking) => {
                match selection::choose(&self.registry.candidates(), zone.as_deref(), &results) {
                    Ok(w) => {
                        let resume = self.sessions.get_mut(id).and_then(|s| s.resume.take());
                        self.init(id, w, resume, wall)
                    }
                    Err(e) => self.no_capacity(id, e),
                }
            }
            (ClientMsg::StartGame { game, room, port }, Phase::Ready) => self.start(id, worker, game, room, port),
            (ClientMsg::Answer { sdp }, Phase::Starting | Phase::Playing(_)) => {
                self.send_worker_of(id, worker, |session| CoordMsg::Answer { session, sdp })
            }
            (ClientMsg::Ice { candidate }, Phase::Starting | Phase::Playing(_)) => {
                self.send_worker_of(id, worker, |session| CoordMsg::Ice { session, candidate })
            }
            (ClientMsg::Quit, Phase::Starting | Phase::Playing(_)) => {
                self.send_worker_of(id, worker, |session| CoordMsg::EndSession { session });
                self.stream_ended(id);
            }
            (ClientMsg::Answer { .. } | ClientMsg::Ice { .. } | ClientMsg::Quit, Phase::Ready) if ended => {
                debug!(session = %id, "dropping signaling for a stream that already ended");
            }
            (msg, phase) => {
                let kind = msg.kind();
                self.error(id, ErrorCode::BadState, format!("{kind} is not allowed now (session is {phase:?})"));
            }
        }
    }

    /// Sends to the worker serving a session; to one that is away, when it comes back.
    fn send_worker_of(&mut self, id: &SessionId, worker: Option<WorkerId>, msg: impl FnOnce(SessionId) -> CoordMsg) {
        let Some(worker) = worker else { return };
        if let Some(w) = self.registry.get(&worker) {
            self.out.push_back(Output::Worker(w.conn, msg(id.clone())));
        } else if let Some(away) = self.away.get_mut(&worker).filter(|a| a.pending.len() < MAX_PENDING) {
            away.pending.push(msg(id.clone()));
        }
    }

    fn start(&mut self, id: &SessionId, chosen: Option<WorkerId>, game: String, room: Option<RoomId>, port: u8) {
        let running = room.as_ref().and_then(|r| self.registry.room(r)).map(|(w, _)| w.clone());
        let worker = if let Some(w) = running {
            w
        } else if room.is_some() {
            // The room is not running (it closed, or its worker is gone): a worker with room
            // resumes it from its autosave, or tells the player it has none.
            let chosen = chosen.filter(|w| self.registry.get(w).is_some_and(|w| w.free() > 0));
            let zone = self.sessions.get(id).and_then(|s| s.zone.clone());
            let chosen = match chosen {
                Some(w) => Ok(w),
                None => selection::choose(&self.registry.candidates(), zone.as_deref(), &Default::default()),
            };
            match chosen {
                Ok(w) => {
                    self.registry.start_pending(&w);
                    w
                }
                Err(e) => return self.no_capacity(id, e),
            }
        } else {
            let chosen = chosen.filter(|w| self.registry.get(w).is_some_and(|w| w.free() > 0));
            let zone = self.sessions.get(id).and_then(|s| s.zone.clone());
            // The chosen worker filled up (or left) since init: fall back to any free one.
            let chosen = match chosen {
                Some(w) => Ok(w),
                None => selection::choose(&self.registry.candidates(), zone.as_deref(), &Default::default()),
            };
            let w = match chosen {
                Ok(w) => w,
                Err(e) => return self.no_capacity(id, e),
            };
            let has_game = self.registry.get(&w).is_some_and(|w| w.games.iter().any(|g| g.name == game));
            if !has_game {
                self.stats.unknown_game += 1;
                return self.error(id, ErrorCode::UnknownGame, format!("no game named {game:?} on this server"));
            }
            self.registry.start_pending(&w);
            w
        };
        let Some(conn) = self.registry.get(&worker).map(|w| w.conn) else { return };
        self.stats.placed += 1;
        if let Some(s) = self.sessions.get_mut(id) {
            s.worker = Some(worker);
            s.phase = Phase::Starting;
            s.ended = false;
        }
        self.out.push_back(Output::Worker(conn, CoordMsg::StartSession { session: id.clone(), game, room, port }));
    }

    /// A browser's WebSocket closed.
    pub fn browser_disconnected(&mut self, id: &SessionId) {
        if let Some(s) = self.sessions.remove(id) {
            if matches!(s.phase, Phase::Starting | Phase::Playing(_)) {
                self.send_worker_of(id, s.worker, |session| CoordMsg::EndSession { session });
            }
        }
    }

    // ---- workers -------------------------------------------------------------------------

    /// A message arrived on worker connection `conn`.
    pub fn worker_message(&mut self, conn: ConnId, now: Instant, msg: WorkerMsg) {
        let registered = self.registry.worker_of(conn).cloned();
        match (msg, registered) {
            (WorkerMsg::Register { protocol, id, zone, ping_url, games, rooms, load }, None) => {
                if protocol != PROTOCOL_VERSION {
                    let reason = format!(
                        "worker speaks control protocol {protocol}, this coordinator speaks {PROTOCOL_VERSION}: upgrade them to the same release"
                    );
                    return self.refuse(conn, reason);
                }
                let (pending, waiting) = match self.away.remove(&id) {
                    Some(away) => {
                        info!(worker = %id, "worker back within its grace period: its sessions go on");
                        (away.pending, away.waiting)
                    }
                    None => Default::default(),
                };
                info!(worker = %id, %zone, games = games.len(), rooms = rooms.len(), "worker registered");
                let reg = Registration { id, zone, ping_url, games, rooms, load };
                if let Some(old) = self.registry.register(conn, now, reg) {
                    self.out.push_back(Output::CloseWorker(old.conn, "replaced by a new connection".into()));
                }
                let heartbeat_ms = self.cfg.heartbeat.as_millis() as u64;
                self.out.push_back(Output::Worker(conn, CoordMsg::Registered { heartbeat_ms }));
                self.out.extend(pending.into_iter().map(|m| Output::Worker(conn, m)));
                self.stop_waiting(waiting);
            }
            (WorkerMsg::Register { .. }, Some(_)) => self.refuse(conn, "registered twice on one connection".into()),
            (_, None) => self.refuse(conn, "the first message must be register".into()),
            (WorkerMsg::Heartbeat { load }, Some(_)) => self.registry.heartbeat(conn, now, load),
            (WorkerMsg::SessionStarted { session, room, game, port }, Some(w)) => {
                if self.owns(&session, &w) {
                    self.registry.room_opened(conn, room.clone(), game.clone());
                    self.set_phase(&session, Phase::Playing(room.clone()));
                    self.send_browser(&session, ServerMsg::GameStarted { room, game, port });
                }
            }
            (WorkerMsg::Offer { session, sdp }, Some(w)) => {
                if self.owns(&session, &w) {
                    self.send_browser(&session, ServerMsg::Offer { sdp });
                }
            }
            (WorkerMsg::Ice { session, candidate }, Some(w)) => {
                if self.owns(&session, &w) {
                    self.send_browser(&session, ServerMsg::Ice { candidate });
                }
            }
            (WorkerMsg::SessionEnded { session, code, message }, Some(w)) => {
                if self.owns(&session, &w) {
                    self.stream_ended(&session);
                    self.error(&session, code, message);
                }
            }
            (WorkerMsg::RoomClosed { room }, Some(_)) => self.registry.room_closed(conn, &room),
            (WorkerMsg::Games { games }, Some(w)) => {
                info!(worker = %w, games = games.len(), "the worker's games changed");
                self.registry.set_games(conn, games);
            }
        }
    }

    /// Whether `session` is served by `worker` (a worker cannot speak for others' sessions).
    fn owns(&self, session: &SessionId, worker: &WorkerId) -> bool {
        let ok = self.sessions.get(session).is_some_and(|s| s.worker.as_ref() == Some(worker));
        if !ok {
            debug!(%session, %worker, "dropping worker message for a session it does not serve");
        }
        ok
    }

    fn refuse(&mut self, conn: ConnId, reason: String) {
        warn!(?conn, %reason, "refusing worker");
        self.out.push_back(Output::Worker(conn, CoordMsg::Refused { reason: reason.clone() }));
        self.out.push_back(Output::CloseWorker(conn, reason));
    }

    /// A worker connection closed.
    pub fn worker_disconnected(&mut self, conn: ConnId, now: Instant) {
        if let Some(d) = self.registry.remove(conn) {
            info!(worker = %d.id, grace = ?self.cfg.worker_grace, "worker disconnected; its sessions wait for it");
            self.worker_away(d, now, "disconnected");
        }
    }

    /// Advances time: drops workers whose heartbeats stopped, and tells the players of
    /// workers that did not come back in time.
    pub fn tick(&mut self, now: Instant) {
        for d in self.registry.expire(now) {
            warn!(worker = %d.id, grace = ?self.cfg.worker_grace, "worker stopped heartbeating; its sessions wait for it");
            self.out.push_back(Output::CloseWorker(d.conn, "heartbeat timeout".into()));
            self.worker_away(d, now, "stopped responding");
        }
        let gone: Vec<WorkerId> = self.away.iter().filter(|(_, a)| a.until <= now).map(|(id, _)| id.clone()).collect();
        for id in gone {
            let Some(away) = self.away.remove(&id) else { continue };
            warn!(worker = %id, "worker did not come back: telling its players");
            self.stop_waiting(away.waiting);
            self.worker_gone(
                &id,
                |_| true,
                &format!("the game server {id} {}; reload the page to continue on another one", away.how),
            );
        }
    }

    /// A worker's connection ended. Sessions whose game had not started yet are told at once
    /// (no stream plays for them, and what the worker sends about them now is lost); playing
    /// ones wait out the grace period.
    fn worker_away(&mut self, d: Departed, now: Instant, how: &'static str) {
        let id = d.id;
        let message = format!("the game server {id} {how}; reload the page to continue on another one");
        if self.cfg.worker_grace.is_zero() {
            return self.worker_gone(&id, |_| true, &message);
        }
        let early = format!("the game server {id} {how} before your game started; please start it again");
        self.worker_gone(&id, |p| *p == Phase::Starting, &early);
        let away =
            Away { until: now + self.cfg.worker_grace, how, pending: Vec::new(), rooms: d.rooms, waiting: Vec::new() };
        self.away.insert(id, away);
    }

    /// The sessions that waited for an away worker's room: to that room if it runs again,
    /// else to resume it from its autosave like any room that is not running.
    fn stop_waiting(&mut self, waiting: Vec<(SessionId, RoomId, SystemTime)>) {
        for (id, room, wall) in waiting {
            if !self.sessions.contains_key(&id) {
                continue;
            }
            match self.registry.room(&room) {
                Some((worker, _)) => {
                    let worker = worker.clone();
                    self.init(&id, worker, Some(room), wall);
                }
                None => {
                    self.stats.unknown_room += 1;
                    if let Some(s) = self.sessions.get_mut(&id) {
                        s.resume = Some(room);
                    }
                    self.check_latency(&id);
                }
            }
        }
    }

    /// Tells the sessions of `worker` in a phase `which` accepts that it is lost.
    fn worker_gone(&mut self, worker: &WorkerId, which: impl Fn(&Phase) -> bool, message: &str) {
        let affected: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.worker.as_ref() == Some(worker) && which(&s.phase))
            .map(|(id, _)| id.clone())
            .collect();
        for id in affected {
            self.stream_ended(&id);
            if let Some(s) = self.sessions.get_mut(&id) {
                s.worker = None;
            }
            self.error(&id, ErrorCode::WorkerLost, message.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retrofarm_proto::browser::GameInfo;
    use retrofarm_proto::control::{Load, RoomInfo};

    fn hub() -> Hub {
        Hub::new(HubConfig {
            ice_servers: vec![IceServer { urls: vec!["stun:s:3478".into()], username: None, credential: None }],
            turn: None,
            heartbeat: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(3),
            worker_grace: Duration::from_secs(10),
        })
    }
    /// The wall clock of the tests.
    const W: SystemTime = SystemTime::UNIX_EPOCH;
    fn sid(s: &str) -> SessionId {
        SessionId::new(s).unwrap()
    }
    fn drain(h: &mut Hub) -> Vec<Output> {
        std::iter::from_fn(|| h.poll_output()).collect()
    }
    fn register(h: &mut Hub, conn: u64, id: &str, zone: &str, free: u32, rooms: &[&str], now: Instant) {
        h.worker_message(
            ConnId(conn),
            now,
            WorkerMsg::Register {
                protocol: PROTOCOL_VERSION,
                id: WorkerId::new(id).unwrap(),
                zone: zone.into(),
                ping_url: format!("http://{id}/ping"),
                games: vec![GameInfo { name: "walk".into(), system: "nes".into() }],
                rooms: rooms.iter().map(|r| RoomInfo { id: RoomId::new(*r).unwrap(), game: "walk".into() }).collect(),
                load: Load { rooms: 0, sessions: 0, free },
            },
        );
    }
    fn error_code(o: &Output) -> Option<ErrorCode> {
        match o {
            Output::Browser(_, ServerMsg::Error { code, .. }) => Some(*code),
            _ => None,
        }
    }

    #[test]
    fn a_rescanned_library_replaces_the_workers_games() {
        let t = Instant::now();
        let mut h = hub();
        register(&mut h, 1, "w1", "eu", 4, &[], t);
        let games = vec![GameInfo { name: "quest".into(), system: "snes".into() }];
        h.worker_message(ConnId(1), t, WorkerMsg::Games { games: games.clone() });
        drain(&mut h);
        h.browser_connected(sid("s"), None, Some("eu".into()), W);
        drain(&mut h);
        let results = [(WorkerId::new("w1").unwrap(), 10)].into_iter().collect();
        h.browser_message(&sid("s"), ClientMsg::Latency { results }, W);
        let out = drain(&mut h);
        assert!(matches!(&out[..], [Output::Browser(_, ServerMsg::Init { games: g, .. })] if *g == games), "{out:?}");
        // The game that left the folder is refused; the new one is placed.
        h.browser_message(&sid("s"), ClientMsg::StartGame { game: "walk".into(), room: None, port: 1 }, W);
        assert_eq!(error_code(&drain(&mut h)[0]), Some(ErrorCode::UnknownGame));
        h.browser_message(&sid("s"), ClientMsg::StartGame { game: "quest".into(), room: None, port: 1 }, W);
        assert!(matches!(&drain(&mut h)[..], [Output::Worker(ConnId(1), CoordMsg::StartSession { .. })]));
        // Before registering, the message is refused like any other.
        h.worker_message(ConnId(2), t, WorkerMsg::Games { games });
        assert!(matches!(
            &drain(&mut h)[..],
            [Output::Worker(ConnId(2), CoordMsg::Refused { .. }), Output::CloseWorker(..)]
        ));
    }

    #[test]
    fn full_flow_relays_signaling_both_ways() {
        let t = Instant::now();
        let mut h = hub();
        register(&mut h, 1, "w1", "eu", 4, &[], t);
        assert_eq!(drain(&mut h), vec![Output::Worker(ConnId(1), CoordMsg::Registered { heartbeat_ms: 1000 })]);

        h.browser_connected(sid("s"), None, Some("eu".into()), W);
        let out = drain(&mut h);
        assert!(matches!(&out[..], [Output::Browser(_, ServerMsg::CheckLatency { workers })] if workers.len() == 1));

        let results = [(WorkerId::new("w1").unwrap(), 10)].into_iter().collect();
        h.browser_message(&sid("s"), ClientMsg::Latency { results }, W);
        let out = drain(&mut h);
        assert!(matches!(&out[..], [Output::Browser(_, ServerMsg::Init { games, .. })] if games.len() == 1));

        h.browser_message(&sid("s"), ClientMsg::StartGame { game: "walk".into(), room: None, port: 1 }, W);
        let out = drain(&mut h);
        assert!(matches!(&out[..], [Output::Worker(ConnId(1), CoordMsg::StartSession { port: 1, .. })]));

        let r = RoomId::new("r1").unwrap();
        h.worker_message(
            ConnId(1),
            t,
            WorkerMsg::SessionStarted { session: sid("s"), room: r.clone(), game: "walk".into(), port: 1 },
        );
        h.worker_message(ConnId(1), t, WorkerMsg::Offer { session: sid("s"), sdp: "offer".into() });
        h.worker_message(ConnId(1), t, WorkerMsg::Ice { session: sid("s"), candidate: None });
        let out = drain(&mut h);
        assert_eq!(out.len(), 3);
        assert!(matches!(&out[1], Output::Browser(_, ServerMsg::Offer { sdp }) if sdp == "offer"));
        assert_eq!(h.registry().room(&r).unwrap().0.as_str(), "w1");

        h.browser_message(&sid("s"), ClientMsg::Answer { sdp: "answer".into() }, W);
        h.browser_message(&sid("s"), ClientMsg::Ice { candidate: None }, W);
        let out = drain(&mut h);
        assert!(matches!(&out[0], Output::Worker(_, CoordMsg::Answer { sdp, .. }) if sdp == "answer"));
        assert!(matches!(&out[1], Output::Worker(_, CoordMsg::Ice { candidate: None, .. })));

        // A second browser with the share link reaches the same worker directly.
        h.browser_connected(sid("t"), Some(r.clone()), None, W);
        let out = drain(&mut h);
        assert!(matches!(&out[..], [Output::Browser(_, ServerMsg::Init { room: Some(_), .. })]));
        h.browser_message(&sid("t"), ClientMsg::StartGame { game: String::new(), room: Some(r), port: 2 }, W);
        assert!(matches!(
            &drain(&mut h)[..],
            [Output::Worker(ConnId(1), CoordMsg::StartSession { port: 2, room: Some(_), .. })]
        ));

        // After quitting, candidates still in flight are dropped quietly.
        h.browser_message(&sid("t"), ClientMsg::Quit, W);
        drain(&mut h);
        h.browser_message(&sid("t"), ClientMsg::Ice { candidate: None }, W);
        assert!(drain(&mut h).is_empty());

        h.browser_disconnected(&sid("s"));
        assert!(matches!(&drain(&mut h)[..], [Output::Worker(_, CoordMsg::EndSession { .. })]));
    }

    #[test]
    fn errors_for_unknown_room_game_and_bad_state() {
        let t = Instant::now();
        let mut h = hub();
        register(&mut h, 1, "w1", "eu", 4, &[], t);
        drain(&mut h);
        // A share link to a room that is not running: the latency check, then the chosen worker
        // is asked to resume it (Init carries the room).
        let nope = RoomId::new("nope").unwrap();
        h.browser_connected(sid("s"), Some(nope.clone()), None, W);
        let out = drain(&mut h);
        assert!(matches!(&out[..], [Output::Browser(_, ServerMsg::CheckLatency { .. })]), "{out:?}");
        h.browser_message(&sid("s"), ClientMsg::Latency { results: Default::default() }, W);
        let out = drain(&mut h);
        assert!(
            matches!(&out[..], [Output::Browser(_, ServerMsg::Init { room: Some(r), .. })] if *r == nope),
            "{out:?}"
        );
        assert_eq!(h.stats().unknown_room, 1);

        h.browser_message(&sid("s"), ClientMsg::Answer { sdp: String::new() }, W);
        assert_eq!(error_code(&drain(&mut h)[0]), Some(ErrorCode::BadState));

        h.browser_message(&sid("s"), ClientMsg::Latency { results: Default::default() }, W);
        drain(&mut h);
        h.browser_message(&sid("s"), ClientMsg::StartGame { game: "tetris".into(), room: None, port: 1 }, W);
        assert_eq!(error_code(&drain(&mut h)[0]), Some(ErrorCode::UnknownGame));
        // A room that is not running goes to a worker, which resumes it from its autosave.
        let gone = RoomId::new("gone").unwrap();
        h.browser_message(
            &sid("s"),
            ClientMsg::StartGame { game: String::new(), room: Some(gone.clone()), port: 1 },
            W,
        );
        let out = drain(&mut h);
        assert!(
            matches!(&out[0], Output::Worker(_, CoordMsg::StartSession { room: Some(r), .. }) if *r == gone),
            "{out:?}"
        );

        h.browser_bad_message(&sid("s"), &DecodeError::Malformed("x".into()));
        assert_eq!(error_code(&drain(&mut h)[0]), Some(ErrorCode::Malformed));
        assert_eq!(h.stats().bad_messages, 1);
    }

    #[test]
    fn no_free_worker_when_all_full() {
        let t = Instant::now();
        let mut h = hub();
        register(&mut h, 1, "w1", "eu", 1, &[], t);
        drain(&mut h);
        h.browser_connected(sid("a"), None, None, W);
        h.browser_message(&sid("a"), ClientMsg::Latency { results: Default::default() }, W);
        h.browser_message(&sid("a"), ClientMsg::StartGame { game: "walk".into(), room: None, port: 1 }, W);
        drain(&mut h);
        // The only slot is pending: the next browser hears "no free worker" at once.
        h.browser_connected(sid("b"), None, None, W);
        assert_eq!(error_code(&drain(&mut h)[0]), Some(ErrorCode::NoFreeWorker));
        h.browser_connected(sid("c"), None, Some("us".into()), W);
        assert_eq!(error_code(&drain(&mut h)[0]), Some(ErrorCode::NoFreeWorker));
    }

    #[test]
    fn heartbeat_loss_tells_users_and_drops_rooms() {
        let t = Instant::now();
        let mut h = hub();
        register(&mut h, 1, "w1", "eu", 4, &["r1"], t);
        drain(&mut h);
        h.browser_connected(sid("s"), Some(RoomId::new("r1").unwrap()), None, W);
        drain(&mut h);
        h.tick(t + Duration::from_secs(2));
        assert!(drain(&mut h).is_empty());
        h.tick(t + Duration::from_secs(4));
        let out = drain(&mut h);
        assert!(out.contains(&Output::CloseWorker(ConnId(1), "heartbeat timeout".into())));
        assert_eq!(h.registry().room_count(), 0);
        // Its player streams straight from the worker: told only once the grace is over.
        assert!(!out.iter().any(|o| error_code(o) == Some(ErrorCode::WorkerLost)));
        h.tick(t + Duration::from_secs(13));
        assert!(drain(&mut h).is_empty());
        h.tick(t + Duration::from_secs(14));
        let out = drain(&mut h);
        assert!(matches!(&out[..], [o] if error_code(o) == Some(ErrorCode::WorkerLost)), "{out:?}");
        h.tick(t + Duration::from_secs(30));
        assert!(drain(&mut h).is_empty(), "told once");
    }

    #[test]
    fn workers_must_register_first_with_our_version_and_cannot_speak_for_others() {
        let t = Instant::now();
        let mut h = hub();
        h.worker_message(ConnId(9), t, WorkerMsg::Heartbeat { load: Load::default() });
        assert!(matches!(&drain(&mut h)[..], [Output::Worker(_, CoordMsg::Refused { .. }), Output::CloseWorker(..)]));
        h.worker_message(
            ConnId(8),
            t,
            WorkerMsg::Register {
                protocol: 99,
                id: WorkerId::new("x").unwrap(),
                zone: String::new(),
                ping_url: String::new(),
                games: vec![],
                rooms: vec![],
                load: Load::default(),
            },
        );
        assert!(
            matches!(&drain(&mut h)[0], Output::Worker(_, CoordMsg::Refused { reason }) if reason.contains("protocol 99"))
        );

        register(&mut h, 1, "w1", "eu", 4, &[], t);
        register(&mut h, 2, "w2", "eu", 4, &[], t);
        drain(&mut h);
        h.browser_connected(sid("s"), None, None, W);
        h.browser_message(
            &sid("s"),
            ClientMsg::Latency { results: [(WorkerId::new("w1").unwrap(), 1)].into_iter().collect() },
            W,
        );
        drain(&mut h);
        h.worker_message(ConnId(2), t, WorkerMsg::Offer { session: sid("s"), sdp: "evil".into() });
        assert!(drain(&mut h).is_empty());
    }

    #[test]
    fn disconnect_tells_users() {
        let t = Instant::now();
        let mut h = hub();
        register(&mut h, 1, "w1", "eu", 4, &["r1"], t);
        drain(&mut h);
        h.browser_connected(sid("s"), Some(RoomId::new("r1").unwrap()), None, W);
        drain(&mut h);
        h.worker_disconnected(ConnId(1), t);
        assert!(drain(&mut h).is_empty());
        h.tick(t + Duration::from_secs(10));
        assert_eq!(error_code(&drain(&mut h)[0]), Some(ErrorCode::WorkerLost));
    }

    #[test]
    fn a_share_link_to_an_away_workers_room_waits_for_it_instead_of_resuming_a_copy() {
        let t = Instant::now();
        let mut h = hub();
        register(&mut h, 1, "w1", "eu", 4, &["r1"], t);
        register(&mut h, 2, "w2", "eu", 4, &["r2"], t);
        register(&mut h, 3, "w3", "eu", 4, &[], t);
        drain(&mut h);
        h.worker_disconnected(ConnId(1), t);
        h.worker_disconnected(ConnId(2), t);
        let (r1, r2) = (RoomId::new("r1").unwrap(), RoomId::new("r2").unwrap());
        // Both rooms' links are opened while their workers are away: nothing yet (w3, free,
        // would otherwise resume a second copy of each).
        h.browser_connected(sid("a"), Some(r1.clone()), None, W);
        h.browser_connected(sid("b"), Some(r2.clone()), None, W);
        h.browser_connected(sid("gone"), Some(r1.clone()), None, W);
        h.browser_disconnected(&sid("gone"));
        assert!(drain(&mut h).is_empty());

        // w1 is back with its room: its waiting browser goes straight to it.
        register(&mut h, 4, "w1", "eu", 4, &["r1"], t + Duration::from_secs(3));
        let out = drain(&mut h);
        let init = out.iter().find_map(|o| match o {
            Output::Browser(s, ServerMsg::Init { worker, room, .. }) => {
                Some((s.clone(), worker.id.clone(), room.clone()))
            }
            _ => None,
        });
        assert_eq!(init, Some((sid("a"), WorkerId::new("w1").unwrap(), Some(r1))), "{out:?}");
        assert_eq!(out.iter().filter(|o| matches!(o, Output::Browser(..))).count(), 1, "{out:?}");

        // w2 never comes back: its grace over, the room resumes from its autosave where the
        // latency check leads.
        for conn in [3, 4] {
            let load = Load { rooms: 0, sessions: 0, free: 4 };
            h.worker_message(ConnId(conn), t + Duration::from_secs(10), WorkerMsg::Heartbeat { load });
        }
        h.tick(t + Duration::from_secs(11));
        let out = drain(&mut h);
        assert!(
            out.iter().any(|o| matches!(o, Output::Browser(s, ServerMsg::CheckLatency { .. }) if *s == sid("b"))),
            "{out:?}"
        );
    }

    #[test]
    fn a_worker_back_within_the_grace_keeps_its_sessions_and_nobody_is_told() {
        let t = Instant::now();
        let mut h = hub();
        register(&mut h, 1, "w1", "eu", 4, &[], t);
        h.browser_connected(sid("s"), None, None, W);
        h.browser_message(&sid("s"), ClientMsg::Latency { results: Default::default() }, W);
        h.browser_message(&sid("s"), ClientMsg::StartGame { game: "walk".into(), room: None, port: 1 }, W);
        let room = RoomId::new("r1").unwrap();
        h.worker_message(
            ConnId(1),
            t,
            WorkerMsg::SessionStarted { session: sid("s"), room: room.clone(), game: "walk".into(), port: 1 },
        );
        drain(&mut h);

        // The link drops; the worker reconnects on a new connection 4 s later with its room.
        h.worker_disconnected(ConnId(1), t + Duration::from_secs(1));
        h.tick(t + Duration::from_secs(4));
        register(&mut h, 2, "w1", "eu", 3, &["r1"], t + Duration::from_secs(5));
        h.worker_message(ConnId(2), t + Duration::from_secs(10), WorkerMsg::Heartbeat { load: Load::default() });
        // Past the first connection's grace deadline (t + 11 s).
        h.tick(t + Duration::from_secs(12));
        let out = drain(&mut h);
        assert!(!out.iter().any(|o| matches!(o, Output::Browser(..))), "the player is told nothing: {out:?}");
        assert_eq!(h.registry().room(&room).map(|(w, _)| w.as_str()), Some("w1"));
        // The session still belongs to the worker: its messages reach the player, and the
        // player's quit reaches the worker on its new connection.
        h.worker_message(ConnId(2), t, WorkerMsg::Ice { session: sid("s"), candidate: None });
        assert!(matches!(&drain(&mut h)[..], [Output::Browser(s, ServerMsg::Ice { .. })] if *s == sid("s")));
        h.browser_message(&sid("s"), ClientMsg::Quit, W);
        assert!(drain(&mut h).contains(&Output::Worker(ConnId(2), CoordMsg::EndSession { session: sid("s") })));
    }

    #[test]
    fn a_game_not_started_yet_is_told_at_once_and_a_quit_waits_for_the_worker() {
        let t = Instant::now();
        let mut h = hub();
        register(&mut h, 1, "w1", "eu", 4, &[], t);
        for s in ["starting", "playing"] {
            h.browser_connected(sid(s), None, None, W);
            h.browser_message(&sid(s), ClientMsg::Latency { results: Default::default() }, W);
            h.browser_message(&sid(s), ClientMsg::StartGame { game: "walk".into(), room: None, port: 1 }, W);
        }
        let room = RoomId::new("r1").unwrap();
        let started = WorkerMsg::SessionStarted { session: sid("playing"), room, game: "walk".into(), port: 1 };
        h.worker_message(ConnId(1), t, started);
        drain(&mut h);

        // The link drops while "starting" waits for its game: its game_started would be lost.
        h.worker_disconnected(ConnId(1), t);
        let out = drain(&mut h);
        let told: Vec<&SessionId> = out
            .iter()
            .filter_map(|o| match o {
                Output::Browser(s, ServerMsg::Error { code: ErrorCode::WorkerLost, message }) => {
                    assert!(message.contains("before your game started"), "{message}");
                    Some(s)
                }
                _ => None,
            })
            .collect();
        assert_eq!(told, [&sid("starting")], "{out:?}");
        // "playing" quits while the worker is away: the worker hears it when it is back.
        h.browser_message(&sid("playing"), ClientMsg::Quit, W);
        assert!(drain(&mut h).is_empty());
        register(&mut h, 2, "w1", "eu", 4, &["r1"], t + Duration::from_secs(3));
        let out = drain(&mut h);
        assert!(out.contains(&Output::Worker(ConnId(2), CoordMsg::EndSession { session: sid("playing") })), "{out:?}");
    }

    #[test]
    fn init_carries_the_static_servers_and_the_sessions_own_turn_credentials() {
        let t = Instant::now();
        let mut h = Hub::new(HubConfig {
            turn: Some(TurnRest {
                urls: vec!["turn:turn.example.org:3478".into()],
                secret: "north-wind".into(),
                ttl: Duration::from_secs(3600),
            }),
            ..hub().cfg
        });
        register(&mut h, 1, "w1", "eu", 4, &[], t);
        drain(&mut h);
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        h.browser_connected(sid("0123456789abcdef"), None, None, wall);
        h.browser_message(&sid("0123456789abcdef"), ClientMsg::Latency { results: Default::default() }, wall);
        let out = drain(&mut h);
        let [_, Output::Browser(_, ServerMsg::Init { ice_servers, .. })] = &out[..] else { panic!("{out:?}") };
        assert_eq!(ice_servers.len(), 2, "{ice_servers:?}");
        assert_eq!(ice_servers[0].urls, vec!["stun:s:3478".to_string()]);
        let turn = &ice_servers[1];
        assert_eq!(turn.urls, vec!["turn:turn.example.org:3478".to_string()]);
        assert_eq!(turn.username.as_deref(), Some("1700003600:0123456789abcdef"));
        assert_eq!(turn.credential, Some(crate::turn::credential("north-wind", "1700003600:0123456789abcdef")));

        // Each session gets its own, from the time of its init.
        let later = wall + Duration::from_secs(60);
        h.browser_connected(sid("fedcba9876543210"), None, None, later);
        h.browser_message(&sid("fedcba9876543210"), ClientMsg::Latency { results: Default::default() }, later);
        let out = drain(&mut h);
        let [_, Output::Browser(_, ServerMsg::Init { ice_servers, .. })] = &out[..] else { panic!("{out:?}") };
        assert_eq!(ice_servers[1].username.as_deref(), Some("1700003660:fedcba9876543210"));
    }
}
