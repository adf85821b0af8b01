//! A throwaway certificate authority for the real-client tests: a CA and a
//! server certificate it signed for an IP address, written as PEM files.
//!
//! Owns: generating both with rcgen and writing `ca.pem` (what a client's
//! `SSL_CERT_FILE` points at), `cert.pem` and `key.pem` (the server's
//! `tls_cert_path`/`tls_key_path`). Go's TLS stack (tailscaled) trusts
//! exactly the roots in `SSL_CERT_FILE` when it is set, so a client given
//! `ca.pem` verifies the server certificate by name, as it would a
//! publicly trusted one.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};

/// Paths of a CA and a server certificate it signed.
#[derive(Clone, Debug)]
pub struct TestCa {
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

impl TestCa {
    /// Writes a new CA and a certificate for `ip` (an IP SAN) into `dir`.
    pub fn issue(dir: &Path, ip: IpAddr) -> TestCa {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::default();
        ca.distinguished_name = DistinguishedName::new();
        ca.distinguished_name
            .push(DnType::CommonName, "clawscale test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");

        let key = KeyPair::generate().expect("server key");
        let mut leaf = CertificateParams::default();
        leaf.distinguished_name = DistinguishedName::new();
        leaf.distinguished_name
            .push(DnType::CommonName, ip.to_string());
        leaf.subject_alt_names = vec![SanType::IpAddress(ip)];
        let cert = leaf
            .signed_by(&key, &ca_cert, &ca_key)
            .expect("server certificate");

        let out = TestCa {
            ca_pem: dir.join("ca.pem"),
            cert_pem: dir.join("cert.pem"),
            key_pem: dir.join("key.pem"),
        };
        std::fs::write(&out.ca_pem, ca_cert.pem()).expect("write ca.pem");
        std::fs::write(&out.cert_pem, cert.pem()).expect("write cert.pem");
        std::fs::write(&out.key_pem, key.serialize_pem()).expect("write key.pem");
        out
    }
}
