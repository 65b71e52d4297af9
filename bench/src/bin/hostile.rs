//! The coordinator under hostile load: simulated workers registered over QUIC and heartbeating,
//! good browser sessions measuring signaling round trips through them, and hostile clients of
//! each kind (slow headers, half-open TCP, oversized messages, malformed JSON, floods,
//! connections beyond the per-address limit), all against one fresh coordinator on loopback;
//! prints what the workers and the good sessions saw, how each hostile kind was treated, and the
//! coordinator's CPU and memory (docs/performance.md, "Hostile load").
//!
//!   target/release/hostile [--good N] [--hostile M] [--workers W] [--zones Z] [--rounds R]
//!                          # default 2000 good, 100 of each hostile kind, 1000 workers, 10 zones, 3
//!   target/release/hostile --quick                 # 200 good, 10 of each kind, 100 workers
//!
//! The workers (hostile/workers.rs) register first, in Z zones with room for twice the good
//! sessions in all (32 rooms each at least), and stay up to the end; the coordinator's cost of
//! them alone is measured for 5 s. A good session asks for one of their zones (`/ws?zone=`),
//! starts a game on one of them and times ICE candidates relayed to it and back. With
//! `--workers 0` the coordinator answers a page's first steps with the `no_free_worker` error,
//! and the good sessions time that answer instead.

#[path = "hostile/load.rs"]
mod load;
#[path = "hostile/workers.rs"]
mod workers;

use std::time::Duration;

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
    let good = arg(&args, "--good")?.unwrap_or(if quick { 200 } else { 2000 });
    let count = arg(&args, "--workers")?.unwrap_or(if quick { 100 } else { 1000 });
    let farm = workers::Plan {
        count,
        zones: arg(&args, "--zones")?.unwrap_or(10),
        // Room for twice the good sessions in all, so that a full farm is never the answer.
        capacity: (2 * good).div_ceil(count.max(1)).max(32) as u32,
        settle: Duration::from_secs(5),
    };
    let plan = load::Plan {
        good,
        hostile_per_kind: arg(&args, "--hostile")?.unwrap_or(if quick { 10 } else { 100 }),
        rounds: arg(&args, "--rounds")?.unwrap_or(3),
        per_ip_limit: 64,
        good_per_ip: 32,
        workers: farm.count > 0,
        zones: farm.zone_names(),
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
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = if farm.count > 0 {
        Some(workers::Farm::start(&farm, coordinator.quic, &coordinator.pki, coordinator.pid()).await?)
    } else {
        None
    };
    let mut report = load::run(&plan, coordinator.http, coordinator.pid()).await?;
    let mut text = load::render(&plan, &mut report);
    if let Some((running, idle)) = started {
        text += &workers::render(&farm, &idle, &running.stop().await?);
    }
    print!("{text}");
    Ok(())
}
