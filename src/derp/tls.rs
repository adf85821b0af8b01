//! TLS for the embedded DERP node: operator-provided PEM files or a self-signed
//! certificate, plus the SHA-256 pin clients verify it with.
//!
//! Owns the certificate/key files and the rustls `ServerConfig` (ring provider, ALPN
//! `http/1.1`: the DERP client sends no ALPN and writes HTTP/1.1 straight onto TLS).
//! Tailscale 1.96 verifies a self-signed DERP certificate only through
//! `CertName: "sha256-raw:<hex>"` (`net/tlsdial.SetConfigExpectedCertHash`): exactly one
//! certificate must be presented, the SHA-256 of its DER must match, it must be
//! within its validity period, and when the dialled `HostName` is a DNS name the
//! certificate must carry it as a DNS SAN (Go ignores the CN). When `HostName` is an
//! IP address no name is checked (Go sends no SNI for IPs); we still add IP SANs.
//! Depends on rustls, rcgen, sha2 and chrono.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Datelike;
use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// Validity of a generated certificate: pins do not expire, so make it long.
const VALIDITY_DAYS: i64 = 3650;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Pem {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path}: no certificate in file")]
    NoCertificate { path: PathBuf },
    #[error("{cert} exists but its key {key} does not")]
    MissingKey { cert: PathBuf, key: PathBuf },
    #[error("no host names to put in the certificate")]
    NoNames,
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A ready TLS server configuration and the pin for its leaf certificate.
#[derive(Debug, Clone)]
pub struct Tls {
    pub server_config: Arc<rustls::ServerConfig>,
    /// Lower-case hex SHA-256 of the leaf certificate's DER.
    pub cert_sha256_hex: String,
    /// Whether the server presents exactly one certificate: a client
    /// checking a `sha256-raw:` pin refuses any further one.
    pub single_cert: bool,
}

impl Tls {
    /// The DERP map `CertName` that pins this certificate, if a pin can
    /// verify it (a lone certificate, self-signed or not).
    pub fn cert_name(&self) -> Option<String> {
        self.single_cert
            .then(|| format!("sha256-raw:{}", self.cert_sha256_hex))
    }
}

/// Loads `cert_path`/`key_path` (PEM) if both exist; otherwise generates a
/// self-signed certificate for `names` (IP literals become IP SANs, everything
/// else DNS SANs), reusing an existing key file if there is one.
///
/// A certificate without its key is an error rather than being overwritten: it may
/// be an operator's real certificate.
pub fn load_or_generate(cert_path: &Path, key_path: &Path, names: &[String]) -> Result<Tls, Error> {
    let exists = |p: &Path| {
        p.try_exists().map_err(|source| Error::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let (cert_exists, key_exists) = (exists(cert_path)?, exists(key_path)?);
    let (chain, key) = match (cert_exists, key_exists) {
        (true, true) => (load_chain(cert_path)?, load_key(key_path)?),
        (true, false) => {
            return Err(Error::MissingKey {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            });
        }
        (false, _) => generate(cert_path, key_path, key_exists, names)?,
    };
    let Some(leaf) = chain.first() else {
        return Err(Error::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    };
    let cert_sha256_hex = hex::encode(Sha256::digest(leaf.as_ref()));
    let single_cert = chain.len() == 1;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        server_config: Arc::new(config),
        cert_sha256_hex,
        single_cert,
    })
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem_err = |source| Error::Pem {
        path: path.to_path_buf(),
        source,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(pem_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err)?;
    if chain.is_empty() {
        return Err(Error::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| Error::Pem {
        path: path.to_path_buf(),
        source,
    })
}

fn generate(
    cert_path: &Path,
    key_path: &Path,
    reuse_key: bool,
    names: &[String],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    let Some(first) = names.first() else {
        return Err(Error::NoNames);
    };
    let key_pair = if reuse_key {
        let pem = std::fs::read_to_string(key_path).map_err(|source| Error::Io {
            path: key_path.to_path_buf(),
            source,
        })?;
        KeyPair::from_pem(&pem)?
    } else {
        KeyPair::generate()?
    };

    let mut unique: Vec<String> = Vec::new();
    for n in names {
        if !unique.contains(n) {
            unique.push(n.clone());
        }
    }
    let mut params = CertificateParams::new(unique)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, first.as_str());
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // Back-date a day so clients with slightly slow clocks accept it at once.
    let today = chrono::Utc::now().date_naive();
    // Month and day always fit in u8. (A closure: rcgen does not re-export the
    // `time` type it returns.)
    let ymd = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    params.not_before = ymd(today - chrono::Duration::days(1));
    params.not_after = ymd(today + chrono::Duration::days(VALIDITY_DAYS));
    let cert = params.self_signed(&key_pair)?;

    for parent in [key_path.parent(), cert_path.parent()]
        .into_iter()
        .flatten()
    {
        if !parent.as_os_str().is_empty() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|source| Error::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
        }
    }
    if !reuse_key {
        write_atomic(key_path, key_pair.serialize_pem().as_bytes(), 0o600)?;
    }
    write_atomic(cert_path, cert.pem().as_bytes(), 0o644)?;
    tracing::info!(cert = %cert_path.display(), "generated self-signed DERP certificate");

    let key = PrivateKeyDer::try_from(key_pair.serialize_der())
        .map_err(|e| Error::Rustls(rustls::Error::General(format!("generated key: {e}"))))?;
    Ok((vec![cert.der().clone()], key))
}

/// Writes `data` to a fresh temporary file with `mode`, then renames it over `path`,
/// so readers never see a partial file and a secret is never briefly world-readable.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), Error> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".tmp.{}.{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let tmp = path.with_file_name(name);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io_err)
}

#[cfg(test)]
mod tests;
