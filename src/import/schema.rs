//! Which Headscale release wrote the database: read off the ids its
//! migrator (gormigrate) recorded in `migrations`, taken from each release's
//! `hscontrol/db/db.go` (0.23.0 through 0.29.2 and main as of June 2026).
//! The readers go by the tables and columns actually present; the release
//! names the schema generation in the summary and refuses what is too old.

use std::collections::BTreeSet;

use super::Error;
use super::source::Source;

/// A migration id and the first release that has it, newest first: the
/// first one present names the release.
const MARKERS: [(&str, &str); 8] = [
    ("202606191500-api-key-user-id", "main (after 0.29)"),
    ("202602201200-clear-tagged-node-user-id", "0.29"),
    ("202511011637-preauthkey-bcrypt", "0.28"),
    ("202507021200", "0.27"),
    ("202502131714", "0.26"),
    ("202501221827", "0.24.3–0.25"),
    ("202409271400", "0.24"),
    ("202406021630", "0.23"),
];

/// Every migration id clawscale knows from 0.23.0 to main; others are
/// reported as newer than this importer.
const KNOWN: [&str; 28] = [
    "202312101416",
    "202312101430",
    "202402151347",
    "2024041121742",
    "202406021630",
    "202409271400",
    "202407191627",
    "202408181235",
    "202501221827",
    "202501311657",
    "202502070949",
    "202502131714",
    "202502171819",
    "202505091439",
    "202505141324",
    "202507021200",
    "202510311551",
    "202511101554-drop-old-idx",
    "202511011637-preauthkey-bcrypt",
    "202511122344-remove-newline-index",
    "202511131445-node-forced-tags-to-tags",
    "202601121700-migrate-hostinfo-request-tags",
    "202602201200-clear-tagged-node-user-id",
    "202605221435-clear-zero-time-node-expiry",
    "202606181200-recover-null-tags-node-user-id",
    "202606191500-api-key-user-id",
    "202606191501-pre-auth-key-description",
    "202606201200-pre-auth-key-revoked",
];

/// What the readers need to know about the source's layout.
#[derive(Debug, Clone)]
pub(super) struct Schema {
    /// The release range, e.g. `0.26`.
    pub release: &'static str,
    /// Migration ids this importer does not know (a newer Headscale).
    pub unknown_migrations: Vec<String>,
    pub tables: BTreeSet<String>,
}

impl Schema {
    pub async fn detect(source: &Source) -> Result<Schema, Error> {
        let tables = source.tables().await?;
        for t in ["migrations", "users", "nodes"] {
            if !tables.contains(t) {
                return Err(Error::Source(format!(
                    "not a Headscale database: it has no `{t}` table"
                )));
            }
        }
        let ids: BTreeSet<String> = source
            .rows("migrations", &["id"])
            .await?
            .iter()
            .filter_map(|r| r.text("id").map(str::to_string))
            .collect();
        let Some(release) = MARKERS
            .iter()
            .find(|(id, _)| ids.contains(*id))
            .map(|(_, r)| *r)
        else {
            return Err(Error::Source(
                "this Headscale database predates 0.23: start Headscale 0.23 or later on it \
                 once (it migrates the schema), then import"
                    .into(),
            ));
        };
        let unknown_migrations = ids
            .iter()
            .filter(|id| !KNOWN.contains(&id.as_str()) && id.as_str() != OAUTH_MIGRATION)
            .cloned()
            .collect();
        Ok(Schema {
            release,
            unknown_migrations,
            tables,
        })
    }

    /// Releases before 0.26 kept routes in their own table.
    pub fn has_routes_table(&self) -> bool {
        self.tables.contains("routes")
    }

    /// 0.23 kept pre-auth key tags in their own table.
    pub fn has_key_tag_table(&self) -> bool {
        self.tables.contains("pre_auth_key_acl_tags")
    }
}

/// main's OAuth clients (not carried: their secrets are Headscale's own
/// v2 API credentials, see the README).
const OAUTH_MIGRATION: &str = "202606211200-oauth-clients-and-tokens";
