//! Which WebRTC peers the engine must poll, and when: no IO, no clock of its own.
//!
//! A str0m peer needs polling after something was fed to it (a datagram, a media write, an
//! answer) and when its own timeout falls due; polling it otherwise finds nothing to do. With
//! dozens of peers on one engine, polling every peer after every event costs O(peers) per
//! event; [`PollSchedule`] keeps the touched peers and a deadline heap so that each wake-up
//! polls only those that need it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::hash::Hash;
use std::time::Instant;

/// Touched peers and each peer's next deadline.
#[derive(Debug)]
pub struct PollSchedule<K> {
    touched: HashSet<K>,
    /// The current deadline of each known peer.
    deadlines: HashMap<K, Instant>,
    /// Deadlines with lazy deletion: an entry counts only while it matches `deadlines`.
    heap: BinaryHeap<Reverse<(Instant, K)>>,
}

impl<K> Default for PollSchedule<K> {
    fn default() -> Self {
        Self { touched: HashSet::new(), deadlines: HashMap::new(), heap: BinaryHeap::new() }
    }
}

impl<K: Clone + Eq + Hash + Ord> PollSchedule<K> {
    /// An empty schedule.
    pub fn new() -> Self {
        Self::default()
    }

    /// Something was fed to `key`: poll it at the next [`PollSchedule::take_due`].
    pub fn touch(&mut self, key: &K) {
        if !self.touched.contains(key) {
            self.touched.insert(key.clone());
        }
    }

    /// Records when `key` next needs polling (what its last poll returned).
    pub fn set_deadline(&mut self, key: &K, at: Instant) {
        if self.deadlines.insert(key.clone(), at) != Some(at) {
            self.heap.push(Reverse((at, key.clone())));
        }
        self.compact();
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &K) {
        self.touched.remove(key);
        self.deadlines.remove(key);
        self.compact();
    }

    /// The peers to poll at `now`, each once, in key order: those touched since the last call
    /// and those whose deadline is at or before `now`. The flag says the deadline passed (the
    /// peer must be given the time before it is polled). Their deadlines are cleared: polling
    /// sets new ones.
    pub fn take_due(&mut self, now: Instant) -> Vec<(K, bool)> {
        let mut due: BTreeMap<K, bool> = self.touched.drain().map(|k| (k, false)).collect();
        while let Some(Reverse((at, _))) = self.heap.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.heap.pop() else { break };
            if self.deadlines.get(&key) == Some(&at) {
                self.deadlines.remove(&key);
                due.insert(key, true);
            }
        }
        due.into_iter().collect()
    }

    /// The earliest deadline of any peer.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, key))) = self.heap.peek() {
            if self.deadlines.get(key) == Some(at) {
                return Some(*at);
            }
            self.heap.pop();
        }
        None
    }

    /// Whether some peer was touched and waits for its poll.
    pub fn has_touched(&self) -> bool {
        !self.touched.is_empty()
    }

    /// Drops stale heap entries once they outnumber the live ones, so that a peer whose
    /// deadline moves on every poll cannot grow the heap without bound.
    fn compact(&mut self) {
        if self.heap.len() > 2 * self.deadlines.len() + 64 {
            let live = &self.deadlines;
            self.heap.retain(|Reverse((at, k))| live.get(k) == Some(at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn polls_touched_peers_and_peers_whose_deadline_passed() {
        let t0 = Instant::now();
        let mut s = PollSchedule::new();
        s.set_deadline(&1, ms(t0, 10));
        s.set_deadline(&2, ms(t0, 20));
        s.set_deadline(&3, ms(t0, 30));
        assert_eq!(s.take_due(ms(t0, 5)), vec![]);
        assert_eq!(s.next_deadline(), Some(ms(t0, 10)));
        s.touch(&3);
        s.touch(&3);
        s.touch(&2);
        assert!(s.has_touched());
        assert_eq!(s.take_due(ms(t0, 10)), vec![(1, true), (2, false), (3, false)]);
        assert!(!s.has_touched());
        // Touched peers keep their deadline until polling sets a new one; 1's was taken.
        assert_eq!(s.take_due(ms(t0, 25)), vec![(2, true)]);
        assert_eq!(s.next_deadline(), Some(ms(t0, 30)));
        assert_eq!(s.take_due(ms(t0, 30)), vec![(3, true)]);
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn a_moved_deadline_replaces_the_old_one() {
        let t0 = Instant::now();
        let mut s = PollSchedule::new();
        s.set_deadline(&"a", ms(t0, 10));
        s.set_deadline(&"a", ms(t0, 50));
        assert_eq!(s.next_deadline(), Some(ms(t0, 50)));
        assert!(s.take_due(ms(t0, 20)).is_empty());
        s.set_deadline(&"a", ms(t0, 15));
        assert_eq!(s.take_due(ms(t0, 20)), vec![("a", true)]);
        // Once taken, a peer is due again only after it is polled and given a deadline.
        assert!(s.take_due(ms(t0, 100)).is_empty());
    }

    #[test]
    fn removed_peers_are_never_due() {
        let t0 = Instant::now();
        let mut s = PollSchedule::new();
        s.set_deadline(&7, ms(t0, 1));
        s.touch(&7);
        s.remove(&7);
        assert!(s.take_due(ms(t0, 10)).is_empty());
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn a_deadline_that_moves_on_every_poll_keeps_the_heap_small() {
        let t0 = Instant::now();
        let mut s = PollSchedule::new();
        for peer in 0..10 {
            s.set_deadline(&peer, ms(t0, 1_000));
        }
        for i in 0..10_000 {
            s.set_deadline(&(i % 10), ms(t0, 2_000 + i));
        }
        assert!(s.heap.len() <= 2 * 10 + 65, "{}", s.heap.len());
        assert_eq!(s.next_deadline(), Some(ms(t0, 2_000 + 9_990)));
        assert_eq!(s.take_due(ms(t0, 20_000)).len(), 10);
    }
}
