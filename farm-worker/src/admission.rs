//! Admission by measured cost: how many rooms this host can hold at full rate.
//!
//! The engine samples, once a second, the CPU its rooms used (the emulators' time in
//! `retro_run` plus the worker process's own time: conversion, encoding, audio, SRTP) and the
//! number of rooms. The per-room cost is smoothed; capacity is the CPU budget divided by it.
//! Until a room has been measured, a configured prior stands in.

use std::time::Duration;

/// Smoothed CPU cost of one room, in cores.
#[derive(Debug, Clone)]
pub struct CostMeter {
    prior: f64,
    estimate: Option<f64>,
    alpha: f64,
}

impl CostMeter {
    /// A meter that reports `prior` cores per room until it has measured one.
    pub fn new(prior: f64) -> Self {
        Self { prior, estimate: None, alpha: 0.3 }
    }

    /// Adds a sample: `cpu` used by `rooms` rooms over `wall`.
    pub fn sample(&mut self, cpu: Duration, wall: Duration, rooms: usize) {
        if rooms == 0 || wall.is_zero() {
            return;
        }
        let per_room = cpu.as_secs_f64() / wall.as_secs_f64() / rooms as f64;
        self.estimate = Some(match self.estimate {
            None => per_room,
            Some(e) => e + self.alpha * (per_room - e),
        });
    }

    /// Cores per room: measured, else the prior.
    pub fn per_room(&self) -> f64 {
        self.estimate.unwrap_or(self.prior)
    }

    /// Whether a measurement exists.
    pub fn measured(&self) -> bool {
        self.estimate.is_some()
    }
}

/// Rooms a host holds at full rate: the CPU budget over the per-room cost, capped by the
/// configured maximum.
pub fn capacity(budget_cores: f64, per_room_cores: f64, max_rooms: u32) -> u32 {
    if per_room_cores <= 0.0 {
        return max_rooms;
    }
    ((budget_cores / per_room_cores).floor().max(0.0) as u32).min(max_rooms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn prior_until_measured_then_smoothed() {
        let mut m = CostMeter::new(0.1);
        assert_eq!(m.per_room(), 0.1);
        m.sample(Duration::from_millis(500), S, 0);
        assert!(!m.measured(), "no rooms, no sample");
        m.sample(Duration::from_millis(160), S, 4); // 0.04 cores per room
        assert!((m.per_room() - 0.04).abs() < 1e-9);
        for _ in 0..50 {
            m.sample(Duration::from_millis(240), S, 4); // 0.06
        }
        assert!((m.per_room() - 0.06).abs() < 1e-3);
    }

    #[test]
    fn capacity_is_budget_over_cost_capped() {
        assert_eq!(capacity(1.8, 0.06, 100), 30);
        assert_eq!(capacity(1.8, 0.06, 16), 16);
        assert_eq!(capacity(0.05, 0.06, 16), 0);
        assert_eq!(capacity(1.0, 0.0, 7), 7);
    }
}
