//! The DERP server key: its file on disk and NaCl-box sealing with node keys.
//!
//! Owns the `privkey:<64 hex>` key file (the text form of Tailscale's `key.NodePrivate`,
//! which Headscale also uses for its DERP key; same file rules as the Noise key: created
//! 0600 in a 0700 directory, refused if group or others have access) and the
//! `SealTo`/`OpenFrom` operations of
//! `types/key/node.go`: NaCl `crypto_box` (X25519 + XSalsa20-Poly1305) with a random
//! 24-byte nonce prepended to the box. The DERP key must be distinct from the control
//! (Noise) key; the caller wiring both paths is responsible for that.
//! Depends on crypto_box, rand and std only.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crypto_box::aead::Aead;
use crypto_box::{Nonce, PublicKey, SalsaBox, SecretKey};
use rand::RngCore;

use super::frame::{KEY_LEN, Key, NONCE_LEN};

/// Text prefix of a private node key.
const PREFIX: &str = "privkey:";

/// Errors loading or creating the key file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a DERP private key (want \"privkey:\" and 64 hex digits)")]
    Malformed { path: PathBuf },
    #[error("{path}: mode {mode:o} gives group or others access to a private key")]
    Mode { path: PathBuf, mode: u32 },
}

/// Generates a new private key, clamped like Tailscale's `key.NewNode`.
pub fn generate() -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut k);
    k[0] &= 248;
    k[31] = (k[31] & 127) | 64;
    k
}

/// The Curve25519 public key of `private`.
pub fn public_key(private: &[u8; KEY_LEN]) -> Key {
    SecretKey::from_bytes(*private).public_key().to_bytes()
}

/// The file form: `privkey:<64 lower-case hex>`.
pub fn format(private: &[u8; KEY_LEN]) -> String {
    format!("{PREFIX}{}", hex::encode(private))
}

/// Parses the file form; surrounding whitespace is ignored.
pub fn parse(text: &str) -> Option<[u8; KEY_LEN]> {
    let hex_part = text.trim().strip_prefix(PREFIX)?;
    let mut k = [0u8; KEY_LEN];
    hex::decode_to_slice(hex_part, &mut k).ok()?;
    Some(k)
}

/// Loads the key at `path`, or creates it (mode 0600, parent directories 0700) if the
/// file does not exist.
///
/// Creation is atomic: the key is written to a private temporary file which is then
/// hard-linked into place, so a concurrent starter either wins or reads the winner's
/// key, and a crash never leaves a half-written key behind.
pub fn load_or_create(path: &Path) -> Result<[u8; KEY_LEN], Error> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    match load(path) {
        Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
        other => return other,
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io_err)?;
    }
    let key = generate();
    let tmp = temp_path(path);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(format(&key).as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(key),
        // Lost a creation race: use the key that won.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => load(path),
        Err(e) => Err(io_err(e)),
    }
}

fn load(path: &Path) -> Result<[u8; KEY_LEN], Error> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let mode = file.metadata().map_err(io_err)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::Mode {
            path: path.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    let malformed = || Error::Malformed {
        path: path.to_path_buf(),
    };
    let mut text = String::new();
    // A key file is ~73 bytes; cap the read so a wrong path cannot eat memory.
    file.take(4096)
        .read_to_string(&mut text)
        .map_err(|_| malformed())?;
    parse(&text).ok_or_else(malformed)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".tmp.{}.{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    path.with_file_name(name)
}

/// Seals `plaintext` from `private` to `peer`: nonce ‖ box (`key.NodePrivate.SealTo`).
pub fn seal_to(private: &[u8; KEY_LEN], peer: &Key, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let b = SalsaBox::new(
        &PublicKey::from_bytes(*peer),
        &SecretKey::from_bytes(*private),
    );
    let mut out = nonce.to_vec();
    // Encryption into a Vec cannot fail for in-memory buffers of this size.
    if let Ok(ct) = b.encrypt(Nonce::from_slice(&nonce), plaintext) {
        out.extend_from_slice(&ct);
    }
    out
}

/// Opens a box sealed by `peer` to `private` (`key.NodePrivate.OpenFrom`).
/// `None` if it is too short or does not authenticate.
pub fn open_from(private: &[u8; KEY_LEN], peer: &Key, sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let b = SalsaBox::new(
        &PublicKey::from_bytes(*peer),
        &SecretKey::from_bytes(*private),
    );
    b.decrypt(Nonce::from_slice(nonce), ct).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        let k = generate();
        let text = format(&k);
        assert!(text.starts_with("privkey:"));
        assert_eq!(text.len(), 8 + 64);
        assert_eq!(parse(&format!("  {text}\n")), Some(k));
        assert_eq!(parse(&text[1..]), None);
        assert_eq!(parse("privkey:abcd"), None);
        assert_eq!(parse(&format!("nodekey:{}", hex::encode(k))), None);
    }

    #[test]
    fn generated_keys_are_clamped_and_distinct() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert_eq!(a[0] & 7, 0);
        assert_eq!(a[31] & 0xC0, 0x40);
    }

    #[test]
    fn load_or_create_persists_with_private_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("derp.key");
        let k1 = load_or_create(&path).expect("create");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let k2 = load_or_create(&path).expect("load");
        assert_eq!(k1, k2);
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(parse(&text), Some(k1));
    }

    #[test]
    fn load_rejects_garbage_and_open_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("derp.key");
        std::fs::write(&path, "not a key").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(
            load_or_create(&path),
            Err(Error::Malformed { .. })
        ));

        std::fs::write(&path, format(&generate())).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(matches!(
            load_or_create(&path),
            Err(Error::Mode { mode: 0o640, .. })
        ));
    }

    #[test]
    fn creates_missing_parent_directories_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state/derp/derp.key");
        let k = load_or_create(&path).expect("create");
        let parent_mode = std::fs::metadata(dir.path().join("state/derp"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(parent_mode & 0o777, 0o700);
        assert_eq!(load_or_create(&path).expect("load"), k);
    }

    #[test]
    fn seal_and_open_between_two_keys() {
        let a = generate();
        let b = generate();
        let sealed = seal_to(&a, &public_key(&b), b"{\"version\":2}");
        assert_eq!(sealed.len(), NONCE_LEN + 13 + 16);
        assert_eq!(
            open_from(&b, &public_key(&a), &sealed).as_deref(),
            Some(&b"{\"version\":2}"[..])
        );
        // Wrong claimed sender, tampering and truncation all fail.
        let c = generate();
        assert_eq!(open_from(&b, &public_key(&c), &sealed), None);
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(open_from(&b, &public_key(&a), &bad), None);
        assert_eq!(open_from(&b, &public_key(&a), &sealed[..10]), None);
    }

    #[test]
    fn nacl_box_known_answer() {
        // NaCl's crypto_box test vector (alice → bob, "box.c" in the NaCl tests):
        // checks we use XSalsa20-Poly1305 with the raw X25519 shared secret, as Go's
        // golang.org/x/crypto/nacl/box does.
        let alice_sk =
            hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .expect("hex");
        let bob_sk =
            hex::decode("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
                .expect("hex");
        let alice: [u8; 32] = alice_sk.try_into().expect("32");
        let bob: [u8; 32] = bob_sk.try_into().expect("32");
        let nonce = hex::decode("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37").expect("hex");
        let msg = hex::decode(concat!(
            "be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffc",
            "e5ecbaaf33bd751a1ac728d45e6c61296cdc3c01233561f41db66cce314adb31",
            "0e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde",
            "048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f93776384864",
            "5e0705"
        ))
        .expect("hex");
        let want_ct_prefix = hex::decode("f3ffc7703f9400e52a7dfb4b3d3305d9").expect("hex");
        let b = SalsaBox::new(
            &PublicKey::from_bytes(public_key(&bob)),
            &SecretKey::from_bytes(alice),
        );
        let ct = b
            .encrypt(Nonce::from_slice(&nonce), msg.as_slice())
            .expect("encrypt");
        assert_eq!(&ct[..16], want_ct_prefix.as_slice());
        let mut sealed = nonce.clone();
        sealed.extend_from_slice(&ct);
        assert_eq!(open_from(&bob, &public_key(&alice), &sealed), Some(msg));
    }
}
