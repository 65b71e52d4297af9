//! The worker ⇄ coordinator link: length-prefixed frames (`proto::frame::FrameDecoder`, what
//! `retrofarm_link::stream::FramedRecv` runs on every QUIC read) carrying JSON control
//! messages (`CoordMsg` read by workers, `WorkerMsg` read by the coordinator).
//!
//! Input: byte 0 picks the direction (bit 0) and how the stream is cut into reads (the rest);
//! the remaining bytes are the stream.
//!
//! Properties: no panic; the messages and the error that come out do not depend on how the
//! stream was cut; nothing is decoded after an error (the stream is closed); each decoded
//! message encodes to a frame that decodes to it again; errors say something.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retrofarm_fuzz::{check_error, pieces};
use retrofarm_proto::control::{ControlMessage, CoordMsg, WorkerMsg, MAX_CONTROL_MESSAGE};
use retrofarm_proto::frame::{self, FrameDecoder};
use retrofarm_proto::DecodeError;
use std::fmt::Debug;

/// Feeds the stream in `reads`, decoding after each as `FramedRecv::recv` does; stops at the
/// first error. Returns the messages, the error if any, and the bytes left buffered.
fn run<M: ControlMessage + Debug>(reads: &[&[u8]]) -> (Vec<M>, Option<DecodeError>) {
    let mut d = FrameDecoder::new();
    let mut out = Vec::new();
    let mut pushed = 0usize;
    for r in reads {
        d.push(r);
        pushed += r.len();
        loop {
            let before = d.buffered();
            match d.decode_next::<M>() {
                Ok(Some(m)) => {
                    assert!(d.buffered() < before && d.buffered() <= pushed, "a frame consumed nothing");
                    out.push(m);
                }
                Ok(None) => {
                    assert_eq!(d.buffered(), before, "waiting for more bytes consumed some");
                    break;
                }
                Err(e) => {
                    check_error(&e);
                    if let DecodeError::TooLarge { len, max } = e {
                        assert!(len > max && max == MAX_CONTROL_MESSAGE);
                    }
                    return (out, Some(e));
                }
            }
        }
    }
    (out, None)
}

fn check<M: ControlMessage + Debug + PartialEq>(stream: &[u8], cut: u8) {
    let (whole, whole_err) = run::<M>(&[stream]);
    let (cut_up, cut_err) = run::<M>(&pieces(stream, cut));
    assert_eq!(whole, cut_up, "messages depend on how the stream was cut");
    assert_eq!(whole_err, cut_err, "the error depends on how the stream was cut");
    for m in &whole {
        let (again, err) = run::<M>(&[&frame::encode(m)]);
        assert!(err.is_none(), "our own frame of {m:?} does not decode: {err:?}");
        assert_eq!(again.as_slice(), std::slice::from_ref(m), "round trip changed the message");
    }
    // One frame body on its own, as `ControlMessage::decode` sees it.
    match M::decode(stream) {
        Ok(m) => assert_eq!(M::decode(&m.encode()).as_ref().ok(), Some(&m), "body round trip"),
        Err(e) => check_error(&e),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else { return };
    if ctl & 1 == 0 {
        check::<CoordMsg>(stream, ctl >> 1);
    } else {
        check::<WorkerMsg>(stream, ctl >> 1);
    }
});
