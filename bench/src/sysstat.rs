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

/// Whole-machine CPU counters from /proc/stat.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    /// Busy ticks (all but idle and iowait), summed over CPUs.
    pub busy: u64,
    /// All ticks, summed over CPUs.
    pub total: u64,
}

impl MachineCpu {
    /// Reads /proc/stat.
    pub fn now() -> Self {
        let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else { return Self::default() };
        let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal (guest times are inside user).
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        Self { busy: total - idle, total }
    }

    /// Busy cores between `earlier` and `self`, over `wall`.
    pub fn busy_cores_since(&self, earlier: &Self, wall: Duration) -> f64 {
        ticks(self.busy.saturating_sub(earlier.busy)).as_secs_f64() / wall.as_secs_f64()
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
        assert!(m.total >= m.busy && m.total > 0);
    }
}
