//! Write transactions: every mutating query runs inside one, through
//! [`write_tx!`], so a write is acknowledged only once its COMMIT has
//! returned.
//!
//! Why not autocommit statements or sqlx's `Transaction`:
//! - sqlx-sqlite's `fetch_one`/`fetch_optional` stop stepping a statement
//!   after its first row and reset it, which is when SQLite runs the implicit
//!   autocommit; the result of that reset is discarded (sqlx-sqlite 0.8.6
//!   `connection/worker.rs`, `ExecuteIter::drop`). An `INSERT … RETURNING`
//!   on a full disk thus returned its row although the commit failed and was
//!   rolled back: acknowledged, then lost, and its AUTOINCREMENT id handed
//!   out again.
//! - sqlx's `Transaction` rolls back on drop by queueing a ROLLBACK that runs
//!   after the error has been returned, and counts nesting itself: when
//!   SQLite has already rolled back (SQLITE_FULL, SQLITE_IOERR), that
//!   ROLLBACK fails, the count stays at one, and later "transactions" on the
//!   connection become savepoints whose rollback leaves a write transaction
//!   open (another connection then sees "database is locked").
//!
//! So [`WriteTx`] issues BEGIN/COMMIT/ROLLBACK itself on a connection it
//! holds for the duration. On any failure it rolls back and waits for that
//! to finish before the error goes to the caller; the connection returns to
//! the pool only after a clean rollback of a refusal the statements reported
//! (not found, conflict). Any other failure (a database or I/O error, a
//! failed COMMIT or ROLLBACK, a cancelled future) closes the connection,
//! which makes the engine discard whatever transaction state it held.

use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::{Database, Executor, Pool, Postgres, Sqlite};

use super::{Error, Result};

/// What a write transaction needs of each engine. Implemented per engine
/// rather than over sqlx's generic `Executor` bounds, whose higher-ranked
/// lifetimes keep the writer's futures from being provably `Send`.
pub(super) trait Engine: Database {
    const BEGIN: &'static str;

    /// Runs one statement without arguments.
    fn exec<'c>(conn: &'c mut Self::Connection, sql: &'static str) -> BoxFuture<'c, Result<()>>;
}

impl Engine for Sqlite {
    /// IMMEDIATE takes the write lock up front, so waiting for another
    /// process's write happens in BEGIN under the busy timeout, never as a
    /// SQLITE_BUSY halfway through the transaction.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";

    fn exec<'c>(conn: &'c mut Self::Connection, sql: &'static str) -> BoxFuture<'c, Result<()>> {
        Box::pin(async move {
            conn.execute(sql).await?;
            Ok(())
        })
    }
}

impl Engine for Postgres {
    const BEGIN: &'static str = "BEGIN";

    fn exec<'c>(conn: &'c mut Self::Connection, sql: &'static str) -> BoxFuture<'c, Result<()>> {
        Box::pin(async move {
            conn.execute(sql).await?;
            Ok(())
        })
    }
}

/// An open write transaction on a connection taken from the pool.
pub(super) struct WriteTx<DB: Database> {
    /// `None` once the connection has been closed.
    conn: Option<PoolConnection<DB>>,
    /// Between BEGIN and a successful COMMIT or ROLLBACK.
    open: bool,
}

impl<DB: Engine> WriteTx<DB> {
    pub(super) async fn begin(pool: &Pool<DB>) -> Result<Self> {
        Self::begin_with(pool, DB::BEGIN).await
    }

    /// Begins with `sql`: `BEGIN` and whatever the caller opens with it
    /// (savepoints), in one round trip to the database. On failure the
    /// transaction is dropped still counted open, which closes its
    /// connection: whether `BEGIN` took effect is not known.
    pub(super) async fn begin_with(pool: &Pool<DB>, sql: &'static str) -> Result<Self> {
        let conn = pool.acquire().await?;
        let mut tx = WriteTx {
            conn: Some(conn),
            open: true,
        };
        tx.exec(sql).await?;
        Ok(tx)
    }

    /// The connection, for the transaction's statements.
    pub(super) fn conn(&mut self) -> &mut DB::Connection {
        self.conn.as_mut().expect("connection taken only by finish")
    }

    /// Commits if `result` is `Ok`, otherwise rolls back; returns `result`,
    /// or the COMMIT's error. Never returns before the transaction is over.
    pub(super) async fn finish<T>(mut self, result: Result<T>) -> Result<T> {
        let error = match result {
            Ok(value) => match self.exec("COMMIT").await {
                Ok(()) => {
                    self.open = false;
                    return Ok(value);
                }
                Err(e) => e,
            },
            Err(e) => e,
        };
        let refusal = matches!(
            error,
            Error::NotFound(_) | Error::Conflict(_) | Error::KeyAlreadyUsed
        );
        self.roll_back(!refusal).await;
        Err(error)
    }

    /// Ends a batch's transaction ([`super::batch`]): commits if `commit`,
    /// else rolls back. `doubtful`: a statement in it failed, so the
    /// connection is closed afterwards instead of going back to the pool.
    pub(super) async fn end(mut self, commit: bool, doubtful: bool) -> Result<()> {
        if !commit {
            self.roll_back(true).await;
            return Ok(());
        }
        match self.exec("COMMIT").await {
            Ok(()) => {
                self.open = false;
                if doubtful {
                    self.close().await;
                }
                Ok(())
            }
            Err(e) => {
                self.roll_back(true).await;
                Err(e)
            }
        }
    }

    /// Rolls back; closes the connection if that failed or `close` is set.
    async fn roll_back(&mut self, close: bool) {
        let rolled_back = self.exec("ROLLBACK").await.is_ok();
        if rolled_back && !close {
            self.open = false;
        } else {
            self.close().await;
        }
    }

    async fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Closing ends whatever the engine still holds (SQLite rolls back
            // and releases its locks, PostgreSQL ends the session); waiting
            // for it means the next write cannot find them held.
            if let Err(e) = conn.close().await {
                tracing::debug!(error = %e, "closing a failed write connection");
            }
        }
    }

    pub(super) async fn exec(&mut self, sql: &'static str) -> Result<()> {
        DB::exec(self.conn(), sql).await
    }
}

impl<DB: Database> Drop for WriteTx<DB> {
    /// A transaction abandoned midway (its future dropped) must not go back
    /// to the pool still open.
    fn drop(&mut self) {
        if let (true, Some(conn)) = (self.open, self.conn.as_mut()) {
            conn.close_on_drop();
        }
    }
}

/// Runs `$body` (an expression of type `db::Result<T>`, with `$conn: &mut
/// Connection` of either engine in scope) in one write transaction on `$db`,
/// and evaluates to its result once committed or rolled back (see the
/// module doc); inside the writer's batch it is a savepoint on the batch's
/// transaction instead ([`super::batch`]). `?` and `return Err(..)` in the body end the transaction
/// with a rollback.
macro_rules! write_tx {
    ($db:expr, |$conn:ident| $body:expr) => {
        $crate::db::on_pool!($db, |pool| {
            match $crate::db::batch::enter(pool).await? {
                // Inside the writer's batch: a savepoint on its transaction.
                Some(mut tx) => {
                    let result = async {
                        let $conn = tx.conn();
                        $body
                    }
                    .await;
                    $crate::db::batch::leave(tx, result).await
                }
                None => {
                    let mut tx = $crate::db::transaction::WriteTx::begin(pool).await?;
                    let result = async {
                        let $conn = tx.conn();
                        $body
                    }
                    .await;
                    tx.finish(result).await
                }
            }
        })
    };
}
pub(crate) use write_tx;
