//! CUDA for NVENC, loaded at run time: [`CudaContext`] (one per worker: the device's primary
//! context, which NVENC sessions are opened on) and [`ExternalBuffer`] (Vulkan memory exported
//! as an OPAQUE_FD, imported into CUDA and mapped as a device pointer NVENC reads without a
//! copy).
//!
//! `libcuda.so.1` is opened with `dlopen` (cudarc's `dynamic-loading`): the binary links no
//! NVIDIA library and runs on hosts without the driver. cudarc **panics** when it cannot find
//! the library or one of its symbols, so before the first cudarc call this module opens
//! `libcuda.so.1` itself and checks that every entry point it uses ([`CUDA_SYMBOLS`]) is
//! there: a host without the driver gets [`CudaError::NotFound`], an old driver
//! [`CudaError::MissingSymbols`], never a panic.
//!
//! cudarc looks for the library under several names (`libcuda.so` first, `libcuda.so.1`
//! last); on a normal driver installation they are the same file. A `libcuda.so` that is not
//! the driver's (the CUDA toolkit's link-time stub, put on the loader's path by hand) makes
//! `cuInit` fail with `CUDA_ERROR_STUB_LIBRARY`, which [`CudaContext::open`] reports.
//!
//! # Threads
//!
//! The driver API is thread-safe and a context may be current on several threads at once.
//! CUDA calls (NVENC's included) act on the calling thread's current context: a thread that
//! did not open the context calls [`CudaContext::bind_to_thread`] before using NVENC.
//!
//! # What is tested
//!
//! No machine of the project has an NVIDIA GPU. The tests check that a host without
//! `libcuda.so.1` gets [`CudaError::NotFound`], and (tests/nvidia_libs.rs) that NVIDIA's real
//! `libcuda.so.1` without a GPU gets [`CudaError::NoDevice`], without a panic. The import
//! path ([`CudaContext::import_opaque_fd`]) follows the CUDA driver API's documentation and is
//! checked by the compiler only: it has never run.

use std::ffi::{c_void, OsStr};
use std::fmt;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::ptr;
use std::sync::{Arc, OnceLock};

use cudarc::driver::result::{self, DriverError};
use cudarc::driver::sys;

use crate::loader::{dlopen, OpenFailure};

/// The CUDA driver library's name, found through the normal `dlopen` search path.
pub const CUDA_LIBRARY_NAME: &str = "libcuda.so.1";

/// The driver entry points this module reaches through cudarc, under the names cudarc
/// resolves them by (the `_v2` names are what `cuda.h` maps the plain names to). Checked
/// present before the first call, because cudarc panics on a missing one.
pub const CUDA_SYMBOLS: [&str; 16] = [
    "cuGetErrorName",
    "cuGetErrorString",
    "cuDriverGetVersion",
    "cuInit",
    "cuDeviceGetCount",
    "cuDeviceGet",
    "cuDeviceGetName",
    "cuDeviceGetUuid",
    "cuDevicePrimaryCtxRetain",
    "cuDevicePrimaryCtxRelease_v2",
    "cuCtxGetCurrent",
    "cuCtxSetCurrent",
    "cuImportExternalMemory",
    "cuExternalMemoryGetMappedBuffer",
    "cuDestroyExternalMemory",
    "cuMemFree_v2",
];

/// A CUDA driver status (`CUresult`) with the header's name and the driver's description.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CudaStatus {
    code: u32,
    name: String,
    description: String,
}

impl CudaStatus {
    fn from_driver(error: DriverError) -> Self {
        // The enum's variant names are the header's (`CUDA_ERROR_NO_DEVICE`).
        let name = format!("{:?}", error.0);
        // Only reached once the library and `cuGetErrorString` were found (see `driver`).
        let description = error.error_string().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        CudaStatus { code: error.0 as u32, name, description }
    }

    /// The numeric `CUresult` (100 for `CUDA_ERROR_NO_DEVICE`).
    pub fn code(&self) -> u32 {
        self.code
    }

    /// The header's name (`CUDA_ERROR_NO_DEVICE`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The driver's description (`cuGetErrorString`), or empty.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Whether this is `CUDA_ERROR_NO_DEVICE`.
    pub fn is_no_device(&self) -> bool {
        self.code == sys::CUresult::CUDA_ERROR_NO_DEVICE as u32
    }
}

impl fmt::Display for CudaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.description.is_empty() {
            write!(f, "{} ({})", self.name, self.code)
        } else {
            write!(f, "{} ({}: {})", self.name, self.code, self.description)
        }
    }
}

impl fmt::Debug for CudaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why CUDA could not be used.
///
/// [`CudaError::is_absent`] tells "this host has no usable NVIDIA GPU" (no driver library, no
/// device) from failures worth an operator's attention.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CudaError {
    /// `libcuda.so.1` is not installed (or not on the dynamic loader's path).
    #[error("{library} not found: install the NVIDIA driver's libcuda1 package, or set nvenc = \"off\" ({detail})")]
    NotFound {
        /// The name that was opened.
        library: String,
        /// What `dlopen` said.
        detail: String,
    },
    /// The library exists but could not be loaded.
    #[error("cannot load {library}: {detail}")]
    Load {
        /// The name that was opened.
        library: String,
        /// What `dlopen` said.
        detail: String,
    },
    /// The library lacks driver API entry points retrofarm calls.
    #[error("{library} lacks {}: the NVIDIA driver is too old (retrofarm needs 535 or later)", .missing.join(", "))]
    MissingSymbols {
        /// The name that was opened.
        library: String,
        /// The missing entry points.
        missing: Vec<&'static str>,
    },
    /// The driver library loaded but sees no GPU: no NVIDIA GPU, the kernel driver not loaded,
    /// or `/dev/nvidia*` not accessible to this user.
    #[error(
        "CUDA sees no NVIDIA GPU ({}): check that the NVIDIA kernel driver is loaded (nvidia-smi) \
         and that this user may open /dev/nvidiactl and /dev/nvidia0",
        no_device_reason(.call, .status.as_ref())
    )]
    NoDevice {
        /// The call that said so (`cuInit`, or `cuDeviceGetCount` reporting 0).
        call: &'static str,
        /// Its status; `None` when the call succeeded and counted no device.
        status: Option<CudaStatus>,
    },
    /// The device ordinal asked for does not exist.
    #[error("CUDA device {ordinal} does not exist: CUDA sees {count} device(s)")]
    NoSuchDevice {
        /// The ordinal asked for.
        ordinal: usize,
        /// How many devices CUDA sees.
        count: usize,
    },
    /// A driver call failed.
    #[error("{call} failed: {status}")]
    Call {
        /// The call.
        call: &'static str,
        /// Its status.
        status: CudaStatus,
    },
}

fn no_device_reason(call: &str, status: Option<&CudaStatus>) -> String {
    match status {
        Some(status) => format!("{call} returned {status}"),
        None => format!("{call} counted 0 devices"),
    }
}

impl CudaError {
    /// Whether the host simply has no usable NVIDIA GPU: no driver library, or no device.
    pub fn is_absent(&self) -> bool {
        matches!(self, CudaError::NotFound { .. } | CudaError::NoDevice { .. })
    }

    /// The driver's status code, for errors that came from a CUDA call.
    pub fn status(&self) -> Option<&CudaStatus> {
        match self {
            CudaError::NoDevice { status, .. } => status.as_ref(),
            CudaError::Call { status, .. } => Some(status),
            _ => None,
        }
    }
}

/// Maps a failed call to [`CudaError::Call`].
fn failed(call: &'static str) -> impl FnOnce(DriverError) -> CudaError {
    move |error| CudaError::Call { call, status: CudaStatus::from_driver(error) }
}

/// Opens `libcuda.so.1` once per process and checks [`CUDA_SYMBOLS`]. Every function of this
/// module calls it before any cudarc call: past it, cudarc finds its library and symbols.
fn driver() -> Result<(), CudaError> {
    static DRIVER: OnceLock<Result<libloading::Library, CudaError>> = OnceLock::new();
    DRIVER.get_or_init(load_driver).as_ref().map(|_| ()).map_err(Clone::clone)
}

fn load_driver() -> Result<libloading::Library, CudaError> {
    let library = CUDA_LIBRARY_NAME.to_owned();
    // SAFETY: loading runs the library's initialisers, which NVIDIA's libcuda is fine with
    // (cudarc loads it the same way). The handle is kept for the process's life: the library
    // is never unloaded under cudarc.
    let handle =
        unsafe { dlopen(OsStr::new(CUDA_LIBRARY_NAME), CUDA_LIBRARY_NAME) }.map_err(|failure| match failure {
            OpenFailure::NotFound(detail) => CudaError::NotFound { library: library.clone(), detail },
            OpenFailure::Broken(detail) => CudaError::Load { library: library.clone(), detail },
        })?;
    let missing: Vec<&'static str> = CUDA_SYMBOLS
        .into_iter()
        // SAFETY: only the symbol's presence is checked; it is never called or read here.
        .filter(|symbol| unsafe { handle.get::<*const c_void>(symbol.as_bytes()) }.is_err())
        .collect();
    if !missing.is_empty() {
        return Err(CudaError::MissingSymbols { library, missing });
    }
    Ok(handle)
}

/// A CUDA version as the driver reports it (`cuDriverGetVersion`: 12020 is 12.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CudaVersion {
    /// Major version (12).
    pub major: u32,
    /// Minor version (2).
    pub minor: u32,
}

impl CudaVersion {
    /// Decodes `1000 * major + 10 * minor`.
    pub fn from_packed(packed: u32) -> Self {
        CudaVersion { major: packed / 1000, minor: (packed % 1000) / 10 }
    }
}

impl fmt::Display for CudaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The newest CUDA version the installed driver supports. Needs the driver library only, not
/// a GPU (`cuDriverGetVersion` works before `cuInit`).
pub fn driver_version() -> Result<CudaVersion, CudaError> {
    driver()?;
    let mut packed = 0;
    // SAFETY: the symbol was checked present; the function writes one int through the pointer.
    unsafe { sys::cuDriverGetVersion(&mut packed) }.result().map_err(failed("cuDriverGetVersion"))?;
    Ok(CudaVersion::from_packed(packed.max(0) as u32))
}

/// Initialises CUDA and counts its devices. `Ok(0)` never happens: no device is
/// [`CudaError::NoDevice`].
pub fn device_count() -> Result<usize, CudaError> {
    driver()?;
    result::init().map_err(|error| {
        let status = CudaStatus::from_driver(error);
        if status.is_no_device() {
            CudaError::NoDevice { call: "cuInit", status: Some(status) }
        } else {
            CudaError::Call { call: "cuInit", status }
        }
    })?;
    let count = result::device::get_count().map_err(failed("cuDeviceGetCount"))?;
    if count <= 0 {
        return Err(CudaError::NoDevice { call: "cuDeviceGetCount", status: None });
    }
    Ok(count as usize)
}

/// The primary CUDA context of one device, retained while any clone (or any
/// [`ExternalBuffer`] imported through it) exists. One per worker; cheap to clone.
///
/// Every NVENC session opened on [`CudaContext::as_raw`] must be dropped before the last
/// clone, and so must every input registered from an [`ExternalBuffer`].
#[derive(Clone)]
pub struct CudaContext {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    context: sys::CUcontext,
    device: sys::CUdevice,
    ordinal: usize,
    name: String,
    uuid: [u8; 16],
}

// SAFETY: the context handle is only passed to the driver, whose API is thread-safe; a
// context may be current on several threads at once. It is released once, on drop, when no
// clone is left. The other fields are plain data.
unsafe impl Send for ContextInner {}
// SAFETY: as above; nothing is mutated through `&self`.
unsafe impl Sync for ContextInner {}

impl Drop for ContextInner {
    fn drop(&mut self) {
        // SAFETY: retained once in `open`, released once here; no clone (and so no buffer
        // imported through it) is left. A failure here cannot be acted on.
        let _ = unsafe { result::primary_ctx::release(self.device) };
    }
}

impl fmt::Debug for CudaContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CudaContext")
            .field("ordinal", &self.inner.ordinal)
            .field("name", &self.inner.name)
            .field("uuid", &self.uuid_string())
            .finish_non_exhaustive()
    }
}

impl CudaContext {
    /// Opens device `ordinal` (0 is the first): initialises CUDA, checks the device exists,
    /// reads its name and UUID, retains its primary context and makes it current on the
    /// calling thread.
    ///
    /// Errors: [`CudaError::NotFound`] without the driver library, [`CudaError::NoDevice`]
    /// when the driver sees no GPU, [`CudaError::NoSuchDevice`] for an ordinal past the last.
    pub fn open(ordinal: usize) -> Result<CudaContext, CudaError> {
        let count = device_count()?;
        if ordinal >= count {
            return Err(CudaError::NoSuchDevice { ordinal, count });
        }
        // `ordinal < count <= i32::MAX`.
        let device = result::device::get(ordinal as i32).map_err(failed("cuDeviceGet"))?;
        let name = result::device::get_name(device).map_err(failed("cuDeviceGetName"))?;
        let uuid = result::device::get_uuid(device).map_err(failed("cuDeviceGetUuid"))?.bytes.map(|b| b as u8);
        // SAFETY: `device` came from `cuDeviceGet`; the retain is matched by the release in
        // `ContextInner::drop`.
        let context = unsafe { result::primary_ctx::retain(device) }.map_err(failed("cuDevicePrimaryCtxRetain"))?;
        let opened = CudaContext { inner: Arc::new(ContextInner { context, device, ordinal, name, uuid }) };
        opened.bind_to_thread()?;
        Ok(opened)
    }

    /// The `CUcontext`, for `NvencEncoder::new`. Owned by this value: never release it.
    pub fn as_raw(&self) -> *mut c_void {
        self.inner.context.cast()
    }

    /// Makes this context current on the calling thread (a no-op when it already is). NVENC
    /// and CUDA calls from a thread other than the one that opened the context need it.
    pub fn bind_to_thread(&self) -> Result<(), CudaError> {
        let current = result::ctx::get_current().map_err(failed("cuCtxGetCurrent"))?;
        if current != Some(self.inner.context) {
            // SAFETY: the context is retained (alive) as long as `self`.
            unsafe { result::ctx::set_current(self.inner.context) }.map_err(failed("cuCtxSetCurrent"))?;
        }
        Ok(())
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.inner.ordinal
    }

    /// The device's name (`NVIDIA GeForce RTX 4090`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The device's UUID: the same 16 bytes as Vulkan's
    /// `VkPhysicalDeviceIDProperties::deviceUUID` for the same GPU, which is how the worker
    /// pairs its Vulkan device with this context.
    pub fn uuid(&self) -> [u8; 16] {
        self.inner.uuid
    }

    /// The UUID as `nvidia-smi -L` prints it: `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    pub fn uuid_string(&self) -> String {
        uuid_string(&self.inner.uuid)
    }

    /// Imports Vulkan memory exported as an OPAQUE_FD (`retrofarm_gpu`'s `export_slot_fd` or
    /// `export_output_fd`) and maps all of it as one device buffer (`cuImportExternalMemory`,
    /// then `cuExternalMemoryGetMappedBuffer` at offset 0). `dedicated`: the memory is a
    /// dedicated allocation (`CUDA_EXTERNAL_MEMORY_DEDICATED`; some drivers export only those,
    /// and `retrofarm_gpu` says so).
    ///
    /// On success CUDA owns `fd` (it is not closed here); on failure it is closed.
    ///
    /// # Safety
    ///
    /// `fd` must be an OPAQUE_FD export of a Vulkan (or CUDA) memory object on this context's
    /// GPU, `size` that memory object's whole size (`VkMemoryAllocateInfo::allocationSize`,
    /// not a buffer's), and `dedicated` true exactly when it is a dedicated allocation: CUDA
    /// trusts all three.
    pub unsafe fn import_opaque_fd(
        &self,
        fd: OwnedFd,
        size: u64,
        dedicated: bool,
    ) -> Result<ExternalBuffer, CudaError> {
        // The import and the mapping belong to the current context.
        self.bind_to_thread()?;
        let description = sys::CUDA_EXTERNAL_MEMORY_HANDLE_DESC {
            type_: sys::CUexternalMemoryHandleType::CU_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD,
            handle: sys::CUDA_EXTERNAL_MEMORY_HANDLE_DESC_st__bindgen_ty_1 { fd: fd.as_raw_fd() },
            size,
            flags: if dedicated { sys::CUDA_EXTERNAL_MEMORY_DEDICATED } else { 0 },
            reserved: [0; 16],
        };
        let mut memory: sys::CUexternalMemory = ptr::null_mut();
        // SAFETY: the description is complete (reserved words zero, as the API requires) and
        // names a live fd; the caller vouches for the fd's kind and the size. The handle is
        // written on success only.
        unsafe { sys::cuImportExternalMemory(&mut memory, &description) }
            .result()
            .map_err(failed("cuImportExternalMemory"))?; // `fd` drops here: CUDA did not take it.
                                                         // "Ownership of the file descriptor is transferred to the CUDA driver when the handle
                                                         // is imported successfully. Performing any operations on the file descriptor after it
                                                         // is imported results in undefined behavior." (cuImportExternalMemory): not closed.
        let _ = fd.into_raw_fd();
        // SAFETY: `memory` was just imported; the range is the whole object. The buffer is
        // freed (cuMemFree) before the memory is destroyed, in `ExternalBuffer::drop` or below.
        let mapped = unsafe { result::external_memory::get_mapped_buffer(memory, 0, size) };
        let device_ptr = match mapped {
            Ok(device_ptr) => device_ptr,
            Err(error) => {
                // SAFETY: imported above, nothing mapped, destroyed once.
                let _ = unsafe { result::external_memory::destroy_external_memory(memory) };
                return Err(failed("cuExternalMemoryGetMappedBuffer")(error));
            }
        };
        Ok(ExternalBuffer { context: self.clone(), memory, device_ptr, size })
    }
}

fn uuid_string(bytes: &[u8; 16]) -> String {
    let mut text = String::from("GPU-");
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// Imported external memory mapped as one device buffer ([`CudaContext::import_opaque_fd`]).
/// Dropping it frees the mapping (`cuMemFree`) and then the import
/// (`cuDestroyExternalMemory`), making its context current on the dropping thread first.
///
/// Every NVENC input registered on [`ExternalBuffer::device_ptr`] must be unregistered
/// before this is dropped.
pub struct ExternalBuffer {
    context: CudaContext,
    memory: sys::CUexternalMemory,
    device_ptr: sys::CUdeviceptr,
    size: u64,
}

// SAFETY: the handles are only passed to the thread-safe driver API and freed once, on drop;
// the context they belong to is kept alive by the clone held here.
unsafe impl Send for ExternalBuffer {}
// SAFETY: as above; nothing is mutated through `&self`.
unsafe impl Sync for ExternalBuffer {}

impl fmt::Debug for ExternalBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalBuffer")
            .field("device_ptr", &format_args!("{:#x}", self.device_ptr))
            .field("size", &self.size)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl ExternalBuffer {
    /// The mapping's device address (a `CUdeviceptr`): a plane at byte offset `o` of the
    /// exported memory is at `device_ptr() + o`, for `NvencEncoder::register_cuda_nv12`.
    pub fn device_ptr(&self) -> u64 {
        self.device_ptr
    }

    /// The mapped size in bytes (the whole memory object).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The context the memory was imported into.
    pub fn context(&self) -> &CudaContext {
        &self.context
    }
}

impl Drop for ExternalBuffer {
    fn drop(&mut self) {
        // Failures cannot be acted on here: the memory is leaked at worst.
        let _ = self.context.bind_to_thread();
        // SAFETY: mapped once in `import`, freed once here, before the memory it maps is
        // destroyed (as cuDestroyExternalMemory requires); the context is alive (`self.context`).
        let _ = unsafe { result::memory_free(self.device_ptr) };
        // SAFETY: imported once in `import`, destroyed once here, its mapping freed above.
        let _ = unsafe { result::external_memory::destroy_external_memory(self.memory) };
    }
}

// cudarc's declarations of the two descriptors `import` fills, checked against `cuda.h`'s
// layout on x86-64 (CUDA 12.2): the union is 16 bytes (Win32's handle and name), each
// descriptor ends with 16 reserved words.
const _: () = {
    assert!(size_of::<sys::CUDA_EXTERNAL_MEMORY_HANDLE_DESC>() == 104);
    assert!(std::mem::offset_of!(sys::CUDA_EXTERNAL_MEMORY_HANDLE_DESC, handle) == 8);
    assert!(std::mem::offset_of!(sys::CUDA_EXTERNAL_MEMORY_HANDLE_DESC, size) == 24);
    assert!(std::mem::offset_of!(sys::CUDA_EXTERNAL_MEMORY_HANDLE_DESC, flags) == 32);
    assert!(size_of::<sys::CUDA_EXTERNAL_MEMORY_BUFFER_DESC>() == 88);
    assert!(sys::CUexternalMemoryHandleType::CU_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD as u32 == 1);
    assert!(sys::CUDA_EXTERNAL_MEMORY_DEDICATED == 1);
    assert!(size_of::<sys::CUdeviceptr>() == 8);
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether this host has a driver library at all (then the "not found" path cannot be
    /// observed here).
    fn libcuda_present() -> bool {
        // SAFETY: as in `load_driver`.
        unsafe { libloading::Library::new(CUDA_LIBRARY_NAME) }.is_ok()
    }

    #[test]
    fn open_without_libcuda_is_a_typed_error_not_a_panic() {
        let opened = CudaContext::open(0);
        if libcuda_present() {
            eprintln!("{CUDA_LIBRARY_NAME} is installed on this host; CudaContext::open(0): {opened:?}");
            return;
        }
        let error = opened.expect_err("no libcuda.so.1 on this host");
        assert!(matches!(error, CudaError::NotFound { .. }), "{error:?}");
        assert!(error.is_absent());
        let message = error.to_string();
        assert!(
            message.starts_with(
                "libcuda.so.1 not found: install the NVIDIA driver's libcuda1 package, or set nvenc = \"off\" (libcuda.so.1: cannot open shared object file"
            ),
            "{message}"
        );
        // The other entry points answer the same, from the cached attempt.
        assert!(matches!(driver_version(), Err(CudaError::NotFound { .. })));
        assert!(matches!(device_count(), Err(CudaError::NotFound { .. })));
    }

    #[test]
    fn messages_name_the_cause() {
        let none = CudaError::NoDevice { call: "cuDeviceGetCount", status: None };
        assert_eq!(
            none.to_string(),
            "CUDA sees no NVIDIA GPU (cuDeviceGetCount counted 0 devices): check that the NVIDIA kernel driver is \
             loaded (nvidia-smi) and that this user may open /dev/nvidiactl and /dev/nvidia0"
        );
        let status = CudaStatus {
            code: 100,
            name: "CUDA_ERROR_NO_DEVICE".into(),
            description: "no CUDA-capable device is detected".into(),
        };
        assert!(status.is_no_device());
        let init = CudaError::NoDevice { call: "cuInit", status: Some(status) };
        assert!(
            init.to_string().starts_with(
                "CUDA sees no NVIDIA GPU (cuInit returned CUDA_ERROR_NO_DEVICE (100: no CUDA-capable device is detected))"
            ),
            "{init}"
        );
        assert_eq!(init.status().map(CudaStatus::code), Some(100));
        assert_eq!(
            CudaError::NoSuchDevice { ordinal: 2, count: 1 }.to_string(),
            "CUDA device 2 does not exist: CUDA sees 1 device(s)"
        );
        assert_eq!(
            CudaError::MissingSymbols { library: CUDA_LIBRARY_NAME.into(), missing: vec!["cuImportExternalMemory"] }
                .to_string(),
            "libcuda.so.1 lacks cuImportExternalMemory: the NVIDIA driver is too old (retrofarm needs 535 or later)"
        );
        assert_eq!(CudaVersion::from_packed(12020), CudaVersion { major: 12, minor: 2 });
        assert_eq!(CudaVersion::from_packed(12020).to_string(), "12.2");
        let uuid = [0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        assert_eq!(uuid_string(&uuid), "GPU-9abcdef0-0102-0304-0506-0708090a0b0c");
    }

    /// The import path cannot run without a GPU: its signature (what the worker will call
    /// with `retrofarm_gpu`'s exported fd and memory size) is checked by the compiler.
    #[test]
    fn import_signatures() {
        type Import = unsafe fn(&CudaContext, OwnedFd, u64, bool) -> Result<ExternalBuffer, CudaError>;
        let _import: Import = CudaContext::import_opaque_fd;
        let _ptr: fn(&ExternalBuffer) -> u64 = ExternalBuffer::device_ptr;
        fn shared<T: Send + Sync>() {}
        shared::<CudaContext>();
        shared::<ExternalBuffer>();
    }
}
