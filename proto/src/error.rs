use serde::{Deserialize, Serialize};

/// Why bytes from the network could not be turned into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message is longer than the protocol allows.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length of the offending message.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a well-formed message (bad JSON, missing or mistyped field, bad id).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message type is not one this protocol knows.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
}

impl DecodeError {
    /// The error code to report to the peer that sent the bad message.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLarge { .. } => ErrorCode::TooLarge,
            DecodeError::Malformed(_) => ErrorCode::Malformed,
            DecodeError::UnknownType(_) => ErrorCode::UnknownType,
        }
    }
}

/// Error codes shared by the browser and worker protocols. Each has a fixed snake_case name on
/// the wire (see docs/protocol.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No worker with free capacity (in the requested zone).
    NoFreeWorker,
    /// The requested game is not in the worker's library.
    UnknownGame,
    /// The requested room does not exist (any more).
    UnknownRoom,
    /// The message could not be parsed.
    Malformed,
    /// The message exceeded the size limit.
    TooLarge,
    /// The message type is unknown.
    UnknownType,
    /// The message is valid but not allowed in the session's current state.
    BadState,
    /// The player port is out of range or already taken in that room.
    PortTaken,
    /// The worker serving the session disconnected or stopped heartbeating.
    WorkerLost,
    /// The room ended (its emulator stopped or crashed).
    RoomClosed,
    /// The browser sends messages faster than the coordinator's rate limit; they are dropped.
    RateLimited,
    /// Anything else; the message says what.
    Internal,
}

impl ErrorCode {
    /// The wire name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NoFreeWorker => "no_free_worker",
            ErrorCode::UnknownGame => "unknown_game",
            ErrorCode::UnknownRoom => "unknown_room",
            ErrorCode::Malformed => "malformed",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BadState => "bad_state",
            ErrorCode::PortTaken => "port_taken",
            ErrorCode::WorkerLost => "worker_lost",
            ErrorCode::RoomClosed => "room_closed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
        }
    }
}
