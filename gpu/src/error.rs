//! [`GpuError`]: what can go wrong, worded for the operator who reads the worker's log.

use ash::vk;

use crate::memory::SourceId;

/// Why the GPU converter could not be opened or could not convert a batch.
///
/// [`GpuError::is_device_lost`] tells the worker to drop the converter and fall back to the
/// CPU path (`retrofarm_media::convert_placed`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// The Vulkan loader could not be loaded.
    #[error("libvulkan.so.1 not found: install libvulkan1 and your GPU's Vulkan driver, or set gpu = \"off\" ({0})")]
    NoLoader(String),
    /// The loader only speaks Vulkan 1.0.
    #[error(
        "the Vulkan loader only offers Vulkan 1.0; 1.1 or later is needed: update libvulkan1, or set gpu = \"off\""
    )]
    LoaderTooOld,
    /// No Vulkan 1.1 device with a compute queue.
    #[error(
        "no usable Vulkan device (one with Vulkan 1.1 and a compute queue){found}: install your GPU's Vulkan \
         driver (check `vulkaninfo --summary`), or set gpu = \"off\""
    )]
    NoDevice {
        /// What was found instead, as "; found ..." or "; no Vulkan driver (ICD) is installed",
        /// or empty.
        found: String,
    },
    /// [`DeviceChoice::Hardware`](crate::DeviceChoice::Hardware) was asked for and only CPU
    /// (or virtual) devices exist.
    #[error(
        "no hardware GPU: only a CPU or virtual Vulkan device was found ({found}); install the GPU's Vulkan \
         driver (check `vulkaninfo --summary`), accept the software device with gpu = \"vulkan\", or set gpu = \"off\""
    )]
    NoHardwareDevice {
        /// The devices found, as `name (kind)`.
        found: String,
    },
    /// A slot that cannot be made or does not exist.
    #[error("NV12 slot: {0}")]
    BadSlot(String),
    /// The device was lost (GPU reset, hang, driver crash): this converter is unusable.
    #[error(
        "the Vulkan device was lost (GPU reset, hang or driver crash): falling back to the CPU converter is needed"
    )]
    DeviceLost,
    /// A batch did not finish in time; the converter is treated as lost.
    #[error("the GPU did not finish a batch within {seconds} s: treating the device as lost")]
    Timeout {
        /// How long was waited.
        seconds: u64,
    },
    /// A Vulkan allocation failed for lack of memory.
    #[error("out of {} memory allocating {what} ({bytes} bytes)", if *.device { "GPU" } else { "host" })]
    OutOfMemory {
        /// What was being allocated.
        what: &'static str,
        /// Its size.
        bytes: u64,
        /// Device memory (else host memory).
        device: bool,
    },
    /// No memory type fits a buffer's use.
    #[error("the Vulkan device offers no memory type for {what}")]
    NoMemoryType {
        /// What was being allocated.
        what: &'static str,
    },
    /// A job cannot be converted as given; nothing was submitted.
    #[error("job {index}: {reason}")]
    BadJob {
        /// The job's index in the batch.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A job names a source that was released or never imported.
    #[error("job {index}: unknown source {source_id:?} (released, or imported into another converter)")]
    UnknownSource {
        /// The job's index in the batch.
        index: usize,
        /// The source it names.
        source_id: SourceId,
    },
    /// A batch needs a bigger buffer than the device allows (or than 4 GiB).
    #[error("the batch needs {bytes} bytes of {what}, the device allows {limit}: convert fewer jobs at once")]
    BatchTooLarge {
        /// Which buffer.
        what: &'static str,
        /// The size needed.
        bytes: u64,
        /// The largest allowed.
        limit: u64,
    },
    /// A host region cannot be registered.
    #[error("cannot register the source: {0}")]
    BadSource(String),
    /// `convert` was given a different number of outputs than jobs.
    #[error("{jobs} jobs but {outputs} output frames")]
    OutputCount {
        /// Jobs in the batch.
        jobs: usize,
        /// Output frames given.
        outputs: usize,
    },
    /// The device lacks something the call needs.
    #[error("{what} is not supported by this Vulkan device")]
    Unsupported {
        /// The missing capability.
        what: &'static str,
    },
    /// Any other Vulkan failure.
    #[error("Vulkan call {call} failed: {}", vk::Result::from_raw(*.code))]
    Vulkan {
        /// The Vulkan function.
        call: &'static str,
        /// The `VkResult`.
        code: i32,
    },
}

impl GpuError {
    /// Whether the device is gone (or hung): drop the converter and use the CPU path.
    pub fn is_device_lost(&self) -> bool {
        matches!(self, GpuError::DeviceLost | GpuError::Timeout { .. })
    }

    /// Whether the error is about the jobs given rather than the device: the next batch may
    /// well succeed.
    pub fn is_bad_job(&self) -> bool {
        matches!(self, GpuError::BadJob { .. } | GpuError::UnknownSource { .. } | GpuError::OutputCount { .. })
    }
}

/// Maps a failed Vulkan call to a [`GpuError`], recognising a lost device.
pub(crate) fn vk_error(call: &'static str) -> impl FnOnce(vk::Result) -> GpuError {
    move |result| match result {
        vk::Result::ERROR_DEVICE_LOST => GpuError::DeviceLost,
        other => GpuError::Vulkan { call, code: other.as_raw() },
    }
}

/// Maps a failed allocation, telling lack of memory from other failures.
pub(crate) fn alloc_error(what: &'static str, bytes: u64) -> impl FnOnce(vk::Result) -> GpuError {
    move |result| match result {
        vk::Result::ERROR_OUT_OF_DEVICE_MEMORY => GpuError::OutOfMemory { what, bytes, device: true },
        vk::Result::ERROR_OUT_OF_HOST_MEMORY => GpuError::OutOfMemory { what, bytes, device: false },
        other => vk_error("vkAllocateMemory")(other),
    }
}
