//! `retrofarm-worker`: runs game rooms and streams them to browsers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use farm_worker::config::{Config, GpuMode, NvencMode};
use farm_worker::congestion::RateConfig;
use farm_worker::driver::{Driver, DriverConfig};
use farm_worker::engine::{Engine, EngineConfig, CONNECT_TIMEOUT};
use farm_worker::gpu_stage;
use farm_worker::library::{Library, LibrarySource};
use farm_worker::link::{self, LinkConfig};
use farm_worker::nvenc::Nvenc;
use farm_worker::room::RoomSettings;
use farm_worker::saves::SaveStore;
use retrofarm_link::pki::Identity;
use retrofarm_media::VideoConfig;
use retrofarm_proto::ids::WorkerId;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

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
    /// Prometheus /metrics listen address, loopback or private [default: 127.0.0.1:9464].
    #[arg(long, env = "RETROFARM_WORKER_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// URL browsers ping [default: http://127.0.0.1:<port>/ping].
    #[arg(long, env = "RETROFARM_PUBLIC_URL")]
    public_url: Option<String>,
    /// PEM certificate chain: with --tls-key, /ping and /healthz speak HTTPS only.
    #[arg(long, env = "RETROFARM_WORKER_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "RETROFARM_WORKER_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Extra delay for each ping reply, ms [default: 0].
    #[arg(long, env = "RETROFARM_PING_DELAY_MS")]
    ping_delay_ms: Option<u64>,
    /// WebRTC UDP listen address [default: 0.0.0.0:8555].
    #[arg(long, env = "RETROFARM_RTC_LISTEN")]
    rtc_listen: Option<SocketAddr>,
    /// Games folder [default: games].
    #[arg(long, env = "RETROFARM_GAMES_DIR")]
    games_dir: Option<PathBuf>,
    /// Seconds between scans of the games folder; 0: only on SIGHUP [default: 60].
    #[arg(long, env = "RETROFARM_GAMES_RESCAN_SECS")]
    games_rescan_secs: Option<u64>,
    /// libretro cores folder.
    #[arg(long, env = "RETROFARM_CORES_DIR")]
    cores_dir: Option<PathBuf>,
    /// BIOS files folder, every room's system directory [default: none].
    #[arg(long, env = "RETROFARM_BIOS_DIR")]
    bios_dir: Option<PathBuf>,
    /// CPU cores rooms may use [default: 90% of the cores].
    #[arg(long, env = "RETROFARM_CPU_BUDGET_CORES")]
    cpu_budget_cores: Option<f64>,
    /// Most rooms at once [default: 64].
    #[arg(long, env = "RETROFARM_MAX_ROOMS")]
    max_rooms: Option<u32>,
    /// Highest video bitrate of a room's stream, kbit/s [default: 2000].
    #[arg(long, env = "RETROFARM_VIDEO_KBPS")]
    video_kbps: Option<u32>,
    /// Lowest video bitrate congestion control goes to, kbit/s [default: 150].
    #[arg(long, env = "RETROFARM_VIDEO_MIN_KBPS")]
    video_min_kbps: Option<u32>,
    /// Adapt each room's bitrate to its viewers' links (true or false) [default: true].
    #[arg(long, env = "RETROFARM_CONGESTION_CONTROL", action = clap::ArgAction::Set)]
    congestion_control: Option<bool>,
    /// Leave out frames identical to the one before (true or false) [default: true].
    #[arg(long, env = "RETROFARM_SKIP_REPEATED_FRAMES", action = clap::ArgAction::Set)]
    skip_repeated_frames: Option<bool>,
    /// Where frames are converted: auto, vulkan (alias lavapipe) or off [default: auto].
    #[arg(long, env = "RETROFARM_GPU", value_enum)]
    gpu: Option<GpuMode>,
    /// Whole-number upscaling of every frame, 1 to 4 [default: 1].
    #[arg(long, env = "RETROFARM_VIDEO_SCALE")]
    video_scale: Option<u32>,
    /// H264 on NVENC: auto or off [default: auto].
    #[arg(long, env = "RETROFARM_NVENC", value_enum)]
    nvenc: Option<NvencMode>,
    /// The NVENC library to load [default: libnvidia-encode.so.1].
    #[arg(long, env = "RETROFARM_NVENC_LIBRARY")]
    nvenc_library: Option<PathBuf>,
    /// Where saves go: a directory, s3://bucket/prefix, or off [default: .retrofarm/saves].
    #[arg(long, env = "RETROFARM_SAVES")]
    saves: Option<String>,
    /// Seconds between autosaves; 0: none [default: 30].
    #[arg(long, env = "RETROFARM_AUTOSAVE_SECS")]
    autosave_secs: Option<u64>,
    /// Seconds SIGTERM waits for running games to end before closing and saving them [default: 30].
    #[arg(long, env = "RETROFARM_DRAIN_SECS")]
    drain_secs: Option<u64>,
    /// Emulator sandbox: auto, required or off [default: auto].
    #[arg(long, env = "RETROFARM_EMULATOR_SANDBOX")]
    emulator_sandbox: Option<String>,
    /// Address-space limit of each emulator process, MiB; 0: none [default: 1024].
    #[arg(long, env = "RETROFARM_EMULATOR_MEMORY_MIB")]
    emulator_memory_mib: Option<u64>,
    /// Seconds an emptied room waits for its players to come back [default: 15].
    #[arg(long, env = "RETROFARM_ROOM_LINGER_SECS")]
    room_linger_secs: Option<u64>,
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
            metrics_listen,
            ping_delay_ms,
            rtc_listen,
            games_dir,
            games_rescan_secs,
            max_rooms,
            video_kbps,
            video_min_kbps,
            congestion_control,
            skip_repeated_frames,
            gpu,
            video_scale,
            nvenc,
            saves,
            autosave_secs,
            room_linger_secs,
            emulator_sandbox,
            emulator_memory_mib,
            drain_secs
        );
        if self.nvenc_library.is_some() {
            c.nvenc_library = self.nvenc_library;
        }
        if self.public_url.is_some() {
            c.public_url = self.public_url;
        }
        if self.tls_cert.is_some() {
            c.tls_cert = self.tls_cert;
        }
        if self.tls_key.is_some() {
            c.tls_key = self.tls_key;
        }
        if self.cpu_budget_cores.is_some() {
            c.cpu_budget_cores = self.cpu_budget_cores;
        }
        if self.cores_dir.is_some() {
            c.cores_dir = self.cores_dir;
        }
        if self.bios_dir.is_some() {
            c.bios_dir = self.bios_dir;
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
    cfg.check()?;
    let id = WorkerId::new(cfg.id.clone()).context("worker id")?;

    let library_source =
        LibrarySource { dir: cfg.games_dir.clone(), cores: cfg.cores.clone(), cores_dir: cfg.cores_dir.clone() };
    let library = Library::load(&library_source)?;
    info!(games = library.len(), dir = %cfg.games_dir.display(), "game library loaded");
    for table in cfg.unused_core_option_tables() {
        warn!(%table, "[core_options.{table}] names no core of `cores`: its options are never used");
    }
    for game in cfg.game_options.keys().filter(|g| library.get(g).is_none()) {
        warn!(%game, "[game_options] names a game that is not in the games folder");
    }
    match &cfg.bios_dir {
        Some(dir) => info!(dir = %dir.display(), "BIOS files folder (every room's system directory)"),
        None => info!("no bios_dir: cores that need a BIOS (PlayStation) cannot start their games"),
    }

    let http = tokio::net::TcpListener::bind(cfg.http_listen)
        .await
        .with_context(|| format!("cannot listen on TCP {}: is the port in use?", cfg.http_listen))?;
    let http_addr = http.local_addr()?;
    let (gpu, conversion) = gpu_stage::open(cfg.gpu, Duration::from_micros(cfg.gpu_batch_window_us));
    let gpu_uuid = gpu.as_ref().map(|g| g.uuid());
    let (nvenc, encoding) = Nvenc::open(cfg.nvenc, cfg.nvenc_library.as_ref(), cfg.nvenc_max_sessions, gpu_uuid);
    let rooms_health = farm_worker::http::RoomsHealth::default();
    let router = farm_worker::http::router(
        Duration::from_millis(cfg.ping_delay_ms),
        vec![conversion, encoding],
        rooms_health.clone(),
    );
    let tls = retrofarm_link::https::from_settings(cfg.tls_cert.as_deref(), cfg.tls_key.as_deref())?;
    tokio::spawn(retrofarm_link::https::serve(http, router, tls));
    let metrics = tokio::net::TcpListener::bind(cfg.metrics_listen).await.with_context(|| {
        format!("cannot listen on TCP {} for /metrics: is the port in use? (metrics_listen)", cfg.metrics_listen)
    })?;
    let metrics_addr = metrics.local_addr()?;
    let scrape = retrofarm_link::https::metrics_router(|| farm_worker::metrics::metrics().render());
    tokio::spawn(retrofarm_link::https::serve(metrics, scrape, None));

    let socket = tokio::net::UdpSocket::bind(cfg.rtc_listen)
        .await
        .with_context(|| format!("cannot bind the WebRTC UDP socket {}: is the port in use?", cfg.rtc_listen))?;
    let bound = socket.local_addr()?;
    let candidates = cfg.candidate_addrs(bound);
    info!(http = %http_addr, metrics = %metrics_addr, rtc = ?candidates, "worker listening");

    let (up_tx, up_rx) = mpsc::channel(1024);
    let (down_tx, down_rx) = mpsc::channel(1024);
    let link_cfg = LinkConfig {
        coordinator: cfg.coordinator.clone(),
        server_name: cfg.server_name.clone(),
        identity: Identity::in_dir(&cfg.pki_dir, &cfg.cert_name),
        id,
        zone: cfg.zone.clone(),
        ping_url: cfg.ping_url(http_addr),
    };
    if !(1..=retrofarm_media::convert::MAX_SCALE).contains(&cfg.video_scale) {
        anyhow::bail!("video_scale = {} is not supported: use 1 to 4", cfg.video_scale);
    }
    let saves = match cfg.saves.as_str() {
        "off" | "" => None,
        spec => Some(SaveStore::open(spec).map_err(|e| anyhow::anyhow!("{e} (set saves, or saves = \"off\")"))?),
    };
    match &saves {
        Some(s) => info!(store = s.url(), autosave_secs = cfg.autosave_secs, "saves enabled"),
        None => warn!("saves = off: players cannot save and closed rooms cannot resume"),
    }
    let driver_cfg = DriverConfig {
        rooms_health,
        saves,
        autosave: (cfg.autosave_secs > 0).then(|| Duration::from_secs(cfg.autosave_secs)),
        drain: Duration::from_secs(cfg.drain_secs),
        library: library_source,
        rescan: (cfg.games_rescan_secs > 0).then(|| Duration::from_secs(cfg.games_rescan_secs)),
        room: RoomSettings {
            options: cfg.room_options(),
            bios_dir: cfg.bios_dir.clone(),
            video: VideoConfig { bitrate_bps: cfg.video_kbps * 1000, ..VideoConfig::default() },
            skip_repeats: cfg.skip_repeated_frames,
            scale: cfg.video_scale,
            canvas: cfg.video_canvas.map(|[w, h]| (w, h)),
            rooms_dir: cfg.rooms_dir.clone(),
            sandbox: cfg.sandbox_mode()?,
            memory_mib: cfg.emulator_memory(),
        },
        gpu,
        nvenc,
        encoder_threads: cfg.encoder_threads,
        cpu_budget_cores: cfg.cpu_budget(),
        room_cost_prior: cfg.room_cost_prior,
        max_rooms: cfg.max_rooms,
    };
    // Datagrams are handed to the peers as arriving on the first announced address.
    let local = candidates.first().copied().unwrap_or(bound);
    let linger = Duration::from_secs(cfg.room_linger_secs);
    let rate = RateConfig {
        enabled: cfg.congestion_control,
        ..RateConfig::new(cfg.video_min_kbps * 1000, cfg.video_kbps * 1000)
    };
    info!(enabled = rate.enabled, floor_kbps = cfg.video_min_kbps, ceiling_kbps = cfg.video_kbps, "congestion control");
    let engine_cfg = EngineConfig { candidates, connect_timeout: CONNECT_TIMEOUT, linger, rate };
    let engine = Engine::new(engine_cfg, library, driver_cfg.initial_capacity(), std::time::Instant::now());
    // The link registers with what the engine reports from the start: a default status would
    // announce no capacity until the driver's first turn, and the coordinator would call the
    // farm full.
    let (status_tx, status_rx) = watch::channel(engine.status());
    let driver = Driver::new(driver_cfg, engine, socket, local, up_tx, status_tx)?;
    let link = tokio::spawn(link::run(link_cfg, up_rx, down_tx, status_rx));
    retrofarm_link::systemd::notify("READY=1");
    driver.run(down_rx).await;
    // The driver is gone, and with it the link's queue: the link delivers what is left and
    // closes.
    let _ = tokio::time::timeout(Duration::from_secs(5), link).await;
    Ok(())
}
