use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sqlx::Connection;

use super::{Error, backup_sqlite, check_postgres, known_version, restore_sqlite};
use crate::db::testing::PgTemp;
use crate::db::{Db, Target};

async fn open(path: &Path) -> Db {
    Db::connect(&Target::Sqlite {
        path: path.to_path_buf(),
        write_ahead_log: true,
    })
    .await
    .expect("open")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

fn refused(r: super::Result<i64>) -> String {
    match r {
        Err(Error::Refused(msg)) => msg,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The copy taken while users are being created holds exactly the users
/// acknowledged up to one moment: all acknowledged before it started, and
/// never a later one without every earlier one. Restored and opened the way
/// `serve` opens it, it has the same rows.
#[tokio::test]
async fn backup_during_writes_is_consistent_and_restores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live/db.sqlite");
    let db = open(&live).await;
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (db, acked, stop) = (db.clone(), acked.clone(), stop.clone());
        async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                db.create_user(&format!("u{i:05}"), "", "", chrono::Utc::now())
                    .await
                    .expect("create user");
                i += 1;
                acked.store(i, Ordering::SeqCst);
            }
        }
    });
    while acked.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let before = acked.load(Ordering::SeqCst);
    let copy = dir.path().join("copy.sqlite");
    let version = backup_sqlite(&live, &copy).await.expect("backup");
    let during = acked.load(Ordering::SeqCst);
    // Writes go on after the copy; they must not reach it.
    while acked.load(Ordering::SeqCst) < during + 10 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.expect("writer");
    db.close().await;

    assert_eq!(version, known_version(false));
    assert_eq!(mode(&copy), 0o600, "the backup is private");
    let restored = dir.path().join("restored/db.sqlite");
    let version = restore_sqlite(&copy, &restored).await.expect("restore");
    assert_eq!(version, known_version(false));
    assert_eq!(mode(&restored), 0o600, "the restored database is private");
    let db = open(&restored).await;
    let names: Vec<String> = db
        .list_users()
        .await
        .expect("users")
        .into_iter()
        .map(|u| u.name)
        .collect();
    db.close().await;
    let want: Vec<String> = (0..names.len()).map(|i| format!("u{i:05}")).collect();
    assert_eq!(names, want, "the copy is a prefix of the commits");
    assert!(
        names.len() >= before && names.len() <= during + 1,
        "{} users restored; {before} acknowledged before the backup, {during} after",
        names.len()
    );
}

#[tokio::test]
async fn nothing_is_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("db.sqlite");
    open(&live).await.close().await;
    let taken = dir.path().join("taken");
    std::fs::write(&taken, b"keep me").expect("write");
    let msg = refused(backup_sqlite(&live, &taken).await);
    assert!(msg.contains("refusing to overwrite"), "{msg}");
    assert_eq!(std::fs::read(&taken).expect("read"), b"keep me");

    let copy = dir.path().join("copy");
    backup_sqlite(&live, &copy).await.expect("backup");
    // Restoring over the live database (or beside its WAL) is refused.
    let msg = refused(restore_sqlite(&copy, &live).await);
    assert!(msg.contains("exists"), "{msg}");
    let wal_only = dir.path().join("gone.sqlite");
    std::fs::write(dir.path().join("gone.sqlite-wal"), b"").expect("wal");
    refused(restore_sqlite(&copy, &wal_only).await);
    assert!(!wal_only.exists());
    // A missing source database is not created by a backup.
    let missing = dir.path().join("missing.sqlite");
    refused(backup_sqlite(&missing, &dir.path().join("copy2")).await);
    assert!(!missing.exists());
}

#[tokio::test]
async fn foreign_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("data/db.sqlite");
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![0x5a; 8192]).expect("junk");
    let msg = refused(restore_sqlite(&junk, &dest).await);
    assert!(msg.contains("not a clawscale database"), "{msg}");

    let other = dir.path().join("other.sqlite");
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&other)
        .create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts)
        .await
        .expect("other");
    sqlx::query("CREATE TABLE t (x)")
        .execute(&mut conn)
        .await
        .expect("table");
    conn.close().await.expect("close");
    let msg = refused(restore_sqlite(&other, &dest).await);
    assert!(msg.contains("not a clawscale database"), "{msg}");
    assert!(!dest.exists(), "nothing restored");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("db.sqlite");
    let db = open(&live).await;
    let Db::Sqlite(pool) = &db else {
        unreachable!()
    };
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, x'00', 0)",
    )
    .execute(pool)
    .await
    .expect("future migration");
    db.close().await;
    let msg = refused(backup_sqlite(&live, &dir.path().join("copy")).await);
    assert!(msg.contains("9999") && msg.contains("newer"), "{msg}");
    let msg = refused(restore_sqlite(&live, &dir.path().join("data/db.sqlite")).await);
    assert!(msg.contains("9999") && msg.contains("newer"), "{msg}");
}

#[tokio::test]
async fn postgres_schema_is_checked() {
    let Some(pg) = PgTemp::create("backup").await else {
        return;
    };
    let msg = refused(check_postgres(&pg.url).await);
    assert!(msg.contains("not a clawscale database"), "{msg}");
    pg.db().await.close().await;
    assert_eq!(
        check_postgres(&pg.url).await.expect("migrated"),
        known_version(true)
    );
}
