//! The system-call filter: a classic BPF program built by a pure function ([`program`]), run by
//! the kernel on every system call of the child, and by [`eval`] in the tests.
//!
//! It refuses, with `EPERM`, what a game never needs and an attacker would: new sockets of any
//! family (no network; the control socket is inherited), new processes and exec (threads are
//! allowed), signals to any process but itself, tracing or reading other processes, namespaces,
//! mounts, keyrings, BPF, io_uring (whose operations would bypass this filter), userfaultfd and
//! kernel modules. A call from a foreign ABI (x32, or 32-bit on a 64-bit kernel) kills it.

use std::io;

/// One classic BPF instruction (`struct sock_filter`).
pub type Insn = libc::sock_filter;

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Offsets in `struct seccomp_data`: nr (u32), arch (u32), instruction pointer (u64), args.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// The low 32 bits of argument `i` (little-endian).
const fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
const fn off_arg_hi(i: u32) -> u32 {
    16 + 8 * i + 4
}

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;

/// `AUDIT_ARCH_X86_64` / `AUDIT_ARCH_AARCH64`: the ABI this filter's numbers belong to.
#[cfg(target_arch = "x86_64")]
pub const NATIVE_ARCH: Option<u32> = Some(0xc000_003e);
#[cfg(target_arch = "aarch64")]
pub const NATIVE_ARCH: Option<u32> = Some(0xc000_00b7);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub const NATIVE_ARCH: Option<u32> = None;

/// x86_64's x32 ABI sets this bit in the number.
const X32_BIT: u32 = 0x4000_0000;

/// System calls refused outright.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn refused() -> Vec<libc::c_long> {
    use libc::*;
    let mut v = vec![
        SYS_socket,
        SYS_execve,
        SYS_execveat,
        SYS_tkill,
        SYS_pidfd_send_signal,
        SYS_pidfd_open,
        SYS_pidfd_getfd,
        SYS_rt_sigqueueinfo,
        SYS_rt_tgsigqueueinfo,
        SYS_ptrace,
        SYS_process_vm_readv,
        SYS_process_vm_writev,
        SYS_kcmp,
        SYS_bpf,
        SYS_perf_event_open,
        SYS_userfaultfd,
        SYS_io_uring_setup,
        SYS_io_uring_enter,
        SYS_io_uring_register,
        SYS_mount,
        SYS_umount2,
        SYS_pivot_root,
        SYS_chroot,
        SYS_setns,
        SYS_unshare,
        SYS_keyctl,
        SYS_add_key,
        SYS_request_key,
        SYS_init_module,
        SYS_finit_module,
        SYS_delete_module,
        SYS_kexec_load,
        SYS_swapon,
        SYS_swapoff,
        SYS_reboot,
        SYS_acct,
        SYS_name_to_handle_at,
        SYS_open_by_handle_at,
        SYS_setsid,
        SYS_setpgid,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([SYS_fork, SYS_vfork]);
    v
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn refused() -> Vec<libc::c_long> {
    Vec::new()
}

fn stmt(code: u16, k: u32) -> Insn {
    Insn { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

fn errno(e: i32) -> u32 {
    RET_ERRNO | (e as u32 & 0xffff)
}

/// The filter for a process whose pid is `pid`, for the ABI `arch` (`AUDIT_ARCH_*`).
pub fn program(arch: u32, pid: u32) -> Vec<Insn> {
    let deny = errno(libc::EPERM);
    let mut p =
        vec![stmt(LD_W_ABS, OFF_ARCH), jump(JEQ_K, arch, 1, 0), stmt(RET_K, RET_KILL_PROCESS), stmt(LD_W_ABS, OFF_NR)];
    if cfg!(target_arch = "x86_64") {
        p.push(jump(JSET_K, X32_BIT, 0, 1));
        p.push(stmt(RET_K, RET_KILL_PROCESS));
    }
    for nr in refused() {
        p.push(jump(JEQ_K, nr as u32, 0, 1));
        p.push(stmt(RET_K, deny));
    }
    // clone3 passes its flags in memory, out of the filter's sight: ENOSYS makes glibc fall
    // back to clone, whose flags it can see.
    p.push(jump(JEQ_K, libc::SYS_clone3 as u32, 0, 1));
    p.push(stmt(RET_K, errno(libc::ENOSYS)));
    // clone: threads only (CLONE_THREAD set), not processes.
    p.push(jump(JEQ_K, libc::SYS_clone as u32, 0, 4));
    p.push(stmt(LD_W_ABS, off_arg_lo(0)));
    p.push(jump(JSET_K, libc::CLONE_THREAD as u32, 1, 0));
    p.push(stmt(RET_K, deny));
    p.push(stmt(RET_K, RET_ALLOW));
    // kill(pid, sig) and tgkill(tgid, tid, sig): this process only (abort() uses tgkill).
    for nr in [libc::SYS_kill, libc::SYS_tgkill] {
        p.push(jump(JEQ_K, nr as u32, 0, 6));
        p.push(stmt(LD_W_ABS, off_arg_hi(0)));
        p.push(jump(JEQ_K, 0, 0, 3));
        p.push(stmt(LD_W_ABS, off_arg_lo(0)));
        p.push(jump(JEQ_K, pid, 0, 1));
        p.push(stmt(RET_K, RET_ALLOW));
        p.push(stmt(RET_K, deny));
    }
    p.push(stmt(RET_K, RET_ALLOW));
    p
}

/// Runs `program` on one system call as the kernel would: returns the action
/// (`SECCOMP_RET_*`, with the errno in the low bits). For tests; panics on instructions the
/// builder never emits.
pub fn eval(program: &[Insn], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = Vec::with_capacity(64);
    data.extend_from_slice(&nr.to_le_bytes());
    data.extend_from_slice(&arch.to_le_bytes());
    data.extend_from_slice(&0u64.to_le_bytes());
    for a in args {
        data.extend_from_slice(&a.to_le_bytes());
    }
    let mut acc = 0u32;
    let mut pc = 0usize;
    loop {
        let i = program[pc];
        pc += 1;
        match i.code {
            LD_W_ABS => {
                let k = i.k as usize;
                acc = u32::from_le_bytes(data[k..k + 4].try_into().expect("4 bytes"));
            }
            JEQ_K => pc += if acc == i.k { i.jt } else { i.jf } as usize,
            JSET_K => pc += if acc & i.k != 0 { i.jt } else { i.jf } as usize,
            RET_K => return i.k,
            other => panic!("instruction {other:#x} not emitted by program()"),
        }
    }
}

/// Installs the filter on the calling thread (and the threads it creates later). Needs
/// `no_new_privs`, which [`super::apply`] sets first.
#[allow(unsafe_code)]
pub fn install(program: &[Insn]) -> io::Result<()> {
    let len = u16::try_from(program.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let prog = libc::sock_fprog { len, filter: program.as_ptr().cast_mut() };
    // SAFETY: `prog` points at `len` valid instructions that outlive the call; the kernel
    // copies them.
    let r = unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    use super::*;

    const PID: u32 = 4242;

    fn run(nr: libc::c_long, args: [u64; 6]) -> u32 {
        let arch = NATIVE_ARCH.unwrap();
        eval(&program(arch, PID), arch, nr as u32, args)
    }

    #[test]
    fn ordinary_calls_are_allowed() {
        for nr in
            [libc::SYS_read, libc::SYS_write, libc::SYS_mmap, libc::SYS_openat, libc::SYS_futex, libc::SYS_socketpair]
        {
            assert_eq!(run(nr, [0; 6]), RET_ALLOW, "syscall {nr}");
        }
    }

    #[test]
    fn sockets_exec_and_tracing_are_refused_with_eperm() {
        let eperm = RET_ERRNO | libc::EPERM as u32;
        for nr in [libc::SYS_socket, libc::SYS_execve, libc::SYS_ptrace, libc::SYS_io_uring_setup, libc::SYS_unshare] {
            assert_eq!(run(nr, [libc::AF_INET as u64, 0, 0, 0, 0, 0]), eperm, "syscall {nr}");
        }
    }

    #[test]
    fn clone_makes_threads_but_not_processes() {
        let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
        assert_eq!(run(libc::SYS_clone, [thread, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(libc::SYS_clone, [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]), errno(libc::EPERM));
        // glibc tries clone3 first and falls back to clone on ENOSYS only.
        assert_eq!(run(libc::SYS_clone3, [0; 6]), errno(libc::ENOSYS));
    }

    #[test]
    fn signals_reach_only_the_process_itself() {
        let sig = libc::SIGKILL as u64;
        assert_eq!(run(libc::SYS_kill, [PID as u64, sig, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(libc::SYS_tgkill, [PID as u64, 4243, libc::SIGABRT as u64, 0, 0, 0]), RET_ALLOW);
        for target in [1u64, 0, u64::MAX, (PID as u64) | (1 << 32), 4243] {
            assert_eq!(run(libc::SYS_kill, [target, sig, 0, 0, 0, 0]), errno(libc::EPERM), "kill({target})");
        }
        assert_eq!(run(libc::SYS_tgkill, [1, 1, sig, 0, 0, 0]), errno(libc::EPERM));
    }

    #[test]
    fn a_foreign_abi_is_killed() {
        let arch = NATIVE_ARCH.unwrap();
        let p = program(arch, PID);
        assert_eq!(eval(&p, 0x4000_0003, libc::SYS_read as u32, [0; 6]), RET_KILL_PROCESS);
        if cfg!(target_arch = "x86_64") {
            assert_eq!(eval(&p, arch, X32_BIT | 41, [0; 6]), RET_KILL_PROCESS);
        }
    }
}
