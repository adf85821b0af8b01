//! The `policies` table: every policy saved through the admin API, newest
//! last. Keeping history costs little and lets an operator see what changed.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::transaction::write_tx;
use super::{Db, Result, on_pool};

impl Db {
    /// The newest stored policy text, if any.
    pub async fn current_policy(&self) -> Result<Option<String>> {
        on_pool!(self, |p| {
            let row = sqlx::query("SELECT data FROM policies ORDER BY id DESC LIMIT 1")
                .fetch_optional(p)
                .await?;
            Ok(match row {
                Some(r) => Some(r.try_get::<String, _>("data")?),
                None => None,
            })
        })
    }

    pub async fn save_policy(&self, data: &str, now: DateTime<Utc>) -> Result<()> {
        write_tx!(self, |c| {
            sqlx::query("INSERT INTO policies (data, created_at) VALUES ($1, $2)")
                .bind(data)
                .bind(now)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }
}
