//! Worker faults (issue 17): the QUIC link between a worker and the coordinator drops for a
//! few seconds, and the coordinator restarts, while a player plays. Its game streams straight
//! from the worker, so it keeps its picture throughout and is told nothing; the worker comes
//! back by itself with its room, which new players can join through the coordinator again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use retrofarm_e2e::player::Player;
use retrofarm_e2e::procs::{self, CoordinatorAddrs, WorkerOpts};
use retrofarm_proto::browser::ServerMsg;
use tokio::net::UdpSocket;

/// A UDP relay in front of the coordinator's QUIC port that the test can cut: every datagram
/// is dropped while it is cut, both ways.
struct Relay {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(to: SocketAddr) -> Relay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = front.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let (front2, cut2) = (front.clone(), cut.clone());
        let task = tokio::spawn(async move {
            // One socket towards the coordinator per client address (each reconnection of the
            // worker comes from a new port), and a task carrying the answers back.
            let mut backs: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok((n, from)) = front2.recv_from(&mut buf).await else { return };
                let back = match backs.get(&from) {
                    Some(b) => b.clone(),
                    None => {
                        let b = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
                        b.connect(to).await.unwrap();
                        let (b2, front3, cut3) = (b.clone(), front2.clone(), cut2.clone());
                        tokio::spawn(async move {
                            let mut buf = vec![0u8; 65536];
                            while let Ok(n) = b2.recv(&mut buf).await {
                                if !cut3.load(Ordering::Relaxed) {
                                    let _ = front3.send_to(&buf[..n], from).await;
                                }
                            }
                        });
                        backs.insert(from, b.clone());
                        b
                    }
                };
                if !cut2.load(Ordering::Relaxed) {
                    let _ = back.send(&buf[..n]).await;
                }
            }
        });
        Relay { addr, cut, task }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn is_error(m: &ServerMsg) -> Option<String> {
    match m {
        ServerMsg::Error { code, message } => Some(format!("{code:?}: {message}")),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_link_costs_the_player_nothing_and_the_worker_comes_back_with_its_room() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let addrs = CoordinatorAddrs::fresh();
    // Heartbeat (and QUIC idle) timeout 2 s: the 4 s cut below drops the link on both sides.
    let _coord = procs::coordinator(dir.path(), &pki, addrs, &["--heartbeat-timeout-ms", "2000"]).unwrap();
    let relay = Relay::start(addrs.quic).await;
    let through_relay = CoordinatorAddrs { http: addrs.http, quic: relay.addr };
    let worker = procs::worker(dir.path(), through_relay, &WorkerOpts::new("w1", "local", &pki)).unwrap();
    worker.wait_log("registered with the coordinator", Duration::from_secs(20)).unwrap();
    let mut player = Player::join(addrs, None, 1).await;
    player.watch(Duration::from_secs(1)).await;

    relay.cut.store(true, Ordering::Relaxed);
    let cut = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        relay.cut.store(false, Ordering::Relaxed);
        relay
    });
    // The player watches through the cut and after it.
    let (video, _, _) = player.watch(Duration::from_secs(8)).await;
    let _relay = cut.await.unwrap();
    assert!(video >= 300, "the player got {video} frames in 8 s across the link's cut");
    let log = worker.log();
    assert!(log.contains("coordinator link down"), "the link did not drop:\n{log}");
    worker.wait_log_count("registered with the coordinator", 2, Duration::from_secs(15)).unwrap();
    // Told nothing.
    if let Ok(e) = player.browser.recv_until(Duration::from_millis(500), is_error).await {
        panic!("the player was told: {e}");
    }
    // The room is known again: a second player joins it through the coordinator.
    let mut guest = Player::join(addrs, Some(&player.room.clone()), 2).await;
    let (video, _, _) = guest.watch(Duration::from_secs(2)).await;
    assert!(video >= 60, "the guest got {video} frames in 2 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_restart_costs_the_player_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let addrs = CoordinatorAddrs::fresh();
    let mut coord = procs::coordinator(dir.path(), &pki, addrs, &[]).unwrap();
    let worker = procs::worker(dir.path(), addrs, &WorkerOpts::new("w1", "local", &pki)).unwrap();
    worker.wait_log("registered with the coordinator", Duration::from_secs(20)).unwrap();
    let mut player = Player::join(addrs, None, 1).await;
    player.watch(Duration::from_secs(1)).await;

    coord.kill();
    let (video, _, _) = player.watch(Duration::from_secs(2)).await;
    assert!(video >= 100, "the player got {video} frames in 2 s without a coordinator");
    let _coord = procs::coordinator(dir.path(), &pki, addrs, &[]).unwrap();
    let (video, _, _) = player.watch(Duration::from_secs(3)).await;
    assert!(video >= 150, "the player got {video} frames in 3 s while the coordinator restarted");
    worker.wait_log_count("registered with the coordinator", 2, Duration::from_secs(15)).unwrap();
    let mut guest = Player::join(addrs, Some(&player.room.clone()), 2).await;
    let (video, _, _) = guest.watch(Duration::from_secs(2)).await;
    assert!(video >= 60, "the guest got {video} frames in 2 s");
}
