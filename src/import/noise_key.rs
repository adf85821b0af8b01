//! Carrying Headscale's control key (`noise_private_key_path`, default
//! `noise_private.key`) over, so clawscale answers `/key` with the same
//! machine key Headscale did, for any client that holds on to it
//! (tailscaled 1.78.1 and 1.96.4 were seen to fetch a changed key again
//! when they reconnect). Both servers store the key as text `privkey:<64 hex>` (Tailscale's
//! `key.MachinePrivate.MarshalText`, which Headscale's
//! `readOrCreatePrivateKey` writes and reads back trimmed); `noise::key`
//! reads that form.
//!
//! The key file is written only after the database commit, through a
//! 0600 temporary file renamed into place. An existing key file that holds
//! another key is replaced, because an import needs an empty database and
//! no client can have registered with that key; the old file is kept
//! beside it as `<file>.before-import` (refused if that exists too).

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::Error;
use crate::noise::key::{decode, encode};

/// What will happen to the key file.
#[derive(Debug)]
pub(super) enum Plan {
    /// No `--noise-key`: the file is left alone.
    NotGiven,
    /// The target already holds Headscale's key.
    Same { path: PathBuf },
    /// Write the key; `replaced` is the other key's file kept aside.
    Write {
        path: PathBuf,
        text: String,
        replaced: Option<PathBuf>,
    },
}

impl Plan {
    /// Reads Headscale's key and compares it with the target file.
    pub fn new(headscale: Option<&Path>, target: &Path) -> Result<Plan, Error> {
        let Some(headscale) = headscale else {
            return Ok(Plan::NotGiven);
        };
        let text = fs::read_to_string(headscale)
            .map_err(|e| Error::NoiseKey(format!("cannot read {}: {e}", headscale.display())))?;
        let key = decode(&text).ok_or_else(|| {
            Error::NoiseKey(format!(
                "{} is not a Headscale noise key (expected `privkey:` and 64 hex digits)",
                headscale.display()
            ))
        })?;
        let wanted = encode(&key);
        match fs::read_to_string(target) {
            Ok(existing) => match decode(&existing) {
                Some(k) if k.as_bytes() == key.as_bytes() => Ok(Plan::Same {
                    path: target.to_owned(),
                }),
                _ => {
                    let aside = aside(target);
                    if aside.exists() {
                        return Err(Error::NoiseKey(format!(
                            "{} holds another key and {} exists already; move one of them away",
                            target.display(),
                            aside.display()
                        )));
                    }
                    Ok(Plan::Write {
                        path: target.to_owned(),
                        text: wanted,
                        replaced: Some(aside),
                    })
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Plan::Write {
                path: target.to_owned(),
                text: wanted,
                replaced: None,
            }),
            Err(e) => Err(Error::NoiseKey(format!(
                "cannot read {}: {e}",
                target.display()
            ))),
        }
    }

    /// What the summary says.
    pub fn describe(&self, dry_run: bool) -> String {
        let (w, kept) = if dry_run {
            ("would be written to", "would be kept as")
        } else {
            ("written to", "kept as")
        };
        match self {
            Plan::NotGiven => "not given (--noise-key): clawscale keeps or creates its own, and \
                               clients see a different server key than Headscale's"
                .into(),
            Plan::Same { path } => format!("{} already holds Headscale's key", path.display()),
            Plan::Write {
                path,
                replaced: None,
                ..
            } => format!("Headscale's key {w} {} (0600)", path.display()),
            Plan::Write {
                path,
                replaced: Some(old),
                ..
            } => format!(
                "Headscale's key {w} {} (0600); the key it held {kept} {}",
                path.display(),
                old.display()
            ),
        }
    }

    /// Writes the key (after the database commit).
    pub fn apply(&self) -> Result<(), Error> {
        let Plan::Write {
            path,
            text,
            replaced,
        } = self
        else {
            return Ok(());
        };
        let io = |e: std::io::Error| Error::NoiseKey(format!("writing {}: {e}", path.display()));
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io)?;
        }
        let tmp = path.with_extension("import-tmp");
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        if let Some(old) = replaced {
            fs::rename(path, old).map_err(io)?;
        }
        fs::rename(&tmp, path).map_err(io)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }
}

fn aside(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".before-import");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn headscale_key(dir: &Path, hex_byte: &str) -> PathBuf {
        let p = dir.join("noise_private.key");
        // Headscale writes MarshalText's bytes with no newline; accept both.
        fs::write(&p, format!("privkey:{}\n", hex_byte.repeat(32))).unwrap();
        p
    }

    #[test]
    fn writes_a_0600_key_our_server_loads_as_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let hs = headscale_key(dir.path(), "5a");
        let target = dir.path().join("data/noise_private.key");
        let plan = Plan::new(Some(&hs), &target).unwrap();
        assert!(matches!(plan, Plan::Write { replaced: None, .. }));
        plan.apply().unwrap();
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = crate::noise::load_or_create(&target).unwrap();
        assert_eq!(hex::encode(loaded.as_bytes()), "5a".repeat(32));
        assert!(matches!(
            Plan::new(Some(&hs), &target).unwrap(),
            Plan::Same { .. }
        ));
    }

    #[test]
    fn another_key_is_replaced_and_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let hs = headscale_key(dir.path(), "5a");
        let target = dir.path().join("ours.key");
        let ours = crate::noise::load_or_create(&target).unwrap();
        let plan = Plan::new(Some(&hs), &target).unwrap();
        plan.apply().unwrap();
        let kept = fs::read_to_string(dir.path().join("ours.key.before-import")).unwrap();
        assert_eq!(kept, encode(&ours));
        let loaded = crate::noise::load_or_create(&target).unwrap();
        assert_eq!(hex::encode(loaded.as_bytes()), "5a".repeat(32));
        // A second, different key with the aside file present is refused.
        let other = headscale_key(&dir.path().join("x").tap_mkdir(), "6b");
        assert!(Plan::new(Some(&other), &target).is_err());
    }

    #[test]
    fn garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        fs::write(&p, "nodekey:00").unwrap();
        assert!(Plan::new(Some(&p), &dir.path().join("t")).is_err());
    }

    trait Mkdir {
        fn tap_mkdir(self) -> PathBuf;
    }

    impl Mkdir for PathBuf {
        fn tap_mkdir(self) -> PathBuf {
            fs::create_dir_all(&self).unwrap();
            self
        }
    }
}
