//! The browser listener with the operator's certificate: the page and `/ws` over real TLS
//! (rustls on both sides), plain HTTP told to use https://, and a handshake that never comes
//! cut off after its deadline.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use retrofarm_coordinator::config::Config;
use retrofarm_coordinator::server;
use retrofarm_link::pki;
use retrofarm_proto::browser::ServerMsg;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// A coordinator in this process with HTTPS from a certificate issued for `localhost` by a
/// test CA in `dir`; returns its browser address.
async fn start(dir: &Path) -> std::net::SocketAddr {
    let site = dir.join("site");
    pki::init_ca(&site).unwrap();
    pki::issue(&site, pki::Role::Coordinator, "site", &["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cfg = Config {
        http_listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        quic_listen: "127.0.0.1:0".parse().unwrap(),
        web_root: Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"),
        pki_dir: dir.join("pki"),
        tls_cert: Some(site.join("site.pem")),
        tls_key: Some(site.join("site.key")),
        ..Config::default()
    };
    let listeners = server::bind(&cfg).await.unwrap();
    let addr = listeners.http.local_addr().unwrap();
    tokio::spawn(server::serve(cfg, listeners));
    addr
}

/// A TLS connection to `addr` that trusts only the test CA.
async fn connect_tls(dir: &Path, addr: std::net::SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(dir.join("site/ca.pem")).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the operator's certificate")
}

async fn read_to_end(mut s: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn page_and_websocket_over_tls_plain_http_told_and_stalled_handshakes_cut() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start(dir.path()).await;

    // A client that connects and never says hello is cut off after the handshake deadline,
    // while the others below are served.
    let stalled = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 16];
        let r = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await;
        assert!(matches!(r, Ok(Ok(0) | Err(_))), "a silent client was never cut off: {r:?}");
        started.elapsed()
    });

    // The page.
    let mut tls = connect_tls(dir.path(), addr).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let page = read_to_end(tls).await;
    assert!(page.starts_with("HTTP/1.1 200"), "{}", &page[..page.len().min(300)]);
    assert!(page.contains("<html"), "the page itself");

    // The signaling WebSocket: wss, the first message is the latency check (or no free worker).
    let tls = connect_tls(dir.path(), addr).await;
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/ws", tls).await.expect("WSS upgrade");
    let first = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    let Message::Text(text) = first else { panic!("{first:?}") };
    assert!(matches!(ServerMsg::decode(&text).unwrap(), ServerMsg::Error { .. } | ServerMsg::CheckLatency { .. }));

    // Plain HTTP on the HTTPS port: a 400 that says what to do.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let answer = read_to_end(plain).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("https://"), "{answer}");

    let cut = stalled.await.unwrap();
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(15)).contains(&cut),
        "cut off at the handshake deadline (10 s), not {cut:?}"
    );
}

#[tokio::test]
async fn a_certificate_that_cannot_be_used_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        http_listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        quic_listen: "127.0.0.1:0".parse().unwrap(),
        pki_dir: dir.path().join("pki"),
        tls_cert: Some(dir.path().join("fullchain.pem")),
        tls_key: Some(dir.path().join("privkey.pem")),
        ..Config::default()
    };
    let err = format!("{:#}", server::bind(&cfg).await.err().expect("no start without the certificate"));
    assert!(err.contains("fullchain.pem") && err.contains("tls_cert"), "{err}");
}
