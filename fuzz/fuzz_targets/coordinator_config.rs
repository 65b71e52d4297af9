//! The coordinator's configuration file (`retrofarm_coordinator::config::Config`, TOML), as
//! `Config::load` parses it, then `Config::validate` and the derived settings.
//!
//! Properties: no panic in parsing, validating or deriving; errors say something; a valid
//! configuration with TURN URLs yields a credential minter; Debug never shows the TURN secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retrofarm_coordinator::config::{Config, TurnConfig};
use retrofarm_fuzz::check_error;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match toml::from_str::<Config>(text) {
        Ok(c) => {
            match c.validate() {
                Ok(()) => {
                    assert_eq!(c.turn.rest().is_some(), !c.turn.urls.is_empty());
                    assert_eq!(c.tls_files().is_some(), c.tls_cert.is_some());
                }
                Err(e) => check_error(&e),
            }
            let _ = (c.heartbeat(), c.heartbeat_timeout());
            // The secret never reaches a log line: Debug masks it.
            let turn = TurnConfig { urls: vec![], ..c.turn.clone() };
            let shown = format!("{turn:?}");
            let masked = if turn.secret.is_empty() { r#"secret: """# } else { r#"secret: "<set>""# };
            assert!(shown.contains(masked), "{shown}");
        }
        Err(e) => check_error(&e),
    }
});
