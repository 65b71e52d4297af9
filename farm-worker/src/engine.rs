//! The worker's engine: one task that owns the rooms, the WebRTC peers and the UDP socket they
//! all share, driven by commands from the coordinator link, datagrams and timers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use retrofarm_proto::control::{CoordMsg, Load, RoomInfo, WorkerMsg};
use retrofarm_proto::ids::{RoomId, SessionId};
use retrofarm_proto::ErrorCode;
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::library::Library;
use crate::peer::Peer;
use crate::roombook::RoomBook;

/// How long a peer may wait for the browser's answer and connection.
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
}

/// Rooms, peers and the shared UDP socket.
pub struct Engine {
    cfg: EngineConfig,
    library: Library,
    book: RoomBook,
    peers: HashMap<SessionId, Peer>,
    up: mpsc::Sender<WorkerMsg>,
    status: watch::Sender<Status>,
}

impl Engine {
    /// A new engine; `up` carries messages to the coordinator, `status` publishes load.
    pub fn new(
        cfg: EngineConfig,
        library: Library,
        up: mpsc::Sender<WorkerMsg>,
        status: watch::Sender<Status>,
    ) -> Self {
        let e = Self { cfg, library, book: RoomBook::new(), peers: HashMap::new(), up, status };
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

    fn start(&mut self, session: SessionId, game: String, room: Option<RoomId>, port: u8) {
        if room.is_none() && self.library.get(&game).is_none() {
            let msg = format!("no game named {game:?} on this worker");
            return self.send(WorkerMsg::SessionEnded { session, code: ErrorCode::UnknownGame, message: msg });
        }
        let can_create = (self.book.room_count() as u32) < self.cfg.max_rooms;
        let joined = match self.book.join(session.clone(), &game, room.as_ref(), port, new_room_id(), can_create) {
            Ok(j) => j,
            Err(r) => return self.send(WorkerMsg::SessionEnded { session, code: r.code, message: r.message }),
        };
        let (peer, sdp) = match Peer::offer(Instant::now(), &self.cfg.candidates) {
            Ok(x) => x,
            Err(e) => {
                self.book.leave(&session);
                let message = format!("cannot create the WebRTC peer: {e:#}");
                return self.send(WorkerMsg::SessionEnded { session, code: ErrorCode::Internal, message });
            }
        };
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
        if let Some((room, empty)) = self.book.leave(session) {
            if empty {
                info!(%room, "room closed: last player left");
                self.send(WorkerMsg::RoomClosed { room });
            }
        }
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

    /// Polls every peer until it waits; returns the earliest deadline.
    fn drive(&mut self, socket: &UdpSocket) -> Instant {
        let now = Instant::now();
        let mut next = now + Duration::from_millis(100);
        let mut dead = Vec::new();
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
                        Event::Connected => info!(%session, "peer connected"),
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
            let stalled = !p.rtc.is_alive() || (!p.answered() && now.duration_since(p.created) > CONNECT_TIMEOUT);
            if stalled {
                dead.push(session.clone());
            }
        }
        for s in dead {
            self.end(
                &s,
                ErrorCode::Internal,
                "the WebRTC connection to the game server was lost or never established".into(),
            );
        }
        next
    }
}

fn new_room_id() -> RoomId {
    RoomId::new(format!("{:08x}", rand::random::<u32>())).expect("hex is a valid id")
}
