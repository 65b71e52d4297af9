//! The worker's configuration file (`farm_worker::config::Config`, TOML), as
//! `Config::load` parses it, then `Config::check` and the derived settings.
//!
//! Properties: no panic in parsing, checking or deriving; errors say something; a checked
//! configuration gives browsers a ping URL that is not blank.
#![no_main]

use farm_worker::config::Config;
use libfuzzer_sys::fuzz_target;
use retrofarm_fuzz::check_error;

fuzz_target!(|data: &[u8]| {
    // `Config::load` reads the file with `read_to_string`: UTF-8 only.
    let Ok(text) = std::str::from_utf8(data) else { return };
    match toml::from_str::<Config>(text) {
        Ok(c) => {
            match c.check() {
                // What browsers are told to ping: never blank (a blank URL pings the page itself).
                Ok(()) => assert!(!c.ping_url(c.http_listen).trim().is_empty()),
                Err(e) => check_error(&e),
            }
            let bound = c.rtc_listen;
            let addrs = c.candidate_addrs(bound);
            assert!(!addrs.is_empty() && addrs.iter().all(|a| a.port() == bound.port()));
            let _ = c.cpu_budget();
            let _ = c.gpu.choice();
        }
        Err(e) => check_error(&e),
    }
});
