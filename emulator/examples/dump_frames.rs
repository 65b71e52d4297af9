//! Runs a core (or the test pattern) unpaced in a child and writes chosen frames as PNG files.
//!
//! cargo run -p retrofarm-emulator --example dump_frames -- CORE ROM OUT_DIR FRAMES [SCRIPT]
//! e.g. `... nestopia "../shared/roms/Alwa's Awakening (Demo).nes" /tmp/alwa 60,200,399 "120 1 START;126 1 -"`

use std::io::Write;

use retrofarm_emulator::{cores, Emulator, EmulatorConfig, InputScript, PacingMode};

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// A PNG with stored (uncompressed) deflate blocks: no dependency needed.
fn png(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    for row in rgb.chunks(width as usize * 3) {
        raw.push(0);
        raw.extend_from_slice(row);
    }
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65535).collect();
    for (i, b) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        z.extend_from_slice(&(b.len() as u16).to_le_bytes());
        z.extend_from_slice(&(!(b.len() as u16)).to_le_bytes());
        z.extend_from_slice(b);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend_from_slice(data);
        out.extend_from_slice(&c);
        out.extend_from_slice(&crc32(&c).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &z);
    chunk(b"IEND", &[]);
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 4 {
        return Err("usage: dump_frames CORE ROM OUT_DIR FRAME,FRAME,... [SCRIPT]".into());
    }
    let core = cores::find_core(&a[0], None).ok_or("core not found")?;
    let wanted: Vec<u64> = a[3].split(',').map(|f| f.parse()).collect::<Result<_, _>>()?;
    let last = *wanted.iter().max().ok_or("no frames")?;
    let mut cfg = EmulatorConfig::core(core, &a[1])
        .pacing(PacingMode::Unpaced)
        .frame_limit(last + 1)
        .frame_slots(last as u32 + 1);
    if let Some(s) = a.get(4) {
        cfg = cfg.input_script(InputScript::parse(s)?);
    }
    let emu = Emulator::spawn(cfg)?;
    emu.wait_exit(std::time::Duration::from_secs(60))?;
    std::fs::create_dir_all(&a[2])?;
    while let Some(f) = emu.next_frame() {
        let m = *f.meta();
        if !wanted.contains(&m.number) {
            continue;
        }
        let bpp = m.format.bytes_per_pixel();
        let mut rgb = Vec::new();
        for row in f.data().chunks(m.stride as usize) {
            for px in row[..m.width as usize * bpp].chunks(bpp) {
                rgb.extend_from_slice(&m.format.to_rgb(px));
            }
        }
        let path = format!("{}/frame-{:05}.png", a[2], m.number);
        std::fs::File::create(&path)?.write_all(&png(m.width, m.height, &rgb))?;
        println!("{path}");
    }
    Ok(())
}
