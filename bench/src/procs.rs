//! The real coordinator and worker, started from the binaries built beside the benchmark.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The folder of the workspace's binaries: the running executable's folder (target/<profile>),
/// or its parent when it runs from deps/ (tests).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    let dir = exe.parent().expect("executable folder").to_path_buf();
    if dir.ends_with("deps") {
        dir.parent().expect("target/<profile>").to_path_buf()
    } else {
        dir
    }
}

/// A workspace binary next to this one.
pub fn bin(name: &str) -> Result<PathBuf> {
    let p = bin_dir().join(name);
    if !p.is_file() {
        bail!(
            "{} is missing: build the workspace's binaries with the same profile first (cargo build --release --bins)",
            p.display()
        );
    }
    Ok(p)
}

/// A free loopback TCP port.
pub fn tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free TCP port")
}

/// A free loopback UDP port.
pub fn udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("a free UDP port")
}

/// A child process, killed when dropped, logging into a file.
pub struct Proc {
    child: Child,
    log: PathBuf,
    name: String,
}

impl Proc {
    /// Starts `cmd`, its output going to `<dir>/<name>.log`.
    pub fn spawn(name: &str, cmd: &mut Command, dir: &Path) -> Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let child = cmd
            .env("RETROFARM_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self { child, log, name: name.into() })
    }

    /// Its pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `needle` in the log; fails when the process exits first.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited ({status}) before logging {needle:?}:\n{}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        bail!("{} did not log {needle:?} within {timeout:?}:\n{}", self.name, self.log())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A coordinator and one worker on loopback.
pub struct Cluster {
    /// Logs and PKI (kept with `RETROFARM_KEEP_LOGS=1`).
    pub dir: tempfile::TempDir,
    /// The coordinator's HTTP/WebSocket address.
    pub http: SocketAddr,
    /// The worker's HTTP address (`/ping`, `/healthz`).
    pub worker_http: SocketAddr,
    /// The worker's `/metrics` address.
    pub worker_metrics: SocketAddr,
    /// The worker process (the emulators are its children).
    pub worker: Proc,
    /// The coordinator process.
    pub coordinator: Proc,
}

/// A coordinator on loopback, logging into `dir` (its PKI in `dir/pki`); returns it with its
/// HTTP/WebSocket and QUIC addresses once it listens.
pub fn coordinator(dir: &Path) -> Result<(Proc, SocketAddr, SocketAddr)> {
    let http = SocketAddr::from(([127, 0, 0, 1], tcp_port()));
    let quic = SocketAddr::from(([127, 0, 0, 1], udp_port()));
    let mut coordinator = Proc::spawn(
        "coordinator",
        Command::new(bin("retrofarm-coordinator")?)
            .arg("run")
            .arg("--http-listen")
            .arg(http.to_string())
            .arg("--quic-listen")
            .arg(quic.to_string())
            .args(["--metrics-listen", "127.0.0.1:0"])
            .arg("--pki-dir")
            .arg(dir.join("pki"))
            .arg("--web-root")
            .arg(crate::repo_root().join("web"))
            // Every benchmark client comes from 127.0.0.1: no per-address connection limit.
            .args(["--max-connections-per-ip", "0"]),
        dir,
    )?;
    coordinator.wait_log("coordinator listening", Duration::from_secs(20))?;
    Ok((coordinator, http, quic))
}

impl Cluster {
    /// Starts a coordinator and a worker serving `games`, with `extra` worker flags.
    pub fn start(games: &Path, extra: &[String]) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("retrofarm-bench-").tempdir()?;
        let pki = dir.path().join("pki");
        let (coordinator, http, quic) = coordinator(dir.path())?;
        let worker_http = SocketAddr::from(([127, 0, 0, 1], tcp_port()));
        let worker_metrics = SocketAddr::from(([127, 0, 0, 1], tcp_port()));
        let mut worker = Proc::spawn(
            "worker",
            Command::new(bin("retrofarm-worker")?)
                .args(["--id", "bench", "--zone", "local", "--rtc-listen", "127.0.0.1:0"])
                .arg("--coordinator")
                .arg(quic.to_string())
                .arg("--pki-dir")
                .arg(&pki)
                .arg("--http-listen")
                .arg(worker_http.to_string())
                .arg("--metrics-listen")
                .arg(worker_metrics.to_string())
                .arg("--games-dir")
                .arg(games)
                .arg("--saves")
                .arg(dir.path().join("saves"))
                .args(extra),
            dir.path(),
        )?;
        worker.wait_log("registered with the coordinator", Duration::from_secs(20))?;
        Ok(Self { dir, http, worker_http, worker_metrics, worker, coordinator })
    }

    /// The browser WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.http)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::env::var_os("RETROFARM_KEEP_LOGS").is_some() {
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir")).keep();
            eprintln!("logs kept in {}", kept.display());
        }
    }
}
