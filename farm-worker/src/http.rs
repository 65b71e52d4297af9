//! The worker's public HTTP endpoint: `/ping` for the browsers' latency check (CORS open, never
//! cached) and `/healthz`; over HTTPS with the operator's certificate when `tls_cert` and
//! `tls_key` are set, so that pages served over HTTPS can ping it. `/metrics` has a listener of
//! its own (`metrics_listen`), out of the browsers' reach.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use retrofarm_proto::ids::RoomId;

/// The encoders that `/healthz` lists in its summary line, in order.
pub const ENCODERS: [&str; 3] = ["nvenc", "openh264", "vp8"];

/// What `/healthz` says about the rooms: which encoders each one used in the last second.
/// The driver updates it; the endpoint reads it.
#[derive(Debug, Clone, Default)]
pub struct RoomsHealth(Arc<Mutex<String>>);

impl RoomsHealth {
    /// Records each room's encoders of the last interval (none: nobody watches, or its picture
    /// did not change).
    pub fn update(&self, rooms: &BTreeMap<RoomId, Vec<&'static str>>) {
        *self.0.lock().expect("rooms health") = rooms_report(rooms);
    }

    fn get(&self) -> String {
        self.0.lock().expect("rooms health").clone()
    }
}

/// `rooms N: nvenc A, openh264 B, vp8 C`, then `room ID: ENCODERS` per room (`idle` when it
/// encoded nothing).
pub fn rooms_report(rooms: &BTreeMap<RoomId, Vec<&'static str>>) -> String {
    let count = |e: &str| rooms.values().filter(|used| used.contains(&e)).count();
    let summary: Vec<String> = ENCODERS.iter().map(|e| format!("{e} {}", count(e))).collect();
    let mut out = format!("rooms {}: {}\n", rooms.len(), summary.join(", "));
    for (id, used) in rooms {
        let used = if used.is_empty() { "idle".to_string() } else { used.join(" ") };
        out.push_str(&format!("room {id}: {used}\n"));
    }
    out
}

/// Routes; `delay` is added to every ping reply; `/healthz` says `ok`, then one line per
/// capability report (where frames are converted, whether NVENC encodes), then the rooms'
/// encoders ([`rooms_report`]).
pub fn router(delay: Duration, capabilities: Vec<String>, rooms: RoomsHealth) -> Router {
    let health: String = std::iter::once("ok".to_string()).chain(capabilities).map(|l| l + "\n").collect();
    Router::new()
        .route(
            "/ping",
            get(move || async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                (
                    StatusCode::NO_CONTENT,
                    [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"), (header::CACHE_CONTROL, "no-store")],
                )
                    .into_response()
            }),
        )
        .route("/healthz", get(move || async move { health + &rooms.get() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rooms_report_counts_each_encoder_and_lists_rooms() {
        assert_eq!(rooms_report(&BTreeMap::new()), "rooms 0: nvenc 0, openh264 0, vp8 0\n");
        let id = |s: &str| RoomId::new(s).unwrap();
        let rooms = BTreeMap::from([
            (id("aaaa0001"), vec!["nvenc"]),
            (id("aaaa0002"), vec!["nvenc", "vp8"]),
            (id("aaaa0003"), vec![]),
        ]);
        assert_eq!(
            rooms_report(&rooms),
            "rooms 3: nvenc 2, openh264 0, vp8 1\nroom aaaa0001: nvenc\nroom aaaa0002: nvenc vp8\nroom aaaa0003: idle\n"
        );
    }
}
