//! Coordinator configuration: built-in defaults, then a TOML file, then environment variables
//! and command-line flags (see `retrofarm-coordinator run --help` and docs/configuration.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
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
    /// STUN/TURN servers handed to browsers in `init` (workers announce host candidates only).
    pub ice_servers: Vec<IceServer>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_listen: "0.0.0.0:8000".parse().expect("valid"),
            quic_listen: "0.0.0.0:8443".parse().expect("valid"),
            web_root: PathBuf::from("web"),
            pki_dir: PathBuf::from(".retrofarm/pki"),
            auto_pki: true,
            server_names: vec!["localhost".into(), "127.0.0.1".into()],
            // A worker that dies is noticed (and its players told) within 2 s.
            heartbeat_ms: 500,
            heartbeat_timeout_ms: 2000,
            ice_servers: vec![],
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

    /// Heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    /// Heartbeat timeout.
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(self.heartbeat_timeout_ms)
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
}
