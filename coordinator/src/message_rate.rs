//! The message rate limit of one browser WebSocket: a token bucket (a burst, refilled at a
//! steady rate) fed the time of each message, deciding whether it is handled, dropped with a
//! `rate_limited` error, dropped silently, or ends the session (close 1008). Sans-IO: the
//! driver in [`crate::server`] passes `Instant`s, the tests a fake clock.

use std::time::{Duration, Instant};

/// The limit (the `[limits]` section of the configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Messages a session may send at once (a page sends a handful per session, ICE candidates
    /// in bursts of a few tens).
    pub burst: u32,
    /// Messages per second sustained after the burst.
    pub per_sec: u32,
    /// Dropped messages after which the session is closed (1008), counted until the client has
    /// been quiet long enough for the whole burst to refill.
    pub close_after: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self { burst: 50, per_sec: 20, close_after: 100 }
    }
}

/// What to do with one incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Accept,
    /// Drop it and tell the client (`rate_limited` error): the first drop of a flood.
    DropAndWarn,
    /// Drop it without an answer (answering every message of a flood would be a flood too).
    Drop,
    /// The client keeps flooding: close the session (1008, policy violation).
    Close,
}

/// The state of one session.
#[derive(Debug, Clone)]
pub struct MessageRate {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
    /// Messages dropped since the bucket was last full.
    dropped: u32,
}

impl MessageRate {
    /// A session that opened at `now`, with a full bucket.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        Self { limit, tokens: f64::from(limit.burst), last: now, dropped: 0 }
    }

    /// A message arrived at `now`.
    pub fn on_message(&mut self, now: Instant) -> Verdict {
        let burst = f64::from(self.limit.burst);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * f64::from(self.limit.per_sec)).min(burst);
        if self.tokens >= burst {
            // Quiet long enough for the whole burst to come back: a new episode.
            self.dropped = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Accept;
        }
        self.dropped += 1;
        if self.dropped >= self.limit.close_after {
            Verdict::Close
        } else if self.dropped == 1 {
            Verdict::DropAndWarn
        } else {
            Verdict::Drop
        }
    }

    /// How long a client that stopped must wait before it may send a full burst again.
    pub fn refill_time(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.limit.burst) / f64::from(self.limit.per_sec.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_burst_passes_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut r = MessageRate::new(RateLimit::default(), t0);
        for _ in 0..50 {
            assert_eq!(r.on_message(t0), Verdict::Accept);
        }
        assert_eq!(r.on_message(t0), Verdict::DropAndWarn);
        assert_eq!(r.on_message(t0), Verdict::Drop);
        // 20 messages a second come back: one every 50 ms.
        assert_eq!(r.on_message(t0 + 50 * MS), Verdict::Accept);
        assert_eq!(r.on_message(t0 + 50 * MS), Verdict::Drop);
        let mut t = t0 + 50 * MS;
        for _ in 0..100 {
            t += 50 * MS;
            assert_eq!(r.on_message(t), Verdict::Accept, "a client at the sustained rate is never dropped");
        }
    }

    #[test]
    fn a_page_sending_ice_candidates_in_bursts_is_never_limited() {
        let t0 = Instant::now();
        let mut r = MessageRate::new(RateLimit::default(), t0);
        // latency, start_game, answer, 30 candidates at once, then a game later on.
        let mut t = t0;
        for round in 0..5 {
            for _ in 0..33 {
                assert_eq!(r.on_message(t), Verdict::Accept, "round {round}");
            }
            t += Duration::from_secs(2);
        }
    }

    #[test]
    fn a_flood_is_warned_once_then_closed() {
        let t0 = Instant::now();
        let limit = RateLimit { burst: 5, per_sec: 10, close_after: 20 };
        let mut r = MessageRate::new(limit, t0);
        let verdicts: Vec<_> = (0..40).map(|i| r.on_message(t0 + i * MS)).collect();
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::DropAndWarn).count(), 1);
        let close = verdicts.iter().position(|v| *v == Verdict::Close).expect("closed");
        // 5 accepted from the burst (no 100 ms passed for a sixth), then 20 drops.
        assert_eq!(close, 5 + 19);
        assert!(verdicts[..5].iter().all(|v| *v == Verdict::Accept));
    }

    #[test]
    fn a_client_at_a_little_over_the_rate_is_closed_eventually() {
        // The drops only reset once the bucket is full again, so trickling through at the
        // sustained rate does not wipe the slate.
        let t0 = Instant::now();
        let limit = RateLimit { burst: 10, per_sec: 10, close_after: 30 };
        let mut r = MessageRate::new(limit, t0);
        let mut t = t0;
        let mut closed = false;
        for _ in 0..1000 {
            t += 50 * MS; // 20 a second against 10
            if r.on_message(t) == Verdict::Close {
                closed = true;
                break;
            }
        }
        assert!(closed);
    }

    #[test]
    fn quiet_time_forgives_a_past_flood() {
        let t0 = Instant::now();
        let limit = RateLimit { burst: 5, per_sec: 10, close_after: 10 };
        let mut r = MessageRate::new(limit, t0);
        for _ in 0..14 {
            r.on_message(t0);
        }
        // 9 drops: one more would close. After the refill time, a new episode starts.
        let later = t0 + r.refill_time();
        for _ in 0..5 {
            assert_eq!(r.on_message(later), Verdict::Accept);
        }
        assert_eq!(r.on_message(later), Verdict::DropAndWarn);
    }
}
