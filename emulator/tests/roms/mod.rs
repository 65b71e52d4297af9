//! Tiny test programs for the systems no free ROM exists for, written here byte by byte (our
//! own code, generated at test time, never committed as binaries): each one fills the screen
//! with one colour chosen by the D-pad of player 1, so a test can see both that frames arrive
//! and that input reaches the game. Also a placeholder PlayStation disc (an empty ISO 9660
//! file system) that lets beetle-psx load and run without a game.
//!
//! | ROM | Picture, by the D-pad held on pad 1 |
//! |---|---|
//! | [`game_boy`] | the whole screen in shade 0 (none), 1 (Right), 2 (Left) or 3 (Up or Down) of the DMG palette |
//! | [`super_nes`] | the backdrop in dark blue (none), red (Right), green (Left), yellow (Down), white (Up), magenta (several) |
//! | [`game_boy_advance`] | the same colours, but yellow for Up and white for Down (KEYINPUT's order) |

/// Our Game Boy test ROM: 32 KiB, no mapper, DMG. The header has no Nintendo logo (the boot
/// ROM would refuse it; gambatte starts without one, from the state the boot ROM leaves) and a
/// correct header checksum.
pub fn game_boy() -> Vec<u8> {
    let mut rom = vec![0u8; 32 * 1024];
    // Entry point: nop; jp $0150.
    rom[0x100..0x104].copy_from_slice(&[0x00, 0xC3, 0x50, 0x01]);
    rom[0x134..0x134 + 14].copy_from_slice(b"RETROFARM TEST");
    rom[0x143] = 0x00; // DMG only
    rom[0x147] = 0x00; // ROM only
    rom[0x148] = 0x00; // 32 KiB
    rom[0x149] = 0x00; // no RAM
    rom[0x14A] = 0x01; // not Japan
    rom[0x14D] = rom[0x134..0x14D].iter().fold(0u8, |x, b| x.wrapping_sub(*b).wrapping_sub(1));
    #[rustfmt::skip]
    let program = [
        0xF3,             // $0150 di
        0x31, 0xFE, 0xFF, //       ld sp,$FFFE
        0x3E, 0x20,       // $0154 loop: ld a,$20 (select the D-pad)
        0xE0, 0x00,       //       ldh ($00),a
        0xF0, 0x00,       //       ldh a,($00) (read three times: the lines settle)
        0xF0, 0x00,       //       ldh a,($00)
        0xF0, 0x00,       //       ldh a,($00)
        0x2F,             //       cpl (pressed = 1)
        0xE6, 0x0F,       //       and $0F: Down Up Left Right
        0x6F,             //       ld l,a
        0x26, 0x02,       //       ld h,$02
        0x7E,             //       ld a,(hl): the palette for this D-pad
        0xE0, 0x47,       //       ldh ($47),a (BGP)
        0x18, 0xEB,       //       jr loop
    ];
    rom[0x150..0x150 + program.len()].copy_from_slice(&program);
    // The palettes at $0200: colour 0 (all the screen shows, the tiles being blank) gets shade 0
    // with nothing held, 1 with Right, 2 with Left, 3 with Up or Down.
    for dpad in 0..16u8 {
        let shade = if dpad & 1 != 0 {
            1
        } else if dpad & 2 != 0 {
            2
        } else if dpad != 0 {
            3
        } else {
            0
        };
        rom[0x200 + dpad as usize] = 0xE4 & !3 | shade;
    }
    rom
}

/// Our Super NES test ROM: 32 KiB LoROM, NTSC, with a valid internal header and checksum. It
/// turns the screen on with no layers, so the picture is the backdrop (colour 0), and sets
/// that colour in every vertical blank from the D-pad read by the automatic joypad read.
pub fn super_nes() -> Vec<u8> {
    let mut rom = vec![0u8; 32 * 1024];
    #[rustfmt::skip]
    let program = [
        0x78,             // $8000 sei
        0x18,             //       clc
        0xFB,             //       xce: native mode, 8-bit A and X
        0xA9, 0x8F,       //       lda #$8F
        0x8D, 0x00, 0x21, //       sta $2100: forced blank while setting up
        0x9C, 0x2C, 0x21, //       stz $212C: no layers on the main screen
        0x9C, 0x21, 0x21, //       stz $2121: CGRAM address 0
        0x9C, 0x22, 0x21, //       stz $2122
        0x9C, 0x22, 0x21, //       stz $2122: colour 0 black
        0xA9, 0x01,       //       lda #$01
        0x8D, 0x00, 0x42, //       sta $4200: automatic joypad read, no NMI
        0xA9, 0x0F,       //       lda #$0F
        0x8D, 0x00, 0x21, //       sta $2100: screen on, full brightness
        0xAD, 0x12, 0x42, // $801E loop: lda $4212
        0x10, 0xFB,       //       bpl loop: until the vertical blank
        0xAD, 0x12, 0x42, // $8023 lda $4212
        0x4A,             //       lsr a
        0xB0, 0xFA,       //       bcs $8023: until the joypad read is done
        0xAD, 0x19, 0x42, //       lda $4219: B Y Select Start Up Down Left Right
        0x29, 0x0F,       //       and #$0F
        0xAA,             //       tax
        0x9C, 0x21, 0x21, //       stz $2121
        0xBD, 0x00, 0x81, //       lda $8100,x
        0x8D, 0x22, 0x21, //       sta $2122: colour 0, low byte
        0xBD, 0x10, 0x81, //       lda $8110,x
        0x8D, 0x22, 0x21, //       sta $2122: high byte
        0xAD, 0x12, 0x42, // $803E lda $4212
        0x30, 0xFB,       //       bmi $803E: until the blank is over
        0x80, 0xD9,       //       bra loop
    ];
    rom[..program.len()].copy_from_slice(&program);
    rom[0x50] = 0x40; // $8050: rti, for the interrupt vectors
    for (dpad, colour) in dpad_colours().iter().enumerate() {
        rom[0x100 + dpad] = *colour as u8;
        rom[0x110 + dpad] = (*colour >> 8) as u8;
    }
    // Internal header at $FFC0 (file offset $7FC0 in LoROM).
    let h = 0x7FC0;
    rom[h..h + 21].copy_from_slice(b"RETROFARM SNES TEST  ");
    rom[h + 0x15] = 0x20; // LoROM
    rom[h + 0x16] = 0x00; // ROM only
    rom[h + 0x17] = 0x05; // 2^5 KiB = 32 KiB
    rom[h + 0x18] = 0x00; // no RAM
    rom[h + 0x19] = 0x01; // North America: NTSC
                          // Vectors: native COP, BRK, ABORT, NMI, IRQ and emulation-mode ones to the rti; reset to $8000.
    for v in [0x7FE4, 0x7FE6, 0x7FE8, 0x7FEA, 0x7FEE, 0x7FF4, 0x7FF8, 0x7FFA, 0x7FFE] {
        rom[v..v + 2].copy_from_slice(&0x8050u16.to_le_bytes());
    }
    rom[0x7FFC..0x7FFE].copy_from_slice(&0x8000u16.to_le_bytes());
    // Checksum and its complement: with the placeholders FFFF/0000 the sum is the final one.
    rom[h + 0x1C..h + 0x20].copy_from_slice(&[0xFF, 0xFF, 0x00, 0x00]);
    let sum = rom.iter().fold(0u16, |s, b| s.wrapping_add(u16::from(*b)));
    rom[h + 0x1C..h + 0x1E].copy_from_slice(&(!sum).to_le_bytes());
    rom[h + 0x1E..h + 0x20].copy_from_slice(&sum.to_le_bytes());
    rom
}

/// Our Game Boy Advance test ROM: ARM code at the cartridge's start, the header fields mGBA
/// checks (the branch at 0, the fixed byte 0x96 at 0xB2, the complement check) and no Nintendo
/// logo (mGBA starts cartridges itself when it has no BIOS file). The screen shows the backdrop
/// (display mode 0, no layers), palette colour 0, which the program sets from the D-pad read
/// from KEYINPUT (bits Down Up Left Right, where the SNES has Up Down Left Right: Up shows
/// yellow and Down white).
pub fn game_boy_advance() -> Vec<u8> {
    let mut rom = vec![0u8; 32 * 1024];
    #[rustfmt::skip]
    let program: [u32; 14] = [
        0xEA00_002E, // $00  b $C0
        0xE3A0_0404, // $C0  mov r0, #0x04000000: I/O registers
        0xE3A0_1405, //      mov r1, #0x05000000: palette RAM
        0xE3A0_2000, //      mov r2, #0
        0xE1C0_20B0, //      strh r2, [r0]: DISPCNT mode 0, no layers
        0xE280_3E13, //      add r3, r0, #0x130: KEYINPUT
        0xE28F_4024, //      add r4, pc, #0x24: the colours at $100
        0xE1D3_20B0, // $D8  loop: ldrh r2, [r3]
        0xE1E0_2002, //      mvn r2, r2: pressed = 1
        0xE202_20F0, //      and r2, r2, #0xF0: Down Up Left Right
        0xE1A0_21A2, //      mov r2, r2, lsr #3: two bytes a colour
        0xE194_20B2, //      ldrh r2, [r4, r2]
        0xE1C1_20B0, //      strh r2, [r1]: colour 0
        0xEAFF_FFF8, //      b loop
    ];
    rom[..4].copy_from_slice(&program[0].to_le_bytes());
    for (i, word) in program[1..].iter().enumerate() {
        rom[0xC0 + 4 * i..0xC4 + 4 * i].copy_from_slice(&word.to_le_bytes());
    }
    for (dpad, colour) in dpad_colours().iter().enumerate() {
        rom[0x100 + 2 * dpad..0x102 + 2 * dpad].copy_from_slice(&colour.to_le_bytes());
    }
    rom[0xA0..0xA0 + 12].copy_from_slice(b"RETROFARM GB");
    rom[0xB2] = 0x96;
    rom[0xBD] = rom[0xA0..0xBD].iter().fold(0u8, |c, b| c.wrapping_sub(*b)).wrapping_sub(0x19);
    rom
}

/// Backdrop colours (BGR555, as the SNES and the GBA store them) by a D-pad index (bit 0 Right,
/// bit 1 Left, bits 2 and 3 the vertical directions in the console's order): dark blue with
/// nothing held, red, green, yellow (bit 2), white (bit 3), magenta for several.
fn dpad_colours() -> [u16; 16] {
    let mut colours = [0x7C1F; 16];
    colours[0] = 0x3000;
    colours[1] = 0x001F;
    colours[2] = 0x03E0;
    colours[4] = 0x03FF;
    colours[8] = 0x7FFF;
    colours
}

/// CD-ROM EDC: CRC-32 with the polynomial 0x8001801B, bit-reversed, no inversion.
fn edc(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ if crc & 1 != 0 { 0xD801_8001 } else { 0 };
        }
    }
    crc
}

/// A placeholder PlayStation disc in `dir`: `name.cue` and `name.bin`, one Mode 1 data track
/// of 32 raw 2352-byte sectors (sync, header, EDC; mednafen checks the EDC of every sector it
/// reads) holding an empty ISO 9660 file system. Returns the cue sheet's path. There is no
/// program on it: with it, beetle-psx loads and runs the BIOS it is given.
pub fn psx_disc(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    const SECTOR: usize = 2048;
    const SECTORS: usize = 32;
    let both32 = |v: u32| [v.to_le_bytes(), v.to_be_bytes()].concat();
    let both16 = |v: u16| [v.to_le_bytes(), v.to_be_bytes()].concat();
    let dir_record = |name: u8| {
        let mut r = vec![0u8; 34];
        r[0] = 34;
        r[2..10].copy_from_slice(&both32(18)); // the root directory's sector
        r[10..18].copy_from_slice(&both32(SECTOR as u32));
        r[25] = 2; // a directory
        r[28..32].copy_from_slice(&both16(1));
        r[32] = 1;
        r[33] = name; // 0: ".", 1: ".."
        r
    };
    let mut iso = vec![0u8; SECTOR * SECTORS];
    let pvd = &mut iso[16 * SECTOR..17 * SECTOR];
    pvd[0] = 1;
    pvd[1..6].copy_from_slice(b"CD001");
    pvd[6] = 1;
    pvd[80..88].copy_from_slice(&both32(SECTORS as u32));
    pvd[120..124].copy_from_slice(&both16(1));
    pvd[124..128].copy_from_slice(&both16(1));
    pvd[128..132].copy_from_slice(&both16(SECTOR as u16));
    pvd[156..190].copy_from_slice(&dir_record(0));
    let terminator = &mut iso[17 * SECTOR..18 * SECTOR];
    terminator[0] = 0xFF;
    terminator[1..6].copy_from_slice(b"CD001");
    terminator[6] = 1;
    let root = [dir_record(0), dir_record(1)].concat();
    iso[18 * SECTOR..18 * SECTOR + root.len()].copy_from_slice(&root);

    let bcd = |v: usize| (((v / 10) << 4) | (v % 10)) as u8;
    let mut raw = Vec::with_capacity(2352 * SECTORS);
    for lba in 0..SECTORS {
        let mut s = [0u8; 2352];
        s[1..11].fill(0xFF);
        let at = lba + 150; // two seconds of pregap
        s[12..16].copy_from_slice(&[bcd(at / 75 / 60), bcd(at / 75 % 60), bcd(at % 75), 1]);
        s[16..16 + SECTOR].copy_from_slice(&iso[lba * SECTOR..(lba + 1) * SECTOR]);
        let e = edc(&s[..2064]);
        s[2064..2068].copy_from_slice(&e.to_le_bytes());
        raw.extend_from_slice(&s);
    }
    std::fs::write(dir.join(format!("{name}.bin")), raw).unwrap();
    let cue = dir.join(format!("{name}.cue"));
    std::fs::write(&cue, format!("FILE \"{name}.bin\" BINARY\n  TRACK 01 MODE1/2352\n    INDEX 01 00:00:00\n"))
        .unwrap();
    cue
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edc_matches_the_reference_table_algorithm() {
        // Entries of ECMA-130's EDC table, as mednafen's edc_crc32.c has them.
        assert_eq!(edc(&[1]), 0x9091_0101);
        assert_eq!(edc(&[2]), 0x9121_0201);
        assert_eq!(edc(&[0x80]), 0xD801_8001);
    }
}
