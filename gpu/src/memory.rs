//! Buffers and their memory: device-local, host-visible (upload, readback), exportable as an
//! OPAQUE_FD (the output planes), and imported from host memory (the frame ring).

use std::ffi::c_void;
use std::os::fd::{FromRawFd, OwnedFd};

use ash::vk;

use crate::device::Gpu;
use crate::error::{alloc_error, vk_error, GpuError};

/// How the output buffer is used: written by the shader, copied to the readback buffer, and
/// (exported) read by another API.
pub(crate) const OUTPUT_USAGE: vk::BufferUsageFlags = vk::BufferUsageFlags::from_raw(
    vk::BufferUsageFlags::STORAGE_BUFFER.as_raw()
        | vk::BufferUsageFlags::TRANSFER_SRC.as_raw()
        | vk::BufferUsageFlags::TRANSFER_DST.as_raw(),
);

/// Where a buffer's memory should live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemoryUse {
    /// Device-local when there is such memory (the arena, the output planes).
    Device,
    /// Host-visible and coherent, written by the CPU (staging, job records).
    Upload,
    /// Host-visible and coherent, cached if possible: read by the CPU.
    Readback,
    /// Device-local when there is such memory, and mapped when that memory is host-visible
    /// too (lavapipe, integrated GPUs): handed to another API (the NV12 slots).
    Handoff,
}

/// A buffer bound to its own memory, mapped when host-visible.
pub(crate) struct Allocation {
    pub(crate) buffer: vk::Buffer,
    pub(crate) memory: vk::DeviceMemory,
    pub(crate) size: u64,
    /// The size of the memory object (at least `size`), as an importer of an export needs it.
    pub(crate) memory_size: u64,
    /// The mapping of the whole buffer, or null.
    pub(crate) mapped: *mut u8,
}

impl Allocation {
    /// No buffer (Vulkan's destroy calls take null handles).
    pub(crate) const NONE: Allocation = Allocation {
        buffer: vk::Buffer::null(),
        memory: vk::DeviceMemory::null(),
        size: 0,
        memory_size: 0,
        mapped: std::ptr::null_mut(),
    };

    /// A buffer of `size` bytes for `usage`, in memory for `place`; exportable as an
    /// OPAQUE_FD when `export` (the device must support it: [`Gpu::fd`]).
    pub(crate) fn new(
        gpu: &Gpu,
        size: u64,
        usage: vk::BufferUsageFlags,
        place: MemoryUse,
        export: bool,
        what: &'static str,
    ) -> Result<Allocation, GpuError> {
        let handle = vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD;
        let mut external = vk::ExternalMemoryBufferCreateInfo::default().handle_types(handle);
        let mut info = vk::BufferCreateInfo::default().size(size).usage(usage).sharing_mode(vk::SharingMode::EXCLUSIVE);
        if export {
            info = info.push_next(&mut external);
        }
        let device = &gpu.device;
        // SAFETY: a valid create info (non-zero size, the external chain only with the
        // extension enabled); the buffer is destroyed on every error path below.
        let buffer = unsafe { device.create_buffer(&info, None) }.map_err(alloc_error(what, size))?;
        let mut alloc =
            Allocation { buffer, memory: vk::DeviceMemory::null(), size, memory_size: 0, mapped: std::ptr::null_mut() };
        match alloc.bind(gpu, place, export, what) {
            Ok(()) => Ok(alloc),
            Err(e) => {
                // SAFETY: the buffer and memory (if any) are unused and not used again.
                unsafe { alloc.destroy(gpu) };
                Err(e)
            }
        }
    }

    fn bind(&mut self, gpu: &Gpu, place: MemoryUse, export: bool, what: &'static str) -> Result<(), GpuError> {
        let device = &gpu.device;
        // SAFETY: a valid buffer.
        let needs = unsafe { device.get_buffer_memory_requirements(self.buffer) };
        let (required, preferred) = match place {
            MemoryUse::Device | MemoryUse::Handoff => {
                (vk::MemoryPropertyFlags::empty(), vk::MemoryPropertyFlags::DEVICE_LOCAL)
            }
            MemoryUse::Upload => (host_coherent(), host_coherent()),
            MemoryUse::Readback => (host_coherent(), host_coherent() | vk::MemoryPropertyFlags::HOST_CACHED),
        };
        let index =
            memory_type(gpu, needs.memory_type_bits, required, preferred).ok_or(GpuError::NoMemoryType { what })?;
        let mut export_info =
            vk::ExportMemoryAllocateInfo::default().handle_types(vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD);
        let mut dedicated = vk::MemoryDedicatedAllocateInfo::default().buffer(self.buffer);
        let mut info = vk::MemoryAllocateInfo::default().allocation_size(needs.size).memory_type_index(index);
        if export {
            info = info.push_next(&mut export_info);
            // Not dedicated unless the driver insists: a plain allocation is what CUDA's
            // cudaImportExternalMemory takes without flags.
            if gpu.export_dedicated {
                info = info.push_next(&mut dedicated);
            }
        }
        // SAFETY: a valid allocate info whose chain matches how the buffer was created.
        self.memory = unsafe { device.allocate_memory(&info, None) }.map_err(alloc_error(what, needs.size))?;
        self.memory_size = needs.size;
        // SAFETY: fresh memory of a type the buffer accepts, at least `needs.size` bytes.
        unsafe { device.bind_buffer_memory(self.buffer, self.memory, 0) }.map_err(vk_error("vkBindBufferMemory"))?;
        let flags = gpu.memory.memory_types[index as usize].property_flags;
        let visible = flags.contains(host_coherent());
        if matches!(place, MemoryUse::Upload | MemoryUse::Readback) || (place == MemoryUse::Handoff && visible) {
            // SAFETY: host-visible memory, mapped once for its whole life, unmapped by freeing.
            let ptr = unsafe { device.map_memory(self.memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty()) }
                .map_err(vk_error("vkMapMemory"))?;
            self.mapped = ptr.cast();
        }
        Ok(())
    }

    /// Destroys the buffer and frees its memory (which unmaps it); leaves [`Allocation::NONE`].
    ///
    /// # Safety
    /// The GPU must be done with the buffer, and no pointer into the mapping may be used later.
    pub(crate) unsafe fn destroy(&mut self, gpu: &Gpu) {
        // SAFETY: per this function's contract; null handles are ignored by Vulkan.
        unsafe {
            gpu.device.destroy_buffer(self.buffer, None);
            gpu.device.free_memory(self.memory, None);
        }
        *self = Allocation::NONE;
    }
}

fn host_coherent() -> vk::MemoryPropertyFlags {
    vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT
}

/// The first memory type in `bits` with all of `preferred`, else the first with `required`.
fn memory_type(
    gpu: &Gpu,
    bits: u32,
    required: vk::MemoryPropertyFlags,
    preferred: vk::MemoryPropertyFlags,
) -> Option<u32> {
    let types = &gpu.memory.memory_types[..gpu.memory.memory_type_count as usize];
    let find = |flags: vk::MemoryPropertyFlags| {
        (0..types.len() as u32).find(|&i| bits & (1 << i) != 0 && types[i as usize].property_flags.contains(flags))
    };
    find(preferred | required).or_else(|| find(required))
}

/// Exports `memory` (allocated with [`Allocation::new`]`(.., export: true, ..)`) as an
/// OPAQUE_FD.
pub(crate) fn export_fd(gpu: &Gpu, memory: vk::DeviceMemory) -> Result<OwnedFd, GpuError> {
    let ext = gpu.fd.as_ref().ok_or(GpuError::Unsupported { what: "exporting memory as an OPAQUE_FD" })?;
    let info =
        vk::MemoryGetFdInfoKHR::default().memory(memory).handle_type(vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD);
    // SAFETY: the memory was allocated exportable as OPAQUE_FD on this device.
    let fd = unsafe { ext.get_memory_fd(&info) }.map_err(vk_error("vkGetMemoryFdKHR"))?;
    // SAFETY: vkGetMemoryFdKHR hands the caller a new file descriptor it owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A host memory region registered with [`Converter::import`](crate::Converter::import).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub(crate) u64);

/// How a source's frames reach the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceMode {
    /// The region is imported (VK_EXT_external_memory_host): the GPU copies each frame straight
    /// out of it.
    HostImport,
    /// The CPU copies each frame into a host-visible staging buffer first.
    Staging,
}

/// A registered host memory region.
pub(crate) struct Source {
    pub(crate) ptr: *const u8,
    pub(crate) len: usize,
    /// The imported buffer over the first `imported` bytes, or why there is none.
    pub(crate) import: Result<Imported, String>,
}

/// A host region imported as a transfer source.
pub(crate) struct Imported {
    pub(crate) alloc: Allocation,
    /// Bytes from the region's start the buffer covers (a multiple of the import alignment).
    pub(crate) len: usize,
}

impl Source {
    /// Registers `len` bytes at `ptr`: imported when the device and the driver allow it.
    ///
    /// # Safety
    /// As [`Converter::import`](crate::Converter::import).
    pub(crate) unsafe fn new(gpu: &Gpu, ptr: *const u8, len: usize) -> Source {
        // SAFETY: forwarded contract.
        let import = unsafe { import_host(gpu, ptr, len) };
        Source { ptr, len, import }
    }

    pub(crate) fn mode(&self) -> SourceMode {
        if self.import.is_ok() {
            SourceMode::HostImport
        } else {
            SourceMode::Staging
        }
    }

    /// # Safety
    /// The GPU must be done with the source.
    pub(crate) unsafe fn destroy(&mut self, gpu: &Gpu) {
        if let Ok(imported) = &mut self.import {
            // SAFETY: forwarded contract.
            unsafe { imported.alloc.destroy(gpu) };
        }
    }
}

/// Imports the largest prefix of the region that is a multiple of the import alignment as a
/// TRANSFER_SRC buffer; Err says why not (the caller then stages).
///
/// # Safety
/// `ptr..ptr + len` is mapped host memory that stays mapped until the returned buffer is
/// destroyed.
unsafe fn import_host(gpu: &Gpu, ptr: *const u8, len: usize) -> Result<Imported, String> {
    let Some(ext) = &gpu.host else {
        return Err("the device cannot import host memory (no VK_EXT_external_memory_host)".into());
    };
    let align = gpu.import_alignment;
    if !(ptr as usize).is_multiple_of(align) {
        return Err(format!("the region at {ptr:p} is not aligned to {align} bytes"));
    }
    let size = len / align * align;
    if size == 0 {
        return Err(format!("the region of {len} bytes is smaller than the import alignment of {align}"));
    }
    let handle = vk::ExternalMemoryHandleTypeFlags::HOST_ALLOCATION_EXT;
    let mut pointer = vk::MemoryHostPointerPropertiesEXT::default();
    // SAFETY: the extension is enabled; `ptr` is an aligned host pointer (contract).
    let props = unsafe {
        (ext.fp().get_memory_host_pointer_properties_ext)(gpu.device.handle(), handle, ptr.cast(), &mut pointer)
    };
    if props != vk::Result::SUCCESS {
        return Err(format!("vkGetMemoryHostPointerPropertiesEXT refused the region: {props}"));
    }
    let mut external = vk::ExternalMemoryBufferCreateInfo::default().handle_types(handle);
    let info = vk::BufferCreateInfo::default()
        .size(size as u64)
        .usage(vk::BufferUsageFlags::TRANSFER_SRC)
        .sharing_mode(vk::SharingMode::EXCLUSIVE)
        .push_next(&mut external);
    let device = &gpu.device;
    // SAFETY: a valid create info; destroyed on every error path below.
    let buffer = unsafe { device.create_buffer(&info, None) }.map_err(|e| format!("vkCreateBuffer: {e}"))?;
    let mut alloc = Allocation {
        buffer,
        memory: vk::DeviceMemory::null(),
        size: size as u64,
        memory_size: size as u64,
        mapped: std::ptr::null_mut(),
    };
    let bound = (|| {
        // SAFETY: a valid buffer.
        let needs = unsafe { device.get_buffer_memory_requirements(buffer) };
        if needs.size > size as u64 {
            return Err(format!("the driver needs {} bytes for a buffer over {size}", needs.size));
        }
        let bits = needs.memory_type_bits & pointer.memory_type_bits;
        let index = memory_type(gpu, bits, vk::MemoryPropertyFlags::empty(), vk::MemoryPropertyFlags::empty())
            .ok_or("no memory type can hold both the buffer and the host pointer")?;
        let mut import = vk::ImportMemoryHostPointerInfoEXT::default()
            .handle_type(handle)
            .host_pointer(ptr.cast_mut().cast::<c_void>());
        let info = vk::MemoryAllocateInfo::default()
            .allocation_size(size as u64)
            .memory_type_index(index)
            .push_next(&mut import);
        // SAFETY: `ptr` is aligned, `size` a multiple of the alignment and within the region,
        // which stays mapped as long as the memory exists (contract).
        alloc.memory = unsafe { device.allocate_memory(&info, None) }.map_err(|e| format!("vkAllocateMemory: {e}"))?;
        // SAFETY: memory of a type the buffer accepts, as large as its requirements.
        unsafe { device.bind_buffer_memory(buffer, alloc.memory, 0) }.map_err(|e| format!("vkBindBufferMemory: {e}"))
    })();
    match bound {
        Ok(()) => Ok(Imported { alloc, len: size }),
        Err(why) => {
            // SAFETY: unused and not used again.
            unsafe { alloc.destroy(gpu) };
            Err(why)
        }
    }
}
