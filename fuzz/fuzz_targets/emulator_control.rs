//! The control channel between the worker and its emulator child (a socketpair): the frame
//! reassembly (`control::wire::FrameBuffer`) and the message decoders, `Reply` (what the
//! worker reads from the child, which runs an untrusted ROM) and `Request` (what the child
//! reads).
//!
//! Input: byte 0 picks the direction (bit 0) and how the stream is cut into reads (the rest);
//! the remaining bytes are the stream.
//!
//! Properties: no panic; the payloads and the error do not depend on how the stream was cut;
//! a decoded message encodes to exactly the bytes it came from (the format is canonical);
//! errors say something.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retrofarm_emulator::control::wire::{self, FrameBuffer, Message, WireError, MAX_FRAME_LEN};
use retrofarm_emulator::control::{Reply, Request};
use retrofarm_fuzz::{check_error, pieces};
use std::fmt::Debug;

fn payloads(reads: &[&[u8]]) -> (Vec<Vec<u8>>, Option<WireError>) {
    let mut fb = FrameBuffer::new();
    let mut out = Vec::new();
    for r in reads {
        fb.push(r);
        loop {
            match fb.next_payload() {
                Ok(Some(p)) => {
                    assert!(p.len() <= MAX_FRAME_LEN as usize);
                    out.push(p);
                }
                Ok(None) => break,
                Err(e) => {
                    check_error(&e);
                    return (out, Some(e));
                }
            }
        }
    }
    (out, None)
}

fn check<M: Message + Debug>(stream: &[u8], cut: u8) {
    let (whole, whole_err) = payloads(&[stream]);
    let (cut_up, cut_err) = payloads(&pieces(stream, cut));
    assert_eq!(whole, cut_up, "payloads depend on how the stream was cut");
    assert_eq!(whole_err, cut_err, "the error depends on how the stream was cut");
    // Every payload, and the stream itself taken as one payload.
    for p in whole.iter().map(Vec::as_slice).chain([stream]) {
        match wire::decode::<M>(p) {
            Ok((id, msg)) => {
                assert_eq!(wire::payload_id(p), Some(id));
                let frame = wire::encode(id, &msg).expect("a decoded message fits a frame");
                assert_eq!(&frame[4..], p, "{msg:?} does not encode to the bytes it came from");
            }
            Err(e) => check_error(&e),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else { return };
    if ctl & 1 == 0 {
        check::<Reply>(stream, ctl >> 1);
    } else {
        check::<Request>(stream, ctl >> 1);
    }
});
