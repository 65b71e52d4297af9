//! The worker ⇄ coordinator link over QUIC, and the TLS both services share.
//!
//! - [`pki`]: the cluster certificate authority and the certificates it issues; only a process
//!   holding a certificate signed by it can register as a worker (mutual TLS).
//! - [`endpoint`]: quinn client and server endpoints built from those certificates.
//! - [`stream`]: reading and writing framed control messages on a QUIC stream.
//! - [`https`]: HTTPS with the operator's certificate on the browser-facing HTTP listeners.
//! - [`systemd`]: readiness, watchdog and stopping notifications to systemd.

pub mod endpoint;
pub mod https;
pub mod pki;
pub mod stream;
pub mod systemd;

/// ALPN protocol name of the control link.
pub const ALPN: &[u8] = b"retrofarm-control/1";
