//! `density`: how many NES rooms one worker host holds at full rate, against how many the same
//! host can merely emulate.
//!
//! 1. A real coordinator and worker (the binaries built beside this one) run N rooms of the
//!    benchmark ROM, each with one WebRTC receiver (str0m, SRTP on loopback) sending the
//!    scripted input every 100 ms. N ramps up (4, 8, 12, …); per step it prints the CPU of the
//!    worker and its emulator children, late and dropped frames (worker /metrics deltas),
//!    emulated → sent latency (histogram deltas), and memory per room.
//! 2. The same core and ROM in N bare paced emulators (no encoding, no network), same ramp.
//!
//! The limit of each is the largest N whose late + dropped frames stay under 1 %. Prints both
//! and their ratio. Every row also shows the host's share: "other" (CPU this VM's other
//! processes used) and steal time (CPU the hypervisor gave to someone else, from /proc/stat).
//! When the host, not the worker, set the limit (steal above 5 % of the machine in the step
//! that missed, or bare emulators that miss their first step) the summary says so.
//! `--quick`: one short step of 2 rooms each (CI). Flags: `--start N --step N --max N
//! --emu-max N --window SECS --settle SECS`; `--gpu MODE --video-scale N` are passed to the
//! worker, which then also reports how many rooms each GPU dispatch converted and how long
//! frames waited for their batch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use retrofarm_bench::procs::Cluster;
use retrofarm_bench::prom::{self, Scrape};
use retrofarm_bench::sysstat::{self, MachineCpu};
use retrofarm_bench::{arg, games, quick};
use retrofarm_e2e::browser::Browser;
use retrofarm_e2e::rtc::{RtcClient, RtcEvent};
use retrofarm_emulator::{Emulator, EmulatorConfig};
use retrofarm_proto::browser::{ClientMsg, ServerMsg};
use retrofarm_proto::input::PadState;
use str0m::media::MediaKind;

const T: Duration = Duration::from_secs(20);
/// The pass mark: late + dropped frames under this share of emulated frames.
const MAX_BAD: f64 = 0.01;

#[derive(Debug, Clone, Copy)]
struct Plan {
    start: usize,
    step: usize,
    max: usize,
    emu_max: usize,
    window: Duration,
    settle: Duration,
}

impl Plan {
    fn from_args() -> Self {
        let q = quick();
        let secs = |name: &str, d: f64| Duration::from_secs_f64(arg::<f64>(name).unwrap_or(d));
        Self {
            start: arg("--start").unwrap_or(if q { 2 } else { 4 }),
            step: arg("--step").unwrap_or(4),
            max: arg("--max").unwrap_or(if q { 2 } else { 80 }),
            emu_max: arg("--emu-max").unwrap_or(if q { 2 } else { 160 }),
            window: secs("--window", if q { 2.0 } else { 10.0 }),
            settle: secs("--settle", if q { 1.0 } else { 3.0 }),
        }
    }

    fn steps(&self, max: usize) -> impl Iterator<Item = usize> {
        let (start, step) = (self.start.max(1), self.step.max(1));
        (0..).map(move |i| start + i * step).take_while(move |&n| n <= max)
    }
}

/// What one receiving peer has seen.
#[derive(Debug, Default)]
struct PeerStats {
    video: AtomicU64,
    audio: AtomicU64,
    bytes: AtomicU64,
    gone: AtomicBool,
}

/// A room with its one viewer: the signaling socket is held (closing it ends the session) and
/// a task plays the input script and counts what arrives.
struct Viewer {
    stats: Arc<PeerStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn join(ws_url: &str, game: &str, index: usize) -> Result<Viewer> {
    let mut browser = Browser::connect(ws_url).await?;
    let workers = browser
        .recv_until(T, |m| match m {
            ServerMsg::CheckLatency { workers } => Some(workers.clone()),
            _ => None,
        })
        .await?;
    browser.answer_latency(&workers).await?;
    browser.recv_until(T, |m| matches!(m, ServerMsg::Init { .. }).then_some(())).await?;
    browser.send(&ClientMsg::StartGame { game: game.into(), room: None, port: 1 }).await?;
    browser
        .recv_until(T, |m| match m {
            ServerMsg::GameStarted { .. } => Some(Ok(())),
            ServerMsg::Error { code, message } => Some(Err(format!("{code:?}: {message}"))),
            _ => None,
        })
        .await?
        .map_err(|e| anyhow::anyhow!("room {index} did not start: {e}"))?;
    let offer = browser
        .recv_until(T, |m| match m {
            ServerMsg::Offer { sdp } => Some(sdp.clone()),
            _ => None,
        })
        .await?;
    let mut peer = RtcClient::answer(&offer).await?;
    browser.send(&ClientMsg::Answer { sdp: peer.answer.clone() }).await?;
    browser.send(&ClientMsg::Ice { candidate: Some(peer.candidate.clone()) }).await?;
    peer.wait_for(T, |e| matches!(e, RtcEvent::ChannelOpen(l) if l == "input").then_some(()))
        .await
        .with_context(|| format!("room {index}: the input channel never opened"))?;
    let stats = Arc::new(PeerStats::default());
    let s = stats.clone();
    let task = tokio::spawn(async move {
        let _browser = browser;
        let start = Instant::now();
        let offset = index as u64 * 97;
        let mut seq = 0u16;
        loop {
            // The whole pad state every 100 ms, as the web page does.
            let frame = start.elapsed().as_millis() as u64 * 60 / 1000;
            seq = seq.wrapping_add(1);
            let pad =
                PadState { seq, buttons: games::scripted_buttons(frame, offset), axes: [0; 4], ..Default::default() };
            peer.send_input(pad.encode());
            for ev in peer.collect(Duration::from_millis(100)).await {
                match ev {
                    RtcEvent::Media { kind: MediaKind::Video, data, .. } => {
                        s.video.fetch_add(1, Ordering::Relaxed);
                        s.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                    RtcEvent::Media { kind: MediaKind::Audio, .. } => {
                        s.audio.fetch_add(1, Ordering::Relaxed);
                    }
                    RtcEvent::Disconnected => s.gone.store(true, Ordering::Relaxed),
                    _ => {}
                }
            }
        }
    });
    Ok(Viewer { stats, task })
}

/// Everything read at the start and end of a window.
struct Snapshot {
    at: Instant,
    metrics: Scrape,
    worker_cpu: Duration,
    children: Vec<(i32, Duration)>,
    self_cpu: Duration,
    machine: MachineCpu,
    video: Vec<u64>,
}

impl Snapshot {
    fn take(cluster: &Cluster, viewers: &[Viewer]) -> Result<Self> {
        let pid = cluster.worker.pid();
        Ok(Self {
            at: Instant::now(),
            metrics: prom::fetch(cluster.worker_metrics)?,
            worker_cpu: sysstat::cpu(pid).context("worker is gone")?,
            children: sysstat::children(pid).into_iter().filter_map(|c| Some((c, sysstat::cpu(c)?))).collect(),
            self_cpu: sysstat::self_cpu(),
            machine: MachineCpu::now(),
            video: viewers.iter().map(|v| v.stats.video.load(Ordering::Relaxed)).collect(),
        })
    }
}

/// One step's figures.
#[derive(Debug, Clone, Copy, Default)]
struct Step {
    n: usize,
    worker_cores: f64,
    emu_cores: f64,
    peer_cores: f64,
    other_cores: f64,
    steal_cores: f64,
    /// Steal as a share (0..=1) of the machine's CPU time.
    steal_share: f64,
    emulated: f64,
    late: f64,
    dropped: f64,
    repeated: f64,
    sent_p50_ms: f64,
    sent_p99_ms: f64,
    encoded_p50_ms: f64,
    encoded_p99_ms: f64,
    rx_fps_min: f64,
    pss_per_room_mib: f64,
    rss_per_room_mib: f64,
    emu_pss_mib: f64,
}

impl Step {
    fn bad_share(&self) -> f64 {
        if self.emulated > 0.0 {
            (self.late + self.dropped) / self.emulated
        } else {
            1.0
        }
    }
    fn held(&self) -> bool {
        self.emulated > 0.0 && self.bad_share() < MAX_BAD
    }
}

fn delta_cpu(before: &[(i32, Duration)], after: &[(i32, Duration)]) -> Duration {
    after.iter().filter_map(|(pid, t)| before.iter().find(|(p, _)| p == pid).map(|(_, b)| t.saturating_sub(*b))).sum()
}

async fn measure_worker(cluster: &Cluster, viewers: &[Viewer], window: Duration) -> Result<Step> {
    let a = Snapshot::take(cluster, viewers)?;
    tokio::time::sleep(window).await;
    let b = Snapshot::take(cluster, viewers)?;
    let wall = b.at - a.at;
    let secs = wall.as_secs_f64();
    let d = |name: &str, want: &[(&str, &str)]| b.metrics.sum(name, want) - a.metrics.sum(name, want);
    let hist = |stage: &str| {
        let want = [("stage", stage)];
        prom::bucket_delta(
            &b.metrics.buckets("retrofarm_stage_latency_seconds", &want),
            &a.metrics.buckets("retrofarm_stage_latency_seconds", &want),
        )
    };
    let sent = hist("sent");
    let encoded = hist("encoded");
    let worker_cores = b.worker_cpu.saturating_sub(a.worker_cpu).as_secs_f64() / secs;
    let emu_cores = delta_cpu(&a.children, &b.children).as_secs_f64() / secs;
    let peer_cores = b.self_cpu.saturating_sub(a.self_cpu).as_secs_f64() / secs;
    let machine = b.machine.busy_cores_since(&a.machine, wall);
    let rx_fps_min = a.video.iter().zip(&b.video).map(|(x, y)| (y - x) as f64 / secs).fold(f64::INFINITY, f64::min);
    let pid = cluster.worker.pid();
    let kids = sysstat::children(pid);
    let n = viewers.len().max(1) as f64;
    let mib = |k: u64| k as f64 / 1024.0;
    let emu_pss: u64 = kids.iter().filter_map(|&c| sysstat::pss_kib(c)).sum();
    let emu_rss: u64 = kids.iter().filter_map(|&c| sysstat::rss_kib(c)).sum();
    let worker_pss = sysstat::pss_kib(pid).unwrap_or(0);
    let worker_rss = sysstat::rss_kib(pid).unwrap_or(0);
    Ok(Step {
        n: viewers.len(),
        worker_cores,
        emu_cores,
        peer_cores,
        other_cores: (machine - worker_cores - emu_cores - peer_cores).max(0.0),
        steal_cores: b.machine.steal_cores_since(&a.machine, wall),
        steal_share: b.machine.steal_share_since(&a.machine),
        emulated: d("retrofarm_frames_emulated_total", &[]),
        late: d("retrofarm_frames_late_total", &[]),
        dropped: d("retrofarm_frames_dropped_total", &[]),
        repeated: d("retrofarm_frames_repeated_total", &[]),
        sent_p50_ms: prom::quantile(&sent, 0.5) * 1e3,
        sent_p99_ms: prom::quantile(&sent, 0.99) * 1e3,
        encoded_p50_ms: prom::quantile(&encoded, 0.5) * 1e3,
        encoded_p99_ms: prom::quantile(&encoded, 0.99) * 1e3,
        rx_fps_min,
        pss_per_room_mib: mib(emu_pss + worker_pss) / n,
        rss_per_room_mib: mib(emu_rss + worker_rss) / n,
        emu_pss_mib: mib(emu_pss) / kids.len().max(1) as f64,
    })
}

fn print_worker_header() {
    println!(
        "{:>4} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>8} {:>7} {:>7}",
        "N",
        "worker",
        "emus",
        "peers",
        "other",
        "late%",
        "drop%",
        "rep%",
        "sent50",
        "sent99",
        "enc50",
        "enc99",
        "rxfps",
        "PSS/room",
        "RSS/room",
        "emu PSS",
        "steal",
        "steal%"
    );
    println!(
        "{:>4} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>8} {:>7} {:>7}",
        "",
        "cores",
        "cores",
        "cores",
        "cores",
        "",
        "",
        "",
        "ms",
        "ms",
        "ms",
        "ms",
        "min",
        "MiB",
        "MiB",
        "MiB",
        "cores",
        "machine"
    );
}

/// Cores other processes used beyond which a step's figures are suspect.
const BUSY_OTHER: f64 = 0.25;
/// Steal time (share of the machine's CPU time) beyond which a step's figures are the host's:
/// the hypervisor, not the load, made frames late.
const HOST_STEAL: f64 = 0.05;

/// What the host took during a step, where it is enough to spoil the step's figures.
fn busy(other: f64, steal_share: f64) -> String {
    let mut note = String::new();
    if other > BUSY_OTHER {
        note += &format!(" [host busy: other processes used {other:.2} cores]");
    }
    if steal_share > HOST_STEAL {
        note += &format!(" [host steal: {:.1}% of the machine]", 100.0 * steal_share);
    }
    note
}

fn print_worker_row(s: &Step, verdict: &str) {
    let pct = |x: f64| if s.emulated > 0.0 { 100.0 * x / s.emulated } else { f64::NAN };
    println!(
        "{:>4} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7.1} {:>9.1} {:>9.1} {:>8.1} {:>7.2} {:>7.1}  {verdict}{}",
        s.n,
        s.worker_cores,
        s.emu_cores,
        s.peer_cores,
        s.other_cores,
        pct(s.late),
        pct(s.dropped),
        pct(s.repeated),
        s.sent_p50_ms,
        s.sent_p99_ms,
        s.encoded_p50_ms,
        s.encoded_p99_ms,
        s.rx_fps_min,
        s.pss_per_room_mib,
        s.rss_per_room_mib,
        s.emu_pss_mib,
        s.steal_cores,
        100.0 * s.steal_share,
        busy(s.other_cores, s.steal_share),
    );
}

/// Ramps the worker; returns every measured step and the largest N held.
async fn worker_ramp(plan: &Plan, rom: &std::path::Path) -> Result<(Vec<Step>, usize)> {
    let (games_dir, game) = games::games_dir(rom, "bench")?;
    let mut extra: Vec<String> = ["--cpu-budget-cores", "64", "--max-rooms", "200"].map(String::from).to_vec();
    // `--gpu MODE` and `--video-scale N` go to the worker as they are.
    for flag in ["--gpu", "--video-scale"] {
        if let Some(v) = arg::<String>(flag) {
            extra.extend([flag.to_string(), v]);
        }
    }
    let cluster = Cluster::start(games_dir.path(), &extra)?;
    println!("worker pid {}, metrics on http://{}/metrics", cluster.worker.pid(), cluster.worker_metrics);
    print_worker_header();
    let mut viewers: Vec<Viewer> = vec![];
    let mut steps = vec![];
    let mut held = 0;
    for n in plan.steps(plan.max) {
        while viewers.len() < n {
            let v = join(&cluster.ws_url(), &game, viewers.len()).await.with_context(|| {
                format!("starting room {} of {n}; worker log:\n{}", viewers.len() + 1, tail(&cluster.worker.log(), 30))
            })?;
            viewers.push(v);
        }
        tokio::time::sleep(plan.settle).await;
        let mut s = measure_worker(&cluster, &viewers, plan.window).await?;
        if !s.held() {
            // One retry: a neighbour's compile job can spoil a window on a small host.
            print_worker_row(&s, "missed, measuring again");
            s = measure_worker(&cluster, &viewers, plan.window).await?;
        }
        let gone = viewers.iter().filter(|v| v.stats.gone.load(Ordering::Relaxed)).count();
        let ok = s.held() && gone == 0;
        print_worker_row(&s, if ok { "held" } else { "MISSED" });
        if gone > 0 {
            println!("     {gone} viewer(s) disconnected");
        }
        steps.push(s);
        if !ok {
            break;
        }
        held = n;
    }
    let scrape = prom::fetch(cluster.worker_metrics)?;
    let gpu_frames = scrape.sum("retrofarm_gpu_frames_converted_total", &[]);
    if gpu_frames > 0.0 {
        let batches = scrape.sum("retrofarm_gpu_batches_total", &[]);
        let wait = scrape.sum("retrofarm_gpu_wait_seconds_total", &[]);
        println!(
            "gpu: {gpu_frames:.0} frames converted in {batches:.0} dispatches ({:.1} rooms per dispatch); \
             mean wait for the batch {:.2} ms (coalescing window plus dispatch)",
            gpu_frames / batches.max(1.0),
            1e3 * wait / gpu_frames
        );
    }
    let rooms = scrape.sum("retrofarm_rooms", &[]);
    if rooms as usize != viewers.len() {
        println!("warning: the worker reports {rooms} rooms, expected {}", viewers.len());
    }
    drop(viewers);
    Ok((steps, held))
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// One step of the emulation-only ramp.
#[derive(Debug, Clone, Copy)]
struct EmuStep {
    n: usize,
    cores: f64,
    other_cores: f64,
    steal_cores: f64,
    /// Steal as a share (0..=1) of the machine's CPU time.
    steal_share: f64,
    published: u64,
    late: u64,
}

impl EmuStep {
    fn held(&self) -> bool {
        self.published > 0 && (self.late as f64) < MAX_BAD * self.published as f64
    }
    fn late_pct(&self) -> f64 {
        100.0 * self.late as f64 / self.published.max(1) as f64
    }
}

/// Ramps bare paced emulators (no encoding, no network); input is set every 100 ms like the
/// viewers do. Blocking: run it off the async runtime.
fn emulation_ramp(plan: &Plan, core: &std::path::Path, rom: &std::path::Path) -> Result<(Vec<EmuStep>, usize)> {
    let emus: Arc<std::sync::Mutex<Vec<Emulator>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let input = {
        let (emus, stop) = (emus.clone(), stop.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let frame = start.elapsed().as_millis() as u64 * 60 / 1000;
                for (i, e) in emus.lock().expect("emulators").iter().enumerate() {
                    let _ = e.set_input(1, games::scripted_buttons(frame, i as u64 * 97), [0; 4]);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    println!("{:>4} {:>7} {:>7} {:>7} {:>7} {:>7}", "N", "cores", "other", "late%", "steal", "steal%");
    let mut steps = vec![];
    let mut held = 0;
    let result = (|| -> Result<()> {
        for n in plan.steps(plan.emu_max) {
            while emus.lock().expect("emulators").len() < n {
                let mut cfg = EmulatorConfig::core(core, rom);
                cfg.options = games::core_options();
                let e = Emulator::spawn(cfg).context("starting an emulator")?;
                emus.lock().expect("emulators").push(e);
            }
            std::thread::sleep(plan.settle);
            let measure = || -> EmuStep {
                let read = || {
                    let v = emus.lock().expect("emulators");
                    let c: Vec<_> = v.iter().map(|e| e.counters()).collect();
                    let cpu: Duration = v.iter().filter_map(|e| sysstat::cpu(e.pid() as i32)).sum();
                    (
                        c.iter().map(|c| c.frames_published).sum::<u64>(),
                        c.iter().map(|c| c.frames_late).sum::<u64>(),
                        cpu,
                        MachineCpu::now(),
                        Instant::now(),
                    )
                };
                let (p0, l0, c0, m0, t0) = read();
                std::thread::sleep(plan.window);
                let (p1, l1, c1, m1, t1) = read();
                let wall = t1 - t0;
                let cores = c1.saturating_sub(c0).as_secs_f64() / wall.as_secs_f64();
                let machine = m1.busy_cores_since(&m0, wall);
                EmuStep {
                    n,
                    cores,
                    other_cores: (machine - cores).max(0.0),
                    steal_cores: m1.steal_cores_since(&m0, wall),
                    steal_share: m1.steal_share_since(&m0),
                    published: p1 - p0,
                    late: l1 - l0,
                }
            };
            let row = |s: &EmuStep, verdict: &str| {
                println!(
                    "{:>4} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.1}  {verdict}{}",
                    s.n,
                    s.cores,
                    s.other_cores,
                    s.late_pct(),
                    s.steal_cores,
                    100.0 * s.steal_share,
                    busy(s.other_cores, s.steal_share)
                );
            };
            let mut s = measure();
            if !s.held() {
                row(&s, "missed, measuring again");
                s = measure();
            }
            row(&s, if s.held() { "held" } else { "MISSED" });
            steps.push(s);
            if !s.held() {
                break;
            }
            held = n;
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    let _ = input.join();
    emus.lock().expect("emulators").clear();
    result.map(|()| (steps, held))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // Interrupted, the run is dropped: the coordinator, worker and emulators go with it.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let finished = tokio::select! {
        r = run() => Some(r),
        _ = tokio::signal::ctrl_c() => None,
        _ = term.recv() => None,
    };
    match finished {
        Some(r) => r,
        None => {
            // Bare emulators still running in a blocking thread follow their parent out.
            eprintln!("density: interrupted");
            std::process::exit(130)
        }
    }
}

async fn run() -> Result<()> {
    let plan = Plan::from_args();
    let rom = games::rom();
    let Some(core) = games::core_or_skip("density") else { return Ok(()) };
    println!("== density: rooms of {} ({})", rom.file_name().unwrap_or_default().to_string_lossy(), core.display());
    println!(
        "host: {} × {} CPUs; load average {:.2} at start; window {:?}, settle {:?}{}",
        sysstat::cpu_model(),
        sysstat::cpus(),
        sysstat::loadavg(),
        plan.window,
        plan.settle,
        if quick() { " (quick)" } else { "" }
    );
    println!("\n-- worker: N rooms, one WebRTC viewer each (cores = CPU time / wall time)");
    let (wsteps, wheld) = worker_ramp(&plan, &rom).await?;
    println!("\n-- emulation only: N paced emulator processes, no encoding or network");
    let p = plan;
    let (c, r) = (core.clone(), rom.clone());
    let (esteps, eheld) = tokio::task::spawn_blocking(move || emulation_ramp(&p, &c, &r)).await??;

    println!("\n== density summary (load average now {:.2})", sysstat::loadavg());
    let worst = wsteps.iter().map(|s| s.other_cores).chain(esteps.iter().map(|s| s.other_cores)).fold(0.0, f64::max);
    if worst > BUSY_OTHER {
        println!(
            "WARNING: other processes used up to {worst:.2} cores during the run: the limits below are understated"
        );
    }
    let worst_steal =
        wsteps.iter().map(|s| s.steal_share).chain(esteps.iter().map(|s| s.steal_share)).fold(0.0, f64::max);
    if worst_steal > HOST_STEAL {
        println!(
            "WARNING: steal time reached {:.1}% of the machine during the run (the hypervisor gave this VM's CPUs to others): the limits below are understated",
            100.0 * worst_steal
        );
    }
    let capped =
        |held: usize, last: Option<usize>| if last == Some(held) { " (the ramp's maximum: raise --max)" } else { "" };
    let wlast = wsteps.last().map(|s| s.n).filter(|_| wsteps.last().is_some_and(Step::held));
    let elast = esteps.last().map(|s| s.n).filter(|_| esteps.last().is_some_and(EmuStep::held));
    println!("worker rooms held at < 1% late+dropped frames: {wheld}{}", capped(wheld, wlast));
    println!("emulation-only limit at < 1% late frames:      {eheld}{}", capped(eheld, elast));
    // Did the host, not the load, set a limit? The step that missed lost more than HOST_STEAL
    // of the machine to the hypervisor, or the bare emulators missed their very first step: the
    // host cannot carry even the smallest load, so nothing measured is the worker's.
    let wmissed = wsteps.last().filter(|s| s.n != wheld);
    let emissed = esteps.last().filter(|s| s.n != eheld);
    let bare_failed = eheld == 0 && emissed.is_some();
    let whost = wmissed.filter(|s| s.steal_share > HOST_STEAL || bare_failed);
    let ehost = emissed.filter(|s| s.steal_share > HOST_STEAL || bare_failed);
    let bare = |s: &EmuStep| {
        format!("{:.1}% late at {} bare emulators, {:.1}% steal time", s.late_pct(), s.n, 100.0 * s.steal_share)
    };
    if let Some(s) = whost {
        let also = match ehost {
            Some(e) if bare_failed => format!(" (the bare emulators failed too, at their first step: {})", bare(e)),
            Some(e) => format!(" (and the bare emulators' limit: {})", bare(e)),
            None => String::new(),
        };
        println!(
            "limit set by the host: {:.1}% steal time ({:.2} cores; other processes {:.2} cores) when {} rooms missed{also}; figures are not the worker's",
            100.0 * s.steal_share,
            s.steal_cores,
            s.other_cores,
            s.n
        );
    } else if let Some(e) = ehost {
        println!(
            "emulation-only limit set by the host: {} (other processes {:.2} cores); the ratio is not the worker's",
            bare(e),
            e.other_cores
        );
    }
    if eheld > 0 {
        let host = if whost.is_some() || ehost.is_some() {
            "; limits set by the host, not a figure of the worker"
        } else {
            ""
        };
        println!("ratio: {:.2} (target >= 0.75){host}", wheld as f64 / eheld as f64);
    } else if bare_failed {
        println!("ratio: none (the bare emulators held no step: the host cannot carry the baseline)");
    }
    if let Some(s) = wsteps.iter().rev().find(|s| s.n == wheld && s.held()) {
        println!(
            "at {wheld} rooms: emulated -> sent p50 {:.2} ms, p99 {:.2} ms (target p99 <= 4 ms); memory per room {:.1} MiB PSS, {:.1} MiB RSS (target <= 32 MiB); CPU per room {:.3} cores (worker {:.3} + emulator {:.3})",
            s.sent_p50_ms,
            s.sent_p99_ms,
            s.pss_per_room_mib,
            s.rss_per_room_mib,
            (s.worker_cores + s.emu_cores) / s.n as f64,
            s.worker_cores / s.n as f64,
            s.emu_cores / s.n as f64
        );
    }
    if let Some(s) = esteps.iter().rev().find(|s| s.n == eheld) {
        println!("emulation only at {eheld}: {:.3} cores per emulator", s.cores / s.n as f64);
    }
    Ok(())
}
