//! The encoder pool's wake-ups: an epoll set of the emulators' "frame published" eventfds, on
//! which idle pool threads block, and a kick eventfd that wakes them for queued work.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use retrofarm_emulator::{eventfd, eventfd_drain, eventfd_notify};

/// Token of the kick eventfd; frame sources get tokens from 1 up.
pub const KICK: u64 = 0;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// An epoll instance with a kick eventfd registered under [`KICK`].
#[derive(Debug)]
pub struct WakeSet {
    epoll: OwnedFd,
    kick: OwnedFd,
}

impl WakeSet {
    /// A new set holding only the kick.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain system call with valid flags.
        let ep = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: epoll_create1 returned a fresh descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(ep) };
        let set = Self { epoll, kick: eventfd()? };
        // Level-triggered: every idle thread sees a kick until one of them drains it.
        set.ctl(libc::EPOLL_CTL_ADD, set.kick.as_fd(), libc::EPOLLIN as u32, KICK)?;
        Ok(set)
    }

    fn ctl(&self, op: libc::c_int, fd: BorrowedFd<'_>, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: both descriptors are open for the duration of the call; `ev` is a valid
        // epoll_event (ignored by EPOLL_CTL_DEL).
        cvt(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd.as_raw_fd(), &mut ev) })?;
        Ok(())
    }

    /// Watches `fd` (an eventfd) for readability under `token`, edge-triggered: every write to
    /// it is one wake-up, whether or not the reader drained the counter.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        debug_assert_ne!(token, KICK);
        self.ctl(libc::EPOLL_CTL_ADD, fd, (libc::EPOLLIN | libc::EPOLLET) as u32, token)
    }

    /// Stops watching `fd`.
    pub fn remove(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Wakes one or more threads blocked in [`WakeSet::wait`].
    pub fn kick(&self) {
        // Writing an open eventfd cannot fail but for a full counter, which is a pending kick.
        let _ = eventfd_notify(self.kick.as_fd(), 1);
    }

    /// Waits up to `timeout` (`None`: until something happens) and appends the tokens that
    /// became ready to `tokens`. A pending kick is consumed here and reported as [`KICK`].
    pub fn wait(&self, timeout: Option<Duration>, tokens: &mut Vec<u64>) -> io::Result<()> {
        const MAX: usize = 64;
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; MAX];
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as libc::c_int);
        // SAFETY: `evs` has room for MAX events; the epoll descriptor is open.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), evs.as_mut_ptr(), MAX as libc::c_int, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(e) };
        }
        for ev in &evs[..n as usize] {
            let token = ev.u64;
            if token == KICK {
                // A kick another thread drained first reads as 0.
                eventfd_drain(self.kick.as_fd())?;
            }
            tokens.push(token);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(fd: &OwnedFd) {
        eventfd_notify(fd.as_fd(), 1).unwrap();
    }

    #[test]
    fn reports_each_write_once_and_kicks() {
        let set = WakeSet::new().unwrap();
        let (a, b) = (eventfd().unwrap(), eventfd().unwrap());
        set.add(a.as_fd(), 1).unwrap();
        set.add(b.as_fd(), 2).unwrap();
        let mut got = vec![];
        set.wait(Some(Duration::ZERO), &mut got).unwrap();
        assert!(got.is_empty());
        write(&a);
        write(&b);
        set.wait(Some(Duration::ZERO), &mut got).unwrap();
        got.sort();
        assert_eq!(got, vec![1, 2]);
        // Edge-triggered: undrained, but no new write, no new wake-up.
        got.clear();
        set.wait(Some(Duration::ZERO), &mut got).unwrap();
        assert!(got.is_empty());
        write(&a);
        set.kick();
        set.wait(Some(Duration::from_secs(1)), &mut got).unwrap();
        got.sort();
        assert_eq!(got, vec![KICK, 1]);
        // The kick was consumed; a removed fd is silent.
        got.clear();
        set.remove(a.as_fd()).unwrap();
        write(&a);
        set.wait(Some(Duration::ZERO), &mut got).unwrap();
        assert!(got.is_empty());
    }
}
