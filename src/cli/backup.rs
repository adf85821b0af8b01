//! `clawscale backup --to FILE`, `clawscale restore [--from FILE]` and
//! `clawscale configtest`: they work on the configured database and files
//! directly, not through a running server (`db::backup` says how).
//!
//! A backup holds the server's key files beside the database (with
//! PostgreSQL, whose database `pg_dump` backs up, only the key files), so
//! the configured key paths are handed to `db::backup` with each key's
//! parser: a key the server could not load is neither backed up nor
//! restored.
//!
//! Audit: a restore is recorded in the configured audit log, which this
//! command may write because no server is running on a data directory it
//! restores into: one without a database, or (key files only) one whose
//! server never made its Noise key, which a server does when it starts. A
//! backup changes nothing, and the log of a running server belongs to that
//! server's writer task (it rotates the file), so a backup is not recorded
//! there.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{Error, Result, output};
use crate::admin::audit::{Audit, Entry, Settings};
use crate::config::{Config, Database};
use crate::db::backup::{self, KeyFile, KeyRole, Restored};

const PG_DUMP_HINT: &str = "back up the PostgreSQL database with its own tools: \
    `pg_dump --format=custom --file=FILE DATABASE_URL`; restore it into an empty database \
    with `pg_restore --no-owner --dbname=DATABASE_URL FILE`, then run `clawscale restore \
    --from KEYS_BACKUP` to check its schema and put the key files back before starting the \
    server";

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
    /// The backup to restore (a file made by `clawscale backup`). Without
    /// it, check the configured PostgreSQL database's schema only.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Database: `postgres://…`, `sqlite://PATH` or a SQLite file path.
    #[arg(long, env = "CLAWSCALE_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
}

fn refused(e: backup::Error) -> Error {
    Error::Usage(e.to_string())
}

/// The configured server's key files, each with its owner's parser.
fn key_files(config: &Config) -> Vec<KeyFile> {
    let mut keys = vec![KeyFile {
        role: KeyRole::Noise,
        path: config.noise_private_key_path.clone(),
        valid: |text| crate::noise::key::decode(text).is_some(),
    }];
    if let Some(d) = &config.derp.server {
        keys.push(KeyFile {
            role: KeyRole::Derp,
            path: d.private_key_path.clone(),
            valid: |text| crate::derp::key::parse(text).is_some(),
        });
    }
    keys
}

fn names(roles: &[KeyRole]) -> Vec<&'static str> {
    roles.iter().map(|r| r.name()).collect()
}

fn path_of(keys: &[KeyFile], role: KeyRole) -> String {
    keys.iter()
        .find(|k| k.role == role)
        .map(|k| k.path.display().to_string())
        .unwrap_or_default()
}

/// Human text: the summary, then one `warning:` line each.
fn with_warnings(mut text: String, warnings: &[String]) -> String {
    for w in warnings {
        text.push_str("\nwarning: ");
        text.push_str(w);
    }
    text
}

pub(super) async fn backup(
    config: &Config,
    args: &BackupArgs,
    out: &mut dyn Write,
    format: Option<output::Format>,
) -> Result<()> {
    let keys = key_files(config);
    let (backed, database) = match &config.database {
        Database::Sqlite { path, .. } => (
            backup::backup_sqlite(path, &args.to, &keys).await,
            Some(path),
        ),
        Database::Postgres { .. } => (backup::backup_keys(&args.to, &keys).await, None),
    };
    let backed = backed.map_err(refused)?;
    let mut warnings: Vec<String> = backed
        .missing
        .iter()
        .map(|r| {
            format!(
                "no {} at {}, so it is not in the backup (the server makes it when it starts)",
                r.name(),
                path_of(&keys, *r)
            )
        })
        .collect();
    if database.is_none() {
        warnings.push(format!(
            "the database is not in this backup: {PG_DUMP_HINT}"
        ));
    }
    let value = serde_json::json!({
        "backup": args.to,
        "database": database,
        "schema_version": backed.schema_version,
        "key_files": names(&backed.keys),
        "warnings": warnings,
    });
    output::emit(out, format, &value, || {
        let what = match (database, backed.schema_version) {
            (Some(db), Some(v)) => format!("{} (schema version {v}) and ", db.display()),
            _ => String::new(),
        };
        let text = format!(
            "Backed up {what}the key files [{}] to {}",
            names(&backed.keys).join(", "),
            args.to.display()
        );
        with_warnings(text, &warnings)
    })
}

pub(super) async fn restore(
    config: &Config,
    args: &RestoreArgs,
    out: &mut dyn Write,
    format: Option<output::Format>,
) -> Result<()> {
    let keys = key_files(config);
    match (&config.database, &args.from) {
        (Database::Postgres { url, .. }, None) => {
            let version = backup::check_postgres(url).await.map_err(refused)?;
            let value = serde_json::json!({ "database": "postgres", "schema_version": version });
            output::emit(out, format, &value, || pg_version_text(version))
        }
        (Database::Postgres { url, .. }, Some(from)) => {
            // The schema first: nothing is written for a database that
            // `pg_restore` has not filled yet.
            let version = backup::check_postgres(url).await.map_err(refused)?;
            let restored = backup::restore_keys(from, &keys).await.map_err(refused)?;
            if !restored.written.is_empty() {
                let object = format!("keys:{}", config.data_dir.display());
                record(config, "keys.restore", object, audit_after(from, &restored)).await;
            }
            let warnings = restore_warnings(from, &keys, &restored);
            let mut value = report_json(from, "postgres", &restored, &warnings);
            value["schema_version"] = version.into();
            output::emit(out, format, &value, || {
                let text = pg_version_text(version) + &keys_text(&keys, &restored);
                with_warnings(text, &warnings)
            })
        }
        (Database::Sqlite { .. }, None) => Err(Error::Usage(
            "restore a SQLite database with --from FILE (a file made by `clawscale backup`)".into(),
        )),
        (Database::Sqlite { path, .. }, Some(from)) => {
            let restored = backup::restore_sqlite(from, path, &keys)
                .await
                .map_err(refused)?;
            let object = format!("database:{}", path.display());
            record(
                config,
                "database.restore",
                object,
                audit_after(from, &restored),
            )
            .await;
            let warnings = restore_warnings(from, &keys, &restored);
            let value = report_json(from, &path.display().to_string(), &restored, &warnings);
            output::emit(out, format, &value, || {
                let text = format!(
                    "Restored {} to {} (schema version {}; this clawscale knows up to {})",
                    from.display(),
                    path.display(),
                    restored.schema_version.unwrap_or_default(),
                    backup::known_version(false)
                ) + &keys_text(&keys, &restored);
                with_warnings(text, &warnings)
            })
        }
    }
}

fn pg_version_text(version: i64) -> String {
    format!(
        "The PostgreSQL database has schema version {version}; this clawscale knows up to {}",
        backup::known_version(true)
    )
}

/// One line per key file written or found in place.
fn keys_text(keys: &[KeyFile], r: &Restored) -> String {
    let written = r
        .written
        .iter()
        .map(|(role, p)| format!("\nRestored {} to {}", role.name(), p.display()));
    let present = r.present.iter().map(|role| {
        format!(
            "\n{} already holds the backup's {}",
            path_of(keys, *role),
            role.name()
        )
    });
    written.chain(present).collect()
}

fn report_json(
    from: &Path,
    database: &str,
    r: &Restored,
    warnings: &[String],
) -> serde_json::Value {
    let written: Vec<_> = r
        .written
        .iter()
        .map(|(role, p)| serde_json::json!({ "name": role.name(), "path": p }))
        .collect();
    serde_json::json!({
        "restored": from,
        "database": database,
        "schema_version": r.schema_version,
        "key_files": written,
        "key_files_present": names(&r.present),
        "warnings": warnings,
    })
}

fn audit_after(from: &Path, r: &Restored) -> serde_json::Value {
    let written: Vec<_> = r.written.iter().map(|(role, _)| role.name()).collect();
    serde_json::json!({
        "from": from,
        "schema_version": r.schema_version,
        "key_files": written,
    })
}

fn restore_warnings(from: &Path, keys: &[KeyFile], r: &Restored) -> Vec<String> {
    if !r.keys_in_backup {
        let files: Vec<String> = keys
            .iter()
            .map(|k| format!("{} to {}", k.role.name(), k.path.display()))
            .collect();
        return vec![format!(
            "{} holds no key files (it was made before backups held them): copy {} from the \
             old data directory before starting the server, or it makes new keys, which its \
             clients do not know",
            from.display(),
            files.join(" and ")
        )];
    }
    let absent = r.absent.iter().map(|role| {
        format!(
            "the backup holds no {} (there was none when it was made); the server makes a new \
             one at {}",
            role.name(),
            path_of(keys, *role)
        )
    });
    let unused = r.unused.iter().map(|role| {
        format!(
            "the backup's {} is not restored: this configuration does not use it (the \
             embedded DERP server is off)",
            role.name()
        )
    });
    absent.chain(unused).collect()
}

/// Appends `action` to the audit log, if one is configured.
pub(super) async fn record(
    config: &Config,
    action: &str,
    object: String,
    after: serde_json::Value,
) {
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
                    object: Some(object),
                    before: None,
                    after: Some(after),
                    result: "ok".into(),
                    error: None,
                    policy_revision: None,
                })
                .await;
        }
        // The restore is done either way; say why it is not recorded.
        Err(e) => eprintln!("warning: restore not recorded in the audit log: {e}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<KeyFile> {
        let data = std::path::Path::new("/srv/data");
        [
            (KeyRole::Noise, "noise_private.key"),
            (KeyRole::Derp, "derp_server_private.key"),
        ]
        .into_iter()
        .map(|(role, name)| KeyFile {
            role,
            path: data.join(name),
            valid: |_| true,
        })
        .collect()
    }

    fn restored(keys_in_backup: bool) -> Restored {
        Restored {
            schema_version: Some(1),
            keys_in_backup,
            written: Vec::new(),
            present: Vec::new(),
            absent: Vec::new(),
            unused: Vec::new(),
        }
    }

    /// An old backup restores with a warning naming the files to copy;
    /// a key the backup lacks, or this config does not use, is named too.
    #[test]
    fn restore_warns_about_keys_it_does_not_put_back() {
        let from = Path::new("old.backup");
        let w = restore_warnings(from, &keys(), &restored(false));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("holds no key files"), "{w:?}");
        assert!(w[0].contains("/srv/data/noise_private.key"), "{w:?}");
        assert!(w[0].contains("/srv/data/derp_server_private.key"), "{w:?}");

        assert!(restore_warnings(from, &keys(), &restored(true)).is_empty());
        let r = Restored {
            absent: vec![KeyRole::Noise],
            unused: vec![KeyRole::Derp],
            ..restored(true)
        };
        let w = restore_warnings(from, &keys()[..1], &r);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("holds no noise_private.key"), "{w:?}");
        assert!(w[1].contains("DERP server is off"), "{w:?}");
    }
}
