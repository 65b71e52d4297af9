//! Misbehaviour on demand, for the sandbox tests: content whose text is
//! `retrofarm-probe misbehave KIND [after FRAMES] [target TARGET]` makes the probe core, after
//! FRAMES good frames (default 30), do what a broken or hostile core would:
//!
//! | KIND      | what it does                                                          |
//! |-----------|-----------------------------------------------------------------------|
//! | `crash`   | writes through a null pointer (SIGSEGV)                               |
//! | `hang`    | spins forever inside `retro_run`                                      |
//! | `hog`     | allocates and touches 64 MiB more every frame                         |
//! | `garbage` | overwrites its shared memory with noise every frame                   |
//! | `flood`   | writes 1 MiB without a newline to stderr every frame                  |
//! | `socket`  | connects to TARGET (`ip:port`) over TCP and sends it a UDP datagram   |
//! | `files`   | writes the file TARGET, and the ROM it was started with               |
//! | `spawn`   | starts `/bin/sh -c "echo escaped > TARGET"`                             |
//!
//! The last four then carry on as a healthy probe: the tests check that their attempts failed.
//! Each attempt's outcome is printed on stderr.

use std::io::Write as _;
use std::path::PathBuf;

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// SIGSEGV.
    Crash,
    /// Never return from `retro_run`.
    Hang,
    /// Allocate without bound.
    Hog,
    /// Scribble over the shared memory.
    Garbage,
    /// Flood stderr.
    Flood,
    /// Reach the network.
    Socket(String),
    /// Write outside the room's folder.
    Files(PathBuf),
    /// Start another program.
    Spawn(PathBuf),
}

/// A misbehaviour and when it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misbehaviour {
    /// What.
    pub kind: Kind,
    /// After how many good frames.
    pub after: u64,
    /// The content file (the `files` kind writes to it too).
    pub rom: PathBuf,
    hogged: Vec<Vec<u8>>,
    done: bool,
}

const MAGIC: &str = "retrofarm-probe misbehave ";

impl Misbehaviour {
    /// Parses content text; None for ordinary content.
    pub fn parse(text: &str, rom: PathBuf) -> Result<Option<Self>, String> {
        let Some(rest) = text.trim().strip_prefix(MAGIC) else { return Ok(None) };
        let mut words = rest.split_whitespace();
        let kind = words.next().ok_or("misbehave: which kind?")?;
        let (mut after, mut target) = (30, None);
        while let Some(w) = words.next() {
            let v = words.next().ok_or_else(|| format!("misbehave: {w} needs a value"))?;
            match w {
                "after" => after = v.parse().map_err(|e| format!("misbehave: after {v}: {e}"))?,
                "target" => target = Some(v.to_owned()),
                other => return Err(format!("misbehave: unknown word {other}")),
            }
        }
        let need = |k: &str| target.clone().ok_or_else(|| format!("misbehave: {k} needs a target"));
        let kind = match kind {
            "crash" => Kind::Crash,
            "hang" => Kind::Hang,
            "hog" => Kind::Hog,
            "garbage" => Kind::Garbage,
            "flood" => Kind::Flood,
            "socket" => Kind::Socket(need("socket")?),
            "files" => Kind::Files(need("files")?.into()),
            "spawn" => Kind::Spawn(need("spawn")?.into()),
            other => return Err(format!("misbehave: unknown kind {other}")),
        };
        Ok(Some(Self { kind, after, rom, hogged: Vec::new(), done: false }))
    }

    /// Called at the start of each frame with its number.
    pub fn frame(&mut self, frame: u64) {
        if frame < self.after {
            return;
        }
        match &self.kind {
            Kind::Crash => crash(),
            Kind::Hang => loop {
                std::hint::spin_loop();
            },
            Kind::Hog => {
                let mut block = vec![0u8; 64 << 20];
                // Touch every page so the memory is really used.
                for b in block.iter_mut().step_by(4096) {
                    *b = 1;
                }
                self.hogged.push(block);
            }
            Kind::Garbage => scribble_shared_memory(frame),
            Kind::Flood => {
                let _ = std::io::stderr().write_all(&vec![b'x'; 1 << 20]);
            }
            _ if self.done => {}
            Kind::Socket(target) => {
                self.done = true;
                let tcp = std::net::TcpStream::connect_timeout(
                    &target.parse().expect("socket target is ip:port"),
                    std::time::Duration::from_secs(1),
                );
                report("tcp connect", tcp.map(drop));
                let udp = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(b"escaped", target.as_str()));
                report("udp send", udp.map(drop));
            }
            Kind::Files(target) => {
                self.done = true;
                report("write target", std::fs::write(target, b"escaped"));
                let rom = std::fs::OpenOptions::new().append(true).open(&self.rom).and_then(|mut f| f.write_all(b"x"));
                report("append to rom", rom);
            }
            Kind::Spawn(target) => {
                self.done = true;
                let cmd = format!("echo escaped > {}", target.display());
                report("spawn", std::process::Command::new("/bin/sh").args(["-c", &cmd]).status().map(drop));
            }
        }
    }
}

fn report(what: &str, r: std::io::Result<()>) {
    match r {
        Ok(()) => eprintln!("probe misbehave: {what}: succeeded"),
        Err(e) => eprintln!("probe misbehave: {what}: failed: {e}"),
    }
}

#[allow(unsafe_code)]
fn crash() -> ! {
    // SAFETY: none; that is the point. A volatile write through null faults (SIGSEGV).
    unsafe { std::ptr::write_volatile(std::ptr::null_mut::<u64>(), 1) };
    unreachable!("a write through null returned");
}

/// Overwrites every shared mapping named `memfd:retrofarm*` (the frames, audio and counters
/// the worker reads) with noise.
#[allow(unsafe_code)]
fn scribble_shared_memory(seed: u64) {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return };
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for line in maps.lines().filter(|l| l.contains("memfd:retrofarm")) {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else { continue };
        if !perms.starts_with("rw") {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else { continue };
        for addr in (start..end).step_by(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // SAFETY: none for the worker's reader, by design; for this process the address is
            // inside a live read-write mapping listed by the kernel.
            unsafe { std::ptr::write_volatile(addr as *mut u64, x) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_names_a_misbehaviour_or_none() {
        let rom = PathBuf::from("/r");
        assert_eq!(Misbehaviour::parse("any game", rom.clone()), Ok(None));
        let m = Misbehaviour::parse("retrofarm-probe misbehave hang after 5\n", rom.clone()).unwrap().unwrap();
        assert_eq!((m.kind, m.after), (Kind::Hang, 5));
        let m =
            Misbehaviour::parse("retrofarm-probe misbehave socket target 127.0.0.1:9", rom.clone()).unwrap().unwrap();
        assert_eq!(m.kind, Kind::Socket("127.0.0.1:9".into()));
        assert!(Misbehaviour::parse("retrofarm-probe misbehave files", rom.clone()).unwrap_err().contains("target"));
        assert!(Misbehaviour::parse("retrofarm-probe misbehave dance", rom).unwrap_err().contains("dance"));
    }
}
