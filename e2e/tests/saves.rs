//! Players keep their games: save and load on the `control` data channel (every viewer sees the
//! loaded picture), reset, a room that closed resumes from the save made as it closed, and a
//! room whose worker died resumes on another worker from its last autosave. Real processes,
//! the project's own game (the D-pad moves player 1's white block), one save store shared by
//! the test's workers.

use std::path::Path;
use std::time::{Duration, Instant};

use retrofarm_e2e::player::Player;
use retrofarm_e2e::procs::{self, CoordinatorAddrs, Proc, WorkerOpts};
use retrofarm_e2e::video::Luma;
use retrofarm_proto::browser::ServerMsg;
use retrofarm_proto::game::{GameCommand, GameReply};
use retrofarm_proto::input::button;
use retrofarm_proto::ErrorCode;

/// Luma of the white player-1 block.
const WHITE: (u8, u8) = (200, 255);
const USER: &str = "e2e-player-1";

fn x_of(pic: &Luma) -> f64 {
    pic.centroid(WHITE.0, WHITE.1).expect("player 1's block is visible").0
}

/// Player 1's block's x now.
async fn block_x(p: &mut Player) -> f64 {
    let (_, _, pic) = p.watch(Duration::from_millis(400)).await;
    match pic {
        Some(pic) => x_of(&pic),
        None => x_of(&p.first_picture(Duration::from_secs(3)).await.expect("pictures decode")),
    }
}

/// Holds Right until the block moved `by` pixels; returns where it is.
async fn move_right(p: &mut Player, by: f64) -> f64 {
    let from = block_x(p).await;
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        p.hold(button::RIGHT, Duration::from_millis(200)).await;
        let x = block_x(p).await;
        if x - from >= by {
            return x;
        }
        assert!(Instant::now() < end, "the block did not move from {from} ({x} now)");
    }
}

fn cluster(dir: &Path, autosave_secs: u32) -> (CoordinatorAddrs, Proc, Proc) {
    procs::cluster(dir, |o| o.extra = vec!["--autosave-secs".into(), autosave_secs.to_string()]).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_game_loads_back_for_every_viewer_and_reset_restarts_it() {
    let dir = tempfile::tempdir().unwrap();
    let (addrs, _coord, worker) = cluster(dir.path(), 0);
    let mut host = Player::join(addrs, None, 1).await;
    let mut guest = Player::join(addrs, Some(&host.room), 2).await;
    let start = block_x(&mut host).await;

    assert_eq!(host.game(GameCommand::Slots { user: USER.into() }).await, GameReply::Slots { slots: vec![] });
    let saved_at = move_right(&mut host, 20.0).await;
    assert_eq!(host.game(GameCommand::Save { user: USER.into(), slot: 2 }).await, GameReply::Saved { slot: 2 });
    let GameReply::Slots { slots } = host.game(GameCommand::Slots { user: USER.into() }).await else { panic!() };
    assert_eq!(slots.iter().map(|s| s.slot).collect::<Vec<_>>(), [2]);

    let moved_on = move_right(&mut host, 20.0).await;
    assert!(moved_on > saved_at + 19.0);
    assert_eq!(host.game(GameCommand::Load { user: USER.into(), slot: 2 }).await, GameReply::Loaded { slot: 2 });
    for (who, p) in [("the player", &mut host), ("the other viewer", &mut guest)] {
        let x = block_x(p).await;
        assert!((x - saved_at).abs() < 2.0, "{who} sees the block back at {saved_at} (x {x})");
    }

    // An empty slot and another player's slots are refused clearly; the game goes on.
    let reply = host.game(GameCommand::Load { user: USER.into(), slot: 4 }).await;
    assert!(
        matches!(&reply, GameReply::Failed { command, message } if command == "load" && message.contains("empty")),
        "{reply:?}"
    );
    let reply = host.game(GameCommand::Load { user: "someone-else".into(), slot: 2 }).await;
    assert!(matches!(reply, GameReply::Failed { .. }), "{reply:?}");

    assert_eq!(host.game(GameCommand::Reset).await, GameReply::Reset);
    let x = block_x(&mut guest).await;
    assert!((x - start).abs() < 2.0, "reset puts the block back at {start} (x {x})");
    assert!(worker.log().contains("game command"), "commands are logged");
    let metrics = worker.metrics().await.unwrap();
    for line in [
        r#"retrofarm_saves_total{kind="save",outcome="ok"} 1"#,
        r#"retrofarm_saves_total{kind="load",outcome="ok"} 1"#,
        r#"retrofarm_saves_total{kind="load",outcome="failed"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_room_that_closed_resumes_from_the_save_made_as_it_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (addrs, _coord, worker) = cluster(dir.path(), 0);
    let mut p = Player::join(addrs, None, 1).await;
    let room = p.room.clone();
    let left_at = move_right(&mut p, 30.0).await;
    p.quit().await;
    worker.wait_log("room saved as it closed", Duration::from_secs(10)).unwrap();

    // The share link still works: the room starts again where it was.
    let mut back = Player::join(addrs, Some(&room), 1).await;
    assert_eq!(back.room, room, "the same room id");
    let x = block_x(&mut back).await;
    assert!((x - left_at).abs() < 2.0, "the block is where it was left ({left_at}), at {x}");
    assert!(worker.log().contains("resuming the room from its autosave"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_room_whose_worker_died_resumes_on_another_worker_from_its_autosave() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let addrs = CoordinatorAddrs::fresh();
    // Players hear at once when the worker goes silent (no grace for it to come back: the
    // default 10 s would make the test wait).
    let flags = ["--heartbeat-timeout-ms", "1500", "--worker-grace-ms", "0"];
    let _coord = procs::coordinator(dir.path(), &pki, addrs, &flags).unwrap();
    let mut workers = Vec::new();
    for id in ["w1", "w2"] {
        let mut o = WorkerOpts::new(id, "local", &pki);
        o.extra = vec!["--autosave-secs".into(), "1".into()];
        let w = procs::worker(dir.path(), addrs, &o).unwrap();
        w.wait_log("registered with the coordinator", Duration::from_secs(20)).unwrap();
        workers.push(w);
    }
    let mut p = Player::join(addrs, None, 1).await;
    let room = p.room.clone();
    let moved_to = move_right(&mut p, 30.0).await;
    // Let an autosave happen after the move.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let host = workers.iter().position(|w| !w.emulator_pids().is_empty()).expect("a worker runs the room");
    workers[host].kill();

    // The player is told.
    let told = Instant::now();
    let code = p
        .browser
        .recv_until(Duration::from_secs(10), |m| match m {
            ServerMsg::Error { code, .. } => Some(*code),
            _ => None,
        })
        .await
        .unwrap();
    assert!(matches!(code, ErrorCode::WorkerLost | ErrorCode::RoomClosed), "{code:?}");
    eprintln!("the player was told {:?} after the worker was killed", told.elapsed());
    assert!(told.elapsed() < Duration::from_secs(2), "told within 2 s (the heartbeat timeout is 1.5 s here)");

    // The share link resumes the room on the other worker, from the autosave.
    let mut back = Player::join(addrs, Some(&room), 1).await;
    assert_eq!(back.room, room);
    let x = block_x(&mut back).await;
    assert!((x - moved_to).abs() < 2.0, "the block is where the autosave had it ({moved_to}), at {x}");
    let other = &workers[1 - host];
    assert!(other.log().contains("resuming the room from its autosave"), "resumed on the other worker");
}

/// The header and the battery RAM of a save file (layout: farm-worker/src/saves/format.rs).
fn save_parts(path: &Path) -> (serde_json::Value, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"RFSAVE\r\n");
    let header_len = u32::from_le_bytes(bytes[10..14].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[14..14 + header_len]).unwrap();
    let state_len = header["state_len"].as_u64().unwrap() as usize;
    let sram_len = header["sram_len"].as_u64().unwrap() as usize;
    let at = 14 + header_len + state_len;
    (header, bytes[at..at + sram_len].to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mgba_games_battery_ram_survives_a_room_restart() {
    let Some(rom) = retrofarm_e2e::shared_roms().map(|d| d.join("anguna.gba")).filter(|r| r.exists()) else {
        return eprintln!("SKIP: ../shared/roms/anguna.gba is missing");
    };
    let dir = tempfile::tempdir().unwrap();
    let games = dir.path().join("games");
    std::fs::create_dir_all(&games).unwrap();
    std::os::unix::fs::symlink(&rom, games.join("anguna.gba")).unwrap();
    let (addrs, _coord, worker) = procs::cluster(dir.path(), |o| {
        o.games = games.clone();
        o.extra = vec!["--autosave-secs".into(), "0".into()];
    })
    .unwrap();
    let mut p = Player::join_game(addrs, "anguna", None, 1).await;
    let room = p.room.clone();
    // Anguna writes its battery RAM within its first ~500 frames.
    p.watch(Duration::from_secs(10)).await;
    p.quit().await;
    worker.wait_log("room saved as it closed", Duration::from_secs(10)).unwrap();
    let autosave = dir.path().join("saves/rooms").join(room.as_str()).join("autosave");
    let (header, first) = save_parts(&autosave);
    assert_eq!(header["core"], "mgba_libretro.so");
    let written = first.iter().filter(|b| **b != 0xff).count();
    eprintln!("anguna's battery RAM: {} bytes, {written} written", first.len());
    assert!(written > 0, "the game wrote its battery RAM");

    // The room starts again with that battery RAM; it is saved again as it closes.
    let mut back = Player::join(addrs, Some(&room), 1).await;
    back.watch(Duration::from_secs(2)).await;
    back.quit().await;
    let end = Instant::now() + Duration::from_secs(10);
    while worker.log().matches("room saved as it closed").count() < 2 {
        assert!(Instant::now() < end, "the second close was not saved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, second) = save_parts(&autosave);
    assert!(second == first, "the battery RAM survived the restart ({} bytes)", first.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn saves_land_in_an_s3_bucket_and_a_wrong_secret_is_a_clear_error_that_stops_no_game() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    let Some(s3) = procs::S3Server::start(dir.path(), &root, "saves").unwrap() else { return };
    let (addrs, _coord, worker) = procs::cluster(dir.path(), |o| {
        o.saves = Some("s3://saves/farm".into());
        o.env = s3.env(&s3.secret_key);
    })
    .unwrap();
    let mut p = Player::join(addrs, None, 1).await;
    let saved_at = move_right(&mut p, 20.0).await;
    assert_eq!(p.game(GameCommand::Save { user: USER.into(), slot: 1 }).await, GameReply::Saved { slot: 1 });
    let object = root.join("saves/farm/users").join(USER).join("Retrofarm Walk/slot-1");
    assert!(object.exists(), "the save is an object in the bucket: {}", object.display());
    move_right(&mut p, 20.0).await;
    assert_eq!(p.game(GameCommand::Load { user: USER.into(), slot: 1 }).await, GameReply::Loaded { slot: 1 });
    let x = block_x(&mut p).await;
    assert!((x - saved_at).abs() < 2.0, "loaded from the bucket: the block is back at {saved_at} (x {x})");
    drop(worker);

    // A second farm with a wrong secret: the store refuses, the player is told, the game goes on.
    let dir2 = tempfile::tempdir().unwrap();
    let (addrs, _coord, _worker) = procs::cluster(dir2.path(), |o| {
        o.saves = Some("s3://saves/farm".into());
        o.env = s3.env("not-the-secret");
    })
    .unwrap();
    let mut p = Player::join(addrs, None, 1).await;
    // The game runs (a command before its first frame is answered "the game is still starting").
    block_x(&mut p).await;
    let reply = p.game(GameCommand::Save { user: USER.into(), slot: 2 }).await;
    let GameReply::Failed { command, message } = reply else { panic!("the save must fail: {reply:?}") };
    eprintln!("with a wrong secret: {message}");
    assert_eq!(command, "save");
    assert!(message.contains("s3://saves/farm"), "the message names the store: {message}");
    assert!(message.contains("AWS_SECRET_ACCESS_KEY"), "and says what to check: {message}");
    assert!(!root.join("saves/farm/users").join(USER).join("Retrofarm Walk/slot-2").exists());
    let (video, _, pic) = p.watch(Duration::from_secs(1)).await;
    assert!(video >= 30 && pic.is_some(), "the game streams on: {video} frames");
}
