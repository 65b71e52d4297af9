//! Browser ⇄ coordinator messages: JSON text frames on the `/ws` WebSocket.
//!
//! Every message is `{"t": "<type>", "p": <payload>}` (`p` absent for types without payload).
//! docs/protocol.md lists each message with examples.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{RoomId, SessionId, WorkerId};
use crate::{DecodeError, ErrorCode};

/// Largest message a browser may send (an SDP answer is a few KiB).
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// Highest player port (ports are 1-based: 1..=4).
pub const MAX_PORT: u8 = 4;

/// A STUN or TURN server for the browser's `RTCPeerConnection` (`RTCIceServer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A game a worker can run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GameInfo {
    /// Name that identifies the game in `start_game` (the ROM's file name without extension).
    pub name: String,
    /// The system, e.g. `nes` or `gba`.
    pub system: String,
}

/// A trickled ICE candidate, shaped like the browser's `RTCIceCandidateInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// The `candidate:` attribute line.
    pub candidate: String,
    /// The media stream identification tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// Index of the m-line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
}

/// A worker the browser should ping for the latency check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingTarget {
    /// The worker.
    pub id: WorkerId,
    /// HTTP URL that answers quickly (`GET` → 204) and allows any origin.
    pub ping_url: String,
}

/// The worker chosen for a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChosenWorker {
    /// The worker's id.
    pub id: WorkerId,
    /// The worker's zone.
    pub zone: String,
}

/// Messages from a browser to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", content = "p", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Answer to [`ServerMsg::CheckLatency`]: round-trip time in ms per worker. Workers that
    /// could not be reached are left out.
    Latency {
        /// Milliseconds per worker id.
        results: BTreeMap<WorkerId, u32>,
    },
    /// Start a game in a new room, or join `room` when given.
    StartGame {
        /// Game name from the list in [`ServerMsg::Init`] (ignored when joining a room).
        #[serde(default)]
        game: String,
        /// Room to join (from the share link).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<RoomId>,
        /// Player port, 1..=4; 0 watches without playing (a spectator; only when joining a
        /// room).
        port: u8,
    },
    /// The browser's SDP answer to the worker's offer.
    Answer {
        /// SDP text.
        sdp: String,
    },
    /// A trickled ICE candidate of the browser; `null` marks the end of candidates.
    Ice {
        /// The candidate.
        candidate: Option<IceCandidate>,
    },
    /// Leave the room and end the session's stream.
    Quit,
}

/// Messages from the coordinator to a browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", content = "p", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Ping each worker and answer with [`ClientMsg::Latency`].
    CheckLatency {
        /// Candidate workers.
        workers: Vec<PingTarget>,
    },
    /// The session is ready: a worker is chosen.
    Init {
        /// This session's id.
        session: SessionId,
        /// ICE servers for the `RTCPeerConnection`.
        ice_servers: Vec<IceServer>,
        /// Games the chosen worker can run.
        games: Vec<GameInfo>,
        /// The chosen worker.
        worker: ChosenWorker,
        /// The room this session will join, when the page was opened with a share link.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<RoomId>,
    },
    /// The game runs; the worker's offer follows.
    GameStarted {
        /// The room (for the share link).
        room: RoomId,
        /// The game running in it.
        game: String,
        /// The port this browser controls.
        port: u8,
    },
    /// The worker's SDP offer.
    Offer {
        /// SDP text.
        sdp: String,
    },
    /// A trickled ICE candidate of the worker; `null` marks the end of candidates.
    Ice {
        /// The candidate.
        candidate: Option<IceCandidate>,
    },
    /// Something went wrong; see docs/protocol.md for what each code means to the page.
    Error {
        /// Machine-readable code.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
}

impl ServerMsg {
    /// An error message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error { code, message: message.into() }
    }
}

const CLIENT_TYPES: &[&str] = &["latency", "start_game", "answer", "ice", "quit"];
const SERVER_TYPES: &[&str] = &["check_latency", "init", "game_started", "offer", "ice", "error"];

impl ClientMsg {
    /// The message's type name on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMsg::Latency { .. } => "latency",
            ClientMsg::StartGame { .. } => "start_game",
            ClientMsg::Answer { .. } => "answer",
            ClientMsg::Ice { .. } => "ice",
            ClientMsg::Quit => "quit",
        }
    }

    /// Parses a browser message, enforcing [`MAX_CLIENT_MESSAGE`] and validating fields.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let msg: Self = decode_tagged(text, MAX_CLIENT_MESSAGE, CLIENT_TYPES)?;
        if let ClientMsg::StartGame { port, room, .. } = &msg {
            if *port > MAX_PORT {
                return Err(DecodeError::Malformed(format!("port {port} is not in 0..={MAX_PORT}")));
            }
            if *port == 0 && room.is_none() {
                return Err(DecodeError::Malformed("port 0 (watching) is for joining a room".into()));
            }
        }
        Ok(msg)
    }

    /// Serialises to JSON text.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("browser messages always serialise")
    }
}

impl ServerMsg {
    /// Parses a coordinator message (used by clients and tests). Server messages carry an
    /// SDP offer and the game list, so the limit is larger than the client's.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        decode_tagged(text, 16 * MAX_CLIENT_MESSAGE, SERVER_TYPES)
    }

    /// Serialises to JSON text.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("server messages always serialise")
    }
}

/// Decodes `{"t":..,"p":..}` JSON, telling oversized, unknown-type and malformed input apart.
pub(crate) fn decode_tagged<T: serde::de::DeserializeOwned>(
    text: &str,
    max: usize,
    known: &[&str],
) -> Result<T, DecodeError> {
    if text.len() > max {
        return Err(DecodeError::TooLarge { len: text.len(), max });
    }
    #[derive(Deserialize)]
    struct Tag<'a> {
        #[serde(borrow)]
        t: std::borrow::Cow<'a, str>,
    }
    let tag: Tag<'_> = serde_json::from_str(text).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !known.contains(&tag.t.as_ref()) {
        // Echo at most 64 bytes of the unknown type, cut at a character boundary.
        let t = tag.t.as_ref();
        let mut end = t.len().min(64);
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        return Err(DecodeError::UnknownType(t[..end].to_string()));
    }
    serde_json::from_str(text).map_err(|e| DecodeError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn room(s: &str) -> RoomId {
        RoomId::new(s).unwrap()
    }

    fn candidate() -> IceCandidate {
        IceCandidate {
            candidate: "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
        }
    }

    fn all_client() -> Vec<ClientMsg> {
        vec![
            ClientMsg::Latency {
                results: [(WorkerId::new("w1").unwrap(), 12), (WorkerId::new("w2").unwrap(), 40)].into_iter().collect(),
            },
            ClientMsg::StartGame { game: "walk".into(), room: None, port: 1 },
            ClientMsg::StartGame { game: String::new(), room: Some(room("r1")), port: 2 },
            ClientMsg::Answer { sdp: "v=0\r\n".into() },
            ClientMsg::Ice { candidate: Some(candidate()) },
            ClientMsg::Ice { candidate: None },
            ClientMsg::Quit,
        ]
    }

    fn all_server() -> Vec<ServerMsg> {
        vec![
            ServerMsg::CheckLatency {
                workers: vec![PingTarget {
                    id: WorkerId::new("w1").unwrap(),
                    ping_url: "http://127.0.0.1:9000/ping".into(),
                }],
            },
            ServerMsg::Init {
                session: SessionId::new("s1").unwrap(),
                ice_servers: vec![
                    IceServer { urls: vec!["stun:stun.example.org:3478".into()], username: None, credential: None },
                    IceServer {
                        urls: vec!["turn:turn.example.org:3478".into()],
                        username: Some("u".into()),
                        credential: Some("p".into()),
                    },
                ],
                games: vec![GameInfo { name: "walk".into(), system: "nes".into() }],
                worker: ChosenWorker { id: WorkerId::new("w1").unwrap(), zone: "eu".into() },
                room: Some(room("r1")),
            },
            ServerMsg::GameStarted { room: room("r1"), game: "walk".into(), port: 1 },
            ServerMsg::Offer { sdp: "v=0\r\n".into() },
            ServerMsg::Ice { candidate: Some(candidate()) },
            ServerMsg::Ice { candidate: None },
            ServerMsg::error(ErrorCode::NoFreeWorker, "no worker has free capacity"),
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in all_client() {
            assert_eq!(ClientMsg::decode(&m.encode()).unwrap(), m);
            assert!(m.encode().starts_with(&format!(r#"{{"t":"{}""#, m.kind())));
        }
        for m in all_server() {
            assert_eq!(ServerMsg::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn wire_shape_is_stable() {
        assert_eq!(ClientMsg::Quit.encode(), r#"{"t":"quit"}"#);
        assert_eq!(
            ClientMsg::decode(r#"{"t":"start_game","p":{"game":"walk","port":1}}"#).unwrap(),
            ClientMsg::StartGame { game: "walk".into(), room: None, port: 1 }
        );
        assert_eq!(
            ServerMsg::error(ErrorCode::UnknownRoom, "x").encode(),
            r#"{"t":"error","p":{"code":"unknown_room","message":"x"}}"#
        );
        let ice = ClientMsg::decode(
            r#"{"t":"ice","p":{"candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"u"}}}"#,
        )
        .unwrap();
        assert!(matches!(ice, ClientMsg::Ice { candidate: Some(c) } if c.sdp_mid.as_deref() == Some("0")));
    }

    #[test]
    fn bad_input_gets_typed_errors() {
        assert!(matches!(ClientMsg::decode("not json"), Err(DecodeError::Malformed(_))));
        assert!(matches!(ClientMsg::decode("{}"), Err(DecodeError::Malformed(_))));
        assert!(matches!(ClientMsg::decode(r#"{"t":7}"#), Err(DecodeError::Malformed(_))));
        assert_eq!(ClientMsg::decode(r#"{"t":"format_disk"}"#), Err(DecodeError::UnknownType("format_disk".into())));
        assert!(matches!(
            ClientMsg::decode(r#"{"t":"start_game","p":{"game":"walk"}}"#),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            ClientMsg::decode(r#"{"t":"start_game","p":{"game":"walk","port":9}}"#),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            ClientMsg::decode(r#"{"t":"start_game","p":{"room":"../x","port":1}}"#),
            Err(DecodeError::Malformed(_))
        ));
        // Port 0 watches a room; a new game needs a player.
        assert!(matches!(
            ClientMsg::decode(r#"{"t":"start_game","p":{"room":"r1","port":0}}"#),
            Ok(ClientMsg::StartGame { port: 0, .. })
        ));
        let err = ClientMsg::decode(r#"{"t":"start_game","p":{"game":"walk","port":0}}"#).unwrap_err();
        assert!(err.to_string().contains("for joining a room"), "{err}");
        // A server message is not a client message.
        assert!(matches!(ClientMsg::decode(r#"{"t":"offer","p":{"sdp":""}}"#), Err(DecodeError::UnknownType(_))));
        let big = format!(r#"{{"t":"answer","p":{{"sdp":"{}"}}}}"#, "a".repeat(MAX_CLIENT_MESSAGE));
        assert!(matches!(ClientMsg::decode(&big), Err(DecodeError::TooLarge { .. })));
        assert_eq!(DecodeError::TooLarge { len: 2, max: 1 }.code(), ErrorCode::TooLarge);
    }

    #[test]
    fn a_long_unknown_type_is_cut_at_a_character_boundary() {
        // Found by fuzz/ (browser_msg): the type was cut at byte 64 even inside a character,
        // which panicked (in every decoder: browser, worker link, game commands).
        let crash = "{\"t\":\"offe+=- 461ns 461nsFFFFFF088.0.:0.s\\\\1rnuFFFFFF=TT\u{7d1}T+=- 461nsn\\uF666\"}";
        let err = ClientMsg::decode(crash).unwrap_err();
        assert!(matches!(&err, DecodeError::UnknownType(t) if t.len() == 62 && t.ends_with("461nsn")), "{err:?}");
        let t = format!("{}é", "a".repeat(63));
        assert_eq!(ServerMsg::decode(&format!(r#"{{"t":"{t}"}}"#)), Err(DecodeError::UnknownType("a".repeat(63))));
        assert_eq!(
            ClientMsg::decode(&format!(r#"{{"t":"{}"}}"#, "é".repeat(40))),
            Err(DecodeError::UnknownType("é".repeat(32)))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in ".{0,300}") {
            let _ = ClientMsg::decode(&s);
            let _ = ServerMsg::decode(&s);
        }

        #[test]
        fn arbitrary_sdp_round_trips(sdp in ".{0,2000}", port in 1u8..=4) {
            let m = ClientMsg::Answer { sdp };
            prop_assert_eq!(ClientMsg::decode(&m.encode()).unwrap(), m);
            let m = ClientMsg::StartGame { game: "g".into(), room: None, port };
            prop_assert_eq!(ClientMsg::decode(&m.encode()).unwrap(), m);
        }

        #[test]
        fn mutated_messages_never_panic(idx in 0usize..7, cut in 0usize..200, byte in any::<u8>()) {
            let mut text = all_client()[idx].encode().into_bytes();
            if !text.is_empty() {
                let i = cut % text.len();
                text[i] = byte;
            }
            if let Ok(s) = std::str::from_utf8(&text) {
                let _ = ClientMsg::decode(s);
            }
        }
    }
}
