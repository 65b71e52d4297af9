//! Loading `libnvidia-encode.so.1` at run time: [`Library`].
//!
//! The order matters: the test-double marker is checked before anything in the library runs,
//! then `NvEncodeAPIGetMaxSupportedVersion` (which every driver since the API's start has) is
//! asked first, so an old driver is refused with a message instead of failing somewhere in
//! `NvEncodeAPICreateInstance`; only then is the function table filled and checked.

use std::ffi::{c_char, CStr, OsStr};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::api::{self, Encoder, NVENCSTATUS, NV_ENCODE_API_FUNCTION_LIST};
use crate::error::{ApiVersion, NvencError, Phase, Status};

/// The driver library's name, found through the normal `dlopen` search path.
pub const LIBRARY_NAME: &str = "libnvidia-encode.so.1";

/// The symbol by which retrofarm's test double (`retrofarm-nvenc-double`) identifies itself.
pub const TEST_DOUBLE_MARKER: &str = "retrofarm_nvenc_double";

/// The environment variable that allows loading the test double (`1`). Tests only.
pub const TEST_DOUBLE_ENV: &str = "RETROFARM_NVENC_TEST_DOUBLE";

/// The loaded NVENC library and its function table. Cheap to clone (shared); every encoder
/// holds a clone, so the library stays loaded while any session exists.
#[derive(Clone)]
pub struct Library {
    inner: Arc<Inner>,
}

struct Inner {
    path: String,
    version: ApiVersion,
    double: bool,
    table: NV_ENCODE_API_FUNCTION_LIST,
    fns: Functions,
    // Last: the function pointers above point into it.
    _library: libloading::Library,
}

// SAFETY: `Inner` is read-only after loading. The function table holds function pointers and
// null reserved pointers that nobody dereferences; NVENC entry points may be called from any
// thread (a session is used by one thread at a time, which `NvencEncoder` ensures through
// `&mut self`). `libloading::Library` is itself Send and Sync.
unsafe impl Send for Inner {}
// SAFETY: as above.
unsafe impl Sync for Inner {}

impl fmt::Debug for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Library")
            .field("path", &self.inner.path)
            .field("api_version", &self.inner.version)
            .field("is_double", &self.inner.double)
            .finish_non_exhaustive()
    }
}

/// The functions retrofarm calls, checked present at load.
#[derive(Clone, Copy)]
pub(crate) struct Functions {
    pub open_session_ex:
        unsafe extern "C" fn(*mut api::NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS, *mut Encoder) -> NVENCSTATUS,
    pub get_preset_config_ex: unsafe extern "C" fn(
        Encoder,
        api::GUID,
        api::GUID,
        api::NV_ENC_TUNING_INFO,
        *mut api::NV_ENC_PRESET_CONFIG,
    ) -> NVENCSTATUS,
    pub initialize: unsafe extern "C" fn(Encoder, *mut api::NV_ENC_INITIALIZE_PARAMS) -> NVENCSTATUS,
    pub create_input_buffer: unsafe extern "C" fn(Encoder, *mut api::NV_ENC_CREATE_INPUT_BUFFER) -> NVENCSTATUS,
    pub destroy_input_buffer: unsafe extern "C" fn(Encoder, api::NV_ENC_INPUT_PTR) -> NVENCSTATUS,
    pub lock_input_buffer: unsafe extern "C" fn(Encoder, *mut api::NV_ENC_LOCK_INPUT_BUFFER) -> NVENCSTATUS,
    pub unlock_input_buffer: unsafe extern "C" fn(Encoder, api::NV_ENC_INPUT_PTR) -> NVENCSTATUS,
    pub create_bitstream_buffer: unsafe extern "C" fn(Encoder, *mut api::NV_ENC_CREATE_BITSTREAM_BUFFER) -> NVENCSTATUS,
    pub destroy_bitstream_buffer: unsafe extern "C" fn(Encoder, api::NV_ENC_OUTPUT_PTR) -> NVENCSTATUS,
    pub encode_picture: unsafe extern "C" fn(Encoder, *mut api::NV_ENC_PIC_PARAMS) -> NVENCSTATUS,
    pub lock_bitstream: unsafe extern "C" fn(Encoder, *mut api::NV_ENC_LOCK_BITSTREAM) -> NVENCSTATUS,
    pub unlock_bitstream: unsafe extern "C" fn(Encoder, api::NV_ENC_OUTPUT_PTR) -> NVENCSTATUS,
    pub reconfigure: unsafe extern "C" fn(Encoder, *mut api::NV_ENC_RECONFIGURE_PARAMS) -> NVENCSTATUS,
    pub register_resource: unsafe extern "C" fn(Encoder, *mut api::NV_ENC_REGISTER_RESOURCE) -> NVENCSTATUS,
    pub unregister_resource: unsafe extern "C" fn(Encoder, api::NV_ENC_REGISTERED_PTR) -> NVENCSTATUS,
    pub map_input_resource: unsafe extern "C" fn(Encoder, *mut api::NV_ENC_MAP_INPUT_RESOURCE) -> NVENCSTATUS,
    pub unmap_input_resource: unsafe extern "C" fn(Encoder, api::NV_ENC_INPUT_PTR) -> NVENCSTATUS,
    pub destroy_encoder: unsafe extern "C" fn(Encoder) -> NVENCSTATUS,
    /// Optional: error details only.
    pub last_error_string: Option<unsafe extern "C" fn(Encoder) -> *const c_char>,
}

impl Functions {
    /// The functions we use, or the names of those missing.
    fn resolve(table: &NV_ENCODE_API_FUNCTION_LIST) -> Result<Self, NvencError> {
        let missing: Vec<&'static str> = table
            .entries()
            .into_iter()
            .filter(|(name, present)| !present && REQUIRED.contains(name))
            .map(|(name, _)| name)
            .collect();
        let error = || NvencError::MissingFunctions { missing: missing.clone() };
        macro_rules! need {
            ($field:ident) => {
                table.$field.ok_or_else(error)?
            };
        }
        Ok(Functions {
            open_session_ex: need!(nvEncOpenEncodeSessionEx),
            get_preset_config_ex: need!(nvEncGetEncodePresetConfigEx),
            initialize: need!(nvEncInitializeEncoder),
            create_input_buffer: need!(nvEncCreateInputBuffer),
            destroy_input_buffer: need!(nvEncDestroyInputBuffer),
            lock_input_buffer: need!(nvEncLockInputBuffer),
            unlock_input_buffer: need!(nvEncUnlockInputBuffer),
            create_bitstream_buffer: need!(nvEncCreateBitstreamBuffer),
            destroy_bitstream_buffer: need!(nvEncDestroyBitstreamBuffer),
            encode_picture: need!(nvEncEncodePicture),
            lock_bitstream: need!(nvEncLockBitstream),
            unlock_bitstream: need!(nvEncUnlockBitstream),
            reconfigure: need!(nvEncReconfigureEncoder),
            register_resource: need!(nvEncRegisterResource),
            unregister_resource: need!(nvEncUnregisterResource),
            map_input_resource: need!(nvEncMapInputResource),
            unmap_input_resource: need!(nvEncUnmapInputResource),
            destroy_encoder: need!(nvEncDestroyEncoder),
            last_error_string: table.nvEncGetLastErrorString,
        })
    }
}

/// The table entries retrofarm calls (all but `nvEncGetLastErrorString` are required).
pub const REQUIRED: [&str; 18] = [
    "nvEncOpenEncodeSessionEx",
    "nvEncGetEncodePresetConfigEx",
    "nvEncInitializeEncoder",
    "nvEncCreateInputBuffer",
    "nvEncDestroyInputBuffer",
    "nvEncLockInputBuffer",
    "nvEncUnlockInputBuffer",
    "nvEncCreateBitstreamBuffer",
    "nvEncDestroyBitstreamBuffer",
    "nvEncEncodePicture",
    "nvEncLockBitstream",
    "nvEncUnlockBitstream",
    "nvEncReconfigureEncoder",
    "nvEncRegisterResource",
    "nvEncUnregisterResource",
    "nvEncMapInputResource",
    "nvEncUnmapInputResource",
    "nvEncDestroyEncoder",
];

impl Library {
    /// Loads NVIDIA's `libnvidia-encode.so.1` from the normal `dlopen` search path.
    pub fn load() -> Result<Library, NvencError> {
        Self::open(OsStr::new(LIBRARY_NAME), LIBRARY_NAME.to_owned())
    }

    /// Loads the NVENC library at `path` (tests load the test double this way).
    pub fn load_from(path: impl AsRef<Path>) -> Result<Library, NvencError> {
        let path = path.as_ref();
        Self::open(path.as_os_str(), path.display().to_string())
    }

    fn open(file: &OsStr, shown: String) -> Result<Library, NvencError> {
        // SAFETY: loading runs the library's initialisers. NVIDIA's driver library and the
        // test double are both fine with that; any other library named here is the
        // operator's choice, as with every `dlopen`.
        let library = unsafe { dlopen(file, &shown) }.map_err(|failure| match failure {
            OpenFailure::NotFound(detail) => NvencError::NotFound { library: shown.clone(), detail },
            OpenFailure::Broken(detail) => NvencError::Load { library: shown.clone(), detail },
        })?;

        // The double is recognised before any of its code runs as NVENC.
        // SAFETY: only the symbol's presence is checked; it is never read.
        let double = unsafe { library.get::<*const u8>(TEST_DOUBLE_MARKER.as_bytes()) }.is_ok();
        if double && std::env::var_os(TEST_DOUBLE_ENV).is_none_or(|value| value != "1") {
            return Err(NvencError::TestDouble { library: shown });
        }

        // SAFETY: the type is the header's `NVENCSTATUS NvEncodeAPIGetMaxSupportedVersion(uint32_t*)`.
        let get_version =
            unsafe { library.get::<api::PNvEncodeAPIGetMaxSupportedVersion>(b"NvEncodeAPIGetMaxSupportedVersion\0") }
                .map_err(|_| NvencError::MissingSymbol {
                library: shown.clone(),
                symbol: "NvEncodeAPIGetMaxSupportedVersion",
            })?;
        let mut packed = 0u32;
        // SAFETY: the function writes one u32 through the pointer, which points at a live u32.
        let status = unsafe { get_version(&mut packed) };
        if status != api::NV_ENC_SUCCESS {
            return Err(NvencError::from_status(
                "NvEncodeAPIGetMaxSupportedVersion",
                status,
                Phase::Setup,
                String::new(),
            ));
        }
        let version = ApiVersion::from_packed(packed);
        if version < ApiVersion::REQUIRED {
            return Err(NvencError::DriverTooOld { found: version });
        }

        // SAFETY: the type is the header's
        // `NVENCSTATUS NvEncodeAPICreateInstance(NV_ENCODE_API_FUNCTION_LIST*)`.
        let create_instance = unsafe { library.get::<api::PNvEncodeAPICreateInstance>(b"NvEncodeAPICreateInstance\0") }
            .map_err(|_| NvencError::MissingSymbol { library: shown.clone(), symbol: "NvEncodeAPICreateInstance" })?;
        let mut table = NV_ENCODE_API_FUNCTION_LIST::default();
        // SAFETY: `table` is a zeroed table of the header's 12.1 layout (size checked at compile
        // time) with `version` set; the driver fills its entries and nothing else.
        let status = unsafe { create_instance(&mut table) };
        if status != api::NV_ENC_SUCCESS {
            return Err(NvencError::Call {
                call: "NvEncodeAPICreateInstance",
                status: Status(status),
                detail: String::new(),
            });
        }
        let fns = Functions::resolve(&table)?;
        Ok(Library { inner: Arc::new(Inner { path: shown, version, double, table, fns, _library: library }) })
    }

    /// The newest NVENC API version the driver supports (at least 12.1 once loaded).
    pub fn api_version(&self) -> ApiVersion {
        self.inner.version
    }

    /// Whether this is retrofarm's test double rather than NVIDIA's driver.
    pub fn is_double(&self) -> bool {
        self.inner.double
    }

    /// The name or path the library was loaded from.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The function table the driver filled.
    pub fn function_table(&self) -> &NV_ENCODE_API_FUNCTION_LIST {
        &self.inner.table
    }

    pub(crate) fn fns(&self) -> &Functions {
        &self.inner.fns
    }

    /// The driver's description of `encoder`'s last error, or an empty string.
    pub(crate) fn last_error(&self, encoder: Encoder) -> String {
        let Some(get) = self.inner.fns.last_error_string else { return String::new() };
        if encoder.is_null() {
            return String::new();
        }
        // SAFETY: `encoder` is a live session handle of this library; the function returns
        // null or a NUL-terminated string that stays valid until the next call on the session.
        let text = unsafe { get(encoder) };
        if text.is_null() {
            return String::new();
        }
        // SAFETY: non-null and NUL-terminated, as above; copied out at once.
        unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned()
    }
}

/// Why `dlopen` failed, with what `dlerror` said.
pub(crate) enum OpenFailure {
    /// The library itself is not there (not installed, or not on the loader's path).
    NotFound(String),
    /// It is there but cannot be loaded (a missing dependency: a broken installation).
    Broken(String),
}

/// Opens the shared library `file`, named `shown` in `dlerror`'s messages, and tells a library
/// that is absent from one that is broken (dlerror names the file it could not open: the
/// library itself, or one of its dependencies).
///
/// # Safety
///
/// Loading runs the library's initialisers: the caller vouches for the library.
pub(crate) unsafe fn dlopen(file: &OsStr, shown: &str) -> Result<libloading::Library, OpenFailure> {
    // SAFETY: the caller's promise.
    unsafe { libloading::Library::new(file) }.map_err(|error| {
        let detail = error.to_string();
        if detail.starts_with(&format!("{shown}: cannot open shared object file")) {
            OpenFailure::NotFound(detail)
        } else {
            OpenFailure::Broken(detail)
        }
    })
}
