//! Scripted input: "from frame N on, port P holds these buttons". Lets a child replay an exact
//! input sequence without the parent racing it (deterministic tests, benchmarks, replays).
//!
//! Text form, one event per line (or separated by `;`), `#` starts a comment:
//!
//! ```text
//! # frame port buttons [lx ly rx ry]
//! 60  1 START
//! 66  1 -
//! 120 1 RIGHT+A
//! 200 2 0x0100 0 -32768 0 0
//! ```
//!
//! Frames count `retro_run` calls from 0; ports are players 1..=4; buttons are names from
//! [`crate::buttons::NAMES`] joined by `+` or `|`, a number, or `-` for none.

use crate::buttons;
use crate::shm::input::{InputSnapshot, PortInput};
use crate::shm::layout::MAX_PORTS;

/// One scripted change.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct InputEvent {
    /// Frame (0-based `retro_run` index) from which the input applies.
    pub frame: u64,
    /// Port index, 0-based (0 = player 1).
    pub port: usize,
    /// The input from then on.
    pub input: PortInput,
}

/// A sorted list of input events plus a replay cursor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputScript {
    events: Vec<InputEvent>,
    cursor: usize,
}

fn parse_buttons(s: &str) -> Result<u16, String> {
    if s == "-" {
        return Ok(0);
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return u16::from_str_radix(hex, 16).map_err(|e| format!("bad button mask {s:?}: {e}"));
    }
    if let Ok(v) = s.parse::<u16>() {
        return Ok(v);
    }
    s.split(['+', '|'])
        .map(|name| buttons::from_name(name).ok_or_else(|| format!("unknown button {name:?}")))
        .try_fold(0u16, |acc, b| b.map(|b| acc | b))
}

impl InputScript {
    /// An empty script.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an event: from `frame` on, player `player` (1..=4) holds `buttons` and `axes`.
    pub fn at(mut self, frame: u64, player: u8, buttons: u16, axes: [i16; 4]) -> Self {
        assert!((1..=MAX_PORTS as u8).contains(&player), "players are 1..=4");
        self.events.push(InputEvent {
            frame,
            port: usize::from(player - 1),
            input: PortInput { buttons, axes, ..PortInput::default() },
        });
        self.events.sort_by_key(|e| e.frame);
        self
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut events = Vec::new();
        for (i, line) in text.split(['\n', ';']).enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() != 3 && fields.len() != 7 {
                return Err(format!("event {}: expected 'frame port buttons [lx ly rx ry]', got {line:?}", i + 1));
            }
            let frame = fields[0].parse::<u64>().map_err(|e| format!("event {}: bad frame: {e}", i + 1))?;
            let player = fields[1].parse::<usize>().map_err(|e| format!("event {}: bad port: {e}", i + 1))?;
            if !(1..=MAX_PORTS).contains(&player) {
                return Err(format!("event {}: port {player} outside 1..=4", i + 1));
            }
            let buttons = parse_buttons(fields[2]).map_err(|e| format!("event {}: {e}", i + 1))?;
            let mut axes = [0i16; 4];
            if fields.len() == 7 {
                for (a, f) in axes.iter_mut().zip(&fields[3..]) {
                    *a = f.parse().map_err(|e| format!("event {}: bad axis {f:?}: {e}", i + 1))?;
                }
            }
            events.push(InputEvent {
                frame,
                port: player - 1,
                input: PortInput { buttons, axes, ..PortInput::default() },
            });
        }
        events.sort_by_key(|e| e.frame);
        Ok(Self { events, cursor: 0 })
    }

    /// The text form (one line per event, `;`-separated so it fits in one argument).
    pub fn to_text(&self) -> String {
        self.events
            .iter()
            .map(|e| {
                let a = e.input.axes;
                format!("{} {} {} {} {} {} {}", e.frame, e.port + 1, e.input.buttons, a[0], a[1], a[2], a[3])
            })
            .collect::<Vec<_>>()
            .join(";")
    }

    /// The events, sorted by frame.
    pub fn events(&self) -> &[InputEvent] {
        &self.events
    }

    /// Applies every event due at or before `frame` (frames must not go backwards).
    pub fn apply(&mut self, frame: u64, snapshot: &mut InputSnapshot) {
        while let Some(e) = self.events.get(self.cursor) {
            if e.frame > frame {
                break;
            }
            snapshot[e.port] = e.input;
            self.cursor += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_numbers_and_axes() {
        let s = InputScript::parse("# demo\n60 1 START\n66 1 -; 120 1 RIGHT+A\n200 2 0x0100 0 -32768 0 5").unwrap();
        let e = s.events();
        assert_eq!(e.len(), 4);
        assert_eq!(
            e[0],
            InputEvent { frame: 60, port: 0, input: PortInput { buttons: buttons::START, ..PortInput::default() } }
        );
        assert_eq!(e[2].input.buttons, buttons::RIGHT | buttons::A);
        assert_eq!(e[3].port, 1);
        assert_eq!(e[3].input, PortInput { buttons: buttons::A, axes: [0, -32768, 0, 5], ..PortInput::default() });
        assert_eq!(InputScript::parse(&s.to_text()).unwrap(), s);
    }

    #[test]
    fn rejects_garbage() {
        assert!(InputScript::parse("60 5 START").is_err());
        assert!(InputScript::parse("x 1 START").is_err());
        assert!(InputScript::parse("1 1 TURBO").is_err());
        assert!(InputScript::parse("1 1").is_err());
    }

    #[test]
    fn applies_events_as_frames_pass() {
        let mut s = InputScript::new().at(10, 1, buttons::START, [0; 4]).at(12, 1, 0, [0; 4]).at(
            11,
            3,
            buttons::B,
            [1, 2, 3, 4],
        );
        let mut snap = InputSnapshot::default();
        s.apply(9, &mut snap);
        assert_eq!(snap, InputSnapshot::default());
        s.apply(10, &mut snap);
        assert_eq!(snap[0].buttons, buttons::START);
        s.apply(11, &mut snap);
        assert_eq!(snap[2].axes, [1, 2, 3, 4]);
        s.apply(50, &mut snap);
        assert_eq!(snap[0].buttons, 0);
    }
}
