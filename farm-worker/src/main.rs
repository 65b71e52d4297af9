//! `retrofarm-worker`: runs game rooms and streams them to browsers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use farm_worker::config::Config;
use farm_worker::engine::{Engine, EngineConfig, Status};
use farm_worker::library::Library;
use farm_worker::link::{self, LinkConfig};
use retrofarm_link::pki::Identity;
use retrofarm_media::H264Config;
use retrofarm_proto::ids::WorkerId;
use tokio::sync::{mpsc, watch};
use tracing::info;

#[derive(Debug, Parser)]
#[command(version, about = "retrofarm worker: runs game rooms and streams them over WebRTC")]
struct Cli {
    /// Configuration file (TOML); defaults apply without one.
    #[arg(long, short, env = "RETROFARM_WORKER_CONFIG")]
    config: Option<PathBuf>,
    /// Worker id [default: host name].
    #[arg(long, env = "RETROFARM_WORKER_ID")]
    id: Option<String>,
    /// Zone (region) [default: local].
    #[arg(long, env = "RETROFARM_ZONE")]
    zone: Option<String>,
    /// Coordinator QUIC address host:port [default: 127.0.0.1:8443].
    #[arg(long, env = "RETROFARM_COORDINATOR")]
    coordinator: Option<String>,
    /// Cluster PKI folder [default: .retrofarm/pki].
    #[arg(long, env = "RETROFARM_PKI_DIR")]
    pki_dir: Option<PathBuf>,
    /// Certificate name in the PKI folder [default: worker].
    #[arg(long, env = "RETROFARM_CERT_NAME")]
    cert_name: Option<String>,
    /// HTTP (ping) listen address [default: 0.0.0.0:9000].
    #[arg(long, env = "RETROFARM_WORKER_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// URL browsers ping [default: http://127.0.0.1:<port>/ping].
    #[arg(long, env = "RETROFARM_PUBLIC_URL")]
    public_url: Option<String>,
    /// Extra delay for each ping reply, ms [default: 0].
    #[arg(long, env = "RETROFARM_PING_DELAY_MS")]
    ping_delay_ms: Option<u64>,
    /// WebRTC UDP listen address [default: 0.0.0.0:8555].
    #[arg(long, env = "RETROFARM_RTC_LISTEN")]
    rtc_listen: Option<SocketAddr>,
    /// Games folder [default: games].
    #[arg(long, env = "RETROFARM_GAMES_DIR")]
    games_dir: Option<PathBuf>,
    /// libretro cores folder.
    #[arg(long, env = "RETROFARM_CORES_DIR")]
    cores_dir: Option<PathBuf>,
    /// CPU cores rooms may use [default: 90% of the cores].
    #[arg(long, env = "RETROFARM_CPU_BUDGET_CORES")]
    cpu_budget_cores: Option<f64>,
    /// Most rooms at once [default: 64].
    #[arg(long, env = "RETROFARM_MAX_ROOMS")]
    max_rooms: Option<u32>,
    /// Leave out frames identical to the one before (true or false) [default: true].
    #[arg(long, env = "RETROFARM_SKIP_REPEATED_FRAMES", action = clap::ArgAction::Set)]
    skip_repeated_frames: Option<bool>,
}

impl Cli {
    fn apply(self, c: &mut Config) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { c.$f = v; } )* };
        }
        set!(
            id,
            zone,
            coordinator,
            pki_dir,
            cert_name,
            http_listen,
            ping_delay_ms,
            rtc_listen,
            games_dir,
            max_rooms,
            skip_repeated_frames
        );
        if self.public_url.is_some() {
            c.public_url = self.public_url;
        }
        if self.cpu_budget_cores.is_some() {
            c.cpu_budget_cores = self.cpu_budget_cores;
        }
        if self.cores_dir.is_some() {
            c.cores_dir = self.cores_dir;
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("RETROFARM_LOG").unwrap_or_else(|_| "info".into()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut cfg = Config::load(cli.config.as_deref())?;
    cli.apply(&mut cfg);
    let id = WorkerId::new(cfg.id.clone()).context("worker id")?;

    let library = Library::scan(&cfg.games_dir, &cfg.cores)?;
    info!(games = library.len(), dir = %cfg.games_dir.display(), "game library loaded");

    let http = tokio::net::TcpListener::bind(cfg.http_listen)
        .await
        .with_context(|| format!("cannot listen on TCP {}: is the port in use?", cfg.http_listen))?;
    let http_addr = http.local_addr()?;
    let router = farm_worker::http::router(Duration::from_millis(cfg.ping_delay_ms));
    tokio::spawn(async move { axum::serve(http, router).await });

    let socket = tokio::net::UdpSocket::bind(cfg.rtc_listen)
        .await
        .with_context(|| format!("cannot bind the WebRTC UDP socket {}: is the port in use?", cfg.rtc_listen))?;
    let candidates = cfg.candidate_addrs(socket.local_addr()?);
    info!(http = %http_addr, rtc = ?candidates, "worker listening");

    let (up_tx, up_rx) = mpsc::channel(1024);
    let (down_tx, down_rx) = mpsc::channel(1024);
    let (status_tx, status_rx) = watch::channel(Status::default());
    let link_cfg = LinkConfig {
        coordinator: cfg.coordinator.clone(),
        server_name: cfg.server_name.clone(),
        identity: Identity::in_dir(&cfg.pki_dir, &cfg.cert_name),
        id,
        zone: cfg.zone.clone(),
        ping_url: cfg.ping_url(http_addr),
        games: library.infos(),
    };
    let engine_cfg = EngineConfig {
        max_rooms: cfg.max_rooms,
        candidates,
        cores_dir: cfg.cores_dir.clone(),
        core_options: cfg.core_options.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        h264: H264Config { bitrate_bps: cfg.video_kbps * 1000, ..H264Config::default() },
        skip_repeated_frames: cfg.skip_repeated_frames,
        encoder_threads: cfg.encoder_threads,
        cpu_budget_cores: cfg.cpu_budget(),
        room_cost_prior: cfg.room_cost_prior,
    };
    let engine = Engine::new(engine_cfg, library, up_tx, status_tx)?;
    tokio::spawn(link::run(link_cfg, up_rx, down_tx, status_rx));
    engine.run(socket, down_rx).await;
    Ok(())
}
