//! The shared memory an emulator child writes and the worker reads (`retrofarm_emulator::shm`):
//! the checks `ReaderShm::attach` makes of the header the child filled in (magic, version,
//! layout parameters, av info), then the reader side of the frame ring, the PCM ring and the
//! header's state and error text, all of which the child (running an untrusted ROM in a
//! libretro core) can set to anything at any time.
//!
//! Input:
//! - byte 0: the file's length: 0 what the header's layout needs, 1 the header page only,
//!   2 a page short of the layout, 3 a page more;
//! - bytes 1..3: `n`, u16 LE; then `n` bytes written at offset 0 (header page, slot table);
//! - then operations, one byte each (+ 10 for a write): read the next frame, the latest frame,
//!   drain audio, read counters and av info, check the last frame is intact, or write 8 bytes
//!   anywhere in the first 8 KiB (a hostile child changing the header or slot table between
//!   reads).
//!
//! Properties: no panic; attach refuses what it cannot use with a message; every frame handed
//! out lies inside its slot, has the geometry its metadata claims, and comes in order;
//! audio drained per call never exceeds the ring.
#![no_main]

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use retrofarm_emulator::shm::layout::{Header, Layout, ERROR_CAPACITY, HEADER_LEN, PAGE};
use retrofarm_emulator::shm::region::Region;
use retrofarm_emulator::shm::{read_av, read_error, read_state, ReaderShm};
use retrofarm_emulator::{FrameTicket, PortInput};
use retrofarm_fuzz::check_error;

/// Largest file the target builds (a bigger layout is left at the header page's length).
const MAX_FILE: u64 = 256 << 20;
/// Bytes written before attaching, and the reach of a write operation.
const MAX_OVERLAY: usize = 8192;

fn shm_file() -> &'static File {
    static FILE: OnceLock<File> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
        let path = dir.join(format!("retrofarm-fuzz-shm-{}", std::process::id()));
        let file = File::options().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    })
}

fn field<const N: usize>(overlay: &[u8], at: usize) -> [u8; N] {
    let mut b = [0u8; N];
    for (i, v) in b.iter_mut().enumerate() {
        *v = overlay.get(at + i).copied().unwrap_or(0);
    }
    b
}

/// The layout the overlay's header asks for, as the reader will compute it.
fn layout_of(overlay: &[u8]) -> Option<Layout> {
    let slots = u32::from_le_bytes(field(overlay, std::mem::offset_of!(Header, frame_slots)));
    let cap = u64::from_le_bytes(field(overlay, std::mem::offset_of!(Header, slot_capacity)));
    let pcm = u64::from_le_bytes(field(overlay, std::mem::offset_of!(Header, pcm_capacity)));
    Layout::new(slots, cap, pcm).ok()
}

fuzz_target!(|data: &[u8]| {
    let [mode, n0, n1, rest @ ..] = data else { return };
    let n = usize::from(u16::from_le_bytes([*n0, *n1])).min(rest.len()).min(MAX_OVERLAY);
    let (overlay, mut ops) = rest.split_at(n);

    let file = shm_file();
    file.set_len(0).unwrap();
    file.write_all_at(overlay, 0).unwrap();
    let total = layout_of(overlay).map(|l| l.total_len).filter(|&t| t <= MAX_FILE);
    let len = match (mode % 4, total) {
        (0, Some(t)) => t,
        (2, Some(t)) => t - PAGE,
        (3, Some(t)) => t + PAGE,
        _ => HEADER_LEN,
    };
    // The worker sizes the file to the header page and seals it against shrinking.
    file.set_len(len.max(HEADER_LEN)).unwrap();

    let header = Region::map(file.as_fd(), HEADER_LEN).expect("the header page maps");
    let _ = read_state(header.header());
    if let Some(e) = read_error(header.header()) {
        assert!(!e.is_empty() && e.len() <= 3 * ERROR_CAPACITY);
    }
    let _ = read_av(header.header());
    let shm = match ReaderShm::attach(file.as_fd(), &header) {
        Ok(s) => s,
        Err(e) => {
            check_error(&e);
            return;
        }
    };
    drop(header);
    let layout = *shm.layout();
    assert_eq!(shm.region().len() as u64, layout.total_len);
    assert!(shm.av_info().is_some(), "attached without av info");

    let mut last: Option<u64> = None;
    let mut ticket: Option<FrameTicket> = None;
    let mut audio = Vec::new();
    for _ in 0..256 {
        let Some((&op, tail)) = ops.split_first() else { break };
        ops = tail;
        let frame = match op % 6 {
            0 => shm.next_frame(),
            1 => shm.latest_frame(),
            2 => {
                audio.clear();
                let frames = shm.drain_audio(&mut audio);
                assert_eq!(audio.len(), 2 * frames);
                assert!(frames as u64 <= layout.pcm_capacity, "{frames} frames from a ring of {}", layout.pcm_capacity);
                None
            }
            3 => {
                let _ = (shm.counters(), shm.has_unread_frames(), shm.av_info());
                None
            }
            4 => {
                if let Some(t) = ticket {
                    let _ = shm.is_intact(t);
                }
                shm.set_input(usize::from(op >> 6), PortInput { buttons: u16::from(op), axes: [i16::from(op); 4], ..PortInput::default() });
                None
            }
            _ => {
                let Some((w, tail)) = ops.split_first_chunk::<10>() else { break };
                ops = tail;
                let at = (u64::from(u16::from_le_bytes([w[0], w[1]])) % MAX_OVERLAY as u64) & !7;
                if at < len.max(HEADER_LEN) {
                    file.write_all_at(&w[2..], at).unwrap();
                }
                None
            }
        };
        let Some(f) = frame else { continue };
        let m = *f.meta();
        assert!(last.is_none_or(|l| m.number > l), "frame {} after {last:?}", m.number);
        last = Some(m.number);
        assert!(m.width > 0 && m.height > 0);
        assert!(u64::from(m.stride) >= u64::from(m.width) * m.format.bytes_per_pixel() as u64);
        assert!(m.len() as u64 <= layout.slot_capacity);
        assert_eq!(f.data().len(), m.len());
        assert_eq!(f.offset(), layout.slot_offset(layout.slot_of(m.number)));
        assert!(f.offset() + m.len() as u64 <= layout.pcm_offset, "a frame reaching past its slot");
        let _ = (f.data().first(), f.data().last(), f.is_intact());
        ticket = Some(f.ticket());
    }
});
