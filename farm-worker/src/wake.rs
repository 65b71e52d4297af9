//! Waiting for an emulator's "frame published" eventfd on the tokio reactor.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// Readiness of an emulator's eventfd, on our own duplicate of the descriptor.
pub struct FrameWake(AsyncFd<OwnedFd>);

impl FrameWake {
    /// Registers a duplicate of `fd` with the reactor.
    pub fn new(fd: BorrowedFd<'_>) -> io::Result<Self> {
        let owned = fd.try_clone_to_owned()?;
        // SAFETY: `owned` is a descriptor this value owns exclusively; it stays open and refers
        // to the same eventfd until the AsyncFd (which holds it) is dropped.
        let afd = unsafe { AsyncFd::register(owned) }.map_err(|e| e.into_parts().1)?;
        Ok(Self(afd))
    }

    /// Waits until the eventfd is readable (the caller drains it), then re-arms.
    pub async fn wait(&self) -> io::Result<()> {
        let mut guard = self.0.readable().await?;
        guard.clear_ready();
        Ok(())
    }
}
