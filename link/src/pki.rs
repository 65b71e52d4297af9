//! Cluster PKI: a CA that signs the coordinator's server certificate and each worker's client
//! certificate. Files are PEM in one directory:
//!
//! | file | who needs it |
//! | --- | --- |
//! | `ca.pem` | everyone (trust root) |
//! | `ca.key` | only the machine that issues certificates (keep it off worker hosts) |
//! | `coordinator.pem`, `coordinator.key` | the coordinator |
//! | `worker.pem`, `worker.key` | workers (one pair per host, or shared) |

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Paths of one party's certificate material.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Trust root (the cluster CA certificate).
    pub ca: PathBuf,
    /// This party's certificate.
    pub cert: PathBuf,
    /// This party's private key.
    pub key: PathBuf,
}

impl Identity {
    /// The standard file names of `role` (`coordinator` or `worker`) inside `dir`.
    pub fn in_dir(dir: &Path, role: &str) -> Self {
        Self { ca: dir.join("ca.pem"), cert: dir.join(format!("{role}.pem")), key: dir.join(format!("{role}.key")) }
    }

    /// Whether all three files exist.
    pub fn exists(&self) -> bool {
        self.ca.exists() && self.cert.exists() && self.key.exists()
    }

    /// Loads the files for rustls.
    pub fn load(&self) -> Result<LoadedIdentity> {
        let ca = read_certs(&self.ca)?;
        let chain = read_certs(&self.cert)?;
        let key_pem = fs::read(&self.key).with_context(|| read_hint(&self.key))?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .with_context(|| format!("{} is not a PEM private key", self.key.display()))?
            .with_context(|| format!("no private key in {}", self.key.display()))?;
        Ok(LoadedIdentity { ca, chain, key })
    }
}

/// Certificate material loaded into memory.
#[derive(Debug)]
pub struct LoadedIdentity {
    /// Trust roots.
    pub ca: Vec<CertificateDer<'static>>,
    /// Own certificate chain.
    pub chain: Vec<CertificateDer<'static>>,
    /// Own private key.
    pub key: PrivateKeyDer<'static>,
}

fn read_hint(path: &Path) -> String {
    format!(
        "cannot read {}: create the cluster certificates with `retrofarm-coordinator pki init --dir {}` \
         (see docs/operations.md)",
        path.display(),
        path.parent().unwrap_or(Path::new(".")).display()
    )
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = fs::read(path).with_context(|| read_hint(path))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not PEM", path.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", path.display());
    }
    Ok(certs)
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

fn write_public(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

/// Creates a new cluster CA in `dir` (`ca.pem`, `ca.key`). Refuses to overwrite one.
pub fn init_ca(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (ca_pem, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    if ca_pem.exists() || ca_key.exists() {
        bail!("{} already holds a CA; remove it first to start a new cluster", dir.display());
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name("retrofarm cluster CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let cert = params.self_signed(&key)?;
    write_private(&ca_key, &key.serialize_pem())?;
    write_public(&ca_pem, &cert.pem())?;
    Ok(())
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The coordinator's QUIC server certificate.
    Coordinator,
    /// A worker's client certificate.
    Worker,
}

/// Issues a certificate signed by the CA in `dir` and writes `<out_name>.pem` / `.key` there.
///
/// `names` become subject alternative names (DNS names or IP addresses); for a worker the first
/// one is also its common name.
pub fn issue(dir: &Path, role: Role, out_name: &str, names: &[String]) -> Result<()> {
    let ca_pem = fs::read_to_string(dir.join("ca.pem")).with_context(|| read_hint(&dir.join("ca.pem")))?;
    let ca_key_pem = fs::read_to_string(dir.join("ca.key")).with_context(|| read_hint(&dir.join("ca.key")))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).context("ca.key is not a valid key")?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).context("ca.pem is not a valid CA")?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let cn = names.first().map(String::as_str).unwrap_or(out_name);
    params.distinguished_name = name(cn);
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(n.clone().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![match role {
        Role::Coordinator => ExtendedKeyUsagePurpose::ServerAuth,
        Role::Worker => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let cert = params.signed_by(&key, &issuer)?;
    write_private(&dir.join(format!("{out_name}.key")), &key.serialize_pem())?;
    write_public(&dir.join(format!("{out_name}.pem")), &cert.pem())?;
    Ok(())
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "retrofarm");
    dn.push(DnType::CommonName, cn);
    dn
}

/// The local default: when `dir` has no CA, create one plus a coordinator certificate for
/// `server_names` and a worker certificate, so a single-host setup needs no manual step.
/// Returns whether anything was created.
pub fn ensure_local(dir: &Path, server_names: &[String]) -> Result<bool> {
    if dir.join("ca.pem").exists() {
        return Ok(false);
    }
    init_ca(dir)?;
    issue(dir, Role::Coordinator, "coordinator", server_names)?;
    issue(dir, Role::Worker, "worker", &["worker".to_string()])?;
    Ok(true)
}
