//! retrofarm-media
