//! Two hosts on one machine joined by a link whose conditions a test changes while it streams.
//!
//! [`NetLink::new`] makes a network namespace (the "server side", named `rf-<pid>-<n>`) and a
//! veth pair: one end (`rf<n>s`, address [`NetLink::ns_ip`]) inside the namespace, the other
//! (`rf<n>h`, [`NetLink::host_ip`]) in the test's own namespace, the player's side, on a /30 of
//! its own in 10.213.0.0/16. The coordinator and the worker run inside ([`NetLink::cluster`]),
//! so their QUIC link stays on the namespace's loopback, unimpaired; the player reaches the
//! coordinator's WebSocket and the worker's WebRTC socket through the veth.
//!
//! Impairments act on the namespace's end of the veth, where the worker's media leaves (this
//! kernel has no netem; docs/network-tests.md): a tc token bucket for a rate cap, iptables
//! `statistic` drops for loss, an NFQUEUE program (`impair delay`, e2e/src/bin/impair.rs) for
//! delay and jitter, iptables drops of everything for an outage. Each setter changes the
//! running link. Dropping the [`NetLink`] removes it all: the delay programs and anything
//! else still running in the namespace, the veth pair and the namespace (the iptables rules
//! and the qdisc live in the namespace and go with it).

pub mod delay;
pub mod rules;
pub mod scenario;

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub use delay::Delay;
pub use rules::Conditions;

use crate::procs::{self, CoordinatorAddrs, Proc, WorkerOpts};

/// Why a [`NetLink`] cannot be made here (not root, no `ip`/`tc`/`iptables`, a kernel or
/// sandbox without namespaces…). Tests skip, saying so, with [`NetLink::or_skip`].
#[derive(Debug, Clone)]
pub struct Unavailable(pub String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "network namespaces not permitted here: {}", self.0)
    }
}

impl std::error::Error for Unavailable {}

/// The environment variable that turns a skip into a failure (for CI hosts known to allow
/// namespaces): `RETROFARM_REQUIRE_NETNS=1`.
pub const REQUIRE_ENV: &str = "RETROFARM_REQUIRE_NETNS";

/// Ports inside the namespace: it is fresh, so fixed ones are free.
const COORDINATOR_HTTP_PORT: u16 = 8080;
const COORDINATOR_QUIC_PORT: u16 = 8443;

/// Numbers tried for a link, in turn, by this process.
static NEXT: AtomicU32 = AtomicU32::new(0);
/// Links fit in 10.213.0.0/16, a /30 each.
const SLOTS: u32 = 1 << 14;

/// A server-side network namespace joined to the test's namespace by an impairable veth pair.
pub struct NetLink {
    ns: String,
    host_if: String,
    ns_if: String,
    host_ip: Ipv4Addr,
    ns_ip: Ipv4Addr,
    inner: Mutex<Inner>,
}

impl fmt::Debug for NetLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetLink")
            .field("ns", &self.ns)
            .field("host", &(&self.host_if, self.host_ip))
            .field("server", &(&self.ns_if, self.ns_ip))
            .field("conditions", &self.conditions())
            .finish()
    }
}

/// What is applied now, and the delay programs (egress, ingress).
#[derive(Default)]
struct Inner {
    conditions: Conditions,
    delayers: [Option<Delayer>; 2],
}

/// A running `impair delay` program, updated through its stdin.
struct Delayer {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Delayer {
    /// Starts `impair delay` on `queue` in namespace `ns`; returns once it listens.
    fn start(ns: &str, queue: u16, d: Delay) -> Result<Self> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(procs::bin("impair"))
            .args(delay_args(queue, d))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting `impair delay`")?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("impair's stdout")?).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            let status = child.wait()?;
            bail!("`impair delay --queue {queue}` did not start ({status}; its error is above)");
        }
        Ok(Self { child, stdin })
    }

    fn set(&mut self, d: Delay) -> Result<()> {
        let stdin = self.stdin.as_mut().context("impair's stdin is closed")?;
        writeln!(stdin, "{}", delay_line(d)).and_then(|_| stdin.flush()).context("updating `impair delay`")
    }

    /// Closes its stdin (it lets its held packets go and exits), then reaps it.
    fn stop(mut self) {
        drop(self.stdin.take());
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `impair delay`'s command line for `queue` and `d`.
pub fn delay_args(queue: u16, d: Delay) -> Vec<String> {
    let ms = |d: Duration| format!("{}", d.as_secs_f64() * 1000.0);
    vec![
        "delay".into(),
        "--queue".into(),
        queue.to_string(),
        "--ms".into(),
        ms(d.base),
        "--jitter".into(),
        ms(d.jitter),
    ]
}

/// The line that changes a running `impair delay` to `d`: `BASE_MS JITTER_MS`.
pub fn delay_line(d: Delay) -> String {
    format!("{} {}", d.base.as_secs_f64() * 1000.0, d.jitter.as_secs_f64() * 1000.0)
}

/// One change of conditions in a [`NetLink::play`] script.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// Caps the egress rate, kbit/s (`None`: no cap).
    Rate(Option<u32>),
    /// Random UDP loss towards the player, percent.
    Loss(f64),
    /// Delay and jitter of UDP towards the player.
    Delay(Delay),
    /// Delay and jitter of UDP from the player.
    IngressDelay(Delay),
    /// Starts (`true`) or ends an outage.
    Outage(bool),
    /// Back to a clean link.
    Clear,
}

impl Change {
    /// `c` with this change made.
    pub fn apply_to(self, c: &mut Conditions) {
        match self {
            Change::Rate(k) => c.rate_kbit = k,
            Change::Loss(p) => c.loss_percent = p,
            Change::Delay(d) => c.delay = d,
            Change::IngressDelay(d) => c.ingress_delay = d,
            Change::Outage(on) => c.outage = on,
            Change::Clear => *c = Conditions::default(),
        }
    }
}

impl NetLink {
    /// Whether this host lets us build links: root, and `ip`, `tc`, `iptables` and
    /// `iptables-restore` installed. [`NetLink::new`] can still fail where the kernel or a
    /// sandbox refuses (it says why).
    pub fn permitted() -> Result<(), Unavailable> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1));
        if euid != Some("0") {
            return Err(Unavailable(format!("not root (effective uid {})", euid.unwrap_or("unknown"))));
        }
        for (tool, arg) in [("ip", "-V"), ("tc", "-V"), ("iptables", "--version"), ("iptables-restore", "--version")] {
            let ok = Command::new(tool).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status();
            if !ok.is_ok_and(|s| s.success()) {
                return Err(Unavailable(format!(
                    "`{tool}` is missing (scripts/setup.sh installs iproute2 and iptables)"
                )));
            }
        }
        Ok(())
    }

    /// Builds a link with clean conditions.
    pub fn new() -> Result<NetLink, Unavailable> {
        Self::permitted()?;
        reap_stale();
        let pid = std::process::id();
        let mut claimed = None;
        for _ in 0..64 {
            let n = (pid.wrapping_mul(61).wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))) % SLOTS;
            let (host_if, ns_if) = (format!("rf{n}h"), format!("rf{n}s"));
            // Creating the pair claims the number: the names are unique in this namespace.
            match run("ip", &["link", "add", &host_if, "type", "veth", "peer", "name", &ns_if]) {
                Ok(()) => {
                    claimed = Some((n, host_if, ns_if));
                    break;
                }
                Err(e) if format!("{e:#}").contains("exists") => continue,
                Err(e) => return Err(Unavailable(format!("cannot make a veth pair: {e:#}"))),
            }
        }
        let (n, host_if, ns_if) = claimed.ok_or_else(|| Unavailable("no free link number".into()))?;
        let base = u32::from(Ipv4Addr::new(10, 213, 0, 0)) + n * 4;
        let link = NetLink {
            ns: format!("rf-{pid}-{n}"),
            host_if,
            ns_if,
            host_ip: Ipv4Addr::from(base + 1),
            ns_ip: Ipv4Addr::from(base + 2),
            inner: Mutex::default(),
        };
        // On failure `link` is dropped, which removes what was made.
        link.build().map_err(|e| Unavailable(format!("{e:#}")))?;
        Ok(link)
    }

    /// [`NetLink::new`], or `None` after saying on stderr why `test` is skipped (a failure
    /// instead when `RETROFARM_REQUIRE_NETNS=1`).
    pub fn or_skip(test: &str) -> Option<NetLink> {
        match Self::new() {
            Ok(l) => Some(l),
            Err(e) if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") => panic!("{test}: {e} ({REQUIRE_ENV}=1)"),
            Err(e) => {
                eprintln!("SKIPPED: {test}: {e}");
                None
            }
        }
    }

    fn build(&self) -> Result<()> {
        let (ns, h, s) = (self.ns.as_str(), self.host_if.as_str(), self.ns_if.as_str());
        run("ip", &["netns", "add", ns])?;
        run("ip", &["link", "set", s, "netns", ns])?;
        run("ip", &["addr", "add", &format!("{}/30", self.host_ip), "dev", h])?;
        run("ip", &["link", "set", h, "up"])?;
        run("ip", &["-n", ns, "addr", "add", &format!("{}/30", self.ns_ip), "dev", s])?;
        run("ip", &["-n", ns, "link", "set", s, "up"])?;
        run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        self.in_ns_input("iptables-restore", &[], &rules::iptables_setup(s)).context("iptables in the namespace")?;
        Ok(())
    }

    /// The namespace's name.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// The player side's address (the veth end in the test's namespace).
    pub fn host_ip(&self) -> Ipv4Addr {
        self.host_ip
    }

    /// The server side's address (the veth end in the namespace).
    pub fn ns_ip(&self) -> Ipv4Addr {
        self.ns_ip
    }

    /// The interface names: (player side, server side).
    pub fn interfaces(&self) -> (&str, &str) {
        (&self.host_if, &self.ns_if)
    }

    /// The command line prefix that runs a program inside the namespace: `ip netns exec NAME`
    /// (for [`WorkerOpts::wrap`] and [`procs::coordinator_wrapped`]).
    pub fn exec_prefix(&self) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.ns.clone()]
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).arg(program);
        c
    }

    /// Where a coordinator inside listens: its WebSocket on the namespace's address (the
    /// player's way in), QUIC on the namespace's loopback (the worker's).
    pub fn coordinator_addrs(&self) -> CoordinatorAddrs {
        CoordinatorAddrs {
            http: SocketAddr::from((self.ns_ip, COORDINATOR_HTTP_PORT)),
            quic: SocketAddr::from(([127, 0, 0, 1], COORDINATOR_QUIC_PORT)),
        }
    }

    /// A coordinator and one worker (`w1`, zone `local`, the harness's options changed by
    /// `opts`) inside the namespace, logging into `dir`, as [`procs::cluster`] starts them;
    /// returns once the worker has registered. A player joins with
    /// [`crate::player::Player::join_from`] from [`Self::host_ip`].
    pub fn cluster(&self, dir: &Path, opts: impl FnOnce(&mut WorkerOpts)) -> Result<(CoordinatorAddrs, Proc, Proc)> {
        let pki = dir.join("pki");
        let addrs = self.coordinator_addrs();
        let coord = procs::coordinator_wrapped(dir, &pki, addrs, &[], &self.exec_prefix())?;
        let mut o = WorkerOpts::new("w1", "local", &pki);
        o.wrap = self.exec_prefix();
        o.bind_ip = Some(IpAddr::V4(self.ns_ip));
        opts(&mut o);
        let worker = procs::worker(dir, addrs, &o)?;
        worker.wait_log("registered with the coordinator", Duration::from_secs(20))?;
        Ok((addrs, coord, worker))
    }

    /// The conditions in force.
    pub fn conditions(&self) -> Conditions {
        self.lock().conditions
    }

    /// Imposes `c` on the running link.
    pub fn set(&self, c: Conditions) -> Result<()> {
        let mut inner = self.lock();
        let old = inner.conditions;
        // The delay programs listen before their rules send them packets.
        for (i, (queue, d)) in [(rules::QUEUE_OUT, c.delay), (rules::QUEUE_IN, c.ingress_delay)].into_iter().enumerate()
        {
            match &mut inner.delayers[i] {
                Some(running) => running.set(d)?,
                None if !d.is_zero() => inner.delayers[i] = Some(Delayer::start(&self.ns, queue, d)?),
                None => {}
            }
        }
        if c.rate_kbit != old.rate_kbit {
            let args = rules::tc_rate(&self.ns_if, c.rate_kbit);
            self.in_ns("tc", &args.iter().map(String::as_str).collect::<Vec<_>>())
                .with_context(|| format!("setting the rate to {:?} kbit/s", c.rate_kbit))?;
        }
        if rules::iptables_restore(&c) != rules::iptables_restore(&old) {
            // One atomic replacement of both chains.
            self.in_ns_input("iptables-restore", &["--noflush"], &rules::iptables_restore(&c))
                .context("updating the iptables rules")?;
        }
        inner.conditions = c;
        Ok(())
    }

    /// Makes one [`Change`] to the running link.
    pub fn change(&self, change: Change) -> Result<()> {
        let mut c = self.conditions();
        change.apply_to(&mut c);
        self.set(c)
    }

    /// Caps the rate towards the player at `kbit`/s (`None`: no cap).
    pub fn set_rate(&self, kbit: Option<u32>) -> Result<()> {
        self.change(Change::Rate(kbit))
    }

    /// Drops `percent` % of the UDP packets towards the player, at random.
    pub fn set_loss(&self, percent: f64) -> Result<()> {
        self.change(Change::Loss(percent))
    }

    /// Delays UDP packets towards the player by `d` (its jitter uniform, order kept).
    pub fn set_delay(&self, d: Delay) -> Result<()> {
        self.change(Change::Delay(d))
    }

    /// Delays UDP packets from the player by `d`.
    pub fn set_ingress_delay(&self, d: Delay) -> Result<()> {
        self.change(Change::IngressDelay(d))
    }

    /// Starts or ends an outage: every packet dropped, both ways.
    pub fn set_outage(&self, on: bool) -> Result<()> {
        self.change(Change::Outage(on))
    }

    /// An outage of `d`, blocking; returns when it ended.
    pub fn outage(&self, d: Duration) -> Result<Instant> {
        self.set_outage(true)?;
        std::thread::sleep(d);
        self.set_outage(false)?;
        Ok(Instant::now())
    }

    /// Back to a clean link.
    pub fn clear(&self) -> Result<()> {
        self.set(Conditions::default())
    }

    /// Plays `script` on a thread of its own: each change at its offset from now. The thread
    /// returns when each change was made (or the first error).
    pub fn play(
        self: &Arc<Self>,
        script: Vec<(Duration, Change)>,
    ) -> std::thread::JoinHandle<Result<Vec<(Instant, Change)>>> {
        let link = Arc::clone(self);
        let start = Instant::now();
        std::thread::spawn(move || {
            let mut done = vec![];
            for (at, change) in script {
                std::thread::sleep((start + at).saturating_duration_since(Instant::now()));
                link.change(change)?;
                done.push((Instant::now(), change));
            }
            Ok(done)
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `program args` inside the namespace.
    fn in_ns(&self, program: &str, args: &[&str]) -> Result<()> {
        let mut full = vec!["netns", "exec", &self.ns, program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Runs `program args` inside the namespace with `input` on its stdin.
    fn in_ns_input(&self, program: &str, args: &[&str], input: &str) -> Result<()> {
        let mut full = vec!["netns", "exec", &self.ns, program];
        full.extend_from_slice(args);
        run_input("ip", &full, Some(input))
    }
}

impl Drop for NetLink {
    fn drop(&mut self) {
        let delayers = std::mem::take(&mut self.lock().delayers);
        for d in delayers.into_iter().flatten() {
            d.stop();
        }
        // Whatever still runs inside (a coordinator or worker a test leaked) would keep the
        // namespace, and the veth with it, alive.
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.ns]).output() {
            let pids: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
            if !pids.is_empty() {
                let _ = Command::new("kill").arg("-KILL").args(&pids).stderr(Stdio::null()).status();
            }
        }
        let _ = run("ip", &["link", "del", &self.host_if]);
        let _ = run("ip", &["netns", "del", &self.ns]);
    }
}

/// Deletes the namespaces of links whose process died without dropping them (`rf-<pid>-<n>`
/// with no process `pid`).
fn reap_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("rf-") else { continue };
        let Some((pid, n)) = rest.split_once('-') else { continue };
        if pid.parse::<u32>().is_err() || n.parse::<u32>().is_err() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        // Its veth pair goes with it, once nothing runs inside any more.
        let _ = run("ip", &["netns", "del", name]);
    }
}

/// Runs a command; its stderr in the error when it fails.
fn run(program: &str, args: &[&str]) -> Result<()> {
    run_input(program, args, None)
}

fn run_input(program: &str, args: &[&str], input: Option<&str>) -> Result<()> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_program_command_lines() {
        let d = Delay::ms(100, 20);
        assert_eq!(delay_args(0, d).join(" "), "delay --queue 0 --ms 100 --jitter 20");
        assert_eq!(delay_line(Delay { base: Duration::from_micros(2500), jitter: Duration::ZERO }), "2.5 0");
    }

    #[test]
    fn changes_compose() {
        let mut c = Conditions::default();
        for ch in [Change::Rate(Some(1000)), Change::Loss(5.0), Change::Delay(Delay::ms(100, 20)), Change::Outage(true)]
        {
            ch.apply_to(&mut c);
        }
        assert_eq!(
            c,
            Conditions {
                rate_kbit: Some(1000),
                loss_percent: 5.0,
                delay: Delay::ms(100, 20),
                ingress_delay: Delay::default(),
                outage: true
            }
        );
        Change::Outage(false).apply_to(&mut c);
        assert!(!c.outage && c.rate_kbit == Some(1000));
        Change::Clear.apply_to(&mut c);
        assert_eq!(c, Conditions::default());
    }

    #[test]
    fn unavailable_says_why() {
        let e = Unavailable("not root (effective uid 1000)".into());
        assert_eq!(e.to_string(), "network namespaces not permitted here: not root (effective uid 1000)");
    }
}
