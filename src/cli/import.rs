//! `clawscale import headscale --db PATH_OR_URL [--noise-key PATH]
//! [--policy PATH] [--dry-run]`: brings a Headscale tailnet into the
//! configured (empty) database and key file (`crate::import` says what and
//! how). Run it with the server stopped; the import is recorded in the
//! audit log as `database.import`, like a restore.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Error, Result, backup, output};
use crate::config::{Config, Database};
use crate::db::Db;
use crate::import::{self, Options};

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import a Headscale (0.23–0.29, main) database, its Noise key and
    /// policy into an empty clawscale database.
    Headscale(HeadscaleArgs),
}

#[derive(Debug, Args)]
pub struct HeadscaleArgs {
    /// Headscale's database: its SQLite file or a `postgres://` URL.
    #[arg(long, value_name = "PATH_OR_POSTGRES_URL")]
    pub db: String,
    /// Headscale's `noise_private.key`, so this server presents the same
    /// control key.
    #[arg(long, value_name = "PATH")]
    pub noise_key: Option<PathBuf>,
    /// A policy file to import instead of the one in Headscale's database.
    #[arg(long, value_name = "PATH")]
    pub policy: Option<PathBuf>,
    /// Run every check and print the summary; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Target database: `postgres://…`, `sqlite://PATH` or a SQLite path.
    #[arg(long, env = "CLAWSCALE_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
}

impl ImportCommand {
    pub fn database_url(&self) -> Option<String> {
        let ImportCommand::Headscale(a) = self;
        a.database_url.clone()
    }
}

pub(super) async fn run(
    config: &Config,
    cmd: &ImportCommand,
    out: &mut dyn Write,
    format: Option<output::Format>,
) -> Result<()> {
    let ImportCommand::Headscale(args) = cmd;
    let opts = Options {
        source: &args.db,
        noise_key: args.noise_key.as_deref(),
        policy: args.policy.as_deref(),
        target_noise_key: &config.noise_private_key_path,
        dry_run: args.dry_run,
    };
    // A dry run must not create a SQLite file that does not exist yet.
    let fresh = matches!(&config.database, Database::Sqlite { path, .. } if !path.exists());
    let db = if args.dry_run && fresh {
        None
    } else {
        crate::app::create_private_dir(&config.data_dir)
            .map_err(|e| Error::Usage(e.to_string()))?;
        let target = crate::app::db_target(&config.database);
        Some(
            Db::connect(&target)
                .await
                .map_err(|e| Error::Usage(format!("cannot open the clawscale database: {e}")))?,
        )
    };
    let result = import::headscale(&opts, db.as_ref(), chrono::Utc::now()).await;
    if let Some(db) = &db {
        db.close().await;
    }
    let report = result.map_err(failed)?;
    if !args.dry_run {
        let object = match &config.database {
            Database::Sqlite { path, .. } => format!("database:{}", path.display()),
            Database::Postgres { .. } => "database:postgres".to_string(),
        };
        let after = serde_json::json!({
            "source_release": report.source_release,
            "users": report.users,
            "nodes": report.nodes,
            "preauth_keys": report.preauth_keys,
            "api_keys": report.api_keys,
            "policy": report.policy,
        });
        backup::record(config, "database.import", object, after).await;
    }
    output::emit(out, format, &report, || report.to_string())
}

/// Every import failure is the operator's to fix (or names the database
/// that failed); the message says which and that nothing was written.
fn failed(e: import::Error) -> Error {
    Error::Usage(e.to_string())
}
