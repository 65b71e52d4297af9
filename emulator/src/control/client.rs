//! The parent's end of the control channel: one request at a time, each with a deadline.

use std::io::{self, Read as _};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use super::wire::{self, FrameBuffer, Reply, Request, WireError};
use crate::sys;

/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 << 10;

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The deadline passed first.
    #[error("no answer in time")]
    Timeout,
    /// The child closed its end: it exited, or dropped the channel.
    #[error("the emulator closed the control channel")]
    Closed,
    /// The socket failed.
    #[error("control channel I/O: {0}")]
    Io(#[from] io::Error),
    /// The request could not be encoded (too large).
    #[error(transparent)]
    Encode(WireError),
    /// The child's answer made no sense.
    #[error("unreadable answer from the emulator: {0}")]
    Decode(WireError),
    /// An earlier failure left the stream out of step; nothing more can be said on it.
    #[error("the control channel is unusable since an earlier failure ({0})")]
    Broken(String),
}

/// The parent's end of the control channel. Not shared: callers serialise access.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    frames: FrameBuffer,
    next_id: u32,
    broken: Option<String>,
    scratch: Vec<u8>,
}

impl Client {
    /// Takes the parent's end of the socket pair and makes it non-blocking.
    pub fn new(stream: UnixStream) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Self { stream, frames: FrameBuffer::new(), next_id: 1, broken: None, scratch: Vec::new() })
    }

    fn fail(&mut self, why: impl Into<String>, err: CallError) -> CallError {
        self.broken.get_or_insert_with(|| why.into());
        err
    }

    /// Sends `request` and waits until `deadline` for its answer. Late answers to earlier
    /// requests that timed out are recognised by their id and dropped.
    pub fn call(&mut self, request: &Request, deadline: Instant) -> Result<Reply, CallError> {
        if let Some(why) = &self.broken {
            return Err(CallError::Broken(why.clone()));
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let frame = wire::encode(id, request).map_err(CallError::Encode)?;
        self.send(&frame, deadline)?;
        self.receive(id, deadline)
    }

    fn send(&mut self, frame: &[u8], deadline: Instant) -> Result<(), CallError> {
        let mut sent = 0;
        while sent < frame.len() {
            match sys::send_nosignal(self.stream.as_fd(), &frame[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let now = Instant::now();
                    if now >= deadline {
                        if sent > 0 {
                            return Err(self.fail("a request was cut off by a timeout", CallError::Timeout));
                        }
                        return Err(CallError::Timeout);
                    }
                    sys::wait_fd(self.stream.as_fd(), true, deadline - now)?;
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset) => {
                    return Err(self.fail("the emulator closed it", CallError::Closed));
                }
                Err(e) => return Err(self.fail(format!("send failed: {e}"), CallError::Io(e))),
            }
        }
        Ok(())
    }

    fn receive(&mut self, id: u32, deadline: Instant) -> Result<Reply, CallError> {
        self.scratch.resize(READ_CHUNK, 0);
        loop {
            while let Some(payload) = self.next_payload()? {
                match wire::decode::<Reply>(&payload) {
                    Ok((got, reply)) if got == id => return Ok(reply),
                    Ok((got, _)) => tracing::debug!(got, id, "dropping a late answer to an earlier control request"),
                    // Frame boundaries are intact: the channel stays usable.
                    Err(e) if wire::payload_id(&payload) == Some(id) => return Err(CallError::Decode(e)),
                    Err(e) => tracing::debug!(id, "dropping an unreadable late answer: {e}"),
                }
            }
            match self.stream.read(&mut self.scratch) {
                Ok(0) => return Err(self.fail("the emulator closed it", CallError::Closed)),
                Ok(n) => self.frames.push(&self.scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(CallError::Timeout);
                    }
                    sys::wait_fd(self.stream.as_fd(), false, deadline - now)?;
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(self.fail("the emulator closed it", CallError::Closed));
                }
                Err(e) => return Err(self.fail(format!("read failed: {e}"), CallError::Io(e))),
            }
        }
    }

    fn next_payload(&mut self) -> Result<Option<Vec<u8>>, CallError> {
        self.frames.next_payload().map_err(|e| {
            let why = format!("unreadable frame: {e}");
            self.fail(why, CallError::Decode(e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::serve::Server;
    use std::os::fd::OwnedFd;
    use std::time::Duration;

    fn pair() -> (Client, Server) {
        let (a, b) = UnixStream::pair().unwrap();
        (Client::new(a).unwrap(), Server::new(OwnedFd::from(b)).unwrap())
    }

    /// Runs a server answering with `answer` on a thread until `client_fn` returns.
    fn with_server<R>(
        server: Server,
        answer: impl FnMut(Request) -> Reply + Send + 'static,
        client_fn: impl FnOnce() -> R,
    ) -> R {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let t = std::thread::spawn(move || {
            let (mut server, mut answer) = (server, answer);
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                server.wait(Duration::from_millis(5));
                server.serve(&mut answer);
            }
        });
        let r = client_fn();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        t.join().unwrap();
        r
    }

    #[test]
    fn calls_get_their_answers() {
        let (mut client, server) = pair();
        let reply = with_server(
            server,
            |r| match r {
                Request::Save => Reply::Saved { state: Some(vec![1, 2]), sram: Some(vec![3]) },
                Request::Load { .. } => Reply::Failed("no".into()),
                Request::Reset => Reply::Done,
            },
            || {
                let d = || Instant::now() + Duration::from_secs(5);
                assert_eq!(client.call(&Request::Reset, d()).unwrap(), Reply::Done);
                assert_eq!(
                    client.call(&Request::Load { state: None, sram: None }, d()).unwrap(),
                    Reply::Failed("no".into())
                );
                client.call(&Request::Save, d()).unwrap()
            },
        );
        assert_eq!(reply, Reply::Saved { state: Some(vec![1, 2]), sram: Some(vec![3]) });
    }

    #[test]
    fn a_late_answer_is_dropped_not_taken_for_the_next() {
        let (mut client, mut server) = pair();
        let err = client.call(&Request::Save, Instant::now() + Duration::from_millis(20)).unwrap_err();
        assert!(matches!(err, CallError::Timeout), "{err:?}");
        // The server finally answers the first request, then the second.
        let mut n = 0;
        let mut answer = move |_| {
            n += 1;
            Reply::Saved { state: Some(vec![n]), sram: None }
        };
        server.serve(&mut answer);
        let reply =
            with_server(server, answer, || client.call(&Request::Save, Instant::now() + Duration::from_secs(5)));
        assert_eq!(reply.unwrap(), Reply::Saved { state: Some(vec![2]), sram: None });
    }

    #[test]
    fn a_closed_channel_is_reported_at_once() {
        let (mut client, server) = pair();
        drop(server);
        let t = Instant::now();
        let err = client.call(&Request::Reset, Instant::now() + Duration::from_secs(10)).unwrap_err();
        assert!(matches!(err, CallError::Closed), "{err:?}");
        assert!(t.elapsed() < Duration::from_secs(1));
        let err = client.call(&Request::Reset, Instant::now() + Duration::from_secs(10)).unwrap_err();
        assert!(matches!(err, CallError::Broken(_)), "{err:?}");
        assert!(err.to_string().contains("closed"), "{err}");
    }

    #[test]
    fn oversized_requests_are_refused_before_sending() {
        let (mut client, _server) = pair();
        let big = Request::Load { state: Some(vec![0; wire::MAX_FRAME_LEN as usize]), sram: None };
        let err = client.call(&big, Instant::now() + Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, CallError::Encode(WireError::TooLarge { .. })), "{err:?}");
        assert!(client.broken.is_none(), "nothing was sent: the channel is still usable");
    }
}
