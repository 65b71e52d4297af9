//! Wire types of retrofarm, with no IO and no async.
//!
//! - [`browser`]: JSON messages between a browser and the coordinator (WebSocket).
//! - [`control`]: messages between a worker and the coordinator (QUIC), framed by [`frame`].
//! - [`game`]: game commands (save, load, reset) on the WebRTC `control` data channel.
//! - [`ids`]: identifiers shared by both protocols.
//! - [`input`]: player input on the WebRTC data channel.
//!
//! Every decoder takes untrusted bytes and returns a typed [`DecodeError`]; none panics.

pub mod browser;
pub mod control;
mod error;
pub mod frame;
pub mod game;
pub mod ids;
pub mod input;

pub use error::{DecodeError, ErrorCode};
