//! NVENC for the rooms' H264 streams. At start the worker loads NVIDIA's encode library (at run
//! time: the binary links none) and, where it loads, rooms encode H264 on it instead of
//! openh264, up to a session budget. A room whose session cannot open (budget spent, the
//! driver's "out of memory") encodes on openh264; a session whose device is lost mid-stream is
//! replaced by openh264 at once and the room asks for a keyframe, so its viewers keep playing.
//!
//! NVIDIA's driver opens sessions on a CUDA context: the worker makes one (device 0, loaded at
//! run time) and binds it on every thread that calls NVENC. The test double takes none.
//!
//! Input today is the I420 picture the conversion stage produces, copied into an NVENC input
//! buffer; the zero-copy path (the GPU stage's NV12 planes through CUDA) is not wired yet.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use retrofarm_media::{EncodedFrame, Picture, PictureFormat, VideoCodec, VideoConfig, VideoEncoder, VideoError};
use retrofarm_nvenc::{CudaContext, Library, NvencEncoder};
use serde::Deserialize;
use tracing::{info, warn};

/// Whether rooms may encode on NVENC (the `nvenc` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NvencMode {
    /// When NVIDIA's encode library loads and a device can be used.
    Auto,
    /// Never: openh264 encodes every H264 stream.
    Off,
}

/// NVENC as the rooms share it.
#[derive(Debug)]
pub struct Nvenc {
    library: Library,
    /// `None` for the test double only.
    cuda: Option<CudaContext>,
    budget: u32,
    sessions: AtomicU32,
    lost: AtomicBool,
}

impl Nvenc {
    /// Loads the library (`path`, or `libnvidia-encode.so.1` on the loader's path) as `mode`
    /// says, on the CUDA device that is the GPU stage's (`gpu_uuid`), else device 0. Returns
    /// the handle and a one-line report for the log and `/healthz`; `None` with the reason
    /// when rooms encode on the CPU.
    pub fn open(
        mode: NvencMode,
        path: Option<&PathBuf>,
        budget: u32,
        gpu_uuid: Option<[u8; 16]>,
    ) -> (Option<Arc<Nvenc>>, String) {
        if mode == NvencMode::Off {
            return (None, "nvenc off (nvenc = off)".into());
        }
        let loaded = match path {
            Some(p) => Library::load_from(p),
            None => Library::load(),
        };
        let library = match loaded {
            Ok(l) => l,
            Err(e) => {
                let report = format!("nvenc unavailable ({e})");
                info!(%report, "H264 is encoded with openh264");
                return (None, report);
            }
        };
        let (cuda, device) = if library.is_double() {
            (None, "TEST DOUBLE over openh264".to_string())
        } else {
            match open_cuda(gpu_uuid) {
                Ok(cuda) => {
                    let device = format!("CUDA device {}: {} ({})", cuda.ordinal(), cuda.name(), cuda.uuid_string());
                    (Some(cuda), device)
                }
                Err(e) => {
                    let report =
                        format!("nvenc unavailable (NVENC API {} found, but CUDA: {e})", library.api_version());
                    warn!(%report, "H264 is encoded with openh264");
                    return (None, report);
                }
            }
        };
        let report =
            format!("nvenc API {} from {} on {device}, {budget} sessions", library.api_version(), library.path());
        if cuda.is_none() {
            warn!(%report, "H264 is encoded with the NVENC test double: never in production");
        } else {
            info!(%report, "H264 is encoded with NVENC");
        }
        let nvenc = Nvenc { library, cuda, budget, sessions: AtomicU32::new(0), lost: AtomicBool::new(false) };
        (Some(Arc::new(nvenc)), report)
    }

    /// Sessions open now.
    pub fn sessions(&self) -> u32 {
        self.sessions.load(Ordering::Relaxed)
    }

    /// The session budget.
    pub fn budget(&self) -> u32 {
        self.budget
    }

    /// Whether a session reported its device lost (no new sessions open after that).
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// An H264 encoder on NVENC for a `width x height` stream, or why not (the room then
    /// encodes on openh264).
    pub fn encoder(
        self: &Arc<Self>,
        config: VideoConfig,
        width: u32,
        height: u32,
    ) -> Result<Box<dyn VideoEncoder>, String> {
        if self.is_lost() {
            return Err("the NVENC device was lost".into());
        }
        if self.sessions.fetch_add(1, Ordering::AcqRel) >= self.budget {
            self.sessions.fetch_sub(1, Ordering::AcqRel);
            return Err(format!("all {} NVENC sessions are in use", self.budget));
        }
        let slot = Slot(self.clone());
        self.bind()?;
        let context = self.cuda.as_ref().map_or(std::ptr::null_mut(), CudaContext::as_raw);
        // SAFETY: `context` is the worker's CUDA context, alive as long as `self` (which the
        // encoder's slot holds), or null for the test double, which takes none.
        #[allow(unsafe_code)]
        let inner =
            unsafe { NvencEncoder::new(&self.library, context, config, width, height) }.map_err(|e| e.to_string())?;
        Ok(Box::new(RoomNvenc { inner, slot }))
    }

    /// Makes the CUDA context current on this thread, as NVENC's calls need.
    fn bind(&self) -> Result<(), String> {
        match &self.cuda {
            Some(c) => c.bind_to_thread().map_err(|e| format!("cannot bind the CUDA context: {e}")),
            None => Ok(()),
        }
    }
}

/// The CUDA device whose UUID is `want` (the GPU the frames are converted on, so its planes can
/// reach NVENC without leaving the GPU), else device 0.
fn open_cuda(want: Option<[u8; 16]>) -> Result<CudaContext, retrofarm_nvenc::CudaError> {
    let first = CudaContext::open(0)?;
    let Some(want) = want.filter(|w| *w != first.uuid()) else { return Ok(first) };
    for ordinal in 1..retrofarm_nvenc::cuda::device_count()? {
        let c = CudaContext::open(ordinal)?;
        if c.uuid() == want {
            return Ok(c);
        }
    }
    warn!("no CUDA device is the GPU that converts the frames: NVENC uses CUDA device 0");
    Ok(first)
}

/// One session of the budget, given back on drop.
#[derive(Debug)]
struct Slot(Arc<Nvenc>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A room's NVENC encoder: the session and its place in the budget.
#[derive(Debug)]
struct RoomNvenc {
    inner: NvencEncoder,
    slot: Slot,
}

impl VideoEncoder for RoomNvenc {
    fn codec(&self) -> VideoCodec {
        VideoEncoder::codec(&self.inner)
    }

    fn name(&self) -> &'static str {
        VideoEncoder::name(&self.inner)
    }

    fn input(&self) -> PictureFormat {
        VideoEncoder::input(&self.inner)
    }

    fn encode(&mut self, picture: Picture<'_>, pts: Duration) -> Result<EncodedFrame<'_>, VideoError> {
        if let Err(message) = self.slot.0.bind() {
            return Err(VideoError::Hardware { device_lost: true, message });
        }
        let r = VideoEncoder::encode(&mut self.inner, picture, pts);
        if r.as_ref().is_err_and(VideoError::is_device_lost) {
            self.slot.0.lost.store(true, Ordering::Relaxed);
        }
        r
    }

    fn request_keyframe(&mut self) {
        VideoEncoder::request_keyframe(&mut self.inner);
    }

    fn set_bitrate(&mut self, bps: u32) -> Result<(), VideoError> {
        if let Err(message) = self.slot.0.bind() {
            return Err(VideoError::Hardware { device_lost: true, message });
        }
        VideoEncoder::set_bitrate(&mut self.inner, bps)
    }
}
