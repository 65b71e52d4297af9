//! Player input on the WebRTC `input` data channel (browser → worker), binary.
//!
//! A packet carries the **whole state** of one RetroPad, never edges, so a lost or reordered
//! packet cannot leave a button stuck: the channel is unordered with no retransmissions, the
//! browser sends on every change and again every 100 ms, and the worker drops packets older than
//! the newest it has applied (by sequence number, modulo 2^16).
//!
//! | bytes | field |
//! | --- | --- |
//! | 0 | version, `1` |
//! | 1..3 | sequence number, u16 little-endian |
//! | 3..5 | buttons, u16 little-endian, bit *n* = RetroPad id *n* (B=0, Y, SELECT, START, UP, DOWN, LEFT, RIGHT, A, X, L, R, L2, R2, L3, R3=15) |
//! | 5..13 | analog axes, 4 × i16 little-endian: left x, left y, right x, right y |
//! | 13..15 | version 2 only: pointer x, i16 little-endian, -0x7fff (left edge) ..= 0x7fff (right edge) of the picture |
//! | 15..17 | version 2 only: pointer y, the same from the top edge to the bottom one |
//! | 17 | version 2 only: bit 0 = the pointer presses (a finger or the mouse button on the picture) |
//!
//! Version 1 (13 bytes) is a pad alone; version 2 (18 bytes) adds the pointer, which cores with
//! a touch screen (the DS) or a light gun read. A page sends version 2 only while it has a
//! pointer to report.
//! The port is not in the packet: the worker applies it to the port the session chose.

/// Packet size of version 1 (a pad).
pub const INPUT_PACKET_LEN: usize = 13;
/// Packet size of version 2 (a pad and a pointer).
pub const INPUT_POINTER_PACKET_LEN: usize = 18;
/// Version byte of a pad packet.
pub const INPUT_VERSION: u8 = 1;
/// Version byte of a pad-and-pointer packet.
pub const INPUT_POINTER_VERSION: u8 = 2;

/// RetroPad button bits: bit `i` is libretro's `RETRO_DEVICE_ID_JOYPAD_*` id `i`.
pub mod button {
    /// B (bottom face button).
    pub const B: u16 = 1 << 0;
    /// Y (left face button).
    pub const Y: u16 = 1 << 1;
    /// Select.
    pub const SELECT: u16 = 1 << 2;
    /// Start.
    pub const START: u16 = 1 << 3;
    /// D-pad up.
    pub const UP: u16 = 1 << 4;
    /// D-pad down.
    pub const DOWN: u16 = 1 << 5;
    /// D-pad left.
    pub const LEFT: u16 = 1 << 6;
    /// D-pad right.
    pub const RIGHT: u16 = 1 << 7;
    /// A (right face button).
    pub const A: u16 = 1 << 8;
    /// X (top face button).
    pub const X: u16 = 1 << 9;
    /// L shoulder.
    pub const L: u16 = 1 << 10;
    /// R shoulder.
    pub const R: u16 = 1 << 11;
    /// L2 trigger.
    pub const L2: u16 = 1 << 12;
    /// R2 trigger.
    pub const R2: u16 = 1 << 13;
    /// L3 (left stick press).
    pub const L3: u16 = 1 << 14;
    /// R3 (right stick press).
    pub const R3: u16 = 1 << 15;

    /// Names, in bit order (as used in input scripts).
    pub const NAMES: [&str; 16] =
        ["B", "Y", "SELECT", "START", "UP", "DOWN", "LEFT", "RIGHT", "A", "X", "L", "R", "L2", "R2", "L3", "R3"];

    /// The bit for a button name (case-insensitive).
    pub fn from_name(name: &str) -> Option<u16> {
        NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)).map(|i| 1 << i)
    }
}

/// One pad's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PadState {
    /// Sequence number.
    pub seq: u16,
    /// Button bits.
    pub buttons: u16,
    /// Analog axes.
    pub axes: [i16; 4],
    /// The pointer (a touch screen), at rest when the packet carried none.
    pub pointer: Pointer,
}

/// A pointer on the picture, in libretro's coordinates: -0x7fff..=0x7fff across and down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Pointer {
    /// Across, from the left edge (-0x7fff) to the right one (0x7fff).
    pub x: i16,
    /// Down, from the top edge to the bottom one.
    pub y: i16,
    /// Whether it presses (touches).
    pub pressed: bool,
}

/// Why an input packet was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Wrong length for its version.
    #[error(
        "input packet of {0} bytes, expected {INPUT_PACKET_LEN} (version 1) or {INPUT_POINTER_PACKET_LEN} (version 2)"
    )]
    Length(usize),
    /// Unknown version.
    #[error("input packet version {0}, expected {INPUT_VERSION} or {INPUT_POINTER_VERSION}")]
    Version(u8),
}

impl PadState {
    /// Encodes the packet: version 1 while the pointer is at rest at 0,0, else version 2.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(INPUT_POINTER_PACKET_LEN);
        let pointer = self.pointer != Pointer::default();
        b.push(if pointer { INPUT_POINTER_VERSION } else { INPUT_VERSION });
        b.extend_from_slice(&self.seq.to_le_bytes());
        b.extend_from_slice(&self.buttons.to_le_bytes());
        for a in self.axes {
            b.extend_from_slice(&a.to_le_bytes());
        }
        if pointer {
            b.extend_from_slice(&self.pointer.x.to_le_bytes());
            b.extend_from_slice(&self.pointer.y.to_le_bytes());
            b.push(u8::from(self.pointer.pressed));
        }
        b
    }

    /// Decodes a packet of either version.
    pub fn decode(b: &[u8]) -> Result<Self, InputError> {
        let want = match b.first() {
            None => return Err(InputError::Length(0)),
            Some(&INPUT_VERSION) => INPUT_PACKET_LEN,
            Some(&INPUT_POINTER_VERSION) => INPUT_POINTER_PACKET_LEN,
            Some(&v) => return Err(InputError::Version(v)),
        };
        if b.len() != want {
            return Err(InputError::Length(b.len()));
        }
        let le = |i: usize| [b[i], b[i + 1]];
        let pointer = match want {
            INPUT_POINTER_PACKET_LEN => {
                Pointer { x: i16::from_le_bytes(le(13)), y: i16::from_le_bytes(le(15)), pressed: b[17] & 1 == 1 }
            }
            _ => Pointer::default(),
        };
        Ok(Self {
            seq: u16::from_le_bytes(le(1)),
            buttons: u16::from_le_bytes(le(3)),
            axes: std::array::from_fn(|i| i16::from_le_bytes(le(5 + 2 * i))),
            pointer,
        })
    }
}

/// Keeps the newest state of one pad, ignoring reordered older packets.
#[derive(Debug, Clone, Copy, Default)]
pub struct PadTracker {
    last: Option<PadState>,
}

impl PadTracker {
    /// Applies a packet; returns the state to use when it is newer than what was applied.
    pub fn apply(&mut self, p: PadState) -> Option<PadState> {
        let newer = match self.last {
            None => true,
            // Serial-number arithmetic: newer when ahead by less than half the space.
            Some(l) => p.seq != l.seq && p.seq.wrapping_sub(l.seq) < 0x8000,
        };
        if newer {
            self.last = Some(p);
            Some(p)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_is_stable() {
        let mut p = PadState {
            seq: 0x0102,
            buttons: button::A | button::RIGHT,
            axes: [1, -1, 0, i16::MIN],
            pointer: Pointer::default(),
        };
        let b = p.encode();
        assert_eq!(b.len(), INPUT_PACKET_LEN);
        assert_eq!(&b[..5], &[1, 0x02, 0x01, 0x80, 0x01]);
        assert_eq!(PadState::decode(&b).unwrap(), p);
        p.pointer = Pointer { x: -0x7fff, y: 0x0102, pressed: true };
        let b = p.encode();
        assert_eq!(&b[..5], &[2, 0x02, 0x01, 0x80, 0x01]);
        assert_eq!(&b[13..], &[0x01, 0x80, 0x02, 0x01, 1]);
        assert_eq!(PadState::decode(&b).unwrap(), p);
    }

    #[test]
    fn button_names_match_bits() {
        assert_eq!(button::from_name("start"), Some(button::START));
        assert_eq!(button::from_name("R3"), Some(button::R3));
        assert_eq!(button::from_name("turbo"), None);
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(PadState::decode(&[]), Err(InputError::Length(0)));
        assert_eq!(PadState::decode(&[9; INPUT_PACKET_LEN]), Err(InputError::Version(9)));
        // Each version has its own length.
        assert_eq!(PadState::decode(&[1; INPUT_POINTER_PACKET_LEN]), Err(InputError::Length(18)));
        assert_eq!(PadState::decode(&[2; INPUT_PACKET_LEN]), Err(InputError::Length(13)));
    }

    #[test]
    fn older_packets_are_ignored_across_wraparound() {
        let mut t = PadTracker::default();
        let s = |seq| PadState { seq, ..Default::default() };
        assert!(t.apply(s(65534)).is_some());
        assert!(t.apply(s(1)).is_some());
        assert!(t.apply(s(65535)).is_none(), "reordered older packet");
        assert!(t.apply(s(1)).is_none(), "duplicate");
        assert!(t.apply(s(2)).is_some());
    }

    proptest! {
        #[test]
        fn round_trips(seq: u16, buttons: u16, axes: [i16; 4], x: i16, y: i16, pressed: bool) {
            let p = PadState { seq, buttons, axes, pointer: Pointer { x, y, pressed } };
            prop_assert_eq!(PadState::decode(&p.encode()).unwrap(), p);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = PadState::decode(&b);
        }
    }
}
