//! NVENC in the worker, against the test double (`retrofarm-nvenc-double`: NVIDIA's encode API
//! implemented over openh264, recording what it is asked). It proves the worker's use of the
//! API and its fallbacks, not NVIDIA's hardware: rooms stream H264 encoded through the NVENC
//! path to a Rust WebRTC peer with the settings we chose; a keyframe request reaches the
//! session as a forced IDR; rooms beyond the driver's sessions encode on openh264; a device lost
//! mid-stream moves the room to openh264 without dropping its viewer; on the GPU path (lavapipe)
//! each room's NV12 slot is registered once and every picture is read in place, with no copy
//! through an NVENC input buffer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use retrofarm_e2e::player::Player;
use retrofarm_e2e::procs::{self, CoordinatorAddrs, Proc};

const T: Duration = Duration::from_secs(20);
const LAVAPIPE_ICD: &str = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json";
/// Luma of the white player-1 block.
const WHITE: (u8, u8) = (200, 255);

/// The double, built beside the binaries (`cargo build -p retrofarm-nvenc-double`).
fn double() -> Option<PathBuf> {
    let p = procs::bin("retrofarm-worker").with_file_name("libretrofarm_nvenc_double.so");
    if !p.exists() {
        eprintln!("SKIP: {} is missing: run `cargo build -p retrofarm-nvenc-double`", p.display());
        return None;
    }
    Some(p)
}

fn start(dir: &Path, double: &Path, knobs: &[(&str, &str)], flags: &[&str]) -> (CoordinatorAddrs, Proc, Proc, PathBuf) {
    let record = dir.join("nvenc-record.jsonl");
    let (addrs, coord, worker) = procs::cluster(dir, |o| {
        o.extra = ["--nvenc-library", double.to_str().unwrap()].iter().chain(flags).map(|f| f.to_string()).collect();
        o.env = [("RETROFARM_NVENC_TEST_DOUBLE", "1"), ("RETROFARM_NVENC_DOUBLE_RECORD", record.to_str().unwrap())]
            .iter()
            .chain(knobs)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    })
    .unwrap();
    (addrs, coord, worker, record)
}

/// The double's record: one JSON object per line.
fn events(record: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(record).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

fn named<'a>(events: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn rooms_stream_through_nvenc_with_low_latency_settings_and_idr_on_request() {
    let Some(double) = double() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (addrs, _coord, worker, record) = start(dir.path(), &double, &[], &[]);
    worker.wait_log("H264 is encoded with the NVENC test double", T).unwrap();

    let mut players = Vec::new();
    for _ in 0..3 {
        players.push(Player::join(addrs, None, 1).await);
    }
    for (i, p) in players.iter_mut().enumerate() {
        let (video, _, pic) = p.watch(Duration::from_secs(2)).await;
        assert!(video >= 60, "room {i}: only {video} frames in 2 s");
        let pic = pic.unwrap_or_else(|| panic!("room {i}: nothing decoded"));
        assert_eq!(pic.width, 256);
        let (x, _, n) = pic.centroid(WHITE.0, WHITE.1).expect("player 1 visible");
        assert!((200..=300).contains(&n) && (x - 71.5).abs() < 3.0, "room {i}: block of {n} px at x {x}");
    }
    // A browser's PLI: the room forces an IDR on its NVENC session.
    let before = named(&events(&record), "encode").iter().filter(|e| e["force_idr"] == true).count();
    players[0].peer.request_keyframe();
    let (_, _, pic) = players[0].watch(Duration::from_millis(500)).await;
    assert!(pic.is_some());

    let ev = events(&record);
    let inits = named(&ev, "initialize");
    assert_eq!(inits.len(), 3, "one NVENC session per room: {inits:?}");
    let preset = named(&ev, "preset_config");
    assert!(preset.iter().all(|p| p["preset"] == "P1" && p["tuning"] == "ultra_low_latency"), "{preset:?}");
    for s in &inits {
        assert_eq!(s["preset"], "P1", "{s}");
        assert_eq!(s["tuning"], "ultra_low_latency", "{s}");
        assert_eq!(s["rc_mode"], "cbr", "{s}");
        assert_eq!(s["profile"], "baseline", "a profile Chromium takes (42e01f in the SDP): {s}");
        assert_eq!(s["frame_interval_p"], 1, "no B-frames: {s}");
        assert_eq!(s["repeat_spspps"], 1, "{s}");
        assert_eq!(s["gop_length"], u64::from(u32::MAX), "infinite GOP: {s}");
        assert_eq!(s["idr_period"], u64::from(u32::MAX), "{s}");
        let (rate, vbv) = (s["average_bitrate"].as_u64().unwrap(), s["vbv_buffer_size"].as_u64().unwrap());
        assert!(rate == 2_000_000 && (rate / 61..=rate / 59).contains(&vbv), "CBR 2 Mbit/s, VBV of one frame: {s}");
    }
    let forced = named(&ev, "encode").iter().filter(|e| e["force_idr"] == true).count();
    assert!(forced > before, "the PLI forced an IDR ({before} → {forced})");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let metrics = worker.metrics().await.unwrap();
    assert!(metrics.contains("retrofarm_nvenc_sessions 3"), "three sessions open");
    assert!(encoded(&metrics, "nvenc") > 150, "frames counted under encoder=\"nvenc\"");
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_the_drivers_sessions_rooms_use_openh264_and_a_lost_device_keeps_the_viewer() {
    let Some(double) = double() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Two sessions on this "GPU"; each session's device is lost after 150 pictures.
    let knobs = [("RETROFARM_NVENC_DOUBLE_MAX_SESSIONS", "2"), ("RETROFARM_NVENC_DOUBLE_FAIL_AFTER", "150")];
    let (addrs, _coord, worker, record) = start(dir.path(), &double, &knobs, &[]);
    let mut players = Vec::new();
    for _ in 0..3 {
        players.push(Player::join(addrs, None, 1).await);
    }
    worker.wait_log("this room encodes H264 with openh264", T).unwrap();
    assert_eq!(named(&events(&record), "open_refused").len(), 1, "the third room's session was refused");

    // 150 pictures at 60 fps: the first two rooms lose their device within 3 s and go on.
    for (i, p) in players.iter_mut().enumerate() {
        let (video, _, _) = p.watch(Duration::from_secs(3)).await;
        assert!(video >= 120, "room {i} kept streaming: {video} frames in 3 s");
    }
    worker.wait_log("encoder device lost", T).unwrap();
    for (i, p) in players.iter_mut().enumerate() {
        let (video, _, pic) = p.watch(Duration::from_secs(1)).await;
        assert!(video >= 40 && pic.is_some(), "room {i} streams and decodes after the loss: {video} frames");
    }
    assert!(!named(&events(&record), "device_lost").is_empty());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let metrics = worker.metrics().await.unwrap();
    assert!(encoded(&metrics, "openh264") > 100, "the rooms now encode with openh264");
    assert!(metrics.contains("retrofarm_nvenc_sessions 0"), "the lost sessions are given back");
    let health = worker.http_get("/healthz").await.unwrap();
    assert!(health.contains("\nrooms 3: nvenc 0, openh264 3, vp8 0\n"), "every room on openh264: {health}");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_the_gpu_path_nvenc_reads_each_rooms_slot_in_place() {
    let Some(double) = double() else { return };
    if !Path::new(LAVAPIPE_ICD).exists() {
        return eprintln!("SKIP: {LAVAPIPE_ICD} is missing (install mesa-vulkan-drivers)");
    }
    let dir = tempfile::tempdir().unwrap();
    let (addrs, _coord, worker, record) = start(dir.path(), &double, &[], &["--gpu", "vulkan", "--video-scale", "2"]);
    worker.wait_log("frames are converted on the GPU", T).unwrap();
    let mut players = Vec::new();
    for _ in 0..2 {
        players.push(Player::join(addrs, None, 1).await);
    }
    for (i, p) in players.iter_mut().enumerate() {
        let (video, _, pic) = p.watch(Duration::from_secs(2)).await;
        assert!(video >= 60, "room {i}: only {video} frames in 2 s");
        let pic = pic.unwrap_or_else(|| panic!("room {i}: nothing decoded"));
        assert_eq!((pic.width, pic.height), (512, 448), "the 256x224 picture upscaled twice on the GPU");
        // The 16x16 block at x 64..80, twice as large.
        let (x, _, n) = pic.centroid(WHITE.0, WHITE.1).expect("player 1 visible");
        assert!((900..=1150).contains(&n) && (x - 143.5).abs() < 4.0, "room {i}: block of {n} px at x {x}");
    }
    worker.wait_log("NVENC reads this room's pictures on the GPU (zero-copy)", T).unwrap();

    let ev = events(&record);
    let registered = named(&ev, "register");
    assert_eq!(registered.len(), 2, "each room's slot is registered once: {registered:?}");
    for r in &registered {
        assert_eq!(
            (r["width"].as_u64(), r["height"].as_u64(), r["format"].as_str()),
            (Some(512), Some(448), Some("nv12"))
        );
    }
    let encodes = named(&ev, "encode");
    let in_place = encodes.iter().filter(|e| e["input"] == "registered").count();
    let copied = encodes.iter().filter(|e| e["input"] == "buffer").count();
    assert!(in_place > 150, "pictures read in place: {in_place}");
    // Only the first picture of each session, before its slot exists, goes through a buffer.
    assert!(copied <= 4, "pictures copied through an input buffer: {copied}");
    // Mapped for each picture, unmapped once its bitstream is read (at most one in flight per room).
    let (maps, unmaps) = (named(&ev, "map").len(), named(&ev, "unmap").len());
    assert!(maps >= in_place && maps - unmaps <= 2, "{maps} maps, {unmaps} unmaps, {in_place} pictures");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let metrics = worker.metrics().await.unwrap();
    let zero_copy = metrics
        .lines()
        .find_map(|l| l.strip_prefix("retrofarm_nvenc_zero_copy_frames_total ")?.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(zero_copy > 150, "zero-copy pictures counted: {zero_copy}");
    assert!(metrics.contains("retrofarm_rooms_encoding{encoder=\"nvenc\"} 2"), "both rooms counted under nvenc");
    let health = worker.http_get("/healthz").await.unwrap();
    assert!(health.contains("\nrooms 2: nvenc 2, openh264 0, vp8 0\n"), "{health}");
    assert_eq!(health.matches(": nvenc\n").count(), 2, "one line per room: {health}");
}

/// NVIDIA's real user-space libraries (Debian 12's non-free `libnvidia-encode1`, `libnvcuvid1`,
/// `libcuda1`, unpacked by `scripts/fetch-nvidia-libs.sh`, never installed) on the worker's
/// library path, and no GPU: the worker finds NVENC's API, CUDA finds no device, and the worker
/// streams on openh264 saying so. Without a device node `cuInit` tries to create
/// `/dev/nvidiactl` (as root it could): the worker runs in its own mount namespace with a
/// read-only `/dev`, and the test checks that no node appeared.
#[tokio::test(flavor = "multi_thread")]
async fn with_nvidias_real_libraries_and_no_gpu_the_worker_streams_on_openh264_and_says_why() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/nvidia-libs");
    let fetch = std::process::Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fetch-nvidia-libs.sh"))
        .arg(&root)
        .output()
        .expect("run bash");
    match fetch.status.code() {
        Some(0) => {}
        Some(2) => {
            return eprintln!(
                "SKIP: NVIDIA's packages cannot be fetched here: {}",
                String::from_utf8_lossy(&fetch.stderr)
            )
        }
        _ => panic!("scripts/fetch-nvidia-libs.sh failed: {}", String::from_utf8_lossy(&fetch.stderr)),
    }
    let private = std::process::Command::new("unshare").args(["-m", "--propagation", "private", "true"]).status();
    if !private.is_ok_and(|s| s.success()) {
        return eprintln!("SKIP: needs a private mount namespace (unshare -m, as root)");
    }
    let libs = root.join("usr/lib/x86_64-linux-gnu/nvidia/current").canonicalize().unwrap();
    let nodes_before = nvidia_nodes();
    let dir = tempfile::tempdir().unwrap();
    let (addrs, _coord, worker) = procs::cluster(dir.path(), |o| {
        // The default library name, found on the library path as on a real host.
        o.env = vec![("LD_LIBRARY_PATH".into(), libs.display().to_string())];
        let script = "mount --bind /dev /dev && mount -o remount,bind,ro /dev && exec \"$@\"";
        o.wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"].map(String::from).to_vec();
    })
    .unwrap();
    worker.wait_log("H264 is encoded with openh264", T).unwrap();
    let log = worker.log();
    assert!(
        log.contains("NVENC API 12.1 found, but CUDA"),
        "the worker says what it found and why it is not used:\n{log}"
    );
    let health = worker.http_get("/healthz").await.unwrap();
    let nvenc = health.lines().nth(2).unwrap_or_default();
    eprintln!("the worker with NVIDIA's libraries and no GPU: {nvenc}");
    assert!(nvenc.starts_with("nvenc unavailable (NVENC API 12.1 found, but CUDA"), "{health}");

    let mut p = Player::join(addrs, None, 1).await;
    let (video, _, pic) = p.watch(Duration::from_secs(2)).await;
    assert!(video >= 60 && pic.is_some(), "streams on the CPU path: {video} frames");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let metrics = worker.metrics().await.unwrap();
    assert!(encoded(&metrics, "openh264") > 60 && encoded(&metrics, "nvenc") == 0);
    drop(worker);
    assert_eq!(nvidia_nodes(), nodes_before, "no NVIDIA device node was created on the host");
}

/// The host's `/dev/nvidia*` nodes.
fn nvidia_nodes() -> Vec<String> {
    let mut nodes: Vec<String> = std::fs::read_dir("/dev")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with("nvidia")).collect())
        .unwrap_or_default();
    nodes.sort();
    nodes
}

/// Frames encoded by `encoder`, all `gpu` labels together.
fn encoded(metrics: &str, encoder: &str) -> u64 {
    let prefix = format!("retrofarm_frames_encoded_total{{encoder=\"{encoder}\"");
    metrics.lines().filter(|l| l.starts_with(&prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).sum()
}
