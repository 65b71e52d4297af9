//! The input packet on the WebRTC `input` data channel (`proto::input::PadState::decode`) and
//! the reordering filter the worker runs it through (`PadTracker`).
//!
//! Properties: no panic; a packet decodes only at its version's exact length, and encodes to
//! a packet that decodes to the same state (a version 2 packet whose pointer is at rest encodes
//! as version 1); the tracker only ever applies a packet newer than the last applied
//! one (serial-number order) and never applies one twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retrofarm_fuzz::check_error;
use retrofarm_proto::input::{
    InputError, PadState, PadTracker, INPUT_PACKET_LEN, INPUT_POINTER_PACKET_LEN, INPUT_POINTER_VERSION, INPUT_VERSION,
};

/// The length a packet of version `v` has.
fn length_of(v: u8) -> Option<usize> {
    match v {
        INPUT_VERSION => Some(INPUT_PACKET_LEN),
        INPUT_POINTER_VERSION => Some(INPUT_POINTER_PACKET_LEN),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    match PadState::decode(data) {
        Ok(p) => {
            assert_eq!(Some(data.len()), length_of(data[0]));
            assert_eq!(PadState::decode(&p.encode()), Ok(p), "decode(encode(decode(b))) != decode(b)");
        }
        Err(e) => {
            check_error(&e);
            match e {
                InputError::Length(n) => {
                    assert_eq!(n, data.len());
                    assert!(data.is_empty() || length_of(data[0]).is_some_and(|want| want != n));
                }
                InputError::Version(v) => assert!(v == data[0] && length_of(v).is_none()),
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
