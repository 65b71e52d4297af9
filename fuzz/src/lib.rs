//! Helpers shared by the fuzz targets (see docs/fuzzing.md).

use std::fmt::Display;

/// Asserts that an error explains itself: a parser's error ends up in a log line or in a
/// message to the peer, and an empty one tells nobody anything.
pub fn check_error(e: &impl Display) {
    let text = e.to_string();
    assert!(!text.trim().is_empty(), "an error with an empty message");
}

/// Cuts `data` into consecutive pieces whose lengths cycle through sizes derived from `seed`
/// (1 to 64 bytes, or everything at once when `seed` is 0): how a stream arrives in reads of
/// arbitrary size. Concatenated, the pieces are `data`.
pub fn pieces(data: &[u8], seed: u8) -> Vec<&[u8]> {
    if seed == 0 {
        return vec![data];
    }
    let sizes = [usize::from(seed & 0x3f) + 1, usize::from(seed >> 6) + 1, usize::from(seed % 7) + 3];
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < data.len() {
        let n = sizes[i % sizes.len()].min(data.len() - at);
        out.push(&data[at..at + n]);
        at += n;
        i += 1;
    }
    out
}
