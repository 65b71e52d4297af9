//! Shared memory between the worker (reader) and one emulator child (writer): a memfd holding
//! a header, a frame ring, a PCM ring and an input block. See [`layout`] for the map.
//!
//! [`WriterShm`] is the child's side, [`ReaderShm`] the parent's. Neither ever blocks on the
//! other: the writer overwrites and counts, the reader detects and skips.

pub mod frame_ring;
pub mod input;
pub mod layout;
pub mod pcm_ring;
pub mod region;

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{fence, Ordering};
use std::sync::Mutex;

use crate::av::{AvInfo, PixelFormat};
use frame_ring::{Frame, ReaderStats, Rejected, RingReader, RingWriter, VideoInput};
use input::{InputSnapshot, PortInput};
use layout::{Header, Layout, WriterState, ERROR_CAPACITY, HEADER_LEN, MAGIC, MAX_PORTS, VERSION};
use pcm_ring::PcmReader;
use region::Region;

/// Stores `av` under the header's av seqlock.
pub fn write_av(header: &Header, av: &AvInfo) {
    let b = &header.av;
    let s = b.seq.load(Ordering::Relaxed);
    b.seq.store(s | 1, Ordering::Relaxed);
    fence(Ordering::Release);
    b.base_width.store(av.base_width, Ordering::Relaxed);
    b.base_height.store(av.base_height, Ordering::Relaxed);
    b.max_width.store(av.max_width, Ordering::Relaxed);
    b.max_height.store(av.max_height, Ordering::Relaxed);
    b.aspect_bits.store(av.aspect_ratio.to_bits(), Ordering::Relaxed);
    b.pixel_format.store(av.pixel_format.to_raw(), Ordering::Relaxed);
    b.fps_bits.store(av.fps.to_bits(), Ordering::Relaxed);
    b.sample_rate_bits.store(av.sample_rate.to_bits(), Ordering::Relaxed);
    b.rotation.store(u32::from(av.rotation), Ordering::Relaxed);
    b.seq.store((s | 1) + 1, Ordering::Release);
}

/// Reads the av info consistently; None if the writer never completed one.
pub fn read_av(header: &Header) -> Option<AvInfo> {
    let b = &header.av;
    for _ in 0..1000 {
        let s1 = b.seq.load(Ordering::Acquire);
        if s1 == 0 {
            return None;
        }
        if s1 & 1 == 1 {
            std::hint::spin_loop();
            continue;
        }
        let av = (
            b.base_width.load(Ordering::Relaxed),
            b.base_height.load(Ordering::Relaxed),
            b.max_width.load(Ordering::Relaxed),
            b.max_height.load(Ordering::Relaxed),
            f32::from_bits(b.aspect_bits.load(Ordering::Relaxed)),
            b.pixel_format.load(Ordering::Relaxed),
            f64::from_bits(b.fps_bits.load(Ordering::Relaxed)),
            f64::from_bits(b.sample_rate_bits.load(Ordering::Relaxed)),
            b.rotation.load(Ordering::Relaxed),
        );
        fence(Ordering::Acquire);
        if b.seq.load(Ordering::Relaxed) != s1 {
            continue;
        }
        return Some(AvInfo {
            base_width: av.0,
            base_height: av.1,
            max_width: av.2,
            max_height: av.3,
            aspect_ratio: av.4,
            // The child writes it: a quarter-turn count whatever it wrote.
            rotation: (av.8 % 4) as u8,
            pixel_format: PixelFormat::from_raw(av.5)?,
            fps: av.6,
            sample_rate: av.7,
        });
    }
    None
}

/// Leaves an error message in the header (truncated to [`ERROR_CAPACITY`] bytes).
pub fn write_error(header: &Header, msg: &str) {
    let bytes = msg.as_bytes();
    let mut n = bytes.len().min(ERROR_CAPACITY);
    while !msg.is_char_boundary(n) {
        n -= 1;
    }
    for (cell, &b) in header.error.iter().zip(&bytes[..n]) {
        cell.store(b, Ordering::Relaxed);
    }
    header.error_len.store(n as u32, Ordering::Release);
}

/// The error message the child left, if any.
pub fn read_error(header: &Header) -> Option<String> {
    let n = (header.error_len.load(Ordering::Acquire) as usize).min(ERROR_CAPACITY);
    if n == 0 {
        return None;
    }
    let bytes: Vec<u8> = header.error[..n].iter().map(|b| b.load(Ordering::Relaxed)).collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The writer's state word.
pub fn read_state(header: &Header) -> Option<WriterState> {
    WriterState::from_raw(header.state.load(Ordering::Acquire))
}

/// Records a failure before (or instead of) [`WriterShm::create`]: maps the header page only.
pub fn report_failure(shm: BorrowedFd<'_>, msg: &str) -> io::Result<()> {
    let region = Region::map(shm, HEADER_LEN)?;
    let h = region.header();
    write_error(h, msg);
    h.writer_pid.store(std::process::id(), Ordering::Relaxed);
    h.state.store(WriterState::Failed as u32, Ordering::Release);
    Ok(())
}

/// The child's side: writes frames, audio and counters; reads input.
#[derive(Debug)]
pub struct WriterShm {
    _file: File,
    region: Region,
    layout: Layout,
    frames: RingWriter,
    event: OwnedFd,
    input: InputSnapshot,
}

impl WriterShm {
    /// Grows the shared file to `layout`, maps it, fills in the header and announces
    /// [`WriterState::Running`].
    pub fn create(shm: OwnedFd, event: OwnedFd, layout: Layout, av: &AvInfo) -> io::Result<Self> {
        let file = File::from(shm);
        if file.metadata()?.len() < layout.total_len {
            file.set_len(layout.total_len)?;
        }
        let region = Region::map(file.as_fd(), layout.total_len)?;
        let h = region.header();
        h.magic.store(MAGIC, Ordering::Relaxed);
        h.version.store(VERSION, Ordering::Relaxed);
        h.writer_pid.store(std::process::id(), Ordering::Relaxed);
        h.frame_slots.store(layout.frame_slots, Ordering::Relaxed);
        h.slot_capacity.store(layout.slot_capacity, Ordering::Relaxed);
        h.pcm_capacity.store(layout.pcm_capacity, Ordering::Relaxed);
        h.total_len.store(layout.total_len, Ordering::Relaxed);
        h.writer.heartbeat_ns.store(crate::sys::monotonic_ns(), Ordering::Relaxed);
        write_av(h, av);
        h.state.store(WriterState::Running as u32, Ordering::Release);
        Ok(Self { _file: file, region, layout, frames: RingWriter::new(), event, input: Default::default() })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        self.region.header()
    }

    /// The layout in use.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Publishes new av info (SET_GEOMETRY / SET_SYSTEM_AV_INFO).
    pub fn set_av(&self, av: &AvInfo) {
        write_av(self.header(), av);
    }

    /// Copies a frame into the next slot (invisible until [`Self::publish_frame`]).
    pub fn stage_video(&mut self, video: VideoInput<'_>) -> Result<(), Rejected> {
        self.frames.stage(&self.region, &self.layout, video)
    }

    /// Publishes the staged frame and wakes the reader (one eventfd write per frame).
    pub fn publish_frame(&mut self, emulated_at_ns: u64, emulate_ns: u64) -> Option<u64> {
        let n = self.frames.publish(&self.region, &self.layout, emulated_at_ns, emulate_ns)?;
        if let Err(e) = crate::sys::eventfd_notify(self.event.as_fd(), 1) {
            tracing::warn!("eventfd write failed: {e}");
        }
        Some(n)
    }

    /// Number of frames published so far.
    pub fn frames_published(&self) -> u64 {
        self.frames.next_frame()
    }

    /// Appends interleaved stereo samples to the PCM ring.
    pub fn push_audio(&self, samples: &[i16]) {
        pcm_ring::push(&self.region, &self.layout, samples);
    }

    /// Re-reads the input block (at `retro_input_poll`).
    pub fn poll_input(&mut self) -> &InputSnapshot {
        input::read_all(&self.region.header().input, &mut self.input);
        &self.input
    }

    /// The input as of the last poll.
    pub fn input(&self) -> &InputSnapshot {
        &self.input
    }

    /// Proves the writer is alive.
    pub fn heartbeat(&self, now_ns: u64) {
        self.header().writer.heartbeat_ns.store(now_ns, Ordering::Relaxed);
    }

    /// Accounts one `retro_run` call and its duration.
    pub fn count_run(&self, emulate_ns: u64, late: bool, reanchored: bool) {
        let w = &self.header().writer;
        w.runs.fetch_add(1, Ordering::Relaxed);
        w.emulate_ns_total.fetch_add(emulate_ns, Ordering::Relaxed);
        if late {
            w.frames_late.fetch_add(1, Ordering::Relaxed);
        }
        if reanchored {
            w.reanchors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Announces a deliberate stop.
    pub fn finish(&self) {
        self.header().state.store(WriterState::Finished as u32, Ordering::Release);
    }

    /// Announces a failure with a message.
    pub fn fail(&self, msg: &str) {
        write_error(self.header(), msg);
        self.header().state.store(WriterState::Failed as u32, Ordering::Release);
    }
}

/// Why the parent could not attach to the child's shared memory.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Magic or version wrong: not our child, or a different build.
    #[error("shared memory header has magic {magic:#x} version {version}, expected {MAGIC:#x} version {VERSION}")]
    BadHeader {
        /// Magic found.
        magic: u64,
        /// Version found.
        version: u32,
    },
    /// Layout parameters out of range.
    #[error("invalid layout from child: {0}")]
    Layout(#[from] layout::LayoutError),
    /// av info missing or invalid.
    #[error("child published no valid av info")]
    NoAvInfo,
    /// Sealing or mapping failed.
    #[error("mapping shared memory: {0}")]
    Io(#[from] io::Error),
}

/// Every counter, writer- and reader-side, at one moment.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames the child published.
    pub frames_published: u64,
    /// Frames the child overwrote before the reader consumed them.
    pub frames_dropped: u64,
    /// Frames that started later than the pacing tolerance.
    pub frames_late: u64,
    /// Times pacing re-anchored after falling far behind.
    pub reanchors: u64,
    /// Frames the core reported as duplicates.
    pub duplicates: u64,
    /// Frames not published (too large, bad format).
    pub frames_rejected: u64,
    /// `retro_run` calls.
    pub runs: u64,
    /// Total ns inside `retro_run`.
    pub emulate_ns_total: u64,
    /// Stereo PCM frames written by the child.
    pub audio_frames_written: u64,
    /// Stereo PCM frames lost because the reader fell behind.
    pub audio_frames_dropped: u64,
    /// Reader-side frame statistics.
    pub reader: ReaderStats,
    /// CLOCK_MONOTONIC ns of the child's last heartbeat.
    pub heartbeat_ns: u64,
}

/// The parent's side: reads frames and audio, writes input.
#[derive(Debug)]
pub struct ReaderShm {
    region: Region,
    layout: Layout,
    frames: RingReader,
    pcm: PcmReader,
    input_lock: Mutex<()>,
}

impl ReaderShm {
    /// Attaches to a child that reported [`WriterState::Running`] in `header_only` (a
    /// header-page mapping of `fd`). Validates everything, seals the file against shrinking and
    /// maps it whole.
    pub fn attach(fd: BorrowedFd<'_>, header_only: &Region) -> Result<Self, AttachError> {
        let h = header_only.header();
        let magic = h.magic.load(Ordering::Relaxed);
        let version = h.version.load(Ordering::Relaxed);
        if magic != MAGIC || version != VERSION {
            return Err(AttachError::BadHeader { magic, version });
        }
        let layout = Layout::new(
            h.frame_slots.load(Ordering::Relaxed),
            h.slot_capacity.load(Ordering::Relaxed),
            h.pcm_capacity.load(Ordering::Relaxed),
        )?;
        read_av(h).ok_or(AttachError::NoAvInfo)?;
        // The parent sealed against shrinking at creation; mapping checks the length.
        let region = Region::map(fd, layout.total_len)?;
        Ok(Self { region, layout, frames: RingReader::new(), pcm: PcmReader::new(), input_lock: Mutex::new(()) })
    }

    /// The whole mapping (base pointer and length), for GPU host-memory import.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The layout in use.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The header.
    pub fn header(&self) -> &Header {
        self.region.header()
    }

    /// The oldest unread frame still in the ring (in order).
    pub fn next_frame(&self) -> Option<Frame<'_>> {
        self.frames.next(&self.region, &self.layout)
    }

    /// Whether a frame read earlier is still untouched in its slot.
    pub fn is_intact(&self, ticket: frame_ring::FrameTicket) -> bool {
        frame_ring::ticket_intact(&self.region, &self.layout, ticket)
    }

    /// The newest frame, skipping older unread ones.
    pub fn latest_frame(&self) -> Option<Frame<'_>> {
        self.frames.latest(&self.region, &self.layout)
    }

    /// Whether frames are waiting to be read.
    pub fn has_unread_frames(&self) -> bool {
        self.header().writer.frames_published.load(Ordering::Acquire) > self.frames.cursor()
    }

    /// Appends new interleaved stereo samples to `out`; returns the number of stereo frames.
    pub fn drain_audio(&self, out: &mut Vec<i16>) -> usize {
        self.pcm.drain(&self.region, &self.layout, out)
    }

    /// Sets one port's input; `index` is 0-based (0 = player 1).
    pub fn set_input(&self, index: usize, value: PortInput) {
        assert!(index < MAX_PORTS);
        let _guard = self.input_lock.lock().unwrap_or_else(|e| e.into_inner());
        input::write_port(&self.header().input[index], value);
    }

    /// Latest av info.
    pub fn av_info(&self) -> Option<AvInfo> {
        read_av(self.header())
    }

    /// All counters.
    pub fn counters(&self) -> Counters {
        let w = &self.header().writer;
        Counters {
            frames_published: w.frames_published.load(Ordering::Relaxed),
            frames_dropped: w.frames_dropped.load(Ordering::Relaxed),
            frames_late: w.frames_late.load(Ordering::Relaxed),
            reanchors: w.reanchors.load(Ordering::Relaxed),
            duplicates: w.duplicates.load(Ordering::Relaxed),
            frames_rejected: w.frames_rejected.load(Ordering::Relaxed),
            runs: w.runs.load(Ordering::Relaxed),
            emulate_ns_total: w.emulate_ns_total.load(Ordering::Relaxed),
            audio_frames_written: w.pcm_written.load(Ordering::Relaxed),
            audio_frames_dropped: self.pcm.dropped(),
            reader: self.frames.stats(),
            heartbeat_ns: w.heartbeat_ns.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A fresh memfd sized for `layout`, mapped.
    pub fn anon_region(layout: &Layout) -> Region {
        let fd = crate::sys::memfd_create("retrofarm-test").unwrap();
        let file = File::from(fd);
        file.set_len(layout.total_len).unwrap();
        Region::map(file.as_fd(), layout.total_len).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn av() -> AvInfo {
        AvInfo {
            base_width: 240,
            base_height: 160,
            max_width: 240,
            max_height: 160,
            aspect_ratio: 1.5,
            rotation: 0,
            fps: 59.727500569606,
            sample_rate: 32768.0,
            pixel_format: PixelFormat::Rgb565,
        }
    }

    #[test]
    fn av_info_and_errors_round_trip() {
        let l = Layout::new(1, 4096, 256).unwrap();
        let r = testing::anon_region(&l);
        assert_eq!(read_av(r.header()), None);
        write_av(r.header(), &av());
        assert_eq!(read_av(r.header()), Some(av()));
        assert_eq!(read_error(r.header()), None);
        write_error(r.header(), "core said no");
        assert_eq!(read_error(r.header()).as_deref(), Some("core said no"));
        let long = "é".repeat(ERROR_CAPACITY);
        write_error(r.header(), &long);
        assert_eq!(read_error(r.header()).unwrap().len(), ERROR_CAPACITY);
    }

    #[test]
    fn writer_and_reader_meet_through_one_memfd() {
        let fd = crate::sys::memfd_create("retrofarm-test").unwrap();
        File::from(fd.try_clone().unwrap()).set_len(HEADER_LEN).unwrap();
        crate::sys::seal_shrink(fd.as_fd()).unwrap();
        let header_only = Region::map(fd.as_fd(), HEADER_LEN).unwrap();
        assert_eq!(read_state(header_only.header()), Some(WriterState::Starting));
        let layout = Layout::new(4, av().max_frame_bytes(), 1024).unwrap();
        let ev = crate::sys::eventfd().unwrap();
        let mut w = WriterShm::create(fd.try_clone().unwrap(), ev.try_clone().unwrap(), layout, &av()).unwrap();
        assert_eq!(read_state(header_only.header()), Some(WriterState::Running));
        let r = ReaderShm::attach(fd.as_fd(), &header_only).unwrap();
        assert_eq!(r.av_info(), Some(av()));
        r.set_input(
            2,
            PortInput { buttons: 0x10, axes: [1, 2, 3, 4], pointer: input::Pointer { x: 5, y: -6, pressed: true } },
        );
        assert_eq!(
            w.poll_input()[2],
            PortInput { buttons: 0x10, axes: [1, 2, 3, 4], pointer: input::Pointer { x: 5, y: -6, pressed: true } }
        );
        let px = vec![7u8; 240 * 160 * 2];
        w.stage_video(VideoInput::Pixels {
            data: &px,
            width: 240,
            height: 160,
            pitch: 480,
            format: PixelFormat::Rgb565,
        })
        .unwrap();
        w.push_audio(&[1, -1, 2, -2]);
        assert_eq!(w.publish_frame(42, 1), Some(0));
        assert_eq!(crate::sys::eventfd_drain(ev.as_fd()).unwrap(), 1);
        let f = r.next_frame().unwrap();
        assert_eq!((f.meta().width, f.meta().height, f.meta().stride), (240, 160, 480));
        assert!(f.data().iter().all(|&b| b == 7) && f.is_intact());
        let mut pcm = Vec::new();
        assert_eq!(r.drain_audio(&mut pcm), 2);
        assert_eq!(pcm, vec![1, -1, 2, -2]);
        assert_eq!(r.counters().frames_published, 1);
    }
}
