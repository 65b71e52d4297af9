//! NV12 slots: a picture that stays where it is, in exportable memory, for an encoder on another
//! API (NVENC through CUDA) that registers its input once.
//!
//! A batch packs its jobs' planes into the output memory in the order the jobs come, so a
//! room's picture lies somewhere else in every batch. A job that names a slot
//! ([`Job::slot`](crate::Job::slot)) also gets its NV12 planes copied into the slot, on the GPU,
//! in the batch's own submission: two copy regions, nothing through the CPU. A room has one
//! frame in flight at a time, so one slot per room is enough: the encoder has read the picture
//! before the room submits its next frame.

use ash::vk;

use crate::device::Gpu;
use crate::error::GpuError;
use crate::layout::{Planes, BLOCK_WIDTH};
use crate::memory::{Allocation, MemoryUse};

/// A slot made with [`Converter::create_slot`](crate::Converter::create_slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(pub(crate) u64);

impl SlotId {
    /// Its number, unique within its converter.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Where a slot's picture lies, and how another API reaches its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotInfo {
    /// Picture width in pixels (even).
    pub width: u32,
    /// Picture height in pixels (even).
    pub height: u32,
    /// Bytes per row of both planes: Y at offset 0, the interleaved UV plane (U first) at
    /// `pitch * height`.
    pub pitch: u32,
    /// The size of the memory object, as an importer needs it (`cudaExternalMemoryHandleDesc::size`).
    pub size: u64,
    /// Whether the memory is a dedicated allocation (only where the driver requires one for
    /// export; CUDA then imports it with `cudaExternalMemoryDedicated`).
    pub dedicated: bool,
    /// Whether [`Converter::export_slot_fd`](crate::Converter::export_slot_fd) works.
    pub exportable: bool,
    /// The slot's address in this process, where the device's memory is host-visible (Mesa's
    /// lavapipe, integrated GPUs); `None` on discrete GPUs. Valid until the slot is released.
    pub host_address: Option<usize>,
}

impl SlotInfo {
    /// Bytes of the NV12 picture: `pitch * height * 3 / 2`.
    pub fn nv12_bytes(&self) -> u64 {
        u64::from(self.pitch) * u64::from(self.height) * 3 / 2
    }
}

/// A slot's buffer and what it holds.
pub(crate) struct Slot {
    pub(crate) alloc: Allocation,
    pub(crate) info: SlotInfo,
}

impl Slot {
    /// A slot for a `width x height` picture (even sizes, checked by the caller), with the
    /// pitch the output planes of such a picture have, so one region copies each plane.
    pub(crate) fn new(gpu: &Gpu, width: u32, height: u32) -> Result<Slot, GpuError> {
        let pitch = width.next_multiple_of(BLOCK_WIDTH);
        let bytes = u64::from(pitch) * u64::from(height) * 3 / 2;
        let usage = vk::BufferUsageFlags::TRANSFER_DST | vk::BufferUsageFlags::TRANSFER_SRC;
        let export = gpu.fd.is_some();
        let alloc = Allocation::new(gpu, bytes, usage, MemoryUse::Handoff, export, "an NV12 slot")?;
        let info = SlotInfo {
            width,
            height,
            pitch,
            size: alloc.memory_size,
            dedicated: export && gpu.export_dedicated,
            exportable: export,
            host_address: (!alloc.mapped.is_null()).then_some(alloc.mapped as usize),
        };
        Ok(Slot { alloc, info })
    }

    /// The regions that copy a job's NV12 planes (`planes`, in the output buffer) into the slot.
    pub(crate) fn copies(&self, planes: &Planes) -> [vk::BufferCopy; 2] {
        let luma = u64::from(self.info.pitch) * u64::from(self.info.height);
        [
            vk::BufferCopy { src_offset: planes.y, dst_offset: 0, size: luma },
            vk::BufferCopy { src_offset: planes.uv, dst_offset: luma, size: luma / 2 },
        ]
    }
}
