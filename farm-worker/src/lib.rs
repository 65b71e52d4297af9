//! The retrofarm worker daemon.
//!
//! Data flow: [`link`] (QUIC to the coordinator) → [`driver`] ⇄ [`engine`] (sessions, WebRTC
//! peers on one UDP socket, which room each is in) → [`room`] (emulator child processes, whose
//! frames the [`pool`] threads convert, or hand to the [`gpu_stage`] to convert in batches,
//! and encode, H264 on [`nvenc`] where it is available) → back through the driver to the peers. [`library`]
//! lists the games, [`http`] answers the browsers' latency pings and serves [`metrics`].
//!
//! Decision logic is plain code without IO, tested on a virtual clock: [`engine`],
//! [`roombook`], [`polling`], [`admission`], [`backoff`], [`library`], [`congestion`], [`keyframes`]. The [`driver`] is the
//! thin async layer that owns the socket, the rooms, the clock and the metrics.

pub mod admission;
pub mod backoff;
pub mod config;
pub mod congestion;
pub mod driver;
pub mod engine;
pub mod gpu_stage;
pub mod http;
pub mod keyframes;
pub mod library;
pub mod link;
pub mod metrics;
pub mod nvenc;
pub mod peer;
pub mod polling;
pub mod pool;
pub mod room;
pub mod roombook;
pub mod saves;
pub mod saving;
pub mod wake;
