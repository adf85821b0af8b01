//! One write transaction for a whole batch of the state writer's jobs.
//!
//! Committing every job on its own costs one fsync each; the writer instead
//! runs every job queued when it wakes inside [`scope`], where [`write_tx!`]
//! does not BEGIN/COMMIT but opens a savepoint on the batch's transaction:
//!
//! ```text
//! BEGIN; SAVEPOINT job; SAVEPOINT op        -- the batch's first write
//!   [RELEASE job;] SAVEPOINT job; SAVEPOINT op …  -- a job's first write
//!     SAVEPOINT op …                        -- its later writes (write_tx!)
//!     … ROLLBACK TO op; RELEASE op          -- a refused or failed write
//!   ROLLBACK TO job; RELEASE job            -- the job failed
//! COMMIT                     -- [`commit`], before any caller hears back
//! ```
//!
//! A job that fails is rolled back to its own savepoint and the others stay
//! committed. A write that succeeded keeps its savepoint until its job's
//! `RELEASE job`, which releases it too (a reused name refers to the newest
//! savepoint, so `ROLLBACK TO op` undoes only the latest write). Each line
//! above is one round trip to the database: statements with no result to
//! wait for in between go together. A job that succeeded has nothing left
//! to wait for, so its `RELEASE job` goes with the next job's first write,
//! or is left to COMMIT (which ends every savepoint still open). A job
//! writing once thus costs two round trips instead of five, and the one
//! writer waits out every round trip in turn. Jobs are still released one
//! by one rather than left stacked until COMMIT: SQLite's sub-journal keeps
//! growing while any savepoint is open, and a 10,000-node enrollment wrote
//! 2.6 times the bytes that way.
//!
//! Only a failure the transaction itself cannot survive (a
//! ROLLBACK TO that fails, e.g. SQLite rolled everything back on an I/O
//! error, or a failed COMMIT) fails the batch as a whole; the writer then
//! fails every job in it, so nothing is acknowledged that is not durable.
//!
//! The batch lives in a task-local: `Db` methods take `&self` and are also
//! called outside the writer, where each write stays its own transaction.

use std::cell::RefCell;
use std::future::Future;

use sqlx::{Pool, Postgres, Sqlite};

use super::transaction::{Engine, WriteTx};
use super::{Error, Result};

tokio::task_local! {
    static BATCH: RefCell<Slot>;
}

/// The batch's open transaction, on whichever engine the database uses.
pub(super) enum Open {
    Sqlite(WriteTx<Sqlite>),
    Postgres(WriteTx<Postgres>),
}

impl Open {
    async fn exec(&mut self, sql: &'static str) -> Result<()> {
        match self {
            Open::Sqlite(tx) => tx.exec(sql).await,
            Open::Postgres(tx) => tx.exec(sql).await,
        }
    }

    /// Ends the transaction: commits if `ok`, otherwise rolls back. A
    /// connection that saw a failure is closed rather than pooled.
    async fn finish(self, ok: bool, doubtful: bool) -> Result<()> {
        match self {
            Open::Sqlite(tx) => tx.end(ok, doubtful).await,
            Open::Postgres(tx) => tx.end(ok, doubtful).await,
        }
    }
}

/// Where the `job` savepoint stands.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum JobSavepoint {
    /// None open: the next write opens the current job's.
    #[default]
    Closed,
    /// The current job's is open.
    Open,
    /// A finished job's, kept since that job succeeded: released with the
    /// next job's first write, or by COMMIT.
    Kept,
}

#[derive(Default)]
struct Slot {
    /// Out of the slot while a `write_tx!` body runs on it.
    tx: Option<Open>,
    job: JobSavepoint,
    /// A statement failed in this batch: the connection is closed at the
    /// end instead of going back to the pool.
    doubtful: bool,
    /// Why the transaction cannot go on; every later write fails with it.
    broken: Option<String>,
}

/// Engines that can hold a batch.
pub(super) trait Batched: Engine + Sized {
    /// `BEGIN`, then the first job's savepoint and its first write's.
    const BEGIN_JOB_OP: &'static str;
    fn wrap(tx: WriteTx<Self>) -> Open;
    fn unwrap(open: Open) -> WriteTx<Self>;
}

impl Batched for Sqlite {
    const BEGIN_JOB_OP: &'static str = "BEGIN IMMEDIATE; SAVEPOINT job; SAVEPOINT op";
    fn wrap(tx: WriteTx<Self>) -> Open {
        Open::Sqlite(tx)
    }
    fn unwrap(open: Open) -> WriteTx<Self> {
        match open {
            Open::Sqlite(tx) => tx,
            Open::Postgres(_) => unreachable!("one database per batch"),
        }
    }
}

impl Batched for Postgres {
    const BEGIN_JOB_OP: &'static str = "BEGIN; SAVEPOINT job; SAVEPOINT op";
    fn wrap(tx: WriteTx<Self>) -> Open {
        Open::Postgres(tx)
    }
    fn unwrap(open: Open) -> WriteTx<Self> {
        match open {
            Open::Postgres(tx) => tx,
            Open::Sqlite(_) => unreachable!("one database per batch"),
        }
    }
}

/// Runs `f` (the writer's batch) with writes going to one transaction.
pub async fn scope<F: Future>(f: F) -> F::Output {
    BATCH.scope(RefCell::new(Slot::default()), f).await
}

fn with<T>(f: impl FnOnce(&mut Slot) -> T) -> Option<T> {
    BATCH.try_with(|s| f(&mut s.borrow_mut())).ok()
}

fn broken() -> Error {
    let why = with(|s| s.broken.clone()).flatten().unwrap_or_default();
    Error::Aborted(why)
}

/// Inside a batch: the batch's transaction (begun if this is its first
/// write) with a savepoint for this write. Outside one: `None`.
pub(super) async fn enter<DB: Batched>(pool: &Pool<DB>) -> Result<Option<WriteTx<DB>>> {
    let Some((is_broken, held, job)) = with(|s| (s.broken.is_some(), s.tx.take(), s.job)) else {
        return Ok(None);
    };
    if is_broken {
        if let Some(tx) = held {
            with(|s| s.tx = Some(tx));
        }
        return Err(broken());
    }
    let mut tx = match held {
        Some(open) => DB::unwrap(open),
        // The batch's first write: if this fails nothing of the batch is
        // lost, so it fails this write alone and the next one begins afresh.
        None => {
            let tx = WriteTx::begin_with(pool, DB::BEGIN_JOB_OP).await?;
            with(|s| s.job = JobSavepoint::Open);
            return Ok(Some(tx));
        }
    };
    let sql = match job {
        JobSavepoint::Open => "SAVEPOINT op",
        JobSavepoint::Closed => "SAVEPOINT job; SAVEPOINT op",
        JobSavepoint::Kept => "RELEASE job; SAVEPOINT job; SAVEPOINT op",
    };
    if let Err(e) = tx.exec(sql).await {
        with(|s| {
            s.broken = Some(e.to_string());
            s.doubtful = true;
            s.tx = Some(DB::wrap(tx));
        });
        return Err(e);
    }
    with(|s| s.job = JobSavepoint::Open);
    Ok(Some(tx))
}

/// Ends a write begun by [`enter`]: releases its savepoint, or rolls back
/// to it on failure, and hands the transaction back to the batch.
pub(super) async fn leave<DB: Batched, T>(mut tx: WriteTx<DB>, result: Result<T>) -> Result<T> {
    let end = match &result {
        // Kept until its job's RELEASE (or ROLLBACK TO) ends it too.
        Ok(_) => Ok(()),
        Err(_) => tx.exec("ROLLBACK TO op; RELEASE op").await,
    };
    let refusal = matches!(
        result,
        Err(Error::NotFound(_) | Error::Conflict(_) | Error::KeyAlreadyUsed)
    );
    with(|s| {
        if result.is_err() && !refusal {
            s.doubtful = true;
        }
        if let Err(e) = &end {
            s.doubtful = true;
            s.broken = Some(e.to_string());
        }
        s.tx = Some(DB::wrap(tx));
    });
    match end {
        Ok(()) => result,
        // The write may have been applied and cannot be undone alone.
        Err(e) => Err(result.err().unwrap_or(e)),
    }
}

/// Marks the start of a job: its first write takes a savepoint.
pub fn job_start() {
    with(|s| {
        if s.job == JobSavepoint::Open {
            s.job = JobSavepoint::Closed;
        }
    });
}

/// Ends a job: keeps its writes if `ok`, otherwise undoes them. Fails when
/// the batch's transaction cannot go on.
pub async fn job_end(ok: bool) -> Result<()> {
    let Some((tx, job)) = with(|s| (s.tx.take(), s.job)) else {
        return Ok(());
    };
    let open = job == JobSavepoint::Open;
    if open {
        // Released (which releases its writes' savepoints with it) in the
        // next round trip there is anyway, or rolled back below.
        with(|s| {
            s.job = if ok {
                JobSavepoint::Kept
            } else {
                JobSavepoint::Closed
            }
        });
    }
    let Some(mut tx) = tx else {
        return if with(|s| s.broken.is_some()) == Some(true) {
            Err(broken())
        } else {
            Ok(())
        };
    };
    let end = if open && !ok {
        tx.exec("ROLLBACK TO job; RELEASE job").await
    } else {
        Ok(())
    };
    with(|s| {
        if let Err(e) = &end {
            s.doubtful = true;
            s.broken = Some(e.to_string());
        }
        s.tx = Some(tx);
    });
    match with(|s| s.broken.is_some()) {
        Some(true) => Err(broken()),
        _ => Ok(()),
    }
}

/// Commits the batch (if it wrote anything). On `Err` nothing of it is
/// durable and every job in it must be reported failed.
pub async fn commit() -> Result<()> {
    let Some((tx, broken_why, doubtful)) = with(|s| {
        (
            s.tx.take(),
            s.broken.take(),
            std::mem::take(&mut s.doubtful),
        )
    }) else {
        return Ok(());
    };
    let Some(tx) = tx else {
        return match broken_why {
            Some(why) => Err(Error::Aborted(why)),
            None => Ok(()),
        };
    };
    match broken_why {
        Some(why) => {
            let _ = tx.finish(false, true).await;
            Err(Error::Aborted(why))
        }
        None => tx.finish(true, doubtful).await,
    }
}

#[cfg(test)]
mod tests;
