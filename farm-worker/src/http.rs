//! The worker's HTTP endpoint: `/ping` for the browsers' latency check (CORS open, never
//! cached), `/healthz`, `/metrics` (Prometheus).

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// Routes; `delay` is added to every ping reply; `/healthz` says `ok`, then one line per
/// capability report (where frames are converted, whether NVENC encodes).
pub fn router(delay: Duration, capabilities: Vec<String>) -> Router {
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
        .route("/healthz", get(move || async move { health }))
        .route(
            "/metrics",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::metrics::metrics().render())
            }),
        )
}
