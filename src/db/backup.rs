//! Backups: a consistent copy of a live SQLite database, its restore into a
//! data directory without one, and the schema check both engines share.
//!
//! SQLite copies are made with `VACUUM INTO`, which reads the source inside
//! one read transaction: the copy is the database as of one commit, however
//! many writes the running server commits meanwhile (in WAL mode readers do
//! not block the writer; in rollback mode the writer waits, up to its busy
//! timeout). SQLite does not fsync the file `VACUUM INTO` writes, so we do,
//! and the file is created here first, mode 0600 and `create_new`, so an
//! existing file is never overwritten and the copy is never readable by
//! others, not even while it is written.
//!
//! PostgreSQL is backed up with `pg_dump` (its own consistent snapshot); what
//! clawscale adds there is [`check_postgres`], the schema check of a database
//! `pg_restore` has filled, before a server is started on it.
//!
//! A database is "a clawscale database" when sqlx's migration table holds
//! this binary's migrations with this binary's checksums; its schema version
//! is the highest migration applied. A newer one than this binary knows is
//! refused: the server would fail to migrate it, or worse, misread it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, PgConnection, SqliteConnection};

use super::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

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

/// The newest schema version this binary can run on, per engine.
pub fn known_version(postgres: bool) -> i64 {
    let migrator = if postgres {
        &POSTGRES_MIGRATIONS
    } else {
        &SQLITE_MIGRATIONS
    };
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Copies the live SQLite database at `src` to the new file `dest` (0600);
/// returns the copy's schema version.
pub async fn backup_sqlite(src: &Path, dest: &Path) -> Result<i64> {
    if !src.is_file() {
        return Err(Error::Refused(format!(
            "no SQLite database at {}",
            src.display()
        )));
    }
    // Not read-only: a WAL reader needs write access to the `-shm` file.
    let opts = SqliteConnectOptions::new()
        .filename(src)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(10));
    let mut conn = SqliteConnection::connect_with(&opts)
        .await
        .map_err(db_err(format!("cannot open {}", src.display())))?;
    let result = async {
        let version = sqlite_version(&mut conn, src).await?;
        vacuum_into(&mut conn, dest).await?;
        Ok(version)
    }
    .await;
    let _ = conn.close().await;
    result
}

/// Restores the backup `from` as the SQLite database `dest`, which must not
/// exist (nor its journal files); returns the schema version restored.
pub async fn restore_sqlite(from: &Path, dest: &Path) -> Result<i64> {
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
    if !from.is_file() {
        return Err(Error::Refused(format!(
            "no backup file at {}",
            from.display()
        )));
    }
    // Immutable: the backup is only read, and no `-shm`/`-wal` file is made
    // beside it (it may sit on read-only media).
    let opts = SqliteConnectOptions::new()
        .filename(from)
        .read_only(true)
        .immutable(true);
    let mut conn = SqliteConnection::connect_with(&opts)
        .await
        .map_err(db_err(format!("cannot open {}", from.display())))?;
    let result = async {
        let version = sqlite_version(&mut conn, from).await?;
        let check: String = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_one(&mut conn)
            .await
            .map_err(db_err(format!("cannot check {}", from.display())))?;
        if check != "ok" {
            return Err(Error::Refused(format!(
                "{} is damaged: {check}",
                from.display()
            )));
        }
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io(dir))?;
        }
        vacuum_into(&mut conn, dest).await?;
        Ok(version)
    }
    .await;
    let _ = conn.close().await;
    result
}

/// The schema version of the PostgreSQL database at `url`, refused unless
/// it is a clawscale database this binary can run on.
pub async fn check_postgres(url: &str) -> Result<i64> {
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(db_err("cannot connect to the PostgreSQL database"))?;
    let result = async {
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(db_err("cannot read the schema"))?;
        let rows = if tables == 0 {
            Vec::new()
        } else {
            sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations")
                .fetch_all(&mut conn)
                .await
                .map_err(db_err("cannot read the migrations"))?
        };
        judge(&POSTGRES_MIGRATIONS, &rows, "the PostgreSQL database")
    }
    .await;
    let _ = conn.close().await;
    result
}

async fn sqlite_version(conn: &mut SqliteConnection, path: &Path) -> Result<i64> {
    let what = path.display().to_string();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match e {
        // "file is not a database" and kin: say it plainly.
        sqlx::Error::Database(d) => {
            Error::Refused(format!("{what} is not a clawscale database: {d}"))
        }
        source => Error::Db {
            what: format!("cannot read {what}"),
            source,
        },
    })?;
    let rows = if tables == 0 {
        Vec::new()
    } else {
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations")
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err(format!("cannot read the migrations of {what}")))?
    };
    judge(&SQLITE_MIGRATIONS, &rows, &what)
}

/// Accepts the applied migrations `rows` (version, checksum, success) when
/// they are this binary's, and returns the schema version.
fn judge(migrator: &Migrator, rows: &[(i64, Vec<u8>, bool)], what: &str) -> Result<i64> {
    let not_ours =
        |why: &str| Error::Refused(format!("{what} is not a clawscale database ({why})"));
    let first = migrator.iter().map(|m| m.version).min().unwrap_or(1);
    if !rows.iter().any(|(v, _, ok)| *v == first && *ok) {
        return Err(not_ours("it has no clawscale schema"));
    }
    if let Some((v, _, _)) = rows.iter().find(|(_, _, ok)| !*ok) {
        return Err(Error::Refused(format!(
            "{what}: migration {v} did not finish; restore from another backup"
        )));
    }
    for (v, sum, _) in rows {
        if let Some(m) = migrator.iter().find(|m| m.version == *v)
            && m.checksum.as_ref() != sum.as_slice()
        {
            return Err(not_ours(&format!(
                "migration {v} differs from this build's"
            )));
        }
    }
    let version = rows.iter().map(|(v, _, _)| *v).max().unwrap_or(0);
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    if version > known {
        return Err(Error::Refused(format!(
            "{what} has schema version {version}, newer than this clawscale knows \
             ({known}); use the clawscale release that wrote it, or a newer one"
        )));
    }
    Ok(version)
}

/// `VACUUM INTO` a new private file at `dest`, made durable; the file is
/// removed again if the copy fails.
async fn vacuum_into(conn: &mut SqliteConnection, dest: &Path) -> Result<()> {
    let Some(dest_str) = dest.to_str() else {
        return Err(Error::Refused(format!(
            "{} is not valid UTF-8; choose another name",
            dest.display()
        )));
    };
    // An empty file is accepted by `VACUUM INTO` and keeps its mode.
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
    let copied = async {
        sqlx::query("VACUUM INTO $1")
            .bind(dest_str)
            .execute(&mut *conn)
            .await
            .map_err(db_err(format!("cannot copy into {}", dest.display())))?;
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
    if copied.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    copied
}

#[cfg(test)]
#[path = "backup_tests.rs"]
mod tests;
