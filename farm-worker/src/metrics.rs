//! The worker's Prometheus metrics (served on `/metrics`). Names follow Prometheus conventions:
//! base units, `_total` counters, `_seconds` histograms, low-cardinality labels only (never a
//! room or session id). `gpu` is a GPU index, or `cpu` for software encoding.

use std::sync::OnceLock;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The label value for frames handled without a GPU.
pub const CPU: &str = "cpu";

/// Every worker metric.
pub struct Metrics {
    registry: Registry,
    /// Frames the emulators produced.
    pub frames_emulated: IntCounterVec,
    /// Frames encoded, by encoder and GPU.
    pub frames_encoded: IntCounterVec,
    /// Frames dropped, by reason.
    pub frames_dropped: IntCounterVec,
    /// Frames identical to the one before them, not encoded again.
    pub frames_repeated: IntCounterVec,
    /// Frames the emulator produced after their deadline.
    pub frames_late: IntCounterVec,
    /// Time from emulated to each later stage.
    pub stage_latency: HistogramVec,
    /// Encoder time per frame.
    pub encode_duration: HistogramVec,
    /// Rooms running.
    pub rooms: IntGauge,
    /// Viewers connected.
    pub viewers: IntGauge,
    /// Rooms this host can hold at full rate.
    pub capacity_rooms: IntGauge,
    /// Rooms it can still take.
    pub capacity_free: IntGauge,
    /// Measured CPU cost of one room, in cores (not a 0–1 ratio).
    pub room_cpu: Gauge,
    /// Media payload bytes sent, by kind.
    pub sent_bytes: IntCounterVec,
    /// Round-trip time to peers (RTCP).
    pub peer_rtt: Histogram,
    /// RTP packets sent to viewers.
    pub peer_packets_sent: IntCounter,
    /// Packets viewers reported lost (RTCP receiver reports).
    pub peer_packets_lost: IntCounter,
    /// Video frames the viewers' browsers decoded, as their pages report.
    pub viewer_frames: IntCounter,
    /// Seconds of viewing those reports cover.
    pub viewer_seconds: prometheus::Counter,
    /// Freezes the viewers' browsers counted.
    pub viewer_freezes: IntCounter,
    /// Their total length in seconds.
    pub viewer_freeze_seconds: prometheus::Counter,
    /// Frames per second each viewer received, one observation per report.
    pub viewer_fps: Histogram,
    /// Emulator processes that died.
    pub emulator_crashes: IntCounter,
    /// Congestion control's bitrate changes, by direction.
    pub video_rate_changes: IntCounterVec,
    /// Keyframe requests held back to the keyframe interval's end.
    pub keyframes_deferred: IntCounter,
    /// Where frames are converted: 1 for the device in use (`gpu` index or `cpu`).
    pub gpu_info: IntGaugeVec,
    /// GPU dispatches, each converting a batch of rooms' frames.
    pub gpu_batches: IntCounterVec,
    /// Frames converted on the GPU.
    pub gpu_frames: IntCounterVec,
    /// Time frames waited for their GPU batch (coalescing window plus dispatch), summed.
    pub gpu_wait: prometheus::CounterVec,
    /// 1 once the GPU stage failed and rooms fell back to the CPU.
    pub gpu_failed: IntGaugeVec,
    /// NVENC sessions open (rooms encoding H264 on NVENC).
    pub nvenc_sessions: IntGauge,
    /// Most NVENC sessions at once (`nvenc_max_sessions`).
    pub nvenc_budget: IntGauge,
    /// Saves written and loaded, by kind and outcome.
    pub saves: IntCounterVec,
    /// Rooms by the encoders they used in the last second.
    pub rooms_encoding: IntGaugeVec,
    /// Pictures NVENC read straight from GPU memory.
    pub nvenc_zero_copy: IntCounter,
}

fn h(name: &str, help: &str, buckets: &[f64]) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(buckets.to_vec())
}

/// Edges of the frame-latency histograms (seconds): fine up to one frame at 60 fps (16.7 ms,
/// the budget), with an edge at every threshold the alerts use (encode p99 above 8 ms), so
/// that `histogram_quantile` is exact where it matters.
pub const LATENCY_BUCKETS: [f64; 18] = [
    0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.010, 0.0125, 0.0167, 0.025, 0.0333, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5,
    1.0,
];
/// Edges of the round-trip-time histogram (seconds), with one at the viewer-RTT alert's 100 ms.
pub const RTT_BUCKETS: [f64; 13] = [0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0];
/// Edges of the viewers' received frame rate (frames per second): 60 is smooth, 30 a halved
/// stream (a slow link's frame-rate step), below 25 visibly choppy.
pub const FPS_BUCKETS: [f64; 10] = [5.0, 15.0, 25.0, 30.0, 40.0, 50.0, 55.0, 58.0, 59.5, 61.0];

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let m = Self {
            frames_emulated: IntCounterVec::new(
                Opts::new("retrofarm_frames_emulated_total", "Frames produced by the emulators."),
                &["gpu"],
            )
            .unwrap(),
            frames_encoded: IntCounterVec::new(
                Opts::new("retrofarm_frames_encoded_total", "Video frames encoded."),
                &["encoder", "gpu"],
            )
            .unwrap(),
            frames_dropped: IntCounterVec::new(
                Opts::new("retrofarm_frames_dropped_total", "Frames dropped before reaching viewers."),
                &["reason", "gpu"],
            )
            .unwrap(),
            frames_repeated: IntCounterVec::new(
                Opts::new(
                    "retrofarm_frames_repeated_total",
                    "Frames identical to the one before them: viewers keep the picture, nothing is encoded.",
                ),
                &["gpu"],
            )
            .unwrap(),
            frames_late: IntCounterVec::new(
                Opts::new("retrofarm_frames_late_total", "Frames the emulator finished after their deadline."),
                &["gpu"],
            )
            .unwrap(),
            stage_latency: HistogramVec::new(
                h(
                    "retrofarm_stage_latency_seconds",
                    "Time from a frame being emulated to reaching a stage (converted, encoded, sent).",
                    &LATENCY_BUCKETS,
                ),
                &["stage"],
            )
            .unwrap(),
            encode_duration: HistogramVec::new(
                h("retrofarm_encode_duration_seconds", "Encoder time per video frame.", &LATENCY_BUCKETS),
                &["encoder"],
            )
            .unwrap(),
            rooms: IntGauge::new("retrofarm_rooms", "Rooms running.").unwrap(),
            viewers: IntGauge::new("retrofarm_viewers", "WebRTC viewers connected.").unwrap(),
            capacity_rooms: IntGauge::new(
                "retrofarm_capacity_rooms",
                "Rooms this host can hold at full rate, from measured cost.",
            )
            .unwrap(),
            capacity_free: IntGauge::new("retrofarm_capacity_free_rooms", "Rooms this host can still start.").unwrap(),
            room_cpu: Gauge::new(
                "retrofarm_room_cpu_cores",
                "Measured CPU cost of one room, in cores (of a room encoding on NVENC where some do).",
            )
            .unwrap(),
            sent_bytes: IntCounterVec::new(
                Opts::new("retrofarm_sent_bytes_total", "Media payload bytes sent to viewers."),
                &["kind"],
            )
            .unwrap(),
            peer_rtt: Histogram::with_opts(h(
                "retrofarm_peer_rtt_seconds",
                "Round-trip time to viewers from RTCP.",
                &RTT_BUCKETS,
            ))
            .unwrap(),
            peer_packets_sent: IntCounter::new(
                "retrofarm_peer_packets_sent_total",
                "RTP packets sent to viewers, retransmissions included.",
            )
            .unwrap(),
            peer_packets_lost: IntCounter::new(
                "retrofarm_peer_packets_lost_total",
                "Packets viewers reported lost in their RTCP receiver reports.",
            )
            .unwrap(),
            viewer_frames: IntCounter::new(
                "retrofarm_viewer_frames_decoded_total",
                "Video frames the viewers' browsers decoded, as their pages report every few seconds.",
            )
            .unwrap(),
            viewer_seconds: prometheus::Counter::new(
                "retrofarm_viewer_report_seconds_total",
                "Seconds of viewing the pages' reports cover (divide frames by it for the received fps).",
            )
            .unwrap(),
            viewer_freezes: IntCounter::new(
                "retrofarm_viewer_freezes_total",
                "Video freezes the viewers' browsers counted (WebRTC freezeCount).",
            )
            .unwrap(),
            viewer_freeze_seconds: prometheus::Counter::new(
                "retrofarm_viewer_freeze_seconds_total",
                "Total length of those freezes.",
            )
            .unwrap(),
            viewer_fps: Histogram::with_opts(h(
                "retrofarm_viewer_fps",
                "Frames per second a viewer's browser decoded, one observation per page report.",
                &FPS_BUCKETS,
            ))
            .unwrap(),
            emulator_crashes: IntCounter::new("retrofarm_emulator_crashes_total", "Emulator processes that died.")
                .unwrap(),
            video_rate_changes: IntCounterVec::new(
                Opts::new(
                    "retrofarm_video_rate_changes_total",
                    "Times congestion control moved a room's video bitrate, down to its viewers' links or back up.",
                ),
                &["direction"],
            )
            .unwrap(),
            keyframes_deferred: IntCounter::new(
                "retrofarm_keyframes_deferred_total",
                "Keyframe requests (PLI) held back to the end of the 300 ms keyframe interval.",
            )
            .unwrap(),
            gpu_info: IntGaugeVec::new(
                Opts::new("retrofarm_gpu_info", "Where frames are converted: 1 for the device in use."),
                &["gpu", "device"],
            )
            .unwrap(),
            gpu_batches: IntCounterVec::new(
                Opts::new("retrofarm_gpu_batches_total", "GPU dispatches, each converting several rooms' frames."),
                &["gpu"],
            )
            .unwrap(),
            gpu_frames: IntCounterVec::new(
                Opts::new("retrofarm_gpu_frames_converted_total", "Frames converted on the GPU."),
                &["gpu"],
            )
            .unwrap(),
            gpu_wait: prometheus::CounterVec::new(
                Opts::new(
                    "retrofarm_gpu_wait_seconds_total",
                    "Time frames waited for their GPU batch (coalescing window plus dispatch), summed.",
                ),
                &["gpu"],
            )
            .unwrap(),
            gpu_failed: IntGaugeVec::new(
                Opts::new("retrofarm_gpu_failed", "1 once the GPU stage failed and rooms convert on the CPU."),
                &["gpu"],
            )
            .unwrap(),
            nvenc_sessions: IntGauge::new(
                "retrofarm_nvenc_sessions",
                "NVENC sessions open: rooms encoding H264 on NVENC.",
            )
            .unwrap(),
            nvenc_budget: IntGauge::new(
                "retrofarm_nvenc_session_budget",
                "Most NVENC sessions at once (nvenc_max_sessions).",
            )
            .unwrap(),
            saves: IntCounterVec::new(
                Opts::new(
                    "retrofarm_saves_total",
                    "Saves by kind (autosave, close, save, load, resume) and outcome (ok, failed).",
                ),
                &["kind", "outcome"],
            )
            .unwrap(),
            rooms_encoding: IntGaugeVec::new(
                Opts::new(
                    "retrofarm_rooms_encoding",
                    "Rooms whose stream the encoder (nvenc, openh264, vp8) encoded in the last second.",
                ),
                &["encoder"],
            )
            .unwrap(),
            nvenc_zero_copy: IntCounter::new(
                "retrofarm_nvenc_zero_copy_frames_total",
                "Pictures NVENC encoded straight from the GPU stage's memory, without a copy through the CPU.",
            )
            .unwrap(),
            registry,
        };
        let build = IntGaugeVec::new(Opts::new("retrofarm_build_info", "Build information."), &["version"]).unwrap();
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let r = &m.registry;
        r.register(Box::new(build)).unwrap();
        r.register(Box::new(m.frames_emulated.clone())).unwrap();
        r.register(Box::new(m.frames_encoded.clone())).unwrap();
        r.register(Box::new(m.frames_dropped.clone())).unwrap();
        r.register(Box::new(m.frames_repeated.clone())).unwrap();
        r.register(Box::new(m.frames_late.clone())).unwrap();
        r.register(Box::new(m.stage_latency.clone())).unwrap();
        r.register(Box::new(m.encode_duration.clone())).unwrap();
        r.register(Box::new(m.rooms.clone())).unwrap();
        r.register(Box::new(m.viewers.clone())).unwrap();
        r.register(Box::new(m.capacity_rooms.clone())).unwrap();
        r.register(Box::new(m.capacity_free.clone())).unwrap();
        r.register(Box::new(m.room_cpu.clone())).unwrap();
        r.register(Box::new(m.sent_bytes.clone())).unwrap();
        r.register(Box::new(m.peer_rtt.clone())).unwrap();
        r.register(Box::new(m.peer_packets_sent.clone())).unwrap();
        r.register(Box::new(m.peer_packets_lost.clone())).unwrap();
        r.register(Box::new(m.viewer_frames.clone())).unwrap();
        r.register(Box::new(m.viewer_seconds.clone())).unwrap();
        r.register(Box::new(m.viewer_freezes.clone())).unwrap();
        r.register(Box::new(m.viewer_freeze_seconds.clone())).unwrap();
        r.register(Box::new(m.viewer_fps.clone())).unwrap();
        r.register(Box::new(m.emulator_crashes.clone())).unwrap();
        r.register(Box::new(m.video_rate_changes.clone())).unwrap();
        r.register(Box::new(m.keyframes_deferred.clone())).unwrap();
        r.register(Box::new(m.gpu_info.clone())).unwrap();
        r.register(Box::new(m.gpu_batches.clone())).unwrap();
        r.register(Box::new(m.gpu_frames.clone())).unwrap();
        r.register(Box::new(m.gpu_wait.clone())).unwrap();
        r.register(Box::new(m.gpu_failed.clone())).unwrap();
        r.register(Box::new(m.nvenc_sessions.clone())).unwrap();
        r.register(Box::new(m.nvenc_budget.clone())).unwrap();
        r.register(Box::new(m.nvenc_zero_copy.clone())).unwrap();
        r.register(Box::new(m.rooms_encoding.clone())).unwrap();
        r.register(Box::new(m.saves.clone())).unwrap();
        // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, … of the
        // worker process alone (each room's emulator is a child process of its own).
        r.register(Box::new(prometheus::process_collector::ProcessCollector::for_self())).unwrap();
        for kind in ["autosave", "close", "save", "load", "resume"] {
            for outcome in ["ok", "failed"] {
                m.saves.with_label_values(&[kind, outcome]);
            }
        }
        // Series that exist from the start, so dashboards and alerts see zeros, not gaps.
        m.frames_emulated.with_label_values(&[CPU]);
        m.frames_late.with_label_values(&[CPU]);
        m.frames_repeated.with_label_values(&[CPU]);
        m.frames_encoded.with_label_values(&["openh264", CPU]);
        for direction in ["down", "up"] {
            m.video_rate_changes.with_label_values(&[direction]);
        }
        for reason in ["ring_overrun", "encoder_busy", "send_queue", "rate_step"] {
            m.frames_dropped.with_label_values(&[reason, CPU]);
        }
        for stage in ["converted", "encoded", "sent"] {
            m.stage_latency.with_label_values(&[stage]);
        }
        m.encode_duration.with_label_values(&["openh264"]);
        for kind in ["video", "audio"] {
            m.sent_bytes.with_label_values(&[kind]);
        }
        m
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding");
        String::from_utf8(out).expect("utf-8")
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family_and_no_high_cardinality_labels() {
        let text = metrics().render();
        for name in [
            "retrofarm_frames_emulated_total",
            "retrofarm_frames_encoded_total",
            "retrofarm_frames_dropped_total",
            "retrofarm_frames_late_total",
            "retrofarm_frames_repeated_total",
            "retrofarm_stage_latency_seconds_bucket",
            "retrofarm_encode_duration_seconds_bucket",
            "retrofarm_rooms",
            "retrofarm_viewers",
            "retrofarm_capacity_rooms",
            "retrofarm_capacity_free_rooms",
            "retrofarm_room_cpu_cores",
            "retrofarm_sent_bytes_total",
            "retrofarm_peer_rtt_seconds_bucket",
            "retrofarm_peer_packets_sent_total",
            "retrofarm_peer_packets_lost_total",
            "retrofarm_viewer_frames_decoded_total",
            "retrofarm_viewer_report_seconds_total",
            "retrofarm_viewer_freezes_total",
            "retrofarm_viewer_freeze_seconds_total",
            "retrofarm_viewer_fps_bucket",
            "retrofarm_emulator_crashes_total",
            "retrofarm_video_rate_changes_total",
            "retrofarm_keyframes_deferred_total",
            "retrofarm_build_info",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
        assert!(!text.contains("room=") && !text.contains("session="));
    }

    #[test]
    fn bucket_edges_sit_on_the_frame_budget_and_the_alert_thresholds() {
        // One frame at 60 fps, and the encode-time alert (p99 above 8 ms).
        for edge in [0.0167, 0.008] {
            assert!(LATENCY_BUCKETS.contains(&edge), "{edge} s is not a latency bucket edge");
        }
        // The viewer round-trip alert (p50 above 100 ms).
        assert!(RTT_BUCKETS.contains(&0.1));
        // A full-rate and a halved stream.
        assert!(FPS_BUCKETS.contains(&30.0) && FPS_BUCKETS.iter().any(|e| (59.0..61.0).contains(e)));
        for b in [&LATENCY_BUCKETS[..], &RTT_BUCKETS[..], &FPS_BUCKETS[..]] {
            assert!(b.windows(2).all(|w| w[0] < w[1]), "edges must increase: {b:?}");
        }
        let alerts = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../monitoring/alerts.yml")).unwrap();
        assert!(
            alerts.contains("> 0.008") && alerts.contains("> 0.1"),
            "the alert thresholds moved: update the buckets"
        );
    }
}
