//! Foundation 1/3: coordinator and worker as real processes over QUIC on loopback, a Rust
//! browser stand-in on the WebSocket.

use std::time::Duration;

use retrofarm_e2e::browser::Browser;
use retrofarm_e2e::procs::{self, CoordinatorAddrs, WorkerOpts};
use retrofarm_e2e::rtc::{RtcClient, RtcEvent};
use retrofarm_proto::browser::{ClientMsg, PingTarget, ServerMsg};
use retrofarm_proto::ids::RoomId;
use retrofarm_proto::ErrorCode;

const T: Duration = Duration::from_secs(15);
const GAME: &str = "Retrofarm Walk";

/// Connects and waits until the latency check lists `n` workers (registration done).
async fn browser_seeing(addrs: CoordinatorAddrs, query: &str, n: usize) -> Browser {
    browser_checking(addrs, query, n).await.0
}

/// [`browser_seeing`], with the workers the latency check listed.
async fn browser_checking(addrs: CoordinatorAddrs, query: &str, n: usize) -> (Browser, Vec<PingTarget>) {
    let end = std::time::Instant::now() + T;
    loop {
        let mut b = Browser::connect(&addrs.ws_url(query)).await.unwrap();
        if let Ok(ServerMsg::CheckLatency { workers }) = b.recv(Duration::from_secs(2)).await {
            if workers.len() == n {
                return (b, workers);
            }
        }
        assert!(std::time::Instant::now() < end, "{n} workers never registered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn error_code(m: &ServerMsg) -> Option<ErrorCode> {
    match m {
        ServerMsg::Error { code, .. } => Some(*code),
        _ => None,
    }
}

/// Latency check, init, start: returns the room and the worker's offer.
async fn start_game(
    b: &mut Browser,
    workers: Option<Vec<retrofarm_proto::browser::PingTarget>>,
    port: u8,
) -> (RoomId, String) {
    if let Some(w) = workers {
        b.answer_latency(&w).await.unwrap();
        b.recv_until(T, |m| matches!(m, ServerMsg::Init { .. }).then_some(())).await.unwrap();
    }
    b.send(&ClientMsg::StartGame { game: GAME.into(), room: None, port }).await.unwrap();
    let room = b
        .recv_until(T, |m| match m {
            ServerMsg::GameStarted { room, .. } => Some(room.clone()),
            _ => None,
        })
        .await
        .unwrap();
    let sdp = b
        .recv_until(T, |m| match m {
            ServerMsg::Offer { sdp } => Some(sdp.clone()),
            _ => None,
        })
        .await
        .unwrap();
    (room, sdp)
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_session_init_and_signaling_relay() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let addrs = CoordinatorAddrs::fresh();
    let _coord = procs::coordinator(dir.path(), &pki, addrs, &[]).unwrap();
    let worker = procs::worker(dir.path(), addrs, &WorkerOpts::new("w1", "eu", &pki)).unwrap();
    worker.wait_log("registered with the coordinator", T).unwrap();

    // Session init: the worker list for the latency check, then init with games and worker.
    let mut b = Browser::connect(&addrs.ws_url("zone=eu")).await.unwrap();
    let ServerMsg::CheckLatency { workers } = b.recv(T).await.unwrap() else { panic!("expected check_latency") };
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].id.as_str(), "w1");
    let results = b.answer_latency(&workers).await.unwrap();
    assert!(results.contains_key(&workers[0].id), "the worker's ping endpoint answers");
    let ServerMsg::Init { games, worker: chosen, ice_servers: _, .. } = b.recv(T).await.unwrap() else {
        panic!("expected init")
    };
    assert_eq!(chosen.id.as_str(), "w1");
    assert!(games.iter().any(|g| g.name == GAME && g.system == "nes"), "{games:?}");

    // Start: the worker's offer and end-of-candidates come through the coordinator.
    let (room, offer) = start_game(&mut b, None, 1).await;
    assert!(offer.contains("m=video") && offer.contains("m=application"));
    let end = b
        .recv_until(T, |m| match m {
            ServerMsg::Ice { candidate } => Some(candidate.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert!(end.is_none(), "worker candidates are in the offer, then end-of-candidates");

    // The other way: our answer and trickled candidate reach the worker, and the peer connects
    // (it can only connect if the worker applied both).
    let mut peer = RtcClient::answer(&offer).await.unwrap();
    b.send(&ClientMsg::Answer { sdp: peer.answer.clone() }).await.unwrap();
    b.send(&ClientMsg::Ice { candidate: Some(peer.candidate.clone()) }).await.unwrap();
    b.send(&ClientMsg::Ice { candidate: None }).await.unwrap();
    peer.wait_for(T, |e| (*e == RtcEvent::Connected).then_some(())).await.unwrap();
    peer.wait_for(T, |e| matches!(e, RtcEvent::ChannelOpen(l) if l == "input").then_some(())).await.unwrap();

    // A second browser with the share link lands on the same room.
    let mut b2 = Browser::connect(&addrs.ws_url(&format!("room={room}"))).await.unwrap();
    let init_room = b2
        .recv_until(T, |m| match m {
            ServerMsg::Init { room, .. } => Some(room.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(init_room.as_ref(), Some(&room));
    b2.send(&ClientMsg::StartGame { game: String::new(), room: Some(room.clone()), port: 1 }).await.unwrap();
    let taken = b2.recv_until(T, error_code).await.unwrap();
    assert_eq!(taken, ErrorCode::PortTaken);
    b2.send(&ClientMsg::StartGame { game: String::new(), room: Some(room.clone()), port: 2 }).await.unwrap();
    let (joined, port) = b2
        .recv_until(T, |m| match m {
            ServerMsg::GameStarted { room, port, .. } => Some((room.clone(), *port)),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!((joined, port), (room, 2));

    b.send(&ClientMsg::Quit).await.unwrap();
    worker.wait_log("session", T).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_messages_get_errors_and_the_connection_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let addrs = CoordinatorAddrs::fresh();
    let _coord = procs::coordinator(dir.path(), &pki, addrs, &[]).unwrap();
    let _w = procs::worker(dir.path(), addrs, &WorkerOpts::new("w1", "eu", &pki)).unwrap();
    let mut b = browser_seeing(addrs, "", 1).await;

    b.send_raw("{not json").await.unwrap();
    assert_eq!(b.recv_until(T, error_code).await.unwrap(), ErrorCode::Malformed);
    b.send_raw(r#"{"t":"self_destruct"}"#).await.unwrap();
    assert_eq!(b.recv_until(T, error_code).await.unwrap(), ErrorCode::UnknownType);
    b.send_raw(&format!(r#"{{"t":"answer","p":{{"sdp":"{}"}}}}"#, "x".repeat(100_000))).await.unwrap();
    assert_eq!(b.recv_until(T, error_code).await.unwrap(), ErrorCode::TooLarge);
    b.send(&ClientMsg::Answer { sdp: "v=0".into() }).await.unwrap();
    assert_eq!(b.recv_until(T, error_code).await.unwrap(), ErrorCode::BadState);

    // Still usable: the latency answer gets init, an unknown game its error, then a real start.
    b.send(&ClientMsg::Latency { results: Default::default() }).await.unwrap();
    b.recv_until(T, |m| matches!(m, ServerMsg::Init { .. }).then_some(())).await.unwrap();
    b.send(&ClientMsg::StartGame { game: "Nope".into(), room: None, port: 1 }).await.unwrap();
    assert_eq!(b.recv_until(T, error_code).await.unwrap(), ErrorCode::UnknownGame);
    start_game(&mut b, None, 1).await;

    // A message the WebSocket layer cannot even read (1 MiB): the error, then close code 1009.
    let mut big = browser_seeing(addrs, "", 1).await;
    big.send_raw(&format!(r#"{{"t":"answer","p":{{"sdp":"{}"}}}}"#, "x".repeat(1 << 20))).await.unwrap();
    assert_eq!(big.recv_until(T, error_code).await.unwrap(), ErrorCode::TooLarge);
    let (code, reason) = big.closed(T).await.unwrap();
    assert_eq!(code, 1009, "message too big: {reason}");

    // A share link to a room that is not running: the latency check, then the chosen worker
    // looks for the room's autosave and, finding none, says so clearly.
    let mut b2 = Browser::connect(&addrs.ws_url("room=deadbeef")).await.unwrap();
    assert!(matches!(b2.recv(T).await.unwrap(), ServerMsg::CheckLatency { .. }));
    b2.send(&ClientMsg::Latency { results: Default::default() }).await.unwrap();
    let room = b2.recv_until(T, |m| if let ServerMsg::Init { room, .. } = m { Some(room.clone()) } else { None });
    assert_eq!(room.await.unwrap().map(|r| r.to_string()), Some("deadbeef".to_string()));
    let room = RoomId::new("deadbeef").unwrap();
    b2.send(&ClientMsg::StartGame { game: String::new(), room: Some(room), port: 1 }).await.unwrap();
    let (code, message) = b2
        .recv_until(T, |m| match m {
            ServerMsg::Error { code, message } => Some((*code, message.clone())),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(code, ErrorCode::UnknownRoom);
    assert!(message.contains("deadbeef") && message.contains("no save"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_heartbeats_and_disconnects_are_told_to_users() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let addrs = CoordinatorAddrs::fresh();
    // Its players are told once the worker has been gone for the grace period too.
    let _coord =
        procs::coordinator(dir.path(), &pki, addrs, &["--heartbeat-timeout-ms", "1500", "--worker-grace-ms", "1000"])
            .unwrap();
    let w1 = procs::worker(dir.path(), addrs, &WorkerOpts::new("w1", "eu", &pki)).unwrap();
    let mut b = browser_seeing(addrs, "", 1).await;
    b.send(&ClientMsg::Latency { results: Default::default() }).await.unwrap();
    let (room, _) = start_game(&mut b, None, 1).await;

    // A frozen worker stops heartbeating: its user hears worker_lost, its room is gone.
    w1.signal(libc::SIGSTOP);
    let (code, message) = b
        .recv_until(Duration::from_secs(10), |m| match m {
            ServerMsg::Error { code, message } => Some((*code, message.clone())),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(code, ErrorCode::WorkerLost);
    assert!(message.contains("w1"), "{message}");
    let mut b2 = Browser::connect(&addrs.ws_url(&format!("room={room}"))).await.unwrap();
    // Its room would resume elsewhere, but no worker is left.
    assert_eq!(error_code(&b2.recv(T).await.unwrap()), Some(ErrorCode::NoFreeWorker));
    w1.signal(libc::SIGCONT);

    // A worker process that dies: the connection closes and its user is told.
    let mut w2 = procs::worker(dir.path(), addrs, &WorkerOpts::new("w2", "eu", &pki)).unwrap();
    let mut b3 = browser_seeing(addrs, "", 2).await;
    let results = [(retrofarm_proto::ids::WorkerId::new("w2").unwrap(), 1)].into_iter().collect();
    b3.send(&ClientMsg::Latency { results }).await.unwrap();
    let chosen = b3
        .recv_until(T, |m| match m {
            ServerMsg::Init { worker, .. } => Some(worker.id.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(chosen.as_str(), "w2");
    start_game(&mut b3, None, 1).await;
    w2.kill();
    assert_eq!(b3.recv_until(Duration::from_secs(10), error_code).await.unwrap(), ErrorCode::WorkerLost);
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_without_valid_credentials_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let rogue = dir.path().join("rogue");
    let addrs = CoordinatorAddrs::fresh();
    let coord = procs::coordinator(dir.path(), &pki, addrs, &[]).unwrap();

    // A certificate from another CA: the coordinator refuses the handshake.
    let status = std::process::Command::new(procs::bin("retrofarm-coordinator"))
        .args(["pki", "init", "--dir"])
        .arg(&rogue)
        .status()
        .unwrap();
    assert!(status.success());
    let status = std::process::Command::new(procs::bin("retrofarm-coordinator"))
        .args(["pki", "issue-worker", "--dir"])
        .arg(&rogue)
        .args(["--name", "worker"])
        .status()
        .unwrap();
    assert!(status.success());
    let rogue_worker = procs::worker(dir.path(), addrs, &WorkerOpts::new("rogue", "eu", &rogue)).unwrap();
    coord.wait_log("worker connection refused", T).unwrap();
    rogue_worker.wait_log("coordinator link down", T).unwrap();
    assert!(!rogue_worker.log().contains("registered with the coordinator"));

    // No credentials at all: the worker says what to do.
    let none = procs::worker(dir.path(), addrs, &WorkerOpts::new("none", "eu", &dir.path().join("empty"))).unwrap();
    none.wait_log("pki init", T).unwrap();

    let mut b = Browser::connect(&addrs.ws_url("")).await.unwrap();
    assert_eq!(error_code(&b.recv(T).await.unwrap()), Some(ErrorCode::NoFreeWorker));

    // The cluster's own certificate works.
    let good = procs::worker(dir.path(), addrs, &WorkerOpts::new("good", "eu", &pki)).unwrap();
    good.wait_log("registered with the coordinator", T).unwrap();
    browser_seeing(addrs, "", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_trickling_its_headers_is_cut_off_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let addrs = CoordinatorAddrs::fresh();
    let _coord = procs::coordinator(dir.path(), &pki, addrs, &[]).unwrap();
    // A request line, then one header line every second, never the blank line that ends them.
    let mut slow = tokio::net::TcpStream::connect(addrs.http).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: retrofarm\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let cut = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if slow.write_all(b"X-Slow: a\r\n").await.is_err() {
            break started.elapsed();
        }
        let mut buf = [0u8; 256];
        // Closed (the server may say 408 first, read here as data).
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(10), slow.read(&mut buf)).await {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "a trickling client was never cut off");
    };
    eprintln!("the trickling client was cut off after {cut:?}");
    assert!(cut >= Duration::from_secs(9), "not before the header deadline (10 s): {cut:?}");
    // Meanwhile and after, others are served.
    let (status, body) = retrofarm_e2e::browser::http_get(&format!("http://{}/healthz", addrs.http)).await.unwrap();
    assert_eq!((status, body.trim()), (200, "ok"));
}

#[tokio::test(flavor = "multi_thread")]
async fn websockets_from_pages_of_other_origins_get_403_unless_allowed() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::Error as WsError;

    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let addrs = CoordinatorAddrs::fresh();
    let coord =
        procs::coordinator(dir.path(), &pki, addrs, &["--allowed-origins", "https://play.example.org"]).unwrap();
    let open = |origin: Option<String>| async move {
        let mut req = addrs.ws_url("").into_client_request().unwrap();
        if let Some(o) = origin {
            req.headers_mut().insert("origin", HeaderValue::from_str(&o).unwrap());
        }
        tokio_tungstenite::connect_async(req).await
    };

    // Another site's page: 403, and the body says which origin and which key.
    match open(Some("https://evil.example".into())).await {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status(), 403);
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
            assert!(body.contains("\"https://evil.example\"") && body.contains("allowed_origins"), "{body}");
        }
        other => panic!("a foreign origin was not refused with 403: {:?}", other.map(|(_, r)| r.status())),
    }
    coord.wait_log("refused a WebSocket", T).unwrap();

    // The coordinator's own pages, a listed origin and clients without an Origin upgrade, and
    // get the protocol's first message.
    for origin in [Some(format!("http://{}", addrs.http)), Some("https://play.example.org".into()), None] {
        let (mut ws, resp) = open(origin.clone()).await.unwrap_or_else(|e| panic!("{origin:?} refused: {e}"));
        assert_eq!(resp.status(), 101, "{origin:?}");
        let first = tokio::time::timeout(T, futures_util::StreamExt::next(&mut ws)).await.unwrap().unwrap().unwrap();
        let msg = ServerMsg::decode(first.to_text().unwrap()).unwrap();
        assert_eq!(error_code(&msg), Some(ErrorCode::NoFreeWorker), "{origin:?}: {msg:?}");
    }
}

/// A new browser past its latency check: the init's games, and the browser.
async fn lobby(addrs: CoordinatorAddrs) -> (Vec<(String, String)>, Browser) {
    let (mut b, workers) = browser_checking(addrs, "zone=eu", 1).await;
    b.answer_latency(&workers).await.unwrap();
    let ServerMsg::Init { games, .. } = b.recv(T).await.unwrap() else { panic!("expected init") };
    (games.into_iter().map(|g| (g.name, g.system)).collect(), b)
}

#[tokio::test(flavor = "multi_thread")]
async fn games_added_to_a_subfolder_are_listed_after_a_rescan_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let games = dir.path().join("games");
    std::fs::create_dir_all(games.join("nes/homebrew")).unwrap();
    let ours = retrofarm_e2e::repo_root().join(format!("games/{GAME}.nes"));
    std::fs::copy(&ours, games.join(format!("{GAME}.nes"))).unwrap();
    let pki = dir.path().join("pki");
    let addrs = CoordinatorAddrs::fresh();
    let _coord = procs::coordinator(dir.path(), &pki, addrs, &[]).unwrap();
    let mut o = WorkerOpts::new("w1", "eu", &pki);
    o.games = games.clone();
    let worker = procs::worker(dir.path(), addrs, &o).unwrap();
    worker.wait_log("registered with the coordinator", T).unwrap();
    assert_eq!(lobby(addrs).await.0, [(GAME.to_string(), "nes".to_string())]);

    // A game copied into a subfolder under a dump name, and SIGHUP: listed with a clean name,
    // and playable, while the worker never restarted.
    std::fs::copy(&ours, games.join("nes/homebrew/Second Walk (USA) [!].nes")).unwrap();
    worker.signal(libc::SIGHUP);
    worker.wait_log("the games changed", T).unwrap();
    let want = [("Retrofarm Walk", "nes"), ("Second Walk", "nes")].map(|(n, s)| (n.to_string(), s.to_string()));
    let end = std::time::Instant::now() + T;
    let mut b = loop {
        let (listed, b) = lobby(addrs).await;
        if listed == want {
            break b;
        }
        assert!(std::time::Instant::now() < end, "listed {listed:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    b.send(&ClientMsg::StartGame { game: "Second Walk".into(), room: None, port: 1 }).await.unwrap();
    let started = b.recv_until(T, |m| matches!(m, ServerMsg::GameStarted { .. }).then_some(())).await;
    assert!(started.is_ok(), "the new game starts: {started:?}");
}
