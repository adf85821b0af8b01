//! The `oidc_flows` table (PostgreSQL only): OpenID Connect logins waiting
//! for their callback, which any replica may receive
//! (`auth::oidc::flows` seals what is stored).

use std::time::Duration;

use super::transaction::write_tx;
use super::{Db, Result};

impl Db {
    /// Stores a login for `ttl` unless `max` live ones are stored already
    /// (`false` then); deletes expired ones first.
    pub async fn put_oidc_flow(
        &self,
        state_hash: &str,
        sealed: &[u8],
        ttl: Duration,
        max: usize,
    ) -> Result<bool> {
        self.pg_only()?;
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        write_tx!(self, |c| {
            sqlx::query("DELETE FROM oidc_flows WHERE expires_at <= now()")
                .execute(&mut *c)
                .await?;
            let live: i64 = sqlx::query_scalar("SELECT count(*) FROM oidc_flows")
                .fetch_one(&mut *c)
                .await?;
            if live >= max {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO oidc_flows (state_hash, sealed, expires_at) \
                 VALUES ($1, $2, now() + make_interval(secs => $3))",
            )
            .bind(state_hash)
            .bind(sealed)
            .bind(ttl.as_secs_f64())
            .execute(&mut *c)
            .await?;
            Ok(true)
        })
    }

    /// Removes the login stored under `state_hash` and returns it if it
    /// had not expired: once, whichever replica asks first.
    pub async fn take_oidc_flow(&self, state_hash: &str) -> Result<Option<Vec<u8>>> {
        self.pg_only()?;
        write_tx!(self, |c| {
            let row: Option<(Vec<u8>, bool)> = sqlx::query_as(
                "DELETE FROM oidc_flows WHERE state_hash = $1 \
                 RETURNING sealed, expires_at > now()",
            )
            .bind(state_hash)
            .fetch_optional(&mut *c)
            .await?;
            Ok(row.and_then(|(sealed, live)| live.then_some(sealed)))
        })
    }
}
