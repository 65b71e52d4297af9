//! RetroPad button bits for [`crate::PortInput::buttons`] (bit `i` is libretro's
//! `RETRO_DEVICE_ID_JOYPAD_*` id `i`), shared with the data-channel input protocol.

pub use retrofarm_proto::input::button::*;
