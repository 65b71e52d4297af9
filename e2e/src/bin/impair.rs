//! `impair`: the network tests' helpers, run inside a test's network namespace with
//! `ip netns exec` (e2e/src/netns.rs, docs/network-tests.md).
//!
//! ```text
//! impair delay --queue N --ms BASE [--jitter J] [--reorder] [--seed S]
//! impair echo --bind ADDR
//! impair blast --to ADDR --kbit RATE --secs S [--size BYTES]
//! ```
//!
//! - `delay` listens on NFQUEUE queue `N` (iptables `-j NFQUEUE --queue-num N --queue-bypass`)
//!   and accepts each packet `BASE` ± uniform `J` ms after it came, in arrival order unless
//!   `--reorder`. It prints `ready` once bound; each line `BASE JITTER` (ms) on its stdin
//!   changes the delay of the packets that come next; at the end of its stdin it lets every
//!   held packet go and exits. The queue fails open: a full queue passes packets undelayed.
//! - `echo` sends every UDP datagram back to where it came from; prints `ready ADDR`.
//! - `blast` sends UDP datagrams of `BYTES` (default 1200; the first 8 carry a sequence
//!   number) to `ADDR` at `RATE` kbit/s for `S` seconds, then prints `sent N packets B bytes`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufRead, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use retrofarm_e2e::netns::delay::{Delay, Schedule};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("delay") => delay(&args[1..]),
        Some("echo") => echo(&args[1..]),
        Some("blast") => blast(&args[1..]),
        _ => Err(anyhow::anyhow!("usage: impair delay|echo|blast … (see the source's header)")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("impair: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The value after `name`, parsed.
fn opt<T: std::str::FromStr>(args: &[String], name: &str) -> Result<Option<T>> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => {
            let v = args.get(i + 1).with_context(|| format!("{name} needs a value"))?;
            v.parse().map(Some).map_err(|_| anyhow::anyhow!("{name} {v}: not a valid value"))
        }
    }
}

fn req<T: std::str::FromStr>(args: &[String], name: &str) -> Result<T> {
    opt(args, name)?.with_context(|| format!("{name} is required"))
}

/// `BASE JITTER` in ms.
fn parse_delay(line: &str) -> Result<Delay> {
    let mut it = line.split_whitespace().map(str::parse::<f64>);
    let base = it.next().context("no delay")?.context("the delay is not a number")?;
    let jitter = it.next().transpose().context("the jitter is not a number")?.unwrap_or(0.0);
    if !(base >= 0.0 && jitter >= 0.0) {
        bail!("negative delay {line:?}");
    }
    Ok(Delay { base: Duration::from_secs_f64(base / 1000.0), jitter: Duration::from_secs_f64(jitter / 1000.0) })
}

/// A packet waiting for its verdict.
struct Held {
    at: Instant,
    seq: u64,
    msg: nfq::Message,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// The longest the loop sleeps: how late a packet may leave, and how soon a change is seen.
const TICK: Duration = Duration::from_micros(500);

fn delay(args: &[String]) -> Result<()> {
    let queue: u16 = req(args, "--queue")?;
    let d = parse_delay(&format!("{} {}", req::<f64>(args, "--ms")?, opt::<f64>(args, "--jitter")?.unwrap_or(0.0)))?;
    let seed = opt(args, "--seed")?.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |t| t.as_nanos() as u64)
    });
    let mut schedule = Schedule::new(d, args.iter().any(|a| a == "--reorder"), seed);

    let mut q = nfq::Queue::open().context("opening a netfilter queue socket")?;
    q.bind(queue).with_context(|| format!("binding NFQUEUE {queue} (is another listener on it?)"))?;
    // Metadata only: the packets go out unchanged.
    q.set_copy_range(queue, 0)?;
    q.set_fail_open(queue, true)?;
    q.set_queue_max_len(queue, 16_384)?;
    q.set_nonblocking(true);

    let (tx, changes) = mpsc::channel::<Option<Delay>>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            match parse_delay(&line) {
                Ok(d) => {
                    let _ = tx.send(Some(d));
                }
                Err(e) => eprintln!("impair: ignoring {line:?}: {e:#}"),
            }
        }
        let _ = tx.send(None);
    });
    println!("ready");
    std::io::stdout().flush()?;

    let mut held = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        loop {
            match changes.try_recv() {
                Ok(Some(d)) => schedule.set_delay(d),
                Err(mpsc::TryRecvError::Empty) => break,
                Ok(None) | Err(mpsc::TryRecvError::Disconnected) => {
                    // Stdin closed: let everything go and leave.
                    while let Some(Reverse(h)) = held.pop() {
                        let Held { msg, .. } = h;
                        q.verdict(msg)?;
                    }
                    return Ok(());
                }
            }
        }
        let now = Instant::now();
        loop {
            match q.recv() {
                Ok(msg) => {
                    seq += 1;
                    held.push(Reverse(Held { at: schedule.release(now), seq, msg }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("receiving from the queue"),
            }
        }
        let now = Instant::now();
        while held.peek().is_some_and(|Reverse(h)| h.at <= now) {
            let Some(Reverse(Held { msg, .. })) = held.pop() else { break };
            // The default verdict is ACCEPT.
            q.verdict(msg).context("accepting a packet")?;
        }
        let next = held.peek().map_or(TICK, |Reverse(h)| h.at.saturating_duration_since(now));
        std::thread::sleep(next.min(TICK));
    }
}

fn echo(args: &[String]) -> Result<()> {
    let bind: SocketAddr = req(args, "--bind")?;
    let socket = UdpSocket::bind(bind).with_context(|| format!("binding {bind}"))?;
    println!("ready {}", socket.local_addr()?);
    std::io::stdout().flush()?;
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = socket.recv_from(&mut buf)?;
        let _ = socket.send_to(&buf[..n], from);
    }
}

fn blast(args: &[String]) -> Result<()> {
    let to: SocketAddr = req(args, "--to")?;
    let kbit: f64 = req(args, "--kbit")?;
    let secs: f64 = req(args, "--secs")?;
    let size: usize = opt(args, "--size")?.unwrap_or(1200).max(8);
    let socket = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
    socket.connect(to)?;
    let interval = Duration::from_secs_f64(size as f64 * 8.0 / (kbit * 1000.0));
    let (start, length) = (Instant::now(), Duration::from_secs_f64(secs));
    let mut payload = vec![0u8; size];
    let (mut sent, mut bytes) = (0u64, 0u64);
    loop {
        let at = start + interval.mul_f64(sent as f64);
        if at >= start + length {
            break;
        }
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        payload[..8].copy_from_slice(&sent.to_be_bytes());
        // A full queue on the way (the rate cap) may refuse it: that is the point.
        if socket.send(&payload).is_ok() {
            bytes += size as u64;
        }
        sent += 1;
    }
    println!("sent {sent} packets {bytes} bytes");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_lines() {
        assert_eq!(parse_delay("100 20").unwrap(), Delay::ms(100, 20));
        assert_eq!(parse_delay(" 2.5 ").unwrap(), Delay { base: Duration::from_micros(2500), jitter: Duration::ZERO });
        assert!(parse_delay("").is_err());
        assert!(parse_delay("-1 0").is_err());
        assert!(parse_delay("x").is_err());
    }

    #[test]
    fn options() {
        let a: Vec<String> = ["--queue", "3", "--ms", "x"].map(String::from).to_vec();
        assert_eq!(req::<u16>(&a, "--queue").unwrap(), 3);
        assert!(req::<f64>(&a, "--ms").is_err());
        assert!(opt::<f64>(&a, "--jitter").unwrap().is_none());
        assert!(req::<f64>(&a, "--kbit").is_err());
    }
}
