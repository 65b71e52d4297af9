//! The emulator child's sandbox, applied by the child to itself before it loads the core, so
//! that a third-party core on a user-chosen ROM can harm only its own room:
//!
//! - **files** ([`landlock`]): read-only the system libraries, the core, the ROM and the BIOS
//!   folder; read-write the room's own folder; nothing else (not the worker's configuration or
//!   keys, not other rooms' folders, not other processes' `/proc`);
//! - **network and processes** ([`seccomp`], and Landlock's TCP rules): no sockets, no new
//!   processes or exec, no signals but to itself, no tracing;
//! - **resources** (`setrlimit`): address space (a core that allocates without bound fails its
//!   own allocation), file size (a core that writes without bound), open files, no core dumps.
//!
//! [`Mode::Auto`] enforces what the kernel offers and reports the rest; [`Mode::Required`]
//! refuses to start the game without every layer. docs/sandbox.md says what each layer stops.

pub mod landlock;
pub mod seccomp;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use landlock::{Access, Ruleset};

/// How strictly the sandbox is applied.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// No sandbox (debugging a core).
    Off,
    /// Every layer the kernel offers; missing ones are reported as warnings.
    #[default]
    Auto,
    /// Every layer, or the game does not start.
    Required,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Mode::Off),
            "auto" => Ok(Mode::Auto),
            "required" => Ok(Mode::Required),
            other => Err(format!("sandbox mode {other:?}: expected off, auto or required")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Off => "off",
            Mode::Auto => "auto",
            Mode::Required => "required",
        })
    }
}

/// Default address-space limit of an emulator child (MiB): Debian's nestopia and mgba with
/// their libraries and rings map 26 and 44 MiB at their peak (docs/sandbox.md).
pub const DEFAULT_MEMORY_MIB: u64 = 1024;
/// Largest file a child may write (MiB) besides its shared memory: battery saves are kilobytes.
const FILE_SIZE_MIB: u64 = 64;
/// Open files a child may hold.
const OPEN_FILES: u64 = 256;

/// What the child may touch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Off, auto or required.
    pub mode: Mode,
    /// Paths the child may read (files or folders, recursively).
    pub read: Vec<PathBuf>,
    /// Folders the child may read and write.
    pub write: Vec<PathBuf>,
    /// Address-space limit in bytes (None = unlimited).
    pub memory_limit: Option<u64>,
}

/// System paths every core needs to read: libraries and the loader's cache, the time zone,
/// the CPU list glibc sizes its arenas with, and the harmless devices.
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/sys/devices/system/cpu",
    "/dev/zero",
    "/dev/urandom",
    "/dev/random",
];

impl Policy {
    /// The policy of a room: its game files (core, ROM, battery save) and the BIOS folder
    /// read-only, the room's own folder read-write.
    pub fn for_room(
        mode: Mode,
        game_files: &[&Path],
        system_dir: &Path,
        save_dir: &Path,
        memory_limit: Option<u64>,
    ) -> Self {
        let mut read: Vec<PathBuf> = SYSTEM_READ.iter().map(PathBuf::from).collect();
        read.extend(game_files.iter().map(|p| p.to_path_buf()));
        read.push(system_dir.to_path_buf());
        Self { mode, read, write: vec![save_dir.to_path_buf()], memory_limit }
    }
}

/// What [`apply`] enforced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The Landlock ABI when file rules are enforced.
    pub landlock: Option<landlock::Enforced>,
    /// The system-call filter is installed.
    pub seccomp: bool,
    /// The address-space limit in bytes.
    pub memory_limit: Option<u64>,
    /// Layers that could not be applied, and why.
    pub missing: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(l) = self.landlock {
            let mut s = format!("landlock ABI {} (files", l.abi);
            if l.tcp {
                s.push_str(", TCP");
            }
            if l.scoped {
                s.push_str(", signals");
            }
            s.push(')');
            parts.push(s);
        }
        if self.seccomp {
            parts.push("seccomp (no sockets, processes or exec)".into());
        }
        if let Some(m) = self.memory_limit {
            parts.push(format!("memory {} MiB", m >> 20));
        }
        write!(f, "{}", if parts.is_empty() { "none".to_string() } else { parts.join(", ") })?;
        if !self.missing.is_empty() {
            write!(f, "; missing: {}", self.missing.join("; "))?;
        }
        Ok(())
    }
}

/// Applies `policy` to the calling process, which must not have started other threads yet.
/// In [`Mode::Required`] a missing layer is an error; in [`Mode::Auto`] it is listed in the
/// report.
pub fn apply(policy: &Policy) -> io::Result<Report> {
    let mut report = Report::default();
    if policy.mode == Mode::Off {
        return Ok(report);
    }
    limits(policy.memory_limit)?;
    report.memory_limit = policy.memory_limit;
    no_new_privs()?;
    match restrict_files(policy) {
        Ok(enforced) => report.landlock = Some(enforced),
        Err(e) => report.missing.push(format!("landlock: {e}")),
    }
    match seccomp::NATIVE_ARCH {
        Some(arch) => match seccomp::install(&seccomp::program(arch, std::process::id())) {
            Ok(()) => report.seccomp = true,
            Err(e) => report.missing.push(format!("seccomp: {e}")),
        },
        None => report.missing.push("seccomp: no filter for this architecture".into()),
    }
    if policy.mode == Mode::Required && !report.missing.is_empty() {
        return Err(io::Error::other(format!(
            "the sandbox is required but incomplete ({}); run on Linux ≥ 5.13 with Landlock enabled (lsm=landlock), or set emulator_sandbox = \"auto\"",
            report.missing.join("; ")
        )));
    }
    Ok(report)
}

fn restrict_files(policy: &Policy) -> io::Result<landlock::Enforced> {
    let mut rules = Ruleset::new()?;
    for p in &policy.read {
        rules.allow(p, Access::Read)?;
    }
    // This process's own /proc entry (its maps, its fds), not other processes'.
    rules.allow(Path::new(&format!("/proc/{}", std::process::id())), Access::Read)?;
    for p in &policy.write {
        rules.allow(p, Access::ReadWrite)?;
    }
    rules.allow(Path::new("/dev/null"), Access::ReadWrite)?;
    rules.restrict_self()
}

#[allow(unsafe_code)]
fn no_new_privs() -> io::Result<()> {
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Caps the size of files the child writes at 64 MiB, or at `shared_memory` bytes when its
/// shared memory (a file too) is larger. Called once that memory has its size, after the
/// game loaded and before its first frame; a child writing past it gets `SIGXFSZ`.
#[allow(unsafe_code)]
pub fn limit_file_size(shared_memory: u64) -> io::Result<()> {
    let value = shared_memory.max(FILE_SIZE_MIB << 20);
    let lim = libc::rlimit { rlim_cur: value, rlim_max: value };
    // SAFETY: `lim` is a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[allow(unsafe_code)]
fn limits(memory: Option<u64>) -> io::Result<()> {
    let set = |resource, value: u64| {
        let lim = libc::rlimit { rlim_cur: value, rlim_max: value };
        // SAFETY: `lim` is a valid rlimit for the duration of the call.
        if unsafe { libc::setrlimit(resource, &lim) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    set(libc::RLIMIT_CORE, 0)?;
    set(libc::RLIMIT_NOFILE, OPEN_FILES)?;
    if let Some(bytes) = memory {
        set(libc::RLIMIT_AS, bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for m in [Mode::Off, Mode::Auto, Mode::Required] {
            assert_eq!(m.to_string().parse::<Mode>(), Ok(m));
        }
        assert!("strict".parse::<Mode>().unwrap_err().contains("off, auto or required"));
    }

    #[test]
    fn a_room_reads_its_game_and_writes_only_its_folder() {
        let p = Policy::for_room(
            Mode::Auto,
            &[Path::new("/cores/a.so"), Path::new("/roms/g.nes")],
            Path::new("/bios"),
            Path::new("/rooms/r1"),
            Some(1 << 30),
        );
        assert!(p.read.iter().any(|r| r == Path::new("/roms/g.nes")));
        assert!(p.read.iter().any(|r| r == Path::new("/cores/a.so")));
        assert_eq!(p.write, vec![PathBuf::from("/rooms/r1")]);
        assert!(!p.read.iter().any(|r| r == Path::new("/etc") || r == Path::new("/") || r == Path::new("/proc")));
    }

    #[test]
    fn the_report_says_what_is_enforced_and_what_is_missing() {
        let r = Report {
            landlock: Some(landlock::Enforced { abi: 6, tcp: true, scoped: true }),
            seccomp: true,
            memory_limit: Some(512 << 20),
            missing: vec![],
        };
        assert_eq!(
            r.to_string(),
            "landlock ABI 6 (files, TCP, signals), seccomp (no sockets, processes or exec), memory 512 MiB"
        );
        let r = Report { missing: vec!["landlock: not supported".into()], ..Report::default() };
        assert_eq!(r.to_string(), "none; missing: landlock: not supported");
    }
}
