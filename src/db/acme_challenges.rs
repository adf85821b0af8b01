//! The `acme_challenges` table (PostgreSQL only): DNS-01 challenge values
//! published through one replica, answered by every replica's DNS server
//! (`certs::Challenges` keeps each process's own).

use std::time::Duration;

use super::transaction::write_tx;
use super::{Db, Result};

impl Db {
    /// Publishes `value` at `owner` for `lifetime` (the same value again
    /// only renews it) and deletes expired values.
    pub async fn put_acme_challenge(
        &self,
        owner: &str,
        value: &str,
        lifetime: Duration,
    ) -> Result<()> {
        self.pg_only()?;
        write_tx!(self, |c| {
            sqlx::query("DELETE FROM acme_challenges WHERE expires_at <= now()")
                .execute(&mut *c)
                .await?;
            sqlx::query(
                "INSERT INTO acme_challenges (owner, value, expires_at) \
                 VALUES ($1, $2, now() + make_interval(secs => $3)) \
                 ON CONFLICT (owner, value) DO UPDATE SET expires_at = excluded.expires_at",
            )
            .bind(owner)
            .bind(value)
            .bind(lifetime.as_secs_f64())
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// The live values at `owner`, oldest first.
    pub async fn acme_challenge_values(&self, owner: &str) -> Result<Vec<String>> {
        let pool = self.pg_only()?;
        Ok(sqlx::query_scalar(
            "SELECT value FROM acme_challenges WHERE owner = $1 AND expires_at > now() \
             ORDER BY expires_at",
        )
        .bind(owner)
        .fetch_all(pool)
        .await?)
    }
}
