//! The input packet on the WebRTC `input` data channel (`proto::input::PadState::decode`) and
//! the reordering filter the worker runs it through (`PadTracker`).
//!
//! Properties: no panic; a packet decodes only at its exact length and version, and encodes
//! back to the same bytes; the tracker only ever applies a packet newer than the last applied
//! one (serial-number order) and never applies one twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retrofarm_fuzz::check_error;
use retrofarm_proto::input::{InputError, PadState, PadTracker, INPUT_PACKET_LEN, INPUT_VERSION};

fuzz_target!(|data: &[u8]| {
    match PadState::decode(data) {
        Ok(p) => {
            assert_eq!(data.len(), INPUT_PACKET_LEN);
            assert_eq!(data[0], INPUT_VERSION);
            assert_eq!(&p.encode()[..], data, "encode(decode(b)) != b");
        }
        Err(e) => {
            check_error(&e);
            match e {
                InputError::Length(n) => assert!(n == data.len() && n != INPUT_PACKET_LEN),
                InputError::Version(v) => assert!(data.len() == INPUT_PACKET_LEN && v == data[0] && v != INPUT_VERSION),
            }
        }
    }

    // The same bytes as a burst of packets, each with its version byte forced valid.
    let mut tracker = PadTracker::default();
    let mut last: Option<u16> = None;
    for chunk in data.chunks_exact(INPUT_PACKET_LEN) {
        let mut b = [0u8; INPUT_PACKET_LEN];
        b.copy_from_slice(chunk);
        b[0] = INPUT_VERSION;
        let p = PadState::decode(&b).expect("a well-formed packet");
        match tracker.apply(p) {
            Some(applied) => {
                assert_eq!(applied, p);
                if let Some(l) = last {
                    let ahead = p.seq.wrapping_sub(l);
                    assert!(ahead != 0 && ahead < 0x8000, "applied seq {} after {l}", p.seq);
                }
                last = Some(p.seq);
            }
            None => assert!(last.is_some(), "the first packet was dropped"),
        }
    }
});
