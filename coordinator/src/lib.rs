//! The retrofarm coordinator: serves the web client, pairs browsers with workers and relays
//! their WebRTC signaling.
//!
//! Decision logic is sans-IO ([`hub`], [`registry`], [`selection`], [`origin`], [`turn`],
//! [`message_rate`], [`connection_limits`]);
//! [`server`] holds the thin async drivers (axum for browsers, quinn for workers) around it,
//! with HTTPS from `retrofarm_link::https`.

pub mod config;
pub mod connection_limits;
pub mod hub;
pub mod message_rate;
pub mod metrics;
pub mod origin;
pub mod registry;
pub mod selection;
pub mod server;
pub mod turn;
