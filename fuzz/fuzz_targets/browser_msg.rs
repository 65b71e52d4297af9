//! The coordinator's WebSocket messages from browsers (`ClientMsg::decode`), and the
//! coordinator's own messages as a client decodes them (`ServerMsg::decode`).
//!
//! Properties: no panic; a decoded message satisfies the checks `decode` promises, encodes
//! with its own type tag and decodes back to itself; every error says something and maps to
//! a wire code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retrofarm_fuzz::check_error;
use retrofarm_proto::browser::{ClientMsg, ServerMsg, MAX_CLIENT_MESSAGE, MAX_PORT};
use retrofarm_proto::DecodeError;

fn check_decode_error(e: &DecodeError) {
    check_error(e);
    let _ = e.code().as_str();
    if let DecodeError::UnknownType(t) = e {
        assert!(t.len() <= 64, "an unknown type is echoed back whole ({} bytes)", t.len());
    }
}

fuzz_target!(|data: &[u8]| {
    // WebSocket text frames are UTF-8 by the time they reach the decoder.
    let Ok(text) = std::str::from_utf8(data) else { return };

    match ClientMsg::decode(text) {
        Ok(m) => {
            if let ClientMsg::StartGame { port, room, .. } = &m {
                assert!(*port <= MAX_PORT, "port {port} accepted");
                assert!(*port > 0 || room.is_some(), "watching without a room accepted");
            }
            let enc = m.encode();
            assert!(enc.starts_with(&format!(r#"{{"t":"{}""#, m.kind())), "{enc}");
            match ClientMsg::decode(&enc) {
                Ok(back) => assert_eq!(back, m, "round trip changed the message: {enc}"),
                // Defaults written out can push a message at the limit over it.
                Err(DecodeError::TooLarge { .. }) if enc.len() > MAX_CLIENT_MESSAGE => {}
                Err(e) => panic!("our own encoding {enc:?} does not decode: {e}"),
            }
        }
        Err(e) => check_decode_error(&e),
    }

    match ServerMsg::decode(text) {
        Ok(m) => {
            let enc = m.encode();
            match ServerMsg::decode(&enc) {
                Ok(back) => assert_eq!(back, m, "round trip changed the message: {enc}"),
                Err(DecodeError::TooLarge { .. }) if enc.len() > 16 * MAX_CLIENT_MESSAGE => {}
                Err(e) => panic!("our own encoding {enc:?} does not decode: {e}"),
            }
        }
        Err(e) => check_decode_error(&e),
    }
});
