//! Savepoints in a batch, on both engines: what a job or a write undoes is
//! its own and nothing else, though a write's savepoint stays open until
//! its job ends and every job and write reuses one name.

use chrono::Utc;

use super::{commit, job_end, job_start, scope};
use crate::db::testing::{PgTemp, sqlite_one_connection};
use crate::db::{Db, Error};

async fn user(db: &Db, name: &str) -> crate::db::Result<()> {
    db.create_user(name, "", "", Utc::now()).await.map(|_| ())
}

async fn names(db: &Db) -> Vec<String> {
    let users = db.list_users().await.expect("list users");
    users.into_iter().map(|u| u.name).collect()
}

async fn each_job_and_write_undoes_only_itself(db: &Db) {
    user(db, "before").await.expect("outside a batch");
    let committed = scope(async {
        // The batch's first write is refused: only it is undone, and the
        // job goes on (BEGIN and both savepoints went in one round trip).
        job_start();
        let refused = user(db, "before").await;
        assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
        user(db, "a").await.expect("after a refused write");
        job_end(true).await.expect("job a");
        // Two writes, kept.
        job_start();
        user(db, "b1").await.expect("b1");
        user(db, "b2").await.expect("b2");
        job_end(true).await.expect("job b");
        // Two writes, then the job fails: both undone, the jobs before kept.
        job_start();
        user(db, "gone1").await.expect("gone1");
        user(db, "gone2").await.expect("gone2");
        job_end(false).await.expect("job undone");
        // A refused write between two that are kept.
        job_start();
        user(db, "c1").await.expect("c1");
        assert!(user(db, "b1").await.is_err(), "b1 exists in this batch");
        user(db, "c2").await.expect("c2");
        job_end(true).await.expect("job c");
        // Many jobs in one batch, every third failing: each is undone
        // alone.
        for i in 0..300 {
            job_start();
            user(db, &format!("m{i}")).await.expect("many");
            job_end(i % 3 != 0).await.expect("many jobs");
        }
        // A job that writes nothing.
        job_start();
        job_end(true).await.expect("empty job");
        commit().await
    })
    .await;
    committed.expect("commit");
    let mut expected: Vec<String> = ["before", "a", "b1", "b2", "c1", "c2"]
        .map(String::from)
        .to_vec();
    expected.extend((0..300).filter(|i| i % 3 != 0).map(|i| format!("m{i}")));
    assert_eq!(names(db).await, expected);
    // The connection went back to the pool with no transaction open.
    user(db, "after").await.expect("a write after the batch");
    assert_eq!(names(db).await.last().map(String::as_str), Some("after"));
}

#[tokio::test]
async fn sqlite_each_job_and_write_undoes_only_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sqlite_one_connection(&dir.path().join("db.sqlite")).await;
    each_job_and_write_undoes_only_itself(&db).await;
}

#[tokio::test]
async fn postgres_each_job_and_write_undoes_only_itself() {
    let Some(pg) = PgTemp::create("batch_savepoints").await else {
        return;
    };
    each_job_and_write_undoes_only_itself(&pg.db().await).await;
}

/// A batch whose first write cannot even begin (another process holds
/// SQLite's write lock until the busy timeout runs out) fails that write
/// alone: the next write in the batch begins a transaction afresh, and
/// only it is committed.
#[tokio::test]
async fn a_first_write_that_cannot_begin_fails_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db.sqlite");
    let db = sqlite_one_connection(&path).await;
    let other = crate::db::testing::sqlite_observer(&path).await;
    let mut lock = other.acquire().await.expect("observer connection");
    sqlx::Executor::execute(&mut *lock, "BEGIN IMMEDIATE")
        .await
        .expect("hold the write lock");
    let committed = scope(async {
        job_start();
        let busy = user(&db, "blocked").await;
        assert!(busy.is_err(), "BEGIN under another's write lock: {busy:?}");
        job_end(false)
            .await
            .expect("a failed BEGIN leaves the batch usable");
        sqlx::Executor::execute(&mut *lock, "ROLLBACK")
            .await
            .expect("release the write lock");
        job_start();
        user(&db, "next")
            .await
            .expect("the next write begins afresh");
        job_end(true).await.expect("job");
        commit().await
    })
    .await;
    committed.expect("commit");
    assert_eq!(names(&db).await, ["next"]);
}
