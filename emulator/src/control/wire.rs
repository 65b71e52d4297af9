//! The control channel's wire format, free of I/O.
//!
//! A stream of frames, each `len: u32 LE` followed by `len` payload bytes (at most
//! [`MAX_FRAME_LEN`]). A payload is one message:
//!
//! ```text
//! payload = tag: u8 | id: u32 LE | body
//! bytes?  = 0x00                                (absent)
//!         | 0x01 | len: u32 LE | len bytes     (present)
//! string  = len: u32 LE | len bytes of UTF-8
//!
//! requests (parent → child)           replies (child → parent, same id as the request)
//!   0x01 Save   (no body)               0x81 Saved  state: bytes? | sram: bytes?
//!   0x02 Load   state: bytes? | sram: bytes?   0x82 Loaded (no body)
//!   0x03 Reset  (no body)               0x83 Done   (no body)
//!                                       0x84 Failed reason: string
//! ```
//!
//! The child answers requests one by one, in order, echoing each request's id, so a parent that
//! gave up waiting can recognise (and drop) a late answer.

use std::fmt;

/// The largest payload a frame may carry (64 MiB): far above any console's save state, small
/// enough that a corrupt length cannot make either side allocate without bound.
pub const MAX_FRAME_LEN: u32 = 64 << 20;

/// Bytes before the payload.
const LEN_BYTES: usize = 4;

/// A game's saved progress: the core's serialized state and its battery RAM.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GameSave {
    /// `retro_serialize` output (None: the core cannot save states).
    pub state: Option<Vec<u8>>,
    /// The battery-backed save RAM (None: the game has none).
    pub sram: Option<Vec<u8>>,
}

impl fmt::Debug for GameSave {
    // Lengths, not megabytes of bytes in the logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GameSave")
            .field("state_len", &self.state.as_ref().map(Vec::len))
            .field("sram_len", &self.sram.as_ref().map(Vec::len))
            .finish()
    }
}

/// Parent → child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Answer with [`Reply::Saved`].
    Save,
    /// Restore battery RAM and/or state; answer [`Reply::Loaded`] or [`Reply::Failed`].
    Load {
        /// A state from [`Reply::Saved`].
        state: Option<Vec<u8>>,
        /// Battery RAM, exactly the core's size.
        sram: Option<Vec<u8>>,
    },
    /// `retro_reset`; answer [`Reply::Done`].
    Reset,
}

/// Child → parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The answer to [`Request::Save`].
    Saved {
        /// The serialized state, if the core can save states.
        state: Option<Vec<u8>>,
        /// The battery RAM, if the game has any.
        sram: Option<Vec<u8>>,
    },
    /// A load succeeded.
    Loaded,
    /// A reset (or another command without a result) is done.
    Done,
    /// The request was not carried out; the game runs on as before. The text is for people.
    Failed(String),
}

/// Why bytes are not a valid frame or message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A frame announced (or a message would need) more than [`MAX_FRAME_LEN`] bytes.
    #[error("a control message of {len} bytes exceeds the {MAX_FRAME_LEN}-byte (64 MiB) limit")]
    TooLarge {
        /// The length announced or needed.
        len: u64,
    },
    /// The payload ended early.
    #[error("control message truncated: needed {needed} more bytes at offset {at}")]
    Truncated {
        /// Where the missing bytes start.
        at: usize,
        /// How many were missing.
        needed: usize,
    },
    /// A tag neither side of this version knows (or one meant for the other direction).
    #[error("unknown control message tag {tag:#04x} (parent and child from different builds?)")]
    UnknownTag {
        /// The tag.
        tag: u8,
    },
    /// An optional field's presence flag was neither 0 nor 1.
    #[error("bad presence flag {0:#04x} in a control message")]
    BadFlag(u8),
    /// Failed's reason was not UTF-8.
    #[error("control message text is not UTF-8")]
    BadText,
    /// Bytes left over after the message.
    #[error("{0} unexpected bytes after a control message")]
    Trailing(usize),
}

/// A message type that travels on the channel.
pub trait Message: Sized {
    /// The message's tag byte.
    fn tag(&self) -> u8;
    /// Appends the body (after tag and id).
    fn encode_body(&self, out: &mut Vec<u8>);
    /// Upper bound of the body's encoded length.
    fn body_len(&self) -> u64;
    /// Decodes a body for `tag`.
    fn decode_body(tag: u8, r: &mut Reader<'_>) -> Result<Self, WireError>;
}

fn opt_len(b: &Option<Vec<u8>>) -> u64 {
    1 + b.as_ref().map_or(0, |b| 4 + b.len() as u64)
}

fn put_opt(out: &mut Vec<u8>, b: &Option<Vec<u8>>) {
    match b {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
    }
}

impl Message for Request {
    fn tag(&self) -> u8 {
        match self {
            Request::Save => 0x01,
            Request::Load { .. } => 0x02,
            Request::Reset => 0x03,
        }
    }
    fn body_len(&self) -> u64 {
        match self {
            Request::Load { state, sram } => opt_len(state) + opt_len(sram),
            Request::Save | Request::Reset => 0,
        }
    }
    fn encode_body(&self, out: &mut Vec<u8>) {
        if let Request::Load { state, sram } = self {
            put_opt(out, state);
            put_opt(out, sram);
        }
    }
    fn decode_body(tag: u8, r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match tag {
            0x01 => Request::Save,
            0x02 => Request::Load { state: r.opt_bytes()?, sram: r.opt_bytes()? },
            0x03 => Request::Reset,
            tag => return Err(WireError::UnknownTag { tag }),
        })
    }
}

impl Message for Reply {
    fn tag(&self) -> u8 {
        match self {
            Reply::Saved { .. } => 0x81,
            Reply::Loaded => 0x82,
            Reply::Done => 0x83,
            Reply::Failed(_) => 0x84,
        }
    }
    fn body_len(&self) -> u64 {
        match self {
            Reply::Saved { state, sram } => opt_len(state) + opt_len(sram),
            Reply::Failed(reason) => 4 + reason.len() as u64,
            Reply::Loaded | Reply::Done => 0,
        }
    }
    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Saved { state, sram } => {
                put_opt(out, state);
                put_opt(out, sram);
            }
            Reply::Failed(reason) => {
                out.extend_from_slice(&(reason.len() as u32).to_le_bytes());
                out.extend_from_slice(reason.as_bytes());
            }
            Reply::Loaded | Reply::Done => {}
        }
    }
    fn decode_body(tag: u8, r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match tag {
            0x81 => Reply::Saved { state: r.opt_bytes()?, sram: r.opt_bytes()? },
            0x82 => Reply::Loaded,
            0x83 => Reply::Done,
            0x84 => Reply::Failed(String::from_utf8(r.bytes()?.to_vec()).map_err(|_| WireError::BadText)?),
            tag => return Err(WireError::UnknownTag { tag }),
        })
    }
}

/// Encodes `msg` with `id` as one complete frame (length prefix included).
pub fn encode<M: Message>(id: u32, msg: &M) -> Result<Vec<u8>, WireError> {
    let len = 1 + 4 + msg.body_len();
    if len > u64::from(MAX_FRAME_LEN) {
        return Err(WireError::TooLarge { len });
    }
    let mut out = Vec::with_capacity(LEN_BYTES + len as usize);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.push(msg.tag());
    out.extend_from_slice(&id.to_le_bytes());
    msg.encode_body(&mut out);
    debug_assert_eq!(out.len(), LEN_BYTES + len as usize);
    Ok(out)
}

/// The id of a payload, if it is long enough to have one (to answer even an undecodable
/// request).
pub fn payload_id(payload: &[u8]) -> Option<u32> {
    payload.get(1..5).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
}

/// Decodes one payload (a frame without its length prefix) into its id and message.
pub fn decode<M: Message>(payload: &[u8]) -> Result<(u32, M), WireError> {
    let mut r = Reader { data: payload, at: 0 };
    let tag = r.take(1)?[0];
    let id = r.u32()?;
    let msg = M::decode_body(tag, &mut r)?;
    match payload.len() - r.at {
        0 => Ok((id, msg)),
        n => Err(WireError::Trailing(n)),
    }
}

/// A cursor over a payload.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let have = self.data.len() - self.at;
        if have < n {
            return Err(WireError::Truncated { at: self.at, needed: n - have });
        }
        let s = &self.data[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    /// `len: u32 LE` then that many bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u32()?;
        self.take(n as usize)
    }

    /// A presence flag, then [`Self::bytes`] if present.
    pub fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        match self.take(1)?[0] {
            0 => Ok(None),
            1 => Ok(Some(self.bytes()?.to_vec())),
            f => Err(WireError::BadFlag(f)),
        }
    }
}

/// Reassembles frames from a byte stream that arrives in arbitrary pieces.
#[derive(Debug, Default)]
pub struct FrameBuffer {
    buf: Vec<u8>,
}

impl FrameBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that are not yet a complete frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete payload, None if more bytes are needed. An oversized length is an
    /// error as soon as its prefix arrives; the stream cannot be resynchronised after that.
    pub fn next_payload(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        let Some(prefix) = self.buf.get(..LEN_BYTES) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(prefix.try_into().expect("4 bytes"));
        if len > MAX_FRAME_LEN {
            return Err(WireError::TooLarge { len: u64::from(len) });
        }
        let end = LEN_BYTES + len as usize;
        if self.buf.len() < end {
            self.buf.reserve(end - self.buf.len());
            return Ok(None);
        }
        let payload = self.buf[LEN_BYTES..end].to_vec();
        self.buf.drain(..end);
        Ok(Some(payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<M: Message + PartialEq + fmt::Debug>(id: u32, msg: M) {
        let frame = encode(id, &msg).unwrap();
        let mut fb = FrameBuffer::new();
        // Byte by byte: the reassembly must not care how the stream is cut.
        for (i, b) in frame.iter().enumerate() {
            assert_eq!(fb.next_payload().unwrap(), None, "complete after only {i} bytes");
            fb.push(std::slice::from_ref(b));
        }
        let payload = fb.next_payload().unwrap().expect("a whole frame");
        assert_eq!(fb.pending(), 0);
        assert_eq!(payload_id(&payload), Some(id));
        assert_eq!(decode::<M>(&payload).unwrap(), (id, msg));
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(1, Request::Save);
        round_trip(2, Request::Reset);
        round_trip(3, Request::Load { state: Some(vec![1, 2, 3]), sram: None });
        round_trip(4, Request::Load { state: None, sram: Some(vec![0xff; 300]) });
        round_trip(u32::MAX, Request::Load { state: Some(Vec::new()), sram: Some(vec![9]) });
        round_trip(5, Reply::Saved { state: Some(vec![7; 1000]), sram: Some(vec![8; 8192]) });
        round_trip(6, Reply::Saved { state: None, sram: None });
        round_trip(7, Reply::Loaded);
        round_trip(8, Reply::Done);
        round_trip(9, Reply::Failed("the core refused the saved state — ü".into()));
    }

    #[test]
    fn frames_arriving_together_come_out_one_by_one() {
        let mut fb = FrameBuffer::new();
        let mut stream = encode(1, &Request::Save).unwrap();
        stream.extend(encode(2, &Request::Reset).unwrap());
        let third = encode(3, &Request::Load { state: Some(vec![5; 10]), sram: None }).unwrap();
        stream.extend_from_slice(&third[..7]);
        fb.push(&stream);
        assert_eq!(decode::<Request>(&fb.next_payload().unwrap().unwrap()).unwrap(), (1, Request::Save));
        assert_eq!(decode::<Request>(&fb.next_payload().unwrap().unwrap()).unwrap(), (2, Request::Reset));
        assert_eq!(fb.next_payload().unwrap(), None);
        fb.push(&third[7..]);
        let (id, _) = decode::<Request>(&fb.next_payload().unwrap().unwrap()).unwrap();
        assert_eq!(id, 3);
    }

    #[test]
    fn truncated_payloads_are_refused() {
        let frame = encode(4, &Reply::Saved { state: Some(vec![1; 16]), sram: Some(vec![2; 4]) }).unwrap();
        let payload = &frame[4..];
        for cut in 0..payload.len() {
            match decode::<Reply>(&payload[..cut]) {
                Err(WireError::Truncated { .. }) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        let mut long = payload.to_vec();
        long.push(0);
        assert_eq!(decode::<Reply>(&long), Err(WireError::Trailing(1)));
    }

    #[test]
    fn oversized_lengths_are_refused_early() {
        let mut fb = FrameBuffer::new();
        fb.push(&(MAX_FRAME_LEN + 1).to_le_bytes());
        let err = fb.next_payload().unwrap_err();
        assert_eq!(err, WireError::TooLarge { len: u64::from(MAX_FRAME_LEN) + 1 });
        assert!(err.to_string().contains("64 MiB"), "{err}");
        let mut fb = FrameBuffer::new();
        fb.push(&MAX_FRAME_LEN.to_le_bytes());
        assert_eq!(fb.next_payload().unwrap(), None, "exactly the limit is fine, just incomplete");
        let big = Request::Load { state: Some(vec![0; MAX_FRAME_LEN as usize]), sram: None };
        assert!(matches!(encode(1, &big), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn unknown_tags_and_flags_are_refused() {
        let mut p = vec![0x7f];
        p.extend(42u32.to_le_bytes());
        assert_eq!(decode::<Request>(&p), Err(WireError::UnknownTag { tag: 0x7f }));
        assert_eq!(payload_id(&p), Some(42), "the id is readable even when the tag is not");
        // A reply tag is not a request.
        let reply = encode(1, &Reply::Done).unwrap();
        assert_eq!(decode::<Request>(&reply[4..]), Err(WireError::UnknownTag { tag: 0x83 }));
        let mut p = vec![0x02];
        p.extend(1u32.to_le_bytes());
        p.push(2);
        assert_eq!(decode::<Request>(&p), Err(WireError::BadFlag(2)));
        let mut p = vec![0x84];
        p.extend(1u32.to_le_bytes());
        p.extend(2u32.to_le_bytes());
        p.extend([0xff, 0xfe]);
        assert_eq!(decode::<Reply>(&p), Err(WireError::BadText));
        assert!(matches!(decode::<Reply>(&[]), Err(WireError::Truncated { .. })));
    }

    #[test]
    fn game_saves_print_lengths_not_bytes() {
        let s = GameSave { state: Some(vec![0; 5000]), sram: None };
        assert_eq!(format!("{s:?}"), "GameSave { state_len: Some(5000), sram_len: None }");
    }
}
