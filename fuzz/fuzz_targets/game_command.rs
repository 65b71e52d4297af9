//! Game commands on the WebRTC `control` data channel (`proto::game::GameCommand::decode`), and
//! the worker's replies as a page or the test player decodes them (`GameReply::decode`).
//!
//! Properties: no panic; a decoded command satisfies the slot, port and user-id checks (the
//! user id becomes part of a save's path); it encodes with its own type tag and decodes back
//! to itself; errors say something.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retrofarm_fuzz::check_error;
use retrofarm_proto::browser::MAX_PORT;
use retrofarm_proto::game::{GameCommand, GameReply, MAX_REPORT_MS, SLOTS};
use retrofarm_proto::DecodeError;

fn check_user(user: &str) {
    assert!((8..=64).contains(&user.len()), "user {user:?} accepted");
    assert!(user.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "user {user:?} accepted");
}

fn check_decode_error(e: &DecodeError) {
    check_error(e);
    if let DecodeError::UnknownType(t) = e {
        assert!(t.len() <= 64, "an unknown type is echoed back whole ({} bytes)", t.len());
    }
}

fuzz_target!(|data: &[u8]| {
    match GameCommand::decode(data) {
        Ok(cmd) => {
            match &cmd {
                GameCommand::Save { user, slot } | GameCommand::Load { user, slot } => {
                    check_user(user);
                    assert!((1..=SLOTS).contains(slot), "slot {slot} accepted");
                }
                GameCommand::Slots { user } => check_user(user),
                GameCommand::Reset => {}
                GameCommand::Port { port } => assert!(*port <= MAX_PORT, "port {port} accepted"),
                GameCommand::Report { frames, ms, freezes, freeze_ms } => {
                    let plausible = (1..=MAX_REPORT_MS).contains(ms) && *frames <= ms / 2 && *freeze_ms <= *ms;
                    assert!(plausible && *freezes <= ms / 16 + 1, "implausible report accepted");
                }
            }
            let enc = cmd.encode();
            assert!(enc.starts_with(&format!(r#"{{"t":"{}""#, cmd.kind())), "{enc}");
            assert_eq!(GameCommand::decode(enc.as_bytes()), Ok(cmd), "round trip through {enc}");
        }
        Err(e) => check_decode_error(&e),
    }

    let Ok(text) = std::str::from_utf8(data) else { return };
    match GameReply::decode(text) {
        Ok(reply) => assert_eq!(GameReply::decode(&reply.encode()), Ok(reply), "reply round trip"),
        Err(e) => check_decode_error(&e),
    }
});
