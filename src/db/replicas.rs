//! The `replicas` and `presence` tables (PostgreSQL only): which servers
//! are alive, what relay each runs, and which one holds each node's map
//! stream. Liveness is judged by the database's clock (`now()`), so the
//! replicas' own clocks need not agree.

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::Row;

use super::transaction::write_tx;
use super::{Db, Result};
use crate::types::NodeId;

/// A replica whose heartbeat is recent enough.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LiveReplica {
    pub name: String,
    /// Its relay's region (`tailcfg.DERPRegion` JSON), if it runs one.
    pub derp_region: Option<String>,
}

impl Db {
    /// Registers replica `name` (started now) with its relay's region.
    pub async fn join_replicas(&self, name: &str, derp_region: Option<&str>) -> Result<()> {
        self.pg_only()?;
        write_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO replicas (name, derp_region, started_at, heartbeat_at) \
                 VALUES ($1, $2, now(), now()) ON CONFLICT (name) DO UPDATE \
                 SET derp_region = excluded.derp_region, heartbeat_at = now()",
            )
            .bind(name)
            .bind(derp_region)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// Records that `name` is alive; false if its row is gone (pruned
    /// after a long outage: the caller joins again).
    pub async fn heartbeat(&self, name: &str) -> Result<bool> {
        self.pg_only()?;
        write_tx!(self, |c| {
            let done = sqlx::query("UPDATE replicas SET heartbeat_at = now() WHERE name = $1")
                .bind(name)
                .execute(&mut *c)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// The replicas heard from within `timeout`, by name.
    pub async fn live_replicas(&self, timeout: Duration) -> Result<Vec<LiveReplica>> {
        let pool = self.pg_only()?;
        let rows = sqlx::query(
            "SELECT name, derp_region FROM replicas \
             WHERE heartbeat_at > now() - make_interval(secs => $1) ORDER BY name",
        )
        .bind(timeout.as_secs_f64())
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LiveReplica {
                    name: r.try_get("name")?,
                    derp_region: r.try_get("derp_region")?,
                })
            })
            .collect()
    }

    /// Forgets replicas silent for longer than `after` (their presence rows
    /// go with them).
    pub async fn prune_replicas(&self, after: Duration) -> Result<u64> {
        self.pg_only()?;
        write_tx!(self, |c| {
            sqlx::query(
                "DELETE FROM presence WHERE replica IN (SELECT name FROM replicas \
                 WHERE heartbeat_at < now() - make_interval(secs => $1))",
            )
            .bind(after.as_secs_f64())
            .execute(&mut *c)
            .await?;
            let done = sqlx::query(
                "DELETE FROM replicas WHERE heartbeat_at < now() - make_interval(secs => $1)",
            )
            .bind(after.as_secs_f64())
            .execute(&mut *c)
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// Node `id` streams from `replica` (`true`), or no longer does.
    /// Leaving only removes `replica`'s own claim: the node may have moved
    /// to another replica since.
    pub async fn set_stream_holder(&self, id: NodeId, replica: &str, holds: bool) -> Result<()> {
        self.pg_only()?;
        write_tx!(self, |c| {
            let q = if holds {
                "INSERT INTO presence (node_id, replica, since) VALUES ($1, $2, now()) \
                 ON CONFLICT (node_id) DO UPDATE SET replica = excluded.replica, \
                 since = excluded.since"
            } else {
                "DELETE FROM presence WHERE node_id = $1 AND replica = $2"
            };
            sqlx::query(q)
                .bind(id.0)
                .bind(replica)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// Of `ids` (all nodes for `None`), those streaming from a replica other
    /// than `me` that is alive within `timeout`.
    pub async fn streaming_elsewhere(
        &self,
        ids: Option<&[NodeId]>,
        me: &str,
        timeout: Duration,
    ) -> Result<BTreeSet<NodeId>> {
        let pool = self.pg_only()?;
        let ids: Option<Vec<i64>> = ids.map(|i| i.iter().map(|n| n.0).collect());
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT p.node_id FROM presence p JOIN replicas r ON r.name = p.replica \
             WHERE p.replica <> $1 AND r.heartbeat_at > now() - make_interval(secs => $2) \
             AND ($3::BIGINT[] IS NULL OR p.node_id = ANY($3))",
        )
        .bind(me)
        .bind(timeout.as_secs_f64())
        .bind(ids)
        .fetch_all(pool)
        .await?;
        Ok(rows.into_iter().map(NodeId).collect())
    }
}
