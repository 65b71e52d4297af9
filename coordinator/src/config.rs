//! Coordinator configuration: built-in defaults, then a TOML file, then environment variables
//! and command-line flags (see `retrofarm-coordinator run --help` and docs/configuration.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use retrofarm_proto::browser::IceServer;
use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP and WebSocket listen address (browsers).
    pub http_listen: SocketAddr,
    /// QUIC listen address (workers), UDP.
    pub quic_listen: SocketAddr,
    /// Where Prometheus scrapes `/metrics` (plain HTTP): loopback or a private address, never
    /// the public one.
    pub metrics_listen: SocketAddr,
    /// Folder of the web client served at `/`.
    pub web_root: PathBuf,
    /// Cluster PKI folder (ca.pem, coordinator.pem/.key).
    pub pki_dir: PathBuf,
    /// Create a local CA and certificates in `pki_dir` when it has none (single-host setups).
    pub auto_pki: bool,
    /// Names (DNS or IP) in the coordinator certificate that `auto_pki` creates.
    pub server_names: Vec<String>,
    /// How often workers heartbeat, in milliseconds.
    pub heartbeat_ms: u64,
    /// Silence after which a worker is dropped, in milliseconds.
    pub heartbeat_timeout_ms: u64,
    /// How long a dropped worker's players wait for it to come back before they are told it
    /// is lost, in milliseconds (their games stream straight from it meanwhile); 0: at once.
    pub worker_grace_ms: u64,
    /// STUN/TURN servers handed to browsers in `init` (workers announce host candidates only).
    pub ice_servers: Vec<IceServer>,
    /// PEM certificate chain (the operator's, e.g. from Let's Encrypt) for `http_listen`: with
    /// `tls_key`, the page and `/ws` are served over HTTPS/WSS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Page origins (`https://play.example.org`) allowed to open `/ws` besides the
    /// coordinator's own; `"*"` allows every origin. Clients that send no `Origin` (not
    /// browsers) are always allowed.
    pub allowed_origins: Vec<String>,
    /// Time-limited TURN credentials minted for each browser session.
    pub turn: TurnConfig,
    /// Limits on what browsers may hold and send (connections, message rate).
    pub limits: LimitsConfig,
}

/// The `[limits]` section: what one browser, one address and all browsers together may hold
/// of the coordinator (docs/configuration.md, docs/protocol.md). 0 turns a connection limit
/// off.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// WebSockets (`/ws`) held in all; beyond, upgrades are refused with 503.
    pub max_connections: u32,
    /// WebSockets held from one IPv4 address or IPv6 /64; beyond, upgrades are refused with 429.
    pub max_connections_per_ip: u32,
    /// Messages a browser may send at once.
    pub message_burst: u32,
    /// Messages per second a browser may send after the burst; beyond, messages are dropped
    /// (the first with a `rate_limited` error).
    pub messages_per_sec: u32,
    /// Dropped messages after which a flooding browser is disconnected (close 1008).
    pub flood_close_after: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let (caps, rate) = (crate::connection_limits::Caps::default(), crate::message_rate::RateLimit::default());
        Self {
            max_connections: caps.total,
            max_connections_per_ip: caps.per_ip,
            message_burst: rate.burst,
            messages_per_sec: rate.per_sec,
            flood_close_after: rate.close_after,
        }
    }
}

impl LimitsConfig {
    /// The connection caps.
    pub fn caps(&self) -> crate::connection_limits::Caps {
        crate::connection_limits::Caps { per_ip: self.max_connections_per_ip, total: self.max_connections }
    }

    /// The per-session message rate limit.
    pub fn rate(&self) -> crate::message_rate::RateLimit {
        crate::message_rate::RateLimit {
            burst: self.message_burst,
            per_sec: self.messages_per_sec,
            close_after: self.flood_close_after,
        }
    }
}

/// The `[turn]` section: a TURN server that checks credentials with a shared secret (coturn's
/// `use-auth-secret`, the "TURN REST API" scheme). Off while `urls` is empty.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// `turn:` / `turns:` URLs of the server, handed to browsers with the credentials.
    pub urls: Vec<String>,
    /// The secret shared with the TURN server (coturn's `static-auth-secret`).
    pub secret: String,
    /// How long a session's credentials stay valid for new allocations, in seconds.
    pub ttl_secs: u64,
}

impl Default for TurnConfig {
    fn default() -> Self {
        // One day, as the TURN REST API draft recommends: credentials are minted once per page
        // load, and a page left open must still be able to start a game through the relay.
        Self { urls: vec![], secret: String::new(), ttl_secs: 86_400 }
    }
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("urls", &self.urls)
            .field("secret", &if self.secret.is_empty() { "" } else { "<set>" })
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

impl TurnConfig {
    /// The credential minter, when TURN is configured.
    pub fn rest(&self) -> Option<crate::turn::TurnRest> {
        (!self.urls.is_empty()).then(|| crate::turn::TurnRest {
            urls: self.urls.clone(),
            secret: self.secret.clone(),
            ttl: Duration::from_secs(self.ttl_secs),
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_listen: "0.0.0.0:8000".parse().expect("valid"),
            metrics_listen: "127.0.0.1:9465".parse().expect("valid"),
            quic_listen: "0.0.0.0:8443".parse().expect("valid"),
            web_root: PathBuf::from("web"),
            pki_dir: PathBuf::from(".retrofarm/pki"),
            auto_pki: true,
            server_names: vec!["localhost".into(), "127.0.0.1".into()],
            // A worker that dies is noticed (and its players told) within 2 s.
            heartbeat_ms: 500,
            heartbeat_timeout_ms: 5000,
            worker_grace_ms: 10_000,
            ice_servers: vec![],
            tls_cert: None,
            tls_key: None,
            allowed_origins: vec![],
            turn: TurnConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

impl Config {
    /// Reads `path` over the defaults; no path means defaults only.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else { return Ok(Self::default()) };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{} is not a valid coordinator configuration", path.display()))
    }

    /// Checks what the types cannot: settings that only work together, and the shape of
    /// origins and TURN URLs. The error says which key to fix.
    pub fn validate(&self) -> Result<()> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => bail!("tls_cert is set but tls_key is not: set both (PEM files) for HTTPS, or neither"),
            (None, Some(_)) => bail!("tls_key is set but tls_cert is not: set both (PEM files) for HTTPS, or neither"),
            _ => {}
        }
        for o in &self.allowed_origins {
            crate::origin::check_entry(o).map_err(|e| anyhow::anyhow!("allowed_origins: {e}"))?;
        }
        let t = &self.turn;
        if !t.urls.is_empty() && t.secret.is_empty() {
            bail!("turn.urls is set but turn.secret is empty: set it to the TURN server's static-auth-secret");
        }
        if t.urls.is_empty() && !t.secret.is_empty() {
            bail!("turn.secret is set but turn.urls is empty: list the TURN server's turn: URLs");
        }
        if let Some(u) = t.urls.iter().find(|u| !(u.starts_with("turn:") || u.starts_with("turns:"))) {
            bail!("turn.urls: {u:?} is not a TURN URL: write turn:HOST:PORT or turns:HOST:PORT (STUN servers go in ice_servers)");
        }
        if !t.urls.is_empty() && t.ttl_secs == 0 {
            bail!("turn.ttl_secs = 0 would mint credentials that have already expired: use at least 60");
        }
        let l = &self.limits;
        if l.message_burst == 0 || l.messages_per_sec == 0 || l.flood_close_after == 0 {
            bail!(
                "limits.message_burst, limits.messages_per_sec and limits.flood_close_after must be at least 1 \
                 (a browser sends a few tens of messages per game; defaults 50, 20, 100)"
            );
        }
        Ok(())
    }

    /// The certificate and key files, when HTTPS is configured.
    pub fn tls_files(&self) -> Option<(&Path, &Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }

    /// Heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    /// Heartbeat timeout.
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(self.heartbeat_timeout_ms)
    }

    /// How long a dropped worker's players wait for it.
    pub fn worker_grace(&self) -> Duration {
        Duration::from_millis(self.worker_grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_rejects_typos() {
        let c: Config = toml::from_str(
            r#"
            http_listen = "127.0.0.1:9999"
            [[ice_servers]]
            urls = ["turn:turn.example.org:3478"]
            username = "u"
            credential = "p"
            "#,
        )
        .unwrap();
        assert_eq!(c.http_listen.port(), 9999);
        assert_eq!(c.quic_listen.port(), 8443);
        assert_eq!(c.ice_servers[0].username.as_deref(), Some("u"));
        assert!(toml::from_str::<Config>("htp_listen = \"x\"").is_err());
    }

    #[test]
    fn edge_security_keys_parse_and_validate() {
        let c: Config = toml::from_str(
            r#"
            tls_cert = "/etc/retrofarm/tls/fullchain.pem"
            tls_key = "/etc/retrofarm/tls/privkey.pem"
            allowed_origins = ["https://play.example.org"]
            [turn]
            urls = ["turn:turn.example.org:3478?transport=udp"]
            secret = "north"
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.tls_files().unwrap().1, Path::new("/etc/retrofarm/tls/privkey.pem"));
        assert_eq!(c.turn.ttl_secs, 86_400);
        assert!(!format!("{c:?}").contains("north"), "the TURN secret stays out of logs");
        let rest = c.turn.rest().unwrap();
        assert_eq!(rest.ttl, Duration::from_secs(86_400));
        assert!(Config::default().turn.rest().is_none());
        Config::default().validate().unwrap();

        let err = |toml: &str| toml::from_str::<Config>(toml).unwrap().validate().unwrap_err().to_string();
        assert!(err("tls_cert = \"c.pem\"").contains("tls_key is not"));
        assert!(err("tls_key = \"k.pem\"").contains("tls_cert is not"));
        assert!(err("allowed_origins = [\"play.example.org\"]").contains("https://play.example.org"));
        assert!(err("[turn]\nurls = [\"turn:t:3478\"]").contains("static-auth-secret"));
        assert!(err("[turn]\nsecret = \"s\"").contains("turn.urls is empty"));
        assert!(err("[turn]\nurls = [\"stun:t:3478\"]\nsecret = \"s\"").contains("not a TURN URL"));
        assert!(err("[turn]\nurls = [\"turn:t\"]\nsecret = \"s\"\nttl_secs = 0").contains("ttl_secs"));
        assert!(toml::from_str::<Config>("[turn]\nsecrets = \"s\"").is_err());
    }

    #[test]
    fn limits_parse_with_defaults_and_validate() {
        let c: Config = toml::from_str("[limits]\nmax_connections_per_ip = 8\nmessages_per_sec = 5").unwrap();
        c.validate().unwrap();
        assert_eq!(c.limits.caps(), crate::connection_limits::Caps { per_ip: 8, total: 20_000 });
        assert_eq!((c.limits.rate().per_sec, c.limits.rate().burst, c.limits.rate().close_after), (5, 50, 100));
        let e = toml::from_str::<Config>("[limits]\nmessages_per_sec = 0").unwrap().validate().unwrap_err();
        assert!(e.to_string().contains("limits.messages_per_sec"), "{e}");
        assert!(toml::from_str::<Config>("[limits]\nmax_conections = 1").is_err());
    }
}
