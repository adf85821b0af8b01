//! The `auth_requests` table (PostgreSQL only): pending interactive
//! requests shared by the replicas, so an operator may decide on any
//! replica a request whose client waits on another (`admin::registrations`).

use std::time::Duration;

use sqlx::Row;

use super::transaction::write_tx;
use super::{Db, Result};

/// The NOTIFY channel a decision is announced on (payload: `id_hash`).
pub const AUTH_CHANNEL: &str = "clawscale_auth";

/// A decided request, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVerdict {
    pub id_hash: String,
    /// `approved`, `vouched` or `rejected`.
    pub state: String,
    pub node_id: Option<i64>,
    pub user_id: Option<i64>,
    pub reason: Option<String>,
}

/// What [`Db::expire_auth_request`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// It was pending: this caller expired it (and records that).
    Expired,
    /// Another replica's wait ran out first (or the row is gone).
    ExpiredElsewhere,
    /// A decision claimed it first: its verdict is stored, or is being
    /// written by the replica that claimed it.
    Decided,
}

/// A request as [`Db::find_auth_request`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRequest {
    /// What it registers, as JSON (`None`: a request for a verdict only).
    pub registration: Option<String>,
    /// What a verdict-only request is about (an SSH check's login).
    pub subject: Option<String>,
    /// How long until it expires.
    pub left: Duration,
}

impl Db {
    /// Records a pending request for `ttl` and deletes long-expired ones.
    pub async fn put_auth_request(
        &self,
        id_hash: &str,
        registration: Option<&str>,
        subject: Option<&str>,
        ttl: Duration,
    ) -> Result<()> {
        self.pg_only()?;
        write_tx!(self, |c| {
            sqlx::query("DELETE FROM auth_requests WHERE expires_at < now() - interval '1 hour'")
                .execute(&mut *c)
                .await?;
            sqlx::query(
                "INSERT INTO auth_requests (id_hash, registration, subject, expires_at) \
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
            )
            .bind(id_hash)
            .bind(registration)
            .bind(subject)
            .bind(ttl.as_secs_f64())
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// Claims a pending, unexpired request for a decision (once, whichever
    /// replica asks first): its registration JSON (`Some(None)` for a
    /// request without one), or `None` when there is nothing to claim.
    pub async fn claim_auth_request(&self, id_hash: &str) -> Result<Option<Option<String>>> {
        self.pg_only()?;
        write_tx!(self, |c| {
            let row = sqlx::query(
                "UPDATE auth_requests SET state = 'taken' \
                 WHERE id_hash = $1 AND state = 'pending' AND expires_at > now() \
                 RETURNING registration",
            )
            .bind(id_hash)
            .fetch_optional(&mut *c)
            .await?;
            Ok(match row {
                Some(r) => Some(r.try_get::<Option<String>, _>("registration")?),
                None => None,
            })
        })
    }

    /// Takes a pending request for good once a replica's wait for its
    /// verdict ran out, and says what it found (see [`Expiry`]).
    pub async fn expire_auth_request(&self, id_hash: &str) -> Result<Expiry> {
        self.pg_only()?;
        write_tx!(self, |c| {
            // No `expires_at` filter: the row is at (or just past) it.
            let expired = sqlx::query(
                "UPDATE auth_requests SET state = 'expired' \
                 WHERE id_hash = $1 AND state = 'pending' RETURNING id_hash",
            )
            .bind(id_hash)
            .fetch_optional(&mut *c)
            .await?;
            if expired.is_some() {
                return Ok(Expiry::Expired);
            }
            let state: Option<String> =
                sqlx::query_scalar("SELECT state FROM auth_requests WHERE id_hash = $1")
                    .bind(id_hash)
                    .fetch_optional(&mut *c)
                    .await?;
            Ok(match state.as_deref() {
                Some("taken" | "approved" | "vouched" | "rejected") => Expiry::Decided,
                _ => Expiry::ExpiredElsewhere,
            })
        })
    }

    /// A pending, unexpired request's registration JSON (`Some(None)` for
    /// a request without one); `None` when it is not pending.
    pub async fn peek_auth_request(&self, id_hash: &str) -> Result<Option<Option<String>>> {
        let pool = self.pg_only()?;
        let row = sqlx::query(
            "SELECT registration FROM auth_requests \
             WHERE id_hash = $1 AND state = 'pending' AND expires_at > now()",
        )
        .bind(id_hash)
        .fetch_optional(pool)
        .await?;
        Ok(match row {
            Some(r) => Some(r.try_get::<Option<String>, _>("registration")?),
            None => None,
        })
    }

    /// An unexpired request in any state (pending, taken or decided): its
    /// registration JSON, its subject and how long it has left; `None` when
    /// unknown or expired. For a client that follows its request up on
    /// another replica.
    pub async fn find_auth_request(&self, id_hash: &str) -> Result<Option<FoundRequest>> {
        let pool = self.pg_only()?;
        let row = sqlx::query(
            "SELECT registration, subject, \
                    EXTRACT(EPOCH FROM expires_at - now())::float8 AS left_s \
             FROM auth_requests WHERE id_hash = $1 AND expires_at > now()",
        )
        .bind(id_hash)
        .fetch_optional(pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let left: f64 = r.try_get("left_s")?;
        Ok(Some(FoundRequest {
            registration: r.try_get("registration")?,
            subject: r.try_get("subject")?,
            left: Duration::try_from_secs_f64(left.max(0.0)).unwrap_or_default(),
        }))
    }

    /// Stores the verdict on a claimed request and announces it.
    pub async fn decide_auth_request(&self, v: &StoredVerdict) -> Result<()> {
        self.pg_only()?;
        write_tx!(self, |c| {
            sqlx::query(
                "UPDATE auth_requests SET state = $2, node_id = $3, user_id = $4, reason = $5 \
                 WHERE id_hash = $1",
            )
            .bind(&v.id_hash)
            .bind(&v.state)
            .bind(v.node_id)
            .bind(v.user_id)
            .bind(&v.reason)
            .execute(&mut *c)
            .await?;
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(AUTH_CHANNEL)
                .bind(&v.id_hash)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// The verdicts stored for any of `hashes`.
    pub async fn auth_verdicts(&self, hashes: &[String]) -> Result<Vec<StoredVerdict>> {
        let pool = self.pg_only()?;
        let rows = sqlx::query(
            "SELECT id_hash, state, node_id, user_id, reason FROM auth_requests \
             WHERE id_hash = ANY($1) AND state IN ('approved', 'vouched', 'rejected')",
        )
        .bind(hashes)
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredVerdict {
                    id_hash: r.try_get("id_hash")?,
                    state: r.try_get("state")?,
                    node_id: r.try_get("node_id")?,
                    user_id: r.try_get("user_id")?,
                    reason: r.try_get("reason")?,
                })
            })
            .collect()
    }

    /// A listener on [`AUTH_CHANNEL`].
    pub async fn listen_auth(&self) -> Result<sqlx::postgres::PgListener> {
        let pool = self.pg_only()?;
        let mut l = sqlx::postgres::PgListener::connect_with(pool).await?;
        l.listen(AUTH_CHANNEL).await?;
        Ok(l)
    }
}
