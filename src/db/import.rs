//! Writing a whole tailnet brought over from another control server
//! (`crate::import`) in one transaction, with the ids it had there: node
//! ids reach clients as their `StableID`, so a device keeps its identity.
//! The transaction first checks that the target holds no tailnet data, so
//! an import never merges into a live tailnet; any failure rolls it all
//! back (see `transaction`).

use chrono::{DateTime, Utc};

use super::rows::to_json;
use super::transaction::write_tx;
use super::{Db, Error, Result, conflict_on_unique};
use crate::types::{ApiKey, Node, PreAuthKey, User};

/// Everything one import writes.
#[derive(Debug, Clone, Default)]
pub struct ImportSet {
    pub users: Vec<User>,
    pub preauth_keys: Vec<PreAuthKey>,
    pub nodes: Vec<Node>,
    pub api_keys: Vec<ApiKey>,
    pub policy: Option<String>,
}

/// The tables an import fills, or that would make the target a live
/// tailnet; all must be empty.
const TAILNET_TABLES: [&str; 6] = [
    "users",
    "nodes",
    "pre_auth_keys",
    "api_keys",
    "policies",
    "oauth_clients",
];

/// The first of [`TAILNET_TABLES`] holding rows, with its count, read
/// through `$exec`: the pool for a check, the import's own transaction for
/// the check that counts.
macro_rules! first_non_empty {
    ($exec:expr) => {{
        let mut found = None;
        for t in TAILNET_TABLES {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {t}"))
                .fetch_one($exec)
                .await?;
            if n > 0 {
                found = Some((t, n));
                break;
            }
        }
        found
    }};
}

/// Tables whose id sequence PostgreSQL must move past the imported ids.
const SEQUENCED: [&str; 5] = ["users", "nodes", "pre_auth_keys", "api_keys", "policies"];

impl Db {
    /// The first tailnet table that holds rows, with its count; `None` for
    /// an empty target.
    pub async fn first_non_empty_table(&self) -> Result<Option<(&'static str, i64)>> {
        super::on_pool!(self, |p| Ok(first_non_empty!(p)))
    }

    /// Writes `set` into an empty database in one transaction; `Conflict`
    /// if the target is not empty (checked inside the transaction) or rows
    /// collide, and nothing is written then.
    pub async fn import(&self, set: &ImportSet, now: DateTime<Utc>) -> Result<()> {
        let postgres = matches!(self, Db::Postgres(_));
        write_tx!(self, |c| {
            if let Some((t, n)) = first_non_empty!(&mut *c) {
                return Err(Error::Conflict(format!(
                    "the target database is not empty ({t} holds {n} rows); import only into a \
                     fresh clawscale database"
                )));
            }
            for u in &set.users {
                sqlx::query(
                    "INSERT INTO users (id, name, display_name, email, created_at, oidc_issuer, \
                     oidc_subject, profile_pic_url, oidc_groups) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(u.id.0)
                .bind(&u.name)
                .bind(&u.display_name)
                .bind(&u.email)
                .bind(u.created_at)
                .bind(u.oidc.as_ref().map(|o| o.issuer.as_str()))
                .bind(u.oidc.as_ref().map(|o| o.subject.as_str()))
                .bind(&u.profile_pic_url)
                .bind(to_json(&u.groups))
                .execute(&mut *c)
                .await
                .map_err(|e| conflict_on_unique(e, || format!("user {:?} collides", u.name)))?;
            }
            for k in &set.preauth_keys {
                sqlx::query(
                    "INSERT INTO pre_auth_keys (id, prefix, hash, hash_kind, user_id, reusable, \
                     ephemeral, used, tags, expiration, created_at, description, preauthorized) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(k.id.0)
                .bind(&k.prefix)
                .bind(k.hash.stored())
                .bind(k.hash.kind())
                .bind(k.user_id.0)
                .bind(k.reusable)
                .bind(k.ephemeral)
                .bind(k.used)
                .bind(to_json(&k.tags))
                .bind(k.expiration)
                .bind(k.created_at)
                .bind(&k.description)
                .bind(k.preauthorized)
                .execute(&mut *c)
                .await
                .map_err(|e| {
                    conflict_on_unique(e, || format!("pre-auth key {} collides", k.id.0))
                })?;
            }
            for n in &set.nodes {
                super::nodes::bind_node!(sqlx::query(super::nodes::INSERT_WITH_ID), n)
                    .bind(n.id.0)
                    .execute(&mut *c)
                    .await
                    .map_err(|e| {
                        conflict_on_unique(e, || {
                            format!("node {} ({}) collides", n.id.0, n.given_name.as_str())
                        })
                    })?;
            }
            for k in &set.api_keys {
                sqlx::query(
                    "INSERT INTO api_keys (id, prefix, hash, hash_kind, scope, expiration, \
                     last_seen, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(k.id)
                .bind(&k.prefix)
                .bind(k.hash.stored())
                .bind(k.hash.kind())
                .bind(k.scope.as_str())
                .bind(k.expiration)
                .bind(k.last_seen)
                .bind(k.created_at)
                .execute(&mut *c)
                .await
                .map_err(|e| conflict_on_unique(e, || format!("API key {} collides", k.id)))?;
            }
            if let Some(policy) = &set.policy {
                sqlx::query("INSERT INTO policies (data, created_at) VALUES ($1, $2)")
                    .bind(policy)
                    .bind(now)
                    .execute(&mut *c)
                    .await?;
            }
            // SQLite's AUTOINCREMENT follows explicit ids by itself;
            // PostgreSQL's sequences must be moved past them.
            if postgres {
                for t in SEQUENCED {
                    sqlx::query(&format!(
                        "SELECT setval(pg_get_serial_sequence('{t}', 'id'), \
                         COALESCE((SELECT MAX(id) FROM {t}), 0) + 1, false)"
                    ))
                    .execute(&mut *c)
                    .await?;
                }
            }
            Ok(())
        })
    }
}
