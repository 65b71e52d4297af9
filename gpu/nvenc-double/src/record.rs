//! The event record (`RETROFARM_NVENC_DOUBLE_RECORD`) and the knobs read from the environment.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use retrofarm_nvenc::api::{self, GUID};
use serde_json::Value;

/// File to append events to.
pub const RECORD_ENV: &str = "RETROFARM_NVENC_DOUBLE_RECORD";
/// Session cap.
pub const MAX_SESSIONS_ENV: &str = "RETROFARM_NVENC_DOUBLE_MAX_SESSIONS";
/// Reported API version.
pub const MAX_VERSION_ENV: &str = "RETROFARM_NVENC_DOUBLE_MAX_VERSION";
/// Pictures before the device is lost.
pub const FAIL_AFTER_ENV: &str = "RETROFARM_NVENC_DOUBLE_FAIL_AFTER";

/// The knobs, as read at one moment.
#[derive(Debug, Clone, Default)]
pub struct Knobs {
    pub record: Option<PathBuf>,
    pub max_sessions: Option<usize>,
    pub fail_after: Option<u64>,
}

impl Knobs {
    pub fn read() -> Self {
        Knobs {
            record: std::env::var_os(RECORD_ENV).filter(|v| !v.is_empty()).map(PathBuf::from),
            max_sessions: std::env::var(MAX_SESSIONS_ENV).ok().and_then(|v| v.trim().parse().ok()),
            fail_after: std::env::var(FAIL_AFTER_ENV).ok().and_then(|v| v.trim().parse().ok()),
        }
    }
}

/// The API version to report: `RETROFARM_NVENC_DOUBLE_MAX_VERSION` or 12.1, packed as
/// `(major << 4) | minor`.
pub fn max_version() -> u32 {
    let parsed = std::env::var(MAX_VERSION_ENV).ok().and_then(|v| {
        let (major, minor) = v.trim().split_once('.')?;
        let (major, minor): (u32, u32) = (major.parse().ok()?, minor.parse().ok()?);
        (minor < 16).then_some((major << 4) | minor)
    });
    parsed.unwrap_or((api::NVENCAPI_MAJOR_VERSION << 4) | api::NVENCAPI_MINOR_VERSION)
}

/// Appends `event` as one line to `path` (nothing without a path). Write errors are ignored:
/// a test reading the record notices what is missing.
pub fn write(path: Option<&PathBuf>, event: Value) {
    static WRITING: Mutex<()> = Mutex::new(());
    let Some(path) = path else { return };
    let _one_at_a_time = WRITING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = file.write_all(format!("{event}\n").as_bytes());
    }
}

/// `P1` ... `P7`, or `unknown:<guid>`.
pub fn preset_name(guid: &GUID) -> String {
    let presets = [
        api::NV_ENC_PRESET_P1_GUID,
        api::NV_ENC_PRESET_P2_GUID,
        api::NV_ENC_PRESET_P3_GUID,
        api::NV_ENC_PRESET_P4_GUID,
        api::NV_ENC_PRESET_P5_GUID,
        api::NV_ENC_PRESET_P6_GUID,
        api::NV_ENC_PRESET_P7_GUID,
    ];
    match presets.iter().position(|p| p == guid) {
        Some(at) => format!("P{}", at + 1),
        None => format!("unknown:{guid}"),
    }
}

/// Whether `guid` is one of the seven presets.
pub fn is_preset(guid: &GUID) -> bool {
    !preset_name(guid).starts_with("unknown")
}

/// `baseline`, `main`, `high`, `constrained_high`, `autoselect`, or `unknown:<guid>`.
pub fn profile_name(guid: &GUID) -> String {
    let named = [
        (api::NV_ENC_H264_PROFILE_BASELINE_GUID, "baseline"),
        (api::NV_ENC_H264_PROFILE_MAIN_GUID, "main"),
        (api::NV_ENC_H264_PROFILE_HIGH_GUID, "high"),
        (api::NV_ENC_H264_PROFILE_CONSTRAINED_HIGH_GUID, "constrained_high"),
        (api::NV_ENC_CODEC_PROFILE_AUTOSELECT_GUID, "autoselect"),
    ];
    named.iter().find(|(g, _)| g == guid).map_or_else(|| format!("unknown:{guid}"), |(_, name)| (*name).to_owned())
}

/// The tuning's name.
pub fn tuning_name(tuning: u32) -> &'static str {
    match tuning {
        api::NV_ENC_TUNING_INFO_HIGH_QUALITY => "high_quality",
        api::NV_ENC_TUNING_INFO_LOW_LATENCY => "low_latency",
        api::NV_ENC_TUNING_INFO_ULTRA_LOW_LATENCY => "ultra_low_latency",
        api::NV_ENC_TUNING_INFO_LOSSLESS => "lossless",
        _ => "undefined",
    }
}

/// The rate control mode's name.
pub fn rc_mode_name(mode: u32) -> &'static str {
    match mode {
        api::NV_ENC_PARAMS_RC_CONSTQP => "constqp",
        api::NV_ENC_PARAMS_RC_VBR => "vbr",
        api::NV_ENC_PARAMS_RC_CBR => "cbr",
        _ => "unknown",
    }
}

/// The picture type's name.
pub fn picture_type_name(kind: u32) -> &'static str {
    match kind {
        api::NV_ENC_PIC_TYPE_P => "p",
        api::NV_ENC_PIC_TYPE_B => "b",
        api::NV_ENC_PIC_TYPE_I => "i",
        api::NV_ENC_PIC_TYPE_IDR => "idr",
        api::NV_ENC_PIC_TYPE_SKIPPED => "skipped",
        _ => "unknown",
    }
}
