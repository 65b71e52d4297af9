//! The retrofarm coordinator: serves the web client, pairs browsers with workers and relays
//! their WebRTC signaling.
//!
//! Decision logic is sans-IO ([`hub`], [`registry`], [`selection`]); [`server`] holds the thin
//! async drivers (axum for browsers, quinn for workers) around it.

pub mod config;
pub mod hub;
pub mod metrics;
pub mod registry;
pub mod selection;
pub mod server;
