//! What a file or database is: a clawscale database (and which schema
//! version), a key-only backup, or something else.
//!
//! A database is "a clawscale database" when sqlx's migration table holds
//! this binary's migrations with this binary's checksums; its schema version
//! is the highest migration applied. A newer one than this binary knows is
//! refused: the server would fail to migrate it, or worse, misread it.

use std::path::Path;

use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection, SqliteConnection};

use super::keys::TABLE as KEYS_TABLE;
use super::{Error, Result, db_err};
use crate::db::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

/// The newest schema version this binary can run on, per engine.
pub fn known_version(postgres: bool) -> i64 {
    let migrator = if postgres {
        &POSTGRES_MIGRATIONS
    } else {
        &SQLITE_MIGRATIONS
    };
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// What a SQLite file holds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Contents {
    /// The schema version of its clawscale database; `None`: a key-only
    /// backup (no database).
    pub version: Option<i64>,
    /// It has the key table of a backup (`keys`).
    pub keys: bool,
}

/// Reads what the SQLite file at `path` holds, refusing anything but a
/// clawscale database this binary can run on or a key-only backup.
pub(super) async fn sqlite_contents(conn: &mut SqliteConnection, path: &Path) -> Result<Contents> {
    let what = path.display().to_string();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('_sqlx_migrations', $1)",
    )
    .bind(KEYS_TABLE)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| match e {
        // "file is not a database" and kin: say it plainly.
        sqlx::Error::Database(d) => {
            Error::Refused(format!("{what} is not a clawscale database: {d}"))
        }
        source => Error::Db {
            what: format!("cannot read {what}"),
            source,
        },
    })?;
    let keys = tables.iter().any(|t| t == KEYS_TABLE);
    let rows = if tables.iter().any(|t| t == "_sqlx_migrations") {
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations")
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err(format!("cannot read the migrations of {what}")))?
    } else if keys {
        return Ok(Contents {
            version: None,
            keys,
        });
    } else {
        Vec::new()
    };
    let version = judge(&SQLITE_MIGRATIONS, &rows, &what)?;
    Ok(Contents {
        version: Some(version),
        keys,
    })
}

/// The schema version of the PostgreSQL database at `url`, refused unless
/// it is a clawscale database this binary can run on.
pub async fn check_postgres(url: &str) -> Result<i64> {
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(db_err("cannot connect to the PostgreSQL database"))?;
    let result = async {
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(db_err("cannot read the schema"))?;
        let rows = if tables == 0 {
            Vec::new()
        } else {
            sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations")
                .fetch_all(&mut conn)
                .await
                .map_err(db_err("cannot read the migrations"))?
        };
        judge(&POSTGRES_MIGRATIONS, &rows, "the PostgreSQL database")
    }
    .await;
    let _ = conn.close().await;
    result
}

/// Accepts the applied migrations `rows` (version, checksum, success) when
/// they are this binary's, and returns the schema version.
fn judge(migrator: &Migrator, rows: &[(i64, Vec<u8>, bool)], what: &str) -> Result<i64> {
    let not_ours =
        |why: &str| Error::Refused(format!("{what} is not a clawscale database ({why})"));
    let first = migrator.iter().map(|m| m.version).min().unwrap_or(1);
    if !rows.iter().any(|(v, _, ok)| *v == first && *ok) {
        return Err(not_ours("it has no clawscale schema"));
    }
    if let Some((v, _, _)) = rows.iter().find(|(_, _, ok)| !*ok) {
        return Err(Error::Refused(format!(
            "{what}: migration {v} did not finish; restore from another backup"
        )));
    }
    for (v, sum, _) in rows {
        if let Some(m) = migrator.iter().find(|m| m.version == *v)
            && m.checksum.as_ref() != sum.as_slice()
        {
            return Err(not_ours(&format!(
                "migration {v} differs from this build's"
            )));
        }
    }
    let version = rows.iter().map(|(v, _, _)| *v).max().unwrap_or(0);
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    if version > known {
        return Err(Error::Refused(format!(
            "{what} has schema version {version}, newer than this clawscale knows \
             ({known}); use the clawscale release that wrote it, or a newer one"
        )));
    }
    Ok(version)
}
