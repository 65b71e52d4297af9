//! Operators: a real Prometheus scrapes a running coordinator and worker with two rooms
//! streaming, and a real node_exporter (Debian's prometheus-node-exporter, when installed) as
//! the worker host's; every dashboard panel query and alert expression returns a result through
//! Prometheus' HTTP API; frames/sec per GPU matches the rate the rooms ran at; `promtool check
//! metrics` accepts both endpoints.

use std::process::{Command, Stdio};
use std::time::Duration;

use retrofarm_e2e::browser::http_get;
use retrofarm_e2e::player::Player;
use retrofarm_e2e::procs::{self, CoordinatorAddrs, WorkerOpts};

const T: Duration = Duration::from_secs(20);

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn get(url: &str) -> String {
    let (status, body) = http_get(url).await.unwrap();
    assert_eq!(status, 200, "{url}: {body}");
    body
}

/// An instant query's single value.
async fn query_value(prom: &str, expr: &str) -> Option<f64> {
    let q: String = expr
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let body = get(&format!("{prom}/api/v1/query?query={q}")).await;
    let at = body.find("\"value\":[")?;
    let v = body[at..].split('"').nth(3)?;
    v.parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_and_every_dashboard_and_alert_query_answers() {
    if !have("prometheus") || !have("promtool") {
        eprintln!("SKIP: needs Debian's prometheus package (scripts/setup.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let addrs = CoordinatorAddrs::fresh();
    let coord = procs::coordinator(dir.path(), &pki, addrs, &[]).unwrap();
    let worker = procs::worker(dir.path(), addrs, &WorkerOpts::new("w1", "eu", &pki)).unwrap();
    worker.wait_log("registered with the coordinator", T).unwrap();
    let (coord_metrics, worker_metrics) = (coord.metrics_addr().unwrap(), worker.metrics_addr().unwrap());

    // promtool accepts both exposition endpoints.
    for target in [format!("http://{coord_metrics}/metrics"), format!("http://{worker_metrics}/metrics")] {
        let text = get(&target).await;
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics {target}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Two rooms streaming to one viewer each.
    let mut p1 = Player::join(addrs, None, 1).await;
    let mut p2 = Player::join(addrs, None, 1).await;

    // The host's node_exporter, job "node", for the worker dashboard's "Host" row (CPU, network
    // out, memory), as the Ansible roles install it on every host. Without the package those
    // panels are left out of the check below, and the test says so.
    let node_addr = have("prometheus-node-exporter").then(|| format!("127.0.0.1:{}", procs::tcp_port()));
    let mut node = node_addr.as_ref().map(|addr| {
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("node_exporter.log")).unwrap())
            .spawn()
            .unwrap()
    });
    let _node = node.as_mut().map(scopeguard);
    if node_addr.is_none() {
        eprintln!(
            "SKIP (host panels only): prometheus-node-exporter is not installed (scripts/setup.sh installs it); \
             the worker dashboard's node_exporter queries are not checked"
        );
    }

    // A real Prometheus on loopback with its own storage, scraping every second. Targets carry
    // `instance` (the host's name) and `zone` as the monitoring role's configuration gives them.
    let prom_addr = format!("127.0.0.1:{}", procs::tcp_port());
    let cfg = dir.path().join("prometheus.yml");
    let rules = retrofarm_e2e::repo_root().join("monitoring/alerts.yml");
    let mut config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: ['{}']\nscrape_configs:\n  - job_name: retrofarm-coordinator\n    static_configs: [{{targets: ['{}'], labels: {{instance: coord-1}}}}]\n  - job_name: retrofarm-worker\n    static_configs: [{{targets: ['{}'], labels: {{instance: w1, zone: eu}}}}]\n",
        rules.display(),
        coord_metrics,
        worker_metrics
    );
    if let Some(addr) = &node_addr {
        config += &format!(
            "  - job_name: node\n    static_configs: [{{targets: ['{addr}'], labels: {{instance: w1, zone: eu}}}}]\n"
        );
    }
    std::fs::write(&cfg, config).unwrap();
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address={prom_addr}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .unwrap();
    let prom = scopeguard(&mut prom);
    let base = format!("http://{prom_addr}");

    // Let the rooms run while Prometheus collects; the viewers do receive them.
    let (w1, w2) = tokio::join!(p1.watch(Duration::from_secs(20)), p2.watch(Duration::from_secs(20)));
    assert!(w1.0 > 300 && w2.0 > 300, "viewers received {} and {} frames in 20 s", w1.0, w2.0);

    // Frames/sec per GPU is one rate(): with the frames left out as repeats of the one before,
    // it matches the rate the rooms ran at (two rooms at the core's frame rate, which the worker
    // logs) within 5%, and the emulators' own count.
    let core_fps: f64 = worker
        .log()
        .split("fps=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("worker logs the core's fps");
    let ran_at = 2.0 * core_fps;
    // Both services export their process's figures (CPU, memory, open files).
    for job in ["retrofarm-coordinator", "retrofarm-worker"] {
        let rss = query_value(&base, &format!("process_resident_memory_bytes{{job=\"{job}\"}}")).await;
        assert!(rss.is_some_and(|b| b > 1e6), "{job}'s process_resident_memory_bytes: {rss:?}");
        let cpu = query_value(&base, &format!("process_cpu_seconds_total{{job=\"{job}\"}}")).await;
        // Whole seconds in the prometheus crate: an idle coordinator may still show 0.
        assert!(cpu.is_some_and(|s| s >= 0.0), "{job}'s process_cpu_seconds_total: {cpu:?}");
    }
    let encoded = query_value(&base, "sum by (instance, gpu) (rate(retrofarm_frames_encoded_total[10s]))")
        .await
        .expect("frames/sec per GPU");
    let repeated = query_value(&base, "sum by (instance, gpu) (rate(retrofarm_frames_repeated_total[10s]))")
        .await
        .expect("repeated frames/sec per GPU");
    let per_gpu = encoded + repeated;
    let emulated = query_value(&base, "sum(rate(retrofarm_frames_emulated_total[10s]))").await.expect("emulated rate");
    assert!(
        (per_gpu - ran_at).abs() / ran_at < 0.05,
        "encoded {encoded:.1} + repeated {repeated:.1} fps per GPU, rooms ran at {ran_at:.1} fps"
    );
    assert!((emulated - ran_at).abs() / ran_at < 0.05, "emulated {emulated:.1} fps, rooms ran at {ran_at:.1} fps");

    // Every panel query and alert expression answers (no GPU here: the DCGM exporter's are
    // left out; so are node_exporter's without the package).
    let mut ignore = vec!["--ignore", "^DCGM_"];
    if node_addr.is_none() {
        ignore.extend(["--ignore", "^node_"]);
    }
    let out = Command::new("python3")
        .arg(retrofarm_e2e::repo_root().join("monitoring/queries.py"))
        .args(["run", &base, "--retry-for", "30"])
        .args(&ignore)
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "queries without data:\n{report}\nprometheus log:\n{}",
        std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
    );
    drop(prom);
}

/// Kills the child when the test ends, however it ends.
fn scopeguard(child: &mut std::process::Child) -> impl Drop + '_ {
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    Kill(child)
}
