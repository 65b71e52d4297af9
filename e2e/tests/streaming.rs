//! Foundation 2/3: a Rust WebRTC peer (str0m) negotiates through a real coordinator with a real
//! worker, receives H264 and Opus from a real libretro core, and its input changes the game.
//! Uses the project's own game (games/README.md): player 1 is a white 16x16 block, player 2 a
//! red one, each moved 2 px per frame by its pad.

use std::time::Duration;

use retrofarm_e2e::browser::Browser;
use retrofarm_e2e::procs::{self, CoordinatorAddrs, Proc, WorkerOpts};
use retrofarm_e2e::rtc::{RtcClient, RtcEvent};
use retrofarm_e2e::video::{H264Decoder, Luma};
use retrofarm_proto::browser::{ClientMsg, ServerMsg};
use retrofarm_proto::ids::RoomId;
use retrofarm_proto::input::{button, PadState};
use retrofarm_proto::ErrorCode;
use str0m::media::MediaKind;

const T: Duration = Duration::from_secs(20);
const GAME: &str = "Retrofarm Walk";
/// Luma of the white player-1 block (RGB 255,255,255 → Y≈235) and the red player-2 block
/// (RGB 181,49,32 → Y≈90); the blue background is Y≈50.
const WHITE: (u8, u8) = (200, 255);
const RED: (u8, u8) = (75, 110);

struct Player {
    browser: Browser,
    peer: RtcClient,
    decoder: H264Decoder,
    seq: u16,
    room: RoomId,
}

impl Player {
    /// Opens a session (joining `room` when given) on `port` and connects WebRTC.
    async fn join(addrs: CoordinatorAddrs, room: Option<&RoomId>, port: u8) -> Player {
        let query = room.map(|r| format!("room={r}")).unwrap_or_default();
        let mut browser = Browser::connect(&addrs.ws_url(&query)).await.unwrap();
        if room.is_none() {
            let workers = browser
                .recv_until(T, |m| match m {
                    ServerMsg::CheckLatency { workers } => Some(workers.clone()),
                    _ => None,
                })
                .await
                .unwrap();
            browser.answer_latency(&workers).await.unwrap();
        }
        browser.recv_until(T, |m| matches!(m, ServerMsg::Init { .. }).then_some(())).await.unwrap();
        browser.send(&ClientMsg::StartGame { game: GAME.into(), room: room.cloned(), port }).await.unwrap();
        let room = browser
            .recv_until(T, |m| match m {
                ServerMsg::GameStarted { room, .. } => Some(room.clone()),
                ServerMsg::Error { code, message } => panic!("start failed: {code:?} {message}"),
                _ => None,
            })
            .await
            .unwrap();
        let offer = browser
            .recv_until(T, |m| match m {
                ServerMsg::Offer { sdp } => Some(sdp.clone()),
                _ => None,
            })
            .await
            .unwrap();
        let mut peer = RtcClient::answer(&offer).await.unwrap();
        browser.send(&ClientMsg::Answer { sdp: peer.answer.clone() }).await.unwrap();
        browser.send(&ClientMsg::Ice { candidate: Some(peer.candidate.clone()) }).await.unwrap();
        peer.wait_for(T, |e| matches!(e, RtcEvent::ChannelOpen(_)).then_some(())).await.unwrap();
        Player { browser, peer, decoder: H264Decoder::default(), seq: 0, room }
    }

    /// Receives for `d`; returns (video frames, audio packets, last decoded picture).
    async fn watch(&mut self, d: Duration) -> (usize, usize, Option<Luma>) {
        let (mut video, mut audio, mut last) = (0, 0, None);
        for ev in self.peer.collect(d).await {
            if let RtcEvent::Media { kind, codec, data } = ev {
                match kind {
                    MediaKind::Video => {
                        assert_eq!(codec, "H264");
                        video += 1;
                        if let Some(l) = self.decoder.decode(&data) {
                            last = Some(l);
                        }
                    }
                    MediaKind::Audio => {
                        assert_eq!(codec, "Opus");
                        audio += 1;
                    }
                }
            }
        }
        (video, audio, last)
    }

    /// Holds `buttons` for `d` (state resent every 50 ms, as the page does), then releases.
    async fn hold(&mut self, buttons: u16, d: Duration) -> (usize, usize, Option<Luma>) {
        let end = tokio::time::Instant::now() + d;
        let mut last = None;
        let (mut video, mut audio) = (0, 0);
        while tokio::time::Instant::now() < end {
            self.seq = self.seq.wrapping_add(1);
            self.peer.send_input(PadState { seq: self.seq, buttons, axes: [0; 4] }.encode().to_vec());
            let (v, a, l) = self.watch(Duration::from_millis(50)).await;
            video += v;
            audio += a;
            last = l.or(last);
        }
        self.seq = self.seq.wrapping_add(1);
        self.peer.send_input(PadState { seq: self.seq, buttons: 0, axes: [0; 4] }.encode().to_vec());
        (video, audio, last)
    }
}

fn start(dir: &std::path::Path) -> (CoordinatorAddrs, Proc, Proc) {
    let pki = dir.join("pki");
    let addrs = CoordinatorAddrs::fresh();
    let coord = procs::coordinator(dir, &pki, addrs, &[]).unwrap();
    let worker = procs::worker(dir, addrs, &WorkerOpts::new("w1", "local", &pki)).unwrap();
    worker.wait_log("registered with the coordinator", T).unwrap();
    (addrs, coord, worker)
}

#[tokio::test(flavor = "multi_thread")]
async fn h264_and_opus_reach_a_webrtc_peer_and_input_moves_the_players() {
    let dir = tempfile::tempdir().unwrap();
    let (addrs, _coord, _worker) = start(dir.path());

    let mut p1 = Player::join(addrs, None, 1).await;
    let (video, audio, pic) = p1.watch(Duration::from_secs(2)).await;
    assert!(video >= 80, "only {video} video frames in 2 s");
    assert!(audio >= 60, "only {audio} Opus packets in 2 s");
    let pic = pic.expect("decoded pictures");
    assert_eq!(pic.width, 256);
    let (x0, _, n) = pic.centroid(WHITE.0, WHITE.1).expect("player 1 visible");
    assert!((200..=300).contains(&n), "a 16x16 block, got {n} px");

    let (_, _, pic) = p1.hold(button::RIGHT, Duration::from_millis(600)).await;
    let (_, _, after) = p1.watch(Duration::from_millis(300)).await;
    let pic = after.or(pic).unwrap();
    let (x1, _, _) = pic.centroid(WHITE.0, WHITE.1).unwrap();
    assert!(x1 - x0 > 30.0, "holding Right moved player 1 from {x0} to {x1}");

    // A second user with the share link, on port 2: sees the stream, moves player 2.
    let room = p1.room.clone();
    let mut p2 = Player::join(addrs, Some(&room), 2).await;
    let (video, _, pic) = p2.watch(Duration::from_secs(1)).await;
    assert!(video >= 30, "second viewer got {video} frames");
    let (rx0, _, _) = pic.expect("second viewer decodes").centroid(RED.0, RED.1).expect("player 2 visible");
    let (_, _, pic) = p2.hold(button::LEFT, Duration::from_millis(600)).await;
    let (_, _, after) = p2.watch(Duration::from_millis(300)).await;
    let (rx1, _, _) = after.or(pic).unwrap().centroid(RED.0, RED.1).unwrap();
    assert!(rx0 - rx1 > 30.0, "holding Left on port 2 moved player 2 from {rx0} to {rx1}");
    // Player 1 still sees it too: one encode per room, every viewer.
    let (video, _, _) = p1.watch(Duration::from_millis(500)).await;
    assert!(video >= 15);

    // Garbage on the data channel is ignored and loses nothing.
    p1.peer.send_input(b"\xff garbage".to_vec());
    p1.peer.send_input(vec![]);
    let (video, _, _) = p1.watch(Duration::from_millis(500)).await;
    assert!(video >= 15);
    drop(p1.browser);
}

/// Emulator children of `worker`.
fn emulator_pids(worker: &Proc) -> Vec<i32> {
    let mut pids = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((comm, rest)) = stat.split_once(") ") else { continue };
        let ppid: i32 = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        if ppid == worker.pid() && comm.contains("retrofarm-emul") {
            pids.push(pid);
        }
    }
    pids
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_one_rooms_emulator_ends_only_that_room() {
    let dir = tempfile::tempdir().unwrap();
    let (addrs, _coord, worker) = start(dir.path());
    let mut a = Player::join(addrs, None, 1).await;
    let mut b = Player::join(addrs, None, 1).await;
    assert_ne!(a.room, b.room);
    assert!(a.watch(Duration::from_secs(1)).await.0 > 20);
    assert!(b.watch(Duration::from_secs(1)).await.0 > 20);

    let pids = emulator_pids(&worker);
    assert_eq!(pids.len(), 2, "one emulator process per room");
    // SAFETY: kill(2) on a child process of our worker; no memory is involved.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pids[0], libc::SIGKILL);
    }

    // Exactly one of the two players hears that its room closed; the other keeps streaming.
    let mut closed = 0;
    for p in [&mut a, &mut b] {
        let got = p.browser.recv_until(Duration::from_secs(3), |m| match m {
            ServerMsg::Error { code, message } => Some((*code, message.clone())),
            _ => None,
        });
        if let Ok((code, message)) = got.await {
            assert_eq!(code, ErrorCode::RoomClosed, "{message}");
            assert!(message.contains("stopped"), "{message}");
            closed += 1;
        } else {
            let (video, audio, _) = p.watch(Duration::from_secs(1)).await;
            assert!(video > 30 && audio > 20, "the surviving room still streams ({video} frames, {audio} packets)");
        }
    }
    assert_eq!(closed, 1);
    assert_eq!(emulator_pids(&worker).len(), 1);
    // The worker is alive and can start a new room.
    let mut c = Player::join(addrs, None, 1).await;
    assert!(c.watch(Duration::from_secs(1)).await.0 > 20);
}
