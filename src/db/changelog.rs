//! The change log (PostgreSQL only) and the replicas' writer lock.
//!
//! Migration 0010's triggers append a row per changed row of `nodes`,
//! `users`, `policies`, `dns_settings`, `presence` and `replicas` (joins
//! and leaves, not heartbeats) and NOTIFY its id on
//! [`CHANNEL`]; a replica reads what came after the last id it applied
//! ([`Db::changes_since`]) and reloads those rows. Writers of all replicas
//! serialise on one session-level advisory lock ([`WriterLock`]), held
//! from before a batch's catch-up read until after its commits, so every
//! write is validated against a World that includes every earlier write
//! (addresses, names and keys are never handed out twice).

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::postgres::PgConnection;
use sqlx::{Connection, PgPool, Row};

use super::{Db, Error, Result};
use crate::types::NodeId;

/// The NOTIFY channel the triggers send change ids on.
pub const CHANNEL: &str = "clawscale_changes";

/// Key of the writer lock: 0x636c61770002 ("claw", 2). The triggers' order
/// lock is 0x636c61770001.
const WRITER_LOCK: i64 = 0x636c_6177_0002;

/// How long opening the lock's connection may take: a batch waits for it,
/// so a database that is gone must fail fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What changed after some change id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The newest id read (the caller's own when nothing was).
    pub last: i64,
    /// Nodes inserted, updated or deleted.
    pub nodes: BTreeSet<NodeId>,
    pub users: bool,
    pub policy: bool,
    pub dns: bool,
    /// Nodes whose stream moved between replicas.
    pub presence: BTreeSet<NodeId>,
    /// A replica joined or left (its relay enters or leaves the DERP map).
    pub replicas: bool,
    /// The log no longer holds the rows right after the caller's id (pruned
    /// while it was away): reload everything.
    pub reload_all: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        !self.reload_all
            && !self.users
            && !self.policy
            && !self.dns
            && !self.replicas
            && self.nodes.is_empty()
            && self.presence.is_empty()
    }
}

impl Db {
    /// The PostgreSQL pool, for replication; `None` on SQLite.
    pub fn postgres(&self) -> Option<&PgPool> {
        match self {
            Db::Postgres(p) => Some(p),
            Db::Sqlite(_) => None,
        }
    }

    /// The newest change id (0 for an empty log).
    pub async fn latest_change(&self) -> Result<i64> {
        let pool = self.pg_only()?;
        let id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM change_log")
            .fetch_one(pool)
            .await?;
        Ok(id)
    }

    /// Every change after `after`, folded by entity.
    pub async fn changes_since(&self, after: i64) -> Result<Changes> {
        let pool = self.pg_only()?;
        let rows =
            sqlx::query("SELECT id, entity, entity_id FROM change_log WHERE id > $1 ORDER BY id")
                .bind(after)
                .fetch_all(pool)
                .await?;
        let mut c = Changes {
            last: after,
            ..Default::default()
        };
        if let Some(first) = rows.first() {
            let first: i64 = first.try_get("id")?;
            // Ids are gap-free but for rolled-back writes; a gap right after
            // ours that no row below it explains means rows were pruned.
            if first > after + 1 {
                let below: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM change_log WHERE id <= $1")
                        .bind(after)
                        .fetch_one(pool)
                        .await?;
                c.reload_all = after > 0 && below == 0;
            }
        }
        for r in &rows {
            c.last = r.try_get("id")?;
            let entity: String = r.try_get("entity")?;
            match entity.as_str() {
                "node" => {
                    c.nodes.insert(NodeId(r.try_get("entity_id")?));
                }
                "user" => c.users = true,
                "policy" => c.policy = true,
                "dns" => c.dns = true,
                "presence" => {
                    c.presence.insert(NodeId(r.try_get("entity_id")?));
                }
                "replica" => c.replicas = true,
                other => return Err(Error::Corrupt(format!("change_log entity {other:?}"))),
            }
        }
        Ok(c)
    }

    /// Deletes log rows older than `keep` (a replica away longer than that
    /// reloads everything).
    pub async fn prune_changes(&self, keep: Duration) -> Result<u64> {
        let pool = self.pg_only()?;
        let secs = keep.as_secs_f64();
        let done = sqlx::query(
            "DELETE FROM change_log WHERE at < now() - make_interval(secs => $1) \
             AND id < (SELECT MAX(id) FROM change_log)",
        )
        .bind(secs)
        .execute(pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub(super) fn pg_only(&self) -> Result<&PgPool> {
        self.postgres()
            .ok_or_else(|| Error::Open("the change log needs PostgreSQL".into()))
    }
}

/// The writer lock on its own connection (a session-level advisory lock
/// belongs to the session that took it). If that connection dies,
/// PostgreSQL releases the lock with the session; the next [`lock`]
/// opens a new one.
///
/// [`lock`]: WriterLock::lock
pub struct WriterLock {
    pool: PgPool,
    conn: Option<PgConnection>,
}

impl WriterLock {
    pub fn new(pool: PgPool) -> WriterLock {
        WriterLock { pool, conn: None }
    }

    /// Waits for the lock (other replicas' batches hold it briefly).
    pub async fn lock(&mut self) -> Result<()> {
        if self.conn.is_none() {
            let opts = (*self.pool.connect_options()).clone();
            let conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&opts))
                .await
                .map_err(|_| Error::Sqlx(sqlx::Error::PoolTimedOut))??;
            self.conn = Some(conn);
        }
        let conn = self.conn.as_mut().expect("just opened");
        let taken = sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(WRITER_LOCK)
            .execute(&mut *conn)
            .await;
        if let Err(e) = taken {
            self.conn = None;
            return Err(e.into());
        }
        Ok(())
    }

    /// Releases the lock; returns the newest change id, read while still
    /// holding it (so every id up to it is this replica's own or was
    /// already applied).
    pub async fn unlock(&mut self) -> Result<i64> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(Error::Sqlx(sqlx::Error::PoolClosed));
        };
        let done = sqlx::query_scalar::<_, i64>(
            "SELECT COALESCE((SELECT MAX(id) FROM change_log), 0) \
             FROM (SELECT pg_advisory_unlock($1)) AS released",
        )
        .bind(WRITER_LOCK)
        .fetch_one(&mut *conn)
        .await;
        match done {
            Ok(id) => Ok(id),
            Err(e) => {
                // Dropping the session is what releases the lock now.
                self.conn = None;
                Err(e.into())
            }
        }
    }
}
