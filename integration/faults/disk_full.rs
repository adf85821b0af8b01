//! SQLite on a filesystem that runs out of space while writes go on.
//!
//! Regression for issue 11: `users create` and key creation printed success
//! while the disk was full, the rows were gone after a restart (ids handed
//! out again meanwhile), the server kept a write transaction open after
//! space returned ("database is locked" for other connections), and
//! `/healthz` said ok throughout.

use std::path::Path;
use std::time::Duration;

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use super::{
    Acked, Failed, assert_listing_is, assert_reported, listing, wait_for_health, write_each_kind,
};
use crate::harness::{Db, Server, Tmpfs};

/// Rounds of writes (one of each kind) while the disk is full.
const FULL_ROUNDS: usize = 10;

#[test]
fn sqlite_on_a_full_disk_loses_no_acknowledged_write() {
    let fs = Tmpfs::mount(4);
    let db_path = fs.path().join("db.sqlite");
    let mut server = Server::start_local(Db::Sqlite, |cfg| {
        cfg.set("database.sqlite.path", db_path.to_string_lossy());
    });
    server.create_user("base");
    let (mut acked, mut failed) = (Acked::default(), Failed::default());
    write_each_kind(&server, "before", &mut acked, &mut failed);
    // Users to delete while the disk is full: a delete is a transaction of
    // several statements, unlike the single-row inserts.
    for i in 0..FULL_ROUNDS {
        let name = format!("doomed{i}");
        server.create_user(&name);
        acked.users.insert(name);
    }
    assert_eq!(failed.total(), 0, "writes failed before the disk filled");

    let filled = fs.fill();
    eprintln!("filled the tmpfs with {filled} bytes");
    let mut failed_deletes = 0;
    for i in 0..FULL_ROUNDS {
        write_each_kind(&server, &format!("full{i}"), &mut acked, &mut failed);
        let doomed = format!("doomed{i}");
        let out = server.cli(&["users", "delete", "--name", &doomed, "--force"]);
        if out.success() {
            acked.users.remove(&doomed);
        } else {
            assert_reported(&out);
            failed_deletes += 1;
        }
    }
    eprintln!("while full: acknowledged {acked:?}, failed {failed:?}, {failed_deletes} deletes");
    assert!(
        !failed.users.is_empty() && failed.keys > 0 && failed.api_keys > 0 && failed_deletes > 0,
        "the full disk never refused some kind of write: {failed:?}, {failed_deletes} deletes"
    );
    wait_for_health(&server, 503, Duration::from_secs(10));
    // What the server lists while the disk is full is what it had
    // acknowledged: nothing failed shows up, nothing acknowledged is missing.
    assert_listing_is(&listing(&server), &acked);

    fs.free();
    wait_for_health(&server, 200, Duration::from_secs(30));
    assert_nobody_holds_the_write_lock(&db_path);
    let before_retry = failed.total();
    for i in 0..3 {
        write_each_kind(&server, &format!("after{i}"), &mut acked, &mut failed);
    }
    assert_eq!(
        failed.total(),
        before_retry,
        "writes still fail after space returned"
    );
    assert_nobody_holds_the_write_lock(&db_path);

    let before = listing(&server);
    assert_listing_is(&before, &acked);
    server.restart();
    assert_eq!(listing(&server), before, "a restart changed what is listed");
    drop(server); // before the mount goes
}

/// Another connection (as another process would) can take SQLite's write
/// lock at once: the server left no transaction open.
#[track_caller]
fn assert_nobody_holds_the_write_lock(path: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result: Result<(), sqlx::Error> = rt.block_on(async {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(Duration::ZERO);
        let mut conn = SqliteConnection::connect_with(&opts).await?;
        sqlx::raw_sql("BEGIN IMMEDIATE; ROLLBACK;")
            .execute(&mut conn)
            .await?;
        conn.close().await
    });
    if let Err(e) = result {
        panic!("another connection cannot write to {}: {e}", path.display());
    }
}
