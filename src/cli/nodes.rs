//! `clawscale nodes …`, with Headscale v0.29's flags (`-i/--identifier`,
//! `-u/--user`, `-e/--expiry`, `-d/--disable`), plus `approve` (device
//! approval) and `register --key` (Headscale's older name for
//! `auth register`, kept as a deprecated alias).

use clap::Subcommand;

use super::client::enc;
use super::output::{NodeView, cell_time, is_past, table};
use super::{Ctx, Error, Result};
use crate::api::v1::model::{
    Empty, ExpireNodeRequest, ListNodesResponse, Node, NodeCertificate, NodeResponse,
};

#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// List nodes.
    #[command(visible_aliases = ["ls", "show"])]
    List {
        /// Only nodes of this user (name or id).
        #[arg(short, long)]
        user: Option<String>,
    },
    /// Delete a node.
    #[command(visible_alias = "del")]
    Delete {
        #[arg(short, long, value_name = "ID")]
        identifier: u64,
    },
    /// Expire (log out) a node: it must log in again.
    #[command(visible_aliases = ["logout", "exp", "e"])]
    Expire {
        #[arg(short, long, value_name = "ID")]
        identifier: u64,
        /// When (RFC 3339); now if unset.
        #[arg(short, long)]
        expiry: Option<String>,
        /// Never expire.
        #[arg(short, long, conflicts_with = "expiry")]
        disable: bool,
    },
    /// Approve a node (device approval, `node.require_approval`).
    Approve {
        #[arg(value_name = "ID", required_unless_present = "identifier")]
        id: Option<u64>,
        #[arg(short, long, value_name = "ID", conflicts_with = "id")]
        identifier: Option<u64>,
        /// Take the approval away instead.
        #[arg(long)]
        revoke: bool,
    },
    /// Deprecated: use `clawscale auth register --auth-id ID --user USER`.
    Register {
        /// The auth id (`cskey-authreq-…`) from the client's login URL.
        #[arg(short, long, value_name = "ID")]
        key: String,
        #[arg(short, long)]
        user: String,
    },
    /// Rename a node (its MagicDNS name).
    #[command(visible_alias = "mv")]
    Rename {
        #[arg(short, long, value_name = "ID")]
        identifier: u64,
        new_name: String,
    },
}

pub(super) async fn run(ctx: &mut Ctx<'_>, cmd: NodesCommand) -> Result<()> {
    match cmd {
        NodesCommand::List { user } => {
            let query = user
                .map(|u| format!("?user={}", enc(&u)))
                .unwrap_or_default();
            let r: ListNodesResponse = ctx.client.get(&format!("/api/v1/node{query}")).await?;
            let views: Vec<NodeView> = r.nodes.iter().map(NodeView::from).collect();
            ctx.emit(&views, || nodes_table(&r.nodes))
        }
        NodesCommand::Delete { identifier } => {
            let path = format!("/api/v1/node/{identifier}");
            let r: NodeResponse = ctx.client.get(&path).await?;
            let name = r.node.given_name;
            if !ctx.confirm(&format!("Delete node {name:?} ({identifier})?"))? {
                return ctx.done("Node not deleted");
            }
            let _: Empty = ctx.client.delete(&path).await?;
            ctx.done("Node deleted")
        }
        NodesCommand::Expire {
            identifier,
            expiry,
            disable,
        } => {
            let expiry = match expiry {
                Some(text) => Some(
                    chrono::DateTime::parse_from_rfc3339(&text)
                        .map_err(|e| Error::Usage(format!("--expiry {text:?}: {e}")))?
                        .with_timezone(&chrono::Utc),
                ),
                None => None,
            };
            let req = ExpireNodeRequest {
                expiry,
                disable_expiry: Some(disable),
            };
            let path = format!("/api/v1/node/{identifier}/expire");
            let r: NodeResponse = ctx.client.post(&path, &req).await?;
            ctx.emit(&NodeView::from(&r.node), || "Node expired".into())
        }
        NodesCommand::Approve {
            id,
            identifier,
            revoke,
        } => {
            let id = id.or(identifier).unwrap_or_default();
            let query = if revoke { "?approved=false" } else { "" };
            let path = format!("/api/v1/node/{id}/approve{query}");
            let r: NodeResponse = ctx.client.post(&path, &Empty {}).await?;
            let msg = if revoke {
                "Node approval revoked"
            } else {
                "Node approved"
            };
            ctx.emit(&NodeView::from(&r.node), || msg.into())
        }
        NodesCommand::Register { key, user } => {
            eprintln!(
                "Note: `nodes register` is deprecated; use `clawscale auth register --auth-id \
                 ID --user USER`"
            );
            super::auth::register(ctx, &key, user).await
        }
        NodesCommand::Rename {
            identifier,
            new_name,
        } => {
            let path = format!("/api/v1/node/{identifier}/rename/{}", enc(&new_name));
            let r: NodeResponse = ctx.client.post(&path, &Empty {}).await?;
            ctx.emit(&NodeView::from(&r.node), || "Node renamed".into())
        }
    }
}

/// The first 8 hex digits of a key (`nodekey:0123abcd…` → `0123abcd`):
/// enough to tell keys apart in a table.
fn short_key(key: &str) -> String {
    let hex = key.split_once(':').map_or(key, |(_, h)| h);
    hex.chars().take(8).collect()
}

fn nodes_table(nodes: &[Node]) -> String {
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let ephemeral = n.pre_auth_key.as_ref().is_some_and(|k| k.ephemeral);
            vec![
                n.id.clone(),
                n.name.clone(),
                n.given_name.clone(),
                short_key(&n.machine_key),
                short_key(&n.node_key),
                n.user.as_ref().map(|u| u.name.clone()).unwrap_or_default(),
                n.tags.join(","),
                n.ip_addresses.join(", "),
                ephemeral.to_string(),
                cell_time(n.last_seen.as_ref()),
                cell_time(n.expiry.as_ref()),
                if n.online { "online" } else { "offline" }.into(),
                if is_past(n.expiry.as_ref()) {
                    "yes"
                } else {
                    "no"
                }
                .into(),
                certificates_cell(&n.certificates),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "Hostname",
            "Name",
            "MachineKey",
            "NodeKey",
            "User",
            "Tags",
            "IP addresses",
            "Ephemeral",
            "Last seen",
            "Expiration",
            "Connected",
            "Expired",
            "HTTPS certificates",
        ],
        &rows,
    )
}

/// What clawscale knows of a node's certificates: the names it proved to a
/// CA and when, and when a certificate issued then would expire (the CA's
/// usual lifetime; the server never sees the certificate).
fn certificates_cell(certs: &[NodeCertificate]) -> String {
    certs
        .iter()
        .map(|c| {
            format!(
                "{} (challenge {}, expires ~{})",
                c.domain,
                cell_time(Some(&c.last_challenge)),
                c.expected_expiry.format("%Y-%m-%d")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_show_the_last_challenge_and_the_expected_expiry() {
        use chrono::TimeZone;
        let at = chrono::Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap();
        let cell = certificates_cell(&[NodeCertificate {
            domain: "web.clawql.local".into(),
            last_challenge: at,
            expected_expiry: at + chrono::Duration::days(90),
        }]);
        assert_eq!(
            cell,
            "web.clawql.local (challenge 2026-07-01 12:00:00, expires ~2026-09-29)"
        );
        assert_eq!(certificates_cell(&[]), "");
    }

    #[test]
    fn short_keys_drop_the_prefix() {
        assert_eq!(
            short_key(&format!("nodekey:{}", "ab".repeat(32))),
            "abababab"
        );
        assert_eq!(short_key("garbage"), "garbage");
        assert_eq!(short_key(""), "");
    }
}
