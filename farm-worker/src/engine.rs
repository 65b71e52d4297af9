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
use str0m::media::{MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::library::Library;
use crate::peer::Peer;
use crate::pool::EncodePool;
use crate::room::{MediaEvent, RoomHandle, RoomSpec};
use crate::roombook::RoomBook;

/// How long a peer may wait for the browser's answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Encoder pool threads (None: one per core).
    pub encoder_threads: Option<usize>,
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
    up: mpsc::Sender<WorkerMsg>,
    status: watch::Sender<Status>,
    pool: Arc<EncodePool>,
    media_tx: mpsc::Sender<MediaEvent>,
    media_rx: mpsc::Receiver<MediaEvent>,
}

impl Engine {
    /// A new engine; `up` carries messages to the coordinator, `status` publishes load.
    pub fn new(
        cfg: EngineConfig,
        library: Library,
        up: mpsc::Sender<WorkerMsg>,
        status: watch::Sender<Status>,
    ) -> Self {
        let (media_tx, media_rx) = mpsc::channel(1024);
        let pool = Arc::new(cfg.encoder_threads.map_or_else(EncodePool::per_core, EncodePool::new));
        info!(threads = pool.threads(), "encoder pool started");
        let e = Self {
            pool,
            cfg,
            library,
            book: RoomBook::new(),
            rooms: HashMap::new(),
            peers: HashMap::new(),
            up,
            status,
            media_tx,
            media_rx,
        };
        e.publish();
        e
    }

    fn send(&self, msg: WorkerMsg) {
        if self.up.try_send(msg).is_err() {
            debug!("coordinator link is down or backed up; message dropped");
        }
    }

    fn publish(&self) {
        let status = Status { load: self.book.load(self.cfg.max_rooms), rooms: self.book.infos() };
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
                _ = sleep => {
                    let now = Instant::now();
                    for p in self.peers.values_mut() {
                        let _ = p.rtc.handle_input(Input::Timeout(now));
                    }
                }
            }
            next = self.drive(&socket);
            self.publish();
        }
    }

    fn command(&mut self, cmd: CoordMsg) {
        match cmd {
            CoordMsg::StartSession { session, game, room, port, ice_servers: _ } => {
                self.start(session, game, room, port)
            }
            CoordMsg::Answer { session, sdp } => {
                let Some(peer) = self.peers.get_mut(&session) else { return };
                if let Err(e) = peer.accept_answer(&sdp) {
                    warn!(%session, error = %format!("{e:#}"), "bad SDP answer");
                    self.end(&session, ErrorCode::Malformed, format!("the browser's SDP answer was refused: {e:#}"));
                }
            }
            CoordMsg::Ice { session, candidate } => {
                let (Some(peer), Some(c)) = (self.peers.get_mut(&session), candidate) else { return };
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
        let can_create = (self.book.room_count() as u32) < self.cfg.max_rooms;
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
            };
            let handle = RoomHandle::start(spec, self.pool.clone(), self.media_tx.clone());
            self.rooms.insert(joined.room.clone(), handle);
        }
        info!(%session, room = %joined.room, game = %joined.game, port, created = joined.created, "session started");
        self.peers.insert(session.clone(), peer);
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
        if let Some(mut p) = self.peers.remove(session) {
            p.rtc.disconnect();
        }
        self.leave(session);
    }

    fn leave(&mut self, session: &SessionId) {
        if let Some((room, true)) = self.book.leave(session) {
            info!(%room, "room closed: last player left");
            self.stop_room(&room);
            self.send(WorkerMsg::RoomClosed { room });
        }
    }

    fn stop_room(&mut self, room: &RoomId) {
        // Dropping the handle stops the room; its emulator dies with the last reference.
        self.rooms.remove(room);
    }

    fn media(&mut self, ev: MediaEvent) {
        let now = Instant::now();
        let (room, mid_of, pt_of, time, data): (_, fn(&Peer) -> Mid, fn(&Peer) -> Option<Pt>, _, _) = match ev {
            MediaEvent::Video { room, codec: _, data, keyframe: _, rtp_90k, stamps: _ } => {
                (room, |p| p.video, |p| p.payloads.and_then(|x| x.h264), MediaTime::from_90khz(rtp_90k), data)
            }
            MediaEvent::Audio { room, data, rtp_48k } => (
                room,
                |p| p.audio,
                |p| p.payloads.and_then(|x| x.opus),
                MediaTime::new(rtp_48k, str0m::media::Frequency::FORTY_EIGHT_KHZ),
                data,
            ),
            MediaEvent::Died { room, reason } => return self.room_died(&room, reason),
        };
        let sessions: Vec<SessionId> = self.book.sessions_in(&room).cloned().collect();
        for s in sessions {
            let Some(peer) = self.peers.get_mut(&s) else { continue };
            let (mid, Some(pt)) = (mid_of(peer), pt_of(peer)) else { continue };
            if let Some(w) = peer.rtc.writer(mid) {
                if let Err(e) = w.write(pt, now, time, Arc::clone(&data)) {
                    debug!(session = %s, error = %e, "media write failed");
                }
            }
        }
    }

    fn room_died(&mut self, room: &RoomId, reason: String) {
        let sessions = self.book.close(room);
        warn!(%room, %reason, players = sessions.len(), "room died");
        for s in sessions {
            if let Some(mut p) = self.peers.remove(&s) {
                p.rtc.disconnect();
            }
            self.refuse(s, ErrorCode::RoomClosed, reason.clone());
        }
        self.stop_room(room);
        self.send(WorkerMsg::RoomClosed { room: room.clone() });
    }

    fn datagram(&mut self, data: &[u8], source: SocketAddr, local: SocketAddr) {
        let Ok(contents) = data.try_into() else { return };
        let input =
            Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents });
        match self.peers.values_mut().find(|p| p.rtc.accepts(&input)) {
            Some(p) => {
                if let Err(e) = p.rtc.handle_input(input) {
                    debug!(error = %e, "peer rejected a datagram");
                }
            }
            None => debug!(%source, "datagram for no peer"),
        }
    }

    /// Polls every peer until it waits, then acts on what they reported; returns the earliest
    /// deadline.
    fn drive(&mut self, socket: &UdpSocket) -> Instant {
        let now = Instant::now();
        let mut next = now + Duration::from_millis(100);
        let mut actions = Vec::new();
        for (session, p) in self.peers.iter_mut() {
            loop {
                match p.rtc.poll_output() {
                    Ok(Output::Transmit(t)) => {
                        if let Err(e) = socket.try_send_to(&t.contents, t.destination) {
                            debug!(error = %e, "UDP send dropped");
                        }
                    }
                    Ok(Output::Timeout(t)) => {
                        next = next.min(t);
                        break;
                    }
                    Ok(Output::Event(ev)) => match ev {
                        Event::Connected => actions.push(Action::Connected(session.clone())),
                        Event::KeyframeRequest(_) => actions.push(Action::Keyframe(session.clone())),
                        Event::ChannelData(d) => match PadState::decode(&d.data) {
                            Ok(pad) => actions.push(Action::Input(session.clone(), pad)),
                            Err(e) => debug!(%session, error = %e, "ignoring bad input packet"),
                        },
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
            if !p.rtc.is_alive() || (!p.answered() && now.duration_since(p.created) > CONNECT_TIMEOUT) {
                actions.push(Action::Dead(session.clone()));
            }
        }
        for a in actions {
            self.act(a);
        }
        next
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
                if payloads.h264.is_none() {
                    let msg = "your browser offered no H264 format this server can send".to_string();
                    return self.end(&s, ErrorCode::Internal, msg);
                }
                // A new viewer needs a keyframe to start decoding.
                if let Some((room, _)) = self.room_of(&s) {
                    room.request_keyframe();
                }
            }
            Action::Keyframe(s) => {
                if let Some((room, _)) = self.room_of(&s) {
                    room.request_keyframe();
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
