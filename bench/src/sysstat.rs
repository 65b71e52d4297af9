//! CPU time and memory of processes, from /proc.

use std::time::Duration;

/// /proc reports CPU time in USER_HZ ticks, 100 per second on every Linux architecture we run.
const USER_HZ: f64 = 100.0;

/// Fields of /proc/<pid>/stat after the command name (field 3 = index 0).
fn stat_fields(pid: &str) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(") ")?;
    // Field 3 (state) is a letter: keep numbering by mapping it to 0.
    Some(rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect())
}

fn ticks(t: u64) -> Duration {
    Duration::from_secs_f64(t as f64 / USER_HZ)
}

/// User + system CPU time of `pid` (10 ms resolution).
pub fn cpu(pid: i32) -> Option<Duration> {
    let f = stat_fields(&pid.to_string())?;
    // utime, stime are fields 14 and 15 → indices 11 and 12.
    Some(ticks(f.get(11)? + f.get(12)?))
}

/// This process's own CPU time (all threads).
pub fn self_cpu() -> Duration {
    retrofarm_emulator::process_cpu_time()
}

/// Parent pid of `pid`.
pub fn ppid(pid: i32) -> Option<i32> {
    stat_fields(&pid.to_string()).and_then(|f| f.get(1).map(|&p| p as i32))
}

/// Live children of `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| ppid(p) == Some(pid))
        .collect()
}

/// A `Key:  123 kB` line of a /proc file, in KiB.
fn kib(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| l.strip_prefix(key)?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// Resident set size of `pid`, KiB.
pub fn rss_kib(pid: i32) -> Option<u64> {
    kib(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// Proportional set size of `pid` (shared pages split among their users), KiB.
pub fn pss_kib(pid: i32) -> Option<u64> {
    kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}

/// Whole-machine CPU counters from the `cpu` line of /proc/stat, in ticks summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineCpu {
    /// Ticks this machine's CPUs ran something: user, nice, system, irq and softirq (guest time
    /// is inside user and nice). Not idle, iowait or steal.
    pub busy: u64,
    /// Steal: ticks a CPU of this VM had work but the hypervisor ran something else (another VM,
    /// the host's own jobs). Zero on bare metal.
    pub steal: u64,
    /// Ticks spent running this machine's own guests (guest + guest_nice; already in `busy`).
    pub guest: u64,
    /// All ticks: busy + idle + iowait + steal.
    pub total: u64,
}

impl MachineCpu {
    /// Reads /proc/stat (all zero where it cannot be read).
    pub fn now() -> Self {
        Self::parse(&std::fs::read_to_string("/proc/stat").unwrap_or_default()).unwrap_or_default()
    }

    /// The counters of the `cpu ` line (all CPUs) of a /proc/stat text; `None` without one.
    /// Columns an older kernel does not have (steal before 2.6.11, guest before 2.6.24) read 0.
    pub fn parse(text: &str) -> Option<Self> {
        let line = text.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal guest guest_nice
        let busy = at(0) + at(1) + at(2) + at(5) + at(6);
        let steal = at(7);
        Some(Self { busy, steal, guest: at(8) + at(9), total: busy + at(3) + at(4) + steal })
    }

    /// Busy cores between `earlier` and `self`, over `wall` (steal is not in them).
    pub fn busy_cores_since(&self, earlier: &Self, wall: Duration) -> f64 {
        ticks(self.busy.saturating_sub(earlier.busy)).as_secs_f64() / wall.as_secs_f64()
    }

    /// Cores stolen by the hypervisor between `earlier` and `self`, over `wall`.
    pub fn steal_cores_since(&self, earlier: &Self, wall: Duration) -> f64 {
        ticks(self.steal.saturating_sub(earlier.steal)).as_secs_f64() / wall.as_secs_f64()
    }

    /// Steal between `earlier` and `self` as a share (0..=1) of all the machine's CPU time;
    /// 0 when no tick passed.
    pub fn steal_share_since(&self, earlier: &Self) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            0.0
        } else {
            self.steal.saturating_sub(earlier.steal) as f64 / total as f64
        }
    }
}

/// Number of CPUs.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The CPU model from /proc/cpuinfo.
pub fn cpu_model() -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id() as i32;
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_millis(50) {}
        assert!(cpu(me).unwrap() > Duration::ZERO);
        assert!(rss_kib(me).unwrap() > 100);
        assert!(pss_kib(me).unwrap() > 0);
        assert!(ppid(me).unwrap() > 0);
        assert!(!cpu_model().is_empty());
        let m = MachineCpu::now();
        assert!(m.total >= m.busy + m.steal && m.total > 0);
    }

    #[test]
    fn parses_steal_from_proc_stat() {
        // A 2-CPU VM, one second (200 ticks) apart: 40 ticks stolen = 20 % of the machine.
        let before = "cpu  1000 10 500 6000 20 0 30 400 0 0\n\
                      cpu0 500 5 250 3000 10 0 15 200 0 0\n\
                      cpu1 500 5 250 3000 10 0 15 200 0 0\n\
                      intr 12345 0 0\nctxt 999\n";
        let after = "cpu  1080 10 520 6050 20 0 40 440 0 0\ncpu0 540 5 260 3025 10 0 20 220 0 0\n";
        let a = MachineCpu::parse(before).unwrap();
        assert_eq!(a, MachineCpu { busy: 1000 + 10 + 500 + 30, steal: 400, guest: 0, total: 7960 });
        let b = MachineCpu::parse(after).unwrap();
        assert_eq!(b.total - a.total, 200);
        assert!((b.steal_share_since(&a) - 0.20).abs() < 1e-9);
        let wall = Duration::from_secs(1);
        assert!((b.steal_cores_since(&a, wall) - 0.40).abs() < 1e-9);
        // Steal is not busy time: user 80 + system 20 + softirq 10 ticks.
        assert!((b.busy_cores_since(&a, wall) - 1.10).abs() < 1e-9);
        assert_eq!(a.steal_share_since(&a), 0.0);
        // Guest time (inside user and nice) is read apart.
        assert_eq!(MachineCpu::parse("cpu 100 20 0 0 0 0 0 0 60 15").unwrap().guest, 75);
        // An old kernel's four columns: no steal; no `cpu` line: nothing.
        assert_eq!(MachineCpu::parse("cpu 1 2 3 4\n").unwrap(), MachineCpu { busy: 6, steal: 0, guest: 0, total: 10 });
        assert_eq!(MachineCpu::parse("cpu0 1 2 3 4\nintr 5\n"), None);
    }
}
