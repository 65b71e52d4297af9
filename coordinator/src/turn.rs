//! Time-limited TURN credentials: the "TURN REST API" scheme that coturn checks with
//! `use-auth-secret` / `static-auth-secret`. The user name is `<expiry unix seconds>:<session>`
//! and the password is base64(HMAC-SHA1(secret, user name)): the TURN server recomputes it from
//! the shared secret and refuses names whose time has passed, so nothing is stored per session
//! and a leaked credential stops working on its own. Pure: the caller passes the time.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use retrofarm_proto::browser::IceServer;
use retrofarm_proto::ids::SessionId;
use sha1::Sha1;

/// Mints credentials for one TURN server (or several sharing a secret).
#[derive(Clone)]
pub struct TurnRest {
    /// `turn:` / `turns:` URLs handed to browsers.
    pub urls: Vec<String>,
    /// The secret shared with the TURN server.
    pub secret: String,
    /// How long credentials stay valid.
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnRest").field("urls", &self.urls).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl TurnRest {
    /// The ICE server entry for `session`, valid until `now` + ttl (`now` is wall-clock time).
    pub fn ice_server(&self, session: &SessionId, now: SystemTime) -> IceServer {
        let now = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let username = format!("{}:{session}", now.saturating_add(self.ttl.as_secs()));
        let credential = credential(&self.secret, &username);
        IceServer { urls: self.urls.clone(), username: Some(username), credential: Some(credential) }
    }
}

/// base64(HMAC-SHA1(`secret`, `username`)): the password for `username`.
pub fn credential(secret: &str, username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_is_the_known_hmac() {
        // printf '%s' '1700086400:0123456789abcdef' | openssl dgst -sha1 -hmac 'north-wind' -binary | base64
        assert_eq!(credential("north-wind", "1700086400:0123456789abcdef"), "Umx6T7Z0NftxRttLKNKbPfNQtek=");
        // RFC 2202, test case 2 (key "Jefe"): effcdf6ae5eb2fa2d27416d5f184df9c259a7c79.
        assert_eq!(credential("Jefe", "what do ya want for nothing?"), "7/zfauXrL6LSdBbV8YTfnCWafHk=");
    }

    #[test]
    fn the_user_name_carries_the_expiry_and_the_session() {
        let turn = TurnRest {
            urls: vec!["turn:t:3478".into()],
            secret: "north-wind".into(),
            ttl: Duration::from_secs(86_400),
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let s = turn.ice_server(&SessionId::new("0123456789abcdef").unwrap(), now);
        assert_eq!(s.urls, vec!["turn:t:3478".to_string()]);
        assert_eq!(s.username.as_deref(), Some("1700086400:0123456789abcdef"));
        assert_eq!(s.credential.as_deref(), Some("Umx6T7Z0NftxRttLKNKbPfNQtek="));
        assert!(!format!("{turn:?}").contains("north-wind"));
    }
}
