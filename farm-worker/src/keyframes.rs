//! Keyframe requests, rate-limited. A keyframe is several times a P-frame's size: on a lossy link
//! a burst of PLIs answered one by one would send keyframe after keyframe, each lost again, and
//! on a shared stream one viewer's losses would cost every viewer. A stream gets at most one
//! keyframe per interval; a request inside it is kept and answered when the interval ends, so
//! none is lost.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// The least time between two keyframes of one stream.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_millis(300);

/// Per stream (`K`: a room and codec), when it last got a keyframe and when a deferred request
/// is due.
#[derive(Debug)]
pub struct KeyframeLimit<K> {
    interval: Duration,
    last: HashMap<K, Instant>,
    due: HashMap<K, Instant>,
}

impl<K: Hash + Eq + Clone> KeyframeLimit<K> {
    /// At most one keyframe per `interval` per stream.
    pub fn new(interval: Duration) -> Self {
        Self { interval, last: HashMap::new(), due: HashMap::new() }
    }

    /// A request for `key` at `now`: true to make the keyframe now; false when it waits for the
    /// interval's end ([`Self::take_due`]).
    pub fn request(&mut self, now: Instant, key: K) -> bool {
        match self.last.get(&key) {
            Some(last) if now.duration_since(*last) < self.interval => {
                let at = *last + self.interval;
                self.due.entry(key).or_insert(at);
                false
            }
            _ => {
                self.due.remove(&key);
                self.last.insert(key, now);
                true
            }
        }
    }

    /// The deferred requests whose time has come: make their keyframes now.
    pub fn take_due(&mut self, now: Instant) -> Vec<K> {
        let ready: Vec<K> = self.due.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
        for k in &ready {
            self.due.remove(k);
            self.last.insert(k.clone(), now);
        }
        ready
    }

    /// When the next deferred request is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// Forgets the streams `gone` picks (a closed room).
    pub fn forget(&mut self, mut gone: impl FnMut(&K) -> bool) {
        self.last.retain(|k, _| !gone(k));
        self.due.retain(|k, _| !gone(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_burst_of_requests_gets_one_keyframe_now_and_one_at_the_interval_end() {
        let t0 = Instant::now();
        let mut k = KeyframeLimit::new(300 * MS);
        assert!(k.request(t0, "a"));
        assert!(!k.request(t0 + 10 * MS, "a"));
        assert!(!k.request(t0 + 20 * MS, "a"), "one deferred request stands for all");
        assert!(k.request(t0 + 20 * MS, "b"), "streams are limited apart");
        assert_eq!(k.next_due(), Some(t0 + 300 * MS));
        assert!(k.take_due(t0 + 299 * MS).is_empty());
        assert_eq!(k.take_due(t0 + 300 * MS), vec!["a"]);
        assert_eq!(k.next_due(), None);
        assert!(!k.request(t0 + 400 * MS, "a"), "the deferred keyframe counts");
        assert!(k.request(t0 + 600 * MS, "a"));
        assert_eq!(k.next_due(), None, "answered now: the deferred one is dropped");
    }

    #[test]
    fn forgotten_streams_start_afresh() {
        let t0 = Instant::now();
        let mut k = KeyframeLimit::new(300 * MS);
        assert!(k.request(t0, ("room", 1)));
        assert!(!k.request(t0 + MS, ("room", 1)));
        k.forget(|(room, _)| *room == "room");
        assert_eq!(k.next_due(), None);
        assert!(k.request(t0 + 2 * MS, ("room", 1)));
    }
}
