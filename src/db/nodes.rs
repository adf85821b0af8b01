//! The `nodes` table, and the registration transaction that consumes a
//! pre-auth key and writes the node atomically.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::rows::{json_vec, parse, parse_opt, to_json};
use super::transaction::write_tx;
use super::{Db, Error, Result, conflict_on_unique, on_pool};
use crate::types::{DnsLabel, Node, NodeId, PreAuthKeyId, UserId};

/// A node as persisted: the same shape as the domain type.
pub type NodeRecord = Node;

const COLUMNS: &str = "id, machine_key, node_key, disco_key, hostname, given_name, user_id, tags, \
     ipv4, ipv6, endpoints, home_derp, hostinfo, expiry, ephemeral, auth_key_id, cap_version, \
     created_at, last_seen, approved_routes, authorized";

macro_rules! node_from_row {
    ($r:expr) => {{
        let disco: String = $r.try_get("disco_key")?;
        let tags: String = $r.try_get("tags")?;
        let endpoints: String = $r.try_get("endpoints")?;
        let hostinfo: String = $r.try_get("hostinfo")?;
        let given: String = $r.try_get("given_name")?;
        Node {
            id: NodeId($r.try_get("id")?),
            machine_key: parse("machine key", &$r.try_get::<String, _>("machine_key")?)?,
            node_key: parse("node key", &$r.try_get::<String, _>("node_key")?)?,
            disco_key: if disco.is_empty() {
                Default::default()
            } else {
                parse("disco key", &disco)?
            },
            hostname: $r.try_get("hostname")?,
            given_name: DnsLabel::parse(&given).map_err(Error::Corrupt)?,
            user_id: UserId($r.try_get("user_id")?),
            tags: json_vec(&tags)?,
            ipv4: parse_opt("ipv4", $r.try_get("ipv4")?)?,
            ipv6: parse_opt("ipv6", $r.try_get("ipv6")?)?,
            endpoints: json_vec(&endpoints)?,
            home_derp: $r.try_get("home_derp")?,
            hostinfo: serde_json::from_str(&hostinfo)
                .map_err(|e| Error::Corrupt(format!("hostinfo: {e}")))?,
            expiry: $r.try_get("expiry")?,
            ephemeral: $r.try_get("ephemeral")?,
            auth_key_id: $r
                .try_get::<Option<i64>, _>("auth_key_id")?
                .map(PreAuthKeyId),
            cap_version: $r.try_get("cap_version")?,
            created_at: $r.try_get("created_at")?,
            last_seen: $r.try_get("last_seen")?,
            approved_routes: json_vec(&$r.try_get::<String, _>("approved_routes")?)?
                .iter()
                .map(|t| parse("approved route", t))
                .collect::<Result<Vec<ipnet::IpNet>>>()?,
            authorized: $r.try_get("authorized")?,
        }
    }};
}

/// Binds every column but `id`, in `COLUMNS` order, to `$1..$20`.
macro_rules! bind_node {
    ($q:expr, $n:expr) => {{
        let n = $n;
        $q.bind(n.machine_key.to_string())
            .bind(n.node_key.to_string())
            .bind(if n.disco_key.is_zero() {
                String::new()
            } else {
                n.disco_key.to_string()
            })
            .bind(&n.hostname)
            .bind(n.given_name.as_str())
            .bind(n.user_id.0)
            .bind(to_json(&n.tags))
            .bind(n.ipv4.map(|a| a.to_string()))
            .bind(n.ipv6.map(|a| a.to_string()))
            .bind(to_json(&n.endpoints))
            .bind(n.home_derp)
            .bind(n.hostinfo.to_string())
            .bind(n.expiry)
            .bind(n.ephemeral)
            .bind(n.auth_key_id.map(|k| k.0))
            .bind(n.cap_version)
            .bind(n.created_at)
            .bind(n.last_seen)
            .bind(to_json(&n.approved_routes))
            .bind(n.authorized)
    }};
}

/// An insert that keeps a given id (`$21`), for imports.
pub(super) const INSERT_WITH_ID: &str = "INSERT INTO nodes (machine_key, node_key, disco_key, \
     hostname, given_name, user_id, tags, ipv4, ipv6, endpoints, home_derp, hostinfo, expiry, \
     ephemeral, auth_key_id, cap_version, created_at, last_seen, approved_routes, authorized, id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
     $19, $20, $21)";

pub(super) use bind_node;

const INSERT: &str = "INSERT INTO nodes (machine_key, node_key, disco_key, hostname, given_name, \
     user_id, tags, ipv4, ipv6, endpoints, home_derp, hostinfo, expiry, ephemeral, auth_key_id, \
     cap_version, created_at, last_seen, approved_routes, authorized) VALUES ($1, $2, $3, $4, $5, \
     $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) RETURNING id";

const UPDATE: &str = "UPDATE nodes SET machine_key = $1, node_key = $2, disco_key = $3, \
     hostname = $4, given_name = $5, user_id = $6, tags = $7, ipv4 = $8, ipv6 = $9, \
     endpoints = $10, home_derp = $11, hostinfo = $12, expiry = $13, ephemeral = $14, \
     auth_key_id = $15, cap_version = $16, created_at = $17, last_seen = $18, \
     approved_routes = $19, authorized = $20 WHERE id = $21";

fn node_conflict(e: sqlx::Error) -> Error {
    conflict_on_unique(e, || {
        "node conflicts with an existing one (machine key, node key, name or address)".into()
    })
}

/// How a registration uses its pre-auth key.
#[derive(Debug, Clone, Copy)]
pub struct KeyUse {
    pub id: PreAuthKeyId,
    pub reusable: bool,
}

impl Db {
    pub async fn list_nodes(&self) -> Result<Vec<Node>> {
        let sql = format!("SELECT {COLUMNS} FROM nodes ORDER BY id");
        on_pool!(self, |p| {
            let rows = sqlx::query(&sql).fetch_all(p).await?;
            rows.iter()
                .map(|r| Ok(node_from_row!(r)))
                .collect::<Result<Vec<_>>>()
        })
    }

    /// The rows of `ids` that still exist (PostgreSQL: a replica reloading
    /// what another one changed).
    pub async fn nodes_by_id(&self, ids: &[NodeId]) -> Result<Vec<Node>> {
        let Db::Postgres(p) = self else {
            return Err(Error::Open("reloading by id needs PostgreSQL".into()));
        };
        let sql = format!("SELECT {COLUMNS} FROM nodes WHERE id = ANY($1) ORDER BY id");
        let ids: Vec<i64> = ids.iter().map(|i| i.0).collect();
        let rows = sqlx::query(&sql).bind(ids).fetch_all(p).await?;
        rows.iter()
            .map(|r| Ok(node_from_row!(r)))
            .collect::<Result<Vec<_>>>()
    }

    /// Writes a registration atomically: marks the pre-auth key used (a
    /// single-use key only if it is still unused, so two concurrent uses can
    /// never both succeed: TS-2025-007) and inserts the node (`node.id` ignored)
    /// or updates the existing row. Returns the node id.
    pub async fn register_node(
        &self,
        key: Option<KeyUse>,
        node: &Node,
        new: bool,
    ) -> Result<NodeId> {
        write_tx!(self, |c| {
            if let Some(k) = key {
                let sql = if k.reusable {
                    "UPDATE pre_auth_keys SET used = TRUE WHERE id = $1"
                } else {
                    "UPDATE pre_auth_keys SET used = TRUE WHERE id = $1 AND used = FALSE"
                };
                let n = sqlx::query(sql)
                    .bind(k.id.0)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                if n != 1 {
                    return Err(Error::KeyAlreadyUsed);
                }
            }
            let id = if new {
                let r = bind_node!(sqlx::query(INSERT), node)
                    .fetch_one(&mut *c)
                    .await
                    .map_err(node_conflict)?;
                NodeId(r.try_get("id")?)
            } else {
                let n = bind_node!(sqlx::query(UPDATE), node)
                    .bind(node.id.0)
                    .execute(&mut *c)
                    .await
                    .map_err(node_conflict)?
                    .rows_affected();
                if n == 0 {
                    return Err(Error::NotFound("node not found"));
                }
                node.id
            };
            Ok(id)
        })
    }

    /// Saves every column of an existing node.
    pub async fn save_node(&self, node: &Node) -> Result<()> {
        self.register_node(None, node, false).await.map(|_| ())
    }

    pub async fn delete_node(&self, id: NodeId) -> Result<()> {
        write_tx!(self, |c| {
            let n = sqlx::query("DELETE FROM nodes WHERE id = $1")
                .bind(id.0)
                .execute(&mut *c)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::NotFound("node not found"));
            }
            Ok(())
        })
    }

    /// Records last-seen times in one go (write-behind bookkeeping).
    pub async fn touch_last_seen(&self, ids: &[NodeId], at: DateTime<Utc>) -> Result<()> {
        write_tx!(self, |c| {
            for id in ids {
                sqlx::query("UPDATE nodes SET last_seen = $1 WHERE id = $2")
                    .bind(at)
                    .bind(id.0)
                    .execute(&mut *c)
                    .await?;
            }
            Ok(())
        })
    }
}
