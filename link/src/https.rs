//! The services' public HTTP listeners (the coordinator's page and `/ws`, the worker's `/ping`):
//! one serve loop with a deadline for request headers, and HTTPS with the operator's PEM
//! certificate and key (rustls with the ring provider, the one quinn already uses), a handshake
//! deadline, and a plain answer to plain HTTP.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

/// How long a client may take from connecting to finishing the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers (a client that trickles them a byte
/// at a time is cut off instead of holding a connection for ever).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A router with only `GET /metrics`, answering `render()` in Prometheus' text format: both
/// services serve it on their own `metrics_listen` address, apart from what browsers reach.
pub fn metrics_router<F>(render: F) -> axum::Router
where
    F: Fn() -> String + Clone + Send + Sync + 'static,
{
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let render = render.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], render()) }
        }),
    )
}

/// Serves `app` on `listener`: HTTP/1.1 with upgrades (WebSockets), inside TLS when `tls` is
/// set, with deadlines for the handshake and for each request's headers. Handlers can take the
/// client's address as `axum::extract::ConnectInfo<SocketAddr>`.
pub async fn serve(listener: tokio::net::TcpListener, app: axum::Router, tls: Option<TlsAcceptor>) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use tower_service::Service;
    use tracing::{debug, warn};

    let mut with_remote = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, typically: wait instead of spinning.
                warn!(error = %e, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = with_remote.call(remote).await.unwrap_or_else(|never| match never {});
        let service = TowerToHyperService::new(app);
        let (builder, tls) = (builder.clone(), tls.clone());
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    // hyper's header deadline runs from a request's first byte: a client that
                    // connects and sends nothing would hold the connection for ever.
                    if let Err(e) = first_byte(&stream).await {
                        return debug!(%remote, error = %e, "no HTTP request");
                    }
                    builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await
                }
                Some(acceptor) => match accept(&acceptor, stream).await {
                    Ok(stream) => builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await,
                    Err(e) => return debug!(%remote, error = %e, "no HTTPS connection"),
                },
            };
            if let Err(e) = served {
                debug!(%remote, error = %e, "HTTP connection ended with an error");
            }
        });
    }
}

/// Waits up to [`HEADER_TIMEOUT`] for a connection's first byte (without reading it).
async fn first_byte(stream: &tokio::net::TcpStream) -> Result<(), String> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HEADER_TIMEOUT, stream.peek(&mut first)).await {
        Err(_) => Err(format!("nothing sent within {HEADER_TIMEOUT:?}")),
        Ok(Ok(0)) => Err("closed before sending anything".into()),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
    }
}

/// The acceptor for the `tls_cert` / `tls_key` settings: `None` when neither is set, an error
/// naming the missing one when only one is.
pub fn from_settings(cert: Option<&Path>, key: Option<&Path>) -> Result<Option<TlsAcceptor>> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(c), Some(k)) => acceptor(c, k).map(Some),
        (Some(_), None) => {
            anyhow::bail!("tls_cert is set but tls_key is not: set both (PEM files) for HTTPS, or neither")
        }
        (None, Some(_)) => {
            anyhow::bail!("tls_key is set but tls_cert is not: set both (PEM files) for HTTPS, or neither")
        }
    }
}

/// A TLS acceptor for `cert` (PEM chain, leaf first) and `key` (PEM, PKCS#8, PKCS#1 or SEC1).
/// The errors name the file and what to do about it.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let cert_pem = std::fs::read(cert)
        .with_context(|| format!("cannot read the TLS certificate {} (tls_cert)", cert.display()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("{} (tls_cert) is not a PEM certificate chain: {e}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!(
            "{} (tls_cert) holds no certificate: it must contain -----BEGIN CERTIFICATE-----",
            cert.display()
        );
    }
    let key_pem =
        std::fs::read(key).with_context(|| format!("cannot read the TLS private key {} (tls_key)", key.display()))?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| anyhow!("{} (tls_key) holds no PEM private key: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            anyhow!(
                "the TLS key {} does not go with the certificate {} ({e}): use the key the certificate was issued for",
                key.display(),
                cert.display()
            )
        })?;
    // WebSockets upgrade HTTP/1.1 connections; the server speaks nothing else.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Whether a connection's first byte starts a TLS handshake record (a ClientHello).
pub fn starts_tls(first: u8) -> bool {
    first == 0x16
}

/// What a client speaking plain HTTP to the HTTPS port is told.
pub const PLAIN_HTTP_ANSWER: &str = "This server speaks HTTPS only: use https:// (and wss:// for WebSockets).\n";

/// Completes the TLS handshake of `stream` within [`HANDSHAKE_TIMEOUT`]; a client that speaks
/// plain HTTP is answered 400 with [`PLAIN_HTTP_ANSWER`] instead. The error (no TLS stream came
/// of it) is for a debug log.
pub async fn accept(
    acceptor: &TlsAcceptor,
    mut stream: tokio::net::TcpStream,
) -> Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, String> {
    let handshake = async {
        let mut first = [0u8; 1];
        let n = stream.peek(&mut first).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the TLS handshake".to_string());
        }
        if !starts_tls(first[0]) {
            // Read what the client sent (closing with it unread would reset the connection and
            // lose the answer), then answer in plain text.
            let mut buf = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{PLAIN_HTTP_ANSWER}",
                PLAIN_HTTP_ANSWER.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
            return Err("plain HTTP on the HTTPS port (answered 400)".to_string());
        }
        acceptor.accept(stream).await.map_err(|e| format!("TLS handshake failed: {e}"))
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(r) => r,
        Err(_) => Err(format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki;

    #[test]
    fn loads_a_pair_and_names_the_file_that_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        pki::init_ca(d).unwrap();
        pki::issue(d, pki::Role::Coordinator, "site", &["localhost".into()]).unwrap();
        pki::issue(d, pki::Role::Coordinator, "other", &["localhost".into()]).unwrap();
        let (cert, key) = (d.join("site.pem"), d.join("site.key"));
        acceptor(&cert, &key).unwrap();
        assert!(from_settings(None, None).unwrap().is_none());
        let e = format!("{:#}", from_settings(Some(&cert), None).err().expect("an error"));
        assert!(e.contains("tls_key is not"), "{e}");

        let err = |c: &Path, k: &Path| format!("{:#}", acceptor(c, k).err().expect("an error"));
        let missing = d.join("missing.pem");
        let e = err(&missing, &key);
        assert!(e.contains("missing.pem") && e.contains("tls_cert"), "{e}");
        let e = err(&cert, &missing);
        assert!(e.contains("missing.pem") && e.contains("tls_key"), "{e}");
        // The key where the certificate belongs, and the other way round.
        let e = err(&key, &key);
        assert!(e.contains("site.key") && e.contains("no certificate"), "{e}");
        let e = err(&cert, &cert);
        assert!(e.contains("site.pem") && e.contains("no PEM private key"), "{e}");
        let e = err(&cert, &d.join("other.key"));
        assert!(e.contains("does not go with the certificate") && e.contains("other.key"), "{e}");
    }

    #[test]
    fn tls_is_told_from_plain_http_by_its_first_byte() {
        assert!(starts_tls(0x16));
        assert!(!starts_tls(b'G'));
    }
}
