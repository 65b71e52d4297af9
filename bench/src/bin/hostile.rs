//! The coordinator under hostile load: good browser sessions measuring a signaling round trip
//! while hostile clients of each kind (slow headers, half-open TCP, oversized messages,
//! malformed JSON, floods, connections beyond the per-address limit) hit a fresh coordinator on
//! loopback; prints what the good sessions saw, how each hostile kind was treated, and the
//! coordinator's CPU and memory (docs/performance.md, "Hostile load").
//!
//!   target/release/hostile [--good N] [--hostile M] [--rounds R]   # default 2000, 100, 3
//!   target/release/hostile --quick                                   # 200 good, 10 of each kind
//!
//! Simulated workers are not part of it: with no worker, the coordinator answers a page's
//! first steps with the `no_free_worker` error, which the good sessions expect.

#[path = "hostile/load.rs"]
mod load;

use anyhow::{Context, Result};
use retrofarm_bench::procs;

fn arg(args: &[String], name: &str) -> Result<Option<usize>> {
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(Some(args.get(i + 1).with_context(|| format!("{name} N"))?.parse()?)),
        None => Ok(None),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let plan = load::Plan {
        good: arg(&args, "--good")?.unwrap_or(if quick { 200 } else { 2000 }),
        hostile_per_kind: arg(&args, "--hostile")?.unwrap_or(if quick { 10 } else { 100 }),
        rounds: arg(&args, "--rounds")?.unwrap_or(3),
        per_ip_limit: 64,
        good_per_ip: 32,
    };
    // Each side (this process, and the coordinator, which inherits the limit) holds one per client.
    let fds = (plan.good + 6 * plan.hostile_per_kind + plan.per_ip_limit) as u64 + 256;
    let got = load::raise_nofile(fds);
    anyhow::ensure!(got >= fds, "{fds} file descriptors needed, {got} allowed: raise `ulimit -n`");
    let dir = tempfile::Builder::new().prefix("retrofarm-hostile-").tempdir()?;
    let coordinator = load::Coordinator::start(
        &procs::bin("retrofarm-coordinator")?,
        dir.path(),
        &["--max-connections-per-ip".into(), plan.per_ip_limit.to_string()],
    )?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut report = load::run(&plan, coordinator.http, coordinator.pid()).await?;
    print!("{}", load::render(&plan, &mut report));
    Ok(())
}
