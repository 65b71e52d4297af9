//! Game commands on the WebRTC `control` data channel (reliable, ordered): a player saves and
//! loads the game, lists their save slots and resets the game, straight to the worker that runs
//! the room; the worker answers each command on the same channel, in order. JSON text, tagged
//! like the signaling messages (`{"t": "save", "p": {...}}`); see docs/protocol.md.

use serde::{Deserialize, Serialize};

use crate::browser::decode_tagged;
use crate::DecodeError;

/// The largest command accepted (commands are tiny).
pub const MAX_COMMAND: usize = 1024;
/// Save slots per game and player.
pub const SLOTS: u8 = 4;

/// A player's command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", content = "p", rename_all = "snake_case")]
pub enum GameCommand {
    /// Save the game now into the player's `slot` for this game.
    Save {
        /// The player: the page's own random id for this browser (8 to 64 of `A-Za-z0-9_-`).
        user: String,
        /// 1..=[`SLOTS`].
        slot: u8,
    },
    /// Load the player's `slot` for this game: every viewer of the room sees the loaded game.
    Load {
        /// As in [`GameCommand::Save`].
        user: String,
        /// 1..=[`SLOTS`].
        slot: u8,
    },
    /// Which of the player's slots for this game hold a save.
    Slots {
        /// As in [`GameCommand::Save`].
        user: String,
    },
    /// Restart the game from power-on.
    Reset,
    /// Move to another player port of the room, or to watching (0).
    Port {
        /// 0..=4.
        port: u8,
    },
    /// What the viewer's page measured of the stream over the last `ms` milliseconds (its
    /// `inbound-rtp` video stats): not answered, and not queued behind other commands.
    Report {
        /// Video frames decoded.
        frames: u32,
        /// The interval, 1..=[`MAX_REPORT_MS`].
        ms: u32,
        /// Freezes the browser counted (`freezeCount`).
        freezes: u32,
        /// Their total length (`totalFreezesDuration`), at most `ms`.
        freeze_ms: u32,
    },
}

/// The longest interval a [`GameCommand::Report`] may cover.
pub const MAX_REPORT_MS: u32 = 60_000;

/// One saved slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotInfo {
    /// The slot, 1..=[`SLOTS`].
    pub slot: u8,
    /// When it was saved, in milliseconds since the Unix epoch.
    pub saved_ms: u64,
}

/// The shape the room's picture is to be shown at, as its core declares it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Screen {
    /// Width over height of the picture as displayed before rotation (not its pixel size:
    /// the NES's 256×224 picture is shown at 4:3): a positive finite number.
    pub aspect: f32,
    /// Quarter turns counter-clockwise to show the picture at, 0..=3 (a vertical game).
    pub rotation: u8,
}

impl Screen {
    /// A screen with `aspect` made safe to send: a non-finite or non-positive one (a core's
    /// nonsense) becomes `fallback`, the picture's own width over height.
    pub fn new(aspect: f32, fallback: f32, rotation: u8) -> Self {
        let ok = |a: f32| a.is_finite() && a > 0.0;
        let aspect = if ok(aspect) {
            aspect
        } else if ok(fallback) {
            fallback
        } else {
            1.0
        };
        Screen { aspect, rotation: rotation % 4 }
    }
}

/// The worker's answer to a command (or news about the room's game).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "p", rename_all = "snake_case")]
pub enum GameReply {
    /// The game was saved into `slot`.
    Saved {
        /// The slot.
        slot: u8,
    },
    /// `slot` was loaded: the picture shows the saved game.
    Loaded {
        /// The slot.
        slot: u8,
    },
    /// The player's saved slots for this game.
    Slots {
        /// Saved slots, in order.
        slots: Vec<SlotInfo>,
    },
    /// The game was reset.
    Reset,
    /// The player now plays on `port` (0: watches).
    Port {
        /// The port.
        port: u8,
    },
    /// News, not an answer: the shape of the room's picture, sent when the channel opens and
    /// whenever the core changes it.
    Screen(Screen),
    /// The command failed; the game goes on as it was.
    Failed {
        /// The command's type (`save`, `load`, `slots`, `reset`), or `unknown` when it could not
        /// be read.
        command: String,
        /// What happened, for the player.
        message: String,
    },
}

const COMMAND_TYPES: &[&str] = &["save", "load", "slots", "reset", "port", "report"];
const REPLY_TYPES: &[&str] = &["saved", "loaded", "slots", "reset", "port", "screen", "failed"];

impl GameCommand {
    /// The command's type name on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            GameCommand::Save { .. } => "save",
            GameCommand::Load { .. } => "load",
            GameCommand::Slots { .. } => "slots",
            GameCommand::Reset => "reset",
            GameCommand::Port { .. } => "port",
            GameCommand::Report { .. } => "report",
        }
    }

    /// Parses a command from the data channel, enforcing [`MAX_COMMAND`], the slot range and
    /// the user id's form.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_COMMAND {
            return Err(DecodeError::TooLarge { len: bytes.len(), max: MAX_COMMAND });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::Malformed(format!("not UTF-8: {e}")))?;
        let cmd: Self = decode_tagged(text, MAX_COMMAND, COMMAND_TYPES)?;
        match &cmd {
            GameCommand::Save { user, slot } | GameCommand::Load { user, slot } => {
                check_user(user)?;
                if !(1..=SLOTS).contains(slot) {
                    return Err(DecodeError::Malformed(format!("slot {slot} is not in 1..={SLOTS}")));
                }
            }
            GameCommand::Slots { user } => check_user(user)?,
            GameCommand::Reset => {}
            GameCommand::Port { port } if *port > crate::browser::MAX_PORT => {
                return Err(DecodeError::Malformed(format!("port {port} is not in 0..={}", crate::browser::MAX_PORT)));
            }
            GameCommand::Port { .. } => {}
            GameCommand::Report { frames, ms, freezes, freeze_ms } => {
                // At most 500 fps, and freezes of at least one frame each: anything else is not
                // a browser's measurement.
                let plausible = (1..=MAX_REPORT_MS).contains(ms)
                    && *frames <= ms / 2
                    && *freeze_ms <= *ms
                    && *freezes <= ms / 16 + 1;
                if !plausible {
                    return Err(DecodeError::Malformed(format!(
                        "report of {frames} frames, {freezes} freezes ({freeze_ms} ms) in {ms} ms is not plausible"
                    )));
                }
            }
        }
        Ok(cmd)
    }

    /// Serialises to JSON text.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("game commands always serialise")
    }
}

impl GameReply {
    /// Parses a reply (used by pages' tests and the Rust test player).
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        decode_tagged(text, 64 * 1024, REPLY_TYPES)
    }

    /// Serialises to JSON text.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("game replies always serialise")
    }
}

fn check_user(user: &str) -> Result<(), DecodeError> {
    let ok =
        (8..=64).contains(&user.len()) && user.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(DecodeError::Malformed("user must be 8 to 64 characters of A-Z, a-z, 0-9, - and _".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "u-12345678";

    #[test]
    fn commands_and_replies_round_trip() {
        for cmd in [
            GameCommand::Save { user: USER.into(), slot: 1 },
            GameCommand::Load { user: USER.into(), slot: SLOTS },
            GameCommand::Slots { user: USER.into() },
            GameCommand::Reset,
            GameCommand::Port { port: 0 },
            GameCommand::Port { port: 4 },
            GameCommand::Report { frames: 300, ms: 5000, freezes: 1, freeze_ms: 180 },
        ] {
            assert_eq!(GameCommand::decode(cmd.encode().as_bytes()).unwrap(), cmd);
        }
        assert_eq!(GameCommand::decode(br#"{"t":"reset"}"#).unwrap(), GameCommand::Reset);
        for reply in [
            GameReply::Saved { slot: 2 },
            GameReply::Loaded { slot: 3 },
            GameReply::Slots { slots: vec![SlotInfo { slot: 1, saved_ms: 5 }] },
            GameReply::Reset,
            GameReply::Port { port: 2 },
            GameReply::Screen(Screen { aspect: 4.0 / 3.0, rotation: 1 }),
            GameReply::Failed { command: "load".into(), message: "no save in slot 3".into() },
        ] {
            assert_eq!(GameReply::decode(&reply.encode()).unwrap(), reply);
        }
    }

    #[test]
    fn screen_news_is_sane_whatever_the_core_says() {
        assert_eq!(
            GameReply::Screen(Screen::new(4.0 / 3.0, 1.1, 1)).encode(),
            r#"{"t":"screen","p":{"aspect":1.3333334,"rotation":1}}"#
        );
        assert_eq!(Screen::new(f32::NAN, 1.5, 5), Screen { aspect: 1.5, rotation: 1 });
        assert_eq!(Screen::new(0.0, 1.5, 0).aspect, 1.5);
        assert_eq!(Screen::new(-2.0, f32::INFINITY, 0).aspect, 1.0);
    }

    #[test]
    fn bad_commands_are_refused_with_the_reason() {
        let cases: [(&[u8], &str); 13] = [
            (br#"{"t":"report","p":{"frames":1,"ms":0,"freezes":0,"freeze_ms":0}}"#, "not plausible"),
            (br#"{"t":"report","p":{"frames":5000,"ms":5000,"freezes":0,"freeze_ms":0}}"#, "not plausible"),
            (br#"{"t":"report","p":{"frames":300,"ms":5000,"freezes":1,"freeze_ms":6000}}"#, "not plausible"),
            (br#"{"t":"report","p":{"frames":300,"ms":5000,"freezes":-1,"freeze_ms":0}}"#, "invalid value"),
            (br#"{"t":"port","p":{"port":5}}"#, "port 5"),
            (br#"{"t":"save","p":{"user":"u-12345678","slot":0}}"#, "slot 0"),
            (br#"{"t":"load","p":{"user":"u-12345678","slot":5}}"#, "slot 5"),
            (br#"{"t":"save","p":{"user":"short","slot":1}}"#, "user must be"),
            (br#"{"t":"slots","p":{"user":"../../etc/passwd"}}"#, "user must be"),
            (br#"{"t":"format_disk"}"#, "unknown message type"),
            (b"\xff\xfe", "not UTF-8"),
            (b"{", "EOF"),
            (br#"{"t":"save","p":{"slot":1}}"#, "missing field"),
        ];
        for (bytes, want) in cases {
            let err = GameCommand::decode(bytes).unwrap_err().to_string();
            assert!(err.contains(want), "{:?}: {err}", String::from_utf8_lossy(bytes));
        }
        let big = vec![b' '; MAX_COMMAND + 1];
        assert!(matches!(GameCommand::decode(&big), Err(DecodeError::TooLarge { .. })));
    }
}
