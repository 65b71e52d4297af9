//! Network drivers: the browser WebSocket (axum, over HTTP or HTTPS) and the worker QUIC
//! endpoint (quinn), both feeding one [`Hub`] and delivering its outputs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRef, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use retrofarm_link::stream::{self, FramedRecv};
use retrofarm_link::{endpoint, pki};
use retrofarm_proto::browser::{ClientMsg, ServerMsg, MAX_CLIENT_MESSAGE};
use retrofarm_proto::control::{CoordMsg, WorkerMsg};
use retrofarm_proto::ids::{RoomId, SessionId};
use retrofarm_proto::{DecodeError, ErrorCode};
use serde::Deserialize;
use tokio::sync::mpsc;
use tower_http::services::{ServeDir, ServeFile};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::connection_limits::{ConnectionLimits, Source};
use crate::hub::{Hub, HubConfig, Output};
use crate::message_rate::{MessageRate, RateLimit, Verdict};
use crate::origin::{self, Decision};
use crate::registry::ConnId;

/// What the QUIC writer task of one worker connection is asked to do.
#[derive(Debug)]
enum ToWorker {
    Msg(Instant, CoordMsg),
    Close(String),
}

struct Inner {
    hub: Hub,
    browsers: HashMap<SessionId, mpsc::Sender<(Instant, ServerMsg)>>,
    workers: HashMap<ConnId, mpsc::Sender<ToWorker>>,
}

/// The hub plus the channels to every connected browser and worker.
#[derive(Clone)]
pub struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    fn new(hub: Hub) -> Self {
        Self(Arc::new(Mutex::new(Inner { hub, browsers: HashMap::new(), workers: HashMap::new() })))
    }

    /// Runs `f` on the hub, then delivers everything it queued.
    fn with<R>(&self, f: impl FnOnce(&mut Hub) -> R) -> R {
        let mut inner = self.0.lock().expect("hub lock poisoned");
        let r = f(&mut inner.hub);
        let now = Instant::now();
        while let Some(out) = inner.hub.poll_output() {
            match out {
                Output::Browser(s, msg) => {
                    if let Some(tx) = inner.browsers.get(&s) {
                        if tx.try_send((now, msg)).is_err() {
                            warn!(session = %s, "browser is not reading its WebSocket; message dropped");
                        }
                    }
                }
                Output::Worker(c, msg) => {
                    if let Some(tx) = inner.workers.get(&c) {
                        if tx.try_send(ToWorker::Msg(now, msg)).is_err() {
                            warn!(conn = c.0, "worker control stream is backed up; message dropped");
                        }
                    }
                }
                Output::CloseWorker(c, reason) => {
                    if let Some(tx) = inner.workers.get(&c) {
                        let _ = tx.try_send(ToWorker::Close(reason));
                    }
                }
            }
        }
        r
    }
}

/// What the router's handlers share: the hub, the `/ws` origin allow-list, the connection
/// counts and the per-session message rate limit.
#[derive(Clone)]
struct App {
    shared: Shared,
    allowed_origins: Arc<[String]>,
    connections: Arc<Mutex<ConnectionLimits>>,
    rate: RateLimit,
}

/// A WebSocket counted in [`ConnectionLimits`]; the count goes down when it is dropped (the
/// session ended, or the upgrade never completed).
struct Slot {
    connections: Arc<Mutex<ConnectionLimits>>,
    source: Source,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.lock().expect("connection counts poisoned").release(self.source);
    }
}

impl FromRef<App> for Shared {
    fn from_ref(app: &App) -> Shared {
        app.shared.clone()
    }
}

/// The bound sockets, and the TLS acceptor when the browser listener speaks HTTPS.
pub struct Listeners {
    /// Browsers: HTTP, or HTTPS when `tls` is set.
    pub http: tokio::net::TcpListener,
    /// Workers.
    pub quic: quinn::Endpoint,
    /// The runtime `quic` is driven by.
    pub link: LinkRuntime,
    /// Prometheus (`/metrics`, plain HTTP).
    pub metrics: tokio::net::TcpListener,
    /// The operator's certificate for `http`.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// The worker link's own runtime: one thread that runs only the QUIC endpoint and the workers'
/// connections, so that a crowd of browsers (TLS, WebSockets and JSON on the main runtime)
/// cannot delay heartbeats until healthy workers are declared lost (the hostile-load benchmark
/// lost 998 of 1,000 simulated workers under 16,000 browser connections before this).
#[derive(Debug)]
pub struct LinkRuntime(Option<tokio::runtime::Runtime>);

impl LinkRuntime {
    fn new() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("worker-link")
            .enable_all()
            .build()
            .context("cannot start the worker link's thread")?;
        Ok(Self(Some(rt)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("runtime until dropped").handle()
    }
}

impl Drop for LinkRuntime {
    fn drop(&mut self) {
        // Dropping a runtime inside another one's task would block it: let it wind down alone.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs the coordinator until the process is stopped.
pub async fn run(cfg: Config) -> Result<()> {
    let listeners = bind(&cfg).await?;
    info!(
        http = %listeners.http.local_addr()?,
        metrics = %listeners.metrics.local_addr()?,
        quic = %listeners.quic.local_addr()?,
        tls = listeners.tls.is_some(),
        "coordinator listening"
    );
    serve(cfg, listeners).await
}

/// Checks the configuration, loads the HTTPS certificate, binds the listening sockets (and
/// creates the local PKI if configured), so callers learn the bound addresses before serving.
pub async fn bind(cfg: &Config) -> Result<Listeners> {
    cfg.validate()?;
    let tls = cfg.tls_files().map(|(cert, key)| retrofarm_link::https::acceptor(cert, key)).transpose()?;
    if cfg.auto_pki && pki::ensure_local(&cfg.pki_dir, &cfg.server_names)? {
        info!(dir = %cfg.pki_dir.display(), "created a local cluster CA and certificates");
    }
    let id = pki::Identity::in_dir(&cfg.pki_dir, "coordinator").load()?;
    let link = LinkRuntime::new()?;
    let quic = {
        // The endpoint's driver task goes to the runtime it is made in.
        let _in_link = link.handle().enter();
        endpoint::server(cfg.quic_listen, id, cfg.heartbeat_timeout())?
    };
    let http = tokio::net::TcpListener::bind(cfg.http_listen)
        .await
        .with_context(|| format!("cannot listen on TCP {}: is the port in use?", cfg.http_listen))?;
    let metrics = tokio::net::TcpListener::bind(cfg.metrics_listen).await.with_context(|| {
        format!("cannot listen on TCP {} for /metrics: is the port in use? (metrics_listen)", cfg.metrics_listen)
    })?;
    Ok(Listeners { http, quic, link, metrics, tls })
}

/// Serves browsers on `l.http` (HTTPS with `l.tls`) and workers on `l.quic`.
pub async fn serve(cfg: Config, l: Listeners) -> Result<()> {
    let Listeners { http, quic, link, metrics, tls } = l;
    let shared = Shared::new(Hub::new(HubConfig {
        ice_servers: cfg.ice_servers.clone(),
        turn: cfg.turn.rest(),
        heartbeat: cfg.heartbeat(),
        heartbeat_timeout: cfg.heartbeat_timeout(),
        worker_grace: cfg.worker_grace(),
    }));

    let ticker = shared.clone();
    // systemd's watchdog is fed from the hub's clock: a hub stuck behind its lock stops it.
    let watchdog = retrofarm_link::systemd::watchdog_interval();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(250));
        let mut fed = Instant::now();
        loop {
            every.tick().await;
            let now = Instant::now();
            ticker.with(|h| h.tick(now));
            if watchdog.is_some_and(|w| now.duration_since(fed) >= w) {
                retrofarm_link::systemd::notify("WATCHDOG=1");
                fed = now;
            }
        }
    });
    link.handle().spawn(accept_workers(quic, shared.clone()));
    let scraped = shared.clone();
    let scrape = retrofarm_link::https::metrics_router(move || {
        crate::metrics::render(&scraped.0.lock().expect("hub lock poisoned").hub)
    });
    tokio::spawn(retrofarm_link::https::serve(metrics, scrape, None));
    tokio::spawn(give_back_memory_after_spikes(shared.clone()));

    let app = Router::new()
        .route("/ws", get(ws_handler))
        .route("/healthz", get(|| async { "ok" }))
        // Only the client itself: not the tests or node_modules that live beside it.
        .route_service("/", ServeFile::new(cfg.web_root.join("index.html")))
        .route_service("/index.html", ServeFile::new(cfg.web_root.join("index.html")))
        .nest_service("/js", ServeDir::new(cfg.web_root.join("js")))
        .nest_service("/css", ServeDir::new(cfg.web_root.join("css")))
        .with_state(App {
            shared,
            allowed_origins: cfg.allowed_origins.clone().into(),
            connections: Arc::new(Mutex::new(ConnectionLimits::new(cfg.limits.caps()))),
            rate: cfg.limits.rate(),
        });
    retrofarm_link::systemd::notify("READY=1");
    retrofarm_link::https::serve(http, app, tls).await;
    drop(link);
    Ok(())
}

/// Sessions that must have ended since the most there were before freed memory is handed back.
const TRIM_AFTER_ENDED: usize = 256;

/// After a spike of browser sessions (a crowd, or a flood) has gone, hands the freed heap back
/// to the system: glibc keeps it in its arenas otherwise, and the coordinator would stay at its
/// peak for ever.
async fn give_back_memory_after_spikes(shared: Shared) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    let mut peak = 0;
    loop {
        every.tick().await;
        let now = shared.0.lock().expect("hub lock poisoned").browsers.len();
        peak = peak.max(now);
        if peak - now >= TRIM_AFTER_ENDED {
            trim_heap();
            debug!(sessions = now, peak, "freed memory handed back");
            peak = now;
        }
    }
}

/// `malloc_trim(0)`: returns glibc's free heap pages to the system.
#[allow(unsafe_code)]
fn trim_heap() {
    // SAFETY: malloc_trim takes no pointers; it only walks glibc's own free lists.
    unsafe { libc::malloc_trim(0) };
}

/// Whether a message is relayed signaling (its latency is measured).
fn is_signaling_to_browser(m: &ServerMsg) -> bool {
    matches!(m, ServerMsg::Offer { .. } | ServerMsg::Ice { .. })
}

// ---- browsers --------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct WsQuery {
    room: Option<String>,
    zone: Option<String>,
}

/// The largest WebSocket message read at all. Messages over the protocol's limit up to this are
/// answered with a `too_large` error and the session goes on; larger ones cannot be skipped
/// (the WebSocket layer stops reading), so they get the error and a close frame 1009 ("message
/// too big") instead of a silent cut.
const MAX_WS_MESSAGE: usize = 4 * MAX_CLIENT_MESSAGE;

async fn ws_handler(
    ws: WebSocketUpgrade,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Query(q): Query<WsQuery>,
    headers: HeaderMap,
    State(app): State<App>,
) -> Response {
    let text =
        |name| headers.get(name).map(|v: &header::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let (origin, host) = (text(header::ORIGIN), text(header::HOST));
    if let Decision::Refuse(origin) = origin::decide(origin.as_deref(), host.as_deref(), &app.allowed_origins) {
        warn!(%origin, host = host.as_deref().unwrap_or(""), "refused a WebSocket from another site's page (allowed_origins)");
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            origin::refusal(&origin),
        )
            .into_response();
    }
    let source = Source::of(remote.ip());
    let admitted = app.connections.lock().expect("connection counts poisoned").admit(source);
    if let Err(refusal) = admitted {
        warn!(%remote, "refused a WebSocket: {refusal}");
        let status = StatusCode::from_u16(refusal.status()).expect("valid status");
        return (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{refusal}\n")).into_response();
    }
    let slot = Slot { connections: app.connections, source };
    let (shared, rate) = (app.shared, app.rate);
    // Signaling messages are small and rare: a 4 KiB read buffer (grown for the odd large
    // message) instead of the WebSocket layer's 128 KiB keeps an idle session to a few KiB, and
    // replies go out at once. A page that stops reading cannot make us buffer more than 1 MiB.
    ws.max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .on_upgrade(move |socket| async move {
            browser(socket, q, shared, rate).await;
            drop(slot);
        })
        .into_response()
}

/// Whether a WebSocket read failed because a message or frame was over the size limit.
fn is_too_large(e: &axum::Error) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("too long") || text.contains("too big") || text.contains("space limit")
}

fn new_session_id() -> SessionId {
    SessionId::new(format!("{:016x}", rand::random::<u64>())).expect("hex is a valid id")
}

/// Reads the rest of what a client sends (a flood, a message past the limit) for at most
/// `within`, so that closing the socket does not reset the connection before the client has
/// read our last frames.
async fn drain(source: &mut futures_util::stream::SplitStream<WebSocket>, within: Duration) {
    let _ = tokio::time::timeout(within, async {
        while let Some(Ok(m)) = source.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn browser(socket: WebSocket, q: WsQuery, shared: Shared, limit: RateLimit) {
    let id = new_session_id();
    let mut rate = MessageRate::new(limit, Instant::now());
    let (tx, mut rx) = mpsc::channel::<(Instant, ServerMsg)>(256);
    let (mut sink, mut source) = socket.split();
    shared.0.lock().expect("hub lock poisoned").browsers.insert(id.clone(), tx);
    let zone = q.zone.filter(|z| !z.is_empty());
    match q.room.filter(|r| !r.is_empty()).map(RoomId::new).transpose() {
        Ok(room) => shared.with(|h| h.browser_connected(id.clone(), room, zone, SystemTime::now())),
        Err(e) => shared.with(|h| {
            h.browser_connected(id.clone(), None, zone, SystemTime::now());
            h.browser_bad_message(&id, &DecodeError::Malformed(e.to_string()));
        }),
    }
    debug!(session = %id, "browser connected");
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some((queued, msg)) = out else { break };
                if sink.send(Message::Text(msg.encode().into())).await.is_err() {
                    break;
                }
                if is_signaling_to_browser(&msg) {
                    crate::metrics::relay_latency().observe(queued.elapsed().as_secs_f64());
                }
            }
            inc = source.next() => {
                if let Some(Ok(m)) = &inc {
                    if !matches!(m, Message::Close(_)) {
                        match rate.on_message(Instant::now()) {
                            Verdict::Accept => {}
                            Verdict::Drop => continue,
                            Verdict::DropAndWarn => {
                                debug!(session = %id, "browser over the message rate limit; dropping its messages");
                                let text = format!(
                                    "more than {} messages at once or {} a second: messages dropped (limits.messages_per_sec)",
                                    limit.burst, limit.per_sec
                                );
                                let msg = ServerMsg::error(ErrorCode::RateLimited, text);
                                if sink.send(Message::Text(msg.encode().into())).await.is_err() {
                                    break;
                                }
                                continue;
                            }
                            Verdict::Close => {
                                warn!(session = %id, dropped = limit.close_after, "browser kept flooding; closing its WebSocket (1008)");
                                let reason = format!("message flood: over {} messages a second", limit.per_sec);
                                let close = CloseFrame { code: close_code::POLICY, reason: reason.into() };
                                let _ = sink.send(Message::Close(Some(close))).await;
                                drain(&mut source, Duration::from_secs(1)).await;
                                break;
                            }
                        }
                    }
                }
                match inc {
                    Some(Ok(Message::Text(text))) => match ClientMsg::decode(&text) {
                        Ok(msg) => shared.with(|h| h.browser_message(&id, msg, SystemTime::now())),
                        Err(e) => {
                            debug!(session = %id, error = %e, "bad browser message");
                            shared.with(|h| h.browser_bad_message(&id, &e));
                        }
                    },
                    Some(Ok(Message::Binary(_))) => shared.with(|h| {
                        h.browser_bad_message(&id, &DecodeError::Malformed("binary frames are not part of the protocol".into()))
                    }),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Err(e)) if is_too_large(&e) => {
                        debug!(session = %id, error = %e, "browser message over the WebSocket limit");
                        shared.with(|h| h.browser_bad_message(&id, &DecodeError::TooLarge { len: MAX_WS_MESSAGE + 1, max: MAX_CLIENT_MESSAGE }));
                        // The error the hub queued, then the close frame: the page learns why.
                        while let Ok((_, msg)) = rx.try_recv() {
                            let _ = sink.send(Message::Text(msg.encode().into())).await;
                        }
                        let reason = format!("message over {MAX_WS_MESSAGE} bytes");
                        let close = CloseFrame { code: close_code::SIZE, reason: reason.into() };
                        let _ = sink.send(Message::Close(Some(close))).await;
                        // Closing the socket with the message's rest unread resets the
                        // connection, which can destroy the frames above before the page reads
                        // them: give it a moment to read them and close its side first.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        break;
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                }
            }
        }
    }
    shared.0.lock().expect("hub lock poisoned").browsers.remove(&id);
    shared.with(|h| h.browser_disconnected(&id));
    debug!(session = %id, "browser disconnected");
}

// ---- workers ---------------------------------------------------------------------------

async fn accept_workers(endpoint: quinn::Endpoint, shared: Shared) {
    let next = AtomicU64::new(1);
    while let Some(incoming) = endpoint.accept().await {
        let conn = ConnId(next.fetch_add(1, Ordering::Relaxed));
        let shared = shared.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(c) => worker(conn, c, shared).await,
                // Includes workers without a certificate signed by the cluster CA.
                Err(e) => warn!(%remote, error = %e, "worker connection refused"),
            }
        });
    }
}

async fn worker(conn: ConnId, c: quinn::Connection, shared: Shared) {
    let remote = c.remote_address();
    let (mut send, recv) = match tokio::time::timeout(Duration::from_secs(10), c.accept_bi()).await {
        Ok(Ok(s)) => s,
        _ => {
            warn!(%remote, "worker opened no control stream");
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel::<ToWorker>(1024);
    shared.0.lock().expect("hub lock poisoned").workers.insert(conn, tx);
    let writer_conn = c.clone();
    let writer = tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                ToWorker::Msg(queued, m) => {
                    if stream::send(&mut send, &m).await.is_err() {
                        break;
                    }
                    if matches!(m, CoordMsg::Answer { .. } | CoordMsg::Ice { .. }) {
                        crate::metrics::relay_latency().observe(queued.elapsed().as_secs_f64());
                    }
                }
                ToWorker::Close(reason) => {
                    let _ = send.finish();
                    writer_conn.close(1u32.into(), reason.as_bytes());
                    break;
                }
            }
        }
    });
    let mut recv = FramedRecv::new(recv);
    loop {
        match recv.recv::<WorkerMsg>().await {
            Ok(msg) => shared.with(|h| h.worker_message(conn, Instant::now(), msg)),
            Err(e) => {
                if let stream::RecvError::Decode(d) = &e {
                    warn!(%remote, error = %d, "worker sent a bad message; closing its connection");
                    c.close(2u32.into(), b"bad message");
                } else {
                    debug!(%remote, error = %e, "worker connection ended");
                }
                break;
            }
        }
    }
    writer.abort();
    shared.0.lock().expect("hub lock poisoned").workers.remove(&conn);
    shared.with(|h| h.worker_disconnected(conn, Instant::now()));
}
