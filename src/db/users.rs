//! The `users` table.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::transaction::write_tx;
use super::{Db, Error, Result, conflict_on_unique, on_pool};
use crate::types::{OidcIdentity, User, UserId};

macro_rules! user_from_row {
    ($r:expr) => {{
        let issuer: Option<String> = $r.try_get("oidc_issuer")?;
        let subject: Option<String> = $r.try_get("oidc_subject")?;
        let groups: String = $r.try_get("oidc_groups")?;
        User {
            id: UserId($r.try_get("id")?),
            name: $r.try_get("name")?,
            display_name: $r.try_get("display_name")?,
            email: $r.try_get("email")?,
            created_at: $r.try_get("created_at")?,
            oidc: issuer
                .zip(subject)
                .map(|(issuer, subject)| OidcIdentity { issuer, subject }),
            profile_pic_url: $r.try_get("profile_pic_url")?,
            groups: serde_json::from_str(&groups)
                .map_err(|e| Error::Corrupt(format!("users.oidc_groups: {e}")))?,
        }
    }};
}

const COLUMNS: &str = "id, name, display_name, email, created_at, oidc_issuer, oidc_subject, \
                       profile_pic_url, oidc_groups";

/// What an OpenID Connect login says about its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcProfile {
    pub identity: OidcIdentity,
    pub display_name: String,
    pub email: String,
    pub profile_pic_url: String,
    pub groups: Vec<String>,
}

impl Db {
    pub async fn list_users(&self) -> Result<Vec<User>> {
        let sql = format!("SELECT {COLUMNS} FROM users ORDER BY id");
        on_pool!(self, |p| {
            let rows = sqlx::query(&sql).fetch_all(p).await?;
            rows.iter()
                .map(|r| Ok(user_from_row!(r)))
                .collect::<Result<Vec<_>>>()
        })
    }

    pub async fn create_user(
        &self,
        name: &str,
        display_name: &str,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<User> {
        let sql = format!(
            "INSERT INTO users (name, display_name, email, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING {COLUMNS}"
        );
        write_tx!(self, |c| {
            let r = sqlx::query(&sql)
                .bind(name)
                .bind(display_name)
                .bind(email)
                .bind(now)
                .fetch_one(&mut *c)
                .await
                .map_err(|e| conflict_on_unique(e, || format!("user {name:?} already exists")))?;
            Ok(user_from_row!(r))
        })
    }

    /// Creates the user `profile.identity` names (as `name`) or, if it
    /// exists, updates its profile and groups; never matches a user by name
    /// or e-mail. Returns the user and whether it was created.
    pub async fn upsert_oidc_user(
        &self,
        name: &str,
        profile: &OidcProfile,
        now: DateTime<Utc>,
    ) -> Result<(User, bool)> {
        let groups = serde_json::to_string(&profile.groups)
            .map_err(|e| Error::Corrupt(format!("groups: {e}")))?;
        let update = format!(
            "UPDATE users SET display_name = $1, email = $2, profile_pic_url = $3, \
             oidc_groups = $4 WHERE oidc_issuer = $5 AND oidc_subject = $6 RETURNING {COLUMNS}"
        );
        let insert = format!(
            "INSERT INTO users (name, display_name, email, created_at, oidc_issuer, \
             oidc_subject, profile_pic_url, oidc_groups) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
        );
        let p = profile;
        write_tx!(self, |c| {
            let updated = sqlx::query(&update)
                .bind(&p.display_name)
                .bind(&p.email)
                .bind(&p.profile_pic_url)
                .bind(&groups)
                .bind(&p.identity.issuer)
                .bind(&p.identity.subject)
                .fetch_optional(&mut *c)
                .await?;
            if let Some(r) = updated {
                return Ok((user_from_row!(r), false));
            }
            let r = sqlx::query(&insert)
                .bind(name)
                .bind(&p.display_name)
                .bind(&p.email)
                .bind(now)
                .bind(&p.identity.issuer)
                .bind(&p.identity.subject)
                .bind(&p.profile_pic_url)
                .bind(&groups)
                .fetch_one(&mut *c)
                .await
                .map_err(|e| conflict_on_unique(e, || format!("user {name:?} already exists")))?;
            Ok((user_from_row!(r), true))
        })
    }

    pub async fn rename_user(&self, id: UserId, new_name: &str) -> Result<()> {
        write_tx!(self, |c| {
            let n = sqlx::query("UPDATE users SET name = $1 WHERE id = $2")
                .bind(new_name)
                .bind(id.0)
                .execute(&mut *c)
                .await
                .map_err(|e| conflict_on_unique(e, || format!("user {new_name:?} already exists")))?
                .rows_affected();
            if n == 0 {
                return Err(Error::NotFound("user not found"));
            }
            Ok(())
        })
    }

    /// Deletes a user; refuses while nodes still belong to it (as Headscale).
    pub async fn delete_user(&self, id: UserId) -> Result<()> {
        write_tx!(self, |c| {
            let nodes: i64 = sqlx::query("SELECT COUNT(*) AS n FROM nodes WHERE user_id = $1")
                .bind(id.0)
                .fetch_one(&mut *c)
                .await?
                .try_get("n")?;
            if nodes > 0 {
                return Err(Error::Conflict(format!(
                    "user still has {nodes} node(s); delete or move them first"
                )));
            }
            let n = sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(id.0)
                .execute(&mut *c)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::NotFound("user not found"));
            }
            Ok(())
        })
    }
}
