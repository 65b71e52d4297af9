//! quinn endpoints with mutual TLS from the cluster PKI.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use crate::pki::LoadedIdentity;
use crate::ALPN;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(id: &LoadedIdentity) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for ca in &id.ca {
        roots.add(ca.clone()).context("the CA certificate is not valid")?;
    }
    Ok(roots)
}

fn transport(idle: Duration) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(idle.try_into().expect("idle timeout fits")));
    t.keep_alive_interval(Some(idle / 3));
    Arc::new(t)
}

/// A server endpoint (the coordinator) that only accepts clients with a certificate signed by
/// the cluster CA. `idle` bounds how long a silent connection lives.
pub fn server(addr: SocketAddr, id: LoadedIdentity, idle: Duration) -> Result<quinn::Endpoint> {
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&id)?), provider())
        .build()
        .context("cannot build the client certificate verifier")?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.chain, id.key)
        .context("the coordinator certificate and key do not match")?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    cfg.transport_config(transport(idle));
    quinn::Endpoint::server(cfg, addr)
        .with_context(|| format!("cannot listen for workers on UDP {addr}: is the port in use?"))
}

/// A client endpoint (a worker) presenting its certificate and trusting only the cluster CA.
pub fn client(id: LoadedIdentity, idle: Duration) -> Result<quinn::Endpoint> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(&id)?)
        .with_client_auth_cert(id.chain, id.key)
        .context("the worker certificate and key do not match")?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut cfg = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    cfg.transport_config(transport(idle));
    let mut ep =
        quinn::Endpoint::client("0.0.0.0:0".parse().expect("valid addr")).context("cannot open a UDP socket")?;
    ep.set_default_client_config(cfg);
    Ok(ep)
}
