//! The cores' log messages, with their arguments.
//!
//! `retro_log_printf_t` is C-variadic, which stable Rust cannot define. On x86-64 Linux (the
//! System V ABI) a variadic call passes its arguments exactly like a plain one: the first six
//! integer or pointer arguments in rdi, rsi, rdx, rcx, r8, r9 and the first eight
//! floating-point ones in xmm0..xmm7. So the plain function [`log_cb`], taking the level, the
//! format, four integer words and eight doubles, receives the first four integer and the first
//! eight floating-point arguments of the core's call. A message is formatted (with C's
//! `snprintf`, one conversion at a time) when its format needs no more than that and uses only
//! plain conversions; otherwise its format string is printed as it is, which is what the
//! frontend did before (mednafen's cores log most of their errors as `"%s"`). A `%s` whose
//! pointer is not in mapped memory (a core that forgot the argument) prints `(bad pointer)`.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_long, c_uint};
use std::sync::atomic::{AtomicU32, Ordering};

use super::ffi::log_level;

/// Log level of core messages printed to stderr (`RETRO_LOG_*`, default WARN). Set from
/// `RETROFARM_CORE_LOG` (debug|info|warn|error) when a session starts.
pub(crate) static LOG_THRESHOLD: AtomicU32 = AtomicU32::new(log_level::WARN);

/// Integer arguments a message may use.
const INT_ARGS: usize = 4;
/// Floating-point arguments a message may use.
const FLOAT_ARGS: usize = 8;
/// Longest message printed, in bytes.
const MAX_MESSAGE: usize = 2048;

/// The log callback handed to cores: see the module documentation for why it has these
/// parameters.
pub type LogPrintfFn = unsafe extern "C" fn(
    level: c_uint,
    fmt: *const c_char,
    i0: usize,
    i1: usize,
    i2: usize,
    i3: usize,
    f0: f64,
    f1: f64,
    f2: f64,
    f3: f64,
    f4: f64,
    f5: f64,
    f6: f64,
    f7: f64,
);

/// What one conversion takes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Arg {
    /// `int` (and what promotes to it: `char`, `short`, `%c`).
    Int,
    /// `long`, `long long`, `size_t`, `intmax_t`, `ptrdiff_t`: 64 bits here.
    Long,
    /// `double`.
    Double,
    /// A pointer: `%s`, `%p`.
    Pointer,
}

/// A piece of a format string.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece<'a> {
    /// Text printed as it is (`%%` becomes one `%`).
    Text(&'a [u8]),
    /// One conversion: its whole specification (`%-8.3lx`) and what it takes.
    Conversion(&'a [u8], Arg),
}

/// Splits a printf format into text and conversions; `None` when it uses what we cannot pass
/// (`*` widths, `%n`, `long double`, more arguments than the registers hold).
fn parse(fmt: &[u8]) -> Option<Vec<Piece<'_>>> {
    let mut pieces = Vec::new();
    let (mut ints, mut floats) = (0, 0);
    let mut i = 0;
    let mut text_start = 0;
    while i < fmt.len() {
        if fmt[i] != b'%' {
            i += 1;
            continue;
        }
        if text_start < i {
            pieces.push(Piece::Text(&fmt[text_start..i]));
        }
        let start = i;
        i += 1;
        if fmt.get(i) == Some(&b'%') {
            pieces.push(Piece::Text(b"%"));
            i += 1;
            text_start = i;
            continue;
        }
        while fmt.get(i).is_some_and(|c| b"-+ #0'".contains(c)) {
            i += 1;
        }
        while fmt.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if fmt.get(i) == Some(&b'.') {
            i += 1;
            while fmt.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        let mut long = false;
        while let Some(&c) = fmt.get(i).filter(|c| b"hlqjzt".contains(c)) {
            long |= c != b'h';
            i += 1;
        }
        let arg = match *fmt.get(i)? {
            b'd' | b'i' | b'u' | b'o' | b'x' | b'X' if long => Arg::Long,
            b'd' | b'i' | b'u' | b'o' | b'x' | b'X' | b'c' => Arg::Int,
            b'f' | b'F' | b'e' | b'E' | b'g' | b'G' | b'a' | b'A' if !long => Arg::Double,
            b's' | b'p' if !long => Arg::Pointer,
            // `*`, `%n`, `L`, wide strings, anything unknown.
            _ => return None,
        };
        i += 1;
        match arg {
            Arg::Double => floats += 1,
            _ => ints += 1,
        }
        if ints > INT_ARGS || floats > FLOAT_ARGS {
            return None;
        }
        pieces.push(Piece::Conversion(&fmt[start..i], arg));
        text_start = i;
    }
    if text_start < fmt.len() {
        pieces.push(Piece::Text(&fmt[text_start..]));
    }
    Some(pieces)
}

/// Whether the page `p` points into is mapped (`mincore` fails on an unmapped one): a `%s`
/// whose argument the core forgot reads a stale register, which must not crash the logger.
fn mapped(p: *const c_char) -> bool {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
    let start = (p as usize) & !(page - 1);
    let mut residency = 0u8;
    // SAFETY: mincore only inspects the mapping of [start, start + 1) and writes one byte into
    // `residency`; it fails with ENOMEM if that page is not mapped.
    unsafe { libc::mincore(start as *mut libc::c_void, 1, &mut residency) == 0 }
}

/// Formats `fmt` with the arguments the core passed; the format as it is when [`parse`]
/// refuses it.
///
/// # Safety
/// `ints` and `floats` hold the arguments of a printf call with format `fmt` (pointers for
/// `%s` valid strings), as far as the format uses them.
unsafe fn format(fmt: &CStr, ints: [usize; INT_ARGS], floats: [f64; FLOAT_ARGS]) -> String {
    let Some(pieces) = parse(fmt.to_bytes()) else {
        return fmt.to_string_lossy().into_owned();
    };
    let (mut next_int, mut next_float) = (ints.into_iter(), floats.into_iter());
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    for piece in pieces {
        let (spec, arg) = match piece {
            Piece::Text(t) => {
                out.extend_from_slice(t);
                continue;
            }
            Piece::Conversion(spec, arg) => (spec, arg),
        };
        // `parse` allows no more conversions than there are arguments.
        let value = match arg {
            Arg::Double => 0,
            _ => next_int.next().unwrap_or(0),
        };
        if arg == Arg::Pointer && value != 0 && !mapped(value as *const c_char) {
            out.extend_from_slice(b"(bad pointer)");
            continue;
        }
        let Ok(spec) = CString::new(spec) else { continue };
        let (p, n, s) = (buf.as_mut_ptr().cast::<c_char>(), buf.len(), spec.as_ptr());
        // SAFETY: `spec` is one conversion taking exactly the argument passed, of the type it
        // names (checked by `parse`); the caller guarantees the value is what the core passed
        // for it (a `%s` pointer at least points into mapped memory). snprintf writes at most
        // `n` bytes into `buf`.
        let written = unsafe {
            match arg {
                Arg::Int => libc::snprintf(p, n, s, value as c_int),
                Arg::Long => libc::snprintf(p, n, s, value as c_long),
                Arg::Pointer => libc::snprintf(p, n, s, value as *const c_char),
                Arg::Double => libc::snprintf(p, n, s, next_float.next().unwrap_or(0.0)),
            }
        };
        let written = usize::try_from(written).unwrap_or(0).min(n - 1);
        out.extend_from_slice(&buf[..written]);
        if out.len() > MAX_MESSAGE {
            break;
        }
    }
    out.truncate(MAX_MESSAGE);
    String::from_utf8_lossy(&out).into_owned()
}

/// Prints a message at `level` if it passes the threshold.
fn emit(level: c_uint, msg: &str) {
    let tag = match level {
        0 => "debug",
        1 => "info",
        2 => "warn",
        _ => "error",
    };
    #[cfg(test)]
    tests::LAST.with(|l| *l.borrow_mut() = format!("[core {tag}] {}", msg.trim_end()));
    eprintln!("[core {tag}] {}", msg.trim_end());
}

/// The log callback handed to cores (`retro_log_printf_t`; see the module documentation).
///
/// # Safety
/// Called by a core as `log(level, fmt, ...)` with a NUL-terminated format and the arguments
/// it names.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn log_cb(
    level: c_uint,
    fmt: *const c_char,
    i0: usize,
    i1: usize,
    i2: usize,
    i3: usize,
    f0: f64,
    f1: f64,
    f2: f64,
    f3: f64,
    f4: f64,
    f5: f64,
    f6: f64,
    f7: f64,
) {
    if level < LOG_THRESHOLD.load(Ordering::Relaxed) || fmt.is_null() {
        return;
    }
    // SAFETY: the core passes a NUL-terminated format string, valid for the call.
    let fmt = unsafe { CStr::from_ptr(fmt) };
    let msg = if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        // SAFETY: on this ABI the registers read as i0..i3 and f0..f7 hold the call's first
        // integer and floating-point arguments (module documentation).
        unsafe { format(fmt, [i0, i1, i2, i3], [f0, f1, f2, f3, f4, f5, f6, f7]) }
    } else {
        fmt.to_string_lossy().into_owned()
    };
    emit(level, &msg);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        pub(super) static LAST: RefCell<String> = const { RefCell::new(String::new()) };
    }

    #[test]
    fn formats_are_split_into_text_and_conversions() {
        let p = parse(b"[%s]: %d%% at %.2f, %-8lx!").unwrap();
        assert_eq!(
            p,
            vec![
                Piece::Text(b"["),
                Piece::Conversion(b"%s", Arg::Pointer),
                Piece::Text(b"]: "),
                Piece::Conversion(b"%d", Arg::Int),
                Piece::Text(b"%"),
                Piece::Text(b" at "),
                Piece::Conversion(b"%.2f", Arg::Double),
                Piece::Text(b", "),
                Piece::Conversion(b"%-8lx", Arg::Long),
                Piece::Text(b"!"),
            ]
        );
        assert_eq!(parse(b"plain"), Some(vec![Piece::Text(b"plain")]));
        assert_eq!(parse(b"%zu %hhd %c").unwrap().len(), 5);
        // What cannot be passed or must never run: the format is printed as it is.
        for refused in [&b"%*d"[..], b"%n", b"%Lf", b"%ls", b"%d %d %d %d %d", b"%q", b"100%"] {
            assert_eq!(parse(refused), None, "{}", String::from_utf8_lossy(refused));
        }
        assert!(parse(b"%f %f %f %f %f %f %f %f %d %d %d %d").is_some());
    }

    /// Calls the callback the way a C core does: through a variadic function pointer.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn a_variadic_call_is_formatted() {
        type Variadic = unsafe extern "C" fn(c_uint, *const c_char, ...);
        LOG_THRESHOLD.store(log_level::DEBUG, Ordering::Relaxed);
        // SAFETY: the point of the test: on x86-64 System V a variadic call passes what the
        // plain callback reads (module documentation).
        let log: Variadic = unsafe { std::mem::transmute::<LogPrintfFn, Variadic>(log_cb as LogPrintfFn) };
        let last = || LAST.with(|l| l.borrow().clone());
        // SAFETY: formats and arguments match, as a core's would.
        unsafe {
            log(3, c"Could not open %s: %d (%.1f%%)".as_ptr(), c"scph5501.bin".as_ptr(), -2 as c_int, 12.5f64);
            assert_eq!(last(), "[core error] Could not open scph5501.bin: -2 (12.5%)");
            log(1, c"[%s]: Samples / Frame: %.5f, %lu bytes".as_ptr(), c"beetle".as_ptr(), 735.0f64, 1u64 << 40);
            assert_eq!(last(), "[core info] [beetle]: Samples / Frame: 735.00000, 1099511627776 bytes");
            log(2, c"%s".as_ptr(), std::ptr::null::<c_char>());
            assert_eq!(last(), "[core warn] (null)");
            log(2, c"%d %d %d %d %d too many".as_ptr(), 1, 2, 3, 4, 5);
            assert_eq!(last(), "[core warn] %d %d %d %d %d too many");
            // A core that forgets the argument of a %s: whatever the register holds, never a
            // crash (here an address nothing is mapped at).
            log(3, c"lost: %s".as_ptr(), 8usize as *const c_char);
            assert_eq!(last(), "[core error] lost: (bad pointer)");
        }
    }
}
