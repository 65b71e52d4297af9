//! Worker ⇄ coordinator control messages, carried on one bidirectional QUIC stream per worker
//! connection, each message a [`crate::frame`] holding JSON `{"t": .., "p": ..}`.
//!
//! Sessions are browser sessions: the coordinator relays each browser's signaling to the worker
//! tagged with its [`SessionId`], and the worker tags its replies the same way.

use serde::{Deserialize, Serialize};

use crate::browser::{decode_tagged, GameInfo, IceCandidate};
use crate::ids::{RoomId, SessionId, WorkerId};
use crate::{DecodeError, ErrorCode};

/// Largest control message (a big game library fits).
pub const MAX_CONTROL_MESSAGE: usize = 4 * 1024 * 1024;

/// Version of this control protocol; a coordinator refuses workers that speak another.
pub const PROTOCOL_VERSION: u32 = 1;

/// A room a worker runs, as reported when it (re-)registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// The room.
    pub id: RoomId,
    /// The game running in it.
    pub game: String,
}

/// A worker's load, sent with every heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    /// Rooms running.
    pub rooms: u32,
    /// Browser sessions (viewers and players) connected.
    pub sessions: u32,
    /// How many more rooms the host can hold at full rate.
    pub free: u32,
}

/// Messages from a worker to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", content = "p", rename_all = "snake_case")]
pub enum WorkerMsg {
    /// First message on a connection.
    Register {
        /// [`PROTOCOL_VERSION`] of the worker.
        protocol: u32,
        /// Stable worker id.
        id: WorkerId,
        /// Zone (region) the worker serves.
        zone: String,
        /// Public URL of the worker's ping endpoint, for the browser's latency check.
        ping_url: String,
        /// The games this worker can run.
        games: Vec<GameInfo>,
        /// Rooms already running (after a reconnect).
        rooms: Vec<RoomInfo>,
        /// Current load.
        load: Load,
    },
    /// Liveness and load, every heartbeat interval.
    Heartbeat {
        /// Current load.
        load: Load,
    },
    /// A session joined a room; the offer follows.
    SessionStarted {
        /// The session.
        session: SessionId,
        /// The room it joined (created or existing).
        room: RoomId,
        /// The game in that room.
        game: String,
        /// The player port granted.
        port: u8,
    },
    /// The worker's SDP offer for a session.
    Offer {
        /// The session.
        session: SessionId,
        /// SDP text.
        sdp: String,
    },
    /// A trickled ICE candidate for a session (`None`: end of candidates).
    Ice {
        /// The session.
        session: SessionId,
        /// The candidate.
        candidate: Option<IceCandidate>,
    },
    /// A session could not start, or ended on the worker's side (its room closed).
    SessionEnded {
        /// The session.
        session: SessionId,
        /// Why.
        code: ErrorCode,
        /// Explanation for the user.
        message: String,
    },
    /// The worker's games changed (a rescan of its games folder): this list replaces the one
    /// it registered with.
    Games {
        /// The games this worker can run now.
        games: Vec<GameInfo>,
    },
    /// A room ended; the coordinator forgets it.
    RoomClosed {
        /// The room.
        room: RoomId,
    },
}

/// Messages from the coordinator to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", content = "p", rename_all = "snake_case")]
pub enum CoordMsg {
    /// Registration accepted.
    Registered {
        /// How often the worker must send [`WorkerMsg::Heartbeat`], in milliseconds.
        heartbeat_ms: u64,
    },
    /// Registration refused; the connection closes after this.
    Refused {
        /// Why, for the operator.
        reason: String,
    },
    /// Start (or join) a room for a session and make an offer.
    StartSession {
        /// The session.
        session: SessionId,
        /// Game to start when `room` is `None`.
        game: String,
        /// Existing room to join.
        room: Option<RoomId>,
        /// Player port, 1..=4; 0 watches without playing.
        port: u8,
    },
    /// The browser's SDP answer.
    Answer {
        /// The session.
        session: SessionId,
        /// SDP text.
        sdp: String,
    },
    /// A trickled ICE candidate from the browser.
    Ice {
        /// The session.
        session: SessionId,
        /// The candidate.
        candidate: Option<IceCandidate>,
    },
    /// The browser left (quit or disconnected).
    EndSession {
        /// The session.
        session: SessionId,
    },
}

const WORKER_TYPES: &[&str] =
    &["register", "heartbeat", "session_started", "offer", "ice", "session_ended", "room_closed"];
const COORD_TYPES: &[&str] = &["registered", "refused", "start_session", "answer", "ice", "end_session"];

/// A control message type: JSON on the wire, bounded by [`MAX_CONTROL_MESSAGE`].
pub trait ControlMessage: Sized + Serialize + serde::de::DeserializeOwned {
    /// The message types this direction knows.
    const TYPES: &'static [&'static str];

    /// Parses one message body.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::Malformed(format!("not UTF-8: {e}")))?;
        decode_tagged(text, MAX_CONTROL_MESSAGE, Self::TYPES)
    }

    /// Serialises one message body.
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("control messages always serialise")
    }
}

impl ControlMessage for WorkerMsg {
    const TYPES: &'static [&'static str] = WORKER_TYPES;
}

impl ControlMessage for CoordMsg {
    const TYPES: &'static [&'static str] = COORD_TYPES;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> SessionId {
        SessionId::new("s1").unwrap()
    }
    fn r() -> RoomId {
        RoomId::new("r1").unwrap()
    }

    #[test]
    fn every_message_round_trips() {
        let load = Load { rooms: 1, sessions: 2, free: 3 };
        let worker = vec![
            WorkerMsg::Register {
                protocol: PROTOCOL_VERSION,
                id: WorkerId::new("w1").unwrap(),
                zone: "eu".into(),
                ping_url: "http://127.0.0.1:9000/ping".into(),
                games: vec![GameInfo { name: "walk".into(), system: "nes".into() }],
                rooms: vec![RoomInfo { id: r(), game: "walk".into() }],
                load,
            },
            WorkerMsg::Heartbeat { load },
            WorkerMsg::SessionStarted { session: s(), room: r(), game: "walk".into(), port: 1 },
            WorkerMsg::Offer { session: s(), sdp: "v=0".into() },
            WorkerMsg::Ice { session: s(), candidate: None },
            WorkerMsg::SessionEnded { session: s(), code: ErrorCode::RoomClosed, message: "crash".into() },
            WorkerMsg::RoomClosed { room: r() },
        ];
        for m in worker {
            assert_eq!(WorkerMsg::decode(&m.encode()).unwrap(), m);
        }
        let coord = vec![
            CoordMsg::Registered { heartbeat_ms: 1000 },
            CoordMsg::Refused { reason: "bad version".into() },
            CoordMsg::StartSession { session: s(), game: "walk".into(), room: Some(r()), port: 2 },
            CoordMsg::Answer { session: s(), sdp: "v=0".into() },
            CoordMsg::Ice {
                session: s(),
                candidate: Some(IceCandidate { candidate: "c".into(), sdp_mid: None, sdp_m_line_index: None }),
            },
            CoordMsg::EndSession { session: s() },
        ];
        for m in coord {
            assert_eq!(CoordMsg::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn start_session_from_an_older_coordinator_still_decodes() {
        // Coordinators before issue 18 also sent `ice_servers`; unknown fields are ignored.
        let old = br#"{"t":"start_session","p":{"session":"s1","game":"walk","room":null,"port":1,"ice_servers":[]}}"#;
        assert_eq!(
            CoordMsg::decode(old).unwrap(),
            CoordMsg::StartSession { session: s(), game: "walk".into(), room: None, port: 1 }
        );
    }

    #[test]
    fn bad_input_gets_typed_errors() {
        assert!(matches!(WorkerMsg::decode(b"\xff\xfe"), Err(DecodeError::Malformed(_))));
        assert!(matches!(WorkerMsg::decode(b"{\"t\":\"steal\"}"), Err(DecodeError::UnknownType(_))));
        assert!(matches!(CoordMsg::decode(b"{\"t\":\"heartbeat\",\"p\":{}}"), Err(DecodeError::UnknownType(_))));
        assert!(matches!(
            WorkerMsg::decode(b"{\"t\":\"heartbeat\",\"p\":{\"load\":{\"rooms\":-1}}}"),
            Err(DecodeError::Malformed(_))
        ));
    }
}
