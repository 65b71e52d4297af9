//! [`Converter`]: a batch of jobs (one frame of each room) to I420 and NV12 in one submission.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use ash::vk;
use retrofarm_media::convert::{MAX_DIMENSION, MAX_SCALE};
use retrofarm_media::{I420Frame, PixelFormat, Placement};

use crate::device::{DeviceChoice, DeviceInfo, Gpu};
use crate::error::{vk_error, GpuError};
use crate::layout::{Nv12Layout, Planes};
use crate::memory::{self, Allocation, MemoryUse, Source, SourceId, SourceMode, OUTPUT_USAGE};
use crate::shader::{JobParams, Pipeline, JOB_WORDS};
use crate::slot::{Slot, SlotId, SlotInfo};

/// How long a submission may take before the device is treated as hung.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(20);
/// Buffers grow in steps of this many bytes (and by half their size at least).
const GROW_STEP: u64 = 1 << 20;
/// Where each frame starts in the arena and the staging buffer.
const FRAME_ALIGN: u64 = 16;
/// Bytes of one job record.
const JOB_BYTES: u64 = (JOB_WORDS * 4) as u64;

/// One frame to convert: where it lies in a registered source, what it is, and where it lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// The registered host region holding the frame.
    pub source: SourceId,
    /// Byte offset of the frame's first pixel in the region.
    pub offset: usize,
    /// The pixel format.
    pub format: PixelFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from the start of one row to the start of the next.
    pub stride: usize,
    /// Scale and canvas, as for `retrofarm_media::convert_placed` (whose result this equals).
    pub placement: Placement,
    /// A slot (made for the canvas size) that also gets the NV12 picture, where an encoder on
    /// another API reads it ([`Converter::create_slot`]).
    pub slot: Option<SlotId>,
}

impl Job {
    /// Bytes the frame occupies from `offset`: `stride * (height - 1) + width * bytes_per_pixel`.
    pub fn frame_bytes(&self) -> usize {
        let row = self.width as usize * self.format.bytes_per_pixel();
        self.stride.saturating_mul((self.height as usize).saturating_sub(1)).saturating_add(row)
    }
}

/// How [`BatchReport::gpu_time`] was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GpuTimer {
    /// Timestamp queries around the commands: the device's own time.
    Timestamps,
    /// The queue has no timestamps: wall time from submit to the end of the wait.
    WallClock,
}

/// What one [`Converter::convert`] (or [`Converter::convert_each`]) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    /// Jobs converted.
    pub jobs: usize,
    /// Canvas pixels produced, all jobs together.
    pub pixels: u64,
    /// Queue submissions made (1 for `convert`, one per job for `convert_each`).
    pub submits: usize,
    /// Time on the GPU: uploads, the dispatch and the readback copy, all submissions together.
    pub gpu_time: Duration,
    /// How `gpu_time` was measured.
    pub timer: GpuTimer,
    /// Bytes the CPU copied into the staging buffer (0 when every source is host-imported).
    pub staged_bytes: u64,
    /// The whole call: checks, staging, GPU, and copying the rows out.
    pub total_time: Duration,
}

/// The exportable memory holding the output planes of the latest batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputMemory {
    /// The size of the memory object, as an importer (`cudaExternalMemoryHandleDesc::size`)
    /// needs it.
    pub size: u64,
    /// Whether it is a dedicated allocation (only when the driver requires one for export).
    pub dedicated: bool,
    /// Whether [`Converter::export_output_fd`] works on this device.
    pub exportable: bool,
    /// Incremented each time the memory is replaced by a bigger one (a batch with more or
    /// larger pictures): an fd exported earlier then refers to the old, unused memory.
    pub generation: u64,
}

/// Converts batches of emulator frames to I420 (and NV12) on a Vulkan device.
///
/// Owns the instance, the device, one compute queue, the pipeline, a command buffer with its
/// fence, and the buffers: the arena the frames are copied into, the job records, the output
/// planes (exportable) and the readback buffer (both grown on demand), and a staging buffer
/// for sources that could not be imported. Every call waits for the GPU, so nothing is in
/// flight between calls.
pub struct Converter {
    pipeline: Pipeline,
    command_pool: vk::CommandPool,
    command_buffer: vk::CommandBuffer,
    fence: vk::Fence,
    /// Two timestamps, or null when the queue has none.
    query_pool: vk::QueryPool,
    arena: Allocation,
    jobs: Allocation,
    output: Allocation,
    readback: Allocation,
    upload: Allocation,
    output_generation: u64,
    sources: HashMap<u64, Source>,
    next_source: u64,
    slots: HashMap<u64, Slot>,
    next_slot: u64,
    /// The planes of the latest batch's jobs.
    latest: Vec<Planes>,
    /// The device was lost or hung: every call fails.
    lost: bool,
    /// Last: dropped (device and instance destroyed) after `Drop::drop` freed the rest.
    gpu: Gpu,
}

impl std::fmt::Debug for Converter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Converter")
            .field("device", &self.gpu.info)
            .field("sources", &self.sources.len())
            .field("slots", &self.slots.len())
            .field("latest_jobs", &self.latest.len())
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

// SAFETY: the raw pointers inside (mappings owned by the converter, registered host regions
// whose validity the caller of `import` vouches for regardless of thread) carry no thread
// affinity, and Vulkan handles may be used from any thread when externally synchronised,
// which `&mut self` on every call that records or submits provides.
unsafe impl Send for Converter {}

/// Where one job's frame is copied from.
#[derive(Debug, Clone, Copy)]
enum CopyFrom {
    /// The source's imported buffer, at this offset.
    Import { buffer: vk::Buffer, offset: u64 },
    /// The staging buffer at `upload`, filled from host memory at `ptr`.
    Staged { ptr: *const u8, upload: u64 },
}

/// One job, checked and placed.
struct Planned {
    params: JobParams,
    from: CopyFrom,
    arena: u64,
    bytes: u64,
    readback: u64,
    /// The slot that also gets the NV12 planes.
    slot: Option<SlotId>,
}

/// A checked batch and the buffer sizes it needs.
struct Plan {
    jobs: Vec<Planned>,
    arena: u64,
    upload: u64,
    output: u64,
    readback: u64,
    pixels: u64,
}

impl Converter {
    /// Opens the device `choice` picks and builds the pipeline and initial buffers.
    pub fn open(choice: DeviceChoice) -> Result<Converter, GpuError> {
        let gpu = Gpu::open(choice)?;
        let mut converter = Converter {
            pipeline: Pipeline::NONE,
            command_pool: vk::CommandPool::null(),
            command_buffer: vk::CommandBuffer::null(),
            fence: vk::Fence::null(),
            query_pool: vk::QueryPool::null(),
            arena: Allocation::NONE,
            jobs: Allocation::NONE,
            output: Allocation::NONE,
            readback: Allocation::NONE,
            upload: Allocation::NONE,
            output_generation: 0,
            sources: HashMap::new(),
            next_source: 1,
            slots: HashMap::new(),
            next_slot: 1,
            latest: Vec::new(),
            lost: false,
            gpu,
        };
        // On error, Drop frees whatever was made.
        converter.init()?;
        Ok(converter)
    }

    fn init(&mut self) -> Result<(), GpuError> {
        let device = &self.gpu.device;
        let info = vk::CommandPoolCreateInfo::default()
            .queue_family_index(self.gpu.queue_family)
            .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER);
        // SAFETY: valid create infos (here and below); everything is destroyed in Drop.
        self.command_pool =
            unsafe { device.create_command_pool(&info, None) }.map_err(vk_error("vkCreateCommandPool"))?;
        let info = vk::CommandBufferAllocateInfo::default()
            .command_pool(self.command_pool)
            .level(vk::CommandBufferLevel::PRIMARY)
            .command_buffer_count(1);
        // SAFETY: as above.
        self.command_buffer =
            unsafe { device.allocate_command_buffers(&info) }.map_err(vk_error("vkAllocateCommandBuffers"))?[0];
        // SAFETY: as above.
        self.fence =
            unsafe { device.create_fence(&vk::FenceCreateInfo::default(), None) }.map_err(vk_error("vkCreateFence"))?;
        if self.gpu.timestamp_period_ns.is_some() {
            let info = vk::QueryPoolCreateInfo::default().query_type(vk::QueryType::TIMESTAMP).query_count(2);
            // SAFETY: as above.
            self.query_pool =
                unsafe { device.create_query_pool(&info, None) }.map_err(vk_error("vkCreateQueryPool"))?;
        }
        self.pipeline = Pipeline::new(&self.gpu)?;
        // Small initial buffers (every binding needs one; the output exists so that it can be
        // exported before the first batch); batches grow them.
        let storage = vk::BufferUsageFlags::STORAGE_BUFFER;
        grow(
            &self.gpu,
            &mut self.arena,
            1,
            storage | vk::BufferUsageFlags::TRANSFER_DST,
            MemoryUse::Device,
            false,
            "the frame arena",
        )?;
        grow(&self.gpu, &mut self.jobs, 1, storage, MemoryUse::Upload, false, "the job records")?;
        let export = self.gpu.fd.is_some();
        grow(&self.gpu, &mut self.output, 1, OUTPUT_USAGE, MemoryUse::Device, export, "the output planes")?;
        // SAFETY: nothing was submitted yet.
        unsafe { self.pipeline.bind(&self.gpu, self.arena.buffer, self.jobs.buffer, self.output.buffer) };
        Ok(())
    }

    /// The device converting, and what it can do.
    pub fn device(&self) -> &DeviceInfo {
        &self.gpu.info
    }

    /// Registers a host memory region (the frame ring) once, for jobs to name.
    ///
    /// With VK_EXT_external_memory_host, a region aligned to the device's
    /// `minImportedHostPointerAlignment` (page-aligned mmaps are) is imported: the GPU copies
    /// frames straight out of it ([`SourceMode::HostImport`]; when `len` is not a multiple of
    /// the alignment, the rest of the region is staged for jobs reaching into it). Otherwise,
    /// or when the driver refuses, each job's frame is copied by the CPU into a staging buffer
    /// ([`SourceMode::Staging`]; [`Converter::staging_reason`] says why).
    ///
    /// # Safety
    /// `ptr..ptr + len` must be readable host memory that stays mapped (and is not reused for
    /// anything but frames) until [`Converter::release`] or the converter is dropped. Frames a
    /// job names must not be written while [`Converter::convert`] runs.
    pub unsafe fn import(&mut self, ptr: *const u8, len: usize) -> Result<SourceId, GpuError> {
        self.alive()?;
        if ptr.is_null() || len == 0 {
            return Err(GpuError::BadSource(format!("empty region ({len} bytes at {ptr:p})")));
        }
        if (ptr as usize).checked_add(len).is_none() {
            return Err(GpuError::BadSource(format!("{len} bytes at {ptr:p} run past the address space")));
        }
        // SAFETY: forwarded contract.
        let source = unsafe { Source::new(&self.gpu, ptr, len) };
        let id = self.next_source;
        self.next_source += 1;
        self.sources.insert(id, source);
        Ok(SourceId(id))
    }

    /// How a registered source's frames reach the GPU; `None` for an unknown id.
    pub fn source_mode(&self, id: SourceId) -> Option<SourceMode> {
        self.sources.get(&id.0).map(Source::mode)
    }

    /// Why a source is staged rather than imported (for the log); `None` when it is imported
    /// or unknown.
    pub fn staging_reason(&self, id: SourceId) -> Option<&str> {
        self.sources.get(&id.0).and_then(|s| s.import.as_ref().err()).map(String::as_str)
    }

    /// Forgets a source (and its import); its memory may then be unmapped.
    ///
    /// After a timeout ([`GpuError::Timeout`]) this first waits for the device to finish
    /// (or to be declared lost by its driver), as the GPU may still be reading the region.
    pub fn release(&mut self, id: SourceId) {
        if let Some(mut source) = self.sources.remove(&id.0) {
            if self.lost {
                // SAFETY: a plain wait; its failure (a lost device) means nothing runs anymore.
                let _ = unsafe { self.gpu.device.device_wait_idle() };
            }
            // SAFETY: no submission is pending between calls (every call waits for its fence,
            // and after a failed wait the device was waited for above), so the GPU is done
            // with the imported buffer.
            unsafe { source.destroy(&self.gpu) };
        }
    }

    /// Makes a slot for `width x height` NV12 pictures (even sizes): memory that stays put
    /// and is exportable ([`Converter::export_slot_fd`]), which jobs naming it
    /// ([`Job::slot`]) fill with their NV12 planes. See the `slot` module.
    pub fn create_slot(&mut self, width: u32, height: u32) -> Result<SlotId, GpuError> {
        self.alive()?;
        if width == 0
            || height == 0
            || width % 2 == 1
            || height % 2 == 1
            || width > MAX_DIMENSION
            || height > MAX_DIMENSION
        {
            return Err(GpuError::BadSlot(format!(
                "unsupported picture size {width}x{height} (even, up to {MAX_DIMENSION})"
            )));
        }
        let slot = Slot::new(&self.gpu, width, height)?;
        let id = self.next_slot;
        self.next_slot += 1;
        self.slots.insert(id, slot);
        Ok(SlotId(id))
    }

    /// A slot's picture layout and memory; `None` for an unknown id.
    pub fn slot(&self, id: SlotId) -> Option<SlotInfo> {
        self.slots.get(&id.0).map(|s| s.info)
    }

    /// Exports a slot's memory as an OPAQUE_FD (for `cudaImportExternalMemory` with
    /// [`SlotInfo::size`]). Each call gives a new descriptor of the same memory.
    pub fn export_slot_fd(&self, id: SlotId) -> Result<OwnedFd, GpuError> {
        self.alive()?;
        let slot = self.slots.get(&id.0).ok_or_else(|| GpuError::BadSlot(format!("no slot {}", id.0)))?;
        memory::export_fd(&self.gpu, slot.alloc.memory)
    }

    /// Frees a slot. Its exported descriptors and the imports made of them must not be used
    /// afterwards for anything but their own release.
    pub fn release_slot(&mut self, id: SlotId) {
        if let Some(mut slot) = self.slots.remove(&id.0) {
            if self.lost {
                // SAFETY: a plain wait, as in `release`.
                let _ = unsafe { self.gpu.device.device_wait_idle() };
            }
            // SAFETY: nothing is pending between calls (see `release`).
            unsafe { slot.alloc.destroy(&self.gpu) };
        }
    }

    /// Reads a slot's NV12 picture back into `dst`, tightly packed as [`Converter::read_nv12`]
    /// does. A diagnostic and test path: one extra submission.
    pub fn read_slot(&mut self, id: SlotId, dst: &mut Vec<u8>) -> Result<SlotInfo, GpuError> {
        self.alive()?;
        let slot = self.slots.get(&id.0).ok_or_else(|| GpuError::BadSlot(format!("no slot {}", id.0)))?;
        let (info, buffer) = (slot.info, slot.alloc.buffer);
        let luma = u64::from(info.pitch) * u64::from(info.height);
        self.read_planes(buffer, [0, luma], info.pitch, info.width, info.height, dst)?;
        Ok(info)
    }

    /// Converts every job in one submission: copies each frame into the arena, runs ONE
    /// dispatch for all, and reads the I420 planes back into `out[i]` (resized to job `i`'s
    /// canvas). The NV12 planes stay in the output memory ([`Converter::nv12_layout`]).
    ///
    /// Nothing is submitted when a job is bad ([`GpuError::is_bad_job`]).
    pub fn convert(&mut self, jobs: &[Job], out: &mut [I420Frame]) -> Result<BatchReport, GpuError> {
        self.run(jobs, out, false)
    }

    /// As [`Converter::convert`], but one submission (upload, dispatch, readback, wait) per
    /// job: the baseline the batch is measured against. The output memory ends up the same.
    pub fn convert_each(&mut self, jobs: &[Job], out: &mut [I420Frame]) -> Result<BatchReport, GpuError> {
        self.run(jobs, out, true)
    }

    /// Where job `job_index` of the latest batch lies in the output memory, as NV12.
    pub fn nv12_layout(&self, job_index: usize) -> Option<Nv12Layout> {
        self.latest.get(job_index).map(Planes::nv12)
    }

    /// The output memory: its size and whether it can be exported.
    pub fn output_memory(&self) -> OutputMemory {
        OutputMemory {
            size: self.output.memory_size,
            dedicated: self.gpu.export_dedicated && self.gpu.fd.is_some(),
            exportable: self.gpu.fd.is_some(),
            generation: self.output_generation,
        }
    }

    /// Exports the output memory (all jobs' NV12 and I420 planes) as an OPAQUE_FD, for a CUDA
    /// or NVENC stage to import (`cudaImportExternalMemory` with the size from
    /// [`Converter::output_memory`]). Export again when its `generation` changes.
    pub fn export_output_fd(&self) -> Result<OwnedFd, GpuError> {
        self.alive()?;
        memory::export_fd(&self.gpu, self.output.memory)
    }

    /// Reads job `job_index`'s NV12 picture of the latest batch back into `dst` (tightly
    /// packed: `width * height` bytes of Y, then `width * height / 2` of UV). A diagnostic
    /// and test path: one extra submission.
    pub fn read_nv12(&mut self, job_index: usize, dst: &mut Vec<u8>) -> Result<Nv12Layout, GpuError> {
        self.alive()?;
        let Some(&planes) = self.latest.get(job_index) else {
            return Err(GpuError::BadJob { index: job_index, reason: "not in the latest batch".into() });
        };
        self.read_planes(self.output.buffer, [planes.y, planes.uv], planes.pitch, planes.width, planes.height, dst)?;
        Ok(planes.nv12())
    }

    /// Copies an NV12 picture (Y at `at[0]`, UV at `at[1]`, `pitch` bytes per row) out of
    /// `buffer` through the readback buffer into `dst`, tightly packed.
    fn read_planes(
        &mut self,
        buffer: vk::Buffer,
        at: [u64; 2],
        pitch: u32,
        width: u32,
        height: u32,
        dst: &mut Vec<u8>,
    ) -> Result<(), GpuError> {
        let luma = u64::from(pitch) * u64::from(height);
        grow(
            &self.gpu,
            &mut self.readback,
            luma * 3 / 2,
            vk::BufferUsageFlags::TRANSFER_DST,
            MemoryUse::Readback,
            false,
            "the readback buffer",
        )?;
        let regions = [
            vk::BufferCopy { src_offset: at[0], dst_offset: 0, size: luma },
            vk::BufferCopy { src_offset: at[1], dst_offset: luma, size: luma / 2 },
        ];
        let (cb, device) = (self.command_buffer, &self.gpu.device);
        // SAFETY: the command buffer is idle (every call waits); the regions lie inside both
        // buffers (the readback buffer grown above).
        unsafe {
            begin(device, cb)?;
            barrier(device, cb, Sync::ShaderToTransfer);
            device.cmd_copy_buffer(cb, buffer, self.readback.buffer, &regions);
            barrier(device, cb, Sync::TransferToHost);
            device.end_command_buffer(cb).map_err(vk_error("vkEndCommandBuffer"))?;
        }
        self.submit_and_wait()?;
        let (w, h, pitch) = (width as usize, height as usize, pitch as usize);
        dst.clear();
        // SAFETY: the mapping covers `1.5 * luma` bytes, the GPU is done writing them.
        let data = unsafe { std::slice::from_raw_parts(self.readback.mapped, luma as usize * 3 / 2) };
        for row in data.chunks(pitch).take(h + h / 2) {
            dst.extend_from_slice(&row[..w]);
        }
        Ok(())
    }

    fn alive(&self) -> Result<(), GpuError> {
        if self.lost {
            Err(GpuError::DeviceLost)
        } else {
            Ok(())
        }
    }

    fn run(&mut self, jobs: &[Job], out: &mut [I420Frame], each: bool) -> Result<BatchReport, GpuError> {
        self.alive()?;
        let started = Instant::now();
        if jobs.len() != out.len() {
            return Err(GpuError::OutputCount { jobs: jobs.len(), outputs: out.len() });
        }
        let plan = self.plan(jobs)?;
        self.latest.clear();
        let result = self.execute(&plan, each);
        if matches!(&result, Err(e) if e.is_device_lost()) {
            self.lost = true;
        }
        let (gpu_time, timer, submits) = result?;
        self.read_out(&plan, out);
        self.latest = plan.jobs.iter().map(|j| j.params.planes).collect();
        Ok(BatchReport {
            jobs: jobs.len(),
            pixels: plan.pixels,
            submits,
            gpu_time,
            timer,
            staged_bytes: plan.upload_bytes(),
            total_time: started.elapsed(),
        })
    }

    /// Checks every job and places its frame in the arena (and staging buffer) and its planes
    /// in the output and readback buffers.
    fn plan(&self, jobs: &[Job]) -> Result<Plan, GpuError> {
        let mut plan =
            Plan { jobs: Vec::with_capacity(jobs.len()), arena: 0, upload: 0, output: 0, readback: 0, pixels: 0 };
        for (index, job) in jobs.iter().enumerate() {
            let bad = |reason: String| GpuError::BadJob { index, reason };
            let source =
                self.sources.get(&job.source.0).ok_or(GpuError::UnknownSource { index, source_id: job.source })?;
            check_job(job).map_err(bad)?;
            let bytes = job.frame_bytes();
            let end = job.offset.checked_add(bytes).filter(|&end| end <= source.len).ok_or_else(|| {
                bad(format!(
                    "the frame's bytes {}..{} lie outside its source of {} bytes",
                    job.offset,
                    job.offset.saturating_add(bytes),
                    source.len
                ))
            })?;
            let from = match &source.import {
                Ok(imported) if end <= imported.len => {
                    CopyFrom::Import { buffer: imported.alloc.buffer, offset: job.offset as u64 }
                }
                _ => {
                    let upload = plan.upload.next_multiple_of(FRAME_ALIGN);
                    plan.upload = upload + bytes as u64;
                    // In bounds: checked against the region's length above.
                    CopyFrom::Staged { ptr: source.ptr.wrapping_add(job.offset), upload }
                }
            };
            let arena = plan.arena.next_multiple_of(FRAME_ALIGN);
            // One spare word: the shader's unaligned loads read a word past the last pixel.
            plan.arena = arena + (bytes as u64).next_multiple_of(4) + 4;
            let p = &job.placement;
            if let Some(id) = job.slot {
                let slot = self.slots.get(&id.0).ok_or_else(|| bad(format!("slot {} does not exist", id.0)))?;
                if (slot.info.width, slot.info.height) != (p.width, p.height) {
                    let (w, h) = (slot.info.width, slot.info.height);
                    return Err(bad(format!(
                        "slot {} holds {w}x{h} pictures, the canvas is {}x{}",
                        id.0, p.width, p.height
                    )));
                }
            }
            let planes = Planes::new(plan.output, p.width, p.height);
            plan.output = planes.end();
            let readback = plan.readback;
            plan.readback += planes.i420_bytes();
            plan.pixels += u64::from(p.width) * u64::from(p.height);
            let params = JobParams {
                arena_offset: arena as u32, // checked below with the arena's size
                format: job.format,
                width: job.width,
                height: job.height,
                stride: job.stride as u32, // checked by check_job
                placement: *p,
                planes,
            };
            plan.jobs.push(Planned { params, from, arena, bytes: bytes as u64, readback, slot: job.slot });
        }
        // The shader addresses both with u32 byte offsets, within the storage-buffer range.
        let limit = u64::from(self.gpu.limits.max_storage_buffer_range).min(u64::from(u32::MAX) & !3);
        for (what, bytes) in [("frame arena", plan.arena), ("output planes", plan.output)] {
            if bytes > limit {
                return Err(GpuError::BatchTooLarge { what, bytes, limit });
            }
        }
        let groups = plan.groups(0..plan.jobs.len());
        let max = self.gpu.limits.max_compute_work_group_count;
        if groups.0 > max[0] || groups.1 > max[1] || groups.2 > max[2] {
            return Err(GpuError::BatchTooLarge {
                what: "workgroups (jobs along z)",
                bytes: u64::from(groups.2),
                limit: u64::from(max[2]),
            });
        }
        Ok(plan)
    }

    /// Sizes the buffers, writes the job records, stages frames, and submits.
    fn execute(&mut self, plan: &Plan, each: bool) -> Result<(Duration, GpuTimer, usize), GpuError> {
        if plan.jobs.is_empty() {
            return Ok((Duration::ZERO, self.timer(), 0));
        }
        self.prepare(plan)?;
        if each {
            let mut total = Duration::ZERO;
            for i in 0..plan.jobs.len() {
                total += self.submit(plan, i..i + 1)?;
            }
            Ok((total, self.timer(), plan.jobs.len()))
        } else {
            Ok((self.submit(plan, 0..plan.jobs.len())?, self.timer(), 1))
        }
    }

    fn timer(&self) -> GpuTimer {
        if self.query_pool == vk::QueryPool::null() {
            GpuTimer::WallClock
        } else {
            GpuTimer::Timestamps
        }
    }

    fn prepare(&mut self, plan: &Plan) -> Result<(), GpuError> {
        let gpu = &self.gpu;
        let storage = vk::BufferUsageFlags::STORAGE_BUFFER;
        let mut rebind = grow(
            gpu,
            &mut self.arena,
            plan.arena,
            storage | vk::BufferUsageFlags::TRANSFER_DST,
            MemoryUse::Device,
            false,
            "the frame arena",
        )?;
        rebind |= grow(
            gpu,
            &mut self.jobs,
            plan.jobs.len() as u64 * JOB_BYTES,
            storage,
            MemoryUse::Upload,
            false,
            "the job records",
        )?;
        if grow(
            gpu,
            &mut self.output,
            plan.output,
            OUTPUT_USAGE,
            MemoryUse::Device,
            gpu.fd.is_some(),
            "the output planes",
        )? {
            self.output_generation += 1;
            rebind = true;
        }
        let readback = vk::BufferUsageFlags::TRANSFER_DST;
        grow(gpu, &mut self.readback, plan.readback, readback, MemoryUse::Readback, false, "the readback buffer")?;
        if plan.upload > 0 {
            let upload = vk::BufferUsageFlags::TRANSFER_SRC;
            grow(gpu, &mut self.upload, plan.upload, upload, MemoryUse::Upload, false, "the staging buffer")?;
        }
        if rebind {
            // SAFETY: nothing is pending between calls.
            unsafe { self.pipeline.bind(gpu, self.arena.buffer, self.jobs.buffer, self.output.buffer) };
        }
        for (i, job) in plan.jobs.iter().enumerate() {
            let record = job.params.record();
            // SAFETY: the jobs buffer is mapped, holds `jobs.len()` records (grown above) and
            // the GPU is not reading it (nothing pending); the record is plain words.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    record.as_ptr().cast::<u8>(),
                    self.jobs.mapped.add(i * JOB_BYTES as usize),
                    JOB_BYTES as usize,
                );
            }
            if let CopyFrom::Staged { ptr, upload } = job.from {
                // SAFETY: `ptr..ptr + bytes` lies inside a registered region (checked in plan),
                // readable per `import`'s contract; the staging buffer is mapped, holds
                // `plan.upload` bytes and is idle. Raw copy, no reference to shared memory.
                unsafe {
                    std::ptr::copy_nonoverlapping(ptr, self.upload.mapped.add(upload as usize), job.bytes as usize)
                };
            }
        }
        Ok(())
    }

    /// Records, submits and waits for the jobs in `range`: their frames into the arena, one
    /// dispatch, their I420 planes into the readback buffer. Returns the GPU time.
    fn submit(&mut self, plan: &Plan, range: std::ops::Range<usize>) -> Result<Duration, GpuError> {
        let jobs = &plan.jobs[range.clone()];
        // One vkCmdCopyBuffer per source buffer, with a region per frame.
        let mut copies: Vec<(vk::Buffer, Vec<vk::BufferCopy>)> = Vec::new();
        for job in jobs {
            let (buffer, src_offset) = match job.from {
                CopyFrom::Import { buffer, offset } => (buffer, offset),
                CopyFrom::Staged { upload, .. } => (self.upload.buffer, upload),
            };
            let region = vk::BufferCopy { src_offset, dst_offset: job.arena, size: job.bytes };
            match copies.iter_mut().find(|(b, _)| *b == buffer) {
                Some((_, regions)) => regions.push(region),
                None => copies.push((buffer, vec![region])),
            }
        }
        let readbacks: Vec<vk::BufferCopy> = jobs
            .iter()
            .map(|j| vk::BufferCopy {
                src_offset: j.params.planes.y,
                dst_offset: j.readback,
                size: j.params.planes.i420_bytes(),
            })
            .collect();
        let slots: Vec<(vk::Buffer, [vk::BufferCopy; 2])> = jobs
            .iter()
            .filter_map(|j| {
                let slot = self.slots.get(&j.slot?.0)?;
                Some((slot.alloc.buffer, slot.copies(&j.params.planes)))
            })
            .collect();
        let (gx, gy, gz) = plan.groups(range.clone());
        let (cb, device, qp) = (self.command_buffer, &self.gpu.device, self.query_pool);
        let timed = qp != vk::QueryPool::null();
        // SAFETY: the command buffer is idle (every call waits for its fence); every buffer
        // is alive and large enough (grown in prepare); regions were computed in plan.
        unsafe {
            begin(device, cb)?;
            if timed {
                device.cmd_reset_query_pool(cb, qp, 0, 2);
                device.cmd_write_timestamp(cb, vk::PipelineStageFlags::TOP_OF_PIPE, qp, 0);
            }
            for (buffer, regions) in &copies {
                device.cmd_copy_buffer(cb, *buffer, self.arena.buffer, regions);
            }
            barrier(device, cb, Sync::TransferToShader);
            device.cmd_bind_pipeline(cb, vk::PipelineBindPoint::COMPUTE, self.pipeline.pipeline);
            device.cmd_bind_descriptor_sets(
                cb,
                vk::PipelineBindPoint::COMPUTE,
                self.pipeline.layout,
                0,
                &[self.pipeline.set],
                &[],
            );
            let base = (range.start as u32).to_ne_bytes();
            device.cmd_push_constants(cb, self.pipeline.layout, vk::ShaderStageFlags::COMPUTE, 0, &base);
            device.cmd_dispatch(cb, gx, gy, gz);
            barrier(device, cb, Sync::ShaderToTransfer);
            device.cmd_copy_buffer(cb, self.output.buffer, self.readback.buffer, &readbacks);
            for (slot, regions) in &slots {
                device.cmd_copy_buffer(cb, self.output.buffer, *slot, regions);
            }
            // Also makes the slots visible to the host (mapped slots) once the fence signals.
            barrier(device, cb, Sync::TransferToHost);
            if timed {
                device.cmd_write_timestamp(cb, vk::PipelineStageFlags::BOTTOM_OF_PIPE, qp, 1);
            }
            device.end_command_buffer(cb).map_err(vk_error("vkEndCommandBuffer"))?;
        }
        let wall = self.submit_and_wait()?;
        let Some(period) = self.gpu.timestamp_period_ns.filter(|_| timed) else {
            return Ok(wall);
        };
        let mut stamps = [0u64; 2];
        // SAFETY: both queries were written by the finished submission.
        unsafe { device.get_query_pool_results(qp, 0, &mut stamps, vk::QueryResultFlags::TYPE_64) }
            .map_err(vk_error("vkGetQueryPoolResults"))?;
        let ticks = stamps[1].wrapping_sub(stamps[0]) & self.gpu.timestamp_mask;
        Ok(Duration::from_nanos((ticks as f64 * period) as u64))
    }

    /// Submits the recorded command buffer and waits for it; returns the wall time.
    fn submit_and_wait(&self) -> Result<Duration, GpuError> {
        let device = &self.gpu.device;
        let buffers = [self.command_buffer];
        let submit = [vk::SubmitInfo::default().command_buffers(&buffers)];
        let started = Instant::now();
        // SAFETY: the fence is unsignalled-able (not pending), the command buffer is recorded,
        // the queue is used by this converter only (`&mut self`).
        let waited = unsafe {
            device.reset_fences(&[self.fence]).map_err(vk_error("vkResetFences"))?;
            device.queue_submit(self.gpu.queue, &submit, self.fence).map_err(vk_error("vkQueueSubmit"))?;
            device.wait_for_fences(&[self.fence], true, SUBMIT_TIMEOUT.as_nanos() as u64)
        };
        match waited {
            Ok(()) => Ok(started.elapsed()),
            Err(vk::Result::TIMEOUT) => Err(GpuError::Timeout { seconds: SUBMIT_TIMEOUT.as_secs() }),
            Err(e) => Err(vk_error("vkWaitForFences")(e)),
        }
    }

    /// Copies each job's I420 rows from the readback buffer into its frame.
    fn read_out(&self, plan: &Plan, out: &mut [I420Frame]) {
        for (job, frame) in plan.jobs.iter().zip(out) {
            let planes = &job.params.planes;
            let (w, h, pitch) = (planes.width as usize, planes.height as usize, planes.pitch as usize);
            frame.resize(w, h);
            // SAFETY: the readback buffer is mapped (coherent), holds this job's I420 planes
            // at `job.readback` (sized in prepare) and the GPU finished writing them.
            let data = unsafe {
                std::slice::from_raw_parts(
                    self.readback.mapped.add(job.readback as usize),
                    planes.i420_bytes() as usize,
                )
            };
            let (luma, chroma) = data.split_at(pitch * h);
            let (u_src, v_src) = chroma.split_at(pitch / 2 * h / 2);
            let (y, u, v) = frame.planes_mut();
            copy_rows(luma, pitch, y, w);
            copy_rows(u_src, pitch / 2, u, w / 2);
            copy_rows(v_src, pitch / 2, v, w / 2);
        }
    }
}

impl Drop for Converter {
    fn drop(&mut self) {
        // SAFETY: after waiting for the device to idle, nothing is in use; each handle is
        // destroyed once (null handles are ignored); the Gpu field goes last.
        unsafe {
            let _ = self.gpu.device.device_wait_idle();
            for source in self.sources.values_mut() {
                source.destroy(&self.gpu);
            }
            for slot in self.slots.values_mut() {
                slot.alloc.destroy(&self.gpu);
            }
            for alloc in [&mut self.arena, &mut self.jobs, &mut self.output, &mut self.readback, &mut self.upload] {
                alloc.destroy(&self.gpu);
            }
            self.pipeline.destroy(&self.gpu);
            let device = &self.gpu.device;
            device.destroy_query_pool(self.query_pool, None);
            device.destroy_fence(self.fence, None);
            device.destroy_command_pool(self.command_pool, None);
        }
    }
}

impl Plan {
    /// Workgroups covering the largest canvas of `range`'s jobs, and one layer per job.
    fn groups(&self, range: std::ops::Range<usize>) -> (u32, u32, u32) {
        let (mut gx, mut gy) = (1, 1);
        for job in &self.jobs[range.clone()] {
            let (x, y) = job.params.groups();
            (gx, gy) = (gx.max(x), gy.max(y));
        }
        (gx, gy, range.len() as u32)
    }

    fn upload_bytes(&self) -> u64 {
        self.jobs.iter().filter(|j| matches!(j.from, CopyFrom::Staged { .. })).map(|j| j.bytes).sum()
    }
}

/// The checks `retrofarm_media::convert_placed` makes (and those its `Placement::new`
/// guarantees, as placements can be built by hand), except the source length.
fn check_job(job: &Job) -> Result<(), String> {
    let (w, h) = (job.width, job.height);
    if w == 0 || h == 0 || w > MAX_DIMENSION || h > MAX_DIMENSION {
        return Err(format!("unsupported frame size {w}x{h}"));
    }
    let row = w as usize * job.format.bytes_per_pixel();
    if job.stride < row {
        return Err(format!("stride {} is shorter than a row of {row} bytes", job.stride));
    }
    if job.stride > u32::MAX as usize / 2 {
        return Err(format!("stride {} is too large", job.stride));
    }
    let p = &job.placement;
    if (p.src_width, p.src_height) != (w, h) {
        return Err(format!("placement is for {}x{}, the frame is {w}x{h}", p.src_width, p.src_height));
    }
    if !(1..=MAX_SCALE).contains(&p.scale) {
        return Err(format!("unsupported scale {}: 1 to {MAX_SCALE} are", p.scale));
    }
    let (cw, ch) = (p.width, p.height);
    if cw == 0 || ch == 0 || cw % 2 == 1 || ch % 2 == 1 || cw > MAX_DIMENSION || ch > MAX_DIMENSION {
        return Err(format!("unsupported canvas {cw}x{ch} (even, up to {MAX_DIMENSION})"));
    }
    if p.x + p.image_width() > cw || p.y + p.image_height() > ch {
        return Err(format!(
            "the {}x{} image at ({}, {}) does not fit the {cw}x{ch} canvas",
            p.image_width(),
            p.image_height(),
            p.x,
            p.y
        ));
    }
    Ok(())
}

/// Makes `alloc` at least `needed` bytes (growing by half at least, in MiB steps, within the
/// storage-buffer limit for storage buffers). Returns whether it was replaced.
fn grow(
    gpu: &Gpu,
    alloc: &mut Allocation,
    needed: u64,
    usage: vk::BufferUsageFlags,
    place: MemoryUse,
    export: bool,
    what: &'static str,
) -> Result<bool, GpuError> {
    let needed = needed.max(4);
    if alloc.size >= needed && alloc.buffer != vk::Buffer::null() {
        return Ok(false);
    }
    let mut size = needed.max(alloc.size + alloc.size / 2).next_multiple_of(GROW_STEP);
    if usage.contains(vk::BufferUsageFlags::STORAGE_BUFFER) {
        size = size.min(u64::from(gpu.limits.max_storage_buffer_range) & !3).max(needed);
    }
    let fresh = Allocation::new(gpu, size, usage, place, export, what)?;
    // SAFETY: nothing is pending between calls, so the GPU is done with the old buffer; the
    // caller rebinds descriptors that named it.
    unsafe { alloc.destroy(gpu) };
    *alloc = fresh;
    Ok(true)
}

/// Copies `rows` rows of `width` bytes from `src` (`pitch` apart) into tightly packed `dst`.
fn copy_rows(src: &[u8], pitch: usize, dst: &mut [u8], width: usize) {
    for (d, s) in dst.chunks_exact_mut(width).zip(src.chunks(pitch)) {
        d.copy_from_slice(&s[..width]);
    }
}

/// The execution and memory dependencies between the steps of a submission.
#[derive(Debug, Clone, Copy)]
enum Sync {
    /// Frames copied into the arena, then read by the shader.
    TransferToShader,
    /// Planes written by the shader, then copied out.
    ShaderToTransfer,
    /// The readback buffer written by a copy, then read by the CPU after the fence.
    TransferToHost,
}

/// Records a global memory barrier.
///
/// # Safety
/// `cb` is recording.
unsafe fn barrier(device: &ash::Device, cb: vk::CommandBuffer, sync: Sync) {
    use vk::{AccessFlags as A, PipelineStageFlags as S};
    let (src_stage, src, dst_stage, dst) = match sync {
        Sync::TransferToShader => (S::TRANSFER, A::TRANSFER_WRITE, S::COMPUTE_SHADER, A::SHADER_READ),
        Sync::ShaderToTransfer => (S::COMPUTE_SHADER, A::SHADER_WRITE, S::TRANSFER, A::TRANSFER_READ),
        Sync::TransferToHost => (S::TRANSFER, A::TRANSFER_WRITE, S::HOST, A::HOST_READ),
    };
    let memory = [vk::MemoryBarrier::default().src_access_mask(src).dst_access_mask(dst)];
    // SAFETY: per this function's contract.
    unsafe { device.cmd_pipeline_barrier(cb, src_stage, dst_stage, vk::DependencyFlags::empty(), &memory, &[], &[]) };
}

/// Resets and begins the command buffer for one submission.
///
/// # Safety
/// `cb` is not pending.
unsafe fn begin(device: &ash::Device, cb: vk::CommandBuffer) -> Result<(), GpuError> {
    // SAFETY: per this function's contract; the pool allows resetting single buffers.
    unsafe {
        device
            .reset_command_buffer(cb, vk::CommandBufferResetFlags::empty())
            .map_err(vk_error("vkResetCommandBuffer"))?;
        let info = vk::CommandBufferBeginInfo::default().flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
        device.begin_command_buffer(cb, &info).map_err(vk_error("vkBeginCommandBuffer"))
    }
}
