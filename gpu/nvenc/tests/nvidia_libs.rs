//! retrofarm-nvenc against NVIDIA's real user-space driver libraries, on a host without an
//! NVIDIA GPU: Debian 12's non-free `libnvidia-encode1`, `libnvcuvid1` and `libcuda1`,
//! downloaded and unpacked (never installed) by `scripts/fetch-nvidia-libs.sh` into
//! `target/nvidia-libs`.
//!
//! What it proves: our loader reads the real driver's NVENC version and function table (which
//! need no GPU), and our CUDA wrapper meets the real `libcuda.so.1` without a device with its
//! "no GPU" error, not a panic. What it does not: anything that needs a GPU (sessions, CUDA
//! memory, encoding).
//!
//! The libraries run in a **child process** (this test binary again, filtered to
//! [`child_role`] and told so by [`CHILD_ENV`]), so that they never load into the test process
//! and the child's environment is clean: `env_clear`, the extracted directory first on
//! `LD_LIBRARY_PATH`. Without a device node `cuInit` tries to create one (strace shows
//! `mknodat("/dev/nvidiactl", S_IFCHR|0666, makedev(195, 255))`, about ten times) and looks for
//! `/usr/bin/nvidia-modprobe`: as root that would succeed, so a root parent runs the child as
//! `nobody` (65534) through `setpriv` with `no_new_privs` (a setuid `nvidia-modprobe` cannot
//! raise it either), and checks afterwards that no `/dev/nvidia*` node appeared.
//! The child reads a copy of this binary and of the libraries in a world-readable temporary
//! directory, so no path of the build tree needs to be readable by `nobody`.
//!
//! Without network (or apt) the download fails and the test is skipped, saying why; set
//! `RETROFARM_REQUIRE_NVIDIA_LIBS=1` to make that a failure instead.

// The child opens an NVENC session with a null device to record what the real driver says.
#![allow(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use retrofarm_media::VideoConfig;
use retrofarm_nvenc::cuda::{self, CudaContext, CudaError};
use retrofarm_nvenc::{ApiVersion, Library, NvencEncoder};

/// Set in the child's environment to the directory holding the libraries.
const CHILD_ENV: &str = "RETROFARM_NVIDIA_LIBS_CHILD";
/// `1`: a failed download fails the test instead of skipping it.
const REQUIRE_ENV: &str = "RETROFARM_REQUIRE_NVIDIA_LIBS";
/// Where Debian's packages put the libraries, under the unpacked root.
const LIBDIR: &str = "usr/lib/x86_64-linux-gnu/nvidia/current";
/// The child's report lines start with this.
const REPORT: &str = "nvidia-report ";
/// `nobody:nogroup` on Debian.
const NOBODY: u32 = 65534;

#[test]
fn real_nvidia_libraries_without_a_gpu() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let Some(root) = fetch() else { return };
    let versions = fs::read_to_string(root.join("nvidia-libs.txt")).unwrap_or_default();
    say(&format!("NVIDIA packages (Debian 12 non-free): {}", versions.lines().collect::<Vec<_>>().join(", ")));

    let root_user = effective_uid() == 0;
    let stage = Stage::new(&root.join(LIBDIR));
    if root_user {
        // `nobody` must reach the copies.
        let closed: Vec<&Path> = stage
            .dir
            .ancestors()
            .skip(1)
            .filter(|dir| fs::metadata(dir).is_ok_and(|m| m.mode() & 0o001 == 0))
            .collect();
        assert!(closed.is_empty(), "{closed:?} cannot be traversed by nobody: point TMPDIR elsewhere (/tmp)");
    }
    let mut command = if root_user {
        if Command::new("setpriv").arg("--version").output().is_err() {
            skip("running as root without setpriv (util-linux): libcuda must not run as root here");
            return;
        }
        let mut command = Command::new("setpriv");
        command.args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
            "--no-new-privs".into(),
            "--".into(),
        ]);
        command.arg(&stage.exe);
        command
    } else {
        Command::new(&stage.exe)
    };
    command
        .args(["--exact", "child_role", "--nocapture", "--test-threads=1"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/nonexistent")
        .env("LD_LIBRARY_PATH", &stage.lib)
        .env("CUDA_CACHE_DISABLE", "1")
        .env("RUST_BACKTRACE", "1")
        .env(CHILD_ENV, &stage.lib)
        .current_dir(&stage.dir);

    let nodes_before = nvidia_nodes();
    let output = command.output().expect("run the child process");
    let nodes_after = nvidia_nodes();

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // In order; libtest may print "test child_role ... " before the first line.
    let lines: Vec<(String, String)> = stdout
        .lines()
        .filter_map(|line| line.find(REPORT).map(|at| &line[at + REPORT.len()..]))
        .filter_map(|line| line.split_once(": "))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    let mut said = String::from("what NVIDIA's libraries reported:");
    for (key, value) in &lines {
        said.push_str(&format!("\n  {key}: {value}"));
    }
    say(&said);
    let report: BTreeMap<String, String> = lines.into_iter().collect();

    let appeared: Vec<&String> = nodes_after.difference(&nodes_before).collect();
    assert!(appeared.is_empty(), "libcuda created device nodes: {appeared:?} (remove them by hand)");
    assert!(output.status.success(), "the child failed ({}):\n{stdout}\n{stderr}", output.status);
    assert_eq!(report.get("done").map(String::as_str), Some("yes"), "the child did not finish:\n{stdout}\n{stderr}");

    let uid = if root_user { NOBODY } else { effective_uid() };
    assert_eq!(report.get("uid"), Some(&uid.to_string()), "the child's user");

    // NVENC: the version and the whole table, without a GPU.
    let load = &report["nvenc.load"];
    assert_eq!(load, "ok", "Library::load_from on NVIDIA's libnvidia-encode.so.1");
    let version = &report["nvenc.api_version"];
    let (major, minor) = version.split_once('.').expect("major.minor");
    let version = ApiVersion { major: major.parse().unwrap(), minor: minor.parse().unwrap() };
    assert!(version >= ApiVersion::REQUIRED, "NVENC API {version}");
    assert_eq!(report["nvenc.is_double"], "false");
    let (present, total) = report["nvenc.table"].split_once('/').expect("present/total");
    assert_eq!(present, total, "missing entries: {}", report["nvenc.table_missing"]);

    // CUDA: the driver loads, sees no device, and says so with our error.
    let cuda_version = &report["cuda.driver_version"];
    let cuda_major: Option<u32> = cuda_version.split('.').next().and_then(|major| major.parse().ok());
    assert!(cuda_major.is_some_and(|major| major >= 12), "cuDriverGetVersion: {cuda_version}");
    assert_eq!(report["cuda.open.kind"], "NoDevice", "CudaContext::open(0): {}", report["cuda.open"]);
    assert!(report["cuda.open"].starts_with("error: CUDA sees no NVIDIA GPU ("), "{}", report["cuda.open"]);
}

/// The child: loads NVIDIA's libraries from `$RETROFARM_NVIDIA_LIBS_CHILD` and prints what
/// they say, one `nvidia-report key: value` line each. A no-op in a normal test run.
#[test]
fn child_role() {
    let Some(lib) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else { return };
    report("uid", effective_uid());

    let nvenc = Library::load_from(lib.join("libnvidia-encode.so.1"));
    match &nvenc {
        Ok(library) => {
            report("nvenc.load", "ok");
            report("nvenc.api_version", library.api_version());
            report("nvenc.is_double", library.is_double());
            let entries = library.function_table().entries();
            let missing: Vec<&str> = entries.iter().filter(|(_, present)| !present).map(|(name, _)| *name).collect();
            report("nvenc.table", format!("{}/{}", entries.len() - missing.len(), entries.len()));
            report("nvenc.table_missing", if missing.is_empty() { "none".into() } else { missing.join(", ") });
        }
        Err(error) => report("nvenc.load", format!("error: {error} [{error:?}]")),
    }

    report("cuda.driver_version", result_text(cuda::driver_version()));
    match CudaContext::open(0) {
        Ok(context) => report("cuda.open", format!("ok: {context:?}")),
        Err(error) => {
            report("cuda.open", format!("error: {error}"));
            report("cuda.open.kind", kind(&error));
            if let Some(status) = error.status() {
                report("cuda.open.status", format!("{} ({})", status.name(), status.code()));
            }
        }
    }

    // Last, as it is the least predictable: a session with no CUDA context (what NVIDIA's
    // driver does with it was not known). Recorded, not asserted.
    if let Ok(library) = &nvenc {
        let config = VideoConfig { bitrate_bps: 1_500_000, max_fps: 60.0, keyframe_interval: None };
        // SAFETY: a null device; the driver is expected to refuse it (that is what is recorded).
        let opened = unsafe { NvencEncoder::new(library, std::ptr::null_mut(), config, 256, 240) };
        let said = match opened {
            Ok(_) => "opened".to_owned(),
            Err(error) => format!("error: {error}"),
        };
        report("nvenc.session_null_device", said);
    }
    report("done", "yes");
}

fn report(key: &str, value: impl std::fmt::Display) {
    println!("{REPORT}{key}: {value}");
}

fn result_text<T: std::fmt::Display>(result: Result<T, CudaError>) -> String {
    match result {
        Ok(value) => value.to_string(),
        Err(error) => format!("error: {error}"),
    }
}

/// The variant's name (`NoDevice`).
fn kind(error: &CudaError) -> String {
    let debug = format!("{error:?}");
    debug.split([' ', '(', '{']).next().unwrap_or_default().to_owned()
}

/// Runs the fetch script into `target/nvidia-libs`; `None` (after saying why) when the
/// packages cannot be fetched on this host.
fn fetch() -> Option<PathBuf> {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>
    let target = exe.ancestors().nth(3).expect("the target directory");
    let root = target.join("nvidia-libs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fetch-nvidia-libs.sh");
    let output = Command::new("bash").arg(&script).arg(&root).output().expect("run bash");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    say(said.trim_end());
    match output.status.code() {
        Some(0) => Some(root),
        Some(2) => {
            skip("NVIDIA's packages cannot be fetched here (scripts/fetch-nvidia-libs.sh said why above)");
            None
        }
        _ => panic!("scripts/fetch-nvidia-libs.sh {} failed ({}):\n{said}", root.display(), output.status),
    }
}

fn skip(why: &str) {
    assert!(std::env::var_os(REQUIRE_ENV).is_none_or(|value| value != "1"), "{REQUIRE_ENV}=1 and {why}");
    say(&format!("SKIPPED: {why}"));
}

/// Writes to the test's stderr past libtest's capture (which takes `print!` and `eprint!`
/// only): what NVIDIA's libraries said shows in every run's output, passing or not.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn effective_uid() -> u32 {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|line| line.starts_with("Uid:")).expect("a Uid line");
    // Uid: real effective saved filesystem
    line.split_whitespace().nth(2).and_then(|uid| uid.parse().ok()).expect("the effective uid")
}

/// `/dev/nvidia*` and `/dev/nvidia-caps/*`.
fn nvidia_nodes() -> BTreeSet<String> {
    let mut nodes = BTreeSet::new();
    for dir in ["/dev", "/dev/nvidia-caps"] {
        let Ok(entries) = fs::read_dir(dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if dir != "/dev" || name.starts_with("nvidia") {
                nodes.insert(format!("{dir}/{name}"));
            }
        }
    }
    nodes
}

/// A world-readable temporary directory with a copy of this test binary and of the
/// libraries, removed on drop.
struct Stage {
    dir: PathBuf,
    exe: PathBuf,
    lib: PathBuf,
}

impl Stage {
    fn new(libraries: &Path) -> Stage {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("retrofarm-nvidia-libs.{}.{nanos}", std::process::id()));
        let mut builder = fs::DirBuilder::new();
        builder.mode(0o755);
        builder.create(&dir).expect("create the staging directory");
        // The mode is masked by the umask: set it outright.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod the staging directory");
        let stage = Stage { exe: dir.join("nvidia_libs-child"), lib: dir.join("lib"), dir };
        builder.create(&stage.lib).expect("create lib/");
        fs::set_permissions(&stage.lib, fs::Permissions::from_mode(0o755)).expect("chmod lib/");

        let exe = std::env::current_exe().expect("test executable path");
        fs::copy(&exe, &stage.exe).expect("copy the test binary");
        fs::set_permissions(&stage.exe, fs::Permissions::from_mode(0o755)).expect("chmod the test binary");
        for entry in fs::read_dir(libraries).expect("the unpacked libraries").flatten() {
            let to = stage.lib.join(entry.file_name());
            let kind = entry.file_type().expect("file type");
            if kind.is_symlink() {
                symlink(fs::read_link(entry.path()).expect("read the link"), &to).expect("copy the link");
            } else {
                fs::copy(entry.path(), &to).expect("copy a library");
                fs::set_permissions(&to, fs::Permissions::from_mode(0o644)).expect("chmod a library");
            }
        }
        stage
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
