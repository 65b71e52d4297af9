//! When a delayed packet may leave: the schedule the `impair delay` program (an NFQUEUE
//! listener) keeps. Pure, so it is unit-tested here.

use std::time::{Duration, Instant};

/// A one-way delay: `base` plus a uniform jitter in `-jitter..=+jitter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delay {
    /// The mean delay.
    pub base: Duration,
    /// The most the delay strays from `base`, either way (clamped so the delay stays ≥ 0).
    pub jitter: Duration,
}

impl Delay {
    /// `ms` ± `jitter_ms` milliseconds.
    pub fn ms(ms: u64, jitter_ms: u64) -> Self {
        Self { base: Duration::from_millis(ms), jitter: Duration::from_millis(jitter_ms) }
    }

    /// Whether this delays nothing.
    pub fn is_zero(&self) -> bool {
        self.base.is_zero() && self.jitter.is_zero()
    }
}

/// Release times for packets in arrival order.
///
/// By default packets leave in the order they came, as from a real bottleneck queue whose
/// delay varies: a packet never leaves before the one ahead of it, so the jitter shows as
/// bunching rather than reordering. `reorder` lets each packet keep its own drawn delay
/// (as Linux's netem does with jitter), which reorders packets closer together than the
/// jitter's range.
#[derive(Debug, Clone)]
pub struct Schedule {
    delay: Delay,
    reorder: bool,
    rng: XorShift,
    last: Option<Instant>,
}

impl Schedule {
    /// A schedule for `delay`, its jitter drawn from a generator seeded with `seed`.
    pub fn new(delay: Delay, reorder: bool, seed: u64) -> Self {
        Self { delay, reorder, rng: XorShift::new(seed), last: None }
    }

    /// Changes the delay for packets arriving from now on.
    pub fn set_delay(&mut self, delay: Delay) {
        self.delay = delay;
    }

    /// The delay in force.
    pub fn delay(&self) -> Delay {
        self.delay
    }

    /// The drawn delay of the next packet: `base` + uniform(−jitter, +jitter), at least zero.
    pub fn draw(&mut self) -> Duration {
        let j = self.delay.jitter.as_micros() as i64;
        let offset = if j == 0 { 0 } else { self.rng.below(2 * j as u64 + 1) as i64 - j };
        let us = self.delay.base.as_micros() as i64 + offset;
        Duration::from_micros(us.max(0) as u64)
    }

    /// When a packet that arrived at `arrival` leaves.
    pub fn release(&mut self, arrival: Instant) -> Instant {
        let mut at = arrival + self.draw();
        if !self.reorder {
            if let Some(last) = self.last {
                at = at.max(last);
            }
            self.last = Some(at);
        }
        at
    }
}

/// A small xorshift64* generator: reproducible jitter without a dependency.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// Seeded; a zero seed is replaced (xorshift would stay at zero).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0; the bias of the modulo is negligible for the small `n` here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_within_the_jitter_and_average_the_base() {
        let mut s = Schedule::new(Delay::ms(100, 20), true, 7);
        let draws: Vec<Duration> = (0..20_000).map(|_| s.draw()).collect();
        let (lo, hi) = (Duration::from_millis(80), Duration::from_millis(120));
        assert!(draws.iter().all(|d| (lo..=hi).contains(d)), "a draw outside 80..=120 ms");
        let mean = draws.iter().sum::<Duration>().as_secs_f64() / draws.len() as f64;
        assert!((mean - 0.100).abs() < 0.001, "mean {mean}");
        // Spread over the whole range, not stuck in a corner.
        assert!(draws.iter().any(|d| *d < Duration::from_millis(82)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(118)));
    }

    #[test]
    fn no_jitter_is_exact_and_the_delay_never_goes_negative() {
        let mut s = Schedule::new(Delay::ms(30, 0), false, 1);
        assert_eq!(s.draw(), Duration::from_millis(30));
        s.set_delay(Delay::ms(5, 50));
        assert!((0..1000).map(|_| s.draw()).all(|d| d <= Duration::from_millis(55)));
        assert_eq!(s.delay(), Delay::ms(5, 50));
        assert!(Delay::ms(0, 0).is_zero() && !Delay::ms(0, 1).is_zero());
    }

    #[test]
    fn in_order_by_default_reordering_when_asked() {
        let t0 = Instant::now();
        let arrivals: Vec<Instant> = (0..2000).map(|i| t0 + Duration::from_micros(500 * i)).collect();
        let mut fifo = Schedule::new(Delay::ms(100, 20), false, 3);
        let out: Vec<Instant> = arrivals.iter().map(|a| fifo.release(*a)).collect();
        assert!(out.windows(2).all(|w| w[0] <= w[1]), "FIFO releases in arrival order");
        assert!(out.iter().zip(&arrivals).all(|(o, a)| *o >= *a + Duration::from_millis(80)));
        let mut netem = Schedule::new(Delay::ms(100, 20), true, 3);
        let out: Vec<Instant> = arrivals.iter().map(|a| netem.release(*a)).collect();
        assert!(out.windows(2).any(|w| w[0] > w[1]), "with reordering some packets overtake");
        assert!(out.iter().zip(&arrivals).all(|(o, a)| *o - *a <= Duration::from_millis(120)));
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let mut a = Schedule::new(Delay::ms(50, 10), true, 42);
        let mut b = Schedule::new(Delay::ms(50, 10), true, 42);
        assert!((0..100).all(|_| a.draw() == b.draw()));
        assert_ne!(XorShift::new(0).next_u64(), 0);
    }
}
