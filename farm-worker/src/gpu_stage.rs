//! The GPU conversion stage: one thread owns the Vulkan converter ([`retrofarm_gpu`]). Room
//! jobs hand it frames that are still in their emulators' shared-memory rings; it waits a short
//! coalescing window for other rooms' frames (rooms do not tick together: NES 60.1 Hz, GBA
//! 59.7 Hz), converts them all in one dispatch, gives each room its picture back and wakes the
//! room's job through the emulator's eventfd. The window closes early once every room the stage
//! knows has a frame in the batch.
//!
//! Each room's ring is imported once, on its first frame, and released when the room's job is
//! dropped; the stage keeps the emulator (and so its mapping) alive until then. A room whose
//! encoder reads pictures on the GPU (NVENC) also gets an NV12 slot: memory that stays put, which
//! each of its frames is copied into on the GPU and which the encoder imports once. A batch that
//! fails stops the stage for good: every room is answered with the error and converts on the
//! CPU from then on, keeping its viewers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use retrofarm_emulator::{eventfd_notify, Emulator, FrameTicket};
use retrofarm_gpu::{Converter, DeviceChoice, Job, SlotId, SourceId};
use retrofarm_media::{GpuNv12, I420Frame, PixelFormat, Placement};
use retrofarm_proto::ids::RoomId;
use tracing::{info, warn};

use crate::config::GpuMode;
use crate::metrics::CPU;

/// Starts the stage as the `gpu` setting says, and returns it with the one-line capability
/// report for the log, `/healthz` and the `retrofarm_gpu_info` metric. A GPU that cannot be
/// used leaves the worker on the CPU path, and the report says why.
pub fn open(mode: GpuMode, window: Duration) -> (Option<Arc<GpuStage>>, String) {
    let m = crate::metrics::metrics();
    let (stage, report, label, device) = match mode.choice() {
        None => (None, "cpu (gpu = off)".to_string(), CPU, String::new()),
        Some(choice) => match GpuStage::start(choice, window) {
            Ok(stage) => {
                let report = stage.report().to_string();
                let device = stage.device.clone();
                let stage = Arc::new(stage);
                m.gpu_info.with_label_values(&[stage.label(), &device]).set(1);
                info!(capability = %report, "frames are converted on the GPU");
                return (Some(stage), report);
            }
            Err(why) => {
                warn!(gpu = ?mode, %why, "no usable GPU: frames are converted on the CPU");
                (None, format!("cpu ({why})"), CPU, String::new())
            }
        },
    };
    m.gpu_info.with_label_values(&[label, &device]).set(1);
    info!(capability = %report, "frames are converted on the CPU");
    (stage, report)
}

/// The most frames converted in one dispatch.
pub const MAX_BATCH: usize = 64;

/// Fault injection for tests: after this many batches the stage fails as a lost device would.
pub const FAIL_AFTER_ENV: &str = "RETROFARM_GPU_FAIL_AFTER";

/// A frame for the stage to convert.
pub struct Submit {
    /// The room's emulator: its ring is the source, its eventfd the wake-up.
    pub emulator: Arc<Emulator>,
    /// The frame in the ring, to check afterwards that it was not overwritten meanwhile.
    pub ticket: FrameTicket,
    /// Byte offset of the pixels in the ring.
    pub offset: u64,
    /// Pixel format.
    pub format: PixelFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row.
    pub stride: usize,
    /// Scale and border.
    pub placement: Placement,
    /// The picture to fill (handed back in [`Converted`], so no frame allocates).
    pub picture: I420Frame,
    /// Also leave the picture as NV12 in the room's slot, for an encoder that reads it there.
    pub slot: bool,
}

/// A converted frame, or why not.
#[derive(Debug)]
pub struct Converted {
    /// The frame converted.
    pub ticket: FrameTicket,
    /// The picture, or the stage's error (after which the room converts on the CPU).
    pub result: Result<I420Frame, String>,
    /// Where the picture also lies on the GPU, when the room asked for its slot and has one.
    pub nv12: Option<GpuNv12>,
}

enum Msg {
    Convert(RoomId, Submit, Arc<Mutex<Option<Converted>>>),
    Release(RoomId),
}

/// Figures of the stage since start.
#[derive(Debug, Default)]
pub struct StageCounters {
    /// Dispatches submitted.
    pub batches: AtomicU64,
    /// Frames converted.
    pub frames: AtomicU64,
    /// Sum over frames of the time from submission to the result, in microseconds (the
    /// coalescing window plus the dispatch).
    pub wait_us: AtomicU64,
}

/// The stage, as the driver holds it.
#[derive(Debug)]
pub struct GpuStage {
    tx: mpsc::Sender<Msg>,
    report: String,
    label: String,
    device: String,
    uuid: [u8; 16],
    failed: Arc<AtomicBool>,
    counters: Arc<StageCounters>,
}

impl GpuStage {
    /// Opens a device as `choice` says and starts the stage's thread, batching for `window`.
    /// The error says why no GPU is used.
    pub fn start(choice: DeviceChoice, window: Duration) -> Result<GpuStage, String> {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(StageCounters::default());
        let (f, c) = (failed.clone(), counters.clone());
        std::thread::Builder::new()
            .name("gpu-stage".into())
            .spawn(move || {
                // The converter lives and dies on this thread.
                let conv = match Converter::open(choice) {
                    Ok(conv) => {
                        let d = conv.device();
                        let _ = ready_tx.send(Ok((d.to_string(), d.index.to_string(), d.name.clone(), d.uuid)));
                        conv
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let fail_after = std::env::var(FAIL_AFTER_ENV).ok().and_then(|v| v.parse().ok());
                if let Some(n) = fail_after {
                    warn!("{FAIL_AFTER_ENV} is set: the GPU stage will fail after {n} batches (a test)");
                }
                Worker {
                    conv,
                    imports: HashMap::new(),
                    slots: HashMap::new(),
                    rooms: HashSet::new(),
                    failed: f,
                    counters: c,
                    window,
                    fail_after,
                }
                .run(rx);
            })
            .map_err(|e| format!("cannot start the GPU thread: {e}"))?;
        let (report, label, device, uuid) =
            ready_rx.recv().map_err(|_| "the GPU thread ended while opening the device".to_string())??;
        Ok(GpuStage { tx, report, label, device, uuid, failed, counters })
    }

    /// The capability report: which device, what it can do.
    pub fn report(&self) -> &str {
        &self.report
    }

    /// The `gpu` metric label of frames converted here: the device's index.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The device's UUID (the same bytes CUDA reports for it).
    pub fn uuid(&self) -> [u8; 16] {
        self.uuid
    }

    /// Whether the stage stopped after a failure (rooms convert on the CPU).
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// The stage's figures.
    pub fn counters(&self) -> &StageCounters {
        &self.counters
    }

    /// A room's way in.
    pub fn link(&self, room: RoomId) -> GpuLink {
        GpuLink { tx: self.tx.clone(), room, mailbox: Arc::default(), failed: self.failed.clone() }
    }
}

/// One room's way into the stage; dropping it releases the room's import.
#[derive(Debug)]
pub struct GpuLink {
    tx: mpsc::Sender<Msg>,
    room: RoomId,
    mailbox: Arc<Mutex<Option<Converted>>>,
    failed: Arc<AtomicBool>,
}

impl GpuLink {
    /// Hands a frame to the stage; gives it back when the stage is not running.
    pub fn submit(&self, submit: Submit) -> Result<(), Box<Submit>> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(Box::new(submit));
        }
        self.tx.send(Msg::Convert(self.room.clone(), submit, self.mailbox.clone())).map_err(|e| match e.0 {
            Msg::Convert(_, s, _) => Box::new(s),
            Msg::Release(_) => unreachable!("sent a Convert"),
        })
    }

    /// The result of the frame submitted, once there.
    pub fn take(&self) -> Option<Converted> {
        self.mailbox.lock().expect("gpu mailbox").take()
    }
}

impl Drop for GpuLink {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Release(self.room.clone()));
    }
}

/// The stage's thread.
struct Worker {
    conv: Converter,
    imports: HashMap<RoomId, (SourceId, Arc<Emulator>)>,
    /// Each room's NV12 slot, once asked for; `None` where none could be made (said once).
    slots: HashMap<RoomId, Option<(SlotId, GpuNv12)>>,
    /// Rooms that sent frames and were not released: a batch is complete once each has one in.
    rooms: HashSet<RoomId>,
    failed: Arc<AtomicBool>,
    counters: Arc<StageCounters>,
    window: Duration,
    /// [`FAIL_AFTER_ENV`].
    fail_after: Option<u64>,
}

struct Pending {
    room: RoomId,
    submit: Submit,
    mailbox: Arc<Mutex<Option<Converted>>>,
    since: Instant,
}

impl Worker {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
        loop {
            // Block for the first frame, then gather for the window.
            let Ok(first) = rx.recv() else { break };
            let mut deadline = None;
            let mut msg = Some(first);
            loop {
                match msg.take() {
                    Some(Msg::Release(room)) => self.release(&room),
                    Some(Msg::Convert(room, submit, mailbox)) => {
                        let since = Instant::now();
                        deadline.get_or_insert(since + self.window);
                        self.rooms.insert(room.clone());
                        batch.push(Pending { room, submit, mailbox, since });
                    }
                    None => {}
                }
                let Some(deadline) = deadline else { break };
                // Every room has its frame in (a room has one frame in flight at most): no one
                // else to wait for.
                if batch.len() >= MAX_BATCH || batch.len() >= self.rooms.len() {
                    break;
                }
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(m) => msg = Some(m),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            if !batch.is_empty() {
                self.convert(&mut batch);
            }
            if self.failed.load(Ordering::Relaxed) {
                break;
            }
        }
        // Failed or shut down: answer whatever still comes so no room waits for us.
        self.failed.store(true, Ordering::Relaxed);
        while let Ok(m) = rx.recv() {
            if let Msg::Convert(_, submit, mailbox) = m {
                answer(&submit.emulator, &mailbox, submit.ticket, Err("the GPU stage stopped".into()), None);
            }
        }
    }

    fn release(&mut self, room: &RoomId) {
        self.rooms.remove(room);
        if let Some((id, _emulator)) = self.imports.remove(room) {
            self.conv.release(id);
        }
        if let Some(Some((id, _))) = self.slots.remove(room) {
            self.conv.release_slot(id);
        }
    }

    /// The room's NV12 slot for `width x height` pictures: made and exported on first use and
    /// again when the size changes; `None` (said once) where the device cannot make one.
    fn slot(&mut self, room: &RoomId, width: u32, height: u32) -> Option<(SlotId, GpuNv12)> {
        match self.slots.get(room) {
            Some(Some((id, nv12))) if (nv12.width, nv12.height) == (width, height) => {
                return Some((*id, nv12.clone()));
            }
            Some(None) => return None,
            _ => {}
        }
        if let Some(Some((id, _))) = self.slots.remove(room) {
            self.conv.release_slot(id);
        }
        let made = self.make_slot(width, height);
        match &made {
            Ok((_, nv12)) => info!(%room, width, height, pitch = nv12.pitch, exported = nv12.fd.is_some(),
                mapped = nv12.host_address.is_some(), "NV12 slot made: the encoder reads this room's pictures on the GPU"),
            Err(e) => {
                warn!(%room, error = %e, "no NV12 slot: this room's hardware encoder reads its pictures from CPU memory")
            }
        }
        let slot = made.ok();
        self.slots.insert(room.clone(), slot.clone());
        slot
    }

    fn make_slot(&mut self, width: u32, height: u32) -> Result<(SlotId, GpuNv12), String> {
        let id = self.conv.create_slot(width, height).map_err(|e| e.to_string())?;
        let info = self.conv.slot(id).expect("the slot just made");
        let fd = match info.exportable.then(|| self.conv.export_slot_fd(id)) {
            Some(Ok(fd)) => Some(Arc::new(fd)),
            Some(Err(e)) => {
                self.conv.release_slot(id);
                return Err(format!("cannot export the slot's memory: {e}"));
            }
            None => None,
        };
        if fd.is_none() && info.host_address.is_none() {
            self.conv.release_slot(id);
            return Err("the device can neither export the slot's memory nor map it".into());
        }
        let nv12 = GpuNv12 {
            slot: id.get(),
            width,
            height,
            pitch: info.pitch,
            fd,
            size: info.size,
            dedicated: info.dedicated,
            host_address: info.host_address,
        };
        Ok((id, nv12))
    }

    /// The room's source, imported on its first frame.
    fn source(&mut self, room: &RoomId, emulator: &Arc<Emulator>) -> Result<SourceId, String> {
        if let Some((id, _)) = self.imports.get(room) {
            return Ok(*id);
        }
        let (ptr, len) = emulator.mapping();
        // SAFETY: the mapping lives as long as the emulator, which `imports` keeps alive until
        // the import is released (`release` drops the import before the emulator).
        #[allow(unsafe_code)]
        let id = unsafe { self.conv.import(ptr, len) }.map_err(|e| format!("cannot import the frame ring: {e}"))?;
        info!(%room, mode = ?self.conv.source_mode(id), "frame ring imported");
        self.imports.insert(room.clone(), (id, emulator.clone()));
        Ok(id)
    }

    fn convert(&mut self, batch: &mut Vec<Pending>) {
        let mut jobs = Vec::with_capacity(batch.len());
        let mut outs = Vec::with_capacity(batch.len());
        let mut ok = Vec::with_capacity(batch.len());
        let mut nv12s = Vec::with_capacity(batch.len());
        for p in batch.iter_mut() {
            match self.source(&p.room, &p.submit.emulator) {
                Ok(source) => {
                    let (w, h) = (p.submit.placement.width, p.submit.placement.height);
                    let slot = if p.submit.slot { self.slot(&p.room, w, h) } else { None };
                    let s = &p.submit;
                    jobs.push(Job {
                        source,
                        offset: s.offset as usize,
                        format: s.format,
                        width: s.width,
                        height: s.height,
                        stride: s.stride,
                        placement: s.placement,
                        slot: slot.as_ref().map(|(id, _)| *id),
                    });
                    outs.push(std::mem::take(&mut p.submit.picture));
                    nv12s.push(slot.map(|(_, nv12)| nv12));
                    ok.push(true);
                }
                Err(e) => {
                    warn!(room = %p.room, error = %e, "GPU conversion refused; this room converts on the CPU");
                    answer(&p.submit.emulator, &p.mailbox, p.submit.ticket, Err(e), None);
                    ok.push(false);
                }
            }
        }
        let injected = self.fail_after.is_some_and(|n| self.counters.batches.load(Ordering::Relaxed) >= n);
        let result = if injected {
            Err("device lost (injected by RETROFARM_GPU_FAIL_AFTER)".to_string())
        } else if jobs.is_empty() {
            Ok(())
        } else {
            self.conv.convert(&jobs, &mut outs).map(|_| ()).map_err(|e| e.to_string())
        };
        if let Err(e) = &result {
            warn!(error = %e, rooms = jobs.len(), "GPU conversion failed; every room converts on the CPU from now on");
            self.failed.store(true, Ordering::Relaxed);
        }
        let n = jobs.len();
        let mut outs = outs.into_iter().zip(nv12s);
        let now = Instant::now();
        for (p, ok) in batch.drain(..).zip(ok) {
            if !ok {
                continue;
            }
            let (picture, nv12) = outs.next().expect("one picture per job");
            let r = match &result {
                Ok(()) => Ok(picture),
                Err(e) => Err(format!("GPU conversion failed: {e}")),
            };
            self.counters.wait_us.fetch_add(now.duration_since(p.since).as_micros() as u64, Ordering::Relaxed);
            answer(&p.submit.emulator, &p.mailbox, p.submit.ticket, r, nv12);
        }
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.counters.frames.fetch_add(n as u64, Ordering::Relaxed);
        if result.is_err() {
            // Drop the imports now: nothing will use them again.
            for (_, (id, _)) in self.imports.drain() {
                self.conv.release(id);
            }
            for (id, _) in self.slots.drain().filter_map(|(_, slot)| slot) {
                self.conv.release_slot(id);
            }
        }
    }
}

/// Puts a result in a room's mailbox and wakes its job.
fn answer(
    emulator: &Emulator,
    mailbox: &Mutex<Option<Converted>>,
    ticket: FrameTicket,
    result: Result<I420Frame, String>,
    nv12: Option<GpuNv12>,
) {
    *mailbox.lock().expect("gpu mailbox") = Some(Converted { ticket, result, nv12 });
    // The pool watches this eventfd; the job finds the result when it runs.
    let _ = eventfd_notify(emulator.event_fd(), 1);
}
