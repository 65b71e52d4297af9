//! A shared mapping of the memfd, and typed access to what lives in it.
//!
//! The header and slot table are structs of atomics, so handing out shared references to them
//! is sound. Pixels are plain bytes that the other process may be rewriting while we look:
//! every pixel read is bracketed by the slot's seqlock (see `frame_ring`), and callers are told
//! to verify after use.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

use super::layout::{Header, Layout, SlotEntry, HEADER_LEN};

/// A `MAP_SHARED` read-write mapping of (a prefix of) the shared memory file.
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory shared with another process anyway; everything we expose
// is either atomics or byte copies whose tearing is detected by seqlocks.
unsafe impl Send for Region {}
// SAFETY: as above; no method hands out `&mut` to the mapped memory.
unsafe impl Sync for Region {}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region").field("ptr", &self.ptr).field("len", &self.len).finish()
    }
}

impl Region {
    /// Maps the first `len` bytes of `fd` (which must be at least that long).
    pub fn map(fd: BorrowedFd<'_>, len: u64) -> io::Result<Self> {
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        if len < HEADER_LEN as usize {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "mapping smaller than the header"));
        }
        let file_len = {
            // SAFETY: zeroed `stat` is a valid value to be overwritten by fstat.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: `fd` is a valid descriptor and `st` is writable.
            if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
                return Err(io::Error::last_os_error());
            }
            st.st_size as u64
        };
        if file_len < len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("shared memory is {file_len} bytes, expected at least {len}"),
            ));
        }
        // SAFETY: a fresh mapping at an address of the kernel's choosing; arguments are valid.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(io::ErrorKind::Other)?;
        Ok(Self { ptr, len })
    }

    /// Length of the mapping.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never, once mapped).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Base address (page-aligned): what a GPU host-memory import takes.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The header at offset 0.
    pub fn header(&self) -> &Header {
        // SAFETY: the mapping is at least HEADER_LEN long (checked in `map`), page-aligned
        // (≥ Header's 64-byte alignment), zero-filled by the kernel (all-zero is a valid value
        // for every atomic field) and only ever accessed through atomics.
        unsafe { &*self.ptr.as_ptr().cast::<Header>() }
    }

    /// The slot table of `layout` (which must fit this mapping).
    pub fn slots(&self, layout: &Layout) -> &[SlotEntry] {
        let end = layout.slot_table_offset as usize + layout.frame_slots as usize * std::mem::size_of::<SlotEntry>();
        assert!(end <= self.len, "slot table outside the mapping");
        assert_eq!(layout.slot_table_offset % 64, 0);
        // SAFETY: in bounds (asserted), 64-aligned (page base + multiple of 64), made only of
        // atomics that are valid when zero, accessed only through atomics.
        unsafe {
            std::slice::from_raw_parts(
                self.ptr.as_ptr().add(layout.slot_table_offset as usize).cast::<SlotEntry>(),
                layout.frame_slots as usize,
            )
        }
    }

    /// The PCM ring of `layout`: one u32 per stereo frame (left in the low half).
    pub fn pcm(&self, layout: &Layout) -> &[AtomicU32] {
        let end = layout.pcm_offset as usize + layout.pcm_capacity as usize * 4;
        assert!(end <= self.len, "PCM ring outside the mapping");
        // SAFETY: in bounds (asserted), 4-aligned (page-aligned offset), atomics only.
        unsafe {
            std::slice::from_raw_parts(
                self.ptr.as_ptr().add(layout.pcm_offset as usize).cast::<AtomicU32>(),
                layout.pcm_capacity as usize,
            )
        }
    }

    fn check(&self, offset: usize, len: usize) {
        let end = offset.checked_add(len).expect("offset overflow");
        assert!(end <= self.len, "access {offset}+{len} outside mapping of {}", self.len);
    }

    /// A view of `len` bytes at `offset`. The other process may rewrite them at any time:
    /// only trust what you read after checking the slot's sequence word again.
    pub fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        self.check(offset, len);
        // SAFETY: in bounds (checked). The memory is shared with another process, so its
        // contents may change under us; callers validate them with the slot seqlock after use
        // and never rely on two reads agreeing.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset), len) }
    }

    /// Copies `src` into the mapping at `offset`.
    pub(crate) fn write(&self, offset: usize, src: &[u8]) {
        self.check(offset, src.len());
        // SAFETY: in bounds (checked); `src` cannot overlap the mapping's slot being written
        // (callers pass memory of their own or of the core). Writers hold the slot's odd
        // sequence while doing this, so readers discard what they may have seen.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(offset), src.len()) }
    }

    /// Copies `len` bytes inside the mapping (used for duplicated frames).
    pub(crate) fn copy_within(&self, from: usize, to: usize, len: usize) {
        self.check(from, len);
        self.check(to, len);
        // SAFETY: both ranges are in bounds (checked); `copy` allows overlap.
        unsafe { std::ptr::copy(self.ptr.as_ptr().add(from), self.ptr.as_ptr().add(to), len) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped; no references outlive `self` (they all
        // borrow it).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
