//! One server process per SQLite file.
//!
//! SQLite itself would let two `clawscale serve` processes open one file,
//! and each would then serve its own in-memory World that never learns of
//! the other's writes (replicas need PostgreSQL, see docs/replicas.md).
//! So `serve` takes an exclusive `flock` on `<database>.lock` beside the
//! file and writes its PID there; a second process finds the lock held and
//! refuses to start, naming that PID. The kernel drops the lock when the
//! holder exits, however it exits (a `kill -9` included), so a stale lock
//! file never blocks a restart. Tools that only read or back up the file
//! (`clawscale backup`) do not take it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{Error, Result};

/// Held while the server runs; dropping it releases the lock.
#[derive(Debug)]
pub struct ProcessLock {
    _file: File,
    path: PathBuf,
}

impl ProcessLock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Where the lock for the database at `db` lives.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock for the SQLite database at `db`, or says which process
/// holds it.
pub fn acquire(db: &Path) -> Result<ProcessLock> {
    let path = lock_path(db);
    let fail = |e: std::io::Error| {
        Error::Open(format!("cannot open the lock file {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(fail)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "another process".to_string(),
                pid => format!("process {pid}"),
            };
            return Err(Error::Open(format!(
                "database {} is already in use by {holder} (lock file {}); \
                 only one clawscale server may use a SQLite database, \
                 use PostgreSQL to run replicas",
                db.display(),
                path.display()
            )));
        }
        Err(TryLockError::Error(e)) => return Err(fail(e)),
    }
    let pid = std::process::id();
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{pid}"))
        .and_then(|()| file.sync_all())
        .map_err(fail)?;
    Ok(ProcessLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_pid_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db.sqlite");
        let first = acquire(&db).expect("first lock");
        // flock locks belong to the open file, so a second open in this
        // process conflicts just as another process would.
        let err = acquire(&db).expect_err("second lock").to_string();
        let pid = std::process::id();
        assert!(
            err.contains(&format!("is already in use by process {pid}")),
            "{err}"
        );
        assert!(err.contains(&db.display().to_string()), "{err}");
        drop(first);
        acquire(&db).expect("free again once released");
    }
}
