//! Length-prefixed framing for control streams: a 4-byte big-endian length, then the body.
//!
//! [`FrameDecoder`] is sans-IO: push whatever bytes arrived, pull complete messages.

use crate::control::{ControlMessage, MAX_CONTROL_MESSAGE};
use crate::DecodeError;

/// Encodes `msg` as one frame.
pub fn encode<M: ControlMessage>(msg: &M) -> Vec<u8> {
    let body = msg.encode();
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reassembles frames from a byte stream.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    ///
    /// An oversized length is an error as soon as the prefix arrives, before its body is
    /// buffered. After an error the stream is out of sync and must be closed.
    pub fn decode_next<M: ControlMessage>(&mut self) -> Result<Option<M>, DecodeError> {
        let Some(prefix) = self.buf.get(..4) else { return Ok(None) };
        let len = u32::from_be_bytes(prefix.try_into().expect("4 bytes")) as usize;
        if len > MAX_CONTROL_MESSAGE {
            return Err(DecodeError::TooLarge { len, max: MAX_CONTROL_MESSAGE });
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let msg = M::decode(&self.buf[4..4 + len]);
        self.buf.drain(..4 + len);
        msg.map(Some)
    }

    /// Bytes buffered but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{CoordMsg, Load, WorkerMsg};
    use proptest::prelude::*;

    #[test]
    fn frames_split_anywhere_reassemble() {
        let msgs = vec![
            WorkerMsg::Heartbeat { load: Load { rooms: 1, sessions: 1, free: 9 } },
            WorkerMsg::Heartbeat { load: Load::default() },
        ];
        let wire: Vec<u8> = msgs.iter().flat_map(encode).collect();
        for split in 0..wire.len() {
            let mut d = FrameDecoder::new();
            let mut out = vec![];
            d.push(&wire[..split]);
            while let Some(m) = d.decode_next::<WorkerMsg>().unwrap() {
                out.push(m);
            }
            d.push(&wire[split..]);
            while let Some(m) = d.decode_next::<WorkerMsg>().unwrap() {
                out.push(m);
            }
            assert_eq!(out, msgs);
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn oversized_frame_is_refused_before_buffering() {
        let mut d = FrameDecoder::new();
        d.push(&(MAX_CONTROL_MESSAGE as u32 + 1).to_be_bytes());
        assert!(matches!(d.decode_next::<CoordMsg>(), Err(DecodeError::TooLarge { .. })));
    }

    #[test]
    fn garbage_body_is_malformed() {
        let mut d = FrameDecoder::new();
        d.push(&3u32.to_be_bytes());
        d.push(b"{{{");
        assert!(matches!(d.decode_next::<CoordMsg>(), Err(DecodeError::Malformed(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut d = FrameDecoder::new();
            d.push(&bytes);
            for _ in 0..8 {
                match d.decode_next::<WorkerMsg>() {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
        }
    }
}
