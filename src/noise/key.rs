//! The server's Noise static key on disk.
//!
//! Owns the key file: text `privkey:<64 hex>` (Headscale's
//! `noise.private_key_path` form, so a Headscale key file can be reused),
//! created mode 0600 inside a 0700 directory, and refused when group or
//! others have any access to it.
//!
//! Depends on std and x25519-dalek only (Unix permissions).
//!
//! Mirrors no Tailscale code; it exists because a running `tailscaled`
//! caches the `/key` answer for its whole life, so the key must survive
//! restarts (README trap 10).

use std::fs::{DirBuilder, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use x25519_dalek::StaticSecret;

use super::Error;

const PREFIX: &str = "privkey:";

/// Loads the key at `path`, or creates a new one there if the file does
/// not exist. Concurrent first starts agree on one key (`create_new`).
pub fn load_or_create(path: &Path) -> Result<StaticSecret, Error> {
    match load(path) {
        Err(Error::KeyIo { source, .. }) if source.kind() == ErrorKind::NotFound => {}
        other => return other,
    }
    let io_err = |source| Error::KeyIo {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io_err)?;
    }
    let secret = StaticSecret::random();
    let opened = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    let mut file = match opened {
        Ok(f) => f,
        // Someone else created it between our load and open: use theirs.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return load(path),
        Err(e) => return Err(io_err(e)),
    };
    file.write_all(encode(&secret).as_bytes()).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    Ok(secret)
}

/// The on-disk text form of `secret`.
pub fn encode(secret: &StaticSecret) -> String {
    format!("{PREFIX}{}", hex::encode(secret.as_bytes()))
}

/// Parses the text form; surrounding whitespace is ignored.
pub fn decode(text: &str) -> Option<StaticSecret> {
    let hex_part = text.trim().strip_prefix(PREFIX)?;
    if hex_part.len() != 64 {
        return None;
    }
    let bytes: [u8; 32] = hex::decode(hex_part).ok()?.try_into().ok()?;
    Some(StaticSecret::from(bytes))
}

fn load(path: &Path) -> Result<StaticSecret, Error> {
    let io_err = |source| Error::KeyIo {
        path: path.to_owned(),
        source,
    };
    let file = OpenOptions::new().read(true).open(path).map_err(io_err)?;
    let mode = file.metadata().map_err(io_err)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::KeyMode {
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    let mut text = String::new();
    // A key file is ~72 bytes; cap the read so a wrong path can't eat memory.
    file.take(4096)
        .read_to_string(&mut text)
        .map_err(|_| Error::KeyFormat {
            path: path.to_owned(),
        })?;
    decode(&text).ok_or_else(|| Error::KeyFormat {
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_0600_file_in_0700_dir_and_reloads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/sub/noise_private.key");
        let a = load_or_create(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(path.parent().unwrap()), 0o700);
        assert_eq!(mode_of(&dir.path().join("state")), 0o700);

        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("privkey:") && text.len() == 8 + 64,
            "{text}"
        );

        let b = load_or_create(&path).unwrap();
        assert_eq!(a.as_bytes(), b.as_bytes(), "stable across restarts");
    }

    #[test]
    fn reads_a_headscale_style_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let hex_key = "a0".repeat(32);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        f.write_all(format!("privkey:{hex_key}\n").as_bytes())
            .unwrap();
        let k = load_or_create(&path).unwrap();
        assert_eq!(hex::encode(k.as_bytes()), hex_key);
    }

    #[test]
    fn refuses_a_file_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        load_or_create(&path).unwrap();
        for mode in [0o640, 0o604, 0o644, 0o620] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = load_or_create(&path).err().unwrap();
            assert!(matches!(err, Error::KeyMode { mode: m, .. } if m == mode));
            assert!(err.to_string().contains("chmod 600"));
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        load_or_create(&path).unwrap();
    }

    #[test]
    fn refuses_garbage_instead_of_replacing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let long_garbage = "zz".repeat(40);
        for bad in ["", "privkey:abc", "nodekey:", long_garbage.as_str()] {
            fs::write(&path, bad).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            assert!(matches!(
                load_or_create(&path),
                Err(Error::KeyFormat { .. })
            ));
            assert_eq!(fs::read_to_string(&path).unwrap(), bad, "file untouched");
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let k = StaticSecret::random();
        let back = decode(&format!("  {}\n", encode(&k))).unwrap();
        assert_eq!(back.as_bytes(), k.as_bytes());
        assert!(decode(&format!("privkey:{}", "0".repeat(63))).is_none());
    }
}
