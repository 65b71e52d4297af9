//! retrofarm-nvenc against the NVENC test double (`retrofarm-nvenc-double`): loading, encoding
//! through the `VideoEncoder` seam, the settings NVENC is given, the session cap and a lost
//! device.
//!
//! The double implements the NVENC function table over OpenH264. These tests prove that we
//! use the API as NVIDIA's header documents it and choose the settings we mean to; they prove
//! nothing about NVIDIA's hardware (speed, quality, real session limits, CUDA memory).
//!
//! The double is a `cdylib`, which Cargo cannot hand to a test as a dependency: the first
//! test builds it with `cargo build -p retrofarm-nvenc-double` (same profile and target
//! directory as this test) and loads `target/<profile>/libretrofarm_nvenc_double.so`.
//!
//! The double reads its knobs from the environment when a session opens, and the loader reads
//! `RETROFARM_NVENC_TEST_DOUBLE`: every test holds one process-wide lock while it sets
//! variables and drives encoders, so tests never see each other's settings or sessions.

// `NvencEncoder::new` is unsafe (it takes a CUDA context: null here, which the double accepts)
// and the zero-copy test hands the double a host pointer as a "device pointer".
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use retrofarm_media::h264::nal_units;
use retrofarm_media::{
    convert, I420Frame, Picture, PictureFormat, PixelFormat, TestPattern, VideoCodec, VideoConfig, VideoEncoder,
};
use retrofarm_nvenc::{
    nv12, ApiVersion, Library, NvencEncoder, NvencError, NvencOptions, Preset, Tuning, TEST_DOUBLE_ENV,
};
use serde_json::Value;

const RECORD: &str = "RETROFARM_NVENC_DOUBLE_RECORD";
const MAX_SESSIONS: &str = "RETROFARM_NVENC_DOUBLE_MAX_SESSIONS";
const MAX_VERSION: &str = "RETROFARM_NVENC_DOUBLE_MAX_VERSION";
const FAIL_AFTER: &str = "RETROFARM_NVENC_DOUBLE_FAIL_AFTER";
const ALL_VARS: [&str; 5] = [TEST_DOUBLE_ENV, RECORD, MAX_SESSIONS, MAX_VERSION, FAIL_AFTER];

const WIDTH: u32 = 256;
const HEIGHT: u32 = 240;
const FPS: f64 = 60.0;

/// Builds the double once per test process and returns its path.
fn double_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test>
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>").to_path_buf();
        let target_dir = profile_dir.parent().expect("target directory");
        let profile = profile_dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--quiet", "-p", "retrofarm-nvenc-double"]).env("CARGO_TARGET_DIR", target_dir);
        match profile {
            "debug" => {}
            "release" => {
                cargo.arg("--release");
            }
            other => {
                cargo.args(["--profile", other]);
            }
        }
        let status = cargo.status().expect("run cargo to build the NVENC test double");
        let path = profile_dir.join("libretrofarm_nvenc_double.so");
        assert!(
            status.success() && path.exists(),
            "could not build {}: run `cargo build -p retrofarm-nvenc-double` and retry",
            path.display()
        );
        path
    })
}

/// The process-wide lock, with every variable of the double and the loader cleared, then the
/// test double allowed. Restores a clean environment on drop.
struct Env {
    _lock: MutexGuard<'static, ()>,
}

impl Env {
    fn new() -> Self {
        static LOCK: Mutex<()> = Mutex::new(());
        let lock = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        for var in ALL_VARS {
            std::env::remove_var(var);
        }
        std::env::set_var(TEST_DOUBLE_ENV, "1");
        Env { _lock: lock }
    }

    fn set(&self, var: &str, value: impl AsRef<std::ffi::OsStr>) -> &Self {
        std::env::set_var(var, value);
        self
    }

    fn remove(&self, var: &str) -> &Self {
        std::env::remove_var(var);
        self
    }

    /// A fresh record file for this test, set as the double's record.
    fn record(&self, name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("retrofarm-nvenc-{name}-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        self.set(RECORD, &path);
        path
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for var in ALL_VARS {
            std::env::remove_var(var);
        }
    }
}

fn load() -> Library {
    Library::load_from(double_path()).expect("load the test double")
}

fn config() -> VideoConfig {
    VideoConfig { bitrate_bps: 1_500_000, max_fps: FPS as f32, keyframe_interval: None }
}

fn open(library: &Library) -> Result<NvencEncoder, NvencError> {
    // SAFETY: a null CUDA context, which only the test double accepts (it has no CUDA).
    unsafe { NvencEncoder::new(library, std::ptr::null_mut(), config(), WIDTH, HEIGHT) }
}

fn pts(index: u32) -> Duration {
    Duration::from_secs_f64(f64::from(index) / FPS)
}

/// Renders frame `index` of the test pattern into `yuv`.
fn render(pattern: &mut TestPattern, index: u32, yuv: &mut I420Frame) {
    convert(&pattern.render(index, PixelFormat::Xrgb8888), yuv).expect("convert");
}

/// PSNR of the decoded Y plane against the encoder's input.
fn psnr_y(input: &I420Frame, decoded: &impl YUVSource) -> f64 {
    let (w, h) = decoded.dimensions();
    assert_eq!((w, h), (input.width(), input.height()));
    retrofarm_media::psnr_plane(input.y(), input.y_stride(), decoded.y(), decoded.strides().0, w, h)
}

fn nal_types(access_unit: &[u8]) -> Vec<u8> {
    nal_units(access_unit).map(|nal| nal[0] & 0x1f).collect()
}

fn read_record(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))).collect()
}

fn events<'a>(record: &'a [Value], name: &str) -> Vec<&'a Value> {
    record.iter().filter(|e| e["event"] == name).collect()
}

/// What every session must be given (the low-latency settings), at `bitrate`.
fn assert_low_latency(event: &Value, bitrate: u64) {
    assert_low_latency_at(event, bitrate, FPS as u64);
}

/// [`assert_low_latency`] at `fps` frames per second.
fn assert_low_latency_at(event: &Value, bitrate: u64, fps: u64) {
    let expect = |key: &str, value: Value| assert_eq!(event[key], value, "{key} in {event}");
    expect("codec", "h264".into());
    expect("preset", "P1".into());
    expect("tuning", "ultra_low_latency".into());
    expect("width", WIDTH.into());
    expect("height", HEIGHT.into());
    expect("frame_rate_num", fps.into());
    expect("frame_rate_den", 1.into());
    expect("rc_mode", "cbr".into());
    expect("average_bitrate", bitrate.into());
    expect("max_bitrate", bitrate.into());
    // One frame's bits: bitrate / fps.
    let vbv = (bitrate as f64 / fps as f64).round() as u64;
    expect("vbv_buffer_size", vbv.into());
    expect("vbv_initial_delay", vbv.into());
    expect("gop_length", u64::from(u32::MAX).into());
    expect("idr_period", u64::from(u32::MAX).into());
    expect("frame_interval_p", 1.into());
    expect("repeat_spspps", 1.into());
    expect("profile", "baseline".into());
    expect("enable_ptd", 1.into());
    expect("enable_encode_async", 0.into());
    expect("lookahead", false.into());
    // CAVLC (baseline).
    expect("entropy_coding_mode", 2.into());
}

#[test]
fn the_loader_refuses_the_double_unless_allowed_and_checks_the_version() {
    let env = Env::new();

    env.remove(TEST_DOUBLE_ENV);
    let refused = Library::load_from(double_path()).unwrap_err();
    assert!(matches!(refused, NvencError::TestDouble { .. }), "{refused:?}");
    assert!(refused.to_string().contains("RETROFARM_NVENC_TEST_DOUBLE=1"), "{refused}");

    env.set(TEST_DOUBLE_ENV, "1");
    let library = load();
    assert!(library.is_double());
    assert_eq!(library.api_version(), ApiVersion { major: 12, minor: 1 });
    let table = library.function_table();
    let missing: Vec<_> = table.entries().iter().filter(|(_, present)| !present).map(|(name, _)| *name).collect();
    assert!(missing.is_empty(), "the double leaves {missing:?} empty");
    assert_eq!(table.entries().len(), 42);

    env.set(MAX_VERSION, "11.1");
    let old = Library::load_from(double_path()).unwrap_err();
    assert!(matches!(old, NvencError::DriverTooOld { found: ApiVersion { major: 11, minor: 1 } }), "{old:?}");
    assert_eq!(
        old.to_string(),
        "the NVIDIA driver supports NVENC API 11.1; retrofarm needs 12.1: upgrade the driver to 535 or later"
    );
    // A newer driver is fine.
    env.set(MAX_VERSION, "13.0");
    assert_eq!(load().api_version(), ApiVersion { major: 13, minor: 0 });
    env.remove(MAX_VERSION);

    let absent = Library::load_from("/nonexistent/libnvidia-encode.so.1").unwrap_err();
    assert!(matches!(absent, NvencError::NotFound { .. }), "{absent:?}");
    assert!(
        absent.to_string().contains(
            "/nonexistent/libnvidia-encode.so.1 not found: install the NVIDIA driver's libnvidia-encode1 package"
        ),
        "{absent}"
    );

    // This machine has no NVIDIA driver (if it has one, it must at least load or say why).
    match Library::load() {
        Ok(real) => assert!(!real.is_double(), "{real:?}"),
        Err(error) => {
            eprintln!("Library::load() here: {error}");
            assert!(!matches!(error, NvencError::TestDouble { .. }));
        }
    }
}

/// Three encoders at once, 300 frames each, through the `VideoEncoder` seam; every frame
/// decodes at 35 dB or better; keyframes only first and on request; a bitrate change is a
/// reconfigure of the same session; the settings are recorded.
#[test]
fn three_encoders_stream_through_the_seam_with_low_latency_settings() {
    let env = Env::new();
    let record = env.record("three");
    let library = load();
    let mut encoders: Vec<NvencEncoder> = (0..3).map(|_| open(&library).expect("open")).collect();
    for encoder in &encoders {
        let seam: &dyn VideoEncoder = encoder;
        assert_eq!((seam.codec(), seam.name(), seam.input()), (VideoCodec::H264, "nvenc", PictureFormat::I420));
    }
    let mut decoders: Vec<Decoder> = (0..3).map(|_| Decoder::new().expect("decoder")).collect();
    let mut keyframes = vec![Vec::new(); 3];
    let mut worst = [f64::INFINITY; 3];
    let mut pattern = TestPattern::new(WIDTH, HEIGHT);
    let mut yuv = I420Frame::default();
    for i in 0..300u32 {
        render(&mut pattern, i, &mut yuv);
        if i == 100 {
            VideoEncoder::request_keyframe(&mut encoders[0]);
        }
        if i == 150 {
            let result = VideoEncoder::set_rate(&mut encoders[1], 2_500_000, 30.0);
            result.unwrap_or_else(|e| panic!("set_rate: {e}: {:?}", encoders[1].last_error()));
        }
        for (n, (encoder, decoder)) in encoders.iter_mut().zip(&mut decoders).enumerate() {
            // Through the seam, as a room drives it; the bytes copied out so that a failure can
            // show the encoder's last error.
            let result =
                VideoEncoder::encode(encoder, Picture::I420(&yuv), pts(i)).map(|o| (o.data.to_vec(), o.keyframe));
            let (data, keyframe) =
                result.unwrap_or_else(|e| panic!("encoder {n} frame {i}: {e}: {:?}", encoder.last_error()));
            assert!(!data.is_empty(), "encoder {n} frame {i}: no data");
            let types = nal_types(&data);
            if keyframe {
                keyframes[n].push(i);
                assert!(types.contains(&7) && types.contains(&8) && types.contains(&5), "IDR {n}/{i}: {types:?}");
            } else {
                assert!(types.iter().all(|&t| t == 1), "P frame {n}/{i}: {types:?}");
            }
            let decoded = decoder.decode(&data).expect("decode").expect("a picture for every access unit");
            let psnr = psnr_y(&yuv, &decoded);
            assert!(psnr >= 35.0, "encoder {n} frame {i}: PSNR {psnr:.2} dB");
            worst[n] = worst[n].min(psnr);
        }
    }
    eprintln!("worst PSNR per encoder: {worst:.2?} dB");
    assert_eq!(keyframes, vec![vec![0, 100], vec![0], vec![0]], "IDRs: first, and encoder 0's request");
    assert!(VideoEncoder::set_rate(&mut encoders[1], 10, 60.0).is_err(), "bitrates are checked as for every encoder");
    drop(encoders);

    let record = read_record(&record);
    let opens = events(&record, "open");
    assert_eq!(opens.len(), 3, "one session per encoder, none for the bitrate change");
    let sessions: Vec<&Value> = opens.iter().map(|e| &e["session"]).collect();
    for open in &opens {
        assert_eq!(open["device_type"], "cuda");
    }
    for preset in events(&record, "preset_config") {
        assert_eq!((&preset["preset"], &preset["tuning"]), (&"P1".into(), &"ultra_low_latency".into()));
    }
    let inits = events(&record, "initialize");
    assert_eq!(inits.len(), 3);
    for init in &inits {
        assert_low_latency(init, 1_500_000);
    }
    let reconfigures = events(&record, "reconfigure");
    assert_eq!(reconfigures.len(), 1, "{reconfigures:?}");
    let reconfigure = reconfigures[0];
    assert_eq!(&reconfigure["session"], sessions[1]);
    assert_low_latency_at(reconfigure, 2_500_000, 30);
    assert_eq!((&reconfigure["reset_encoder"], &reconfigure["force_idr"]), (&false.into(), &false.into()));

    let encodes = events(&record, "encode");
    assert_eq!(encodes.len(), 900);
    let forced: Vec<_> = encodes.iter().filter(|e| e["force_idr"] == true).collect();
    assert_eq!(forced.len(), 1, "{forced:?}");
    assert_eq!((&forced[0]["session"], &forced[0]["frame"]), (sessions[0], &101.into()));
    assert_eq!(forced[0]["output_spspps"], true);
    assert!(encodes.iter().all(|e| e["input"] == "buffer"));

    let destroys = events(&record, "destroy");
    assert_eq!(destroys.len(), 3);
    for destroy in destroys {
        assert_eq!(destroy["frames"], 300);
        for left in ["input_buffers_left", "bitstream_buffers_left", "registered_left", "mapped_left"] {
            assert_eq!(destroy[left], 0, "buffers are destroyed before the session: {destroy}");
        }
    }
}

#[test]
fn preset_and_tuning_are_passed_through() {
    let env = Env::new();
    let record = env.record("options");
    let library = load();
    let options = NvencOptions { preset: Preset::P3, tuning: Tuning::LowLatency };
    // SAFETY: a null CUDA context, for the double.
    let encoder =
        unsafe { NvencEncoder::with_options(&library, std::ptr::null_mut(), config(), WIDTH, HEIGHT, options) }
            .expect("open");
    assert_eq!(encoder.options(), options);
    drop(encoder);
    let record = read_record(&record);
    let init = events(&record, "initialize")[0];
    assert_eq!((&init["preset"], &init["tuning"]), (&"P3".into(), &"low_latency".into()));
    // The rest stays low latency whatever the preset (P3 may default to B-frames).
    assert_eq!(init["frame_interval_p"], 1);
    assert_eq!(init["rc_mode"], "cbr");
}

#[test]
fn a_third_session_over_the_cap_is_refused_as_no_more_sessions() {
    let env = Env::new();
    env.set(MAX_SESSIONS, "2");
    let record = env.record("cap");
    let library = load();
    let first = open(&library).expect("first session");
    let second = open(&library).expect("second session");
    let third = open(&library).unwrap_err();
    assert!(third.is_no_more_sessions(), "{third:?}");
    assert!(matches!(third, NvencError::NoMoreSessions { .. }));
    assert!(!third.is_device_lost());
    assert!(third.to_string().contains("no more NVENC sessions"), "{third}");
    drop(first);
    let again = open(&library).expect("a session is free again");
    drop((second, again));
    let record = read_record(&record);
    assert_eq!(events(&record, "open").len(), 3);
    assert_eq!(events(&record, "open_refused").len(), 1);
    assert_eq!(events(&record, "destroy").len(), 3);
}

#[test]
fn a_lost_device_fails_the_next_frame_and_every_call_after() {
    let env = Env::new();
    env.set(FAIL_AFTER, "50");
    let record = env.record("lost");
    let library = load();
    let mut direct = open(&library).expect("open");
    let mut seam = open(&library).expect("open");
    let mut pattern = TestPattern::new(WIDTH, HEIGHT);
    let mut yuv = I420Frame::default();
    for i in 0..50u32 {
        render(&mut pattern, i, &mut yuv);
        direct.encode_i420(&yuv, pts(i)).unwrap_or_else(|e| panic!("frame {i}: {e}"));
        VideoEncoder::encode(&mut seam, Picture::I420(&yuv), pts(i)).unwrap_or_else(|e| panic!("frame {i}: {e}"));
    }
    render(&mut pattern, 50, &mut yuv);
    // Frame 51, through the inherent API: the typed error.
    let error = direct.encode_i420(&yuv, pts(50)).unwrap_err();
    assert!(error.is_device_lost(), "{error:?}");
    assert!(error.to_string().contains("NV_ENC_ERR_DEVICE_NOT_EXIST"), "{error}");
    assert!(direct.is_device_lost());
    // Every call after fails at once.
    assert!(direct.encode_i420(&yuv, pts(51)).unwrap_err().is_device_lost());
    assert!(direct.set_rate(1_000_000, 60.0).unwrap_err().is_device_lost());

    // Frame 51, through the seam: a VideoError, and the encoder tells why.
    let error = VideoEncoder::encode(&mut seam, Picture::I420(&yuv), pts(50)).unwrap_err();
    assert!(error.is_device_lost(), "the seam says the device is gone: {error}");
    assert!(error.to_string().contains("NV_ENC_ERR_DEVICE_NOT_EXIST"), "{error}");
    assert!(seam.is_device_lost());
    assert!(seam.last_error().is_some_and(NvencError::is_device_lost));
    drop((direct, seam));

    let record = read_record(&record);
    assert_eq!(events(&record, "device_lost").len(), 2);
    assert_eq!(events(&record, "encode").len(), 100);
    let destroys = events(&record, "destroy");
    assert_eq!(destroys.len(), 2, "a lost session is still destroyed");
    assert!(destroys.iter().all(|d| d["frames"] == 50));
}

/// The zero-copy path: an NV12 picture registered with the session (a CUDA device pointer on
/// NVIDIA hardware; host memory for the double, which has no CUDA) and mapped per picture.
#[test]
fn registered_nv12_input_is_mapped_per_picture() {
    let env = Env::new();
    let record = env.record("registered");
    let library = load();
    let mut encoder = open(&library).expect("open");
    let mut decoder = Decoder::new().expect("decoder");
    let (pitch, rows) = (320usize, HEIGHT as usize);
    let mut storage = vec![0u8; nv12::len(pitch, rows)];
    let base = storage.as_mut_ptr();
    // SAFETY: `storage` outlives the registration (the encoder is dropped first, below), and
    // is only touched through `base` from here on; the double reads it as host memory.
    let input = unsafe { encoder.register_cuda_nv12(base as u64, pitch as u32) }.expect("register");
    assert_eq!(input.size(), (WIDTH, HEIGHT));
    let mut pattern = TestPattern::new(WIDTH, HEIGHT);
    let mut yuv = I420Frame::default();
    for i in 0..30u32 {
        render(&mut pattern, i, &mut yuv);
        // SAFETY: `base` points at `storage`'s bytes; nothing else reads or writes them now.
        nv12::copy_from_i420(
            &yuv,
            unsafe { std::slice::from_raw_parts_mut(base, nv12::len(pitch, rows)) },
            pitch,
            rows,
        );
        if i == 20 {
            encoder.request_keyframe();
        }
        let out = encoder.encode_registered(&input, pts(i)).unwrap_or_else(|e| panic!("frame {i}: {e}"));
        assert_eq!(out.keyframe, i == 0 || i == 20, "frame {i}");
        let decoded = decoder.decode(out.data).expect("decode").expect("picture");
        let psnr = psnr_y(&yuv, &decoded);
        assert!(psnr >= 35.0, "frame {i}: PSNR {psnr:.2} dB");
    }
    encoder.unregister(input).expect("unregister");
    drop(encoder);
    drop(storage);

    let record = read_record(&record);
    let register = events(&record, "register");
    assert_eq!(register.len(), 1);
    assert_eq!(register[0]["resource_type"], "cuda_device_ptr");
    assert_eq!(register[0]["pitch"], pitch);
    assert_eq!((events(&record, "map").len(), events(&record, "unmap").len()), (30, 30));
    assert_eq!(events(&record, "unregister").len(), 1);
    assert!(events(&record, "encode").iter().all(|e| e["input"] == "registered"));
    assert_eq!(events(&record, "destroy")[0]["registered_left"], 0);
}

/// A picture of another size gets a new session (the old one destroyed first) that starts
/// with an IDR.
#[test]
fn a_size_change_opens_a_new_session_starting_with_an_idr() {
    let env = Env::new();
    let record = env.record("resize");
    let library = load();
    let mut encoder = open(&library).expect("open");
    let mut decoder = Decoder::new().expect("decoder");
    let mut yuv = I420Frame::default();
    for (i, (w, h)) in [(WIDTH, HEIGHT), (WIDTH, HEIGHT), (320, 240), (320, 240)].into_iter().enumerate() {
        let mut pattern = TestPattern::new(w, h);
        render(&mut pattern, i as u32, &mut yuv);
        let out = encoder.encode_i420(&yuv, pts(i as u32)).expect("encode");
        assert_eq!(out.keyframe, i == 0 || i == 2, "frame {i}");
        let decoded = decoder.decode(out.data).expect("decode").expect("picture");
        assert_eq!(decoded.dimensions(), (w as usize, h as usize));
    }
    assert_eq!(encoder.size(), (320, 240));
    drop(encoder);
    let record = read_record(&record);
    let order: Vec<&str> =
        record.iter().filter_map(|e| e["event"].as_str()).filter(|e| matches!(*e, "open" | "destroy")).collect();
    assert_eq!(order, ["open", "destroy", "open", "destroy"]);
}

/// The double is strict where a driver is: wrong struct versions and calls out of order are
/// refused, so the tests above would catch such mistakes in `NvencEncoder`.
#[test]
fn the_double_refuses_wrong_versions_and_calls_out_of_order() {
    use retrofarm_nvenc::api;
    let _env = Env::new();
    let library = load();
    let table = library.function_table();
    let (open_session, destroy, create_input, last_error) = (
        table.nvEncOpenEncodeSessionEx.expect("open"),
        table.nvEncDestroyEncoder.expect("destroy"),
        table.nvEncCreateInputBuffer.expect("create input"),
        table.nvEncGetLastErrorString.expect("last error"),
    );
    let mut params = api::NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS::default();
    params.deviceType = api::NV_ENC_DEVICE_TYPE_CUDA;
    params.apiVersion = api::NVENCAPI_VERSION;
    let mut encoder = std::ptr::null_mut();
    let mut wrong = params;
    wrong.version = api::nvencapi_struct_version(2);
    // SAFETY: live structs of the header's types.
    assert_eq!(unsafe { open_session(&mut wrong, &mut encoder) }, api::NV_ENC_ERR_INVALID_VERSION);
    assert!(encoder.is_null());
    // SAFETY: as above.
    assert_eq!(unsafe { open_session(&mut params, &mut encoder) }, api::NV_ENC_SUCCESS);
    let mut create = api::NV_ENC_CREATE_INPUT_BUFFER::default();
    create.width = WIDTH;
    create.height = HEIGHT;
    create.bufferFmt = api::NV_ENC_BUFFER_FORMAT_NV12;
    // SAFETY: a live session and struct.
    assert_eq!(unsafe { create_input(encoder, &mut create) }, api::NV_ENC_ERR_ENCODER_NOT_INITIALIZED);
    // SAFETY: a live session; the string is read before the next call.
    let message = unsafe { std::ffi::CStr::from_ptr(last_error(encoder)) };
    assert!(message.to_string_lossy().contains("nvEncInitializeEncoder"), "{message:?}");
    // SAFETY: a live session, destroyed once.
    assert_eq!(unsafe { destroy(encoder) }, api::NV_ENC_SUCCESS);
    // SAFETY: a handle that is no longer a session: refused, not dereferenced.
    assert_eq!(unsafe { destroy(encoder) }, api::NV_ENC_ERR_INVALID_PTR);
}
