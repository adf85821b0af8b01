//! The `pre_auth_keys` table. Only hashes are stored (see
//! `types::preauth_key`).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::rows::{json_vec, to_json};
use super::transaction::write_tx;
use super::{Db, Error, Result, conflict_on_unique, on_pool};
use crate::types::{KeyHash, PreAuthKey, PreAuthKeyId, UserId};

macro_rules! key_from_row {
    ($r:expr) => {{
        let hash: Vec<u8> = $r.try_get("hash")?;
        let hash_kind: String = $r.try_get("hash_kind")?;
        let tags: String = $r.try_get("tags")?;
        PreAuthKey {
            id: PreAuthKeyId($r.try_get("id")?),
            prefix: $r.try_get("prefix")?,
            hash: KeyHash::from_stored(&hash_kind, hash)
                .map_err(|e| Error::Corrupt(format!("pre-auth key: {e}")))?,
            user_id: UserId($r.try_get("user_id")?),
            reusable: $r.try_get("reusable")?,
            ephemeral: $r.try_get("ephemeral")?,
            used: $r.try_get("used")?,
            tags: json_vec(&tags)?,
            expiration: $r.try_get("expiration")?,
            created_at: $r.try_get("created_at")?,
            description: $r.try_get("description")?,
            preauthorized: $r.try_get("preauthorized")?,
        }
    }};
}

const COLUMNS: &str = "id, prefix, hash, hash_kind, user_id, reusable, ephemeral, used, tags, expiration, \
                       created_at, description, preauthorized";

/// What an operator asks for when creating a key.
#[derive(Debug, Clone)]
pub struct NewPreAuthKey {
    pub prefix: String,
    pub hash: [u8; 32],
    pub user_id: UserId,
    pub reusable: bool,
    pub ephemeral: bool,
    pub tags: Vec<String>,
    pub expiration: Option<DateTime<Utc>>,
    pub description: String,
    pub preauthorized: bool,
}

impl Db {
    pub async fn create_preauth_key(
        &self,
        k: &NewPreAuthKey,
        now: DateTime<Utc>,
    ) -> Result<PreAuthKey> {
        let sql = format!(
            "INSERT INTO pre_auth_keys (prefix, hash, user_id, reusable, ephemeral, used, tags, \
             expiration, created_at, description, preauthorized) \
             VALUES ($1, $2, $3, $4, $5, FALSE, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
        );
        let tags = to_json(&k.tags);
        write_tx!(self, |c| {
            let r = sqlx::query(&sql)
                .bind(&k.prefix)
                .bind(&k.hash[..])
                .bind(k.user_id.0)
                .bind(k.reusable)
                .bind(k.ephemeral)
                .bind(&tags)
                .bind(k.expiration)
                .bind(now)
                .bind(&k.description)
                .bind(k.preauthorized)
                .fetch_one(&mut *c)
                .await
                .map_err(|e| conflict_on_unique(e, || "pre-auth key id collision".into()))?;
            Ok(key_from_row!(r))
        })
    }

    pub async fn list_preauth_keys(&self, user: Option<UserId>) -> Result<Vec<PreAuthKey>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM pre_auth_keys WHERE ($1 IS NULL OR user_id = $1) ORDER BY id"
        );
        let uid = user.map(|u| u.0);
        on_pool!(self, |p| {
            let rows = sqlx::query(&sql).bind(uid).fetch_all(p).await?;
            rows.iter()
                .map(|r| Ok(key_from_row!(r)))
                .collect::<Result<Vec<_>>>()
        })
    }

    pub async fn get_preauth_key(&self, id: PreAuthKeyId) -> Result<Option<PreAuthKey>> {
        let sql = format!("SELECT {COLUMNS} FROM pre_auth_keys WHERE id = $1");
        on_pool!(self, |p| {
            match sqlx::query(&sql).bind(id.0).fetch_optional(p).await? {
                Some(r) => Ok(Some(key_from_row!(r))),
                None => Ok(None),
            }
        })
    }

    pub async fn find_preauth_key(&self, prefix: &str) -> Result<Option<PreAuthKey>> {
        let sql = format!("SELECT {COLUMNS} FROM pre_auth_keys WHERE prefix = $1");
        on_pool!(self, |p| {
            match sqlx::query(&sql).bind(prefix).fetch_optional(p).await? {
                Some(r) => Ok(Some(key_from_row!(r))),
                None => Ok(None),
            }
        })
    }

    pub async fn expire_preauth_key(&self, id: PreAuthKeyId, now: DateTime<Utc>) -> Result<()> {
        write_tx!(self, |c| {
            let n = sqlx::query("UPDATE pre_auth_keys SET expiration = $1 WHERE id = $2")
                .bind(now)
                .bind(id.0)
                .execute(&mut *c)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::NotFound("pre-auth key not found"));
            }
            Ok(())
        })
    }

    pub async fn delete_preauth_key(&self, id: PreAuthKeyId) -> Result<()> {
        write_tx!(self, |c| {
            let n = sqlx::query("DELETE FROM pre_auth_keys WHERE id = $1")
                .bind(id.0)
                .execute(&mut *c)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::NotFound("pre-auth key not found"));
            }
            Ok(())
        })
    }
}
