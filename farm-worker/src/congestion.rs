//! Congestion control: from each viewer's bandwidth estimate to its room's encoder rate. Pure
//! functions and a small state machine; the engine feeds them str0m's estimates (TWCC, with its
//! delay- and loss-based controllers) and the loss the viewers report, with the time, and hands
//! the resulting bitrates to the rooms; a room picks its frame-rate step from its bitrate.
//!
//! **Rooms with viewers on different links.** A room encodes once per codec and every viewer of
//! that codec is sent the same stream, so a (room, codec) group's rate follows its slowest
//! viewer: nobody is sent more than their link carries, and the others get the picture that
//! rate allows (a second encode per link, simulcast, would cost a room's CPU again per link).
//! Viewers of the other codec are a group of their own.

use std::time::{Duration, Instant};

/// Rate limits and the start (from the worker's configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateConfig {
    /// Adapt to the viewers' links; off: every room encodes at `ceiling_bps` always.
    pub enabled: bool,
    /// The lowest video bitrate a room is asked for, whatever the estimate.
    pub floor_bps: u32,
    /// The highest, and the bitrate rooms start at before any viewer's link is measured.
    pub ceiling_bps: u32,
    /// The estimate a new viewer's link starts from until feedback arrives.
    pub initial_estimate_bps: u32,
}

impl RateConfig {
    /// Adaptive between `floor_bps` and `ceiling_bps`, a new link assumed to carry 1 Mbit/s
    /// (or the ceiling, when lower).
    pub fn new(floor_bps: u32, ceiling_bps: u32) -> Self {
        let ceiling_bps = ceiling_bps.max(floor_bps);
        Self { enabled: true, floor_bps, ceiling_bps, initial_estimate_bps: ceiling_bps.min(1_000_000).max(floor_bps) }
    }

    /// What a peer asks str0m's estimator to probe for: the ceiling plus audio and overhead.
    pub fn desired_bps(&self) -> u64 {
        (f64::from(self.ceiling_bps) / HEADROOM) as u64 + AUDIO_BPS
    }
}

/// The share of an estimate given to video: the rest covers RTP/SRTP headers, retransmissions
/// and the estimate's own error.
const HEADROOM: f64 = 0.9;
/// Opus at its configured 96 kbit/s with headers; taken off the estimate before video's share.
const AUDIO_BPS: u64 = 100_000;
/// Above this fraction of packets lost (the viewer's receiver reports) the budget falls with the
/// loss, as in Google Congestion Control's loss-based part; below it loss is taken as noise.
const LOSS_HIGH: f64 = 0.10;
/// Changes smaller than this fraction of the current rate are left out (no encoder churn).
const MIN_CHANGE: f64 = 0.05;
/// A rising budget is followed at most this often...
const RAISE_INTERVAL: Duration = Duration::from_millis(500);
/// ...and by at most this factor each time; a falling one is followed at once.
const RAISE_FACTOR: f64 = 1.15;

/// One viewer's video budget: its link's estimate less audio and headroom, cut further when it
/// reports heavy loss.
pub fn viewer_budget(estimate_bps: u64, loss: f64) -> u64 {
    let mut estimate = estimate_bps as f64;
    if loss > LOSS_HIGH {
        estimate *= 1.0 - 0.5 * loss.min(1.0);
    }
    ((estimate - AUDIO_BPS as f64).max(0.0) * HEADROOM) as u64
}

/// A group's budget: its slowest viewer's, within the configured limits. `None` without any
/// viewer's budget.
pub fn group_budget(cfg: &RateConfig, budgets: impl IntoIterator<Item = u64>) -> Option<u32> {
    let slowest = budgets.into_iter().min()?;
    Some(slowest.clamp(u64::from(cfg.floor_bps), u64::from(cfg.ceiling_bps)) as u32)
}

/// The bitrate a (room, codec) group's encoder runs at, and how it moves: down at once, up in
/// steps.
#[derive(Debug, Clone)]
pub struct GroupRate {
    bps: u32,
    raised: Instant,
}

impl GroupRate {
    /// A group whose encoder starts at `bps` at `now`.
    pub fn new(now: Instant, bps: u32) -> Self {
        Self { bps, raised: now }
    }

    /// The current bitrate.
    pub fn bps(&self) -> u32 {
        self.bps
    }

    /// Follows a new `budget`: the new bitrate when the encoder should change.
    pub fn update(&mut self, now: Instant, budget: u32) -> Option<u32> {
        let current = f64::from(self.bps);
        let next = if f64::from(budget) < current * (1.0 - MIN_CHANGE) {
            budget
        } else if f64::from(budget) > current * (1.0 + MIN_CHANGE) && now.duration_since(self.raised) >= RAISE_INTERVAL
        {
            self.raised = now;
            budget.min((current * RAISE_FACTOR) as u32)
        } else {
            return None;
        };
        self.bps = next;
        Some(next)
    }
}

/// Below this many bits per pixel at the full frame rate the picture turns to mush: the room
/// sends every other frame, each with twice the bits.
const LOW_BITS_PER_PIXEL: f64 = 0.05;
/// Back to every frame above this (a gap, so the step does not flap at the edge).
const HIGH_BITS_PER_PIXEL: f64 = 0.08;
/// The step is taken only when the encoder spends at least this share of its bitrate: a
/// picture that needs fewer bits (a still screen, simple content) loses nothing at a low rate,
/// and a low estimate may only mean the stream sent little (an estimator is capped at 1.5x what
/// it sees sent).
const CONSTRAINED_USE: f64 = 0.75;
/// Back to every frame when the encoder spends less than this share.
const UNCONSTRAINED_USE: f64 = 0.5;

/// The frame-rate step at `bitrate_bps` for pictures of `pixels` coming at `fps`, when the
/// encoder spent `used_bps` lately (`None`: not measured yet): 1 encodes every frame, 2 every
/// other one. `current` is the step in use.
pub fn frame_divisor(bitrate_bps: u32, used_bps: Option<u32>, pixels: u32, fps: f32, current: u32) -> u32 {
    let per_pixel = f64::from(bitrate_bps) / (f64::from(pixels.max(1)) * f64::from(fps.max(1.0)));
    let used = used_bps.map_or(0.0, |u| f64::from(u) / f64::from(bitrate_bps.max(1)));
    match current {
        1 if per_pixel < LOW_BITS_PER_PIXEL && used >= CONSTRAINED_USE => 2,
        2 if per_pixel > HIGH_BITS_PER_PIXEL || used < UNCONSTRAINED_USE => 1,
        1 | 2 => current,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_viewer_gets_its_estimate_less_audio_and_headroom_and_less_again_under_heavy_loss() {
        assert_eq!(viewer_budget(1_100_000, 0.0), 900_000);
        assert_eq!(viewer_budget(1_100_000, 0.05), 900_000, "light loss is noise");
        // 20 % loss: the estimate falls by 10 % first.
        let heavy = viewer_budget(1_100_000, 0.20);
        assert!((800_000..=801_500).contains(&heavy), "(990 - 100) kbit/s x 0.9, got {heavy}");
        assert_eq!(viewer_budget(50_000, 0.0), 0, "less than audio leaves nothing");
    }

    #[test]
    fn the_slowest_viewer_sets_the_group_within_the_limits() {
        let cfg = RateConfig::new(150_000, 2_000_000);
        assert_eq!(group_budget(&cfg, [1_500_000, 600_000, 900_000]), Some(600_000));
        assert_eq!(group_budget(&cfg, [10_000]), Some(150_000), "never below the floor");
        assert_eq!(group_budget(&cfg, [9_000_000]), Some(2_000_000), "never above the ceiling");
        assert_eq!(group_budget(&cfg, []), None);
        assert_eq!(cfg.initial_estimate_bps, 1_000_000);
        assert_eq!(RateConfig::new(150_000, 500_000).initial_estimate_bps, 500_000);
        assert!(cfg.desired_bps() > 2_000_000);
    }

    #[test]
    fn the_rate_falls_at_once_and_rises_in_steps() {
        let t0 = Instant::now();
        let mut g = GroupRate::new(t0, 2_000_000);
        assert_eq!(g.update(t0, 1_980_000), None, "a 1 % change is left alone");
        assert_eq!(g.update(t0, 700_000), Some(700_000), "a fall is followed at once");
        assert_eq!(g.update(t0 + Duration::from_millis(100), 500_000), Some(500_000));
        // The estimate recovers: at most +15 % per half second.
        assert_eq!(g.update(t0 + Duration::from_millis(600), 2_000_000), Some(575_000));
        assert_eq!(g.update(t0 + Duration::from_millis(700), 2_000_000), None, "too soon to rise again");
        let mut t = t0 + Duration::from_millis(600);
        let mut steps = 0;
        while g.bps() < 2_000_000 {
            t += Duration::from_millis(500);
            g.update(t, 2_000_000).expect("a step up");
            steps += 1;
        }
        assert_eq!(steps, 9, "from 575 kbit/s to 2 Mbit/s in 4.5 s");
    }

    #[test]
    fn low_bitrates_halve_the_frame_rate_with_a_gap_before_returning() {
        // NES: 256x240 at 60 fps is 3.7 Mpixel/s: the step is at 184 kbit/s, the return at 295.
        let (px, fps) = (256 * 240, 60.0);
        // The encoder spends all it is given.
        let busy = |bps: u32| Some(bps);
        assert_eq!(frame_divisor(1_000_000, busy(1_000_000), px, fps, 1), 1);
        assert_eq!(frame_divisor(180_000, busy(180_000), px, fps, 1), 2);
        assert_eq!(frame_divisor(250_000, busy(250_000), px, fps, 2), 2, "inside the gap: stays");
        assert_eq!(frame_divisor(250_000, busy(250_000), px, fps, 1), 1, "inside the gap: stays");
        assert_eq!(frame_divisor(300_000, busy(300_000), px, fps, 2), 1);
        assert_eq!(frame_divisor(300_000, busy(300_000), px, fps, 7), 1, "an unknown step resets");
        // A picture upscaled 2x needs four times the bits for the same quality.
        assert_eq!(frame_divisor(600_000, busy(600_000), px * 4, fps, 1), 2);
    }

    #[test]
    fn a_picture_that_needs_few_bits_keeps_every_frame_at_a_low_rate() {
        let (px, fps) = (256 * 240, 60.0);
        assert_eq!(frame_divisor(150_000, None, px, fps, 1), 1, "not measured yet");
        assert_eq!(frame_divisor(150_000, Some(60_000), px, fps, 1), 1, "a still screen uses 40 %");
        assert_eq!(frame_divisor(150_000, Some(120_000), px, fps, 1), 2, "80 %: the encoder is starved");
        assert_eq!(frame_divisor(150_000, Some(100_000), px, fps, 2), 2, "67 %: stays");
        assert_eq!(frame_divisor(150_000, Some(60_000), px, fps, 2), 1, "the picture calmed down");
    }
}
