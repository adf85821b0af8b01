//! The server's private key files in a backup: read from the data directory
//! when the backup is made, kept in one table of the backup file, and
//! written back (0600) by a restore.
//!
//! The table, `clawscale_backup_keys (name, content)`, exists only in backup
//! files: a restore drops it from the database it writes (with SQLite's
//! `secure_delete`, so the freed pages are zeroed), and the server never
//! creates it. Its rows are named after the default file names
//! (`noise_private.key`, `derp_server_private.key`); the text is the file's,
//! unchanged. A name this binary does not know means a newer clawscale
//! wrote the backup, and it is refused rather than half restored.
//!
//! This module knows no key format: the caller passes each role's check
//! (the owning module's parser), so a key that the server would refuse is
//! neither backed up nor restored. Key text never appears in an error, a
//! log line or `Debug` output.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sqlx::SqliteConnection;
use subtle::ConstantTimeEq;

use super::{Error, Result, db_err, io};

/// The table that holds the key files in a backup file.
pub(super) const TABLE: &str = "clawscale_backup_keys";

/// A key file is ~72 bytes; more is not a key file, and is not read.
const MAX_LEN: u64 = 4096;

/// Which of the server's key files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyRole {
    /// The Noise (control protocol) static key: the clients' view of the
    /// server's identity.
    Noise,
    /// The embedded DERP relay's key.
    Derp,
}

impl KeyRole {
    const ALL: [KeyRole; 2] = [KeyRole::Noise, KeyRole::Derp];

    /// Its name in a backup (the default file name in the data directory).
    pub fn name(self) -> &'static str {
        match self {
            KeyRole::Noise => "noise_private.key",
            KeyRole::Derp => "derp_server_private.key",
        }
    }

    fn from_name(name: &str) -> Option<KeyRole> {
        KeyRole::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// A key file of the configured server.
#[derive(Clone, Debug)]
pub struct KeyFile {
    pub role: KeyRole,
    pub path: PathBuf,
    /// Whether a text is a key of this role (the owning module's parser).
    pub valid: fn(&str) -> bool,
}

/// A key file's text on its way between the file and the backup.
pub(super) struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Same key, whatever whitespace surrounds it (both parsers ignore it);
    /// constant time, as for every secret.
    fn same(&self, other: &str) -> bool {
        self.0
            .trim()
            .as_bytes()
            .ct_eq(other.trim().as_bytes())
            .into()
    }
}

/// Key files read for a backup.
#[derive(Debug, Default)]
pub(super) struct Live {
    pub found: Vec<(KeyRole, Secret)>,
    /// Configured, but no file there (a server that never started).
    pub missing: Vec<KeyRole>,
}

/// Reads the configured key files that exist, refusing one the server
/// could not load either.
pub(super) fn read_live(keys: &[KeyFile]) -> Result<Live> {
    let mut live = Live::default();
    for k in keys {
        match read_text(&k.path)? {
            None => live.missing.push(k.role),
            Some(text) if (k.valid)(&text) => live.found.push((k.role, Secret(text))),
            Some(_) => {
                return Err(Error::Refused(format!(
                    "{} is not a valid {}; the server cannot use it either",
                    k.path.display(),
                    k.role.name()
                )));
            }
        }
    }
    Ok(live)
}

/// The file's text; `None` when there is no file.
fn read_text(path: &Path) -> Result<Option<String>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let mut text = String::new();
    file.take(MAX_LEN + 1)
        .read_to_string(&mut text)
        .map_err(|_| Error::Refused(format!("{} is not a key file", path.display())))?;
    if text.len() as u64 > MAX_LEN {
        return Err(Error::Refused(format!(
            "{} is not a key file (over {MAX_LEN} bytes)",
            path.display()
        )));
    }
    Ok(Some(text))
}

/// Creates the table in the new backup file and stores `found` in it.
pub(super) async fn store(conn: &mut SqliteConnection, found: &[(KeyRole, Secret)]) -> Result<()> {
    let what = "cannot store the key files in the backup";
    sqlx::query(
        "CREATE TABLE clawscale_backup_keys \
         (name TEXT PRIMARY KEY NOT NULL, content TEXT NOT NULL)",
    )
    .execute(&mut *conn)
    .await
    .map_err(db_err(what))?;
    for (role, secret) in found {
        sqlx::query("INSERT INTO clawscale_backup_keys (name, content) VALUES ($1, $2)")
            .bind(role.name())
            .bind(&secret.0)
            .execute(&mut *conn)
            .await
            .map_err(db_err(what))?;
    }
    Ok(())
}

/// The key files stored in the backup `from`, which has the table.
pub(super) async fn load(
    conn: &mut SqliteConnection,
    from: &Path,
) -> Result<Vec<(KeyRole, Secret)>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT name, content FROM clawscale_backup_keys ORDER BY name")
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err(format!(
                "cannot read the key files in {}",
                from.display()
            )))?;
    rows.into_iter()
        .map(|(name, content)| match KeyRole::from_name(&name) {
            Some(role) => Ok((role, Secret(content))),
            None => Err(Error::Refused(format!(
                "{} holds a key file this clawscale does not know ({name:?}); \
                 restore it with the clawscale release that wrote it, or a newer one",
                from.display()
            ))),
        })
        .collect()
}

/// What a restore does with the key files, decided before anything is
/// written.
#[derive(Debug, Default)]
pub(super) struct Plan {
    write: Vec<(PathBuf, KeyRole, Secret)>,
    pub present: Vec<KeyRole>,
    pub absent: Vec<KeyRole>,
    pub unused: Vec<KeyRole>,
}

/// Matches the backup's key files (`None`: a backup from before they were
/// kept) with the configured ones. Refuses a configured file that exists
/// with another key, and a stored key the server could not load.
pub(super) fn plan(
    stored: Option<Vec<(KeyRole, Secret)>>,
    keys: &[KeyFile],
    from: &Path,
) -> Result<Plan> {
    let mut plan = Plan::default();
    for (role, secret) in stored.into_iter().flatten() {
        let Some(k) = keys.iter().find(|k| k.role == role) else {
            plan.unused.push(role);
            continue;
        };
        if !(k.valid)(&secret.0) {
            return Err(Error::Refused(format!(
                "{}: its {} is not a valid key",
                from.display(),
                role.name()
            )));
        }
        match read_text(&k.path)? {
            Some(existing) if secret.same(&existing) => plan.present.push(role),
            Some(_) => {
                return Err(Error::Refused(format!(
                    "{} exists and holds another key than the backup's {}; restore only \
                     into a data directory without other keys (move it away first)",
                    k.path.display(),
                    role.name()
                )));
            }
            None => plan.write.push((k.path.clone(), role, secret)),
        }
    }
    plan.absent = keys
        .iter()
        .map(|k| k.role)
        .filter(|r| !plan.present.contains(r) && !plan.write.iter().any(|(_, w, _)| w == r))
        .collect();
    Ok(plan)
}

impl Plan {
    /// Writes the planned files (0600, directories 0700, fsynced, never over
    /// an existing file); on failure removes those it wrote. Returns the
    /// roles written and their paths.
    pub(super) fn write(self) -> Result<Vec<(KeyRole, PathBuf)>> {
        let mut written = Vec::new();
        for (path, role, secret) in self.write {
            if let Err(e) = write_new(&path, &secret) {
                for (_, p) in &written {
                    let _ = std::fs::remove_file(p);
                }
                return Err(e);
            }
            written.push((role, path));
        }
        Ok(written)
    }
}

fn write_new(path: &Path, secret: &Secret) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists => Error::Refused(format!(
                "{} appeared during the restore; refusing to overwrite it",
                path.display()
            )),
            _ => io(path)(e),
        })?;
    let written = file
        .write_all(secret.0.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(
            |()| match path.parent().filter(|d| !d.as_os_str().is_empty()) {
                Some(dir) => File::open(dir).and_then(|d| d.sync_all()),
                None => Ok(()),
            },
        );
    if let Err(e) = written {
        let _ = std::fs::remove_file(path);
        return Err(io(path)(e));
    }
    Ok(())
}
