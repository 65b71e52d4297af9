//! Admission by measured cost: how many rooms this host can hold at full rate.
//!
//! The engine samples, once a second, the CPU its rooms used (the emulators' time in
//! `retro_run` plus the worker process's own time: conversion, encoding, audio, SRTP) and the
//! number of rooms. The per-room cost is smoothed; capacity is the CPU budget divided by it.
//! Until a room has been measured, a configured prior stands in.
//!
//! With NVENC, rooms come in two kinds: those whose H264 stream NVENC encodes (cheap on the
//! CPU) and, once its sessions are spent, those that encode on openh264. [`RoomCosts`] measures
//! each kind's cost, and [`mixed_capacity`] counts the sessions: the first rooms are the cheap
//! ones, every room past the session budget costs what a CPU room does.

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

/// The CPU cost of rooms encoding on NVENC and of rooms encoding on the CPU, each smoothed.
#[derive(Debug, Clone)]
pub struct RoomCosts {
    /// Rooms whose H264 stream NVENC encodes.
    pub nvenc: CostMeter,
    /// Rooms that encode on the CPU.
    pub cpu: CostMeter,
}

impl RoomCosts {
    /// Both kinds start at `prior` cores per room.
    pub fn new(prior: f64) -> Self {
        Self { nvenc: CostMeter::new(prior), cpu: CostMeter::new(prior) }
    }

    /// Adds a sample: `cpu` used over `wall` by `rooms` rooms, `on_nvenc` of them encoding on
    /// NVENC. A mixed sample is split with the kind measured before (when neither was, both
    /// get the average).
    pub fn sample(&mut self, cpu: Duration, wall: Duration, rooms: usize, on_nvenc: usize) {
        let on_nvenc = on_nvenc.min(rooms);
        let on_cpu = rooms - on_nvenc;
        if on_cpu == 0 {
            return self.nvenc.sample(cpu, wall, rooms);
        }
        if on_nvenc == 0 {
            return self.cpu.sample(cpu, wall, rooms);
        }
        let share =
            |meter: &CostMeter, n: usize| Duration::from_secs_f64(meter.per_room() * wall.as_secs_f64() * n as f64);
        if self.nvenc.measured() {
            self.cpu.sample(cpu.saturating_sub(share(&self.nvenc, on_nvenc)), wall, on_cpu);
        } else if self.cpu.measured() {
            self.nvenc.sample(cpu.saturating_sub(share(&self.cpu, on_cpu)), wall, on_nvenc);
        } else {
            self.nvenc.sample(cpu, wall, rooms);
            self.cpu.sample(cpu, wall, rooms);
        }
    }
}

/// Rooms a host holds at full rate when the first `sessions` rooms encode on NVENC at
/// `nvenc_cores` each and the rest on the CPU at `cpu_cores` each, within `budget_cores` and
/// `max_rooms`. With no sessions this is [`capacity`] at the CPU cost.
pub fn mixed_capacity(budget_cores: f64, nvenc_cores: f64, cpu_cores: f64, sessions: u32, max_rooms: u32) -> u32 {
    let on_nvenc = capacity(budget_cores, nvenc_cores, sessions);
    if on_nvenc < sessions {
        // The CPU runs out before the sessions do.
        return on_nvenc.min(max_rooms);
    }
    let left = budget_cores - f64::from(sessions) * nvenc_cores.max(0.0);
    sessions.saturating_add(capacity(left, cpu_cores, max_rooms)).min(max_rooms)
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

    #[test]
    fn rooms_past_the_nvenc_sessions_cost_what_cpu_rooms_do() {
        // 4 cores; NVENC rooms 0.05, CPU rooms 0.25.
        assert_eq!(mixed_capacity(4.0, 0.05, 0.25, 0, 100), 16, "no NVENC: CPU rooms only");
        assert_eq!(mixed_capacity(4.0, 0.05, 0.25, 32, 200), 32 + 9, "32 cheap rooms (1.6 cores), then 2.4 / 0.25");
        assert_eq!(mixed_capacity(4.0, 0.05, 0.25, 100, 200), 80, "the CPU runs out before the sessions");
        assert_eq!(mixed_capacity(4.0, 0.05, 0.25, 32, 20), 20, "capped");
        // Counting sessions never admits more than the cheap cost alone would.
        for sessions in [0, 1, 8, 32, 79, 80, 81, 500] {
            assert!(mixed_capacity(4.0, 0.05, 0.25, sessions, 1000) <= capacity(4.0, 0.05, 1000));
        }
    }

    #[test]
    fn mixed_samples_are_split_with_what_is_known() {
        let mut c = RoomCosts::new(0.1);
        c.sample(Duration::from_millis(200), S, 4, 4); // 0.05 per NVENC room
        assert!((c.nvenc.per_room() - 0.05).abs() < 1e-9 && !c.cpu.measured());
        c.sample(Duration::from_millis(700), S, 6, 4); // 0.2 for NVENC rooms, 0.5 for 2 CPU rooms
        assert!((c.cpu.per_room() - 0.25).abs() < 1e-9, "{c:?}");
        assert!((c.nvenc.per_room() - 0.05).abs() < 1e-9, "the known kind is left alone");
        let mut fresh = RoomCosts::new(0.1);
        fresh.sample(Duration::from_millis(600), S, 4, 2);
        assert!((fresh.nvenc.per_room() - 0.15).abs() < 1e-9 && (fresh.cpu.per_room() - 0.15).abs() < 1e-9);
    }
}
