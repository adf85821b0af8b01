//! The SQLite file: where and how it is opened.
//!
//! The directory (0700) and the database file (0600) are created here before
//! SQLite opens the file: SQLite would create it 0644, and it gives the
//! `-wal` and `-shm` files it creates later the mode of the database file,
//! so all three stay private to the server's user. An existing file readable
//! by group or others is left alone (an operator may mean it) but logged.
//! Errors name the path.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Error, Result};

/// A pool of up to `max_connections` on the SQLite file at `path`, created
/// (with its directory) if missing.
pub(super) async fn open(
    path: &Path,
    write_ahead_log: bool,
    max_connections: u32,
) -> Result<SqlitePool> {
    create_private(path)?;
    let journal = if write_ahead_log {
        SqliteJournalMode::Wal
    } else {
        SqliteJournalMode::Delete
    };
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(journal)
        // FULL: COMMIT returns only once the WAL (or the rollback journal)
        // is fsynced, so (per SQLite's documentation) an acknowledged write
        // survives an OS crash or a power cut too. NORMAL in WAL mode syncs only at checkpoints and
        // may lose the last commits then; that trade suits a high write rate,
        // which a control plane does not have (enrolments, endpoint and
        // hostinfo changes, admin changes, a last-seen time per disconnect).
        // Measured cost, about 0.15 ms per write: `benches/commits.rs`.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    SqlitePoolOptions::new()
        .max_connections(max_connections)
        .connect_with(opts)
        .await
        .map_err(|e| {
            Error::Open(format!(
                "cannot open the SQLite database {}: {e}",
                path.display()
            ))
        })
}

/// Creates the file's directory (0700) and the file (0600) unless they
/// exist; warns about existing ones open to group or others.
fn create_private(path: &Path) -> Result<()> {
    let fail = |what: &str, p: &Path, e: std::io::Error| {
        Error::Open(format!("cannot create {what} {}: {e}", p.display()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| fail("the database directory", dir, e))?;
    }
    // An empty file is a valid empty database to SQLite.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            for suffix in ["", "-wal", "-shm"] {
                let mut name = path.as_os_str().to_owned();
                name.push(suffix);
                if let Some(mode) = shared_mode(Path::new(&name)) {
                    tracing::warn!(
                        path = %Path::new(&name).display(),
                        mode = format_args!("{mode:o}"),
                        "database file is accessible to group or others; chmod 600 it"
                    );
                }
            }
            Ok(())
        }
        Err(e) => Err(fail("the SQLite database", path, e)),
    }
}

/// The permission bits of `path` when group or others have any access.
fn shared_mode(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::{Db, Target};

    fn mode(p: &std::path::Path) -> u32 {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    }

    #[tokio::test]
    async fn new_database_files_are_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("state");
        let path = sub.join("db.sqlite");
        let db = Db::connect(&Target::Sqlite {
            path: path.clone(),
            write_ahead_log: true,
        })
        .await
        .expect("open");
        db.create_user("alice", "", "", chrono::Utc::now())
            .await
            .expect("a write creates the WAL");
        assert_eq!(mode(&sub), 0o700, "directory");
        for suffix in ["", "-wal", "-shm"] {
            let f = sub.join(format!("db.sqlite{suffix}"));
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
        db.close().await;
    }

    #[tokio::test]
    async fn errors_name_the_database_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory where the file should be, and a file where a directory
        // should be: neither can be opened, whoever runs the test.
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"").expect("file");
        for path in [dir.path().to_path_buf(), file.join("db.sqlite")] {
            let err = Db::connect(&Target::Sqlite {
                path: path.clone(),
                write_ahead_log: true,
            })
            .await
            .expect_err("cannot be opened");
            let msg = err.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "the error does not name {}: {msg}",
                path.display()
            );
        }
    }
}
