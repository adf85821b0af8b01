//! The `api_keys` table. Only hashes are stored (see `types::api_key`).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::transaction::write_tx;
use super::{Db, Error, Result, conflict_on_unique, on_pool};
use crate::types::{ApiKey, KeyHash, Scope};

macro_rules! api_key_from_row {
    ($r:expr) => {{
        let hash: Vec<u8> = $r.try_get("hash")?;
        let hash_kind: String = $r.try_get("hash_kind")?;
        let scope: String = $r.try_get("scope")?;
        ApiKey {
            id: $r.try_get("id")?,
            prefix: $r.try_get("prefix")?,
            hash: KeyHash::from_stored(&hash_kind, hash)
                .map_err(|e| Error::Corrupt(format!("API key: {e}")))?,
            scope: scope.parse::<Scope>().map_err(Error::Corrupt)?,
            expiration: $r.try_get("expiration")?,
            last_seen: $r.try_get("last_seen")?,
            created_at: $r.try_get("created_at")?,
        }
    }};
}

const COLUMNS: &str = "id, prefix, hash, hash_kind, scope, expiration, last_seen, created_at";

impl Db {
    pub async fn create_api_key(
        &self,
        prefix: &str,
        hash: &[u8; 32],
        scope: Scope,
        expiration: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<ApiKey> {
        let sql = format!(
            "INSERT INTO api_keys (prefix, hash, scope, expiration, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        );
        write_tx!(self, |c| {
            let r = sqlx::query(&sql)
                .bind(prefix)
                .bind(&hash[..])
                .bind(scope.as_str())
                .bind(expiration)
                .bind(now)
                .fetch_one(&mut *c)
                .await
                .map_err(|e| conflict_on_unique(e, || "API key id collision".into()))?;
            Ok(api_key_from_row!(r))
        })
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys ORDER BY id");
        on_pool!(self, |p| {
            let rows = sqlx::query(&sql).fetch_all(p).await?;
            rows.iter()
                .map(|r| Ok(api_key_from_row!(r)))
                .collect::<Result<Vec<_>>>()
        })
    }

    /// Sets the expiry of the key with `id` (or, when `id` is `None`, the
    /// key with `prefix`) to `now`.
    pub async fn expire_api_key(
        &self,
        id: Option<i64>,
        prefix: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        write_tx!(self, |c| {
            let n = sqlx::query(
                "UPDATE api_keys SET expiration = $1 \
                 WHERE ($2 IS NOT NULL AND id = $2) OR ($2 IS NULL AND prefix = $3)",
            )
            .bind(now)
            .bind(id)
            .bind(prefix)
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(Error::NotFound("API key not found"));
            }
            Ok(())
        })
    }

    pub async fn delete_api_key(&self, id: Option<i64>, prefix: &str) -> Result<()> {
        write_tx!(self, |c| {
            let n = sqlx::query(
                "DELETE FROM api_keys \
                 WHERE ($1 IS NOT NULL AND id = $1) OR ($1 IS NULL AND prefix = $2)",
            )
            .bind(id)
            .bind(prefix)
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(Error::NotFound("API key not found"));
            }
            Ok(())
        })
    }
}
