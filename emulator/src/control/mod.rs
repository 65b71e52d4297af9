//! The control channel from the parent (the worker) to its emulator child: save, load and
//! reset the game.
//!
//! [`crate::Emulator::spawn`] makes a `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)` and
//! passes one end to the child (`--control-fd N`). Requests and replies are length-prefixed
//! frames ([`wire`]). The child ([`serve`]) answers between frames, in order, without ever
//! blocking its loop; the parent ([`client`]) sends one request at a time with a deadline.
//! A standalone child has no channel.

pub mod client;
pub mod commands;
pub mod serve;
pub mod wire;

pub use commands::REFUSED_STATE;
pub use wire::{GameSave, Reply, Request, WireError, MAX_FRAME_LEN};
