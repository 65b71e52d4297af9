//! `network`: the stream through an impaired link, at length (docs/network-tests.md).
//!
//! For each scenario a fresh coordinator and worker start in a network namespace of their own
//! and a Rust player (str0m + openh264, as the e2e tests') joins across a veth pair whose
//! server end is impaired (retrofarm_e2e::netns): a clean run, a rate cap, random loss, delay
//! with jitter, an outage. The player plays the benchmark game (Alwa's Awakening from
//! ../shared/roms, the project's own game without it) with a scripted input, through the title
//! screens first, then records a clean lead-in, the impairment, and a clean tail. Prints, per
//! scenario, the figures before, during and after (decoded fps, the longest gap between
//! decoded frames, the time frozen in gaps over 200 ms, the received kbit/s), the recovery
//! after the impairment's end (the first frame shown, and steady playback: a second without
//! a freeze), and the received kbit/s per 500 ms; then a table. The clean run is the control:
//! the game's own scenes change the frame rate (repeated frames are left out) and bitrate.
//!
//! Needs root (namespaces, tc, iptables); says SKIPPED otherwise. Build first:
//! `cargo build --workspace --bins` (the coordinator, worker and `impair` binaries).
//!
//! ```text
//! target/debug/network [--secs N] [--lead N] [--tail N] [--only clean,cap,loss,delay,outage]
//!                      [--cap KBIT] [--loss PCT] [--delay MS] [--jitter MS] [--outage SECS]
//!                      [--own-game] [--worker-config FILE] [--quick]
//! ```
//!
//! Defaults: 20 s impaired (the outage 2 s), 5 s lead, 10 s tail; a 1000 kbit/s cap, 5 %
//! loss, 100 ± 20 ms delay. `--quick`: 3 s impaired, 1 s lead, 2 s tail, the own game.
//! `--worker-config FILE`: the worker's configuration file (e.g. `congestion_control = false`
//! for the fixed-bitrate behaviour, or another `video_kbps`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use retrofarm_bench::{arg, games, quick};
use retrofarm_e2e::figures::kbps_line;
use retrofarm_e2e::netns::scenario::{self, Impairment, Outcome, Scenario, WINDOW};
use retrofarm_e2e::netns::{Delay, NetLink};
use retrofarm_e2e::player::Player;

/// The flags.
struct Opts {
    hold: Duration,
    lead: Duration,
    tail: Duration,
    only: Option<Vec<String>>,
    cap: u32,
    loss: f64,
    delay: Delay,
    outage: Duration,
    own_game: bool,
    worker_config: Option<std::path::PathBuf>,
}

impl Opts {
    fn parse() -> Self {
        let q = quick();
        let secs = |name: &str, default: f64| Duration::from_secs_f64(arg(name).unwrap_or(default));
        Self {
            hold: secs("--secs", if q { 3.0 } else { 20.0 }),
            lead: secs("--lead", if q { 1.0 } else { 5.0 }),
            tail: secs("--tail", if q { 2.0 } else { 10.0 }),
            only: arg::<String>("--only").map(|s| s.split(',').map(str::to_string).collect()),
            cap: arg("--cap").unwrap_or(1000),
            loss: arg("--loss").unwrap_or(5.0),
            delay: Delay::ms(arg("--delay").unwrap_or(100), arg("--jitter").unwrap_or(20)),
            outage: secs("--outage", 2.0),
            own_game: q || std::env::args().any(|a| a == "--own-game"),
            worker_config: arg("--worker-config"),
        }
    }

    /// The scenarios asked for, by short name.
    fn scenarios(&self) -> Vec<(&'static str, Scenario)> {
        let s = |i, hold| Scenario::new(i, self.lead, hold, self.tail);
        [
            ("clean", s(Impairment::None, self.hold)),
            ("cap", s(Impairment::Rate(self.cap), self.hold)),
            ("loss", s(Impairment::Loss(self.loss), self.hold)),
            ("delay", s(Impairment::Delay(self.delay), self.hold)),
            ("outage", s(Impairment::Outage, self.outage)),
        ]
        .into_iter()
        .filter(|(name, _)| self.only.as_ref().is_none_or(|o| o.iter().any(|n| n == name)))
        .collect()
    }
}

/// Frames of title screens the script presses START through before recording (8 s).
const TITLE_FRAMES: u64 = 480;

/// One scenario on a fresh cluster.
async fn one(o: &Opts, game_dir: &std::path::Path, game: &str, s: Scenario) -> Result<Outcome> {
    let net = Arc::new(NetLink::new()?);
    let dir = tempfile::Builder::new().prefix("retrofarm-network-").tempdir()?;
    let (addrs, _coord, _worker) = net.cluster(dir.path(), |w| {
        w.games = game_dir.to_path_buf();
        // The worker's own default, as a farm runs it.
        w.skip_repeated_frames = true;
        if let Some(c) = &o.worker_config {
            w.extra.extend(["--config".into(), c.display().to_string()]);
        }
    })?;
    let mut player = Player::try_join_from(addrs, game, None, 1, net.host_ip().into())
        .await
        .map_err(|(code, m)| anyhow::anyhow!("joining: {code:?} {m}"))?;
    player.first_picture(Duration::from_secs(10)).await.context("a first picture over the clean link")?;
    let frame = |t: Duration| (t.as_secs_f64() * 60.0) as u64;
    if o.own_game {
        // No title screens: the block walks right and left.
        return scenario::run(&net, &mut player, s, |t| {
            if (frame(t) / 60).is_multiple_of(2) {
                games::pad::RIGHT
            } else {
                games::pad::LEFT
            }
        })
        .await;
    }
    // Through the title screens, into the game.
    player.record(Duration::from_secs(TITLE_FRAMES / 60), WINDOW, |t| games::scripted_buttons(frame(t), 0)).await;
    scenario::run(&net, &mut player, s, |t| games::scripted_buttons(TITLE_FRAMES + frame(t), 0)).await
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = Opts::parse();
    if let Err(e) = NetLink::permitted() {
        println!("network: SKIPPED: {e}");
        return Ok(());
    }
    if games::core_or_skip("network").is_none() {
        return Ok(());
    }
    let rom = if o.own_game { retrofarm_e2e::repo_root().join("games").join(games::OWN_ROM) } else { games::rom() };
    let (game_dir, game) = games::games_dir(&rom, "Network Bench")?;
    println!("== network: {} streamed through an impaired link", rom.file_name().unwrap_or_default().to_string_lossy());
    let mut rows = vec![];
    for (name, s) in o.scenarios() {
        println!("-- {name}: {s}");
        match one(&o, game_dir.path(), &game, s).await {
            Ok(out) => {
                println!("{}", out.report());
                rows.push((name, out));
            }
            Err(e) => println!("{name}: FAILED: {e:#}"),
        }
    }
    println!();
    println!(
        "{:<8} {:>22} | {:>9} {:>9} {:>9} | {:>8} {:>8} {:>9} {:>9} | {:>8} {:>8} {:>8}",
        "scenario",
        "impairment",
        "fps bef.",
        "fps dur.",
        "fps aft.",
        "gap ms",
        "frozen",
        "1st frame",
        "steady",
        "kbps bef",
        "kbps dur",
        "kbps aft"
    );
    for (name, out) in &rows {
        let (b, d, a) = (out.before(), out.during(), out.after());
        let impairment = out.scenario.impairment.to_string();
        println!(
            "{:<8} {:>22} | {:>9.1} {:>9.1} {:>9.1} | {:>8} {:>8} {:>9} {:>9} | {:>8.0} {:>8.0} {:>8.0}",
            name,
            impairment,
            b.decoded_fps,
            d.decoded_fps,
            a.decoded_fps,
            d.longest_gap.as_millis(),
            format!("{:.1} s", d.frozen.as_secs_f64()),
            out.recovery().map_or("none".into(), |r| format!("{} ms", r.as_millis())),
            out.steady().map_or("none".into(), |r| format!("{} ms", r.as_millis())),
            b.kbps,
            d.kbps,
            a.kbps
        );
    }
    for (name, out) in &rows {
        println!("{name}: kbit/s per {} ms: {}", WINDOW.as_millis(), kbps_line(&out.recording.wire_kbps()));
    }
    Ok(())
}
