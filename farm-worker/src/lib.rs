//! The retrofarm worker daemon.
//!
//! Data flow: [`link`] (QUIC to the coordinator) → [`engine`] (sessions, rooms, WebRTC peers on
//! one UDP socket) ← rooms' emulator processes. [`library`] lists the games, [`http`] answers
//! the browsers' latency pings. Decision logic ([`roombook`], [`backoff`], [`library`]) is plain
//! code without IO.

pub mod admission;
pub mod backoff;
pub mod config;
pub mod engine;
pub mod http;
pub mod library;
pub mod link;
pub mod metrics;
pub mod peer;
pub mod polling;
pub mod pool;
pub mod room;
pub mod roombook;
pub mod wake;
