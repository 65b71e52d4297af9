//! RetroPad button bits for [`crate::PortInput::buttons`]: bit `i` is libretro's
//! `RETRO_DEVICE_ID_JOYPAD_*` id `i`.

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

/// Names as used in input scripts, in bit order.
pub const NAMES: [&str; 16] =
    ["B", "Y", "SELECT", "START", "UP", "DOWN", "LEFT", "RIGHT", "A", "X", "L", "R", "L2", "R2", "L3", "R3"];

/// The bit for a button name (case-insensitive).
pub fn from_name(name: &str) -> Option<u16> {
    NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)).map(|i| 1 << i)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_match_bits() {
        assert_eq!(super::from_name("start"), Some(super::START));
        assert_eq!(super::from_name("R3"), Some(super::R3));
        assert_eq!(super::from_name("turbo"), None);
    }
}
