//! What idle browser sessions cost the coordinator: opens N signaling WebSockets to a fresh
//! coordinator on loopback and leaves them idle, then closes them, and prints the coordinator's
//! resident memory before, with them and after, per session.
//!
//!   target/release/sessions [--sessions N]   # default 2000
//!   target/release/sessions --quick          # 100 sessions, to keep the benchmark from rotting

use std::time::Duration;

use anyhow::{Context, Result};
use retrofarm_bench::procs;

/// The process's resident memory in KiB.
fn rss_kib(pid: i32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse().ok())
        .context("no VmRSS line")
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let n: usize = match args.iter().position(|a| a == "--sessions") {
        Some(i) => args.get(i + 1).context("--sessions N")?.parse()?,
        None if quick => 100,
        None => 2000,
    };
    let dir = tempfile::Builder::new().prefix("retrofarm-sessions-").tempdir()?;
    let (coordinator, http, _) = procs::coordinator(dir.path())?;
    let pid = coordinator.pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid)?;
    let mut sessions = Vec::with_capacity(n);
    for i in 0..n {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
            .await
            .with_context(|| format!("session {i} (raise `ulimit -n` for more)"))?;
        sessions.push(ws);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with = rss_kib(pid)?;
    drop(sessions);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid)?;
    let per = with.saturating_sub(before) as f64 / n as f64;
    println!("== sessions: {n} idle signaling sessions on one coordinator");
    println!("coordinator RSS: {before} KiB before, {with} KiB with them ({per:.1} KiB per session), {after} KiB after they closed");
    Ok(())
}
