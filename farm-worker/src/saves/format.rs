//! The save file: what a room's game state looks like at rest. Pure: bytes in, bytes out.
//!
//! ```text
//! "RFSAVE\r\n"                 8 bytes of magic (a text tool shows the name, a CRLF mangling shows)
//! version                      u16 LE, FORMAT_VERSION
//! header length                u32 LE, then that many bytes of JSON: SaveHeader
//! state                        header.state_len bytes (the core's serialized state)
//! sram                         header.sram_len bytes (battery RAM)
//! checksum                     u64 LE, xxh3 of every byte before it
//! ```
//!
//! The checksum finds truncated and damaged files (not forgeries: saves come from our own
//! workers and stores); a file that fails any check is refused with what is wrong, and the
//! caller keeps whatever save it had.

use serde::{Deserialize, Serialize};

/// The first bytes of every save file.
pub const MAGIC: &[u8; 8] = b"RFSAVE\r\n";
/// The format this code writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// The largest save accepted (a PlayStation state with its memory card is a few MiB).
pub const MAX_SAVE_BYTES: usize = 64 << 20;
/// The largest header accepted.
const MAX_HEADER_BYTES: usize = 16 << 10;

/// What a save is of, and where its parts lie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveHeader {
    /// The game's name, as the worker's game list has it.
    pub game: String,
    /// The core's file name (a state only loads into the core that wrote it).
    pub core: String,
    /// When it was written, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Bytes of serialized state (0: the core cannot save states).
    pub state_len: u64,
    /// Bytes of battery RAM (0: the game has none).
    pub sram_len: u64,
}

/// A decoded save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveFile {
    /// What it is of.
    pub header: SaveHeader,
    /// The core's serialized state, when it could save one.
    pub state: Option<Vec<u8>>,
    /// Battery RAM, when the game has some.
    pub sram: Option<Vec<u8>>,
}

/// Why bytes are not a save this worker can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not a save file at all.
    #[error("not a retrofarm save file (wrong magic bytes)")]
    NotASave,
    /// Written by a newer worker.
    #[error("save format version {0} is newer than this worker reads ({FORMAT_VERSION}): upgrade the worker")]
    TooNew(u16),
    /// Shorter than its header says: an interrupted upload or a damaged file.
    #[error("the save is truncated ({have} bytes, {want} expected)")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes the header promises.
        want: usize,
    },
    /// Larger than any save should be.
    #[error("the save is {0} bytes, more than the {MAX_SAVE_BYTES} accepted")]
    TooLarge(usize),
    /// The checksum does not match: damaged.
    #[error("the save is damaged (checksum mismatch)")]
    Damaged,
    /// The header is not what this version writes.
    #[error("the save's header is malformed: {0}")]
    BadHeader(String),
}

impl SaveFile {
    /// Encodes the save.
    pub fn encode(&self) -> Vec<u8> {
        let header = SaveHeader {
            state_len: self.state.as_ref().map_or(0, |s| s.len() as u64),
            sram_len: self.sram.as_ref().map_or(0, |s| s.len() as u64),
            ..self.header.clone()
        };
        let json = serde_json::to_vec(&header).expect("a save header always serialises");
        let body = header.state_len as usize + header.sram_len as usize;
        let mut out = Vec::with_capacity(8 + 2 + 4 + json.len() + body + 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(self.state.as_deref().unwrap_or_default());
        out.extend_from_slice(self.sram.as_deref().unwrap_or_default());
        let sum = xxhash_rust::xxh3::xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Decodes and checks a save.
    pub fn decode(bytes: &[u8]) -> Result<SaveFile, FormatError> {
        if bytes.len() > MAX_SAVE_BYTES {
            return Err(FormatError::TooLarge(bytes.len()));
        }
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(FormatError::NotASave);
        }
        let fixed = MAGIC.len() + 2 + 4;
        let truncated = |want: usize| FormatError::Truncated { have: bytes.len(), want };
        if bytes.len() < fixed {
            return Err(truncated(fixed + 8));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version > FORMAT_VERSION {
            return Err(FormatError::TooNew(version));
        }
        if version == 0 {
            return Err(FormatError::BadHeader("version 0".into()));
        }
        let header_len = u32::from_le_bytes(bytes[10..14].try_into().expect("4 bytes")) as usize;
        if header_len > MAX_HEADER_BYTES {
            return Err(FormatError::BadHeader(format!("a header of {header_len} bytes")));
        }
        if bytes.len() < fixed + header_len {
            return Err(truncated(fixed + header_len + 8));
        }
        let header: SaveHeader = serde_json::from_slice(&bytes[fixed..fixed + header_len])
            .map_err(|e| FormatError::BadHeader(e.to_string()))?;
        let body = usize::try_from(header.state_len)
            .ok()
            .zip(usize::try_from(header.sram_len).ok())
            .and_then(|(a, b)| a.checked_add(b))
            .filter(|&n| n <= MAX_SAVE_BYTES)
            .ok_or_else(|| FormatError::BadHeader("part lengths out of range".into()))?;
        let want = fixed + header_len + body + 8;
        if bytes.len() != want {
            return Err(if bytes.len() < want {
                truncated(want)
            } else {
                FormatError::BadHeader(format!("{} bytes after the save", bytes.len() - want))
            });
        }
        let (content, sum) = bytes.split_at(want - 8);
        if xxhash_rust::xxh3::xxh3_64(content) != u64::from_le_bytes(sum.try_into().expect("8 bytes")) {
            return Err(FormatError::Damaged);
        }
        let state_at = fixed + header_len;
        let sram_at = state_at + header.state_len as usize;
        let part = |from: usize, len: u64| (len > 0).then(|| bytes[from..from + len as usize].to_vec());
        Ok(SaveFile { state: part(state_at, header.state_len), sram: part(sram_at, header.sram_len), header })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SaveFile {
        SaveFile {
            header: SaveHeader {
                game: "Retrofarm Walk".into(),
                core: "nestopia_libretro.so".into(),
                created_ms: 1_700_000_000_000,
                state_len: 0,
                sram_len: 0,
            },
            state: Some((0..5000u32).map(|i| (i * 7) as u8).collect()),
            sram: Some(vec![0xab; 8192]),
        }
    }

    #[test]
    fn round_trips_with_and_without_parts() {
        let s = sample();
        let back = SaveFile::decode(&s.encode()).unwrap();
        assert_eq!(back.state, s.state);
        assert_eq!(back.sram, s.sram);
        assert_eq!((back.header.state_len, back.header.sram_len), (5000, 8192));
        assert_eq!(back.header.game, "Retrofarm Walk");
        for (state, sram) in [(None, None), (Some(vec![1]), None), (None, Some(vec![2; 3]))] {
            let s = SaveFile { state, sram, ..sample() };
            let back = SaveFile::decode(&s.encode()).unwrap();
            assert_eq!((back.state, back.sram), (s.state, s.sram));
        }
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            let err = SaveFile::decode(&bytes[..len]).unwrap_err();
            assert!(
                matches!(err, FormatError::Truncated { .. } | FormatError::NotASave | FormatError::BadHeader(_)),
                "cut at {len}: {err}"
            );
        }
        // Flip one bit in each of a spread of positions: never accepted.
        for at in (0..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(SaveFile::decode(&bad).is_err(), "flipped byte {at} accepted");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(SaveFile::decode(&longer), Err(FormatError::BadHeader(_))));
    }

    #[test]
    fn foreign_and_future_files_say_what_they_are() {
        assert_eq!(SaveFile::decode(b"PK\x03\x04 a zip file").unwrap_err(), FormatError::NotASave);
        let mut future = sample().encode();
        future[8..10].copy_from_slice(&2u16.to_le_bytes());
        assert_eq!(SaveFile::decode(&future).unwrap_err(), FormatError::TooNew(2));
        assert!(SaveFile::decode(&vec![0; MAX_SAVE_BYTES + 1]).unwrap_err().to_string().contains("more than"));
        // A header claiming huge parts is refused before anything is allocated.
        let mut huge = sample();
        huge.state = None;
        huge.sram = None;
        let mut bytes = huge.encode();
        let json = br#"{"game":"g","core":"c","created_ms":0,"state_len":18446744073709551615,"sram_len":1}"#;
        bytes.truncate(10);
        bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(json);
        assert!(matches!(SaveFile::decode(&bytes), Err(FormatError::BadHeader(_))));
    }
}
