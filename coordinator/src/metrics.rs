//! The coordinator's Prometheus metrics (served on `/metrics`). Gauges and counters are read
//! from the hub at scrape time; the signaling relay latency is observed as messages go out.

use std::sync::OnceLock;

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::hub::Hub;

/// Time from a signaling message reaching the coordinator to its being written to the other side.
pub fn relay_latency() -> &'static Histogram {
    static H: OnceLock<Histogram> = OnceLock::new();
    H.get_or_init(|| {
        let buckets = exponential_buckets(0.00005, 2.0, 16).expect("valid buckets");
        Histogram::with_opts(
            HistogramOpts::new(
                "retrofarm_coordinator_signaling_relay_seconds",
                "Signaling relay latency through the coordinator.",
            )
            .buckets(buckets),
        )
        .expect("valid histogram")
    })
}

/// Prometheus text exposition of the hub's state.
pub fn render(hub: &Hub) -> String {
    let r = Registry::new();
    // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, …
    r.register(Box::new(prometheus::process_collector::ProcessCollector::for_self())).expect("unique");
    let gauge = |name: &str, help: &str, v: usize| {
        let g = IntGauge::new(name, help).expect("valid gauge");
        g.set(v as i64);
        r.register(Box::new(g)).expect("unique");
    };
    gauge("retrofarm_coordinator_browsers", "Browsers connected to /ws.", hub.session_count());
    gauge("retrofarm_coordinator_rooms", "Rooms known across the farm.", hub.registry().room_count());
    let workers =
        IntGaugeVec::new(Opts::new("retrofarm_coordinator_workers", "Workers registered, by zone."), &["zone"])
            .expect("valid");
    for (zone, n) in hub.registry().zones() {
        workers.with_label_values(&[zone]).set(n as i64);
    }
    r.register(Box::new(workers)).expect("unique");
    let st = hub.stats();
    let placements = IntCounterVec::new(
        Opts::new("retrofarm_coordinator_placements_total", "Placement decisions, by outcome."),
        &["outcome"],
    )
    .expect("valid");
    for (outcome, v) in [
        ("placed", st.placed),
        ("no_capacity", st.no_capacity),
        ("unknown_room", st.unknown_room),
        ("unknown_game", st.unknown_game),
    ] {
        placements.with_label_values(&[outcome]).inc_by(v);
    }
    r.register(Box::new(placements)).expect("unique");
    let bad = IntCounter::new(
        "retrofarm_coordinator_malformed_messages_total",
        "Browser messages refused as malformed, oversized or unknown.",
    )
    .expect("valid");
    bad.inc_by(st.bad_messages);
    r.register(Box::new(bad)).expect("unique");
    let build = IntGaugeVec::new(Opts::new("retrofarm_build_info", "Build information."), &["version"]).expect("valid");
    build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    r.register(Box::new(build)).expect("unique");
    r.register(Box::new(relay_latency().clone())).expect("unique");
    let mut out = Vec::new();
    TextEncoder::new().encode(&r.gather(), &mut out).expect("text encoding");
    String::from_utf8(out).expect("utf-8")
}
