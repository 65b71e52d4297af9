//! Reading the worker's `/metrics` (Prometheus text format): counters, histogram buckets, and
//! quantiles of the difference between two scrapes.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::{bail, Context, Result};

/// One scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    /// Parses the text exposition format.
    pub fn parse(text: &str) -> Self {
        let mut samples = vec![];
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = match line.rsplit_once(' ') {
                Some(x) => x,
                None => continue,
            };
            let Ok(value) = value.parse::<f64>() else { continue };
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, parse_labels(rest.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            samples.push((name.to_string(), labels, value));
        }
        Self { samples }
    }

    /// Sum of every series of `name` whose labels include all of `want`.
    pub fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| n == name && want.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(v)))
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Cumulative buckets `(le, count)` of histogram `name` with labels `want`, by `le`.
    pub fn buckets(&self, name: &str, want: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let bucket = format!("{name}_bucket");
        let mut out: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|(n, l, _)| *n == bucket && want.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(v)))
            .filter_map(|(_, l, v)| {
                let le = l.get("le")?;
                let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
                Some((le, *v))
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some((k, v)) = rest.split_once("=\"") {
        let Some(end) = v.find('"') else { break };
        out.insert(k.trim_start_matches(',').trim().to_string(), v[..end].to_string());
        rest = &v[end + 1..];
    }
    out
}

/// Bucket-wise difference `later - earlier` of cumulative buckets.
pub fn bucket_delta(later: &[(f64, f64)], earlier: &[(f64, f64)]) -> Vec<(f64, f64)> {
    later
        .iter()
        .map(|&(le, c)| {
            let before = earlier.iter().find(|(l, _)| *l == le).map_or(0.0, |(_, c)| *c);
            (le, c - before)
        })
        .collect()
}

/// Quantile `q` (0..1) of cumulative buckets, interpolating linearly inside the bucket that
/// holds it (as Prometheus' `histogram_quantile` does). NaN without observations.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let Some(&(_, total)) = buckets.last() else { return f64::NAN };
    if total <= 0.0 {
        return f64::NAN;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, c) in buckets {
        if c >= rank {
            if le.is_infinite() {
                return prev.0; // beyond the last finite bound: report that bound
            }
            let span = c - prev.1;
            let frac = if span > 0.0 { (rank - prev.1) / span } else { 1.0 };
            return prev.0 + (le - prev.0) * frac;
        }
        prev = (le, c);
    }
    prev.0
}

/// GETs `http://addr/metrics`.
pub fn fetch(addr: SocketAddr) -> Result<Scrape> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))
        .with_context(|| format!("connecting to the worker's metrics at {addr}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let Some((head, body)) = buf.split_once("\r\n\r\n") else { bail!("bad HTTP response from {addr}") };
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET /metrics: {}", head.lines().next().unwrap_or(""));
    }
    // axum answers with a content length; tolerate chunked encoding all the same.
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Ok(Scrape::parse(&dechunk(body)));
    }
    Ok(Scrape::parse(body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP retrofarm_frames_dropped_total Frames dropped before reaching viewers.
# TYPE retrofarm_frames_dropped_total counter
retrofarm_frames_dropped_total{gpu="cpu",reason="encoder_busy"} 3
retrofarm_frames_dropped_total{gpu="cpu",reason="ring_overrun"} 2
retrofarm_frames_emulated_total{gpu="cpu"} 1000
retrofarm_rooms 4
retrofarm_stage_latency_seconds_bucket{stage="sent",le="0.001"} 10
retrofarm_stage_latency_seconds_bucket{stage="sent",le="0.002"} 90
retrofarm_stage_latency_seconds_bucket{stage="sent",le="0.004"} 100
retrofarm_stage_latency_seconds_bucket{stage="sent",le="+Inf"} 100
retrofarm_stage_latency_seconds_bucket{stage="encoded",le="+Inf"} 7
"#;

    #[test]
    fn sums_and_histograms() {
        let s = Scrape::parse(TEXT);
        assert_eq!(s.sum("retrofarm_frames_dropped_total", &[]), 5.0);
        assert_eq!(s.sum("retrofarm_frames_dropped_total", &[("reason", "ring_overrun")]), 2.0);
        assert_eq!(s.sum("retrofarm_rooms", &[]), 4.0);
        let b = s.buckets("retrofarm_stage_latency_seconds", &[("stage", "sent")]);
        assert_eq!(b.len(), 4);
        assert!((quantile(&b, 0.5) - 0.0015).abs() < 1e-9);
        assert!((quantile(&b, 0.95) - 0.003).abs() < 1e-9);
        assert!((quantile(&b, 0.05) - 0.0005).abs() < 1e-9);
        let d = bucket_delta(&b, &[(0.001, 10.0), (0.002, 10.0), (0.004, 10.0), (f64::INFINITY, 10.0)]);
        assert_eq!(d[0].1, 0.0);
        assert!((quantile(&d, 0.5) - 0.001_562_5).abs() < 1e-9); // rank 45 of 90: 45/80 into (1 ms, 2 ms]
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn dechunks() {
        assert_eq!(dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "hello world");
    }
}
