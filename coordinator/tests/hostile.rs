//! The short form of the hostile-load benchmark (bench/src/bin/hostile.rs): a real coordinator
//! process, 100 simulated workers registered over QUIC and heartbeating, 1,000 good browser
//! sessions starting games on them and about 100 hostile clients (slow headers, half-open TCP,
//! oversized messages, malformed JSON, floods, connections beyond the per-address limit).
//! Every worker registers and none is lost or cut off; good sessions see no error; each hostile
//! kind is cut off, refused or answered as docs/protocol.md says; the coordinator's memory goes
//! back down after they leave.

#[path = "../../bench/src/bin/hostile/load.rs"]
mod load;
#[path = "../../bench/src/bin/hostile/workers.rs"]
mod workers;

use std::time::Duration;

use load::{Kind, Outcome};
use retrofarm_proto::ErrorCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_sessions_are_unharmed_by_hostile_clients() {
    let farm = workers::Plan { count: 100, zones: 10, capacity: 32, settle: Duration::from_secs(1) };
    let plan = load::Plan {
        good: 1000,
        hostile_per_kind: 17,
        rounds: 1,
        per_ip_limit: 64,
        good_per_ip: 32,
        workers: true,
        zones: farm.zone_names(),
    };
    // Each side (this process, and the coordinator, which inherits the limit) holds one per client.
    let fds = (plan.good + 6 * plan.hostile_per_kind + plan.per_ip_limit) as u64 + 256;
    let got = load::raise_nofile(fds);
    if got < fds {
        eprintln!("SKIPPED: {fds} file descriptors needed, the hard limit allows {got} (raise `ulimit -Hn`)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let coordinator = load::Coordinator::start(
        env!("CARGO_BIN_EXE_retrofarm-coordinator").as_ref(),
        dir.path(),
        &["--max-connections-per-ip".into(), plan.per_ip_limit.to_string()],
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (running, idle) =
        workers::Farm::start(&farm, coordinator.quic, &coordinator.pki, coordinator.pid()).await.unwrap();
    let mut report = load::run(&plan, coordinator.http, coordinator.pid()).await.unwrap();
    let simulated = running.stop().await.unwrap();
    let text = load::render(&plan, &mut report) + &workers::render(&farm, &idle, &simulated);
    eprintln!("{text}");

    assert_eq!(simulated.registered, farm.count, "not every worker registered:\n{text}");
    assert_eq!(simulated.held, farm.count, "worker links ended during the load:\n{text}");
    assert_eq!(simulated.lost + simulated.closed + simulated.heartbeat_errors, 0, "{text}");
    assert_eq!(simulated.sessions, plan.good as u64, "every good session started a game on a worker:\n{text}");
    assert!(report.good.errors.is_empty(), "good sessions saw errors:\n{text}");
    assert_eq!(report.good.held, plan.good, "{text}");
    assert_eq!(report.good.rtt_us.len(), plan.good * plan.rounds, "{text}");
    let header_deadline = Duration::from_secs(10) + Duration::from_secs(3);
    for (kind, outcomes) in &report.hostile {
        assert_eq!(outcomes.len(), plan.hostile_per_kind, "{kind:?}");
        for o in outcomes {
            let ok = match (kind, o) {
                (Kind::SlowHeaders | Kind::HalfOpen, Outcome::Closed { after, .. }) => *after <= header_deadline,
                (Kind::Oversized, Outcome::Closed { code: Some(1009), errors, .. }) => {
                    errors.contains(&ErrorCode::TooLarge)
                }
                (Kind::Flood, Outcome::Closed { code: Some(1008), errors, after }) => {
                    errors.contains(&ErrorCode::RateLimited) && *after < Duration::from_secs(5)
                }
                (Kind::Malformed, Outcome::Open { errors }) => {
                    errors.iter().filter(|e| **e == ErrorCode::Malformed).count() == 10
                }
                (Kind::OverLimit, Outcome::Refused { status: 429 }) => true,
                _ => false,
            };
            assert!(ok, "{kind:?} treated as {o:?}:\n{text}");
        }
    }
    let c = report.coordinator;
    // RSS is noisy: back to within half the spike (plus 4 MiB) of where it started.
    let spike = c.rss_peak.saturating_sub(c.rss_before);
    assert!(c.rss_after <= c.rss_before + spike / 2 + 4096, "RSS did not come back down:\n{text}");
}
