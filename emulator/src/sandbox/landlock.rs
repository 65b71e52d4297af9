//! Landlock: which files the child may read or write, no TCP, and (ABI 6) no signals or
//! abstract sockets outside itself. The kernel's ABI version decides what can be enforced;
//! [`Ruleset::restrict_self`] says what was.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

// Access rights for files and directories (linux/landlock.h), by the ABI that added them.
const FS_EXECUTE: u64 = 1 << 0;
const FS_WRITE_FILE: u64 = 1 << 1;
const FS_READ_FILE: u64 = 1 << 2;
const FS_READ_DIR: u64 = 1 << 3;
const FS_REMOVE_DIR: u64 = 1 << 4;
const FS_REMOVE_FILE: u64 = 1 << 5;
const FS_MAKE_CHAR: u64 = 1 << 6;
const FS_MAKE_DIR: u64 = 1 << 7;
const FS_MAKE_REG: u64 = 1 << 8;
const FS_MAKE_SOCK: u64 = 1 << 9;
const FS_MAKE_FIFO: u64 = 1 << 10;
const FS_MAKE_BLOCK: u64 = 1 << 11;
const FS_MAKE_SYM: u64 = 1 << 12;
const FS_REFER: u64 = 1 << 13; // ABI 2
const FS_TRUNCATE: u64 = 1 << 14; // ABI 3
const FS_IOCTL_DEV: u64 = 1 << 15; // ABI 5
const NET_BIND_TCP: u64 = 1 << 0; // ABI 4
const NET_CONNECT_TCP: u64 = 1 << 1; // ABI 4
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0; // ABI 6
const SCOPE_SIGNAL: u64 = 1 << 1; // ABI 6

const CREATE_RULESET_VERSION: u32 = 1 << 0;
const RULE_PATH_BENEATH: u32 = 1;

/// The rights that apply to a file (not a directory).
const FILE_RIGHTS: u64 = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV;

/// What a path may be used for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read files, list directories, map libraries.
    Read,
    /// Read, plus write, create, rename and remove beneath it (no device nodes).
    ReadWrite,
}

impl Access {
    fn rights(self) -> u64 {
        let read = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR;
        match self {
            Access::Read => read,
            Access::ReadWrite => {
                read | FS_WRITE_FILE
                    | FS_REMOVE_DIR
                    | FS_REMOVE_FILE
                    | FS_MAKE_DIR
                    | FS_MAKE_REG
                    | FS_MAKE_SYM
                    | FS_MAKE_FIFO
                    | FS_MAKE_SOCK
                    | FS_REFER
                    | FS_TRUNCATE
            }
        }
    }
}

/// Every file-system right the kernel of `abi` knows (all are handled, so all are denied
/// unless a rule grants them).
fn fs_rights(abi: u32) -> u64 {
    let mut r = FS_EXECUTE
        | FS_WRITE_FILE
        | FS_READ_FILE
        | FS_READ_DIR
        | FS_REMOVE_DIR
        | FS_REMOVE_FILE
        | FS_MAKE_CHAR
        | FS_MAKE_DIR
        | FS_MAKE_REG
        | FS_MAKE_SOCK
        | FS_MAKE_FIFO
        | FS_MAKE_BLOCK
        | FS_MAKE_SYM;
    if abi >= 2 {
        r |= FS_REFER;
    }
    if abi >= 3 {
        r |= FS_TRUNCATE;
    }
    if abi >= 5 {
        r |= FS_IOCTL_DEV;
    }
    r
}

/// `struct landlock_ruleset_attr` (ABI 6 layout; shorter for older kernels).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// `struct landlock_path_beneath_attr` (packed).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// What one restriction enforces, for the report.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Enforced {
    /// The kernel's Landlock ABI version.
    pub abi: u32,
    /// TCP bind and connect are refused.
    pub tcp: bool,
    /// Signals and abstract Unix sockets outside the child are refused.
    pub scoped: bool,
}

/// The kernel's Landlock ABI version, or the reason there is none.
#[allow(unsafe_code)]
pub fn abi_version() -> io::Result<u32> {
    // SAFETY: with this flag the call only returns the version; no memory is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as u32)
    }
}

/// A ruleset being built.
#[derive(Debug)]
pub struct Ruleset {
    fd: OwnedFd,
    abi: u32,
}

impl Ruleset {
    /// A ruleset that handles every right the running kernel knows.
    #[allow(unsafe_code)]
    pub fn new() -> io::Result<Self> {
        let abi = abi_version()?;
        let attr = RulesetAttr {
            handled_access_fs: fs_rights(abi),
            handled_access_net: if abi >= 4 { NET_BIND_TCP | NET_CONNECT_TCP } else { 0 },
            scoped: if abi >= 6 { SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL } else { 0 },
        };
        let size = match abi {
            0..=3 => 8,
            4 | 5 => 16,
            _ => std::mem::size_of::<RulesetAttr>(),
        };
        // SAFETY: `attr` is valid for `size` bytes, a prefix of the layout the ABI expects.
        let fd = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, &attr as *const RulesetAttr, size, 0u32) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        Ok(Self { fd: unsafe { OwnedFd::from_raw_fd(fd as i32) }, abi })
    }

    /// Grants `access` beneath `path` (or to the file `path`). A path that does not exist is
    /// skipped (returns false): nothing is beneath it to grant.
    #[allow(unsafe_code)]
    pub fn allow(&mut self, path: &Path, access: Access) -> io::Result<bool> {
        let file = match File::options().read(true).custom_flags(libc::O_PATH | libc::O_CLOEXEC).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        };
        let is_dir = file.metadata().map(|m| m.is_dir())?;
        let mut rights = access.rights() & fs_rights(self.abi);
        if !is_dir {
            rights &= FILE_RIGHTS;
        }
        let attr = PathBeneathAttr { allowed_access: rights, parent_fd: file.as_raw_fd() };
        // SAFETY: `attr` is a valid packed path-beneath rule and outlives the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                self.fd.as_raw_fd(),
                RULE_PATH_BENEATH,
                &attr as *const PathBeneathAttr,
                0u32,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display())));
        }
        Ok(true)
    }

    /// Enforces the ruleset on this thread and the threads it creates from now on. Needs
    /// `no_new_privs`.
    #[allow(unsafe_code)]
    pub fn restrict_self(self) -> io::Result<Enforced> {
        // SAFETY: a valid ruleset descriptor; no memory is passed.
        let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, self.fd.as_raw_fd(), 0u32) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Enforced { abi: self.abi, tcp: self.abi >= 4, scoped: self.abi >= 6 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_grow_with_the_abi_and_files_get_file_rights_only() {
        assert_eq!(fs_rights(1) & (FS_REFER | FS_TRUNCATE | FS_IOCTL_DEV), 0);
        assert_ne!(fs_rights(3) & FS_TRUNCATE, 0);
        assert_ne!(fs_rights(5) & FS_IOCTL_DEV, 0);
        assert_eq!(Access::Read.rights() & FS_WRITE_FILE, 0);
        assert_eq!(Access::ReadWrite.rights() & (FS_MAKE_CHAR | FS_MAKE_BLOCK | FS_IOCTL_DEV), 0);
        assert_eq!(std::mem::size_of::<PathBeneathAttr>(), 12);
    }
}
