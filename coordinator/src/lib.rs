//! The retrofarm coordinator: serves the web client, pairs browsers with workers and relays
//! their WebRTC signaling.
//!
//! Decision logic is sans-IO ([`hub`], [`registry`], [`selection`], [`origin`], [`turn`]);
//! [`server`] holds the thin async drivers (axum for browsers, quinn for workers) around it,
//! with HTTPS from `retrofarm_link::https`.

pub mod config;
pub mod hub;
pub mod metrics;
pub mod origin;
pub mod registry;
pub mod selection;
pub mod server;
pub mod turn;
