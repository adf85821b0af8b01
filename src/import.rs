//! Importing a Headscale tailnet (`clawscale import headscale`): users
//! (with their OIDC identities), nodes (keys, addresses, names, tags,
//! routes, expiry, hostinfo), pre-auth keys, API keys and the policy, read
//! from a Headscale database of release 0.23 through 0.29 or main (SQLite or
//! PostgreSQL), plus Headscale's Noise key, into an empty clawscale
//! database. Devices then reconnect to clawscale on the same URL without
//! logging in again: same control key, same machine and node keys, same
//! addresses and names.
//!
//! Rooms: `source` (the Headscale database, read-only, as text), `schema`
//! (which release wrote it), `read` (its rows per table across releases),
//! `mapping` (→ our model, with what is skipped and why), `noise_key` (the
//! key file), `summary` (the report). The write is `db::Db::import`: one
//! transaction that refuses a non-empty target, so an import is all or
//! nothing; the key file is written after the commit.
//!
//! Imported keys keep Headscale's hashes (bcrypt) and text forms, checked
//! by `types::secret`; keys made afterwards are clawscale's own.
//!
//! The policy (`--policy FILE`, else the newest one stored in Headscale's
//! database) must pass clawscale's parser and its checks against the
//! imported nodes, or the import fails with the error's line and column and
//! writes nothing: fix the file and pass it with `--policy`.
//!
//! May depend on: `db`, `types`, `policy`, `state::policy` (topology),
//! `noise::key`, `admin` (the tagged-owner name). Called by `cli`.

mod mapping;
mod noise_key;
mod read;
mod schema;
mod source;
mod summary;

#[cfg(test)]
mod tests;

use std::path::Path;

use chrono::{DateTime, Utc};

use crate::db::Db;
use crate::policy::{Policy, PolicyError};
use crate::state::policy::topology_of;

pub use summary::{Report, Skipped};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Headscale database could not be opened or read.
    #[error("{0}")]
    Source(String),
    /// The policy was rejected; nothing was written.
    #[error(
        "the policy from {origin} is rejected: {error}; nothing was imported (fix the policy \
         and pass it with --policy FILE)"
    )]
    Policy { origin: String, error: PolicyError },
    #[error("noise key: {0}")]
    NoiseKey(String),
    /// The target refused the import (not empty, a collision); nothing
    /// was written.
    #[error("{0}; nothing was imported")]
    Target(String),
    #[error("the clawscale database failed: {0}; nothing was imported")]
    Database(crate::db::Error),
}

/// What to import, and where the key file goes.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// A SQLite file path or a `postgres://` URL.
    pub source: &'a str,
    /// Headscale's `noise_private.key`.
    pub noise_key: Option<&'a Path>,
    /// A policy file to use instead of the one in Headscale's database.
    pub policy: Option<&'a Path>,
    /// Our `noise.private_key_path`.
    pub target_noise_key: &'a Path,
    /// Check everything, write nothing.
    pub dry_run: bool,
}

/// Imports into `target`; `None` is a target that does not exist yet
/// (a dry run on a fresh SQLite data dir, which must not create it).
pub async fn headscale(
    opts: &Options<'_>,
    target: Option<&Db>,
    now: DateTime<Utc>,
) -> Result<Report, Error> {
    if let Some(db) = target {
        let first = db.first_non_empty_table().await.map_err(Error::Database)?;
        if let Some((table, rows)) = first {
            return Err(Error::Target(format!(
                "the clawscale database is not empty ({table} holds {rows} rows); import only \
                 into a fresh one"
            )));
        }
    }
    let source = source::Source::open(opts.source).await?;
    let read = async {
        let schema = schema::Schema::detect(&source).await?;
        let data = read::read_all(&source, &schema).await?;
        Ok::<_, Error>((schema, data))
    }
    .await;
    source.close().await;
    let (schema, data) = read?;

    let (policy_text, origin) = match opts.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::Source(format!("cannot read the policy {}: {e}", path.display()))
            })?;
            (Some(text), format!("{}", path.display()))
        }
        None => (data.policy.clone(), "Headscale's database".to_string()),
    };
    let rejected = |error| Error::Policy {
        origin: origin.clone(),
        error,
    };
    let policy = policy_text
        .as_deref()
        .map(Policy::parse)
        .transpose()
        .map_err(rejected)?;

    let mut report = Report {
        dry_run: opts.dry_run,
        source_release: schema.release.to_string(),
        ..Report::default()
    };
    if !schema.unknown_migrations.is_empty() {
        report.note(format!(
            "the source has migrations newer than this importer knows ({}); read by the \
             columns present",
            schema.unknown_migrations.join(", ")
        ));
    }
    let mut set = mapping::map(&data, policy.as_ref(), now, &mut report);
    if let Some(p) = &policy {
        p.check(&topology_of(&set.users, &set.nodes))
            .map_err(rejected)?;
    }
    set.policy = policy_text;

    let plan = noise_key::Plan::new(opts.noise_key, opts.target_noise_key)?;
    report.noise_key = plan.describe(opts.dry_run);
    report.users = set.users.len();
    report.nodes = set.nodes.len();
    report.preauth_keys = set.preauth_keys.len();
    report.api_keys = set.api_keys.len();
    report.policy = set.policy.is_some();
    if opts.dry_run {
        return Ok(report);
    }
    let db = target.ok_or_else(|| Error::Target("no target database".into()))?;
    db.import(&set, now).await.map_err(|e| match e {
        crate::db::Error::Conflict(msg) => Error::Target(msg),
        other => Error::Database(other),
    })?;
    plan.apply()?;
    Ok(report)
}
