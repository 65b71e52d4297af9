//! NVENC for the rooms' H264 streams. At start the worker loads NVIDIA's encode library (at run
//! time: the binary links none) and, where it loads, rooms encode H264 on it instead of
//! openh264, up to a session budget. A room whose session cannot open (budget spent, the
//! driver's "out of memory") encodes on openh264; a session whose device is lost mid-stream is
//! replaced by openh264 at once and the room asks for a keyframe, so its viewers keep playing.
//!
//! NVIDIA's driver opens sessions on a CUDA context: the worker makes one (device 0, loaded at
//! run time) and binds it on every thread that calls NVENC. The test double takes none.
//!
//! Input, where the worker converts on the GPU: zero-copy. The GPU stage copies each frame's
//! NV12 planes into the room's slot (exportable Vulkan memory that stays put); the encoder
//! imports the slot into CUDA once (`cuImportExternalMemory` of its OPAQUE_FD), registers it
//! with NVENC once, and maps it for each picture. With the test double, which has no CUDA, the
//! slot's host mapping (lavapipe's device memory is host memory) stands in for the CUDA pointer,
//! so the same registration, map and unmap calls run in CI. Where there is no slot (frames
//! converted on the CPU, a device that cannot export) the I420 picture is copied into an NVENC
//! input buffer instead.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use retrofarm_media::{
    EncodedFrame, GpuNv12, Picture, PictureFormat, VideoCodec, VideoConfig, VideoEncoder, VideoError,
};
use retrofarm_nvenc::{CudaContext, ExternalBuffer, Library, NvencEncoder, RegisteredInput};
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
    /// Pictures encoded straight from a GPU slot.
    zero_copy_frames: AtomicU64,
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
        let nvenc = Nvenc {
            library,
            cuda,
            budget,
            sessions: AtomicU32::new(0),
            lost: AtomicBool::new(false),
            zero_copy_frames: AtomicU64::new(0),
        };
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

    /// Pictures encoded straight from GPU memory (no copy through the CPU) since start.
    pub fn zero_copy_frames(&self) -> u64 {
        self.zero_copy_frames.load(Ordering::Relaxed)
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
        Ok(Box::new(RoomNvenc { inner, input: Input::Unregistered, slot }))
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

/// A room's NVENC encoder: the session, its registered input and its place in the budget.
#[derive(Debug)]
struct RoomNvenc {
    /// First field: dropped (its session, and so its registrations, ended) before the CUDA
    /// import in `input` is freed.
    inner: NvencEncoder,
    input: Input,
    slot: Slot,
}

/// How a room's NVENC session reads GPU pictures.
#[derive(Debug)]
enum Input {
    /// No slot registered yet.
    Unregistered,
    /// The slot `slot` is registered (and, on CUDA, imported as `_memory`, held while the
    /// registration lasts).
    Registered { slot: u64, input: RegisteredInput, _memory: Option<ExternalBuffer> },
    /// Registering failed: this session reads I420 from CPU memory.
    Off,
}

impl RoomNvenc {
    /// Whether the picture in `nv12` can be encoded in place: its slot is registered (now, when
    /// it is new) at the session's size.
    fn ready_in_place(&mut self, nv12: &GpuNv12) -> bool {
        if matches!(self.input, Input::Off) || (nv12.width, nv12.height) != self.inner.size() {
            // A new size first reopens the session through the I420 path.
            return false;
        }
        if matches!(&self.input, Input::Registered { slot, .. } if *slot == nv12.slot) {
            return true;
        }
        if let Input::Registered { input, .. } = std::mem::replace(&mut self.input, Input::Unregistered) {
            let _ = self.inner.unregister(input);
        }
        match self.register(nv12) {
            Ok(input) => {
                info!(
                    slot = nv12.slot,
                    width = nv12.width,
                    height = nv12.height,
                    "NVENC reads this room's pictures on the GPU (zero-copy)"
                );
                self.input = input;
                true
            }
            Err(why) => {
                warn!(%why, "NVENC cannot read this room's pictures on the GPU: they are copied from CPU memory");
                self.input = Input::Off;
                false
            }
        }
    }

    /// Imports the slot into CUDA (with the test double: takes its host mapping) and registers
    /// it with the session.
    fn register(&mut self, nv12: &GpuNv12) -> Result<Input, String> {
        let (address, memory) = match &self.slot.0.cuda {
            Some(cuda) => {
                let fd = nv12.fd.as_ref().ok_or("the slot's memory is not exported")?;
                let fd = fd.try_clone().map_err(|e| format!("cannot duplicate the slot's descriptor: {e}"))?;
                // SAFETY: `fd` is an OPAQUE_FD export of the slot's Vulkan memory, whose whole
                // size is `nv12.size` and whose dedicated-ness `nv12.dedicated` says; the GPU
                // is the CUDA context's (the stage's UUID was matched at open, else device 0:
                // then the import fails and the room reads I420).
                #[allow(unsafe_code)]
                let imported = unsafe { cuda.import_opaque_fd(fd, nv12.size, nv12.dedicated) };
                let buffer = imported.map_err(|e| format!("CUDA cannot import the slot: {e}"))?;
                (buffer.device_ptr(), Some(buffer))
            }
            None => {
                let address = nv12.host_address.ok_or("the slot is not mapped (the test double reads host memory)")?;
                (address as u64, None)
            }
        };
        // SAFETY: `address` is the slot's CUDA mapping (kept in `memory`, freed after the
        // session) or, for the test double, its host mapping, which the GPU stage keeps until
        // the room's link is dropped, after its encoders; either holds `pitch * height * 3 / 2`
        // bytes of NV12 at the session's size (checked by the caller).
        #[allow(unsafe_code)]
        let input = unsafe { self.inner.register_cuda_nv12(address, nv12.pitch) }.map_err(|e| e.to_string())?;
        Ok(Input::Registered { slot: nv12.slot, input, _memory: memory })
    }
}

impl VideoEncoder for RoomNvenc {
    fn codec(&self) -> VideoCodec {
        VideoEncoder::codec(&self.inner)
    }

    fn name(&self) -> &'static str {
        VideoEncoder::name(&self.inner)
    }

    fn input(&self) -> PictureFormat {
        match self.input {
            Input::Off => PictureFormat::I420,
            _ => PictureFormat::GpuNv12,
        }
    }

    fn encode(&mut self, picture: Picture<'_>, pts: Duration) -> Result<EncodedFrame<'_>, VideoError> {
        if let Err(message) = self.slot.0.bind() {
            return Err(VideoError::Hardware { device_lost: true, message });
        }
        let in_place = matches!(picture, Picture::Gpu { nv12, .. } if self.ready_in_place(nv12));
        let RoomNvenc { inner, input, slot } = self;
        let r = match (in_place, &*input) {
            (true, Input::Registered { input: registered, .. }) => {
                let r = inner.encode_registered(registered, pts).map_err(VideoError::from);
                if r.is_ok() {
                    slot.0.zero_copy_frames.fetch_add(1, Ordering::Relaxed);
                }
                r
            }
            _ => VideoEncoder::encode(inner, picture, pts),
        };
        if r.as_ref().is_err_and(VideoError::is_device_lost) {
            slot.0.lost.store(true, Ordering::Relaxed);
        }
        r
    }

    fn request_keyframe(&mut self) {
        VideoEncoder::request_keyframe(&mut self.inner);
    }

    fn set_rate(&mut self, bitrate_bps: u32, fps: f32) -> Result<(), VideoError> {
        if let Err(message) = self.slot.0.bind() {
            return Err(VideoError::Hardware { device_lost: true, message });
        }
        VideoEncoder::set_rate(&mut self.inner, bitrate_bps, fps)
    }
}
