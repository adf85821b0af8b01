use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sqlx::Connection;

use super::{
    Error, KeyFile, KeyRole, backup_keys, backup_sqlite, check_postgres, known_version,
    restore_keys, restore_sqlite,
};
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

fn refused<T: std::fmt::Debug>(r: super::Result<T>) -> String {
    match r {
        Err(Error::Refused(msg)) => msg,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The shape both real key files have (`privkey:` and 64 hex digits).
fn valid(text: &str) -> bool {
    text.trim()
        .strip_prefix("privkey:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn key_text(byte: u8) -> String {
    format!("privkey:{}", hex::encode([byte; 32]))
}

/// The key files of a server whose data directory is `dir`.
fn key_files(dir: &Path) -> Vec<KeyFile> {
    vec![
        KeyFile {
            role: KeyRole::Noise,
            path: dir.join("noise_private.key"),
            valid,
        },
        KeyFile {
            role: KeyRole::Derp,
            path: dir.join("derp_server_private.key"),
            valid,
        },
    ]
}

/// Writes distinct keys into the key files of `dir` (0600), as a server
/// does; returns their texts.
fn make_keys(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).expect("dir");
    key_files(dir)
        .iter()
        .zip([0x11u8, 0x22])
        .map(|(k, b)| {
            let text = key_text(b) + "\n";
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&k.path)
                .expect("key file");
            std::io::Write::write_all(&mut f, text.as_bytes()).expect("write key");
            text
        })
        .collect()
}

/// Tables of the SQLite file at `path`.
async fn tables(path: &Path) -> Vec<String> {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts)
        .await
        .expect("open");
    let names = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(&mut conn)
        .await
        .expect("tables");
    conn.close().await.expect("close");
    names
}

/// Runs `sql` on the SQLite file at `path` (to make odd backups).
async fn exec(path: &Path, sql: &str) {
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts)
        .await
        .expect("open");
    sqlx::query(sql).execute(&mut conn).await.expect("exec");
    conn.close().await.expect("close");
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The copy taken while users are being created holds exactly the users
/// acknowledged up to one moment: all acknowledged before it started, and
/// never a later one without every earlier one. Restored and opened the way
/// `serve` opens it, it has the same rows, and the key files come back
/// beside it, byte for byte and private, while the database keeps no trace
/// of them.
#[tokio::test]
async fn backup_during_writes_is_consistent_and_restores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live/db.sqlite");
    let db = open(&live).await;
    let texts = make_keys(&dir.path().join("live"));
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
    let backed = backup_sqlite(&live, &copy, &key_files(&dir.path().join("live")))
        .await
        .expect("backup");
    let during = acked.load(Ordering::SeqCst);
    // Writes go on after the copy; they must not reach it.
    while acked.load(Ordering::SeqCst) < during + 10 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.expect("writer");
    db.close().await;

    assert_eq!(backed.schema_version, Some(known_version(false)));
    assert_eq!(backed.keys, [KeyRole::Noise, KeyRole::Derp]);
    assert!(backed.missing.is_empty());
    assert_eq!(mode(&copy), 0o600, "the backup is private");
    let data = dir.path().join("restored");
    let restored = data.join("db.sqlite");
    let report = restore_sqlite(&copy, &restored, &key_files(&data))
        .await
        .expect("restore");
    assert_eq!(report.schema_version, Some(known_version(false)));
    assert!(report.keys_in_backup);
    let written: Vec<_> = report.written.iter().map(|(r, _)| *r).collect();
    assert_eq!(written, [KeyRole::Derp, KeyRole::Noise], "name order");
    assert_eq!(mode(&restored), 0o600, "the restored database is private");
    assert_eq!(mode(&data), 0o700);
    for (k, text) in key_files(&data).iter().zip(&texts) {
        assert_eq!(&std::fs::read_to_string(&k.path).expect("key"), text);
        assert_eq!(mode(&k.path), 0o600, "{} is private", k.path.display());
    }
    assert!(!tables(&restored).await.iter().any(|t| t.contains("backup")));
    let bytes = std::fs::read(&restored).expect("read");
    for text in &texts {
        assert!(!contains(&bytes, text.trim()), "a key left in the database");
    }
    assert!(contains(
        &std::fs::read(&copy).expect("read"),
        texts[0].trim()
    ));
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
    let texts = make_keys(dir.path());
    let keys = key_files(dir.path());
    let taken = dir.path().join("taken");
    std::fs::write(&taken, b"keep me").expect("write");
    let msg = refused(backup_sqlite(&live, &taken, &keys).await);
    assert!(msg.contains("refusing to overwrite"), "{msg}");
    assert_eq!(std::fs::read(&taken).expect("read"), b"keep me");
    let msg = refused(backup_keys(&taken, &keys).await);
    assert!(msg.contains("refusing to overwrite"), "{msg}");
    assert_eq!(std::fs::read(&taken).expect("read"), b"keep me");

    let copy = dir.path().join("copy");
    backup_sqlite(&live, &copy, &keys).await.expect("backup");
    // Restoring over the live database (or beside its WAL) is refused.
    let msg = refused(restore_sqlite(&copy, &live, &keys).await);
    assert!(msg.contains("exists"), "{msg}");
    let wal_only = dir.path().join("gone.sqlite");
    std::fs::write(dir.path().join("gone.sqlite-wal"), b"").expect("wal");
    refused(restore_sqlite(&copy, &wal_only, &keys).await);
    assert!(!wal_only.exists());
    // A missing source database is not created by a backup.
    let missing = dir.path().join("missing.sqlite");
    refused(backup_sqlite(&missing, &dir.path().join("copy2"), &keys).await);
    assert!(!missing.exists());

    // A data directory with another key: refused, nothing written, the key
    // kept and not named in the message.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).expect("dir");
    let other_keys = key_files(&other);
    let foreign = key_text(0x33);
    std::fs::write(&other_keys[1].path, &foreign).expect("foreign key");
    let msg = refused(restore_sqlite(&copy, &other.join("db.sqlite"), &other_keys).await);
    assert!(msg.contains("another key"), "{msg}");
    for t in texts.iter().map(|t| t.trim()).chain([foreign.as_str()]) {
        assert!(!msg.contains(&t[8..]), "key material in {msg}");
    }
    assert!(!other.join("db.sqlite").exists());
    assert!(!other_keys[0].path.exists());
    assert_eq!(
        std::fs::read_to_string(&other_keys[1].path).expect("read"),
        foreign
    );
    // The same key (whitespace aside) already in place is fine.
    std::fs::write(&other_keys[1].path, texts[1].trim()).expect("same key");
    let report = restore_sqlite(&copy, &other.join("db.sqlite"), &other_keys)
        .await
        .expect("restore beside the same key");
    assert_eq!(report.present, [KeyRole::Derp]);
    assert_eq!(report.written.len(), 1);
    assert_eq!(report.written[0].0, KeyRole::Noise);
}

/// A key file that cannot be written leaves neither it nor the database:
/// a database restored without its keys would come up with new ones.
#[tokio::test]
async fn a_failed_key_write_undoes_the_restore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("db.sqlite");
    open(&live).await.close().await;
    make_keys(dir.path());
    let copy = dir.path().join("copy");
    backup_sqlite(&live, &copy, &key_files(dir.path()))
        .await
        .expect("backup");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("dir");
    // The Noise key's directory is a dangling symlink: there is no file
    // (so the plan writes one), but its directory cannot be made. The keys
    // are written in name order, so the DERP key is written before.
    std::os::unix::fs::symlink(dir.path().join("nowhere/at/all"), data.join("link"))
        .expect("symlink");
    let mut keys = key_files(&data);
    keys[0].path = data.join("link/noise_private.key");
    let err = restore_sqlite(&copy, &data.join("db.sqlite"), &keys).await;
    assert!(matches!(err, Err(Error::Io { .. })), "{err:?}");
    assert!(!data.join("db.sqlite").exists());
    assert!(
        !keys[1].path.exists(),
        "the DERP key written first is removed"
    );
}

/// A backup made before backups held keys (the database alone) restores,
/// and says that it held none.
#[tokio::test]
async fn an_old_backup_without_keys_still_restores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("db.sqlite");
    let db = open(&live).await;
    db.create_user("old", "", "", chrono::Utc::now())
        .await
        .expect("user");
    db.close().await;
    let old = dir.path().join("old.backup");
    exec(&live, &format!("VACUUM INTO '{}'", old.display())).await;
    let data = dir.path().join("data");
    let keys = key_files(&data);
    let report = restore_sqlite(&old, &data.join("db.sqlite"), &keys)
        .await
        .expect("restore");
    assert!(!report.keys_in_backup);
    assert!(report.written.is_empty());
    assert!(!keys[0].path.exists() && !keys[1].path.exists());
    let db = open(&data.join("db.sqlite")).await;
    assert_eq!(db.list_users().await.expect("users").len(), 1);
    db.close().await;
}

/// With PostgreSQL the backup holds the key files only: restored by
/// `restore_keys`, refused as a SQLite database's backup, and the other way
/// round; a key-only backup with no key to hold is not made.
#[tokio::test]
async fn key_only_backups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let texts = make_keys(&dir.path().join("live"));
    let keys_only = dir.path().join("keys.backup");
    let backed = backup_keys(&keys_only, &key_files(&dir.path().join("live")))
        .await
        .expect("backup");
    assert_eq!(backed.schema_version, None);
    assert_eq!(backed.keys, [KeyRole::Noise, KeyRole::Derp]);
    assert_eq!(mode(&keys_only), 0o600);

    let data = dir.path().join("data");
    let msg = refused(restore_sqlite(&keys_only, &data.join("db.sqlite"), &key_files(&data)).await);
    assert!(msg.contains("key files only"), "{msg}");
    assert!(!data.exists(), "nothing restored");
    // A server without the DERP relay takes the Noise key only.
    let noise_only = &key_files(&data)[..1];
    let report = restore_keys(&keys_only, noise_only).await.expect("restore");
    assert_eq!(report.schema_version, None);
    assert_eq!(report.unused, [KeyRole::Derp]);
    assert_eq!(
        std::fs::read_to_string(&noise_only[0].path).expect("key"),
        texts[0]
    );
    assert_eq!(mode(&noise_only[0].path), 0o600);
    assert!(!key_files(&data)[1].path.exists());

    let live = dir.path().join("db.sqlite");
    open(&live).await.close().await;
    let full = dir.path().join("full.backup");
    backup_sqlite(&live, &full, &key_files(&dir.path().join("live")))
        .await
        .expect("backup");
    let msg = refused(restore_keys(&full, &key_files(&dir.path().join("x"))).await);
    assert!(msg.contains("SQLite database"), "{msg}");

    let empty = dir.path().join("empty");
    let none = dir.path().join("none.backup");
    let msg = refused(backup_keys(&none, &key_files(&empty)).await);
    assert!(msg.contains("no key file"), "{msg}");
    assert!(!none.exists());
    // A missing key is not in the backup, and is reported.
    std::fs::remove_file(dir.path().join("live/derp_server_private.key")).expect("rm");
    let partial = backup_sqlite(
        &live,
        &dir.path().join("p"),
        &key_files(&dir.path().join("live")),
    )
    .await
    .expect("backup");
    assert_eq!(partial.keys, [KeyRole::Noise]);
    assert_eq!(partial.missing, [KeyRole::Derp]);
}

/// A key the server could not load is not backed up; a backup holding a
/// key file this binary does not know (a newer release's), or a broken
/// key, is not restored.
#[tokio::test]
async fn bad_or_unknown_keys_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("db.sqlite");
    open(&live).await.close().await;
    make_keys(dir.path());
    let keys = key_files(dir.path());
    let good = dir.path().join("good.backup");
    backup_sqlite(&live, &good, &keys).await.expect("backup");

    std::fs::write(&keys[0].path, "privkey:zz").expect("garbage");
    let copy = dir.path().join("copy");
    let msg = refused(backup_sqlite(&live, &copy, &keys).await);
    assert!(msg.contains("not a valid noise_private.key"), "{msg}");
    assert!(!copy.exists());

    // A copy of the good backup, changed by `sql`.
    let altered = async |name: &str, sql: &str| {
        let path = dir.path().join(name);
        std::fs::copy(&good, &path).expect("copy");
        exec(&path, sql).await;
        path
    };
    let newer = altered(
        "newer.backup",
        "INSERT INTO clawscale_backup_keys (name, content) VALUES ('tls.key', 'x')",
    )
    .await;
    let data = dir.path().join("data");
    let msg = refused(restore_sqlite(&newer, &data.join("db.sqlite"), &key_files(&data)).await);
    assert!(
        msg.contains("does not know") && msg.contains("tls.key"),
        "{msg}"
    );

    let broken = altered(
        "broken.backup",
        "UPDATE clawscale_backup_keys SET content = 'privkey:00' WHERE name = 'noise_private.key'",
    )
    .await;
    let msg = refused(restore_sqlite(&broken, &data.join("db.sqlite"), &key_files(&data)).await);
    assert!(msg.contains("not a valid key"), "{msg}");
    assert!(!data.join("db.sqlite").exists());

    // A backup file is not a server's database to back up.
    let msg = refused(backup_sqlite(&good, &dir.path().join("again"), &keys[1..]).await);
    assert!(msg.contains("is a backup file"), "{msg}");
}

#[tokio::test]
async fn foreign_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("data/db.sqlite");
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![0x5a; 8192]).expect("junk");
    let keys = key_files(dir.path());
    let msg = refused(restore_sqlite(&junk, &dest, &keys).await);
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
    let msg = refused(restore_sqlite(&other, &dest, &keys).await);
    let msg2 = refused(restore_keys(&other, &keys).await);
    assert!(msg2.contains("not a clawscale database"), "{msg2}");
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
    let keys = key_files(dir.path());
    let msg = refused(backup_sqlite(&live, &dir.path().join("copy"), &keys).await);
    assert!(msg.contains("9999") && msg.contains("newer"), "{msg}");
    let msg = refused(restore_sqlite(&live, &dir.path().join("data/db.sqlite"), &keys).await);
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
