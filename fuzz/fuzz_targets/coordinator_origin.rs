//! The `Origin` and `Host` headers of a browser's `/ws` upgrade, as the coordinator's origin
//! check reads them (`retrofarm_coordinator::origin::decide`), and the `allowed_origins`
//! entries it compares them with (`check_entry`).
//!
//! Input: `origin \n host \n allowed entries...`, each part optional.
//!
//! Properties: no panic; no `Origin` is always allowed; `"*"` allows everything; an origin
//! listed in `allowed` is allowed; a refusal names the origin that was refused; a bad entry's
//! error says something.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retrofarm_coordinator::origin::{check_entry, decide, refusal, Decision};
use retrofarm_fuzz::check_error;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.split('\n');
    let origin = parts.next().filter(|s| !s.is_empty());
    let host = parts.next().filter(|s| !s.is_empty());
    let allowed: Vec<String> = parts.map(str::to_string).collect();

    for entry in &allowed {
        if let Err(e) = check_entry(entry) {
            check_error(&e);
        }
    }
    assert_eq!(decide(None, host, &allowed), Decision::Allow);
    match decide(origin, host, &allowed) {
        Decision::Allow => {}
        Decision::Refuse(o) => {
            assert_eq!(Some(o.as_str()), origin);
            assert!(!allowed.iter().any(|a| a.trim() == "*"), "\"*\" did not allow {o:?}");
            assert!(check_entry(&o).is_err() || !allowed.contains(&o), "listed origin {o:?} refused");
            assert!(refusal(&o).contains("allowed_origins"));
        }
    }
    if let Some(o) = origin {
        assert_eq!(decide(Some(o), host, &["*".to_string()]), Decision::Allow);
    }
});
