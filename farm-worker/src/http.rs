//! The worker's HTTP endpoint: `/ping` for the browsers' latency check (CORS open, never
//! cached), `/healthz`, `/metrics` (Prometheus).

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// Routes; `delay` is added to every ping reply.
pub fn router(delay: Duration) -> Router {
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
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::metrics::metrics().render())
            }),
        )
}
