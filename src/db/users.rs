//! The `users` table.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::transaction::write_tx;
use super::{Db, Error, Result, conflict_on_unique, on_pool};
use crate::types::{User, UserId};

macro_rules! user_from_row {
    ($r:expr) => {
        User {
            id: UserId($r.try_get("id")?),
            name: $r.try_get("name")?,
            display_name: $r.try_get("display_name")?,
            email: $r.try_get("email")?,
            created_at: $r.try_get("created_at")?,
        }
    };
}

const COLUMNS: &str = "id, name, display_name, email, created_at";

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
