//! Coordinator and worker processes for tests.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A built binary of the workspace (`cargo build --workspace --bins` puts them next to the
/// test's `deps/` folder).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().expect("the executable's folder");
    // A test runs from target/<profile>/deps; a binary (a benchmark) from target/<profile>.
    let dir = if dir.ends_with("deps") { dir.parent().expect("target/<profile>") } else { dir };
    let p = dir.join(name);
    assert!(p.exists(), "{} is missing: run `cargo build --workspace --bins` before the tests", p.display());
    p
}

/// A free loopback TCP port.
pub fn tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A free loopback UDP port.
pub fn udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process that is killed when dropped; its output goes to a log file.
pub struct Proc {
    child: Child,
    log: PathBuf,
    name: String,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, dir: &Path) -> Result<Self> {
        // A restarted process gets a log of its own, so waits see only its lines.
        let log = (1..)
            .map(|i| dir.join(if i == 1 { format!("{name}.log") } else { format!("{name}-{i}.log") }))
            .find(|p| !p.exists())
            .expect("a free log name");
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = cmd
            .env("RETROFARM_LOG", "info,retrofarm=debug,farm_worker=debug,retrofarm_coordinator=debug")
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {name}"))?;
        Ok(Self { child, log, name: name.to_string() })
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        self.wait_log_count(needle, 1, timeout)
    }

    /// Waits until the log contains `needle` at least `count` times.
    pub fn wait_log_count(&self, needle: &str, count: usize, timeout: Duration) -> Result<()> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log().matches(needle).count() >= count {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("{} did not log {needle:?} {count} times within {timeout:?}; log:\n{}", self.name, self.log())
    }

    /// A worker's HTTP address (`/ping`, `/healthz`), from its log line
    /// "worker listening http=…".
    pub fn http_addr(&self) -> Result<String> {
        let log = self.log();
        log.split("worker listening http=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
            .with_context(|| format!("{} has not logged its HTTP address", self.name))
    }

    /// A worker's or the coordinator's `/metrics` address, from its "… listening … metrics=…"
    /// log line.
    pub fn metrics_addr(&self) -> Result<String> {
        let log = self.log();
        log.lines()
            .find(|l| l.contains(" listening "))
            .and_then(|l| l.split(" metrics=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
            .with_context(|| format!("{} has not logged its metrics address", self.name))
    }

    /// The process's `/metrics` (Prometheus text).
    pub async fn metrics(&self) -> Result<String> {
        let url = format!("http://{}/metrics", self.metrics_addr()?);
        let (status, body) = crate::browser::http_get(&url).await?;
        if status != 200 {
            bail!("GET {url}: HTTP {status}: {body}");
        }
        Ok(body)
    }

    /// GETs `path` from a worker's HTTP endpoint; the body of a 200 answer.
    pub async fn http_get(&self, path: &str) -> Result<String> {
        let url = format!("http://{}{path}", self.http_addr()?);
        let (status, body) = crate::browser::http_get(&url).await?;
        if status != 200 {
            bail!("GET {url}: HTTP {status}: {body}");
        }
        Ok(body)
    }

    /// Sends a signal (SIGSTOP, SIGCONT, SIGKILL…).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Process ids of this process's `retrofarm-emulator` children (one per room of a worker).
    pub fn emulator_pids(&self) -> Vec<i32> {
        let mut pids = vec![];
        let Ok(dir) = std::fs::read_dir("/proc") else { return pids };
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            let Some((comm, rest)) = stat.split_once(") ") else { continue };
            let ppid: i32 = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            if ppid == self.pid() && comm.contains("retrofarm-emul") {
                pids.push(pid);
            }
        }
        pids
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= end {
                bail!("{} still runs after {timeout:?}; log:\n{}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.kill();
        if std::thread::panicking() {
            eprintln!("----- {} log -----\n{}", self.name, self.log());
        }
    }
}

/// Ports of a coordinator.
#[derive(Debug, Clone, Copy)]
pub struct CoordinatorAddrs {
    /// HTTP/WebSocket.
    pub http: SocketAddr,
    /// QUIC.
    pub quic: SocketAddr,
}

impl CoordinatorAddrs {
    /// Fresh loopback ports.
    pub fn fresh() -> Self {
        Self {
            http: SocketAddr::from(([127, 0, 0, 1], tcp_port())),
            quic: SocketAddr::from(([127, 0, 0, 1], udp_port())),
        }
    }

    /// The browser WebSocket URL with a query.
    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/ws{}{}", self.http, if query.is_empty() { "" } else { "?" }, query)
    }
}

/// Starts a coordinator with its PKI in `pki`, logging into `dir`; waits until it serves.
pub fn coordinator(dir: &Path, pki: &Path, addrs: CoordinatorAddrs, extra: &[&str]) -> Result<Proc> {
    coordinator_wrapped(dir, pki, addrs, extra, &[])
}

/// [`coordinator`], run under the command `wrap` (its arguments, then the coordinator's command
/// line), e.g. `ip netns exec NAME` to start it in a network namespace.
pub fn coordinator_wrapped(
    dir: &Path,
    pki: &Path,
    addrs: CoordinatorAddrs,
    extra: &[&str],
    wrap: &[String],
) -> Result<Proc> {
    let mut cmd = match wrap.split_first() {
        Some((wrapper, args)) => {
            let mut c = Command::new(wrapper);
            c.args(args).arg(bin("retrofarm-coordinator"));
            c
        }
        None => Command::new(bin("retrofarm-coordinator")),
    };
    cmd.arg("run")
        .arg("--http-listen")
        .arg(addrs.http.to_string())
        .arg("--quic-listen")
        .arg(addrs.quic.to_string())
        .arg("--metrics-listen")
        .arg(SocketAddr::new(addrs.http.ip(), 0).to_string())
        .arg("--pki-dir")
        .arg(pki)
        .arg("--web-root")
        .arg(crate::repo_root().join("web"))
        .args(extra);
    let p = Proc::spawn("coordinator", &mut cmd, dir)?;
    p.wait_log("coordinator listening", Duration::from_secs(20))?;
    Ok(p)
}

/// Worker options.
#[derive(Debug, Clone)]
pub struct WorkerOpts {
    /// Worker id.
    pub id: String,
    /// Zone.
    pub zone: String,
    /// PKI folder.
    pub pki: PathBuf,
    /// Games folder.
    pub games: PathBuf,
    /// Whether the worker leaves out repeated frames. Off by default here: most tests check
    /// that every emulated frame of the (mostly still) homebrew game reaches its viewers; the
    /// worker's own default, on, has tests of its own.
    pub skip_repeated_frames: bool,
    /// Where saves go (`--saves`); `None`: the test directory's `saves`, shared by its workers.
    pub saves: Option<String>,
    /// Seconds an emptied room waits for its players (`--room-linger-secs`). 0 here, so rooms
    /// close when their last player leaves, as most tests expect; the worker's default is 15.
    pub linger_secs: u64,
    /// Extra flags.
    pub extra: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// A command the worker runs under (its arguments, then the worker's command line), e.g.
    /// `unshare` to change what the worker sees.
    pub wrap: Vec<String>,
    /// The address the worker's HTTP and WebRTC sockets bind to and that it announces (as its
    /// ICE host candidate and ping URL); `None`: 127.0.0.1. A worker in a network namespace
    /// binds to the namespace's own address so players outside can reach it.
    pub bind_ip: Option<IpAddr>,
}

impl WorkerOpts {
    /// A worker `id` in `zone` using `pki` and the project's own games.
    pub fn new(id: &str, zone: &str, pki: &Path) -> Self {
        Self {
            id: id.into(),
            zone: zone.into(),
            pki: pki.to_path_buf(),
            games: crate::repo_root().join("games"),
            skip_repeated_frames: false,
            saves: None,
            linger_secs: 0,
            extra: vec![],
            env: vec![],
            wrap: vec![],
            bind_ip: None,
        }
    }
}

/// A coordinator and one worker (`w1` in zone `local`, the test harness's options changed by
/// `opts`), both logging into `dir`; returns once the worker has registered.
pub fn cluster(dir: &Path, opts: impl FnOnce(&mut WorkerOpts)) -> Result<(CoordinatorAddrs, Proc, Proc)> {
    let pki = dir.join("pki");
    let addrs = CoordinatorAddrs::fresh();
    let coord = coordinator(dir, &pki, addrs, &[])?;
    let mut o = WorkerOpts::new("w1", "local", &pki);
    opts(&mut o);
    let worker = worker(dir, addrs, &o)?;
    worker.wait_log("registered with the coordinator", Duration::from_secs(20))?;
    Ok((addrs, coord, worker))
}

/// Starts a worker connecting to `coord`.
pub fn worker(dir: &Path, coord: CoordinatorAddrs, o: &WorkerOpts) -> Result<Proc> {
    let mut cmd = match o.wrap.split_first() {
        Some((wrapper, args)) => {
            let mut c = Command::new(wrapper);
            c.args(args).arg(bin("retrofarm-worker"));
            c
        }
        None => Command::new(bin("retrofarm-worker")),
    };
    cmd.arg("--id")
        .arg(&o.id)
        .arg("--zone")
        .arg(&o.zone)
        .arg("--coordinator")
        .arg(coord.quic.to_string())
        .arg("--pki-dir")
        .arg(&o.pki)
        .args(listen_args(o.bind_ip))
        .arg("--games-dir")
        .arg(&o.games)
        .arg("--skip-repeated-frames")
        .arg(o.skip_repeated_frames.to_string())
        // Every worker of a test shares one save store, as a farm's workers share a bucket.
        .arg("--saves")
        .arg(o.saves.clone().unwrap_or_else(|| dir.join("saves").display().to_string()))
        .arg("--room-linger-secs")
        .arg(o.linger_secs.to_string())
        .args(&o.extra)
        .envs(o.env.iter().map(|(k, v)| (k, v)));
    Proc::spawn(&format!("worker-{}", o.id), &mut cmd, dir)
}

/// The worker's listen flags: loopback with any ports, or `ip` with an HTTP port chosen here
/// and announced as the ping URL (the worker's default URL names 127.0.0.1).
fn listen_args(ip: Option<IpAddr>) -> Vec<String> {
    match ip {
        None => ["--http-listen", "127.0.0.1:0", "--rtc-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"]
            .map(String::from)
            .to_vec(),
        Some(ip) => {
            // Free here; in a fresh network namespace every port is free.
            let http = SocketAddr::new(ip, tcp_port());
            vec![
                "--http-listen".into(),
                http.to_string(),
                "--public-url".into(),
                format!("http://{http}/ping"),
                "--rtc-listen".into(),
                SocketAddr::new(ip, 0).to_string(),
                "--metrics-listen".into(),
                SocketAddr::new(ip, 0).to_string(),
            ]
        }
    }
}

/// An S3-compatible server (s3s-fs, built into `.deps/s3s` by scripts/setup.sh) that checks
/// request signatures, storing into `root`.
pub struct S3Server {
    /// The process.
    pub proc: Proc,
    /// Its endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The access key it accepts.
    pub access_key: String,
    /// The secret key it accepts.
    pub secret_key: String,
}

impl S3Server {
    /// Starts one with the bucket `bucket`; `None` (said on stderr) when s3s-fs is not built.
    pub fn start(dir: &Path, root: &Path, bucket: &str) -> Result<Option<S3Server>> {
        let bin = crate::repo_root().join(".deps/s3s/bin/s3s-fs");
        if !bin.exists() {
            eprintln!("SKIP: {} is missing (scripts/setup.sh builds it)", bin.display());
            return Ok(None);
        }
        // s3s-fs serves the folders of its root as buckets.
        std::fs::create_dir_all(root.join(bucket))?;
        let port = tcp_port();
        let (access_key, secret_key) = ("retrofarm-test".to_string(), "s3cr3t-key-for-tests".to_string());
        let mut cmd = Command::new(bin);
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", &access_key, "--secret-key", &secret_key])
            .arg(root);
        let proc = Proc::spawn("s3s-fs", &mut cmd, dir)?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < end, "s3s-fs did not listen on {endpoint}:\n{}", proc.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Some(S3Server { proc, endpoint, access_key, secret_key }))
    }

    /// The environment a worker uses this server with (`secret`: the secret key to present).
    pub fn env(&self, secret: &str) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", self.access_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}
