//! Writes the seed corpora: real messages, packets, frames, shared memory and saves made by
//! the project's own encoders (and the examples of docs/protocol.md, the packaged
//! configuration files and the configurations of the unit tests).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use retrofarm_emulator::control::wire;
use retrofarm_emulator::control::{Reply, Request};
use retrofarm_emulator::shm::frame_ring::VideoInput;
use retrofarm_emulator::shm::layout::{Header, Layout, HEADER_LEN};
use retrofarm_emulator::shm::WriterShm;
use retrofarm_emulator::{AvInfo, PixelFormat};
use retrofarm_proto::browser::*;
use retrofarm_proto::control::*;
use retrofarm_proto::frame;
use retrofarm_proto::game::*;
use retrofarm_proto::ids::{RoomId, SessionId, WorkerId};
use retrofarm_proto::input::{button, PadState, Pointer};
use retrofarm_proto::ErrorCode;

#[path = "../../../farm-worker/src/saves/format.rs"]
#[allow(dead_code)]
mod format;

struct Out {
    root: PathBuf,
}

impl Out {
    fn put(&self, target: &str, name: &str, bytes: impl AsRef<[u8]>) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn s() -> SessionId {
    SessionId::new("9b1f0c2d4e5a6b7c").unwrap()
}
fn r() -> RoomId {
    RoomId::new("5f3a9c1e").unwrap()
}
fn w() -> WorkerId {
    WorkerId::new("gpu-eu-1").unwrap()
}
fn candidate() -> IceCandidate {
    IceCandidate {
        candidate: "candidate:1 1 udp 2122260223 127.0.0.1 51234 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
    }
}
const SDP: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n";

fn browser(out: &Out) {
    let client = [
        ClientMsg::Latency { results: [(w(), 12), (WorkerId::new("gpu-eu-2").unwrap(), 40)].into_iter().collect() },
        ClientMsg::StartGame { game: "Retrofarm Walk".into(), room: None, port: 1 },
        ClientMsg::StartGame { game: String::new(), room: Some(r()), port: 0 },
        ClientMsg::Answer { sdp: SDP.into() },
        ClientMsg::Ice { candidate: Some(candidate()) },
        ClientMsg::Ice { candidate: None },
        ClientMsg::Quit,
    ];
    for (i, m) in client.iter().enumerate() {
        out.put("browser_msg", &format!("client-{i}-{}", m.kind()), m.encode());
    }
    let server = [
        ServerMsg::CheckLatency {
            workers: vec![PingTarget { id: w(), ping_url: "http://203.0.113.7:9000/ping".into() }],
        },
        ServerMsg::Init {
            session: s(),
            ice_servers: vec![
                IceServer { urls: vec!["stun:stun.example.org:3478".into()], username: None, credential: None },
                IceServer {
                    urls: vec!["turn:turn.example.org:3478".into()],
                    username: Some("u".into()),
                    credential: Some("p".into()),
                },
            ],
            games: vec![GameInfo { name: "Retrofarm Walk".into(), system: "nes".into() }],
            worker: ChosenWorker { id: w(), zone: "eu".into() },
            room: Some(r()),
        },
        ServerMsg::GameStarted { room: r(), game: "Retrofarm Walk".into(), port: 1 },
        ServerMsg::Offer { sdp: SDP.into() },
        ServerMsg::error(ErrorCode::NoFreeWorker, "every worker is busy; try again in a minute"),
    ];
    for (i, m) in server.iter().enumerate() {
        out.put("browser_msg", &format!("server-{i}"), m.encode());
    }
    // Shapes the encoder does not write: whitespace, extra fields, escapes, a bad type.
    out.put(
        "browser_msg",
        "hand-ice-extra",
        r#"{"t":"ice","p":{"candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"u"}}}"#,
    );
    out.put("browser_msg", "hand-spaces", "{ \"p\" : { \"port\" : 2 , \"room\" : \"r1\" } , \"t\" : \"start_game\" }");
    out.put("browser_msg", "hand-unknown", r#"{"t":"format_disk"}"#);
    out.put("browser_msg", "hand-escaped", r#"{"t":"answer","p":{"sdp":"v=0\r\n\u00e9\ud83d\ude00"}}"#);
}

fn link(out: &Out) {
    let load = Load { rooms: 3, sessions: 5, free: 12 };
    let worker = [
        WorkerMsg::Register {
            protocol: PROTOCOL_VERSION,
            id: w(),
            zone: "eu".into(),
            ping_url: "https://203.0.113.7:9000/ping".into(),
            games: vec![
                GameInfo { name: "Retrofarm Walk".into(), system: "nes".into() },
                GameInfo { name: "Pocket Walk".into(), system: "gba".into() },
            ],
            rooms: vec![RoomInfo { id: r(), game: "Retrofarm Walk".into() }],
            load,
        },
        WorkerMsg::Heartbeat { load },
        WorkerMsg::SessionStarted { session: s(), room: r(), game: "Retrofarm Walk".into(), port: 1 },
        WorkerMsg::Offer { session: s(), sdp: SDP.into() },
        WorkerMsg::Ice { session: s(), candidate: Some(candidate()) },
        WorkerMsg::Ice { session: s(), candidate: None },
        WorkerMsg::SessionEnded { session: s(), code: ErrorCode::RoomClosed, message: "the emulator crashed".into() },
        WorkerMsg::RoomClosed { room: r() },
    ];
    let coord = [
        CoordMsg::Registered { heartbeat_ms: 500 },
        CoordMsg::Refused { reason: "protocol 2 is not 1".into() },
        CoordMsg::StartSession { session: s(), game: "Retrofarm Walk".into(), room: None, port: 1 },
        CoordMsg::StartSession { session: s(), game: String::new(), room: Some(r()), port: 0 },
        CoordMsg::Answer { session: s(), sdp: SDP.into() },
        CoordMsg::Ice { session: s(), candidate: Some(candidate()) },
        CoordMsg::EndSession { session: s() },
    ];
    // Byte 0: bit 0 the direction (0: CoordMsg, 1: WorkerMsg), the rest how reads are cut.
    let stream = |ctl: u8, frames: Vec<Vec<u8>>| [vec![ctl], frames.concat()].concat();
    out.put("link_frames", "coord-all", stream(0, coord.iter().map(frame::encode).collect()));
    out.put("link_frames", "coord-cut", stream(0x2a, coord.iter().map(frame::encode).collect()));
    out.put("link_frames", "worker-all", stream(1, worker.iter().map(frame::encode).collect()));
    out.put("link_frames", "worker-cut", stream(0x53, worker.iter().map(frame::encode).collect()));
    for (i, m) in worker.iter().enumerate() {
        out.put("link_frames", &format!("worker-{i}"), stream(1, vec![frame::encode(m)]));
    }
    for (i, m) in coord.iter().enumerate() {
        out.put("link_frames", &format!("coord-{i}"), stream(0, vec![frame::encode(m)]));
    }
    // A start_session of an older coordinator (an extra field), and an oversized length.
    let old = br#"{"t":"start_session","p":{"session":"s1","game":"walk","room":null,"port":1,"ice_servers":[]}}"#;
    out.put("link_frames", "coord-old", [&[0u8][..], &(old.len() as u32).to_be_bytes(), old].concat());
    out.put("link_frames", "too-large", [&[1u8][..], &(MAX_CONTROL_MESSAGE as u32 + 1).to_be_bytes()].concat());
}

fn input(out: &Out) {
    let pads = [
        PadState::default(),
        PadState { seq: 0x0102, buttons: button::A | button::RIGHT, axes: [1, -1, 0, i16::MIN], ..Default::default() },
        PadState { seq: 65535, buttons: button::START, axes: [0; 4], ..Default::default() },
        PadState { seq: 7, buttons: u16::MAX, axes: [i16::MAX, i16::MIN, 300, -300], pointer: Pointer { x: -0x7fff, y: 0x7fff, pressed: true } },
    ];
    for (i, p) in pads.iter().enumerate() {
        out.put("input_packet", &format!("pad-{i}"), p.encode());
    }
    // A burst across the sequence wrap, with a reordered packet.
    let burst: Vec<u8> = [65534u16, 1, 65535, 2]
        .iter()
        .flat_map(|&seq| PadState { seq, buttons: button::B, axes: [0; 4], ..Default::default() }.encode())
        .collect();
    out.put("input_packet", "burst", burst);
}

fn game(out: &Out) {
    let user = "3f1c9a52-7be4-4d0e-9a61-0c2f5d8e4b17";
    let cmds = [
        GameCommand::Save { user: user.into(), slot: 2 },
        GameCommand::Load { user: user.into(), slot: 3 },
        GameCommand::Slots { user: user.into() },
        GameCommand::Reset,
        GameCommand::Port { port: 0 },
        GameCommand::Port { port: 4 },
    ];
    for (i, c) in cmds.iter().enumerate() {
        out.put("game_command", &format!("cmd-{i}-{}", c.kind()), c.encode());
    }
    let replies = [
        GameReply::Saved { slot: 2 },
        GameReply::Loaded { slot: 3 },
        GameReply::Slots { slots: vec![SlotInfo { slot: 2, saved_ms: 1796299200000 }] },
        GameReply::Reset,
        GameReply::Port { port: 2 },
        GameReply::Failed { command: "load".into(), message: "slot 3 of Retrofarm Walk is empty".into() },
    ];
    for (i, r) in replies.iter().enumerate() {
        out.put("game_command", &format!("reply-{i}"), r.encode());
    }
    out.put("game_command", "hand-bad-user", r#"{"t":"slots","p":{"user":"../../etc/passwd"}}"#);
}

fn control(out: &Out) {
    let replies = [
        Reply::Saved { state: Some((0..300u32).map(|i| (i * 7) as u8).collect()), sram: Some(vec![0xab; 64]) },
        Reply::Saved { state: None, sram: None },
        Reply::Loaded,
        Reply::Done,
        Reply::Failed("the core refused the saved state — ü".into()),
    ];
    let requests = [
        Request::Save,
        Request::Reset,
        Request::Load { state: Some(vec![1, 2, 3]), sram: None },
        Request::Load { state: None, sram: Some(vec![0xff; 32]) },
    ];
    // Byte 0: bit 0 the direction (0: Reply, 1: Request), the rest how reads are cut.
    let mut all = vec![0x2c];
    for (i, m) in replies.iter().enumerate() {
        let f = wire::encode(i as u32 + 1, m).unwrap();
        out.put("emulator_control", &format!("reply-{i}"), [&[0u8][..], &f].concat());
        all.extend(f);
    }
    out.put("emulator_control", "replies", all);
    let mut all = vec![0x2d];
    for (i, m) in requests.iter().enumerate() {
        let f = wire::encode(i as u32 + 100, m).unwrap();
        out.put("emulator_control", &format!("request-{i}"), [&[1u8][..], &f].concat());
        all.extend(f);
    }
    out.put("emulator_control", "requests", all);
}

/// What the worker finds in a child's shared memory: the header page and slot table a real
/// writer left after `frames` frames and some audio, with the operations of the target after.
fn shm(out: &Out) {
    let av = AvInfo {
        base_width: 16,
        base_height: 8,
        max_width: 16,
        max_height: 8,
        aspect_ratio: 2.0,
        rotation: 0,
        fps: 60.0988,
        sample_rate: 44100.0,
        pixel_format: PixelFormat::Rgb565,
    };
    for (name, slots, frames, dup) in [("fresh", 4u32, 0u64, false), ("three", 4, 3, false), ("lapped", 3, 7, true)] {
        let path = std::env::temp_dir().join(format!("retrofarm-seedgen-{}-{name}", std::process::id()));
        let file = File::options().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file.set_len(HEADER_LEN).unwrap();
        let layout = Layout::new(slots, av.max_frame_bytes(), 256).unwrap();
        let event = retrofarm_emulator::eventfd().unwrap();
        let mut shm = WriterShm::create(OwnedFd::from(file.try_clone().unwrap()), event, layout, &av).unwrap();
        for n in 0..frames {
            let px = vec![n as u8; 16 * 8 * 2];
            let video = if dup && n % 3 == 2 {
                VideoInput::Duplicate
            } else {
                VideoInput::Pixels { data: &px, width: 16, height: 8, pitch: 32, format: PixelFormat::Rgb565 }
            };
            shm.stage_video(video).unwrap();
            shm.push_audio(&[n as i16; 2 * 100]);
            shm.publish_frame(1_000_000 * n, 900_000).unwrap();
        }
        if name == "lapped" {
            shm.fail("the core crashed — ü");
        }
        drop(shm);
        let mut overlay = vec![0u8; (layout.slot_table_offset + u64::from(slots) * 64) as usize];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut overlay, 0).unwrap();
        // The pid and the heartbeat's clock differ from run to run: zero them.
        for (at, n) in [(std::mem::offset_of!(Header, writer_pid), 4), (std::mem::offset_of!(Header, writer), 8)] {
            overlay[at..at + n].fill(0);
        }
        // mode 0 (the layout's length), the overlay, then: next, next, latest, audio, counters,
        // intact, next.
        let mut input = vec![0u8];
        input.extend((overlay.len() as u16).to_le_bytes());
        input.extend(&overlay);
        input.extend([0, 0, 1, 2, 3, 4, 0]);
        out.put("emulator_shm", &format!("writer-{name}"), input);
    }
}

fn configs(out: &Out) {
    let root = repo();
    out.put("worker_config", "packaged", std::fs::read(root.join("packaging/config/worker.toml")).unwrap());
    out.put("worker_config", "test-candidates", "zone = \"eu\"\nrtc_ips = [\"203.0.113.7\"]");
    out.put("worker_config", "test-tls", "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"");
    out.put("worker_config", "test-gpu", "gpu = \"lavapipe\"\nvideo_scale = 2\nvideo_canvas = [640, 480]");
    out.put(
        "worker_config",
        "hand-all",
        "id = \"w1\"\nvideo_kbps = 3000\nvideo_min_kbps = 200\ncpu_budget_cores = 3.5\nroom_cost_prior = 0.25\n\
         encoder_threads = 4\nnvenc = \"off\"\nnvenc_max_sessions = 8\npublic_url = \"https://w1.example.org/ping\"\n\
         [core_options]\nnestopia_audio_type = \"mono\"\n",
    );
    out.put("coordinator_config", "packaged", std::fs::read(root.join("packaging/config/coordinator.toml")).unwrap());
    out.put(
        "coordinator_config",
        "test-ice",
        "http_listen = \"127.0.0.1:9999\"\n[[ice_servers]]\nurls = [\"turn:turn.example.org:3478\"]\nusername = \"u\"\ncredential = \"p\"\n",
    );
    out.put(
        "coordinator_config",
        "test-edge",
        "tls_cert = \"/etc/retrofarm/tls/fullchain.pem\"\ntls_key = \"/etc/retrofarm/tls/privkey.pem\"\n\
         allowed_origins = [\"https://play.example.org\"]\n[turn]\nurls = [\"turn:turn.example.org:3478?transport=udp\"]\nsecret = \"north\"\n",
    );
    out.put("coordinator_config", "test-bad-turn", "[turn]\nurls = [\"stun:t:3478\"]\nsecret = \"s\"\nttl_secs = 0\n");
}

fn origins(out: &Out) {
    let cases = [
        "https://farm.example.org\nfarm.example.org\n",
        "http://127.0.0.1:8000\n127.0.0.1:8000\n",
        "https://play.example.org\ncoordinator.internal:8000\nhttps://play.example.org\nhttp://localhost:3000",
        "null\nx\n*",
        "HTTPS://Farm.Example.org:443/\nfarm.example.org:443\n",
        "http://[::1]:8000\n[::1]:8000\n",
    ];
    for (i, c) in cases.iter().enumerate() {
        out.put("coordinator_origin", &format!("case-{i}"), c);
    }
}

fn saves(out: &Out) {
    let header = format::SaveHeader {
        game: "Retrofarm Walk".into(),
        core: "nestopia_libretro.so".into(),
        created_ms: 1_700_000_000_000,
        state_len: 0,
        sram_len: 0,
    };
    let state: Vec<u8> = (0..2000u32).map(|i| (i * 7) as u8).collect();
    for (name, state, sram) in [
        ("both", Some(state.clone()), Some(vec![0xab; 512])),
        ("state", Some(state), None),
        ("sram", None, Some(vec![0x5a; 64])),
        ("empty", None, None),
    ] {
        let save = format::SaveFile { header: header.clone(), state, sram };
        out.put("save_file", name, save.encode());
    }
}

fn main() {
    let root = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| repo().join("fuzz/corpus"));
    let out = Out { root };
    browser(&out);
    link(&out);
    input(&out);
    game(&out);
    control(&out);
    shm(&out);
    configs(&out);
    origins(&out);
    saves(&out);
    println!("seeds written to {}", out.root.display());
}
