//! The `oauth_clients` table (API v2). Only hashes are stored (see
//! `types::oauth_client`); scopes and tags are JSON lists of names.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::rows::{json_vec, to_json};
use super::transaction::write_tx;
use super::{Db, Error, Result, conflict_on_unique, on_pool};
use crate::types::{OAuthClient, ScopeSet};

macro_rules! client_from_row {
    ($r:expr) => {{
        let hash: Vec<u8> = $r.try_get("hash")?;
        let scopes: String = $r.try_get("scopes")?;
        let tags: String = $r.try_get("tags")?;
        let names = json_vec(&scopes)?;
        OAuthClient {
            id: $r.try_get("id")?,
            client_id: $r.try_get("client_id")?,
            hash: hash
                .try_into()
                .map_err(|_| Error::Corrupt("OAuth client hash is not 32 bytes".into()))?,
            scopes: ScopeSet::parse(names.iter().map(String::as_str)).map_err(Error::Corrupt)?,
            tags: json_vec(&tags)?,
            description: $r.try_get("description")?,
            created_at: $r.try_get("created_at")?,
        }
    }};
}

const COLUMNS: &str = "id, client_id, hash, scopes, tags, description, created_at";

/// What an operator asks for when creating a client.
#[derive(Debug, Clone)]
pub struct NewOAuthClient {
    pub client_id: String,
    pub hash: [u8; 32],
    pub scopes: ScopeSet,
    pub tags: Vec<String>,
    pub description: String,
}

impl Db {
    pub async fn create_oauth_client(
        &self,
        c: &NewOAuthClient,
        now: DateTime<Utc>,
    ) -> Result<OAuthClient> {
        let sql = format!(
            "INSERT INTO oauth_clients (client_id, hash, scopes, tags, description, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        );
        let scopes = to_json(&c.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        let tags = to_json(&c.tags);
        write_tx!(self, |tx| {
            let r = sqlx::query(&sql)
                .bind(&c.client_id)
                .bind(&c.hash[..])
                .bind(&scopes)
                .bind(&tags)
                .bind(&c.description)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| conflict_on_unique(e, || "OAuth client id collision".into()))?;
            Ok(client_from_row!(r))
        })
    }

    pub async fn list_oauth_clients(&self) -> Result<Vec<OAuthClient>> {
        let sql = format!("SELECT {COLUMNS} FROM oauth_clients ORDER BY id");
        on_pool!(self, |p| {
            let rows = sqlx::query(&sql).fetch_all(p).await?;
            rows.iter()
                .map(|r| Ok(client_from_row!(r)))
                .collect::<Result<Vec<_>>>()
        })
    }

    pub async fn delete_oauth_client(&self, client_id: &str) -> Result<()> {
        write_tx!(self, |tx| {
            let n = sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1")
                .bind(client_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::NotFound("OAuth client not found"));
            }
            Ok(())
        })
    }
}
