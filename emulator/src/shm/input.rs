//! The input block: per port a RetroPad bitmask and four analog axes under a small seqlock.
//! The parent writes (serialised by its own lock); the child snapshots all ports at every
//! `retro_input_poll` and never waits: after a few failed tries it keeps the previous state.

use std::sync::atomic::{fence, Ordering};

pub use retrofarm_proto::input::Pointer;

use super::layout::{InputPort, MAX_PORTS};

/// One player's controls.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortInput {
    /// RetroPad bitmask, see [`crate::buttons`].
    pub buttons: u16,
    /// Left x, left y, right x, right y, each -0x8000..=0x7fff.
    pub axes: [i16; 4],
    /// The pointer (a touch screen).
    pub pointer: Pointer,
}

/// Bit of [`InputPort::buttons`] above the RetroPad's: the pointer presses.
const POINTER_PRESSED: u32 = 1 << 16;

/// All ports' controls (index 0 = player 1).
pub type InputSnapshot = [PortInput; MAX_PORTS];

fn pack_axes(a: [i16; 4]) -> u64 {
    a.iter().enumerate().fold(0u64, |acc, (i, &v)| acc | (u64::from(v as u16) << (16 * i)))
}

fn unpack_axes(v: u64) -> [i16; 4] {
    std::array::from_fn(|i| (v >> (16 * i)) as u16 as i16)
}

/// Writes one port. Callers must not write the same block from two threads at once.
pub fn write_port(port: &InputPort, input: PortInput) {
    let s = port.seq.load(Ordering::Relaxed);
    port.seq.store(s.wrapping_add(1) | 1, Ordering::Relaxed);
    fence(Ordering::Release);
    let pressed = if input.pointer.pressed { POINTER_PRESSED } else { 0 };
    port.buttons.store(u32::from(input.buttons) | pressed, Ordering::Relaxed);
    port.axes.store(pack_axes(input.axes), Ordering::Relaxed);
    let (x, y) = (input.pointer.x as u16, input.pointer.y as u16);
    port.pointer.store(u32::from(x) | (u32::from(y) << 16), Ordering::Relaxed);
    port.seq.store((s | 1).wrapping_add(1), Ordering::Release);
}

/// Reads one port consistently, or None if the writer kept it busy for every try.
pub fn read_port(port: &InputPort) -> Option<PortInput> {
    for _ in 0..16 {
        let s1 = port.seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            std::hint::spin_loop();
            continue;
        }
        let bits = port.buttons.load(Ordering::Relaxed);
        let axes = unpack_axes(port.axes.load(Ordering::Relaxed));
        let xy = port.pointer.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if port.seq.load(Ordering::Relaxed) == s1 {
            let pointer =
                Pointer { x: xy as u16 as i16, y: (xy >> 16) as u16 as i16, pressed: bits & POINTER_PRESSED != 0 };
            return Some(PortInput { buttons: bits as u16, axes, pointer });
        }
    }
    None
}

/// Updates `snapshot` from the block, keeping a port's old state when it could not be read.
pub fn read_all(ports: &[InputPort; MAX_PORTS], snapshot: &mut InputSnapshot) {
    for (port, slot) in ports.iter().zip(snapshot.iter_mut()) {
        if let Some(v) = read_port(port) {
            *slot = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, AtomicU64};

    fn port() -> InputPort {
        InputPort {
            seq: AtomicU32::new(0),
            buttons: AtomicU32::new(0),
            axes: AtomicU64::new(0),
            pointer: AtomicU32::new(0),
        }
    }

    #[test]
    fn round_trips() {
        let p = port();
        assert_eq!(read_port(&p), Some(PortInput::default()));
        let v = PortInput {
            buttons: 0x8009,
            axes: [i16::MIN, -1, 0, i16::MAX],
            pointer: Pointer { x: -0x7fff, y: 0x7fff, pressed: true },
        };
        write_port(&p, v);
        assert_eq!(read_port(&p), Some(v));
        assert_eq!(p.seq.load(Ordering::Relaxed), 2);
        write_port(&p, PortInput::default());
        assert_eq!(p.seq.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_writer_stuck_mid_update_does_not_block_the_reader() {
        let p = port();
        p.seq.store(1, Ordering::Relaxed);
        assert_eq!(read_port(&p), None);
        let ports = [port(), port(), port(), port()];
        ports[1].seq.store(7, Ordering::Relaxed);
        write_port(&ports[0], PortInput { buttons: 1, ..PortInput::default() });
        let mut snap = [PortInput { buttons: 9, ..PortInput::default() }; 4];
        read_all(&ports, &mut snap);
        assert_eq!(snap[0].buttons, 1);
        assert_eq!(snap[1].buttons, 9, "unreadable port keeps its previous state");
        assert_eq!(snap[2].buttons, 0);
    }

    #[test]
    fn concurrent_reads_are_consistent() {
        let p = std::sync::Arc::new(port());
        let w = {
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..20000u16 {
                    write_port(&p, PortInput { buttons: i, axes: [i as i16; 4], ..PortInput::default() });
                }
            })
        };
        while !w.is_finished() {
            if let Some(v) = read_port(&p) {
                assert_eq!(v.axes, [v.buttons as i16; 4]);
            }
        }
        w.join().unwrap();
    }
}
