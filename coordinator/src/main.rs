//! `retrofarm-coordinator`: run the coordinator, or manage the cluster PKI.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use retrofarm_coordinator::config::Config;
use retrofarm_link::pki;

#[derive(Debug, Parser)]
#[command(version, about = "retrofarm coordinator: pairs browsers with game workers")]
struct Cli {
    /// Configuration file (TOML); defaults apply without one.
    #[arg(long, short, global = true, env = "RETROFARM_COORDINATOR_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the coordinator (the default).
    Run(Box<RunArgs>),
    /// Manage the cluster certificates that authenticate workers.
    Pki {
        #[command(subcommand)]
        cmd: PkiCmd,
    },
}

#[derive(Debug, Default, clap::Args)]
struct RunArgs {
    /// HTTP/WebSocket listen address [default: 0.0.0.0:8000].
    #[arg(long, env = "RETROFARM_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// Prometheus /metrics listen address, loopback or private [default: 127.0.0.1:9465].
    #[arg(long, env = "RETROFARM_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// QUIC listen address for workers [default: 0.0.0.0:8443].
    #[arg(long, env = "RETROFARM_QUIC_LISTEN")]
    quic_listen: Option<SocketAddr>,
    /// Folder of the web client [default: web].
    #[arg(long, env = "RETROFARM_WEB_ROOT")]
    web_root: Option<PathBuf>,
    /// Cluster PKI folder [default: .retrofarm/pki].
    #[arg(long, env = "RETROFARM_PKI_DIR")]
    pki_dir: Option<PathBuf>,
    /// Never create a local CA; require `pki init` to have been run.
    #[arg(long, env = "RETROFARM_NO_AUTO_PKI")]
    no_auto_pki: bool,
    /// Worker heartbeat timeout in milliseconds [default: 5000].
    #[arg(long, env = "RETROFARM_HEARTBEAT_TIMEOUT_MS")]
    heartbeat_timeout_ms: Option<u64>,
    /// How long a dropped worker's players wait for it to come back, ms; 0: at once [default: 10000].
    #[arg(long, env = "RETROFARM_WORKER_GRACE_MS")]
    worker_grace_ms: Option<u64>,
    /// PEM certificate chain: with --tls-key, browsers get HTTPS/WSS only.
    #[arg(long, env = "RETROFARM_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "RETROFARM_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Page origins allowed to open /ws besides our own, comma-separated; "*" allows all.
    #[arg(long, env = "RETROFARM_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Option<Vec<String>>,
    /// TURN server URLs for minted credentials, comma-separated (turn:HOST:PORT).
    #[arg(long, env = "RETROFARM_TURN_URLS", value_delimiter = ',')]
    turn_urls: Option<Vec<String>>,
    /// The secret shared with the TURN server (coturn's static-auth-secret).
    #[arg(long, env = "RETROFARM_TURN_SECRET", hide_env_values = true)]
    turn_secret: Option<String>,
    /// Seconds minted TURN credentials stay valid [default: 86400].
    #[arg(long, env = "RETROFARM_TURN_TTL_SECS")]
    turn_ttl_secs: Option<u64>,
    /// WebSockets held in all; beyond, /ws answers 503 (0: no limit) [default: 20000].
    #[arg(long, env = "RETROFARM_MAX_CONNECTIONS")]
    max_connections: Option<u32>,
    /// WebSockets held per IPv4 address or IPv6 /64; beyond, /ws answers 429 (0: no limit) [default: 64].
    #[arg(long, env = "RETROFARM_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<u32>,
    /// Messages a browser may send at once [default: 50].
    #[arg(long, env = "RETROFARM_MESSAGE_BURST")]
    message_burst: Option<u32>,
    /// Messages per second a browser may send after the burst [default: 20].
    #[arg(long, env = "RETROFARM_MESSAGES_PER_SEC")]
    messages_per_sec: Option<u32>,
    /// Dropped messages after which a flooding browser is disconnected (1008) [default: 100].
    #[arg(long, env = "RETROFARM_FLOOD_CLOSE_AFTER")]
    flood_close_after: Option<u32>,
}

#[derive(Debug, Subcommand)]
enum PkiCmd {
    /// Create a cluster CA and the coordinator's certificate.
    Init {
        /// Where to write the files.
        #[arg(long, default_value = ".retrofarm/pki")]
        dir: PathBuf,
        /// DNS names or IPs workers use to reach the coordinator.
        #[arg(long = "server-name", default_values = ["localhost", "127.0.0.1"])]
        server_names: Vec<String>,
    },
    /// Issue a worker certificate (writes <name>.pem and <name>.key).
    IssueWorker {
        /// Folder holding ca.pem and ca.key.
        #[arg(long, default_value = ".retrofarm/pki")]
        dir: PathBuf,
        /// File name and certificate name of the worker.
        #[arg(long, default_value = "worker")]
        name: String,
    },
}

impl RunArgs {
    fn apply(self, c: &mut Config) {
        if let Some(v) = self.http_listen {
            c.http_listen = v;
        }
        if let Some(v) = self.metrics_listen {
            c.metrics_listen = v;
        }
        if let Some(v) = self.quic_listen {
            c.quic_listen = v;
        }
        if let Some(v) = self.web_root {
            c.web_root = v;
        }
        if let Some(v) = self.pki_dir {
            c.pki_dir = v;
        }
        if self.no_auto_pki {
            c.auto_pki = false;
        }
        if let Some(v) = self.heartbeat_timeout_ms {
            c.heartbeat_timeout_ms = v;
        }
        if let Some(v) = self.worker_grace_ms {
            c.worker_grace_ms = v;
        }
        if self.tls_cert.is_some() {
            c.tls_cert = self.tls_cert;
        }
        if self.tls_key.is_some() {
            c.tls_key = self.tls_key;
        }
        if let Some(v) = self.allowed_origins {
            c.allowed_origins = trimmed(v);
        }
        if let Some(v) = self.turn_urls {
            c.turn.urls = trimmed(v);
        }
        if let Some(v) = self.turn_secret {
            c.turn.secret = v;
        }
        if let Some(v) = self.turn_ttl_secs {
            c.turn.ttl_secs = v;
        }
        if let Some(v) = self.max_connections {
            c.limits.max_connections = v;
        }
        if let Some(v) = self.max_connections_per_ip {
            c.limits.max_connections_per_ip = v;
        }
        if let Some(v) = self.message_burst {
            c.limits.message_burst = v;
        }
        if let Some(v) = self.messages_per_sec {
            c.limits.messages_per_sec = v;
        }
        if let Some(v) = self.flood_close_after {
            c.limits.flood_close_after = v;
        }
    }
}

/// A comma-separated flag's entries, trimmed, the empty ones left out.
fn trimmed(list: Vec<String>) -> Vec<String> {
    list.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("RETROFARM_LOG").unwrap_or_else(|_| "info".into()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.cmd.unwrap_or_else(|| Cmd::Run(Box::default())) {
        Cmd::Run(args) => {
            let mut cfg = Config::load(cli.config.as_deref())?;
            args.apply(&mut cfg);
            retrofarm_coordinator::server::run(cfg).await
        }
        Cmd::Pki { cmd: PkiCmd::Init { dir, server_names } } => {
            pki::init_ca(&dir)?;
            pki::issue(&dir, pki::Role::Coordinator, "coordinator", &server_names)?;
            println!(
                "created {0}/ca.pem, ca.key, coordinator.pem, coordinator.key; keep ca.key off worker hosts",
                dir.display()
            );
            Ok(())
        }
        Cmd::Pki { cmd: PkiCmd::IssueWorker { dir, name } } => {
            pki::issue(&dir, pki::Role::Worker, &name, std::slice::from_ref(&name))?;
            println!(
                "created {0}/{name}.pem and {0}/{name}.key; copy them with ca.pem to the worker host",
                dir.display()
            );
            Ok(())
        }
    }
}
