//! Identifiers: rooms, browser sessions, workers.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest identifier accepted on the wire.
pub const MAX_ID_LEN: usize = 64;

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `s`: 1 to [`MAX_ID_LEN`] bytes of `[A-Za-z0-9._-]`.
            pub fn new(s: impl Into<String>) -> Result<Self, InvalidId> {
                let s = s.into();
                if valid_id(&s) {
                    Ok(Self(s))
                } else {
                    Err(InvalidId(s))
                }
            }

            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Self::new(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// A room: one running game and its players. Chosen by the worker that hosts it; shared
    /// through the `?id=` link.
    RoomId
);
string_id!(
    /// A worker host, stable across reconnects (from the worker's configuration).
    WorkerId
);
string_id!(
    /// A browser's session with the coordinator (one WebSocket connection).
    SessionId
);

/// An identifier that is empty, too long or has characters outside `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id {0:?}: expected 1-64 characters of A-Z a-z 0-9 . _ -")]
pub struct InvalidId(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_validate() {
        assert!(RoomId::new("abc-123_x.y").is_ok());
        assert!(RoomId::new("").is_err());
        assert!(RoomId::new("a b").is_err());
        assert!(RoomId::new("x".repeat(65)).is_err());
        assert!(serde_json::from_str::<RoomId>("\"../etc\"").is_err());
        assert_eq!(serde_json::from_str::<WorkerId>("\"w1\"").unwrap().as_str(), "w1");
    }
}
