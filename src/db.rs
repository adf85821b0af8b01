//! Persistence: the database is the truth across restarts; `state` derives the
//! in-memory World from it at boot and writes through it (commit first, then
//! publish). Only the state writer calls the mutating functions here.
//!
//! Two engines behind one API: SQLite (embedded default) and PostgreSQL. The
//! SQL is written once with `$N` placeholders (both engines accept them) and
//! the [`on_pool!`] macro instantiates each query for both pool types, so
//! there is one query text and native column types on each engine. Migrations
//! are per engine under `migrations/{sqlite,postgres}` with the same numbering.
//!
//! Durability: a write is acknowledged only once it is durable. Every
//! mutating query runs in one explicit transaction ([`transaction`]), and its
//! function returns only after COMMIT has succeeded, or after the rollback
//! has finished; a connection whose transaction state is in doubt is closed,
//! never reused. SQLite commits with `synchronous = FULL` (an fsync per
//! commit, see [`sqlite`]); PostgreSQL as its server is configured (durable
//! with the defaults, `fsync` and `synchronous_commit` on). The state writer publishes a new World only
//! after that return, so the World never shows an uncommitted write; health
//! checks commit a one-row write ([`Db::probe_write`]), since a database
//! that refuses writes (a full disk) still answers reads.
//!
//! May depend on: `types`. Nothing here knows about the protocol or policy.

mod acme_challenges;
mod api_keys;
pub mod audit_log;
pub mod auth_requests;
pub mod backup;
pub mod batch;
pub mod changelog;
mod dns_settings;
mod import;
mod nodes;
mod oauth_clients;
mod oidc_flows;
mod policies;
mod preauth_keys;
pub mod process_lock;
pub mod replicas;
mod rows;
mod sqlite;
mod transaction;
mod users;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod upgrade_fixture;
#[cfg(test)]
mod upgrade_tests;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, SqlitePool};

use transaction::write_tx;

pub use dns_settings::DnsOverrides;
pub use import::ImportSet;
pub use nodes::{KeyUse, NodeRecord};
pub use oauth_clients::NewOAuthClient;
pub use preauth_keys::NewPreAuthKey;
pub use users::OidcProfile;

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum Target {
    Sqlite {
        path: PathBuf,
        write_ahead_log: bool,
    },
    Postgres {
        url: String,
        max_connections: u32,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// A single-use pre-auth key was consumed by a concurrent registration.
    #[error("pre-auth key already used")]
    KeyAlreadyUsed,
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database could not be opened or created; names the path.
    #[error("{0}")]
    Open(String),
    /// The writer's batch transaction failed as a whole (see [`batch`]):
    /// nothing in it was committed.
    #[error("the batch's transaction failed: {0}")]
    Aborted(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A pool on one of the two engines.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool of either engine.
/// The body is compiled once per engine, so it must only use API both share.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Opens (creating if needed) and migrates the database.
    pub async fn connect(target: &Target) -> Result<Db> {
        let db = match target {
            Target::Sqlite {
                path,
                write_ahead_log,
            } => {
                let pool = sqlite::open(path, *write_ahead_log, 4).await?;
                SQLITE_MIGRATIONS.run(&pool).await.map_err(|e| {
                    Error::Open(format!(
                        "cannot migrate the SQLite database {}: {e}",
                        path.display()
                    ))
                })?;
                Db::Sqlite(pool)
            }
            Target::Postgres {
                url,
                max_connections,
            } => {
                let opts = PgConnectOptions::from_str(url)?;
                let pool = PgPoolOptions::new()
                    .max_connections((*max_connections).max(1))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await?;
                POSTGRES_MIGRATIONS.run(&pool).await?;
                Db::Postgres(pool)
            }
        };
        Ok(db)
    }

    pub fn engine(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Commits a one-row write, for health checks: a database that answers
    /// reads can still refuse writes (a full disk, a read-only file).
    pub async fn probe_write(&self, now: DateTime<Utc>) -> Result<()> {
        write_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO write_probe (id, checked_at) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
            )
            .bind(now)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await)
    }
}

/// Maps a unique-constraint violation to `Conflict(msg)`, passing other
/// errors through.
fn conflict_on_unique(e: sqlx::Error, msg: impl FnOnce() -> String) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Error::Conflict(msg()),
        _ => Error::Sqlx(e),
    }
}
