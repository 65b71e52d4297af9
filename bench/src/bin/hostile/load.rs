//! Hostile load on a coordinator, shared by the `hostile` benchmark (bench/src/bin/hostile.rs)
//! and its short form in CI (coordinator/tests/hostile.rs, which includes this file): good
//! browser sessions that measure signaling round trips while hostile clients of each kind (slow
//! headers, half-open TCP, oversized messages, malformed JSON, floods, connections beyond the
//! per-address limit) do their worst, and the coordinator's CPU and memory, read from /proc.
//! With simulated workers registered (workers.rs) the good sessions go through the whole
//! signaling flow to a worker and back; without, they time the coordinator's `no_free_worker`
//! answer. Loopback only; every client has a deadline.
//!
//! Needs only tokio, tokio-tungstenite, futures-util, retrofarm-proto, anyhow and libc: both
//! crates include it with `#[path]`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use retrofarm_proto::browser::{ClientMsg, IceCandidate, ServerMsg};
use retrofarm_proto::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Good browser sessions.
    pub good: usize,
    /// Hostile clients of each kind.
    pub hostile_per_kind: usize,
    /// Request/response round trips each good session measures, one a second.
    pub rounds: usize,
    /// The coordinator's `--max-connections-per-ip` (the over-limit kind opens this many plus
    /// `hostile_per_kind` from one address).
    pub per_ip_limit: usize,
    /// Good sessions per source address (127.1.x.y), under `per_ip_limit`.
    pub good_per_ip: usize,
    /// Whether workers are registered: the good sessions then expect the whole signaling flow
    /// (latency check, `init`, a game started on a worker) instead of `no_free_worker`.
    pub workers: bool,
    /// Zones the good sessions ask for (`/ws?zone=`), round robin; empty: none.
    pub zones: Vec<String>,
}

/// The game the good sessions start.
pub const GAME: &str = "walk";

/// The hostile kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Sends `GET /ws HTTP/1.1` a byte a second, never finishing the headers.
    SlowHeaders,
    /// Connects and sends nothing.
    HalfOpen,
    /// One 300 KiB message (over the 256 KiB WebSocket limit).
    Oversized,
    /// Ten messages that are not JSON.
    Malformed,
    /// Messages as fast as the socket takes them.
    Flood,
    /// WebSockets from one address beyond the per-address limit.
    OverLimit,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 6] =
        [Kind::SlowHeaders, Kind::HalfOpen, Kind::Oversized, Kind::Malformed, Kind::Flood, Kind::OverLimit];
}

/// How the coordinator treated one hostile client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The connection was closed: by a WebSocket close frame with `code` (None: TCP close
    /// without one), after `after`; `errors` are the error codes received before.
    Closed { code: Option<u16>, after: Duration, errors: Vec<ErrorCode> },
    /// The upgrade was refused with an HTTP status.
    Refused { status: u16 },
    /// Still open at the client's deadline; `errors` received.
    Open { errors: Vec<ErrorCode> },
    /// The client itself failed (could not connect, ...).
    Failed(String),
}

/// What the good sessions saw.
#[derive(Debug, Default)]
pub struct GoodFigures {
    /// Sessions that connected and held their WebSocket to the end.
    pub held: usize,
    /// The measured round trips in microseconds: with workers, an ICE candidate relayed to the
    /// worker and the worker's relayed back; without, `start_game` to `no_free_worker`.
    pub rtt_us: Vec<u64>,
    /// With workers: `latency` to `init` (the coordinator chooses a worker), in microseconds.
    pub init_us: Vec<u64>,
    /// With workers: `start_game` to `game_started` (through the worker), in microseconds.
    pub start_us: Vec<u64>,
    /// Anything unexpected: connection failures, error codes (other than `no_free_worker`
    /// from a coordinator with no worker), closes, messages out of order.
    pub errors: Vec<String>,
}

/// The coordinator process's figures.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcFigures {
    /// RSS before the load, at its peak, and after the clients left, in KiB.
    pub rss_before: u64,
    pub rss_peak: u64,
    pub rss_after: u64,
    /// CPU seconds (user + system) used during the load, and the load's wall time.
    pub cpu_s: f64,
    pub wall_s: f64,
}

/// Everything a run measured.
#[derive(Debug, Default)]
pub struct Report {
    pub good: GoodFigures,
    pub hostile: BTreeMap<Kind, Vec<Outcome>>,
    pub coordinator: ProcFigures,
}

/// The `p`th percentile (0..=100) of `v` (sorted here).
pub fn percentile(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Raises the soft open-file limit towards `want` (up to the hard limit); returns what it is.
#[allow(unsafe_code)]
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < want {
            let cur = lim.rlim_cur;
            lim.rlim_cur = want.min(lim.rlim_max);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return cur;
            }
        }
    }
    lim.rlim_cur
}

/// A process's resident memory in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse().ok())
        .context("no VmRSS line")
}

/// A process's CPU time (user + system) in seconds.
#[allow(unsafe_code)]
pub fn cpu_s(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').context("no ')' in /proc/pid/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(ticks as f64 / hz)
}

/// A coordinator started for the load, killed when dropped.
pub struct Coordinator {
    child: Child,
    /// Its HTTP/WebSocket address.
    pub http: SocketAddr,
    /// Its QUIC address for workers.
    pub quic: SocketAddr,
    /// Its cluster PKI folder (created by the coordinator: it holds the CA's key).
    pub pki: PathBuf,
    /// Its log file.
    pub log: PathBuf,
}

impl Coordinator {
    /// Starts `bin` on loopback with its PKI and log in `dir` and `extra` flags; returns once
    /// it accepts connections.
    pub fn start(bin: &Path, dir: &Path, extra: &[String]) -> Result<Self> {
        let free = |udp: bool| -> Result<u16> {
            Ok(if udp {
                std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port()
            } else {
                std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()
            })
        };
        let http = SocketAddr::from(([127, 0, 0, 1], free(false)?));
        let quic = SocketAddr::from(([127, 0, 0, 1], free(true)?));
        let log = dir.join("coordinator.log");
        let pki = dir.join("pki");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .arg("run")
            .args(["--http-listen", &http.to_string(), "--quic-listen", &quic.to_string()])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .arg("--pki-dir")
            .arg(&pki)
            .args(extra)
            .env("RETROFARM_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut c = Self { child, http, quic, pki, log };
        let end = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(http).is_err() {
            if let Some(status) = c.child.try_wait()? {
                bail!("the coordinator exited ({status}):\n{}", std::fs::read_to_string(&c.log).unwrap_or_default());
            }
            if Instant::now() > end {
                bail!("the coordinator did not listen within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(c)
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects to `addr` from the loopback address `from`.
async fn tcp_from(from: Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    s.connect(addr).await
}

/// Opens `path` (`/ws`, maybe with a query) from `from`: the WebSocket, or the HTTP status that
/// refused it.
async fn ws_from(from: Ipv4Addr, addr: SocketAddr, path: &str) -> Result<std::result::Result<Ws, u16>> {
    let tcp = tcp_from(from, addr).await?;
    match tokio_tungstenite::client_async(format!("ws://{addr}{path}"), MaybeTlsStream::Plain(tcp)).await {
        Ok((ws, _)) => Ok(Ok(ws)),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Ok(Err(r.status().as_u16())),
        Err(e) => Err(e.into()),
    }
}

/// The next server message, or what ended the session instead.
async fn next_msg(ws: &mut Ws, within: Duration) -> Result<ServerMsg> {
    loop {
        match tokio::time::timeout(within, ws.next()).await {
            Err(_) => bail!("no message within {within:?}"),
            Ok(None) => bail!("connection closed"),
            Ok(Some(Err(e))) => bail!("{e}"),
            Ok(Some(Ok(Message::Text(t)))) => return Ok(ServerMsg::decode(&t)?),
            Ok(Some(Ok(Message::Close(f)))) => bail!("closed by the coordinator: {f:?}"),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// The documented answer of a coordinator with no worker to a page's first steps.
fn is_expected(m: &ServerMsg) -> bool {
    matches!(m, ServerMsg::Error { code: ErrorCode::NoFreeWorker, .. } | ServerMsg::CheckLatency { .. })
}

/// One good session's parameters.
struct Good {
    /// Its index (seeds the latencies it reports).
    index: usize,
    from: Ipv4Addr,
    addr: SocketAddr,
    rounds: usize,
    workers: bool,
    zone: Option<String>,
}

/// One good session: connects, goes through the first steps (holding a `connect` permit
/// meanwhile, which spreads the connection ramp), measures its round trips, then holds the
/// WebSocket until `release` fires. Anything unexpected ends it with an error.
async fn good_session(
    s: Good,
    figures: Arc<Mutex<GoodFigures>>,
    connect: Arc<tokio::sync::Semaphore>,
    mut release: tokio::sync::watch::Receiver<bool>,
) {
    let err = |e: String| {
        // A `check_latency` or `init` out of place is long: the start of it says enough.
        let cut = e.char_indices().nth(300).map_or(e.len(), |(i, _)| i);
        figures.lock().unwrap().errors.push(e[..cut].to_string());
    };
    let permit = connect.acquire().await;
    let path = match &s.zone {
        Some(z) => format!("/ws?zone={z}"),
        None => "/ws".into(),
    };
    let mut ws = match ws_from(s.from, s.addr, &path).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(status)) => return err(format!("upgrade refused with {status}")),
        Err(e) => return err(format!("connect: {e:#}")),
    };
    let measured = if s.workers {
        with_workers(&mut ws, &s, &figures, permit).await
    } else {
        without_workers(&mut ws, &s, &figures, permit).await
    };
    if let Err(e) = measured {
        return err(format!("{e:#}"));
    }
    figures.lock().unwrap().held += 1;
    let _ = release.wait_for(|r| *r).await;
    // Anything that came meanwhile (nothing should: a lost worker would say `worker_lost`)
    // counts as an error.
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(1), ws.next()).await {
        if let Message::Text(t) = m {
            err(format!("unasked message: {t}"));
        }
    }
    let _ = ws.close(None).await;
}

/// How long a good session waits for each answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// Sends `msg`.
async fn send(ws: &mut Ws, msg: &ClientMsg) -> Result<()> {
    ws.send(Message::Text(msg.encode().into())).await.with_context(|| format!("sending {}", msg.kind()))
}

/// Half a second to a second and a half: spreads the good sessions' requests.
async fn pause() {
    tokio::time::sleep(Duration::from_millis(500 + rand_ms(1000))).await;
}

/// With no worker: the first message is the `no_free_worker` error; then `rounds` times a
/// `start_game`, timed to the same answer.
async fn without_workers(
    ws: &mut Ws,
    s: &Good,
    figures: &Mutex<GoodFigures>,
    permit: Result<tokio::sync::SemaphorePermit<'_>, tokio::sync::AcquireError>,
) -> Result<()> {
    let m = next_msg(ws, ANSWER_WITHIN).await.context("first message")?;
    if !is_expected(&m) {
        bail!("first message: {m:?}");
    }
    drop(permit);
    let ask = ClientMsg::StartGame { game: GAME.into(), room: None, port: 1 };
    for _ in 0..s.rounds {
        pause().await;
        let t = Instant::now();
        send(ws, &ask).await?;
        let m = next_msg(ws, ANSWER_WITHIN).await.context("answer")?;
        if !is_expected(&m) {
            bail!("answer: {m:?}");
        }
        figures.lock().unwrap().rtt_us.push(t.elapsed().as_micros() as u64);
    }
    Ok(())
}

/// With workers, what a page does: answers the latency check (with made-up latencies: nothing
/// is pinged), gets `init` (timed), starts a game (timed to `game_started`, relayed from the
/// worker), reads the worker's offer and end of candidates, answers the offer, then `rounds`
/// times trickles an ICE candidate, timed to the worker's candidate relayed back.
async fn with_workers(
    ws: &mut Ws,
    s: &Good,
    figures: &Mutex<GoodFigures>,
    permit: Result<tokio::sync::SemaphorePermit<'_>, tokio::sync::AcquireError>,
) -> Result<()> {
    let targets = match next_msg(ws, ANSWER_WITHIN).await.context("first message")? {
        ServerMsg::CheckLatency { workers } => workers,
        m => bail!("first message: check_latency expected, got {m:?}"),
    };
    let results = targets
        .iter()
        .enumerate()
        .map(|(j, t)| (t.id.clone(), 5 + (mix((s.index as u64) << 20 | j as u64) % 50) as u32))
        .collect();
    let t = Instant::now();
    send(ws, &ClientMsg::Latency { results }).await?;
    match next_msg(ws, ANSWER_WITHIN).await.context("init")? {
        ServerMsg::Init { games, .. } if games.iter().any(|g| g.name == GAME) => {}
        m => bail!("init offering {GAME:?} expected, got {m:?}"),
    }
    figures.lock().unwrap().init_us.push(t.elapsed().as_micros() as u64);
    drop(permit);

    pause().await;
    let t = Instant::now();
    send(ws, &ClientMsg::StartGame { game: GAME.into(), room: None, port: 1 }).await?;
    match next_msg(ws, ANSWER_WITHIN).await.context("game_started")? {
        ServerMsg::GameStarted { .. } => {}
        m => bail!("game_started expected, got {m:?}"),
    }
    figures.lock().unwrap().start_us.push(t.elapsed().as_micros() as u64);
    match next_msg(ws, ANSWER_WITHIN).await.context("offer")? {
        ServerMsg::Offer { .. } => {}
        m => bail!("offer expected, got {m:?}"),
    }
    match next_msg(ws, ANSWER_WITHIN).await.context("end of candidates")? {
        ServerMsg::Ice { candidate: None } => {}
        m => bail!("the worker's end of candidates expected, got {m:?}"),
    }
    send(ws, &ClientMsg::Answer { sdp: "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n".into() }).await?;

    let candidate = IceCandidate {
        candidate: format!("candidate:1 1 udp 2130706431 {} 9 typ host", s.from),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
    };
    for _ in 0..s.rounds {
        pause().await;
        let t = Instant::now();
        send(ws, &ClientMsg::Ice { candidate: Some(candidate.clone()) }).await?;
        match next_msg(ws, ANSWER_WITHIN).await.context("the worker's candidate")? {
            ServerMsg::Ice { candidate: Some(_) } => {}
            m => bail!("the worker's candidate expected, got {m:?}"),
        }
        figures.lock().unwrap().rtt_us.push(t.elapsed().as_micros() as u64);
    }
    Ok(())
}

/// splitmix64: a well-spread pseudo-random number from `x`.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A pseudo-random number of milliseconds under `max` (spreads the good sessions' requests).
fn rand_ms(max: u64) -> u64 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    u64::from(nanos) % max.max(1)
}

/// Reads a raw TCP connection until the server closes it (or `deadline`), writing `trickle`
/// a byte a second meanwhile.
async fn raw_until_closed(mut tcp: TcpStream, trickle: &[u8], deadline: Duration) -> Outcome {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    let mut next = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            r = tcp.read(&mut buf) => match r {
                Ok(0) | Err(_) => return Outcome::Closed { code: None, after: start.elapsed(), errors: vec![] },
                Ok(_) => {}
            },
            _ = tick.tick() => {
                if next < trickle.len() {
                    if tcp.write_all(&trickle[next..=next]).await.is_err() {
                        return Outcome::Closed { code: None, after: start.elapsed(), errors: vec![] };
                    }
                    next += 1;
                }
            }
            _ = tokio::time::sleep(deadline.saturating_sub(start.elapsed())) => return Outcome::Open { errors: vec![] },
        }
    }
}

/// Reads a WebSocket (or its read half) until the server closes it (or `deadline`), collecting
/// error codes.
async fn ws_until_closed<S, E>(ws: &mut S, start: Instant, deadline: Duration, errors: &mut Vec<ErrorCode>) -> Outcome
where
    S: futures_util::Stream<Item = Result<Message, E>> + Unpin,
{
    loop {
        match tokio::time::timeout(deadline.saturating_sub(start.elapsed()), ws.next()).await {
            Err(_) => return Outcome::Open { errors: std::mem::take(errors) },
            Ok(Some(Ok(Message::Text(t)))) => {
                if let Ok(ServerMsg::Error { code, .. }) = ServerMsg::decode(&t) {
                    errors.push(code);
                }
            }
            Ok(Some(Ok(Message::Close(f)))) => {
                return Outcome::Closed {
                    code: f.map(|f| u16::from(f.code)),
                    after: start.elapsed(),
                    errors: std::mem::take(errors),
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => {
                return Outcome::Closed { code: None, after: start.elapsed(), errors: std::mem::take(errors) }
            }
        }
    }
}

/// One hostile client of `kind` from `from`.
async fn hostile(kind: Kind, from: Ipv4Addr, addr: SocketAddr) -> Outcome {
    let deadline = Duration::from_secs(20);
    let start = Instant::now();
    let ws = |from| async move {
        match ws_from(from, addr, "/ws").await {
            Ok(Ok(ws)) => Ok(ws),
            Ok(Err(status)) => Err(Outcome::Refused { status }),
            Err(e) => Err(Outcome::Failed(format!("{e:#}"))),
        }
    };
    let mut errors = vec![];
    match kind {
        Kind::SlowHeaders | Kind::HalfOpen => match tcp_from(from, addr).await {
            Ok(tcp) => {
                let trickle: &[u8] = if kind == Kind::SlowHeaders { b"GET /ws HTTP/1.1\r\nHost: x\r\n" } else { b"" };
                raw_until_closed(tcp, trickle, deadline).await
            }
            Err(e) => Outcome::Failed(e.to_string()),
        },
        Kind::Oversized => {
            let mut ws = match ws(from).await {
                Ok(ws) => ws,
                Err(o) => return o,
            };
            let big = format!(r#"{{"t":"answer","p":{{"sdp":"{}"}}}}"#, "a".repeat(300 * 1024));
            let start = Instant::now();
            if ws.send(Message::Text(big.into())).await.is_err() {
                return Outcome::Closed { code: None, after: start.elapsed(), errors };
            }
            ws_until_closed(&mut ws, start, deadline, &mut errors).await
        }
        Kind::Malformed => {
            let mut ws = match ws(from).await {
                Ok(ws) => ws,
                Err(o) => return o,
            };
            for i in 0..10 {
                let _ = ws.send(Message::Text(format!("{{not json {i}").into())).await;
            }
            // Answered with errors, left open: give it 2 s to show that.
            let o = ws_until_closed(&mut ws, start, start.elapsed() + Duration::from_secs(2), &mut errors).await;
            let _ = ws.close(None).await;
            o
        }
        Kind::Flood => {
            let ws = match ws(from).await {
                Ok(ws) => ws,
                Err(o) => return o,
            };
            let (mut tx, mut rx) = ws.split();
            let start = Instant::now();
            let flood = async move {
                let quit = ClientMsg::Quit.encode();
                while tx.send(Message::Text(quit.clone().into())).await.is_ok() {}
            };
            let watch = async move { ws_until_closed(&mut rx, start, deadline, &mut vec![]).await };
            tokio::select! {
                o = watch => o,
                () = flood => {
                    // The send side failed first: the coordinator went away.
                    Outcome::Closed { code: None, after: start.elapsed(), errors: vec![] }
                }
            }
        }
        Kind::OverLimit => match ws(from).await {
            Ok(mut ws) => {
                let o = Outcome::Open { errors: vec![] };
                let _ = ws.close(None).await;
                o
            }
            Err(o) => o,
        },
    }
}

/// Source addresses: good sessions from 127.1.0.0/16 (`per` each), hostile ones one each from
/// 127.3.0.0/16, and the over-limit clients all from 127.2.0.1.
fn good_source(i: usize, per: usize) -> Ipv4Addr {
    let n = (i / per.max(1)) as u32;
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 1)) + n)
}

fn hostile_source(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 3, 0, 1)) + i as u32)
}

const OVER_LIMIT_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 2, 0, 1);

/// Runs `plan` against the coordinator at `addr` (process `pid`).
pub async fn run(plan: &Plan, addr: SocketAddr, pid: u32) -> Result<Report> {
    let before = rss_kib(pid)?;
    let cpu_before = cpu_s(pid)?;
    let t0 = Instant::now();
    let peak = Arc::new(Mutex::new(before));
    let sampling = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(r) = rss_kib(pid) {
                    let mut p = peak.lock().unwrap();
                    *p = (*p).max(r);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // The over-limit kind first takes the whole allowance of its address, held to the end.
    let mut held = Vec::new();
    if plan.hostile_per_kind > 0 {
        for _ in 0..plan.per_ip_limit {
            match ws_from(OVER_LIMIT_SOURCE, addr, "/ws").await? {
                Ok(ws) => held.push(ws),
                Err(status) => bail!("the over-limit client was refused before the limit ({status}): is the coordinator's --max-connections-per-ip {}?", plan.per_ip_limit),
            }
        }
    }
    let mut hostile_tasks = Vec::new();
    let mut n = 0;
    for kind in Kind::ALL {
        for _ in 0..plan.hostile_per_kind {
            let from = if kind == Kind::OverLimit { OVER_LIMIT_SOURCE } else { hostile_source(n) };
            n += 1;
            hostile_tasks.push(tokio::spawn(async move { (kind, hostile(kind, from, addr).await) }));
        }
    }

    let figures = Arc::new(Mutex::new(GoodFigures::default()));
    let connect = Arc::new(tokio::sync::Semaphore::new(64));
    let (release, released) = tokio::sync::watch::channel(false);
    let good: Vec<_> = (0..plan.good)
        .map(|i| {
            let s = Good {
                index: i,
                from: good_source(i, plan.good_per_ip),
                addr,
                rounds: plan.rounds,
                workers: plan.workers,
                zone: (!plan.zones.is_empty()).then(|| plan.zones[i % plan.zones.len()].clone()),
            };
            tokio::spawn(good_session(s, figures.clone(), connect.clone(), released.clone()))
        })
        .collect();

    let mut report = Report::default();
    for t in hostile_tasks {
        let (kind, outcome) = t.await?;
        report.hostile.entry(kind).or_default().push(outcome);
    }
    // All good sessions have done their round trips when `held` + errors reach `good`.
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let done = {
            let f = figures.lock().unwrap();
            f.held + f.errors.len() >= plan.good
        };
        if done || Instant::now() > end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_s(pid)? - cpu_before;
    let _ = release.send(true);
    for t in good {
        let _ = t.await;
    }
    drop(held);
    // The coordinator trims its heap a second after a spike has gone.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sampling.abort();
    let after = rss_kib(pid)?;
    report.good = std::mem::take(&mut *figures.lock().unwrap());
    report.coordinator =
        ProcFigures { rss_before: before, rss_peak: *peak.lock().unwrap(), rss_after: after, cpu_s: cpu, wall_s: wall };
    Ok(report)
}

/// A line per hostile kind: how many were closed, refused or left open, with what codes and
/// within what time.
pub fn describe(kind: Kind, outcomes: &[Outcome]) -> String {
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut errs: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut times = vec![];
    for o in outcomes {
        let key = match o {
            Outcome::Closed { code, after, errors } => {
                times.push(after.as_millis() as u64);
                errors.iter().for_each(|e| *errs.entry(e.as_str()).or_default() += 1);
                match code {
                    Some(c) => format!("closed {c}"),
                    None => "closed (TCP)".into(),
                }
            }
            Outcome::Refused { status } => format!("refused HTTP {status}"),
            Outcome::Open { errors } => {
                errors.iter().for_each(|e| *errs.entry(e.as_str()).or_default() += 1);
                "left open".into()
            }
            Outcome::Failed(e) => format!("client failed: {e}"),
        };
        *codes.entry(key).or_default() += 1;
    }
    let codes: Vec<String> = codes.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let mut line = format!("{kind:?}: {}", codes.join(", "));
    if !times.is_empty() {
        let (lo, hi) = (*times.iter().min().unwrap_or(&0), *times.iter().max().unwrap_or(&0));
        line += &format!(" within {:.1}..{:.1} s", lo as f64 / 1000.0, hi as f64 / 1000.0);
    }
    if !errs.is_empty() {
        let errs: Vec<String> = errs.iter().map(|(k, n)| format!("{n} {k}")).collect();
        line += &format!("; errors received: {}", errs.join(", "));
    }
    line
}

/// `what`'s samples (microseconds) as one line: count, p50, p99, max.
fn timing(what: &str, v: &mut [u64]) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    let (p50, p99, max) = (percentile(v, 50.0), percentile(v, 99.0), percentile(v, 100.0));
    format!("{what}, {} samples: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n", v.len(), ms(p50), ms(p99), ms(max))
}

/// The whole report as text.
pub fn render(plan: &Plan, r: &mut Report) -> String {
    let c = r.coordinator;
    let mut s =
        format!("== hostile: {} good sessions, {} hostile clients of each kind\n", plan.good, plan.hostile_per_kind);
    s += &format!("good sessions held: {} of {}\n", r.good.held, plan.good);
    if plan.workers {
        s += &timing("good relay round trip (ice -> the worker's ice)", &mut r.good.rtt_us);
        s += &timing("good start (start_game -> game_started, through a worker)", &mut r.good.start_us);
        s += &timing("good placement (latency -> init)", &mut r.good.init_us);
    } else {
        s += &timing("good round trip (start_game -> no_free_worker)", &mut r.good.rtt_us);
    }
    s += &format!("errors seen by good sessions: {}\n", r.good.errors.len());
    for e in r.good.errors.iter().take(5) {
        s += &format!("  {e}\n");
    }
    s += &format!(
        "coordinator RSS: {} KiB before, {} KiB peak, {} KiB after; CPU {:.2} s over {:.1} s ({:.0}% of a core)\n",
        c.rss_before,
        c.rss_peak,
        c.rss_after,
        c.cpu_s,
        c.wall_s,
        100.0 * c.cpu_s / c.wall_s.max(0.001)
    );
    s += &format!(
        "coordinator RSS per good session: {:.1} KiB ((peak - before) / good sessions; the peak also holds hostile connections)\n",
        c.rss_peak.saturating_sub(c.rss_before) as f64 / plan.good.max(1) as f64
    );
    for (kind, outcomes) in &r.hostile {
        s += &format!("{}\n", describe(*kind, outcomes));
    }
    s
}
