//! Audio/video facts about a running core: pixel formats and the core's av info.

/// Pixel layout of a frame, as libretro names it. Values match `enum retro_pixel_format`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum PixelFormat {
    /// 0RGB1555, native-endian u16 per pixel (libretro's default format).
    Orgb1555 = 0,
    /// XRGB8888, native-endian u32 per pixel (nestopia).
    Xrgb8888 = 1,
    /// RGB565, native-endian u16 per pixel (mgba).
    Rgb565 = 2,
}

impl PixelFormat {
    /// Parses libretro's `retro_pixel_format` value.
    pub fn from_raw(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::Orgb1555),
            1 => Some(Self::Xrgb8888),
            2 => Some(Self::Rgb565),
            _ => None,
        }
    }

    /// libretro's value for this format.
    pub fn to_raw(self) -> u32 {
        self as u32
    }

    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Xrgb8888 => 4,
            Self::Rgb565 | Self::Orgb1555 => 2,
        }
    }

    /// Converts one pixel (given as its little-endian bytes) to 8-bit R, G, B.
    pub fn to_rgb(self, px: &[u8]) -> [u8; 3] {
        match self {
            Self::Xrgb8888 => [px[2], px[1], px[0]],
            Self::Rgb565 => {
                let v = u16::from_le_bytes([px[0], px[1]]);
                let r = ((v >> 11) & 0x1f) as u8;
                let g = ((v >> 5) & 0x3f) as u8;
                let b = (v & 0x1f) as u8;
                [(r << 3) | (r >> 2), (g << 2) | (g >> 4), (b << 3) | (b >> 2)]
            }
            Self::Orgb1555 => {
                let v = u16::from_le_bytes([px[0], px[1]]);
                let r = ((v >> 10) & 0x1f) as u8;
                let g = ((v >> 5) & 0x1f) as u8;
                let b = (v & 0x1f) as u8;
                [(r << 3) | (r >> 2), (g << 3) | (g >> 2), (b << 3) | (b >> 2)]
            }
        }
    }
}

/// What `retro_get_system_av_info` (and later SET_GEOMETRY / SET_SYSTEM_AV_INFO) reported,
/// plus the negotiated pixel format.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct AvInfo {
    /// Nominal frame width in pixels.
    pub base_width: u32,
    /// Nominal frame height in pixels.
    pub base_height: u32,
    /// Largest width the core may ever output.
    pub max_width: u32,
    /// Largest height the core may ever output.
    pub max_height: u32,
    /// Display aspect ratio; 0 or less means width/height.
    pub aspect_ratio: f32,
    /// Quarter turns counter-clockwise the picture is to be shown at (the core's
    /// `SET_ROTATION`, 0..=3: a vertical WonderSwan game asks for 1).
    pub rotation: u8,
    /// Exact frame rate, e.g. 59.727500569606 for the GBA.
    pub fps: f64,
    /// Audio sample rate in Hz, e.g. 32768 for mGBA.
    pub sample_rate: f64,
    /// Pixel format of the frames.
    pub pixel_format: PixelFormat,
}

impl AvInfo {
    /// Bytes a frame slot must hold for the largest frame this core can output, whatever its
    /// pixel format (4 bytes per pixel, the widest).
    pub fn max_frame_bytes(&self) -> u64 {
        u64::from(self.max_width.max(self.base_width)) * u64::from(self.max_height.max(self.base_height)) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_formats_round_trip_and_convert() {
        for f in [PixelFormat::Orgb1555, PixelFormat::Xrgb8888, PixelFormat::Rgb565] {
            assert_eq!(PixelFormat::from_raw(f.to_raw()), Some(f));
        }
        assert_eq!(PixelFormat::from_raw(3), None);
        assert_eq!(PixelFormat::Xrgb8888.to_rgb(&[0x30, 0x20, 0x10, 0]), [0x10, 0x20, 0x30]);
        assert_eq!(PixelFormat::Rgb565.to_rgb(&0xffffu16.to_le_bytes()), [255, 255, 255]);
        assert_eq!(PixelFormat::Rgb565.to_rgb(&0xf800u16.to_le_bytes()), [255, 0, 0]);
        assert_eq!(PixelFormat::Orgb1555.to_rgb(&0x03e0u16.to_le_bytes()), [0, 255, 0]);
    }
}
