//! Foundation 2/3: a Rust WebRTC peer (str0m) negotiates through a real coordinator with a real
//! worker, receives H264 and Opus from a real libretro core, and its input changes the game.
//! Uses the project's own game (games/README.md): player 1 is a white 16x16 block, player 2 a
//! red one, each moved 2 px per frame by its pad.

use std::time::Duration;

use retrofarm_e2e::player::Player;
use retrofarm_e2e::procs::{self, CoordinatorAddrs, Proc, WorkerOpts};
use retrofarm_proto::browser::ServerMsg;
use retrofarm_proto::input::button;
use retrofarm_proto::ErrorCode;

/// Luma of the white player-1 block (RGB 255,255,255 → Y≈235) and the red player-2 block
/// (RGB 181,49,32 → Y≈90); the blue background is Y≈50.
const WHITE: (u8, u8) = (200, 255);
const RED: (u8, u8) = (75, 110);

/// A coordinator and a worker with the test harness's options.
fn start(dir: &std::path::Path) -> (CoordinatorAddrs, Proc, Proc) {
    start_with(dir, |_| {})
}

/// [`start`], with the worker's options changed by `opts`.
fn start_with(dir: &std::path::Path, opts: impl FnOnce(&mut WorkerOpts)) -> (CoordinatorAddrs, Proc, Proc) {
    procs::cluster(dir, opts).unwrap()
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
    // Under load a joining viewer's first keyframe can take longer than the second watched here.
    let pic = match pic {
        Some(pic) => pic,
        None => p2.first_picture(Duration::from_secs(5)).await.expect("second viewer decodes"),
    };
    let (rx0, _, _) = pic.centroid(RED.0, RED.1).expect("player 2 visible");
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

#[tokio::test(flavor = "multi_thread")]
async fn killing_one_rooms_emulator_ends_only_that_room() {
    let dir = tempfile::tempdir().unwrap();
    let (addrs, _coord, worker) = start(dir.path());
    let mut a = Player::join(addrs, None, 1).await;
    let mut b = Player::join(addrs, None, 1).await;
    assert_ne!(a.room, b.room);
    assert!(a.watch(Duration::from_secs(1)).await.0 > 20);
    assert!(b.watch(Duration::from_secs(1)).await.0 > 20);

    let pids = worker.emulator_pids();
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
    assert_eq!(worker.emulator_pids().len(), 1);
    // The worker is alive and can start a new room.
    let mut c = Player::join(addrs, None, 1).await;
    assert!(c.watch(Duration::from_secs(1)).await.0 > 20);
}

/// The worker's default: a frame identical to the one before is not encoded again. A still
/// picture still reaches the viewer ten times a second, motion at the full rate, and a viewer
/// who joins a still room gets its keyframe at once.
#[tokio::test(flavor = "multi_thread")]
async fn repeated_frames_are_left_out_yet_still_and_moving_pictures_reach_the_viewers() {
    let dir = tempfile::tempdir().unwrap();
    let (addrs, _coord, _worker) = start_with(dir.path(), |o| o.skip_repeated_frames = true);

    // Nobody presses anything: the homebrew game's picture is still.
    let mut p1 = Player::join(addrs, None, 1).await;
    p1.watch(Duration::from_millis(500)).await;
    let (video, audio, pic) = p1.watch(Duration::from_secs(2)).await;
    assert!((14..=28).contains(&video), "a still picture: {video} frames in 2 s, 20 expected (every sixth frame)");
    assert!(audio >= 60, "audio goes on: {audio} Opus packets in 2 s");
    let (x0, _, _) = pic.expect("the still picture decodes").centroid(WHITE.0, WHITE.1).expect("player 1 visible");

    // Moving: every frame differs, every frame is sent.
    let (video, _, pic) = p1.hold(button::RIGHT, Duration::from_millis(600)).await;
    assert!(video >= 28, "a moving picture: {video} frames in 0.6 s, 36 expected");
    let (_, _, after) = p1.watch(Duration::from_millis(300)).await;
    let (x1, _, _) = after.or(pic).unwrap().centroid(WHITE.0, WHITE.1).unwrap();
    assert!(x1 - x0 > 30.0, "holding Right moved player 1 from {x0} to {x1}");

    // The room is still again; a second viewer gets frames and decodes the still picture soon
    // (its keyframe on joining, or on its PLI if that one was lost while its DTLS finished; a
    // loaded CI host has taken over a second).
    let room = p1.room.clone();
    let mut p2 = Player::join(addrs, Some(&room), 2).await;
    let joined = std::time::Instant::now();
    let (mut video, mut pic) = (0, None);
    while pic.is_none() && joined.elapsed() < Duration::from_secs(3) {
        let (v, _, p) = p2.watch(Duration::from_millis(250)).await;
        (video, pic) = (video + v, p);
    }
    let waited = joined.elapsed();
    assert!(video >= 3, "second viewer got {video} frames of a still room in {waited:?}");
    let pic = pic.unwrap_or_else(|| panic!("the second viewer decoded nothing in {waited:?} ({video} frames)"));
    let (x2, _, _) = pic.centroid(WHITE.0, WHITE.1).unwrap();
    assert!((x2 - x1).abs() < 3.0, "both viewers see player 1 at the same place ({x1}, {x2})");
}
