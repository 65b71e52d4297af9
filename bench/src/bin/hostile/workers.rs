//! Simulated workers for the hostile load (bench/src/bin/hostile.rs and its short form,
//! coordinator/tests/hostile.rs, which include this file beside load.rs): real QUIC clients of
//! the coordinator's worker link, built from the project's own link code (retrofarm-link's
//! endpoint, PKI and stream framing, retrofarm-proto's control messages), that register,
//! heartbeat at the interval the coordinator asks for, and after a lost link re-register with
//! the rooms they run and send what they could not send before, as farm-worker/src/link.rs does.
//!
//! They run no emulator and no WebRTC: a session the coordinator places on one gets its room,
//! `session_started`, a fixed SDP offer and the end of candidates, as a real worker sends them;
//! each ICE candidate the browser trickles is answered with one of the worker's own, so a good
//! session can time a signaling round trip through the relay both ways (a real worker puts its
//! candidates in the offer and trickles none). All workers share one certificate (issued like
//! `retrofarm-coordinator pki issue-worker`), one UDP socket and one thread of their own, so the
//! browser load in the same process delays their heartbeats as little as possible.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use retrofarm_link::endpoint;
use retrofarm_link::pki::{self, Identity};
use retrofarm_link::stream::{self, FramedRecv, RecvError};
use retrofarm_proto::browser::{GameInfo, IceCandidate};
use retrofarm_proto::control::{CoordMsg, Load, RoomInfo, WorkerMsg, PROTOCOL_VERSION};
use retrofarm_proto::ids::{RoomId, SessionId, WorkerId};
use retrofarm_proto::ErrorCode;
use tokio::sync::{watch, Semaphore};

/// The certificate the simulated workers share (`<pki>/sim-workers.pem`, `.key`).
const CERT_NAME: &str = "sim-workers";

/// A name in the coordinator's certificate (the local PKI's default server names).
const SERVER_NAME: &str = "localhost";

/// The offer a simulated worker sends: enough SDP to be relayed, not to be connected to.
const SIM_SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=retrofarm simulated worker\r\nt=0 0\r\n";

/// Handshakes in flight at once while the workers connect.
const CONNECTING: usize = 32;

/// The receive buffer asked for the workers' shared UDP socket (the kernel caps it at
/// `net.core.rmem_max`): a real worker has a socket of its own, these share one, so its
/// default (`net.core.rmem_default`, 208 KiB here) would drop their datagrams before the
/// coordinator's do.
const RECV_BUFFER: usize = 4 << 20;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Simulated workers.
    pub count: usize,
    /// Zones they are spread over, round robin (`zone-0`, `zone-1`, ...).
    pub zones: usize,
    /// Rooms each can hold (its `free` is this minus the rooms it runs).
    pub capacity: u32,
    /// How long the coordinator's cost of the registered workers alone is measured before the
    /// browser load starts.
    pub settle: Duration,
}

impl Plan {
    /// The zone names, for the good sessions' `?zone=` (none without workers).
    pub fn zone_names(&self) -> Vec<String> {
        (0..self.zones.min(self.count)).map(zone).collect()
    }
}

fn zone(i: usize) -> String {
    format!("zone-{i}")
}

/// The games every simulated worker offers (the good sessions start `walk`).
fn games() -> Vec<GameInfo> {
    ["walk", "pong", "maze"].iter().map(|g| GameInfo { name: (*g).into(), system: "nes".into() }).collect()
}

/// The coordinator's figures with the workers registered and heartbeating, before any browser.
#[derive(Debug, Default, Clone, Copy)]
pub struct Idle {
    /// Wall time until every worker was registered (or the 60 s deadline).
    pub register_s: f64,
    /// The coordinator's RSS before the first worker connected, and after `settle`, in KiB.
    pub rss_before: u64,
    pub rss_registered: u64,
    /// CPU seconds the coordinator used over the `settle` window (heartbeats only), and the
    /// window's length.
    pub cpu_s: f64,
    pub wall_s: f64,
}

/// What the simulated workers saw, all of them together.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    /// Workers started.
    pub count: usize,
    /// Workers that registered at least once.
    pub registered: usize,
    /// Registrations in all (more than `registered` when links were lost and re-registered).
    pub registrations: u64,
    /// Workers whose first link stayed up to the end.
    pub held: usize,
    /// Heartbeats sent, and those whose write failed.
    pub heartbeats: u64,
    pub heartbeat_errors: u64,
    /// The longest time between two heartbeats of one worker, in milliseconds (a late
    /// heartbeat here is this process's delay, not the coordinator's).
    pub max_heartbeat_gap_ms: u64,
    /// Links dropped by the coordinator for a heartbeat timeout (the worker was declared lost).
    pub lost: u64,
    /// Links that ended otherwise before the end: refused, closed, reset, timed out.
    pub closed: u64,
    /// Why links ended early, and how often.
    pub reasons: BTreeMap<String, u64>,
    /// When the first link ended early and when the last one did, after the workers started.
    pub first_end: Option<Duration>,
    pub last_end: Option<Duration>,
    /// `start_session`s handled, those refused (no room left, unknown game or room), and
    /// browser ICE candidates answered.
    pub sessions: u64,
    pub sessions_refused: u64,
    pub ice_answered: u64,
    /// The receive buffer of the workers' shared UDP socket, in bytes.
    pub recv_buffer: u64,
}

#[derive(Default)]
struct Counters {
    registered: AtomicU64,
    registrations: AtomicU64,
    heartbeats: AtomicU64,
    heartbeat_errors: AtomicU64,
    max_gap_ms: AtomicU64,
    lost: AtomicU64,
    closed: AtomicU64,
    sessions: AtomicU64,
    sessions_refused: AtomicU64,
    ice_answered: AtomicU64,
    recv_buffer: AtomicU64,
    reasons: Mutex<BTreeMap<String, u64>>,
    /// When the farm started; the first and last early link ends after it.
    t0: Option<Instant>,
    ends: Mutex<Option<(Duration, Duration)>>,
}

impl Counters {
    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn link_ended(&self, end: &End) {
        let why = match end {
            End::Stopped => return,
            End::Lost => {
                Self::add(&self.lost);
                "heartbeat timeout".to_string()
            }
            End::Closed(why) => {
                Self::add(&self.closed);
                why.clone()
            }
        };
        *self.reasons.lock().unwrap().entry(why).or_default() += 1;
        let at = self.t0.map(|t| t.elapsed()).unwrap_or_default();
        let mut ends = self.ends.lock().unwrap();
        *ends = Some(ends.map_or((at, at), |(first, _)| (first, at)));
    }
}

/// Simulated workers running on a thread of their own; stopped (links closed) by [`Farm::stop`]
/// or when dropped.
pub struct Farm {
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<Result<usize>>>,
    counters: Arc<Counters>,
    count: usize,
}

impl Farm {
    /// Issues the workers' certificate from the coordinator's CA in `pki`, starts `plan.count`
    /// workers against the coordinator's QUIC address `quic` and waits (60 s at most) until all
    /// are registered; then measures the coordinator (process `pid`) with them alone for
    /// `plan.settle`.
    pub async fn start(plan: &Plan, quic: SocketAddr, pki: &Path, pid: u32) -> Result<(Farm, Idle)> {
        let rss_before = crate::load::rss_kib(pid)?;
        pki::issue(pki, pki::Role::Worker, CERT_NAME, &[CERT_NAME.to_string()])
            .context("issuing the simulated workers' certificate")?;
        let (stop, stopped) = watch::channel(false);
        let t0 = Instant::now();
        let counters = Arc::new(Counters { t0: Some(t0), ..Counters::default() });
        let thread = {
            let (plan, pki, counters) = (plan.clone(), pki.to_path_buf(), counters.clone());
            std::thread::Builder::new().name("sim-workers".into()).spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                rt.block_on(run(plan, quic, pki, counters, stopped))
            })?
        };
        let mut farm = Farm { stop, thread: Some(thread), counters, count: plan.count };
        let end = t0 + Duration::from_secs(60);
        while farm.counters.registered.load(Ordering::Relaxed) < plan.count as u64 && Instant::now() < end {
            if farm.thread.as_ref().is_some_and(|t| t.is_finished()) {
                return Err(match farm.thread.take().expect("checked").join() {
                    Ok(Err(e)) => e.context("the simulated workers stopped"),
                    Ok(Ok(_)) => anyhow!("the simulated workers stopped before all registered"),
                    Err(_) => anyhow!("the simulated workers' thread panicked"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let register_s = t0.elapsed().as_secs_f64();
        let cpu_before = crate::load::cpu_s(pid)?;
        let t1 = Instant::now();
        tokio::time::sleep(plan.settle).await;
        let idle = Idle {
            register_s,
            rss_before,
            rss_registered: crate::load::rss_kib(pid)?,
            cpu_s: crate::load::cpu_s(pid)? - cpu_before,
            wall_s: t1.elapsed().as_secs_f64(),
        };
        Ok((farm, idle))
    }

    /// Workers registered so far.
    pub fn registered(&self) -> usize {
        self.counters.registered.load(Ordering::Relaxed) as usize
    }

    /// Closes every link and returns what the workers saw.
    pub async fn stop(mut self) -> Result<Figures> {
        let _ = self.stop.send(true);
        let thread = self.thread.take().expect("stopped once");
        let held = tokio::task::spawn_blocking(move || thread.join())
            .await?
            .map_err(|_| anyhow!("the simulated workers' thread panicked"))??;
        let c = &self.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let ends = *c.ends.lock().unwrap();
        Ok(Figures {
            count: self.count,
            registered: n(&c.registered) as usize,
            registrations: n(&c.registrations),
            held,
            heartbeats: n(&c.heartbeats),
            heartbeat_errors: n(&c.heartbeat_errors),
            max_heartbeat_gap_ms: n(&c.max_gap_ms),
            lost: n(&c.lost),
            closed: n(&c.closed),
            reasons: c.reasons.lock().unwrap().clone(),
            first_end: ends.map(|e| e.0),
            last_end: ends.map(|e| e.1),
            sessions: n(&c.sessions),
            sessions_refused: n(&c.sessions_refused),
            ice_answered: n(&c.ice_answered),
            recv_buffer: n(&c.recv_buffer),
        })
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The farm's thread: one client endpoint, one task per worker; returns how many held their
/// first link to the end.
async fn run(
    plan: Plan,
    quic: SocketAddr,
    pki: PathBuf,
    counters: Arc<Counters>,
    stop: watch::Receiver<bool>,
) -> Result<usize> {
    let identity = Identity::in_dir(&pki, CERT_NAME).load()?;
    // The real worker's idle timeout; the coordinator's own (its heartbeat timeout) is shorter.
    let ep = endpoint::client(identity, Duration::from_secs(10))?;
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").context("binding the workers' UDP socket")?;
    let udp = quinn::udp::UdpSocketState::new((&socket).into())?;
    udp.set_recv_buffer_size((&socket).into(), RECV_BUFFER).context("enlarging the workers' receive buffer")?;
    counters.recv_buffer.store(udp.recv_buffer_size((&socket).into())? as u64, Ordering::Relaxed);
    ep.rebind(socket).context("moving the workers' endpoint to its socket")?;
    let connecting = Arc::new(Semaphore::new(CONNECTING));
    let tasks: Vec<_> = (0..plan.count)
        .map(|i| {
            let sim = Sim {
                id: WorkerId::new(format!("sim-{i:05}")).expect("a valid id"),
                zone: zone(i % plan.zones.max(1)),
                capacity: plan.capacity,
                registered: false,
                sessions: HashMap::new(),
                rooms: HashMap::new(),
                next_room: 0,
                outbox: VecDeque::new(),
            };
            let (ep, counters, stop, connecting) = (ep.clone(), counters.clone(), stop.clone(), connecting.clone());
            tokio::spawn(worker(sim, ep, quic, counters, stop, connecting))
        })
        .collect();
    let mut held = 0;
    for t in tasks {
        held += usize::from(t.await?);
    }
    // Lets the close frames go out.
    let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
    Ok(held)
}

/// How a link ended.
#[derive(Debug)]
enum End {
    /// The farm was stopped (the link closed cleanly by us).
    Stopped,
    /// The coordinator dropped the worker for a heartbeat timeout.
    Lost,
    /// Anything else, with why.
    Closed(String),
}

/// One worker: keeps a link up until stopped, re-registering after a lost one with the rooms
/// it runs and then sending what it could not send before (the coordinator keeps their sessions
/// for a grace period); returns whether its first link held to the end.
async fn worker(
    mut sim: Sim,
    ep: quinn::Endpoint,
    quic: SocketAddr,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
    connecting: Arc<Semaphore>,
) -> bool {
    let mut held = true;
    loop {
        let end = link(&mut sim, &ep, quic, &counters, &mut stop, &connecting).await;
        counters.link_ended(&end);
        if matches!(end, End::Stopped) || *stop.borrow() {
            return held;
        }
        held = false;
        // The real worker's first backoff step.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            () = stopped(&mut stop) => return false,
        }
    }
}

/// One link: connect, register, then heartbeat and answer the coordinator until it ends.
async fn link(
    sim: &mut Sim,
    ep: &quinn::Endpoint,
    quic: SocketAddr,
    counters: &Counters,
    stop: &mut watch::Receiver<bool>,
    connecting: &Semaphore,
) -> End {
    let permit = connecting.acquire().await;
    let connected = async {
        let conn = ep.connect(quic, SERVER_NAME)?.await.context("QUIC handshake")?;
        let (send, recv) = conn.open_bi().await.context("opening the control stream")?;
        anyhow::Ok((conn, send, FramedRecv::new(recv)))
    };
    let (conn, mut send, mut recv) = tokio::select! {
        r = connected => match r {
            Ok(x) => x,
            Err(e) => return End::Closed(format!("{e:#}")),
        },
        () = stopped(stop) => return End::Stopped,
    };
    let register = WorkerMsg::Register {
        protocol: PROTOCOL_VERSION,
        id: sim.id.clone(),
        zone: sim.zone.clone(),
        ping_url: "http://127.0.0.1:9/ping".into(),
        games: games(),
        rooms: sim.rooms.iter().map(|(id, (game, _))| RoomInfo { id: id.clone(), game: game.clone() }).collect(),
        load: sim.load(),
    };
    if let Err(e) = stream::send(&mut send, &register).await {
        return End::Closed(format!("sending register: {e}"));
    }
    let heartbeat_ms = match tokio::time::timeout(Duration::from_secs(10), recv.recv::<CoordMsg>()).await {
        Ok(Ok(CoordMsg::Registered { heartbeat_ms })) => heartbeat_ms,
        Ok(Ok(CoordMsg::Refused { reason })) => return End::Closed(format!("registration refused: {reason}")),
        Ok(Ok(other)) => return End::Closed(format!("unexpected first message: {other:?}")),
        Ok(Err(e)) => return ended(&conn, e).await,
        Err(_) => return End::Closed("no answer to register within 10 s".into()),
    };
    drop(permit);
    if !sim.registered {
        sim.registered = true;
        Counters::add(&counters.registered);
    }
    Counters::add(&counters.registrations);
    // What could not be sent on the last link goes out after the registration.
    if let Err(e) = flush(&mut send, &mut sim.outbox).await {
        return End::Closed(e);
    }

    let mut heartbeat = tokio::time::interval(Duration::from_millis(heartbeat_ms.max(50)));
    let mut last: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                let now = Instant::now();
                if let Some(last) = last {
                    counters.max_gap_ms.fetch_max(now.duration_since(last).as_millis() as u64, Ordering::Relaxed);
                }
                last = Some(now);
                Counters::add(&counters.heartbeats);
                if let Err(e) = stream::send(&mut send, &WorkerMsg::Heartbeat { load: sim.load() }).await {
                    Counters::add(&counters.heartbeat_errors);
                    return End::Closed(format!("heartbeat: {e}"));
                }
            }
            msg = recv.recv::<CoordMsg>() => {
                match msg {
                    Ok(CoordMsg::Refused { reason }) => return End::Closed(format!("dropped by the coordinator: {reason}")),
                    Ok(m) => {
                        let replies = sim.command(m, counters);
                        sim.outbox.extend(replies);
                    }
                    Err(e) => return ended(&conn, e).await,
                }
                if let Err(e) = flush(&mut send, &mut sim.outbox).await {
                    return End::Closed(e);
                }
            }
            () = stopped(stop) => {
                let _ = send.finish();
                conn.close(0u32.into(), b"simulation over");
                return End::Stopped;
            }
        }
    }
}

/// Resolves once the farm is stopped (or dropped).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Why the coordinator's side of a link ended: the close reason it gave, when it gave one.
async fn ended(conn: &quinn::Connection, e: RecvError) -> End {
    // A coordinator that drops a worker finishes the stream, then closes the connection with
    // the reason: wait a moment for the reason.
    let closed = tokio::time::timeout(Duration::from_secs(1), conn.closed()).await;
    match closed {
        Ok(quinn::ConnectionError::ApplicationClosed(c)) if &c.reason[..] == b"heartbeat timeout" => End::Lost,
        Ok(quinn::ConnectionError::ApplicationClosed(c)) => {
            End::Closed(format!("closed by the coordinator: {}", String::from_utf8_lossy(&c.reason)))
        }
        Ok(other) => End::Closed(format!("{other}")),
        Err(_) => End::Closed(format!("{e}")),
    }
}

/// Sends the outbox in order; a message whose write fails stays in it for the next link.
async fn flush(send: &mut quinn::SendStream, outbox: &mut VecDeque<WorkerMsg>) -> Result<(), String> {
    while let Some(m) = outbox.front() {
        stream::send(send, m).await.map_err(|e| format!("sending {}: {e}", kind(m)))?;
        outbox.pop_front();
    }
    Ok(())
}

fn kind(m: &WorkerMsg) -> &'static str {
    match m {
        WorkerMsg::Register { .. } => "register",
        WorkerMsg::Heartbeat { .. } => "heartbeat",
        WorkerMsg::SessionStarted { .. } => "session_started",
        WorkerMsg::Offer { .. } => "offer",
        WorkerMsg::Ice { .. } => "ice",
        WorkerMsg::SessionEnded { .. } => "session_ended",
        WorkerMsg::RoomClosed { .. } => "room_closed",
        WorkerMsg::Games { .. } => "games",
    }
}

/// One simulated worker's rooms and sessions.
struct Sim {
    id: WorkerId,
    zone: String,
    capacity: u32,
    /// Whether it has registered once.
    registered: bool,
    /// Session → its room.
    sessions: HashMap<SessionId, RoomId>,
    /// Room → its game and the sessions in it.
    rooms: HashMap<RoomId, (String, u32)>,
    next_room: u64,
    /// Replies not sent yet (the link went down): they go out after the next registration, as
    /// the real worker's queued messages do.
    outbox: VecDeque<WorkerMsg>,
}

impl Sim {
    fn load(&self) -> Load {
        let rooms = self.rooms.len() as u32;
        Load { rooms, sessions: self.sessions.len() as u32, free: self.capacity.saturating_sub(rooms) }
    }

    /// Handles a coordinator command; returns the replies.
    fn command(&mut self, m: CoordMsg, counters: &Counters) -> Vec<WorkerMsg> {
        match m {
            CoordMsg::StartSession { session, game, room, port } => {
                let refuse = |code, message: String| {
                    Counters::add(&counters.sessions_refused);
                    vec![WorkerMsg::SessionEnded { session: session.clone(), code, message }]
                };
                if self.sessions.contains_key(&session) {
                    return refuse(ErrorCode::BadState, "this session is already in a room; quit first".into());
                }
                let room = match room {
                    Some(r) if self.rooms.contains_key(&r) => r,
                    Some(r) => {
                        return refuse(ErrorCode::UnknownRoom, format!("room {r} does not exist (it may have ended)"))
                    }
                    None if !games().iter().any(|g| g.name == game) => {
                        return refuse(ErrorCode::UnknownGame, format!("no game named {game:?} on this worker"))
                    }
                    None if self.rooms.len() as u32 >= self.capacity => {
                        return refuse(ErrorCode::NoFreeWorker, "this server is full; try again in a minute".into())
                    }
                    None => {
                        self.next_room += 1;
                        RoomId::new(format!("{}-{}", self.id, self.next_room)).expect("a valid id")
                    }
                };
                Counters::add(&counters.sessions);
                let entry = self.rooms.entry(room.clone()).or_insert_with(|| (game, 0));
                entry.1 += 1;
                let game = entry.0.clone();
                self.sessions.insert(session.clone(), room.clone());
                vec![
                    WorkerMsg::SessionStarted { session: session.clone(), room, game, port },
                    WorkerMsg::Offer { session: session.clone(), sdp: SIM_SDP.into() },
                    WorkerMsg::Ice { session, candidate: None },
                ]
            }
            CoordMsg::Ice { session, candidate: Some(_) } if self.sessions.contains_key(&session) => {
                Counters::add(&counters.ice_answered);
                let candidate = IceCandidate {
                    candidate: "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host".into(),
                    sdp_mid: Some("0".into()),
                    sdp_m_line_index: Some(0),
                };
                vec![WorkerMsg::Ice { session, candidate: Some(candidate) }]
            }
            CoordMsg::EndSession { session } => {
                let Some(room) = self.sessions.remove(&session) else { return vec![] };
                let left = self.rooms.get_mut(&room).map(|(_, n)| {
                    *n -= 1;
                    *n
                });
                if left == Some(0) {
                    self.rooms.remove(&room);
                    return vec![WorkerMsg::RoomClosed { room }];
                }
                vec![]
            }
            CoordMsg::Answer { .. } | CoordMsg::Ice { .. } | CoordMsg::Registered { .. } | CoordMsg::Refused { .. } => {
                vec![]
            }
        }
    }
}

/// The workers' lines of the report.
pub fn render(plan: &Plan, idle: &Idle, f: &Figures) -> String {
    let mut s = format!(
        "simulated workers: {} in {} zones, {} rooms each (one UDP socket, {} KiB receive buffer), {} registered within {:.1} s, {} held their link to the end\n",
        plan.count,
        plan.zones.min(plan.count),
        plan.capacity,
        f.recv_buffer / 1024,
        f.registered,
        idle.register_s,
        f.held
    );
    s += &format!(
        "worker links: {} registrations, {} heartbeats ({} failed, longest gap {} ms), {} declared lost, {} closed otherwise\n",
        f.registrations, f.heartbeats, f.heartbeat_errors, f.max_heartbeat_gap_ms, f.lost, f.closed
    );
    if let (Some(first), Some(last)) = (f.first_end, f.last_end) {
        s += &format!(
            "  links ended between {:.1} and {:.1} s after the workers started (the browser load began at {:.1} s):\n",
            first.as_secs_f64(),
            last.as_secs_f64(),
            idle.register_s + idle.wall_s
        );
    }
    for (why, n) in f.reasons.iter().take(8) {
        s += &format!("  {n}× {why}\n");
    }
    s += &format!(
        "worker sessions: {} started ({} refused), {} browser ICE candidates answered\n",
        f.sessions, f.sessions_refused, f.ice_answered
    );
    let per = idle.rss_registered.saturating_sub(idle.rss_before) as f64 / plan.count.max(1) as f64;
    s += &format!(
        "coordinator with the workers alone: RSS {} KiB before, {} KiB registered ({:.1} KiB per worker); CPU {:.2} s over {:.1} s ({:.0}% of a core)\n",
        idle.rss_before,
        idle.rss_registered,
        per,
        idle.cpu_s,
        idle.wall_s,
        100.0 * idle.cpu_s / idle.wall_s.max(0.001)
    );
    s
}
