//! The frame ring: N slots, each guarded by its own sequence word, one writer that never waits
//! and one reader that never sees a torn frame without being told.
//!
//! Frame `n` goes to slot `n % N`. The writer stores `seq = 2n + 1`, copies pixels, writes the
//! metadata and stores `seq = 2n + 2` (Release), then bumps `frames_published` to `n + 1`. The
//! reader loads `seq` (Acquire), reads metadata/pixels, and after use checks `seq` again: if it
//! changed, the writer lapped it and the frame is discarded. Before overwriting frame `n - N`,
//! the writer looks at the reader's cursor and counts a drop if that frame was never consumed.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use super::layout::{Header, Layout, SlotEntry, FLAG_DUPLICATE};
use super::region::Region;
use crate::av::PixelFormat;

/// What a slot's sequence word says about the frame a reader wants.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// The slot still holds an older frame; the wanted one is not written yet.
    NotYet,
    /// The wanted frame is being written right now.
    Writing,
    /// The wanted frame is complete.
    Ready,
    /// A newer frame has replaced (or is replacing) the wanted one.
    Overwritten,
}

/// Classifies sequence word `seq` for frame `frame`.
pub fn slot_state(seq: u64, frame: u64) -> SlotState {
    // No writer gets to frame 2^63 (its sequence words would overflow): a reader only looks
    // for one that far when a corrupt `frames_published` sent it there, and it is never ready.
    let Some(ready) = frame.checked_mul(2).and_then(|f| f.checked_add(2)) else {
        return SlotState::NotYet;
    };
    match seq.cmp(&ready) {
        std::cmp::Ordering::Equal => SlotState::Ready,
        std::cmp::Ordering::Greater => SlotState::Overwritten,
        std::cmp::Ordering::Less if seq == ready - 1 => SlotState::Writing,
        std::cmp::Ordering::Less => SlotState::NotYet,
    }
}

/// A frame as the core hands it over.
#[derive(Copy, Clone, Debug)]
pub enum VideoInput<'a> {
    /// New pixels; `pitch` is the core's bytes per row (rows may be padded).
    Pixels {
        /// At least `pitch * (height - 1) + width * bpp` bytes.
        data: &'a [u8],
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes between rows in `data`.
        pitch: usize,
        /// Pixel format of `data`.
        format: PixelFormat,
    },
    /// The core passed NULL: the same frame again.
    Duplicate,
}

/// Metadata of a published frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FrameMeta {
    /// Frame number, counting published frames from 0.
    pub number: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row in the slot (rows are packed: `width * bytes_per_pixel`).
    pub stride: u32,
    /// Pixel format.
    pub format: PixelFormat,
    /// CLOCK_MONOTONIC ns when emulation of this frame finished.
    pub emulated_at_ns: u64,
    /// ns `retro_run` took.
    pub emulate_ns: u64,
    /// The core said "same frame again"; pixels equal the previous frame's.
    pub duplicate: bool,
}

impl FrameMeta {
    /// Bytes of pixel data (`stride * height`).
    pub fn len(&self) -> usize {
        self.stride as usize * self.height as usize
    }

    /// Whether the frame has no pixels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a frame was not staged.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Larger than a slot, zero-sized, or `data` shorter than its geometry says.
    BadGeometry,
    /// A duplicate with no earlier frame to repeat.
    NothingToDuplicate,
}

/// Writer side (the child). Not shared: one writer per ring.
#[derive(Debug, Default)]
pub struct RingWriter {
    next: u64,
    writing: bool,
    staged: Option<FrameMeta>,
    last: Option<FrameMeta>,
}

impl RingWriter {
    /// A writer that starts at frame 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number the next published frame will get.
    pub fn next_frame(&self) -> u64 {
        self.next
    }

    fn begin(&mut self, region: &Region, layout: &Layout) -> usize {
        let k = self.next;
        let slot = layout.slot_of(k);
        let entry = &region.slots(layout)[slot as usize];
        if !self.writing {
            let n = u64::from(layout.frame_slots);
            let header = region.header();
            if k >= n && header.reader.next_frame.load(Ordering::Relaxed) <= k - n {
                header.writer.frames_dropped.fetch_add(1, Ordering::Relaxed);
            }
            entry.seq.store(2 * k + 1, Ordering::Relaxed);
            fence(Ordering::Release);
            self.writing = true;
        }
        layout.slot_offset(slot) as usize
    }

    /// Copies a frame into the next slot (not yet visible to the reader). Never blocks.
    pub fn stage(&mut self, region: &Region, layout: &Layout, video: VideoInput<'_>) -> Result<(), Rejected> {
        match video {
            VideoInput::Pixels { data, width, height, pitch, format } => {
                let bpp = format.bytes_per_pixel();
                let row = width as usize * bpp;
                let len = row * height as usize;
                let needed = if height == 0 { 0 } else { pitch * (height as usize - 1) + row };
                if width == 0 || height == 0 || pitch < row || len as u64 > layout.slot_capacity || data.len() < needed
                {
                    region.header().writer.frames_rejected.fetch_add(1, Ordering::Relaxed);
                    return Err(Rejected::BadGeometry);
                }
                let off = self.begin(region, layout);
                if pitch == row {
                    region.write(off, &data[..len]);
                } else {
                    for y in 0..height as usize {
                        region.write(off + y * row, &data[y * pitch..y * pitch + row]);
                    }
                }
                self.staged = Some(FrameMeta {
                    number: self.next,
                    width,
                    height,
                    stride: row as u32,
                    format,
                    emulated_at_ns: 0,
                    emulate_ns: 0,
                    duplicate: false,
                });
                Ok(())
            }
            VideoInput::Duplicate => {
                // A duplicate after pixels staged in the same run changes nothing.
                if self.staged.is_some() {
                    return Ok(());
                }
                let Some(last) = self.last else {
                    return Err(Rejected::NothingToDuplicate);
                };
                let off = self.begin(region, layout);
                let from = layout.slot_offset(layout.slot_of(last.number)) as usize;
                if from != off {
                    region.copy_within(from, off, last.len());
                }
                self.staged = Some(FrameMeta { number: self.next, duplicate: true, ..last });
                Ok(())
            }
        }
    }

    /// Makes the staged frame visible; returns its number, or None when nothing was staged.
    pub fn publish(&mut self, region: &Region, layout: &Layout, emulated_at_ns: u64, emulate_ns: u64) -> Option<u64> {
        let mut meta = self.staged.take()?;
        meta.emulated_at_ns = emulated_at_ns;
        meta.emulate_ns = emulate_ns;
        let k = meta.number;
        let entry = &region.slots(layout)[layout.slot_of(k) as usize];
        entry.frame.store(k, Ordering::Relaxed);
        entry.width.store(meta.width, Ordering::Relaxed);
        entry.height.store(meta.height, Ordering::Relaxed);
        entry.stride.store(meta.stride, Ordering::Relaxed);
        entry.format.store(meta.format.to_raw(), Ordering::Relaxed);
        entry.flags.store(if meta.duplicate { FLAG_DUPLICATE } else { 0 }, Ordering::Relaxed);
        entry.emulated_at_ns.store(emulated_at_ns, Ordering::Relaxed);
        entry.emulate_ns.store(emulate_ns, Ordering::Relaxed);
        entry.seq.store(2 * k + 2, Ordering::Release);
        let w = &region.header().writer;
        w.frames_published.store(k + 1, Ordering::Release);
        if meta.duplicate {
            w.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        self.writing = false;
        self.next = k + 1;
        self.last = Some(meta);
        Some(k)
    }
}

/// Reader-side statistics.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Frames handed out.
    pub read: u64,
    /// Frames overwritten before the reader got to them.
    pub missed: u64,
    /// Frames skipped on purpose by [`RingReader::latest`].
    pub skipped: u64,
    /// Frames whose metadata was inconsistent (torn or garbage) and were discarded.
    pub invalid: u64,
}

/// Reader side (the parent). Methods take `&self` so an `Emulator` can be shared; there must
/// still be only one consumer.
#[derive(Debug, Default)]
pub struct RingReader {
    next: AtomicU64,
    read: AtomicU64,
    missed: AtomicU64,
    skipped: AtomicU64,
    invalid: AtomicU64,
}

/// A frame borrowed from its slot, without copying. The writer may lap the reader while the
/// frame is in use: call [`Frame::is_intact`] after using the pixels and discard the result if
/// it says false.
#[derive(Debug)]
pub struct Frame<'r> {
    meta: FrameMeta,
    data: &'r [u8],
    entry: &'r SlotEntry,
    seq: u64,
    slot_offset: u64,
}

impl<'r> Frame<'r> {
    /// Metadata (read consistently under the seqlock).
    pub fn meta(&self) -> &FrameMeta {
        &self.meta
    }

    /// The pixels, `meta().stride` bytes per row, straight from shared memory.
    pub fn data(&self) -> &'r [u8] {
        self.data
    }

    /// Offset of these pixels in the shared memory file (for GPU import).
    pub fn offset(&self) -> u64 {
        self.slot_offset
    }

    /// True when the writer has not touched the slot since the frame was borrowed, i.e. all
    /// pixels read so far are this frame's.
    pub fn is_intact(&self) -> bool {
        fence(Ordering::Acquire);
        self.entry.seq.load(Ordering::Relaxed) == self.seq
    }

    /// What identifies this frame in its slot, to check later (after a GPU read the pixels
    /// asynchronously) that the writer has not touched the slot: [`ticket_intact`].
    pub fn ticket(&self) -> FrameTicket {
        FrameTicket { number: self.meta.number, seq: self.seq }
    }

    /// Copies the pixels out, or None if the writer lapped the reader during the copy.
    pub fn to_vec(&self) -> Option<Vec<u8>> {
        let v = self.data.to_vec();
        self.is_intact().then_some(v)
    }
}

/// A frame's place in the ring as it was when read, kept across an asynchronous read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTicket {
    /// The frame's number.
    pub number: u64,
    seq: u64,
}

/// True when the slot of `ticket`'s frame still holds that frame, untouched since it was read.
pub fn ticket_intact(region: &Region, layout: &Layout, ticket: FrameTicket) -> bool {
    let entry = &region.slots(layout)[layout.slot_of(ticket.number) as usize];
    fence(Ordering::Acquire);
    entry.seq.load(Ordering::Relaxed) == ticket.seq
}

/// Reads a slot's metadata under its seqlock.
fn read_meta(entry: &SlotEntry, frame: u64) -> Result<(u64, [u64; 4], [u32; 5]), SlotState> {
    let s1 = entry.seq.load(Ordering::Acquire);
    let state = slot_state(s1, frame);
    if state != SlotState::Ready {
        return Err(state);
    }
    let wide = [
        entry.frame.load(Ordering::Relaxed),
        entry.emulated_at_ns.load(Ordering::Relaxed),
        entry.emulate_ns.load(Ordering::Relaxed),
        0,
    ];
    let narrow = [
        entry.width.load(Ordering::Relaxed),
        entry.height.load(Ordering::Relaxed),
        entry.stride.load(Ordering::Relaxed),
        entry.format.load(Ordering::Relaxed),
        entry.flags.load(Ordering::Relaxed),
    ];
    fence(Ordering::Acquire);
    if entry.seq.load(Ordering::Relaxed) != s1 {
        return Err(SlotState::Overwritten);
    }
    Ok((s1, wide, narrow))
}

impl RingReader {
    /// A reader that starts at frame 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Statistics so far.
    pub fn stats(&self) -> ReaderStats {
        ReaderStats {
            read: self.read.load(Ordering::Relaxed),
            missed: self.missed.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            invalid: self.invalid.load(Ordering::Relaxed),
        }
    }

    /// Number of the next frame this reader will return.
    pub fn cursor(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    fn advance(&self, header: &Header, to: u64) {
        self.next.store(to, Ordering::Relaxed);
        header.reader.next_frame.store(to, Ordering::Release);
    }

    /// The oldest unread frame still in the ring, in order; None when the reader is caught up.
    pub fn next<'r>(&self, region: &'r Region, layout: &Layout) -> Option<Frame<'r>> {
        let header = region.header();
        let n = u64::from(layout.frame_slots);
        loop {
            let published = header.writer.frames_published.load(Ordering::Acquire);
            let mut k = self.next.load(Ordering::Relaxed);
            if k >= published {
                return None;
            }
            if published - k > n {
                let to = published - n;
                self.missed.fetch_add(to - k, Ordering::Relaxed);
                k = to;
                self.advance(header, k);
            }
            let slot = layout.slot_of(k);
            let entry = &region.slots(layout)[slot as usize];
            match read_meta(entry, k) {
                Ok((seq, wide, narrow)) => {
                    self.advance(header, k + 1);
                    match validate(layout, k, wide, narrow) {
                        Some(meta) => {
                            self.read.fetch_add(1, Ordering::Relaxed);
                            let slot_offset = layout.slot_offset(slot);
                            let data = region.bytes(slot_offset as usize, meta.len());
                            return Some(Frame { meta, data, entry, seq, slot_offset });
                        }
                        None => {
                            self.invalid.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Err(SlotState::Overwritten) => {
                    self.missed.fetch_add(1, Ordering::Relaxed);
                    self.advance(header, k + 1);
                }
                // Published but not ready: only a misbehaving writer does this.
                Err(SlotState::NotYet | SlotState::Writing) => return None,
                Err(SlotState::Ready) => unreachable!(),
            }
        }
    }

    /// The newest frame, skipping (and counting) any older unread ones.
    pub fn latest<'r>(&self, region: &'r Region, layout: &Layout) -> Option<Frame<'r>> {
        let header = region.header();
        let published = header.writer.frames_published.load(Ordering::Acquire);
        let k = self.next.load(Ordering::Relaxed);
        if published > k + 1 {
            let n = u64::from(layout.frame_slots);
            // Frames the writer already overwrote are "missed", the rest "skipped".
            let oldest_present = published.saturating_sub(n);
            let missed = oldest_present.saturating_sub(k);
            self.missed.fetch_add(missed, Ordering::Relaxed);
            self.skipped.fetch_add(published - 1 - k - missed, Ordering::Relaxed);
            self.advance(header, published - 1);
        }
        self.next(region, layout)
    }
}

fn validate(layout: &Layout, k: u64, wide: [u64; 4], narrow: [u32; 5]) -> Option<FrameMeta> {
    let [frame, emulated_at_ns, emulate_ns, _] = wide;
    let [width, height, stride, format, flags] = narrow;
    let format = PixelFormat::from_raw(format)?;
    let meta = FrameMeta {
        number: frame,
        width,
        height,
        stride,
        format,
        emulated_at_ns,
        emulate_ns,
        duplicate: flags & FLAG_DUPLICATE != 0,
    };
    let ok = frame == k
        && width > 0
        && height > 0
        && stride as u64 >= u64::from(width) * format.bytes_per_pixel() as u64
        && (stride as u64) * u64::from(height) <= layout.slot_capacity;
    ok.then_some(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::testing::anon_region;

    #[test]
    fn slot_states() {
        assert_eq!(slot_state(0, 0), SlotState::NotYet);
        assert_eq!(slot_state(1, 0), SlotState::Writing);
        assert_eq!(slot_state(2, 0), SlotState::Ready);
        assert_eq!(slot_state(3, 0), SlotState::Overwritten);
        // Slot of 4 holding frame 3 (seq 8), reader wants frame 7.
        assert_eq!(slot_state(8, 7), SlotState::NotYet);
        assert_eq!(slot_state(15, 7), SlotState::Writing);
        assert_eq!(slot_state(16, 7), SlotState::Ready);
        assert_eq!(slot_state(24, 7), SlotState::Overwritten);
    }

    #[test]
    fn a_corrupt_published_count_near_u64_max_reads_nothing() {
        // Found by fuzz/ (emulator_shm): a child that stores frames_published ≥ 2^63 (here
        // 0xc000_0000_0000_0007, from the crashing input) sent the reader's cursor there and
        // the sequence word it expected overflowed (a panic with overflow checks on).
        assert_eq!(slot_state(u64::MAX, u64::MAX / 2), SlotState::NotYet);
        assert_eq!(slot_state(0, u64::MAX), SlotState::NotYet);
        let l = Layout::new(3, 512, 256).unwrap();
        let r = anon_region(&l);
        let mut w = RingWriter::new();
        put_small(&mut w, &r, &l);
        let rd = RingReader::new();
        for published in [0xc000_0000_0000_0007, u64::MAX] {
            r.header().writer.frames_published.store(published, Ordering::Release);
            assert!(rd.next(&r, &l).is_none());
            assert!(rd.latest(&r, &l).is_none());
        }
        assert!(rd.stats().read == 0 && rd.stats().missed > 0);
    }

    fn put_small(w: &mut RingWriter, r: &Region, l: &Layout) {
        let data = [7u8; 8 * 2];
        let video = VideoInput::Pixels { data: &data, width: 8, height: 1, pitch: 16, format: PixelFormat::Rgb565 };
        w.stage(r, l, video).unwrap();
        w.publish(r, l, 0, 0).unwrap();
    }

    fn pixels(n: u8, w: u32, h: u32) -> Vec<u8> {
        (0..w * h * 4).map(|i| (i as u8).wrapping_add(n)).collect()
    }

    fn put(w: &mut RingWriter, r: &Region, l: &Layout, n: u8) -> u64 {
        let data = pixels(n, 8, 4);
        w.stage(
            r,
            l,
            VideoInput::Pixels { data: &data, width: 8, height: 4, pitch: 32, format: PixelFormat::Xrgb8888 },
        )
        .unwrap();
        w.publish(r, l, 1000 + u64::from(n), 5).unwrap()
    }

    #[test]
    fn frames_come_out_in_order_with_their_pixels() {
        let l = Layout::new(4, 8 * 4 * 4, 256).unwrap();
        let r = anon_region(&l);
        let mut w = RingWriter::new();
        let rd = RingReader::new();
        assert!(rd.next(&r, &l).is_none());
        for n in 0..3u8 {
            assert_eq!(put(&mut w, &r, &l, n), u64::from(n));
        }
        for n in 0..3u8 {
            let f = rd.next(&r, &l).unwrap();
            assert_eq!(f.meta().number, u64::from(n));
            assert_eq!(f.meta().emulated_at_ns, 1000 + u64::from(n));
            assert_eq!(f.data(), &pixels(n, 8, 4)[..]);
            assert!(f.is_intact());
        }
        assert!(rd.next(&r, &l).is_none());
        assert_eq!(r.header().writer.frames_dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn slow_reader_makes_writer_drop_oldest_and_count() {
        let l = Layout::new(4, 8 * 4 * 4, 256).unwrap();
        let r = anon_region(&l);
        let mut w = RingWriter::new();
        let rd = RingReader::new();
        for n in 0..10u8 {
            put(&mut w, &r, &l, n);
        }
        // Frames 0..6 were overwritten unread.
        assert_eq!(r.header().writer.frames_dropped.load(Ordering::Relaxed), 6);
        let got: Vec<u64> = std::iter::from_fn(|| rd.next(&r, &l).map(|f| f.meta().number)).collect();
        assert_eq!(got, vec![6, 7, 8, 9]);
        assert_eq!(rd.stats().missed, 6);
    }

    #[test]
    fn a_lapped_frame_is_reported_not_intact() {
        let l = Layout::new(2, 8 * 4 * 4, 256).unwrap();
        let r = anon_region(&l);
        let mut w = RingWriter::new();
        let rd = RingReader::new();
        put(&mut w, &r, &l, 0);
        let f = rd.next(&r, &l).unwrap();
        put(&mut w, &r, &l, 1);
        assert!(f.is_intact());
        put(&mut w, &r, &l, 2); // reuses slot 0
        assert!(!f.is_intact());
        assert!(f.to_vec().is_none());
    }

    #[test]
    fn latest_skips_and_duplicates_repeat_pixels() {
        let l = Layout::new(4, 8 * 4 * 4, 256).unwrap();
        let r = anon_region(&l);
        let mut w = RingWriter::new();
        let rd = RingReader::new();
        assert_eq!(w.stage(&r, &l, VideoInput::Duplicate), Err(Rejected::NothingToDuplicate));
        for n in 0..3u8 {
            put(&mut w, &r, &l, n);
        }
        w.stage(&r, &l, VideoInput::Duplicate).unwrap();
        assert_eq!(w.publish(&r, &l, 7, 1), Some(3));
        let f = rd.latest(&r, &l).unwrap();
        assert_eq!(f.meta().number, 3);
        assert!(f.meta().duplicate);
        assert_eq!(f.data(), &pixels(2, 8, 4)[..]);
        assert_eq!(rd.stats().skipped, 3);
        assert_eq!(r.header().writer.duplicates.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn padded_rows_are_packed_and_oversized_frames_rejected() {
        let l = Layout::new(2, 4 * 2 * 2, 256).unwrap();
        let r = anon_region(&l);
        let mut w = RingWriter::new();
        // 4x2 RGB565 with a pitch of 12 bytes (4 bytes of padding per row).
        let data: Vec<u8> = (0..24).collect();
        w.stage(
            &r,
            &l,
            VideoInput::Pixels { data: &data, width: 4, height: 2, pitch: 12, format: PixelFormat::Rgb565 },
        )
        .unwrap();
        w.publish(&r, &l, 0, 0);
        let rd = RingReader::new();
        let f = rd.next(&r, &l).unwrap();
        assert_eq!(f.meta().stride, 8);
        assert_eq!(f.data(), &[0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 16, 17, 18, 19]);
        let big = vec![0u8; 64];
        assert_eq!(
            w.stage(
                &r,
                &l,
                VideoInput::Pixels { data: &big, width: 8, height: 2, pitch: 16, format: PixelFormat::Rgb565 }
            ),
            Err(Rejected::BadGeometry)
        );
        assert_eq!(r.header().writer.frames_rejected.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn threads_never_see_a_torn_frame_marked_intact() {
        let l = Layout::new(3, 64 * 64 * 4, 256).unwrap();
        let r = std::sync::Arc::new(anon_region(&l));
        let total = 3000u64;
        let writer = {
            let r = r.clone();
            std::thread::spawn(move || {
                let mut w = RingWriter::new();
                let mut buf = vec![0u8; 64 * 64 * 4];
                for n in 0..total {
                    buf.fill(n as u8);
                    w.stage(
                        &r,
                        &l,
                        VideoInput::Pixels {
                            data: &buf,
                            width: 64,
                            height: 64,
                            pitch: 256,
                            format: PixelFormat::Xrgb8888,
                        },
                    )
                    .unwrap();
                    w.publish(&r, &l, n, 0);
                }
            })
        };
        let rd = RingReader::new();
        let mut last = None;
        let mut intact = 0;
        while !writer.is_finished() || rd.cursor() < total {
            if let Some(f) = rd.next(&r, &l) {
                let n = f.meta().number;
                assert!(last.is_none_or(|p| n > p), "frames out of order");
                last = Some(n);
                let copy = f.data().to_vec();
                if f.is_intact() {
                    intact += 1;
                    assert!(copy.iter().all(|&b| b == n as u8), "torn frame {n} reported intact");
                }
            } else if writer.is_finished() && rd.cursor() >= total {
                break;
            }
        }
        writer.join().unwrap();
        assert!(intact > 0);
        assert_eq!(last, Some(total - 1));
    }
}
