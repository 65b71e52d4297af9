//! systemd's service notification protocol (`Type=notify`, `WatchdogSec=`), which both services
//! speak when systemd starts them: `READY=1` once they serve, `WATCHDOG=1` from their main loop,
//! `STOPPING=1` and a `STATUS=` line while they drain. Without `$NOTIFY_SOCKET` (not started by
//! systemd) every call does nothing.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where notifications go, from `$NOTIFY_SOCKET`: a path, or an abstract socket (`@name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifySocket {
    /// A socket file.
    Path(std::path::PathBuf),
    /// An abstract socket (the name without its `@`).
    Abstract(Vec<u8>),
}

impl NotifySocket {
    /// Parses `$NOTIFY_SOCKET`'s value; None when empty.
    pub fn parse(value: &str) -> Option<Self> {
        match value.strip_prefix('@') {
            Some(name) => Some(NotifySocket::Abstract(name.as_bytes().to_vec())),
            None if value.is_empty() => None,
            None => Some(NotifySocket::Path(value.into())),
        }
    }

    /// The socket systemd gave this process, if any.
    pub fn from_env() -> Option<Self> {
        Self::parse(&std::env::var("NOTIFY_SOCKET").ok()?)
    }

    /// Sends one notification (lines `KEY=VALUE`). Never blocks: a listener that does not
    /// read (its queue is full) gets `WouldBlock`, not a stalled caller.
    pub fn send(&self, state: &str) -> io::Result<()> {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        match self {
            NotifySocket::Path(p) => socket.send_to(state.as_bytes(), p)?,
            NotifySocket::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt as _;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(state.as_bytes(), &addr)?
            }
        };
        Ok(())
    }
}

/// Sends `state` to systemd when it started this process; failures are logged, not fatal.
pub fn notify(state: &str) {
    if let Some(s) = NotifySocket::from_env() {
        if let Err(e) = s.send(state) {
            tracing::warn!(error = %e, state, "cannot notify systemd");
        }
    }
}

/// How often to send `WATCHDOG=1`: half of `WatchdogSec=` (`$WATCHDOG_USEC`), when systemd
/// watches this process (`$WATCHDOG_PID` unset or ours).
pub fn watchdog_interval() -> Option<Duration> {
    let pid = std::env::var("WATCHDOG_PID").ok();
    interval(std::env::var("WATCHDOG_USEC").ok().as_deref(), pid.as_deref(), std::process::id())
}

fn interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if pid.is_some_and(|p| p.parse::<u32>().ok() != Some(me)) {
        return None;
    }
    let usec: u64 = usec?.parse().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_socket_values() {
        assert_eq!(NotifySocket::parse(""), None);
        assert_eq!(NotifySocket::parse("/run/systemd/notify"), Some(NotifySocket::Path("/run/systemd/notify".into())));
        assert_eq!(NotifySocket::parse("@sd-notify"), Some(NotifySocket::Abstract(b"sd-notify".to_vec())));
    }

    #[test]
    fn the_watchdog_is_fed_at_half_its_period_and_only_by_its_process() {
        assert_eq!(interval(Some("30000000"), None, 7), Some(Duration::from_secs(15)));
        assert_eq!(interval(Some("30000000"), Some("7"), 7), Some(Duration::from_secs(15)));
        assert_eq!(interval(Some("30000000"), Some("8"), 7), None);
        assert_eq!(interval(Some("0"), None, 7), None);
        assert_eq!(interval(None, None, 7), None);
    }

    #[test]
    fn notifications_arrive_on_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        NotifySocket::parse(path.to_str().unwrap()).unwrap().send("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("retrofarm-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        NotifySocket::parse(&format!("@{name}")).unwrap().send("WATCHDOG=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");

        // Nobody reads: sending fails at once instead of blocking the service's loop.
        let to = NotifySocket::parse(path.to_str().unwrap()).unwrap();
        let failed = (0..10_000).map(|_| to.send("WATCHDOG=1")).find_map(Result::err);
        assert_eq!(failed.map(|e| e.kind()), Some(io::ErrorKind::WouldBlock));
    }
}
