//! Thin wrappers over the Linux system calls the crate needs (memfd, eventfd, poll, send,
//! fcntl, clock_gettime). Everything unsafe about file descriptors lives here.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Creates an anonymous memory file (close-on-exec, sealable).
pub fn memfd_create(name: &str) -> io::Result<OwnedFd> {
    let name = std::ffi::CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: `name` is a valid NUL-terminated string; the flags are valid for memfd_create.
    let fd = cvt(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) })?;
    // SAFETY: memfd_create returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Forbids shrinking a memfd: the other process can then never make our mapping fault.
pub fn seal_shrink(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_ADD_SEALS takes an int argument; `fd` is a valid open descriptor.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) })?;
    Ok(())
}

/// Sets SIGINT's disposition to ignored.
pub fn ignore_sigint() {
    // SAFETY: SIG_IGN is a valid disposition for SIGINT; no handler code runs.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
}

/// Creates a non-blocking, close-on-exec eventfd with counter 0.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain system call with valid flags.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: eventfd returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds `n` to an eventfd's counter. Never blocks (the fd is non-blocking and the counter
/// cannot realistically overflow).
pub fn eventfd_notify(fd: BorrowedFd<'_>, n: u64) -> io::Result<()> {
    let buf = n.to_ne_bytes();
    // SAFETY: `buf` is 8 readable bytes, as eventfd requires.
    let ret = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            return Ok(());
        }
        return Err(err);
    }
    Ok(())
}

/// Reads and resets an eventfd's counter; 0 when nothing was pending.
pub fn eventfd_drain(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is 8 writable bytes, as eventfd requires.
    let ret = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            return Ok(0);
        }
        return Err(err);
    }
    Ok(u64::from_ne_bytes(buf))
}

/// Waits until `fd` is readable or `timeout` passes (None = forever). Returns readability.
pub fn poll_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let ms: libc::c_int = match timeout {
        None => -1,
        Some(t) => t.as_millis().min(i32::MAX as u128) as libc::c_int,
    };
    Ok(poll_one(fd, libc::POLLIN, ms)? & libc::POLLIN != 0)
}

/// `poll(2)` on one descriptor for `events`, retried when interrupted; returns `revents` (0
/// after `ms` milliseconds; -1 waits for ever).
fn poll_one(fd: BorrowedFd<'_>, events: libc::c_short, ms: libc::c_int) -> io::Result<libc::c_short> {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 };
    loop {
        // SAFETY: `pfd` is one valid pollfd and we pass a count of 1.
        let ret = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ret >= 0 {
            return Ok(if ret > 0 { pfd.revents } else { 0 });
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// What [`wait_fd`] saw.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Data (or end-of-file) can be read.
    pub readable: bool,
    /// Data can be written (only reported when asked for).
    pub writable: bool,
    /// The peer hung up or the descriptor is in error.
    pub hangup: bool,
}

/// Waits until `fd` is readable (or also writable, with `write`), or `timeout` passes. The
/// timeout is rounded up to whole milliseconds, so a short one never becomes a busy loop.
pub fn wait_fd(fd: BorrowedFd<'_>, write: bool, timeout: Duration) -> io::Result<Readiness> {
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    let events = if write { libc::POLLIN | libc::POLLOUT } else { libc::POLLIN };
    let r = poll_one(fd, events, ms)?;
    Ok(Readiness {
        readable: r & libc::POLLIN != 0,
        writable: r & libc::POLLOUT != 0,
        hangup: r & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0,
    })
}

/// Writes to a socket without ever raising SIGPIPE: a peer that went away is the error
/// `BrokenPipe`, whatever this process's signal dispositions are.
pub fn send_nosignal(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is readable for its length; MSG_NOSIGNAL is valid for stream sockets.
    let ret = unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process on the host, so timestamps
/// written by the child compare directly with the parent's.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write into; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time (user + system) this process has used so far.
pub fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write into; the clock exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Takes ownership of a descriptor inherited from the parent, after checking it is open.
/// It is marked close-on-exec again so it goes no further.
pub fn adopt_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "negative file descriptor"));
    }
    // SAFETY: F_GETFD only queries the descriptor table; an invalid fd gives EBADF.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: as above, F_SETFD with an int argument.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) })?;
    // SAFETY: the descriptor is open (checked above) and was handed to this process to own:
    // nothing else in this process refers to it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Lets `fds` survive the exec of `cmd` (they stay close-on-exec in the parent, so other
/// children spawned concurrently never inherit them).
pub fn keep_across_exec(cmd: &mut Command, fds: Vec<RawFd>) {
    // SAFETY: the closure runs between fork and exec and only calls fcntl, which is
    // async-signal-safe; it allocates nothing (the Vec was built before fork).
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn eventfd_counts_and_drains() {
        let fd = eventfd().unwrap();
        assert_eq!(eventfd_drain(fd.as_fd()).unwrap(), 0);
        assert!(!poll_readable(fd.as_fd(), Some(Duration::ZERO)).unwrap());
        eventfd_notify(fd.as_fd(), 1).unwrap();
        eventfd_notify(fd.as_fd(), 1).unwrap();
        assert!(poll_readable(fd.as_fd(), Some(Duration::ZERO)).unwrap());
        assert_eq!(eventfd_drain(fd.as_fd()).unwrap(), 2);
    }

    #[test]
    fn sockets_wait_send_and_report_a_vanished_peer() {
        use std::io::Read as _;
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let r = wait_fd(b.as_fd(), false, Duration::from_micros(10)).unwrap();
        assert_eq!(r, Readiness::default(), "nothing to read yet");
        assert!(wait_fd(b.as_fd(), true, Duration::ZERO).unwrap().writable);
        assert_eq!(send_nosignal(a.as_fd(), b"hi").unwrap(), 2);
        assert!(wait_fd(b.as_fd(), false, Duration::from_secs(1)).unwrap().readable);
        let mut buf = [0u8; 2];
        b.read_exact(&mut buf).unwrap();
        drop(b);
        let err = send_nosignal(a.as_fd(), b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "EPIPE, and this test process is still alive");
        assert!(wait_fd(a.as_fd(), false, Duration::from_secs(1)).unwrap().hangup);
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        std::thread::sleep(Duration::from_millis(2));
        assert!(monotonic_ns() >= a + 2_000_000);
    }
}
