use super::*;
use rustls::pki_types::ServerName;
use std::os::unix::fs::PermissionsExt;

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn leaf(cert_path: &Path) -> CertificateDer<'static> {
    load_chain(cert_path).expect("chain").remove(0)
}

fn valid_for(cert: &CertificateDer<'_>, name: &str) -> bool {
    let parsed = rustls::server::ParsedCertificate::try_from(cert).expect("parse");
    let sn = ServerName::try_from(name.to_string()).expect("server name");
    rustls::client::verify_server_name(&parsed, &sn).is_ok()
}

#[test]
fn generates_then_reloads_same_fingerprint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("derp.crt"), dir.path().join("derp.key"));
    let wanted = names(&["derp.example.test", "127.0.0.1", "::1", "derp.example.test"]);
    let first = load_or_generate(&cert, &key, &wanted).expect("generate");

    assert_eq!(first.cert_sha256_hex.len(), 64);
    assert_eq!(
        first.cert_name(),
        Some(format!("sha256-raw:{}", first.cert_sha256_hex))
    );
    let mode = std::fs::metadata(&key).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "key file is private");
    assert_eq!(
        first.server_config.alpn_protocols,
        vec![b"http/1.1".to_vec()]
    );

    // The pin is the SHA-256 of the leaf DER as stored on disk.
    let der = leaf(&cert);
    assert_eq!(
        first.cert_sha256_hex,
        hex::encode(Sha256::digest(der.as_ref()))
    );

    let again = load_or_generate(&cert, &key, &wanted).expect("reload");
    assert_eq!(again.cert_sha256_hex, first.cert_sha256_hex);
    // Only the two files, no temporaries.
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 2);
}

#[test]
fn sans_cover_dns_names_and_ips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    load_or_generate(
        &cert,
        &key,
        &names(&["derp.example.test", "127.0.0.1", "::1"]),
    )
    .expect("generate");
    let der = leaf(&cert);
    assert!(valid_for(&der, "derp.example.test"));
    assert!(valid_for(&der, "127.0.0.1"), "IP SAN");
    assert!(valid_for(&der, "::1"), "IPv6 SAN");
    assert!(!valid_for(&der, "other.example.test"));
    assert!(!valid_for(&der, "127.0.0.2"));
}

#[test]
fn existing_key_is_reused_for_a_missing_cert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    load_or_generate(&cert, &key, &names(&["a.test"])).expect("generate");
    let key_before = std::fs::read(&key).expect("key");
    let spki_before = rustls::server::ParsedCertificate::try_from(&leaf(&cert))
        .expect("parse")
        .subject_public_key_info()
        .to_vec();
    std::fs::remove_file(&cert).expect("rm");

    let tls = load_or_generate(&cert, &key, &names(&["b.test"])).expect("regenerate");
    assert_eq!(std::fs::read(&key).expect("key"), key_before);
    let new_leaf = leaf(&cert);
    assert!(valid_for(&new_leaf, "b.test"));
    let spki_after = rustls::server::ParsedCertificate::try_from(&new_leaf)
        .expect("parse")
        .subject_public_key_info()
        .to_vec();
    assert_eq!(spki_after, spki_before);
    assert_eq!(
        tls.cert_sha256_hex,
        hex::encode(Sha256::digest(new_leaf.as_ref()))
    );
}

#[test]
fn loads_operator_provided_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let kp = KeyPair::generate().expect("key");
    let c = CertificateParams::new(names(&["op.example.test"]))
        .expect("params")
        .self_signed(&kp)
        .expect("sign");
    std::fs::write(&cert, c.pem()).expect("write");
    std::fs::write(&key, kp.serialize_pem()).expect("write");
    let tls = load_or_generate(&cert, &key, &names(&["ignored.test"])).expect("load");
    assert_eq!(
        tls.cert_sha256_hex,
        hex::encode(Sha256::digest(c.der().as_ref()))
    );
    assert!(tls.cert_name().is_some(), "a lone certificate is pinned");
    // Files untouched.
    assert_eq!(std::fs::read_to_string(&cert).expect("read"), c.pem());

    // With an intermediate in the file a pin cannot verify it (clients
    // refuse a second certificate): names are checked instead.
    std::fs::write(&cert, format!("{}{}", c.pem(), c.pem())).expect("write");
    let tls = load_or_generate(&cert, &key, &names(&["ignored.test"])).expect("load");
    assert_eq!(tls.cert_name(), None);
}

#[test]
fn refuses_bad_inputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    assert!(matches!(
        load_or_generate(&cert, &key, &[]),
        Err(Error::NoNames)
    ));

    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    assert!(matches!(
        load_or_generate(&cert, &key, &names(&["x.test"])),
        Err(Error::MissingKey { .. })
    ));
    std::fs::write(&cert, "no pem here").expect("write");
    std::fs::write(&key, "no pem here").expect("write");
    assert!(load_or_generate(&cert, &key, &names(&["x.test"])).is_err());
    assert_eq!(std::fs::read_to_string(&cert).expect("read"), "no pem here");
}
