//! Reading Headscale's rows as Headscale wrote them, one reader per table,
//! each covering every schema generation (`schema`):
//! - users: 0.23 has only `name`; 0.24 added `display_name`, `email`,
//!   `provider_identifier` (`<issuer>/<subject>` for OIDC users),
//!   `provider` and `profile_pic_url`. Soft-deleted rows (`deleted_at`) are
//!   not users any more.
//! - pre-auth keys: before 0.28 the key in clear (`key`, 48 hex digits);
//!   from 0.28 `prefix` plus a bcrypt `hash` (legacy keys keep `key`);
//!   tags in `pre_auth_key_acl_tags` (0.23) or a JSON `tags` column;
//!   `description` and `revoked` on main.
//! - API keys: `prefix` and a bcrypt `hash` in every release.
//! - nodes: keys as `mkey:`/`nodekey:`/`discokey:` text, addresses as text,
//!   `host_info` JSON (`hostinfo` in databases older than 0.23), tags in
//!   `forced_tags` (before 0.28) or `tags`, approved routes in the `routes`
//!   table (`enabled`; `advertised` = announced, before 0.26) or a JSON
//!   `approved_routes` column, `user_id` NULL for tagged nodes (0.29+),
//!   an expiry of year 1 meaning none (Go's zero time, before 0.29).
//! - the policy: the newest non-deleted row of `policies`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::Error;
use super::schema::Schema;
use super::source::{Row, Source};

#[derive(Debug, Clone)]
pub(super) struct HsUser {
    pub id: i64,
    pub name: String,
    pub display_name: String,
    pub email: String,
    pub provider: String,
    pub provider_identifier: Option<String>,
    pub profile_pic_url: String,
    pub created_at: Option<DateTime<Utc>>,
    pub deleted: bool,
}

#[derive(Debug, Clone)]
pub(super) struct HsPreAuthKey {
    pub id: i64,
    /// The key in clear (before 0.28, and legacy keys after).
    pub key: Option<String>,
    pub prefix: Option<String>,
    pub hash: Option<String>,
    pub user_id: Option<i64>,
    pub reusable: bool,
    pub ephemeral: bool,
    pub used: bool,
    pub tags: Vec<String>,
    pub expiration: Option<DateTime<Utc>>,
    pub revoked: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub description: String,
}

#[derive(Debug, Clone)]
pub(super) struct HsApiKey {
    pub id: i64,
    pub prefix: String,
    pub hash: String,
    pub expiration: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub(super) struct HsNode {
    pub id: i64,
    pub machine_key: String,
    pub node_key: String,
    pub disco_key: String,
    pub endpoints: Vec<String>,
    pub hostinfo: serde_json::Value,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub hostname: String,
    pub given_name: String,
    pub user_id: Option<i64>,
    pub tags: Vec<String>,
    pub auth_key_id: Option<i64>,
    pub last_seen: Option<DateTime<Utc>>,
    pub expiry: Option<DateTime<Utc>>,
    pub approved_routes: Vec<String>,
    /// From the `routes` table's `advertised` (before 0.26); later
    /// releases keep them only in `hostinfo.RoutableIPs`.
    pub announced_routes: Vec<String>,
    pub created_at: Option<DateTime<Utc>>,
}

/// Everything read from the source.
#[derive(Debug, Clone, Default)]
pub(super) struct HsData {
    pub users: Vec<HsUser>,
    pub preauth_keys: Vec<HsPreAuthKey>,
    pub api_keys: Vec<HsApiKey>,
    pub nodes: Vec<HsNode>,
    pub policy: Option<String>,
    /// Rows of main's `oauth_clients` (not carried).
    pub oauth_clients: usize,
    /// Tags are in `forced_tags` (before 0.28): requested tags still live
    /// in hostinfo only.
    pub legacy_tags: bool,
}

pub(super) async fn read_all(source: &Source, schema: &Schema) -> Result<HsData, Error> {
    Ok(HsData {
        users: users(source).await?,
        preauth_keys: preauth_keys(source, schema).await?,
        api_keys: api_keys(source, schema).await?,
        nodes: nodes(source, schema).await?,
        policy: policy(source, schema).await?,
        oauth_clients: if schema.tables.contains("oauth_clients") {
            source.rows("oauth_clients", &["id"]).await?.len()
        } else {
            0
        },
        legacy_tags: source.columns("nodes").await?.contains("forced_tags"),
    })
}

async fn users(source: &Source) -> Result<Vec<HsUser>, Error> {
    let rows = source
        .rows(
            "users",
            &[
                "id",
                "name",
                "display_name",
                "email",
                "provider",
                "provider_identifier",
                "profile_pic_url",
                "created_at",
                "deleted_at",
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(HsUser {
                id: id(r, "users")?,
                name: string(r, "name"),
                display_name: string(r, "display_name"),
                email: string(r, "email"),
                provider: string(r, "provider"),
                provider_identifier: r.text("provider_identifier").map(str::to_string),
                profile_pic_url: string(r, "profile_pic_url"),
                created_at: time(r, "created_at")?,
                deleted: r.text("deleted_at").is_some(),
            })
        })
        .collect()
}

async fn preauth_keys(source: &Source, schema: &Schema) -> Result<Vec<HsPreAuthKey>, Error> {
    if !schema.tables.contains("pre_auth_keys") {
        return Ok(Vec::new());
    }
    let mut tag_table: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    if schema.has_key_tag_table() {
        for r in source
            .rows("pre_auth_key_acl_tags", &["pre_auth_key_id", "tag"])
            .await?
        {
            if let (Some(k), Some(t)) = (int(&r, "pre_auth_key_id")?, r.text("tag")) {
                tag_table.entry(k).or_default().push(t.to_string());
            }
        }
    }
    let rows = source
        .rows(
            "pre_auth_keys",
            &[
                "id",
                "key",
                "prefix",
                "hash",
                "user_id",
                "reusable",
                "ephemeral",
                "used",
                "tags",
                "expiration",
                "revoked",
                "created_at",
                "description",
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let id = id(r, "pre_auth_keys")?;
            let mut tags = json_list(r, "tags")?;
            tags.extend(tag_table.remove(&id).unwrap_or_default());
            Ok(HsPreAuthKey {
                id,
                key: r.text("key").map(str::to_string),
                prefix: r.text("prefix").map(str::to_string),
                hash: r.text("hash").map(blob_text),
                user_id: int(r, "user_id")?,
                reusable: boolean(r, "reusable"),
                ephemeral: boolean(r, "ephemeral"),
                used: boolean(r, "used"),
                tags,
                expiration: time(r, "expiration")?,
                revoked: time(r, "revoked")?,
                created_at: time(r, "created_at")?,
                description: string(r, "description"),
            })
        })
        .collect()
}

async fn api_keys(source: &Source, schema: &Schema) -> Result<Vec<HsApiKey>, Error> {
    if !schema.tables.contains("api_keys") {
        return Ok(Vec::new());
    }
    let rows = source
        .rows(
            "api_keys",
            &[
                "id",
                "prefix",
                "hash",
                "expiration",
                "last_seen",
                "created_at",
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(HsApiKey {
                id: id(r, "api_keys")?,
                prefix: string(r, "prefix"),
                hash: r.text("hash").map(blob_text).unwrap_or_default(),
                expiration: time(r, "expiration")?,
                last_seen: time(r, "last_seen")?,
                created_at: time(r, "created_at")?,
            })
        })
        .collect()
}

async fn nodes(source: &Source, schema: &Schema) -> Result<Vec<HsNode>, Error> {
    // Before 0.26: node id → (approved, announced) from the routes table.
    let mut routes: BTreeMap<i64, (Vec<String>, Vec<String>)> = BTreeMap::new();
    if schema.has_routes_table() {
        let rows = source
            .rows(
                "routes",
                &["node_id", "prefix", "advertised", "enabled", "deleted_at"],
            )
            .await?;
        for r in rows {
            let (Some(node), Some(prefix)) = (int(&r, "node_id")?, r.text("prefix")) else {
                continue;
            };
            if r.text("deleted_at").is_some() {
                continue;
            }
            let entry = routes.entry(node).or_default();
            if boolean(&r, "enabled") {
                entry.0.push(prefix.to_string());
            }
            if boolean(&r, "advertised") {
                entry.1.push(prefix.to_string());
            }
        }
    }
    let rows = source
        .rows(
            "nodes",
            &[
                "id",
                "machine_key",
                "node_key",
                "disco_key",
                "endpoints",
                "host_info",
                "hostinfo",
                "ipv4",
                "ipv6",
                "hostname",
                "given_name",
                "user_id",
                "forced_tags",
                "tags",
                "auth_key_id",
                "last_seen",
                "expiry",
                "approved_routes",
                "created_at",
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let id = id(r, "nodes")?;
            let hostinfo_text = r.text("host_info").or_else(|| r.text("hostinfo"));
            let hostinfo = match hostinfo_text {
                Some(t) => serde_json::from_str(t)
                    .map_err(|e| Error::Source(format!("node {id}: host_info is not JSON: {e}")))?,
                None => serde_json::Value::Null,
            };
            let mut tags = json_list(r, "tags")?;
            tags.extend(json_list(r, "forced_tags")?);
            let (mut approved, announced) = routes.remove(&id).unwrap_or_default();
            approved.extend(json_list(r, "approved_routes")?);
            Ok(HsNode {
                id,
                machine_key: string(r, "machine_key"),
                node_key: string(r, "node_key"),
                disco_key: string(r, "disco_key"),
                endpoints: json_list(r, "endpoints")?,
                hostinfo,
                ipv4: r.text("ipv4").map(str::to_string),
                ipv6: r.text("ipv6").map(str::to_string),
                hostname: string(r, "hostname"),
                given_name: string(r, "given_name"),
                user_id: int(r, "user_id")?,
                tags,
                auth_key_id: int(r, "auth_key_id")?,
                last_seen: time(r, "last_seen")?,
                expiry: time(r, "expiry")?,
                approved_routes: approved,
                announced_routes: announced,
                created_at: time(r, "created_at")?,
            })
        })
        .collect()
}

async fn policy(source: &Source, schema: &Schema) -> Result<Option<String>, Error> {
    if !schema.tables.contains("policies") {
        return Ok(None);
    }
    let rows = source
        .rows("policies", &["id", "data", "deleted_at"])
        .await?;
    Ok(rows
        .iter()
        .rev()
        .find(|r| r.text("deleted_at").is_none() && r.text("data").is_some())
        .and_then(|r| r.text("data").map(str::to_string)))
}

fn string(r: &Row, column: &str) -> String {
    r.text(column).unwrap_or_default().to_string()
}

fn id(r: &Row, table: &str) -> Result<i64, Error> {
    int(r, "id")?.ok_or_else(|| Error::Source(format!("a row of {table} has no id")))
}

fn int(r: &Row, column: &str) -> Result<Option<i64>, Error> {
    r.text(column)
        .map(|t| {
            t.trim()
                .parse::<i64>()
                .map_err(|_| Error::Source(format!("{column} {t:?} is not a number")))
        })
        .transpose()
}

/// SQLite `numeric` booleans read as `1`/`0`, PostgreSQL's as `true`/`false`.
fn boolean(r: &Row, column: &str) -> bool {
    matches!(
        r.text(column).map(|t| t.trim().to_ascii_lowercase()),
        Some(t) if t == "1" || t == "true" || t == "t"
    )
}

/// A JSON list of strings; NULL, empty and `null` (a nil Go slice) are
/// empty lists.
fn json_list(r: &Row, column: &str) -> Result<Vec<String>, Error> {
    match r.text(column) {
        None => Ok(Vec::new()),
        Some(t) => {
            let v: Option<Vec<String>> = serde_json::from_str(t).map_err(|e| {
                Error::Source(format!("{column} {t:?} is not a JSON list of strings: {e}"))
            })?;
            Ok(v.unwrap_or_default())
        }
    }
}

/// A bcrypt hash read as text: PostgreSQL prints `bytea` as `\x<hex>`.
fn blob_text(t: &str) -> String {
    match t.strip_prefix("\\x").and_then(|h| hex::decode(h).ok()) {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => t.to_string(),
    }
}

/// gorm's SQLite text (`2024-09-27 14:26:14.737869796+00:00`), PostgreSQL's
/// `timestamptz` text (`2024-09-27 16:26:14.737869+02`) or RFC 3339. Go's
/// zero time (year 1), which older releases wrote for "no expiry", is none.
fn time(r: &Row, column: &str) -> Result<Option<DateTime<Utc>>, Error> {
    let Some(t) = r.text(column) else {
        return Ok(None);
    };
    let parsed = parse_time(t)
        .ok_or_else(|| Error::Source(format!("{column} {t:?} is not a time Headscale writes")))?;
    Ok((parsed.format("%Y").to_string() != "0001").then_some(parsed))
}

pub(super) fn parse_time(t: &str) -> Option<DateTime<Utc>> {
    let t = t.trim().replacen('T', " ", 1);
    if let Ok(d) = DateTime::parse_from_str(&t, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Some(d.with_timezone(&Utc));
    }
    if let Some(naive) = t.strip_suffix('Z')
        && let Ok(d) = NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f")
    {
        return Some(d.and_utc());
    }
    NaiveDateTime::parse_from_str(&t, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|d| d.and_utc())
}
