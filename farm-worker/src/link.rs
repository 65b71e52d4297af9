//! The control link to the coordinator: QUIC with mutual TLS, one bidirectional stream,
//! registration, heartbeats, signaling relay; reconnects with backoff and re-registers the
//! rooms that kept running.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use retrofarm_link::endpoint;
use retrofarm_link::pki::Identity;
use retrofarm_link::stream::{self, FramedRecv};
use retrofarm_proto::browser::GameInfo;
use retrofarm_proto::control::{CoordMsg, Load, RoomInfo, WorkerMsg, PROTOCOL_VERSION};
use retrofarm_proto::ids::WorkerId;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::backoff::Backoff;

/// What the link reports to the coordinator on (re-)registration and in heartbeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Current load.
    pub load: Load,
    /// Rooms running.
    pub rooms: Vec<RoomInfo>,
    /// The games it can run (shared: the status is compared often, the list changes rarely).
    pub games: Arc<[GameInfo]>,
}

/// What the link needs to know.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Coordinator `host:port`.
    pub coordinator: String,
    /// Name in the coordinator's certificate.
    pub server_name: String,
    /// This worker's certificate files.
    pub identity: Identity,
    /// Worker id.
    pub id: WorkerId,
    /// Zone.
    pub zone: String,
    /// Ping URL.
    pub ping_url: String,
}

/// A connection that stayed up this long resets the backoff.
const STABLE: Duration = Duration::from_secs(5);

/// Keeps the link up forever: `up` carries engine messages to the coordinator, `down` the
/// coordinator's commands to the engine.
pub async fn run(
    cfg: LinkConfig,
    mut up: mpsc::Receiver<WorkerMsg>,
    down: mpsc::Sender<CoordMsg>,
    status: watch::Receiver<Status>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        let started = Instant::now();
        match connect_and_serve(&cfg, &mut up, &down, &status).await {
            Ok(()) if up.is_closed() => return info!("link closed: the worker is stopping"),
            Ok(()) => info!("coordinator closed the link"),
            Err(e) => warn!(coordinator = %cfg.coordinator, error = %format!("{e:#}"), "coordinator link down"),
        }
        if up.is_closed() {
            return;
        }
        if started.elapsed() > STABLE {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        info!(?delay, "reconnecting to the coordinator");
        tokio::time::sleep(delay).await;
    }
}

async fn connect_and_serve(
    cfg: &LinkConfig,
    up: &mut mpsc::Receiver<WorkerMsg>,
    down: &mpsc::Sender<CoordMsg>,
    status: &watch::Receiver<Status>,
) -> Result<()> {
    let identity = cfg.identity.load()?;
    let ep = endpoint::client(identity, Duration::from_secs(10))?;
    let addr = tokio::net::lookup_host(&cfg.coordinator)
        .await
        .with_context(|| format!("cannot resolve the coordinator address {}", cfg.coordinator))?
        .next()
        .with_context(|| format!("{} resolves to no address", cfg.coordinator))?;
    let conn = ep.connect(addr, &cfg.server_name)?.await.context(
        "QUIC handshake failed (is the coordinator up, and is this worker's certificate from its cluster CA?)",
    )?;
    let (mut send, recv) = conn.open_bi().await?;
    let mut recv = FramedRecv::new(recv);

    // What the engine queued while the link was down goes out after the registration: a
    // coordinator that kept our sessions through its grace period needs it (a session that
    // ended meanwhile); a restarted one drops messages for sessions it does not know.
    let st = status.borrow().clone();
    let register = WorkerMsg::Register {
        protocol: PROTOCOL_VERSION,
        id: cfg.id.clone(),
        zone: cfg.zone.clone(),
        ping_url: cfg.ping_url.clone(),
        games: st.games.to_vec(),
        rooms: st.rooms,
        load: st.load,
    };
    stream::send(&mut send, &register).await?;
    let heartbeat_ms = match tokio::time::timeout(Duration::from_secs(10), recv.recv::<CoordMsg>()).await {
        Ok(Ok(CoordMsg::Registered { heartbeat_ms })) => heartbeat_ms,
        Ok(Ok(CoordMsg::Refused { reason })) => bail!("the coordinator refused this worker: {reason}"),
        Ok(Ok(other)) => bail!("unexpected first message from the coordinator: {other:?}"),
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => bail!("the coordinator did not answer the registration within 10 s"),
    };
    info!(coordinator = %addr, heartbeat_ms, "registered with the coordinator");

    let mut heartbeat = tokio::time::interval(Duration::from_millis(heartbeat_ms.max(50)));
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                let load = status.borrow().load;
                stream::send(&mut send, &WorkerMsg::Heartbeat { load }).await?;
            }
            msg = up.recv() => {
                let Some(msg) = msg else {
                    // The worker is stopping: what it sent last (its players' farewells) is
                    // delivered before the connection closes.
                    let _ = send.finish();
                    let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
                    conn.close(0u32.into(), b"worker stopping");
                    let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
                    return Ok(());
                };
                stream::send(&mut send, &msg).await?;
            }
            msg = recv.recv::<CoordMsg>() => {
                match msg {
                    Ok(CoordMsg::Refused { reason }) => bail!("the coordinator dropped this worker: {reason}"),
                    Ok(m) => {
                        if down.send(m).await.is_err() {
                            return Ok(());
                        }
                    }
                    Err(stream::RecvError::Finished) => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}
