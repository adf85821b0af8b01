//! The `audit_log` table (PostgreSQL only): the audit lines of every
//! replica on the database, so each replica answers audit queries with the
//! whole trail (`admin::audit` writes and reads it through `state`).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Db, Result};

/// One audit line as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub time: DateTime<Utc>,
    pub actor: String,
    pub object: Option<String>,
    /// The line as JSON.
    pub entry: String,
}

/// Which lines a query wants: every filter given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub since: Option<DateTime<Utc>>,
    pub actor: Option<String>,
    /// An exact object (`node:3`), or a kind without `:` (`node`).
    pub object: Option<String>,
    /// The newest this many matches.
    pub limit: i64,
}

impl Db {
    /// Appends `rows` in their order.
    pub async fn append_audit(&self, rows: &[AuditRow]) -> Result<()> {
        let pool = self.pg_only()?;
        let times: Vec<DateTime<Utc>> = rows.iter().map(|r| r.time).collect();
        let actors: Vec<&str> = rows.iter().map(|r| r.actor.as_str()).collect();
        let objects: Vec<Option<&str>> = rows.iter().map(|r| r.object.as_deref()).collect();
        let entries: Vec<&str> = rows.iter().map(|r| r.entry.as_str()).collect();
        // `WITH ORDINALITY` keeps the ids in the rows' order.
        sqlx::query(
            "INSERT INTO audit_log (time, actor, object, entry) \
             SELECT t, a, o, e FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[]) \
             WITH ORDINALITY AS u(t, a, o, e, n) ORDER BY n",
        )
        .bind(&times)
        .bind(&actors)
        .bind(&objects)
        .bind(&entries)
        .execute(pool)
        .await?;
        Ok(())
    }

    /// Deletes the oldest lines beyond the newest `budget` bytes of line
    /// text; returns how many went. The table's on-disk size bounds the
    /// text it holds, so a table smaller than `budget` is not scanned.
    pub async fn prune_audit(&self, budget: u64) -> Result<u64> {
        let pool = self.pg_only()?;
        let budget = i64::try_from(budget).unwrap_or(i64::MAX);
        let size: i64 = sqlx::query_scalar("SELECT pg_table_size('audit_log')")
            .fetch_one(pool)
            .await?;
        if size <= budget {
            return Ok(0);
        }
        let done = sqlx::query(
            "DELETE FROM audit_log WHERE id <= ( \
               SELECT id FROM ( \
                 SELECT id, SUM(octet_length(entry)) OVER (ORDER BY id DESC) AS newer \
                 FROM audit_log) s \
               WHERE newer > $1 ORDER BY id DESC LIMIT 1)",
        )
        .bind(budget)
        .execute(pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The newest `f.limit` lines matching `f`, oldest first.
    pub async fn audit_lines(&self, f: &AuditFilter) -> Result<Vec<String>> {
        let pool = self.pg_only()?;
        let rows = sqlx::query(
            "SELECT entry FROM (SELECT id, entry FROM audit_log \
               WHERE ($1::timestamptz IS NULL OR time >= $1) \
                 AND ($2::text IS NULL OR actor = $2) \
                 AND ($3::text IS NULL OR object = $3 \
                      OR (strpos($3, ':') = 0 AND split_part(object, ':', 1) = $3)) \
               ORDER BY id DESC LIMIT $4) newest \
             ORDER BY id",
        )
        .bind(f.since)
        .bind(f.actor.as_deref())
        .bind(f.object.as_deref())
        .bind(f.limit)
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("entry")?))
            .collect()
    }
}
