//! Save files (`farm_worker::saves::format::SaveFile::decode`, the "RFSAVE" format): what the
//! worker reads back from the save store (a directory or an S3 bucket).
//!
//! Properties: no panic; a decoded save's parts have the lengths its header says; it encodes
//! to a save that decodes to the same thing, byte for byte the input when the input's header
//! JSON was written the way the encoder writes it; errors say something.
#![no_main]

use farm_worker::saves::format::{SaveFile, FORMAT_VERSION, MAGIC};
use libfuzzer_sys::fuzz_target;
use retrofarm_fuzz::check_error;

fuzz_target!(|data: &[u8]| {
    match SaveFile::decode(data) {
        Ok(save) => {
            let h = &save.header;
            assert_eq!(save.state.as_ref().map_or(0, |s| s.len() as u64), h.state_len);
            assert_eq!(save.sram.as_ref().map_or(0, |s| s.len() as u64), h.sram_len);
            assert!(save.state.as_ref().is_none_or(|s| !s.is_empty()));
            assert!(save.sram.as_ref().is_none_or(|s| !s.is_empty()));
            assert_eq!(&data[..8], MAGIC);
            let enc = save.encode();
            assert_eq!(SaveFile::decode(&enc).as_ref(), Ok(&save), "round trip changed the save");
            let header_len = u32::from_le_bytes(data[10..14].try_into().unwrap()) as usize;
            let canonical = serde_json::to_vec(h).unwrap();
            if data[14..14 + header_len] == canonical[..] && u16::from_le_bytes([data[8], data[9]]) == FORMAT_VERSION {
                assert_eq!(enc, data, "a canonical save does not re-encode to itself");
            }
        }
        Err(e) => check_error(&e),
    }
});
