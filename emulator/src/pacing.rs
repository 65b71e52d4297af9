//! Frame pacing at the core's exact rate, as plain logic driven by a given `Instant`.
//!
//! Frame `n` (counted from the current anchor) is due at `anchor + n / fps`, computed from `n`
//! each time — never by adding up intervals — so there is no drift however long it runs. A
//! frame that starts more than `late_tolerance` after its deadline counts as late. When the
//! loop falls more than `max_behind` frames behind (a stall, a suspended process), the
//! schedule re-anchors at "now" instead of bursting through the backlog.

use std::time::{Duration, Instant};

/// What the driver should do now.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Tick {
    /// Run one frame now.
    Run {
        /// The frame started after its deadline plus the tolerance.
        late: bool,
        /// The schedule was re-anchored to now before this frame.
        reanchored: bool,
    },
    /// Nothing to do until this instant.
    WaitUntil(Instant),
}

/// Paced (the core's rate) or unpaced (as fast as possible).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PacingMode {
    /// Run at the core's exact frame rate.
    Paced,
    /// Run as fast as possible (tests, benchmarks).
    Unpaced,
}

impl std::str::FromStr for PacingMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "paced" => Ok(Self::Paced),
            "unpaced" => Ok(Self::Unpaced),
            other => Err(format!("pacing must be 'paced' or 'unpaced', not {other:?}")),
        }
    }
}

impl std::fmt::Display for PacingMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Paced => "paced",
            Self::Unpaced => "unpaced",
        })
    }
}

/// Pacing statistics.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PacerStats {
    /// Frames run.
    pub frames: u64,
    /// Frames that started late.
    pub late: u64,
    /// Re-anchors after falling far behind.
    pub reanchors: u64,
}

/// The schedule. See the module docs.
#[derive(Clone, Debug)]
pub struct Pacer {
    mode: PacingMode,
    fps: f64,
    anchor: Instant,
    /// Frames run since the anchor; the next frame's index.
    index: u64,
    late_tolerance: Duration,
    max_behind: u32,
    stats: PacerStats,
}

impl Pacer {
    /// A paced schedule at `fps` whose frame 0 is due at `start`. Late tolerance defaults to
    /// a quarter frame, re-anchoring to more than 3 frames behind.
    pub fn new(fps: f64, start: Instant) -> Self {
        assert!(fps.is_finite() && fps > 0.0, "fps must be positive, got {fps}");
        Self {
            mode: PacingMode::Paced,
            fps,
            anchor: start,
            index: 0,
            late_tolerance: Duration::from_secs_f64(0.25 / fps),
            max_behind: 3,
            stats: PacerStats::default(),
        }
    }

    /// A schedule that always says "run now" (nothing is ever late).
    pub fn unpaced(fps: f64, start: Instant) -> Self {
        Self { mode: PacingMode::Unpaced, ..Self::new(fps, start) }
    }

    /// A schedule in the given mode.
    pub fn with_mode(mode: PacingMode, fps: f64, start: Instant) -> Self {
        match mode {
            PacingMode::Paced => Self::new(fps, start),
            PacingMode::Unpaced => Self::unpaced(fps, start),
        }
    }

    /// Sets how late a frame may start before it counts as late.
    pub fn with_late_tolerance(mut self, tolerance: Duration) -> Self {
        self.late_tolerance = tolerance;
        self
    }

    /// Sets how many frames behind the schedule may fall before it re-anchors.
    pub fn with_max_behind(mut self, frames: u32) -> Self {
        self.max_behind = frames;
        self
    }

    /// The frame rate.
    pub fn fps(&self) -> f64 {
        self.fps
    }

    /// The mode.
    pub fn mode(&self) -> PacingMode {
        self.mode
    }

    /// Statistics so far.
    pub fn stats(&self) -> PacerStats {
        self.stats
    }

    /// When frame `index` (counted from the anchor) is due.
    pub fn deadline_of(&self, index: u64) -> Instant {
        // n * 1e9 / fps in f64 keeps sub-nanosecond accuracy for billions of frames.
        let ns = (index as f64 * 1e9 / self.fps).round();
        self.anchor + Duration::from_nanos(ns as u64)
    }

    /// When the next frame is due.
    pub fn next_deadline(&self) -> Instant {
        self.deadline_of(self.index)
    }

    /// Decides what to do at `now`. A `Run` answer is taken as "the frame runs now".
    pub fn poll(&mut self, now: Instant) -> Tick {
        if self.mode == PacingMode::Unpaced {
            self.stats.frames += 1;
            return Tick::Run { late: false, reanchored: false };
        }
        let deadline = self.next_deadline();
        if now < deadline {
            return Tick::WaitUntil(deadline);
        }
        let behind = now - deadline;
        let frame = Duration::from_secs_f64(1.0 / self.fps);
        let mut reanchored = false;
        if behind > frame * self.max_behind {
            self.anchor = now;
            self.index = 0;
            self.stats.reanchors += 1;
            reanchored = true;
        }
        let late = behind > self.late_tolerance;
        if late {
            self.stats.late += 1;
        }
        self.index += 1;
        self.stats.frames += 1;
        Tick::Run { late, reanchored }
    }

    /// Changes the rate (SET_SYSTEM_AV_INFO): the next frame keeps its deadline, later ones
    /// follow the new rate.
    pub fn set_fps(&mut self, fps: f64) {
        assert!(fps.is_finite() && fps > 0.0, "fps must be positive, got {fps}");
        if fps == self.fps {
            return;
        }
        let next = self.next_deadline();
        self.fps = fps;
        self.late_tolerance = Duration::from_secs_f64(0.25 / fps);
        self.anchor = next;
        self.index = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GBA_FPS: f64 = 16_777_216.0 / 280_896.0; // 59.727500569606...

    /// Drives a pacer with a virtual clock: each frame costs `work`, waits jump to the deadline.
    fn drive(p: &mut Pacer, start: Instant, frames: u64, work: impl Fn(u64) -> Duration) -> Instant {
        let mut now = start;
        let mut ran = 0;
        while ran < frames {
            match p.poll(now) {
                Tick::WaitUntil(t) => {
                    assert!(t > now);
                    now = t;
                }
                Tick::Run { .. } => {
                    now += work(ran);
                    ran += 1;
                }
            }
        }
        now
    }

    #[test]
    fn gba_rate_is_exact_and_does_not_drift_over_100k_frames() {
        let start = Instant::now();
        let mut p = Pacer::new(GBA_FPS, start);
        assert!((p.fps() - 59.7275).abs() < 1e-4);
        let frames = 100_000;
        drive(&mut p, start, frames, |_| Duration::from_micros(500));
        // The next deadline is exactly frames / fps after the start, to the nanosecond.
        let expected_ns = (frames as f64 * 1e9 / GBA_FPS).round() as u64;
        assert_eq!(p.next_deadline() - start, Duration::from_nanos(expected_ns));
        // 100k frames at 59.7275 fps is 1674.27 s; at 60 fps it would be 1666.67 s.
        assert!(((p.next_deadline() - start).as_secs_f64() - 1674.27).abs() < 0.01);
        assert_eq!(p.stats(), PacerStats { frames, late: 0, reanchors: 0 });
    }

    #[test]
    fn deadlines_come_from_the_index_not_from_accumulation() {
        let start = Instant::now();
        let p = Pacer::new(60.0988, start);
        for n in [1u64, 7, 1000, 123_456, 10_000_000] {
            let want = Duration::from_nanos((n as f64 * 1e9 / 60.0988).round() as u64);
            assert_eq!(p.deadline_of(n) - start, want);
        }
    }

    #[test]
    fn waits_until_the_deadline_then_runs_once() {
        let start = Instant::now();
        let mut p = Pacer::new(50.0, start);
        assert_eq!(p.poll(start), Tick::Run { late: false, reanchored: false });
        let d1 = start + Duration::from_millis(20);
        assert_eq!(p.poll(start + Duration::from_millis(3)), Tick::WaitUntil(d1));
        assert_eq!(p.poll(d1), Tick::Run { late: false, reanchored: false });
        assert_eq!(p.poll(d1), Tick::WaitUntil(start + Duration::from_millis(40)));
    }

    #[test]
    fn slow_frames_count_as_late_and_catch_up_without_reanchoring() {
        let start = Instant::now();
        let mut p = Pacer::new(50.0, start);
        // Frames 0..4 take 20 ms (on time); frame 5 takes 50 ms (2.5 frames); then 10 ms.
        drive(&mut p, start, 20, |n| {
            Duration::from_millis(match n {
                5 => 50,
                0..=4 => 20,
                _ => 10,
            })
        });
        let s = p.stats();
        assert_eq!(s.reanchors, 0);
        // Frames 6, 7 start 30 and 20 ms late, frame 8 10 ms late (all > 5 ms tolerance);
        // frame 9 is back on schedule.
        assert_eq!(s.late, 3);
        assert_eq!(p.next_deadline() - start, Duration::from_millis(400));
    }

    #[test]
    fn far_behind_reanchors_instead_of_bursting() {
        let start = Instant::now();
        let mut p = Pacer::new(50.0, start);
        assert!(matches!(p.poll(start), Tick::Run { .. }));
        // The process was stopped for a second: 50 frames behind.
        let resume = start + Duration::from_secs(1);
        assert_eq!(p.poll(resume), Tick::Run { late: true, reanchored: true });
        // No burst: the next frame waits a full interval after the resume.
        assert_eq!(p.poll(resume), Tick::WaitUntil(resume + Duration::from_millis(20)));
        assert_eq!(p.stats().reanchors, 1);
        // Exactly at the boundary (3 frames behind) it catches up instead.
        let mut q = Pacer::new(50.0, start);
        assert!(matches!(q.poll(start + Duration::from_millis(60)), Tick::Run { reanchored: false, .. }));
        assert!(matches!(q.poll(start + Duration::from_millis(60)), Tick::Run { reanchored: false, .. }));
    }

    #[test]
    fn unpaced_never_waits() {
        let start = Instant::now();
        let mut p = Pacer::unpaced(60.0, start);
        for _ in 0..1000 {
            assert_eq!(p.poll(start), Tick::Run { late: false, reanchored: false });
        }
        assert_eq!(p.stats().frames, 1000);
    }

    #[test]
    fn a_rate_change_keeps_the_next_deadline() {
        let start = Instant::now();
        let mut p = Pacer::new(50.0, start);
        drive(&mut p, start, 10, |_| Duration::ZERO);
        let next = p.next_deadline();
        p.set_fps(25.0);
        assert_eq!(p.next_deadline(), next);
        assert_eq!(p.deadline_of(1) - next, Duration::from_millis(40));
    }

    #[test]
    fn pacing_mode_parses() {
        assert_eq!("paced".parse::<PacingMode>(), Ok(PacingMode::Paced));
        assert_eq!(PacingMode::Unpaced.to_string().parse::<PacingMode>(), Ok(PacingMode::Unpaced));
        assert!("fast".parse::<PacingMode>().is_err());
    }
}
