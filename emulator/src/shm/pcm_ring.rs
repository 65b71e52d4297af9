//! The PCM ring: interleaved i16 stereo at the core's own rate, one `AtomicU32` per stereo
//! frame (left in the low 16 bits), with monotonically growing indexes.
//!
//! The writer first raises `pcm_claim` (the index it is about to reach), then stores samples,
//! then publishes `pcm_written` (Release). The reader copies `[read, written)` and afterwards
//! re-reads `pcm_claim`: anything older than `claim - capacity` may have been overwritten during
//! the copy and is discarded and counted. The writer never waits.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use super::layout::Layout;
use super::region::Region;

fn pack(l: i16, r: i16) -> u32 {
    u32::from(l as u16) | (u32::from(r as u16) << 16)
}

fn unpack(v: u32) -> (i16, i16) {
    (v as u16 as i16, (v >> 16) as u16 as i16)
}

/// Appends interleaved stereo samples (`[l, r, l, r, ...]`; an odd trailing sample is ignored).
/// If more than the ring's capacity arrives at once only the newest samples are kept.
pub fn push(region: &Region, layout: &Layout, samples: &[i16]) {
    let ring = region.pcm(layout);
    let w = &region.header().writer;
    let frames = samples.len() / 2;
    if frames == 0 {
        return;
    }
    let cap = layout.pcm_capacity as usize;
    let start = w.pcm_written.load(Ordering::Relaxed);
    let skip = frames.saturating_sub(cap);
    let end = start + frames as u64;
    w.pcm_claim.store(end, Ordering::Relaxed);
    fence(Ordering::Release);
    let mask = layout.pcm_capacity - 1;
    for (i, pair) in samples.chunks_exact(2).enumerate().skip(skip) {
        let idx = ((start + i as u64) & mask) as usize;
        ring[idx].store(pack(pair[0], pair[1]), Ordering::Relaxed);
    }
    w.pcm_written.store(end, Ordering::Release);
}

/// Reader-side cursor over the PCM ring (one consumer).
#[derive(Debug, Default)]
pub struct PcmReader {
    read: AtomicU64,
    dropped: AtomicU64,
}

impl PcmReader {
    /// A reader starting at sample frame 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stereo frames lost because the reader fell more than a ring behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stereo frames consumed (or dropped) so far.
    pub fn position(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Appends every new stereo frame to `out` as interleaved i16; returns how many frames.
    pub fn drain(&self, region: &Region, layout: &Layout, out: &mut Vec<i16>) -> usize {
        let ring = region.pcm(layout);
        let w = &region.header().writer;
        let cap = layout.pcm_capacity;
        let mask = cap - 1;
        let written = w.pcm_written.load(Ordering::Acquire);
        let mut r = self.read.load(Ordering::Relaxed);
        if written <= r {
            return 0;
        }
        if written - r > cap {
            self.dropped.fetch_add(written - cap - r, Ordering::Relaxed);
            r = written - cap;
        }
        let base = out.len();
        out.reserve(((written - r) * 2) as usize);
        for i in r..written {
            let (lft, rgt) = unpack(ring[(i & mask) as usize].load(Ordering::Relaxed));
            out.push(lft);
            out.push(rgt);
        }
        fence(Ordering::Acquire);
        let claim = w.pcm_claim.load(Ordering::Relaxed);
        // Frames below `claim - cap` may have been overwritten while we copied.
        let safe_from = claim.saturating_sub(cap).max(r);
        if safe_from > r {
            let lost = (safe_from - r).min(written - r);
            out.drain(base..base + (lost * 2) as usize);
            self.dropped.fetch_add(lost, Ordering::Relaxed);
        }
        self.read.store(written, Ordering::Relaxed);
        (out.len() - base) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::testing::anon_region;

    #[test]
    fn pack_round_trips() {
        for (l, r) in [(0, 0), (-1, 1), (i16::MIN, i16::MAX), (1234, -4321)] {
            assert_eq!(unpack(pack(l, r)), (l, r));
        }
    }

    #[test]
    fn drains_in_order_and_wraps() {
        let l = Layout::new(1, 4096, 256).unwrap();
        let r = anon_region(&l);
        let rd = PcmReader::new();
        let mut out = Vec::new();
        let mut next = 0i16;
        for _ in 0..10 {
            let chunk: Vec<i16> = (0..200)
                .flat_map(|_| {
                    next = next.wrapping_add(1);
                    [next, -next]
                })
                .collect();
            push(&r, &l, &chunk);
            rd.drain(&r, &l, &mut out);
        }
        assert_eq!(out.len(), 2000 * 2);
        for (i, pair) in out.chunks(2).enumerate() {
            assert_eq!(pair[0], (i + 1) as i16);
            assert_eq!(pair[1], -((i + 1) as i16));
        }
        assert_eq!(rd.dropped(), 0);
    }

    #[test]
    fn a_slow_reader_loses_the_oldest_and_counts_them() {
        let l = Layout::new(1, 4096, 256).unwrap();
        let r = anon_region(&l);
        let rd = PcmReader::new();
        let samples: Vec<i16> = (0..1000i16).flat_map(|i| [i, i]).collect();
        push(&r, &l, &samples);
        let mut out = Vec::new();
        assert_eq!(rd.drain(&r, &l, &mut out), 256);
        assert_eq!(rd.dropped(), 1000 - 256);
        assert_eq!(out[0], 1000 - 256);
        assert_eq!(*out.last().unwrap(), 999);
    }
}
