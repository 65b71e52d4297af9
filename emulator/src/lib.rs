//! retrofarm-emulator
