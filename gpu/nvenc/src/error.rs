//! [`NvencError`]: why loading NVENC or encoding with it failed, with the NVENC status codes
//! it maps.

use std::fmt;

use crate::api::{self, NVENCSTATUS};

/// An NVENC status code (`NVENCSTATUS`), printed with the header's name.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub NVENCSTATUS);

impl Status {
    /// The header's name (`NV_ENC_ERR_DEVICE_NOT_EXIST`), or `NVENCSTATUS(n)` for an unknown code.
    pub fn name(self) -> String {
        api::status_name(self.0).map_or_else(|| format!("NVENCSTATUS({})", self.0), str::to_owned)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// A version of the NVENC API, as `NvEncodeAPIGetMaxSupportedVersion` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// Major version (12).
    pub major: u32,
    /// Minor version (1).
    pub minor: u32,
}

impl ApiVersion {
    /// The version these declarations follow and retrofarm needs: 12.1 (NVIDIA driver 535+).
    pub const REQUIRED: ApiVersion =
        ApiVersion { major: api::NVENCAPI_MAJOR_VERSION, minor: api::NVENCAPI_MINOR_VERSION };

    /// Decodes `NvEncodeAPIGetMaxSupportedVersion`'s value: `(major << 4) | minor`.
    pub fn from_packed(packed: u32) -> Self {
        ApiVersion { major: packed >> 4, minor: packed & 0xf }
    }

    /// Encodes as `NvEncodeAPIGetMaxSupportedVersion` reports: `(major << 4) | minor`.
    pub fn packed(self) -> u32 {
        (self.major << 4) | (self.minor & 0xf)
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Why NVENC could not be loaded or used.
///
/// [`NvencError::is_device_lost`] tells errors after which the session is gone (the GPU fell
/// off the bus, the driver reset it, an unknown failure mid-stream): the caller should drop
/// the encoder and encode on the CPU.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NvencError {
    /// The library is not installed (or not on the dynamic loader's path).
    #[error("{library} not found: install the NVIDIA driver's libnvidia-encode1 package ({detail})")]
    NotFound {
        /// The name or path that was opened.
        library: String,
        /// What `dlopen` said.
        detail: String,
    },
    /// The library exists but could not be loaded.
    #[error("cannot load {library}: {detail}")]
    Load {
        /// The name or path that was opened.
        library: String,
        /// What `dlopen` said.
        detail: String,
    },
    /// The library lacks an entry point of the NVENC API.
    #[error("{library} has no {symbol}: not an NVENC library")]
    MissingSymbol {
        /// The library.
        library: String,
        /// The missing symbol.
        symbol: &'static str,
    },
    /// The library is retrofarm's NVENC test double and the environment did not allow it.
    #[error(
        "{library} is retrofarm's NVENC test double (OpenH264 behind the NVENC API), not NVIDIA's driver; \
         it is used only when RETROFARM_NVENC_TEST_DOUBLE=1 (tests)"
    )]
    TestDouble {
        /// The library.
        library: String,
    },
    /// The driver's NVENC API is older than 12.1.
    #[error(
        "the NVIDIA driver supports NVENC API {found}; retrofarm needs {}: upgrade the driver to 535 or later",
        ApiVersion::REQUIRED
    )]
    DriverTooOld {
        /// What the driver supports.
        found: ApiVersion,
    },
    /// The function table lacks functions retrofarm calls.
    #[error("the NVENC function table lacks {}", .missing.join(", "))]
    MissingFunctions {
        /// Their names.
        missing: Vec<&'static str>,
    },
    /// No more encode sessions on this GPU (`NV_ENC_ERR_OUT_OF_MEMORY` at session open; GeForce
    /// boards limit concurrent sessions).
    #[error("no more NVENC sessions on this GPU ({status} at {call}){}", detail_suffix(.detail))]
    NoMoreSessions {
        /// The call that failed.
        call: &'static str,
        /// Its status.
        status: Status,
        /// The driver's last error string, if any.
        detail: String,
    },
    /// The device is gone: drop the encoder (and its CUDA context) and use another path.
    #[error("NVENC lost its device: {call} returned {status}{}", detail_suffix(.detail))]
    DeviceLost {
        /// The call that failed.
        call: &'static str,
        /// Its status.
        status: Status,
        /// The driver's last error string, if any.
        detail: String,
    },
    /// An NVENC call failed.
    #[error("{call} failed: {status}{}", detail_suffix(.detail))]
    Call {
        /// The call that failed.
        call: &'static str,
        /// Its status.
        status: Status,
        /// The driver's last error string, if any.
        detail: String,
    },
    /// The settings or arguments cannot be used.
    #[error("invalid NVENC encoder use: {0}")]
    Invalid(&'static str),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// Which phase of a session a call belongs to, to classify its failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Opening the session.
    Open,
    /// Setting the session up (preset, initialise, buffers).
    Setup,
    /// Encoding (lock, encode, read back, reconfigure, map).
    Stream,
}

impl NvencError {
    /// Whether the device is gone: the session cannot continue and a new one on this device
    /// would fail too. `NV_ENC_ERR_DEVICE_NOT_EXIST` and `NV_ENC_ERR_NO_ENCODE_DEVICE` anywhere,
    /// and `NV_ENC_ERR_GENERIC` once frames were being encoded, count as lost.
    pub fn is_device_lost(&self) -> bool {
        matches!(self, NvencError::DeviceLost { .. })
    }

    /// Whether this GPU has no encode session left.
    pub fn is_no_more_sessions(&self) -> bool {
        matches!(self, NvencError::NoMoreSessions { .. })
    }

    /// The status code, for errors that came from an NVENC call.
    pub fn status(&self) -> Option<Status> {
        match self {
            NvencError::NoMoreSessions { status, .. }
            | NvencError::DeviceLost { status, .. }
            | NvencError::Call { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Classifies a failed call.
    pub(crate) fn from_status(call: &'static str, status: NVENCSTATUS, phase: Phase, detail: String) -> Self {
        let wrapped = Status(status);
        match status {
            api::NV_ENC_ERR_DEVICE_NOT_EXIST | api::NV_ENC_ERR_NO_ENCODE_DEVICE => {
                NvencError::DeviceLost { call, status: wrapped, detail }
            }
            api::NV_ENC_ERR_GENERIC if phase == Phase::Stream => {
                NvencError::DeviceLost { call, status: wrapped, detail }
            }
            api::NV_ENC_ERR_OUT_OF_MEMORY if phase == Phase::Open => {
                NvencError::NoMoreSessions { call, status: wrapped, detail }
            }
            _ => NvencError::Call { call, status: wrapped, detail },
        }
    }

    /// A fixed description, for [`retrofarm_media::VideoError`], which carries only a
    /// `&'static str` (the full error stays on the encoder: `NvencEncoder::last_error`).
    pub fn summary(&self) -> &'static str {
        match self {
            NvencError::NotFound { .. } => "NVENC: libnvidia-encode.so.1 not found",
            NvencError::Load { .. } => "NVENC: the library could not be loaded",
            NvencError::MissingSymbol { .. } => "NVENC: not an NVENC library",
            NvencError::TestDouble { .. } => "NVENC: the test double is not allowed here",
            NvencError::DriverTooOld { .. } => "NVENC: the NVIDIA driver is older than 535 (API 12.1)",
            NvencError::MissingFunctions { .. } => "NVENC: the function table is incomplete",
            NvencError::NoMoreSessions { .. } => "NVENC: no more encode sessions on this GPU",
            NvencError::DeviceLost { .. } => "NVENC: the GPU was lost; encode on the CPU",
            NvencError::Call { .. } => "NVENC: a call failed (see the encoder's last error)",
            NvencError::Invalid(what) => what,
        }
    }
}

impl From<NvencError> for retrofarm_media::VideoError {
    /// A hardware error, lost device or not, with the full description.
    fn from(error: NvencError) -> Self {
        retrofarm_media::VideoError::Hardware { device_lost: error.is_device_lost(), message: error.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_by_phase() {
        let lost = NvencError::from_status(
            "nvEncEncodePicture",
            api::NV_ENC_ERR_DEVICE_NOT_EXIST,
            Phase::Stream,
            String::new(),
        );
        assert!(lost.is_device_lost());
        assert!(lost.to_string().contains("NV_ENC_ERR_DEVICE_NOT_EXIST"), "{lost}");
        assert!(
            NvencError::from_status("x", api::NV_ENC_ERR_NO_ENCODE_DEVICE, Phase::Open, String::new()).is_device_lost()
        );
        assert!(NvencError::from_status("x", api::NV_ENC_ERR_GENERIC, Phase::Stream, String::new()).is_device_lost());
        assert!(!NvencError::from_status("x", api::NV_ENC_ERR_GENERIC, Phase::Setup, String::new()).is_device_lost());
        let full = NvencError::from_status("x", api::NV_ENC_ERR_OUT_OF_MEMORY, Phase::Open, "cap".into());
        assert!(full.is_no_more_sessions() && full.to_string().ends_with(": cap"), "{full}");
        assert!(!NvencError::from_status("x", api::NV_ENC_ERR_OUT_OF_MEMORY, Phase::Stream, String::new())
            .is_no_more_sessions());
    }

    #[test]
    fn version_message_tells_the_operator_what_to_do() {
        let err = NvencError::DriverTooOld { found: ApiVersion::from_packed((11 << 4) | 1) };
        assert_eq!(
            err.to_string(),
            "the NVIDIA driver supports NVENC API 11.1; retrofarm needs 12.1: upgrade the driver to 535 or later"
        );
        assert_eq!(ApiVersion::REQUIRED.packed(), 0xc1);
    }
}
