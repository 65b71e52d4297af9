//! Where everything lives in the shared memory file, as `#[repr(C)]` structs of atomics (the
//! header page, the slot table) and computed offsets (frame slots, PCM ring).
//!
//! ```text
//! offset 0          header page (4096 B): Header — magic, version, state, layout params,
//!                   av info (seqlock), writer counters, reader cursor, input block, error text
//! 4096              slot table: frame_slots × SlotEntry (64 B each, per-slot seqlock + meta)
//! frames_offset     frame slots: frame_slots × slot_stride (page-aligned, pixel bytes only)
//! pcm_offset        PCM ring: pcm_capacity × u32 (one interleaved i16 L/R pair per u32)
//! total_len         (page-aligned)
//! ```
//!
//! The child writes the layout parameters; the parent recomputes every offset itself from
//! them (never trusting stored offsets), checks them against limits, and maps only then.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8};

/// "RFEMUSHM" as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"RFEMUSHM");
/// Layout version; bump on any change to the structs below.
pub const VERSION: u32 = 2;
/// Page size the layout aligns to (frame slots are page-aligned for GPU host-memory import).
pub const PAGE: u64 = 4096;
/// Length of the header page, the part of the file that exists from the start.
pub const HEADER_LEN: u64 = PAGE;
/// Number of input ports (players 1..=4).
pub const MAX_PORTS: usize = 4;
/// Bytes of error text the child can leave in the header.
pub const ERROR_CAPACITY: usize = 1024;
/// Largest accepted slot count.
pub const MAX_FRAME_SLOTS: u32 = 4096;
/// Largest accepted frame slot (64 MiB).
pub const MAX_SLOT_CAPACITY: u64 = 64 << 20;
/// Smallest and largest PCM ring, in stereo frames.
pub const PCM_CAPACITY_RANGE: (u64, u64) = (256, 1 << 22);

/// Lifecycle of the writer (the child), in [`Header::state`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum WriterState {
    /// The child is loading the core and game; only the header page exists.
    Starting = 0,
    /// Layout and av info are valid; frames are being produced.
    Running = 1,
    /// The child stopped on purpose (frame limit reached, core asked to shut down).
    Finished = 2,
    /// The child failed; the error text says why.
    Failed = 3,
}

impl WriterState {
    /// Parses the raw state word.
    pub fn from_raw(v: u32) -> Option<Self> {
        match v {
            0 => Some(Self::Starting),
            1 => Some(Self::Running),
            2 => Some(Self::Finished),
            3 => Some(Self::Failed),
            _ => None,
        }
    }
}

/// The header page. All fields are atomics: both processes touch them concurrently.
#[repr(C, align(64))]
pub struct Header {
    /// [`MAGIC`] once the child has initialised the header.
    pub magic: AtomicU64,
    /// [`VERSION`].
    pub version: AtomicU32,
    /// A [`WriterState`]; stored with Release after everything it vouches for.
    pub state: AtomicU32,
    /// The child's pid.
    pub writer_pid: AtomicU32,
    /// Layout parameter: number of frame slots.
    pub frame_slots: AtomicU32,
    /// Layout parameter: usable bytes per frame slot.
    pub slot_capacity: AtomicU64,
    /// Layout parameter: PCM ring capacity in stereo frames (a power of two).
    pub pcm_capacity: AtomicU64,
    /// Total file length the child set.
    pub total_len: AtomicU64,
    /// Audio/video info, under its own seqlock.
    pub av: AvBlock,
    /// Counters only the writer changes.
    pub writer: WriterCounters,
    /// Cursors only the reader changes.
    pub reader: ReaderBlock,
    /// Input, written by the parent, read by the child at every `retro_input_poll`.
    pub input: [InputPort; MAX_PORTS],
    /// Length of the UTF-8 error text below.
    pub error_len: AtomicU32,
    /// Error text the child leaves before setting [`WriterState::Failed`].
    pub error: [AtomicU8; ERROR_CAPACITY],
}

/// The av info: seqlock `seq` (odd while being written) and its fields.
#[repr(C, align(64))]
pub struct AvBlock {
    /// Seqlock word: odd while the writer updates the fields.
    pub seq: AtomicU64,
    /// Nominal width.
    pub base_width: AtomicU32,
    /// Nominal height.
    pub base_height: AtomicU32,
    /// Maximum width.
    pub max_width: AtomicU32,
    /// Maximum height.
    pub max_height: AtomicU32,
    /// Aspect ratio, f32 bits.
    pub aspect_bits: AtomicU32,
    /// libretro pixel format value.
    pub pixel_format: AtomicU32,
    /// Exact fps, f64 bits.
    pub fps_bits: AtomicU64,
    /// Audio sample rate in Hz, f64 bits.
    pub sample_rate_bits: AtomicU64,
    /// Quarter turns counter-clockwise to show the picture at, 0..=3.
    pub rotation: AtomicU32,
}

/// Counters and indexes only the writer changes (two cache lines of their own).
#[repr(C, align(64))]
pub struct WriterCounters {
    /// CLOCK_MONOTONIC ns of the writer's last loop iteration: a stale value means a hung child.
    pub heartbeat_ns: AtomicU64,
    /// Frames published so far; frame `n` is published once this exceeds `n` (Release).
    pub frames_published: AtomicU64,
    /// Frames overwritten before the reader consumed them.
    pub frames_dropped: AtomicU64,
    /// Frames that started later than the pacing tolerance.
    pub frames_late: AtomicU64,
    /// Times the pacer gave up catching up and re-anchored its schedule.
    pub reanchors: AtomicU64,
    /// Frames the core reported as duplicates (NULL data).
    pub duplicates: AtomicU64,
    /// Total ns spent inside `retro_run`.
    pub emulate_ns_total: AtomicU64,
    /// `retro_run` calls so far.
    pub runs: AtomicU64,
    /// PCM stereo frames the writer is about to have written (seqlock-style claim).
    pub pcm_claim: AtomicU64,
    /// PCM stereo frames written so far (Release after the samples).
    pub pcm_written: AtomicU64,
    /// Frames too large for a slot, or in an unusable format, that were not published.
    pub frames_rejected: AtomicU64,
}

/// What the reader tells the writer.
#[repr(C, align(64))]
pub struct ReaderBlock {
    /// The next frame number the reader wants (all frames before it are consumed or skipped).
    pub next_frame: AtomicU64,
}

/// One player's input, under a per-port seqlock.
#[repr(C)]
pub struct InputPort {
    /// Seqlock word: odd while the parent writes.
    pub seq: AtomicU32,
    /// RetroPad bitmask: bit `i` = `RETRO_DEVICE_ID_JOYPAD_*` id `i`.
    pub buttons: AtomicU32,
    /// Four i16 axes: left x, left y, right x, right y (little end first).
    pub axes: AtomicU64,
    /// The pointer: x in the low 16 bits, y in the high ones (i16 each); whether it presses is
    /// bit 16 of `buttons`.
    pub pointer: AtomicU32,
}

/// Metadata of one frame slot, under a per-slot seqlock.
///
/// `seq` is `2n + 1` while frame `n` is being written and `2n + 2` once it is complete, so a
/// reader knows which frame a slot holds and whether it changed while it was reading.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct SlotEntry {
    /// Per-slot sequence word (see above).
    pub seq: AtomicU64,
    /// Frame number (0-based, counts published frames).
    pub frame: AtomicU64,
    /// CLOCK_MONOTONIC ns when the frame finished emulating.
    pub emulated_at_ns: AtomicU64,
    /// ns `retro_run` took for this frame.
    pub emulate_ns: AtomicU64,
    /// Width in pixels.
    pub width: AtomicU32,
    /// Height in pixels.
    pub height: AtomicU32,
    /// Bytes per row in the slot.
    pub stride: AtomicU32,
    /// libretro pixel format value.
    pub format: AtomicU32,
    /// `FLAG_*` bits.
    pub flags: AtomicU32,
}

/// [`SlotEntry::flags`]: the core reported "same frame again" (NULL data); the pixels are a
/// copy of the previous frame.
pub const FLAG_DUPLICATE: u32 = 1;

const _: () = assert!(std::mem::size_of::<Header>() as u64 <= HEADER_LEN);
const _: () = assert!(std::mem::size_of::<SlotEntry>() == 64);
const _: () = assert!(std::mem::size_of::<InputPort>() == 24);

/// Errors in layout parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// Slot count out of range.
    #[error("frame slot count {0} outside 1..={MAX_FRAME_SLOTS}")]
    Slots(u32),
    /// Slot size out of range.
    #[error("frame slot capacity {0} bytes outside 1..={MAX_SLOT_CAPACITY}")]
    SlotCapacity(u64),
    /// PCM capacity invalid.
    #[error("PCM capacity {0} is not a power of two within {PCM_CAPACITY_RANGE:?}")]
    PcmCapacity(u64),
}

/// Offsets of every region, computed from three parameters.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Number of frame slots.
    pub frame_slots: u32,
    /// Usable bytes per slot.
    pub slot_capacity: u64,
    /// PCM ring capacity in stereo frames (power of two).
    pub pcm_capacity: u64,
    /// Offset of the slot table.
    pub slot_table_offset: u64,
    /// Offset of slot 0's pixels (page-aligned).
    pub frames_offset: u64,
    /// Distance between slots (a page multiple).
    pub slot_stride: u64,
    /// Offset of the PCM ring (page-aligned).
    pub pcm_offset: u64,
    /// Total file length (page-aligned).
    pub total_len: u64,
}

/// Rounds `v` up to a multiple of [`PAGE`].
pub fn page_align(v: u64) -> u64 {
    v.div_ceil(PAGE) * PAGE
}

impl Layout {
    /// Computes a layout, checking the parameters against the limits above.
    pub fn new(frame_slots: u32, slot_capacity: u64, pcm_capacity: u64) -> Result<Self, LayoutError> {
        if frame_slots == 0 || frame_slots > MAX_FRAME_SLOTS {
            return Err(LayoutError::Slots(frame_slots));
        }
        if slot_capacity == 0 || slot_capacity > MAX_SLOT_CAPACITY {
            return Err(LayoutError::SlotCapacity(slot_capacity));
        }
        if !pcm_capacity.is_power_of_two() || pcm_capacity < PCM_CAPACITY_RANGE.0 || pcm_capacity > PCM_CAPACITY_RANGE.1
        {
            return Err(LayoutError::PcmCapacity(pcm_capacity));
        }
        let slot_table_offset = HEADER_LEN;
        let frames_offset =
            page_align(slot_table_offset + u64::from(frame_slots) * std::mem::size_of::<SlotEntry>() as u64);
        let slot_stride = page_align(slot_capacity);
        let pcm_offset = frames_offset + u64::from(frame_slots) * slot_stride;
        let total_len = page_align(pcm_offset + pcm_capacity * 4);
        Ok(Self {
            frame_slots,
            slot_capacity,
            pcm_capacity,
            slot_table_offset,
            frames_offset,
            slot_stride,
            pcm_offset,
            total_len,
        })
    }

    /// Offset of the pixels of slot `i`.
    pub fn slot_offset(&self, i: u32) -> u64 {
        self.frames_offset + u64::from(i) * self.slot_stride
    }

    /// The slot that holds frame `n`.
    pub fn slot_of(&self, frame: u64) -> u32 {
        (frame % u64::from(self.frame_slots)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn header_fields_sit_where_the_docs_say() {
        assert_eq!(offset_of!(Header, magic), 0);
        assert_eq!(offset_of!(Header, state), 12);
        assert_eq!(offset_of!(Header, av), 64);
        assert_eq!(offset_of!(Header, writer), 128);
        assert_eq!(offset_of!(Header, reader), 256);
        assert_eq!(offset_of!(Header, input), 320);
        assert!(std::mem::size_of::<Header>() <= 4096);
        assert_eq!(std::mem::align_of::<Header>(), 64);
    }

    #[test]
    fn slots_are_page_aligned_and_disjoint() {
        let l = Layout::new(8, 256 * 240 * 4, 1 << 16).unwrap();
        assert_eq!(l.slot_table_offset, 4096);
        assert_eq!(l.frames_offset, 4096 * 2);
        for i in 0..8 {
            assert_eq!(l.slot_offset(i) % PAGE, 0);
        }
        assert!(l.slot_stride >= l.slot_capacity);
        assert_eq!(l.pcm_offset, l.slot_offset(7) + l.slot_stride);
        assert_eq!(l.total_len, l.pcm_offset + (1 << 16) * 4);
        assert_eq!(l.slot_of(9), 1);
    }

    #[test]
    fn big_slot_tables_push_frames_further() {
        let l = Layout::new(301, 100, 256).unwrap();
        assert_eq!(l.frames_offset, page_align(4096 + 301 * 64));
        assert_eq!(l.slot_stride, 4096);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert_eq!(Layout::new(0, 1, 256), Err(LayoutError::Slots(0)));
        assert_eq!(Layout::new(4097, 1, 256), Err(LayoutError::Slots(4097)));
        assert_eq!(Layout::new(1, 0, 256), Err(LayoutError::SlotCapacity(0)));
        assert_eq!(Layout::new(1, 1, 300), Err(LayoutError::PcmCapacity(300)));
        assert_eq!(Layout::new(1, 1, 128), Err(LayoutError::PcmCapacity(128)));
    }
}
