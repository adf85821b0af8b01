//! `clawscale backup --to FILE`, `clawscale restore [--from FILE]` and
//! `clawscale configtest`: they work on the configured database and files
//! directly, not through a running server (`db::backup` says how).
//!
//! Audit: a restore is recorded in the configured audit log, which this
//! command may write because no server can be running on a data directory
//! without a database. A backup changes nothing, and the log of a running
//! server belongs to that server's writer task (it rotates the file), so a
//! backup is not recorded there.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{Error, Result, output};
use crate::admin::audit::{Audit, Entry, Settings};
use crate::config::{Config, Database};
use crate::db::backup;

const PG_DUMP_HINT: &str = "PostgreSQL is backed up with its own tools: \
    `pg_dump --format=custom --file=FILE DATABASE_URL`; restore into an empty database \
    with `pg_restore --no-owner --dbname=DATABASE_URL FILE`, then run `clawscale restore` \
    (without --from) to check its schema before starting the server";

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The new backup file (0600); an existing file is never overwritten.
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// Database: `postgres://…`, `sqlite://PATH` or a SQLite file path.
    #[arg(long, env = "CLAWSCALE_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup to restore (SQLite). Without it, check the configured
    /// database's schema (for PostgreSQL after `pg_restore`).
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Database: `postgres://…`, `sqlite://PATH` or a SQLite file path.
    #[arg(long, env = "CLAWSCALE_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
}

fn refused(e: backup::Error) -> Error {
    Error::Usage(e.to_string())
}

pub(super) async fn backup(
    config: &Config,
    args: &BackupArgs,
    out: &mut dyn Write,
    format: Option<output::Format>,
) -> Result<()> {
    let Database::Sqlite { path, .. } = &config.database else {
        return Err(Error::Usage(PG_DUMP_HINT.into()));
    };
    let version = backup::backup_sqlite(path, &args.to)
        .await
        .map_err(refused)?;
    let value = serde_json::json!({
        "backup": args.to,
        "database": path,
        "schema_version": version,
    });
    output::emit(out, format, &value, || {
        format!(
            "Backed up {} to {} (schema version {version})",
            path.display(),
            args.to.display()
        )
    })
}

pub(super) async fn restore(
    config: &Config,
    args: &RestoreArgs,
    out: &mut dyn Write,
    format: Option<output::Format>,
) -> Result<()> {
    let (value, human) = match (&config.database, &args.from) {
        (Database::Postgres { .. }, Some(_)) => return Err(Error::Usage(PG_DUMP_HINT.into())),
        (Database::Postgres { url, .. }, None) => {
            let version = backup::check_postgres(url).await.map_err(refused)?;
            let value = serde_json::json!({ "database": "postgres", "schema_version": version });
            let human = format!(
                "The PostgreSQL database has schema version {version}; this clawscale knows up \
                 to {}",
                backup::known_version(true)
            );
            (value, human)
        }
        (Database::Sqlite { .. }, None) => {
            return Err(Error::Usage(
                "restore a SQLite database with --from FILE (a file made by `clawscale backup`)"
                    .into(),
            ));
        }
        (Database::Sqlite { path, .. }, Some(from)) => {
            let version = backup::restore_sqlite(from, path).await.map_err(refused)?;
            let after = serde_json::json!({ "from": from, "schema_version": version });
            record(config, "database.restore", path, after).await;
            let value = serde_json::json!({
                "restored": from,
                "database": path,
                "schema_version": version,
            });
            let human = format!(
                "Restored {} to {} (schema version {version}; this clawscale knows up to {})",
                from.display(),
                path.display(),
                backup::known_version(false)
            );
            (value, human)
        }
    };
    output::emit(out, format, &value, || human)
}

/// Appends `action` (a command that works on the database directly:
/// `database.restore`, `database.import`) to the audit log, if one is
/// configured.
pub(super) async fn record(config: &Config, action: &str, db: &Path, after: serde_json::Value) {
    let Some(path) = &config.audit.path else {
        return;
    };
    let settings = Settings {
        path: path.clone(),
        max_size: config.audit.max_size,
        max_files: config.audit.max_files,
    };
    match Audit::open(Some(settings)) {
        Ok(audit) => {
            audit
                .record(Entry {
                    time: chrono::Utc::now(),
                    request_id: None,
                    actor: "system".into(),
                    transport: "cli".into(),
                    action: action.into(),
                    object: Some(format!("database:{}", db.display())),
                    before: None,
                    after: Some(after),
                    result: "ok".into(),
                    error: None,
                    policy_revision: None,
                })
                .await;
        }
        // The change is made either way; say why it is not recorded.
        Err(e) => eprintln!("warning: {action} not recorded in the audit log: {e}"),
    }
}

/// `clawscale configtest` (as Headscale's): the config loads and validates.
pub(super) fn configtest(
    config: &Config,
    out: &mut dyn Write,
    format: Option<output::Format>,
) -> Result<()> {
    let value = serde_json::json!({ "result": "ok", "warnings": config.warnings });
    output::emit(out, format, &value, || {
        let mut text = String::from("Configuration is valid");
        for w in &config.warnings {
            text.push_str("\nwarning: ");
            text.push_str(w);
        }
        text
    })
}
