//! Backups: one file holding a consistent copy of a live SQLite database and
//! the server's private key files, its restore into a data directory
//! without them, a key-only backup for PostgreSQL, and the schema check both
//! engines share (`schema`).
//!
//! A backup file is a SQLite database: the server's database as of one
//! commit, plus the table `keys` adds with the key files (the Noise key the
//! clients know the server by, and the DERP key). A restore writes the
//! database without that table and the key files beside it, so the restored
//! server presents the same keys and its clients carry on without logging
//! in again. Backups made before the key files were kept have no such table;
//! they still restore, and the caller warns that the keys are not in them.
//! With PostgreSQL (dumped with `pg_dump`, its own consistent snapshot) the
//! backup file holds the key files only.
//!
//! SQLite copies are made with `VACUUM INTO`, which reads the source inside
//! one read transaction: the copy is the database as of one commit, however
//! many writes the running server commits meanwhile (in WAL mode readers do
//! not block the writer; in rollback mode the writer waits, up to its busy
//! timeout). The key files do not change while a server runs (it reads them
//! once, at start), so reading them beside the copy keeps the file
//! consistent. Every file written here (backup, restored database, key
//! files) is created first, mode 0600 and `create_new`, so nothing existing
//! is overwritten and nothing is readable by others, not even while it is
//! written; it is fsynced (SQLite does not sync what `VACUUM INTO` writes),
//! and removed again if the operation fails half-way.

mod keys;
mod schema;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Connection, SqliteConnection};

pub use keys::{KeyFile, KeyRole};
pub use schema::{check_postgres, known_version};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Would overwrite something, or the input is not acceptable.
    #[error("{0}")]
    Refused(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Db { what: String, source: sqlx::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn db_err(what: impl std::fmt::Display) -> impl FnOnce(sqlx::Error) -> Error {
    let what = what.to_string();
    move |source| Error::Db { what, source }
}

/// What a backup holds.
#[derive(Debug)]
pub struct Backed {
    /// The database's schema version; `None` in a key-only backup.
    pub schema_version: Option<i64>,
    /// The key files in it.
    pub keys: Vec<KeyRole>,
    /// Configured key files that did not exist (not in it).
    pub missing: Vec<KeyRole>,
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// The restored database's schema version; `None`: key files only.
    pub schema_version: Option<i64>,
    /// The backup has the key table (false: made before backups held keys).
    pub keys_in_backup: bool,
    /// Key files written, and where.
    pub written: Vec<(KeyRole, PathBuf)>,
    /// Key files that were already there with the backup's key.
    pub present: Vec<KeyRole>,
    /// Configured key files the backup does not hold.
    pub absent: Vec<KeyRole>,
    /// Key files in the backup this config has no use for (DERP server off).
    pub unused: Vec<KeyRole>,
}

/// Copies the live SQLite database at `src` and the key files `keys` to the
/// new file `dest` (0600).
pub async fn backup_sqlite(src: &Path, dest: &Path, keys: &[KeyFile]) -> Result<Backed> {
    if !src.is_file() {
        return Err(Error::Refused(format!(
            "no SQLite database at {}",
            src.display()
        )));
    }
    let live = keys::read_live(keys)?;
    // Not read-only: a WAL reader needs write access to the `-shm` file.
    let opts = SqliteConnectOptions::new()
        .filename(src)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(10));
    let mut conn = SqliteConnection::connect_with(&opts)
        .await
        .map_err(db_err(format!("cannot open {}", src.display())))?;
    let result = async {
        let contents = schema::sqlite_contents(&mut conn, src).await?;
        let version = match contents {
            schema::Contents {
                version: Some(v),
                keys: false,
            } => v,
            _ => {
                return Err(Error::Refused(format!(
                    "{} is a backup file, not a server's database",
                    src.display()
                )));
            }
        };
        write_new(dest, async |dest| {
            vacuum_into(&mut conn, dest).await?;
            let mut copy = open_new(dest).await?;
            let stored = keys::store(&mut copy, &live.found).await;
            let _ = copy.close().await;
            stored
        })
        .await?;
        Ok(version)
    }
    .await;
    let _ = conn.close().await;
    Ok(Backed {
        schema_version: Some(result?),
        keys: live.found.iter().map(|(r, _)| *r).collect(),
        missing: live.missing,
    })
}

/// Writes the key files `keys` alone to the new file `dest` (0600): the
/// backup of a server whose database is backed up by other means.
pub async fn backup_keys(dest: &Path, keys: &[KeyFile]) -> Result<Backed> {
    let live = keys::read_live(keys)?;
    if live.found.is_empty() {
        let paths: Vec<String> = keys.iter().map(|k| k.path.display().to_string()).collect();
        return Err(Error::Refused(format!(
            "no key file to back up (none of {} exists); the database itself is backed up \
             with pg_dump",
            paths.join(", ")
        )));
    }
    write_new(dest, async |dest| {
        let mut file = open_new(dest).await?;
        let stored = keys::store(&mut file, &live.found).await;
        let _ = file.close().await;
        stored
    })
    .await?;
    Ok(Backed {
        schema_version: None,
        keys: live.found.iter().map(|(r, _)| *r).collect(),
        missing: live.missing,
    })
}

/// Restores the backup `from` as the SQLite database `dest`, which must not
/// exist (nor its journal files), and its key files to `keys`' paths, each
/// of which must not exist or hold the same key. Nothing is written unless
/// all of that holds.
pub async fn restore_sqlite(from: &Path, dest: &Path, keys: &[KeyFile]) -> Result<Restored> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = dest.as_os_str().to_owned();
        name.push(suffix);
        let p = Path::new(&name);
        if p.symlink_metadata().is_ok() {
            return Err(Error::Refused(format!(
                "{} exists: restore only into a data directory without a database \
                 (move it away first)",
                p.display()
            )));
        }
    }
    let mut conn = open_backup(from).await?;
    let result = async {
        let contents = checked(&mut conn, from).await?;
        let Some(version) = contents.version else {
            return Err(Error::Refused(format!(
                "{} holds key files only (a backup of a PostgreSQL server), no database",
                from.display()
            )));
        };
        let stored = match contents.keys {
            true => Some(keys::load(&mut conn, from).await?),
            false => None,
        };
        let plan = keys::plan(stored, keys, from)?;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io(dir))?;
        }
        write_new(dest, async |dest| {
            vacuum_into(&mut conn, dest).await?;
            if contents.keys {
                drop_keys(dest).await?;
            }
            Ok(())
        })
        .await?;
        Ok((version, contents.keys, plan))
    }
    .await;
    let _ = conn.close().await;
    let (version, keys_in_backup, plan) = result?;
    finish(Some(version), keys_in_backup, plan).inspect_err(|_| {
        // The database alone would come up with new keys: all or nothing.
        let _ = std::fs::remove_file(dest);
    })
}

/// Restores the key files of the key-only backup `from` to `keys`' paths,
/// each of which must not exist or hold the same key.
pub async fn restore_keys(from: &Path, keys: &[KeyFile]) -> Result<Restored> {
    let mut conn = open_backup(from).await?;
    let result = async {
        let contents = checked(&mut conn, from).await?;
        if contents.version.is_some() {
            return Err(Error::Refused(format!(
                "{} holds a SQLite database: restore it with a SQLite configuration",
                from.display()
            )));
        }
        let stored = keys::load(&mut conn, from).await?;
        keys::plan(Some(stored), keys, from)
    }
    .await;
    let _ = conn.close().await;
    finish(None, true, result?)
}

fn finish(schema_version: Option<i64>, keys_in_backup: bool, plan: keys::Plan) -> Result<Restored> {
    let (present, absent, unused) = (
        plan.present.clone(),
        plan.absent.clone(),
        plan.unused.clone(),
    );
    Ok(Restored {
        schema_version,
        keys_in_backup,
        written: plan.write()?,
        present,
        absent,
        unused,
    })
}

/// Opens the backup `from` to read it. Immutable: the backup is only read,
/// and no `-shm`/`-wal` file is made beside it (it may sit on read-only
/// media).
async fn open_backup(from: &Path) -> Result<SqliteConnection> {
    if !from.is_file() {
        return Err(Error::Refused(format!(
            "no backup file at {}",
            from.display()
        )));
    }
    let opts = SqliteConnectOptions::new()
        .filename(from)
        .read_only(true)
        .immutable(true);
    SqliteConnection::connect_with(&opts)
        .await
        .map_err(db_err(format!("cannot open {}", from.display())))
}

/// What the backup `from` holds, once SQLite has found it undamaged.
async fn checked(conn: &mut SqliteConnection, from: &Path) -> Result<schema::Contents> {
    let contents = schema::sqlite_contents(conn, from).await?;
    let check: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err(format!("cannot check {}", from.display())))?;
    if check != "ok" {
        return Err(Error::Refused(format!(
            "{} is damaged: {check}",
            from.display()
        )));
    }
    Ok(contents)
}

/// Opens a SQLite file made here, to finish it: rollback journal (the
/// copy of a WAL database is marked WAL), so no `-wal` outlives the edit.
async fn open_new(path: &Path) -> Result<SqliteConnection> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Delete);
    SqliteConnection::connect_with(&opts)
        .await
        .map_err(db_err(format!("cannot open {}", path.display())))
}

/// Removes the key table from a restored database; `secure_delete` zeroes
/// the pages it held, so no key is left in the database file.
async fn drop_keys(path: &Path) -> Result<()> {
    let mut conn = open_new(path).await?;
    let dropped = async {
        sqlx::query("PRAGMA secure_delete = ON")
            .execute(&mut conn)
            .await?;
        sqlx::query("DROP TABLE clawscale_backup_keys")
            .execute(&mut conn)
            .await
    }
    .await
    .map_err(db_err(format!("cannot finish {}", path.display())));
    let _ = conn.close().await;
    dropped.map(|_| ())
}

/// `VACUUM INTO` the (empty, new) file `dest`.
async fn vacuum_into(conn: &mut SqliteConnection, dest: &Path) -> Result<()> {
    let Some(dest_str) = dest.to_str() else {
        return Err(Error::Refused(format!(
            "{} is not valid UTF-8; choose another name",
            dest.display()
        )));
    };
    sqlx::query("VACUUM INTO $1")
        .bind(dest_str)
        .execute(&mut *conn)
        .await
        .map_err(db_err(format!("cannot copy into {}", dest.display())))?;
    Ok(())
}

/// Creates the new private file `dest`, lets `fill` write it, and makes it
/// durable; removes it again if anything fails. `VACUUM INTO` accepts an
/// empty file and keeps its mode, and an empty file is an empty database.
async fn write_new(dest: &Path, fill: impl AsyncFnOnce(&Path) -> Result<()>) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Refused(format!(
                "{} exists; refusing to overwrite it",
                dest.display()
            )),
            _ => io(dest)(e),
        })?;
    let written = async {
        fill(dest).await?;
        File::open(dest)
            .and_then(|f| f.sync_all())
            .map_err(io(dest))?;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|f| f.sync_all())
                .map_err(io(dir))?;
        }
        Ok(())
    }
    .await;
    if written.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    written
}

#[cfg(test)]
#[path = "backup_tests.rs"]
mod tests;
