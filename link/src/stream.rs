//! Framed control messages on a QUIC stream.

use retrofarm_proto::control::ControlMessage;
use retrofarm_proto::frame::{self, FrameDecoder};
use retrofarm_proto::DecodeError;

/// Why reading a control stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// The peer sent something that is not a valid message; the stream is closed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The stream or connection failed.
    #[error(transparent)]
    Read(#[from] quinn::ReadError),
    /// The peer finished the stream.
    #[error("stream finished by the peer")]
    Finished,
}

/// Reads framed messages from a QUIC receive stream.
#[derive(Debug)]
pub struct FramedRecv {
    recv: quinn::RecvStream,
    decoder: FrameDecoder,
}

impl FramedRecv {
    /// Wraps a receive stream.
    pub fn new(recv: quinn::RecvStream) -> Self {
        Self { recv, decoder: FrameDecoder::new() }
    }

    /// The next message.
    pub async fn recv<M: ControlMessage>(&mut self) -> Result<M, RecvError> {
        loop {
            if let Some(m) = self.decoder.decode_next::<M>()? {
                return Ok(m);
            }
            // quinn's own buffers, chunk by chunk: no read buffer of our own per connection
            // (a coordinator holds one per worker).
            match self.recv.read_chunk(usize::MAX, true).await? {
                Some(chunk) => self.decoder.push(&chunk.bytes),
                None => return Err(RecvError::Finished),
            }
        }
    }
}

/// Writes one framed message.
pub async fn send<M: ControlMessage>(send: &mut quinn::SendStream, msg: &M) -> Result<(), quinn::WriteError> {
    send.write_all(&frame::encode(msg)).await
}
