//! An upgrade drops no game (issue 15): a worker running a game gets SIGTERM, as systemd stops
//! it for a new package. It tells systemd it is stopping, takes no new room, lets the game play
//! on for its drain time, then saves the room, tells the player to reload, and exits in time.
//! The player reloads and the game resumes from that save on the next worker. Under systemd
//! (`Type=notify`) it also says when it is ready and feeds the watchdog.

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use retrofarm_e2e::player::{Player, GAME};
use retrofarm_e2e::procs::{self, CoordinatorAddrs, WorkerOpts};
use retrofarm_proto::browser::ServerMsg;
use retrofarm_proto::ErrorCode;

/// Plays systemd's part: reads every notification as it arrives.
fn listen(socket: UnixDatagram) -> Arc<Mutex<Vec<String>>> {
    let told = Arc::new(Mutex::new(Vec::new()));
    let t = told.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok(n) = socket.recv(&mut buf) {
            t.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    told
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_the_worker_and_the_game_resumes_on_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let addrs = CoordinatorAddrs::fresh();
    let _coord = procs::coordinator(dir.path(), &pki, addrs, &[]).unwrap();
    let notify_path = dir.path().join("notify");
    let notifications = listen(UnixDatagram::bind(&notify_path).unwrap());
    let mut opts = WorkerOpts::new("w1", "local", &pki);
    opts.extra = vec!["--drain-secs".into(), "3".into()];
    opts.env =
        vec![("NOTIFY_SOCKET".into(), notify_path.display().to_string()), ("WATCHDOG_USEC".into(), "400000".into())];
    let mut w1 = procs::worker(dir.path(), addrs, &opts).unwrap();
    w1.wait_log("registered with the coordinator", Duration::from_secs(20)).unwrap();
    let mut player = Player::join(addrs, None, 1).await;
    player.watch(Duration::from_secs(1)).await;
    let told = notifications.lock().unwrap().clone();
    assert!(told.iter().any(|n| n == "READY=1"), "{told:?}");
    assert!(told.iter().filter(|n| *n == "WATCHDOG=1").count() >= 2, "the watchdog is fed every 200 ms: {told:?}");

    w1.signal(libc::SIGTERM);
    let stopped_at = Instant::now();
    // Still streaming during the drain, and no new room is placed on the draining worker.
    let (video, _, _) = player.watch(Duration::from_millis(1500)).await;
    assert!(video >= 60, "the player got {video} frames during the drain");
    match Player::try_join(addrs, GAME, None, 1).await {
        Err((code, _)) => assert_eq!(code, ErrorCode::NoFreeWorker),
        Ok(p) => panic!("a new room was placed on the draining worker: {}", p.room),
    }
    // At the end of the drain the player is told to reload; the worker saves and exits.
    let (code, message) = player
        .browser
        .recv_until(Duration::from_secs(6), |m| match m {
            ServerMsg::Error { code, message } => Some((*code, message.clone())),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(code, ErrorCode::WorkerLost);
    assert!(message.contains("saved") && message.contains("reload"), "{message}");
    let status = w1.wait_exit(Duration::from_secs(10)).unwrap();
    let took = stopped_at.elapsed();
    assert!(status.success(), "the worker exited with {status}");
    assert!(took < Duration::from_secs(8), "the worker took {took:?} to stop with a 3 s drain");
    assert!(w1.log().contains("room saved as it closed"), "{}", w1.log());
    let told = notifications.lock().unwrap().clone();
    assert!(told.iter().any(|n| n.starts_with("STOPPING=1")), "{told:?}");

    // The upgraded worker comes up; the player's reload resumes the same room from the save.
    let w2 = procs::worker(dir.path(), addrs, &WorkerOpts::new("w2", "local", &pki)).unwrap();
    w2.wait_log("registered with the coordinator", Duration::from_secs(20)).unwrap();
    let room = player.room.clone();
    drop(player);
    let mut back = Player::join(addrs, Some(&room), 1).await;
    assert_eq!(back.room, room);
    let (video, _, _) = back.watch(Duration::from_secs(1)).await;
    assert!(video >= 30, "the resumed room sent {video} frames in 1 s");
    assert!(w2.log().contains("resum"), "w2 did not resume the room:\n{}", w2.log());
}
