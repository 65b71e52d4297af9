//! The GPU path end to end: a worker converting on Vulkan (Mesa's lavapipe here, a CPU Vulkan
//! device) streams the homebrew game upscaled by the compute shader to a Rust WebRTC peer; a
//! worker without a usable device streams on the CPU and says why; the worker binary links no
//! GPU library (Vulkan is loaded at run time). Tests that need lavapipe skip, saying so, where
//! it is not installed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use retrofarm_e2e::player::Player;
use retrofarm_e2e::procs::{self, CoordinatorAddrs, Proc, WorkerOpts};
use retrofarm_proto::input::button;

const T: Duration = Duration::from_secs(20);
const LAVAPIPE_ICD: &str = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json";
/// Luma of the white player-1 block.
const WHITE: (u8, u8) = (200, 255);

fn start(dir: &Path, opts: impl FnOnce(&mut WorkerOpts)) -> (CoordinatorAddrs, Proc, Proc) {
    procs::cluster(dir, opts).unwrap()
}

fn lavapipe() -> bool {
    let there = Path::new(LAVAPIPE_ICD).exists();
    if !there {
        eprintln!("skipping: {LAVAPIPE_ICD} is missing (install mesa-vulkan-drivers)");
    }
    there
}

#[test]
fn the_worker_binary_links_no_gpu_library() {
    for name in ["retrofarm-worker", "retrofarm-emulator"] {
        let out = Command::new("ldd").arg(procs::bin(name)).output().expect("ldd runs");
        let libs = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(out.status.success(), "ldd failed: {libs}");
        for lib in ["vulkan", "cuda", "nvidia", "nvcuvid"] {
            assert!(!libs.contains(lib), "{name} links {lib}: GPU libraries must be loaded at run time\n{libs}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_on_vulkan_streams_upscaled_frames_and_input_moves_them() {
    if !lavapipe() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (addrs, _coord, worker) = start(dir.path(), |o| {
        o.extra = ["--gpu", "vulkan", "--video-scale", "3"].map(String::from).to_vec();
    });
    worker.wait_log("frames are converted on the GPU", T).unwrap();
    let health = worker.http_get("/healthz").await.unwrap();
    assert!(health.starts_with("ok\nvulkan device "), "{health}");
    assert!(health.contains("(CPU)"), "lavapipe is reported as a CPU device: {health}");

    let mut p = Player::join(addrs, None, 1).await;
    let (video, _, pic) = p.watch(Duration::from_secs(2)).await;
    assert!(video >= 60, "only {video} frames in 2 s through the GPU stage");
    let pic = pic.expect("decoded pictures");
    // nestopia draws 256x240, or 256x224 with the overscan cropped.
    assert!(
        [(768, 720), (768, 672)].contains(&(pic.width, pic.height)),
        "not upscaled three times: {}x{}",
        pic.width,
        pic.height
    );
    let crop = (240 - pic.height / 3) as f64 / 2.0;
    let (x0, y0, n) = pic.centroid(WHITE.0, WHITE.1).expect("player 1 visible");
    // A 16x16 block, nine times the pixels, centred where the game draws it (71.5, 119.5) times three.
    assert!((1800..=2700).contains(&n), "a 48x48 block, got {n} px");
    let want = (72.0 * 3.0 - 0.5, (120.0 - crop) * 3.0 - 0.5);
    assert!((x0 - want.0).abs() < 4.0 && (y0 - want.1).abs() < 4.0, "player 1 at ({x0}, {y0}), expected {want:?}");
    assert!(worker.log().contains("HostImport"), "the frame ring is imported, not copied");

    // Frames the emulator writes after the import reach the picture: the block moves.
    let (_, _, moved) = p.hold(button::RIGHT, Duration::from_millis(600)).await;
    let (_, _, after) = p.watch(Duration::from_millis(300)).await;
    let (x1, _, _) = after.or(moved).unwrap().centroid(WHITE.0, WHITE.1).unwrap();
    assert!(x1 - x0 > 90.0, "holding Right moved player 1 from {x0} to {x1} (3x pixels)");

    tokio::time::sleep(Duration::from_millis(1200)).await; // counters are exported once a second
    let metrics = worker.metrics().await.unwrap();
    let converted = metrics
        .lines()
        .find_map(|l| l.strip_prefix("retrofarm_gpu_frames_converted_total{gpu=\"0\"} "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(converted.is_some_and(|n| n > 60), "frames counted as converted on gpu 0: {converted:?}");
    assert!(metrics.contains("retrofarm_frames_encoded_total{encoder=\"openh264\",gpu=\"0\"}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_vulkan_device_the_worker_streams_on_the_cpu_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (addrs, _coord, worker) = start(dir.path(), |o| {
        o.extra = ["--gpu", "vulkan"].map(String::from).to_vec();
        // The loader finds no driver at all.
        o.env = vec![("VK_ICD_FILENAMES".into(), "/nonexistent/icd.json".into())];
    });
    streams_on_the_cpu_saying(addrs, &worker, "").await;
}

/// The worker says it found no usable GPU, `/healthz` says the CPU converts and why (`why` in
/// the reason), and a player gets a full-rate stream.
async fn streams_on_the_cpu_saying(addrs: CoordinatorAddrs, worker: &Proc, why: &str) {
    worker.wait_log("no usable GPU", T).unwrap();
    let health = worker.http_get("/healthz").await.unwrap();
    assert!(
        health.starts_with("ok\ncpu (") && health.contains(why),
        "healthz says the CPU converts, and why: {health}"
    );

    let mut p = Player::join(addrs, None, 1).await;
    let (video, _, pic) = p.watch(Duration::from_secs(2)).await;
    assert!(video >= 80, "only {video} frames in 2 s on the CPU path");
    assert_eq!(pic.expect("decoded pictures").width, 256);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gpu_that_fails_mid_run_leaves_the_room_streaming_on_the_cpu() {
    if !lavapipe() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (addrs, _coord, worker) = start(dir.path(), |o| {
        o.extra = ["--gpu", "vulkan"].map(String::from).to_vec();
        // The stage fails as a lost device would after 90 batches (1.5 s of one room).
        o.env = vec![("RETROFARM_GPU_FAIL_AFTER".into(), "90".into())];
    });
    worker.wait_log("frames are converted on the GPU", T).unwrap();
    let mut p = Player::join(addrs, None, 1).await;
    let (video, _, _) = p.watch(Duration::from_secs(4)).await;
    worker.wait_log("converts on the CPU from now on", T).unwrap();
    assert!(video >= 200, "the room kept streaming through the failure: {video} frames in 4 s");
    let (video, _, pic) = p.watch(Duration::from_secs(1)).await;
    assert!(video >= 50, "and streams on the CPU afterwards: {video} frames in 1 s");
    assert_eq!(pic.expect("decoded").width, 256);
    assert!(!worker.log().contains("room_closed") && !worker.log().contains("room ended"), "no room ended");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let metrics = worker.metrics().await.unwrap();
    assert!(metrics.contains("retrofarm_gpu_failed{gpu=\"0\"} 1"), "the failure is exported");
    let cpu_frames = metrics
        .lines()
        .find_map(|l| l.strip_prefix("retrofarm_frames_encoded_total{encoder=\"openh264\",gpu=\"cpu\"} "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(cpu_frames.is_some_and(|n| n > 0), "frames after the failure count under gpu=\"cpu\": {cpu_frames:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_vulkan_loader_the_worker_streams_on_the_cpu_and_says_why() {
    const LOADER: &str = "/usr/lib/x86_64-linux-gnu/libvulkan.so.1";
    // Hide the loader from the worker alone: a private mount namespace with /dev/null over it.
    let private = Command::new("unshare").args(["-m", "--propagation", "private", "true"]).status();
    if !Path::new(LOADER).exists() || !private.is_ok_and(|s| s.success()) {
        return eprintln!("skipping: needs {LOADER} and a private mount namespace (unshare -m, as root)");
    }
    let dir = tempfile::tempdir().unwrap();
    let (addrs, _coord, worker) = start(dir.path(), |o| {
        o.extra = ["--gpu", "vulkan"].map(String::from).to_vec();
        let script = format!("mount --bind /dev/null {LOADER} && exec \"$@\"");
        o.wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c", &script, "sh"].map(String::from).to_vec();
    });
    streams_on_the_cpu_saying(addrs, &worker, "libvulkan.so.1").await;
}
