//! The child's end of the control channel: never blocks the emulation loop.
//!
//! [`Server::serve`] is called once per loop iteration, between frames: it reads whatever the
//! parent has sent, answers every complete request in order and sends as much of the answers
//! as the socket takes now; the rest goes out on later calls. [`Server::wait`] replaces the
//! pacing sleep, so requests (and large answers) move while the loop would otherwise idle.

use std::io::{self, Read as _};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::wire::{self, FrameBuffer, Reply, Request};
use crate::sys;

/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 << 10;
/// An idle outbox larger than this is freed rather than kept for the next answer.
const KEEP_OUTBOX: usize = 4 << 20;

/// The child's end of the control channel.
#[derive(Debug)]
pub struct Server {
    stream: Option<UnixStream>,
    frames: FrameBuffer,
    outbox: Vec<u8>,
    sent: usize,
    scratch: Vec<u8>,
}

impl Server {
    /// Takes the child's end of the socket pair and makes it non-blocking.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        let stream = UnixStream::from(fd);
        stream.set_nonblocking(true)?;
        Ok(Self { stream: Some(stream), frames: FrameBuffer::new(), outbox: Vec::new(), sent: 0, scratch: Vec::new() })
    }

    /// Whether the channel is still usable (the parent has not closed it, no protocol error).
    pub fn is_open(&self) -> bool {
        self.stream.is_some()
    }

    /// Answer bytes not yet taken by the socket.
    pub fn unsent(&self) -> usize {
        self.outbox.len() - self.sent
    }

    fn close(&mut self, why: &str) {
        if self.stream.take().is_some() {
            // The parent reads our stderr; tracing has no subscriber in the child.
            eprintln!("retrofarm-emulator: control channel closed: {why}");
            tracing::info!("control channel closed: {why}");
        }
        self.frames = FrameBuffer::new();
        self.outbox = Vec::new();
        self.sent = 0;
    }

    /// Reads what has arrived, answers each complete request with `answer` (in order) and
    /// sends what the socket takes. Never blocks. After the parent closes the channel (or
    /// sends something unreadable) the channel is closed and this does nothing.
    pub fn serve(&mut self, mut answer: impl FnMut(Request) -> Reply) {
        if self.stream.is_none() {
            return;
        }
        self.flush();
        self.read_available();
        loop {
            let payload = match self.frames.next_payload() {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => return self.close(&format!("the parent sent an unreadable frame: {e}")),
            };
            let (id, reply) = match wire::decode::<Request>(&payload) {
                Ok((id, request)) => (id, answer(request)),
                // Frames are intact: answer just this one, so the parent learns why.
                Err(e) => match wire::payload_id(&payload) {
                    Some(id) => (id, Reply::Failed(format!("the emulator cannot read this request: {e}"))),
                    None => return self.close(&format!("the parent sent an unreadable request: {e}")),
                },
            };
            let frame = wire::encode(id, &reply)
                .or_else(|e| wire::encode(id, &Reply::Failed(format!("the emulator cannot send its answer: {e}"))));
            match frame {
                Ok(f) => self.outbox.extend_from_slice(&f),
                Err(e) => return self.close(&format!("cannot encode an answer: {e}")),
            }
        }
        self.flush();
    }

    fn read_available(&mut self) {
        self.scratch.resize(READ_CHUNK, 0);
        while let Some(stream) = &mut self.stream {
            match stream.read(&mut self.scratch) {
                Ok(0) => return self.close("the parent closed it"),
                Ok(n) => self.frames.push(&self.scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(&format!("read failed: {e}")),
            }
        }
    }

    fn flush(&mut self) {
        while let Some(stream) = &self.stream {
            if self.sent == self.outbox.len() {
                break;
            }
            match sys::send_nosignal(stream.as_fd(), &self.outbox[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(&format!("send failed: {e}")),
            }
        }
        if self.sent == self.outbox.len() {
            self.sent = 0;
            self.outbox.clear();
            if self.outbox.capacity() > KEEP_OUTBOX {
                self.outbox = Vec::new();
            }
        }
    }

    /// Sleeps up to `timeout`, waking early when the parent sends something (or when pending
    /// answers can move). A closed channel just sleeps, so the loop never spins on it.
    pub fn wait(&self, timeout: Duration) {
        let Some(stream) = &self.stream else {
            return std::thread::sleep(timeout);
        };
        if sys::wait_fd(stream.as_fd(), self.unsent() > 0, timeout).is_err() {
            std::thread::sleep(timeout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::time::Instant;

    fn pair() -> (Server, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (Server::new(OwnedFd::from(theirs)).unwrap(), ours)
    }

    fn read_reply(parent: &mut UnixStream) -> (u32, Reply) {
        parent.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut len = [0u8; 4];
        parent.read_exact(&mut len).unwrap();
        let mut payload = vec![0u8; u32::from_le_bytes(len) as usize];
        parent.read_exact(&mut payload).unwrap();
        wire::decode(&payload).unwrap()
    }

    #[test]
    fn answers_requests_in_order_and_never_blocks() {
        let (mut server, mut parent) = pair();
        let t = Instant::now();
        server.serve(|_| panic!("nothing was sent"));
        assert!(t.elapsed() < Duration::from_millis(100));
        let mut bytes = wire::encode(7, &Request::Save).unwrap();
        bytes.extend(wire::encode(8, &Request::Reset).unwrap());
        let third = wire::encode(9, &Request::Load { state: Some(vec![1; 100]), sram: None }).unwrap();
        bytes.extend_from_slice(&third[..10]);
        parent.write_all(&bytes).unwrap();
        let mut seen = Vec::new();
        server.serve(|r| {
            seen.push(r.clone());
            match r {
                Request::Save => Reply::Saved { state: Some(vec![3]), sram: None },
                _ => Reply::Done,
            }
        });
        assert_eq!(seen, vec![Request::Save, Request::Reset], "half a frame waits for the rest");
        assert_eq!(read_reply(&mut parent), (7, Reply::Saved { state: Some(vec![3]), sram: None }));
        assert_eq!(read_reply(&mut parent), (8, Reply::Done));
        parent.write_all(&third[10..]).unwrap();
        server.wait(Duration::from_secs(5));
        server.serve(|r| {
            assert!(matches!(r, Request::Load { .. }));
            Reply::Loaded
        });
        assert_eq!(read_reply(&mut parent), (9, Reply::Loaded));
    }

    #[test]
    fn large_answers_go_out_over_several_calls() {
        let (mut server, mut parent) = pair();
        parent.write_all(&wire::encode(1, &Request::Save).unwrap()).unwrap();
        let big = vec![0xa5u8; 8 << 20];
        let answer = big.clone();
        server.serve(move |_| Reply::Saved { state: Some(answer.clone()), sram: None });
        assert!(server.unsent() > 0, "8 MiB does not fit a socket buffer");
        let reader = std::thread::spawn(move || read_reply(&mut parent));
        let end = Instant::now() + Duration::from_secs(20);
        while server.unsent() > 0 {
            assert!(Instant::now() < end);
            server.wait(Duration::from_millis(50));
            server.serve(|_| unreachable!());
        }
        assert_eq!(reader.join().unwrap(), (1, Reply::Saved { state: Some(big), sram: None }));
    }

    #[test]
    fn unreadable_requests_get_an_explanation() {
        let (mut server, mut parent) = pair();
        let mut frame = vec![5, 0, 0, 0, 0x7e];
        frame.extend(33u32.to_le_bytes());
        parent.write_all(&frame).unwrap();
        server.serve(|_| unreachable!());
        match read_reply(&mut parent) {
            (33, Reply::Failed(why)) => assert!(why.contains("unknown control message tag"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(server.is_open());
        parent.write_all(&(wire::MAX_FRAME_LEN + 1).to_le_bytes()).unwrap();
        server.serve(|_| unreachable!());
        assert!(!server.is_open(), "an oversized frame cannot be skipped: the channel closes");
    }

    #[test]
    fn a_parent_that_goes_away_is_not_a_busy_loop() {
        let (mut server, parent) = pair();
        drop(parent);
        server.serve(|_| unreachable!());
        assert!(!server.is_open());
        // Closed: wait sleeps for its whole timeout instead of returning at once.
        let t = Instant::now();
        for _ in 0..5 {
            server.wait(Duration::from_millis(10));
            server.serve(|_| unreachable!());
        }
        assert!(t.elapsed() >= Duration::from_millis(50));
    }
}
