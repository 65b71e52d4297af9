//! Impairment scenarios for a streaming player: a clean lead-in, an impairment held for a
//! while, then a clean tail, recorded by the player throughout (e2e/tests/network.rs runs
//! them briefly, bench/src/bin/network.rs at length).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{Change, Delay, NetLink};
use crate::figures::{kbps_line, Figures, Recording};
use crate::player::Player;

/// The bitrate window of scenario recordings.
pub const WINDOW: Duration = Duration::from_millis(500);

/// Playback without a freeze this long after an impairment counts as recovered.
pub const STEADY: Duration = Duration::from_secs(1);

/// What a scenario does to the link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Impairment {
    /// Nothing: a clean run on the same timeline.
    None,
    /// A bottleneck of this many kbit/s towards the player.
    Rate(u32),
    /// This percentage of UDP packets towards the player lost at random.
    Loss(f64),
    /// Delay and jitter of UDP packets towards the player.
    Delay(Delay),
    /// Nothing gets through, either way.
    Outage,
}

impl Impairment {
    /// The changes that start and end it.
    pub fn changes(self) -> (Change, Change) {
        match self {
            Impairment::None => (Change::Loss(0.0), Change::Loss(0.0)),
            Impairment::Rate(k) => (Change::Rate(Some(k)), Change::Rate(None)),
            Impairment::Loss(p) => (Change::Loss(p), Change::Loss(0.0)),
            Impairment::Delay(d) => (Change::Delay(d), Change::Delay(Delay::default())),
            Impairment::Outage => (Change::Outage(true), Change::Outage(false)),
        }
    }
}

impl fmt::Display for Impairment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Impairment::None => write!(f, "nothing"),
            Impairment::Rate(k) => write!(f, "{k} kbit/s cap"),
            Impairment::Loss(p) => write!(f, "{p}% loss"),
            Impairment::Delay(d) => write!(f, "{} ms ± {} ms delay", d.base.as_millis(), d.jitter.as_millis()),
            Impairment::Outage => write!(f, "outage"),
        }
    }
}

/// A clean `lead`, the impairment for `hold`, a clean `tail`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scenario {
    /// What happens.
    pub impairment: Impairment,
    /// Clean, before.
    pub lead: Duration,
    /// Impaired.
    pub hold: Duration,
    /// Clean, after.
    pub tail: Duration,
}

impl Scenario {
    /// `impairment` for `hold` between a clean `lead` and `tail`.
    pub fn new(impairment: Impairment, lead: Duration, hold: Duration, tail: Duration) -> Self {
        Self { impairment, lead, hold, tail }
    }

    /// The whole length.
    pub fn length(&self) -> Duration {
        self.lead + self.hold + self.tail
    }

    /// The script for [`NetLink::play`].
    pub fn script(&self) -> Vec<(Duration, Change)> {
        let (start, end) = self.impairment.changes();
        vec![(self.lead, start), (self.lead + self.hold, end)]
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} for {:.1} s (clean {:.1} s before, {:.1} s after)",
            self.impairment,
            self.hold.as_secs_f64(),
            self.lead.as_secs_f64(),
            self.tail.as_secs_f64()
        )
    }
}

/// What the player got through a scenario.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The scenario.
    pub scenario: Scenario,
    /// Everything received.
    pub recording: Recording,
    /// When the impairment began, from the recording's start.
    pub began: Duration,
    /// When it ended.
    pub ended: Duration,
}

impl Outcome {
    /// Figures before the impairment.
    pub fn before(&self) -> Figures {
        self.recording.figures_in(Duration::ZERO..self.began)
    }

    /// Figures while impaired.
    pub fn during(&self) -> Figures {
        self.recording.figures_in(self.began..self.ended)
    }

    /// Figures after.
    pub fn after(&self) -> Figures {
        self.recording.figures_in(self.ended..self.recording.length)
    }

    /// From the impairment's end to the next decoded frame.
    pub fn recovery(&self) -> Option<Duration> {
        self.recording.recovery_after(self.ended)
    }

    /// From the impairment's end to steady playback: the first decoded frame followed by a
    /// second ([`STEADY`]) without a freeze.
    pub fn steady(&self) -> Option<Duration> {
        self.recording.steady_after(self.ended, STEADY)
    }

    /// The received rate per window while impaired, kbit/s.
    pub fn kbps_during(&self) -> Vec<f64> {
        self.recording.kbps_in(self.began..self.ended)
    }

    /// A few lines for a test's output.
    pub fn report(&self) -> String {
        let ms = |d: Option<Duration>| d.map_or("none".into(), |d| format!("{} ms", d.as_millis()));
        let r = &self.recording;
        format!(
            "{}\n  before: {}\n  during: {}\n  after:  {}\n  recovery from the impairment's end: first frame {}, \
             steady ({} s without a freeze) {}; keyframes before/during/after: {}/{}/{}\n  \
             kbit/s per {} ms (impaired from {:.1} s to {:.1} s): {}",
            self.scenario,
            self.before(),
            self.during(),
            self.after(),
            ms(self.recovery()),
            STEADY.as_secs(),
            ms(self.steady()),
            r.keyframes_in(Duration::ZERO..self.began),
            r.keyframes_in(self.began..self.ended),
            r.keyframes_in(self.ended..r.length),
            WINDOW.as_millis(),
            self.began.as_secs_f64(),
            self.ended.as_secs_f64(),
            kbps_line(&self.recording.wire_kbps())
        )
    }
}

/// Plays `scenario` on `net` while `player` records; `buttons(elapsed)` is the pad state the
/// player sends. The link is clean again at the end.
pub async fn run(
    net: &Arc<NetLink>,
    player: &mut Player,
    scenario: Scenario,
    buttons: impl FnMut(Duration) -> u16,
) -> Result<Outcome> {
    let script = net.play(scenario.script());
    let recording = player.record(scenario.length(), WINDOW, buttons).await;
    let done = tokio::task::spawn_blocking(move || script.join()).await?;
    let done = done.map_err(|_| anyhow::anyhow!("the script's thread panicked"))??;
    let at = |i: usize| done.get(i).map(|(t, _)| recording.offset(*t)).context("a change was not made");
    let (began, ended) = (at(0)?, at(1)?);
    Ok(Outcome { scenario, recording, began, ended })
}
