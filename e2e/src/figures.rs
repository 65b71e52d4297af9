//! Figures of a received stream, from a [`Recording`] (made by
//! [`crate::player::Player::record`]): decoded frames per second, freezes (gaps between decoded
//! frames), recovery after an event, and the received bitrate per window.

use std::fmt;
use std::ops::Range;
use std::time::{Duration, Instant};

/// A gap between decoded frames longer than this is a freeze a player notices.
pub const FREEZE: Duration = Duration::from_millis(200);

/// One received video frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// When it came, from the recording's start.
    pub at: Duration,
    /// Its size (an H264 access unit).
    pub bytes: usize,
    /// Whether it was shown: a picture came out of the decoder, and no loss since the last
    /// keyframe (a browser drops such frames; the decoder would show a concealed picture).
    pub decoded: bool,
    /// Whether it is a keyframe (an IDR).
    pub keyframe: bool,
}

/// What a player received over a while.
#[derive(Debug, Clone)]
pub struct Recording {
    /// When it started.
    pub start: Instant,
    /// How long it ran.
    pub length: Duration,
    /// The bitrate window.
    pub window: Duration,
    /// Every video frame, in order.
    pub frames: Vec<Frame>,
    /// Opus packets received.
    pub audio_packets: usize,
    /// Bytes the socket received in each whole window (`i`: from `i * window`).
    pub wire_bytes: Vec<u64>,
}

/// Figures over a span of a [`Recording`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// The span.
    pub span: Duration,
    /// Video frames received.
    pub frames: usize,
    /// Of them, decoded.
    pub decoded: usize,
    /// Decoded frames per second.
    pub decoded_fps: f64,
    /// The longest time without a decoded frame (the span's edges count as frames).
    pub longest_gap: Duration,
    /// Total time in gaps longer than [`FREEZE`].
    pub frozen: Duration,
    /// How many such gaps.
    pub freezes: usize,
    /// The mean received rate over the whole windows in the span, kbit/s.
    pub kbps: f64,
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.1} s: {} frames, {} decoded ({:.1} fps), longest gap {} ms, frozen {} ms in {} freezes > {} ms, {:.0} kbit/s",
            self.span.as_secs_f64(),
            self.frames,
            self.decoded,
            self.decoded_fps,
            self.longest_gap.as_millis(),
            self.frozen.as_millis(),
            self.freezes,
            FREEZE.as_millis(),
            self.kbps
        )
    }
}

impl Recording {
    /// An empty recording starting at `start`.
    pub fn new(start: Instant, window: Duration) -> Self {
        Self { start, length: Duration::ZERO, window, frames: vec![], audio_packets: 0, wire_bytes: vec![] }
    }

    /// `t` as an offset from the start (zero before it).
    pub fn offset(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.start)
    }

    /// Figures over the whole recording.
    pub fn figures(&self) -> Figures {
        self.figures_in(Duration::ZERO..self.length)
    }

    /// Figures over `span` (offsets from the start).
    pub fn figures_in(&self, span: Range<Duration>) -> Figures {
        let inside: Vec<&Frame> = self.frames.iter().filter(|f| span.contains(&f.at)).collect();
        let decoded: Vec<Duration> = inside.iter().filter(|f| f.decoded).map(|f| f.at).collect();
        let gaps = gaps(&decoded, span.clone());
        let long: Vec<Duration> = gaps.iter().copied().filter(|g| *g > FREEZE).collect();
        let len = span.end.saturating_sub(span.start);
        Figures {
            span: len,
            frames: inside.len(),
            decoded: decoded.len(),
            decoded_fps: if len.is_zero() { 0.0 } else { decoded.len() as f64 / len.as_secs_f64() },
            longest_gap: gaps.iter().copied().max().unwrap_or(len),
            frozen: long.iter().sum(),
            freezes: long.len(),
            kbps: mean(&self.kbps_in(span)),
        }
    }

    /// From `t` to the first decoded frame after it; `None` when none came.
    pub fn recovery_after(&self, t: Duration) -> Option<Duration> {
        self.frames.iter().find(|f| f.decoded && f.at >= t).map(|f| f.at - t)
    }

    /// From `t` to the first decoded frame after it that starts `steady` (or the rest of the
    /// recording, when shorter) of playback without a freeze; `None` when none did.
    pub fn steady_after(&self, t: Duration, steady: Duration) -> Option<Duration> {
        let shown: Vec<Duration> = self.frames.iter().filter(|f| f.decoded && f.at >= t).map(|f| f.at).collect();
        shown.iter().find_map(|&from| {
            let to = (from + steady).min(self.length);
            gaps(&shown, from..to).iter().all(|g| *g <= FREEZE).then(|| from - t)
        })
    }

    /// Keyframes received in `span`.
    pub fn keyframes_in(&self, span: Range<Duration>) -> usize {
        self.frames.iter().filter(|f| f.keyframe && span.contains(&f.at)).count()
    }

    /// The received rate in each whole window, kbit/s.
    pub fn wire_kbps(&self) -> Vec<f64> {
        self.wire_bytes.iter().map(|b| *b as f64 * 8.0 / 1000.0 / self.window.as_secs_f64()).collect()
    }

    /// The rates of the windows wholly inside `span`, kbit/s.
    pub fn kbps_in(&self, span: Range<Duration>) -> Vec<f64> {
        self.wire_kbps()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| {
                let (a, b) = (self.window * *i as u32, self.window * (*i as u32 + 1));
                a >= span.start && b <= span.end
            })
            .map(|(_, k)| k)
            .collect()
    }
}

/// Whether an H264 access unit (Annex B) holds an IDR slice.
pub fn is_idr(au: &[u8]) -> bool {
    let mut i = 0;
    while i + 3 < au.len() {
        if au[i..i + 3] == [0, 0, 1] {
            if au[i + 3] & 0x1f == 5 {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

/// The times between `span`'s start, each decoded frame in `times` (sorted), and its end.
pub fn gaps(times: &[Duration], span: Range<Duration>) -> Vec<Duration> {
    let mut points = vec![span.start];
    points.extend(times.iter().copied().filter(|t| span.contains(t)));
    points.push(span.end);
    points.windows(2).map(|w| w[1].saturating_sub(w[0])).collect()
}

/// The mean; 0 when empty.
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Rates as a short line: `1830 1790 …` kbit/s.
pub fn kbps_line(v: &[f64]) -> String {
    v.iter().map(|k| format!("{k:.0}")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn rec(decoded_at: &[u64], failed_at: &[u64], length: u64, wire: &[u64]) -> Recording {
        let mut r = Recording::new(Instant::now(), ms(500));
        let mut frames: Vec<Frame> = decoded_at
            .iter()
            .map(|t| Frame { at: ms(*t), bytes: 100, decoded: true, keyframe: false })
            .chain(failed_at.iter().map(|t| Frame { at: ms(*t), bytes: 50, decoded: false, keyframe: true }))
            .collect();
        frames.sort_by_key(|f| f.at);
        r.frames = frames;
        r.length = ms(length);
        r.wire_bytes = wire.to_vec();
        r
    }

    #[test]
    fn gaps_count_the_edges() {
        assert_eq!(gaps(&[ms(100), ms(150)], ms(0)..ms(400)), [ms(100), ms(50), ms(250)]);
        assert_eq!(gaps(&[], ms(0)..ms(400)), [ms(400)]);
        assert_eq!(gaps(&[ms(50), ms(500)], ms(100)..ms(400)), [ms(300)]);
    }

    #[test]
    fn freezes_and_rates() {
        // 60 fps for 1 s, nothing for 600 ms (two undecodable frames), 60 fps for 400 ms.
        let mut decoded: Vec<u64> = (0..60).map(|i| i * 1000 / 60).collect();
        decoded.extend((0..24).map(|i| 1600 + i * 1000 / 60));
        let r = rec(&decoded, &[1200, 1300], 2000, &[125_000, 125_000, 0, 62_500]);
        let f = r.figures();
        assert_eq!((f.frames, f.decoded), (86, 84));
        assert!((f.decoded_fps - 42.0).abs() < 0.01, "{}", f.decoded_fps);
        assert_eq!(f.longest_gap, ms(1600 - 983));
        assert_eq!((f.frozen, f.freezes), (ms(617), 1));
        assert_eq!(r.wire_kbps(), [2000.0, 2000.0, 0.0, 1000.0]);
        assert_eq!(f.kbps, 1250.0);
        assert_eq!(r.kbps_in(ms(500)..ms(1600)), [2000.0, 0.0]);
        assert_eq!(r.recovery_after(ms(1100)), Some(ms(500)));
        assert_eq!(r.recovery_after(ms(2100)), None);
        // Steady from the first frame after 1.6 s (the last 400 ms of the recording count).
        assert_eq!(r.steady_after(ms(1100), Duration::from_secs(1)), Some(ms(500)));
        assert_eq!(r.steady_after(ms(0), Duration::from_secs(1)), Some(ms(0)));
        assert_eq!(r.keyframes_in(ms(0)..ms(2000)), 2);
        let first = r.figures_in(ms(0)..ms(1000));
        assert_eq!((first.decoded, first.freezes), (60, 0));
        assert!(f.to_string().contains("84 decoded (42.0 fps), longest gap 617 ms, frozen 617 ms in 1 freezes"));
        assert_eq!(kbps_line(&r.wire_kbps()), "2000 2000 0 1000");
    }

    #[test]
    fn idr_slices_are_found() {
        assert!(is_idr(&[0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 9]));
        assert!(!is_idr(&[0, 0, 0, 1, 0x41, 0x65, 0, 0, 1]));
        assert!(!is_idr(&[]));
    }

    #[test]
    fn nothing_decoded_is_one_long_freeze() {
        let f = rec(&[], &[100, 200], 3000, &[]).figures();
        assert_eq!((f.decoded, f.longest_gap, f.frozen, f.freezes, f.kbps), (0, ms(3000), ms(3000), 1, 0.0));
        assert_eq!(mean(&[]), 0.0);
    }
}
