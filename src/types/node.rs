//! Nodes (devices) as the control plane knows them.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use super::{DiscoPublic, DnsLabel, MachinePublic, NodeId, NodePublic, PreAuthKeyId, UserId};

/// Who owns a node. A tagged node is owned by its tags, not by the user who
/// enrolled it (Tailscale semantics); the user is kept for auditing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    User(UserId),
    Tags(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: NodeId,
    pub machine_key: MachinePublic,
    pub node_key: NodePublic,
    /// Zero until the node's first map request reports one.
    pub disco_key: DiscoPublic,
    /// Hostname as reported by the client (Hostinfo.Hostname).
    pub hostname: String,
    /// Unique MagicDNS label, operator-renamable.
    pub given_name: DnsLabel,
    /// The user who enrolled the node (owner unless tagged).
    pub user_id: UserId,
    /// Sorted, deduplicated `tag:` names; non-empty ⇒ tagged node.
    pub tags: Vec<String>,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// Subnet routes (and exit routes `0.0.0.0/0`, `::/0`) an operator or the
    /// policy's `autoApprovers` has approved; only those the node also
    /// advertises (Hostinfo.RoutableIPs) are served.
    pub approved_routes: Vec<IpNet>,
    /// UDP endpoints as `ip:port` strings, straight from the client.
    pub endpoints: Vec<String>,
    /// Home DERP region from Hostinfo.NetInfo.PreferredDERP (0 = none).
    pub home_derp: i32,
    /// The client's last Hostinfo, kept as raw JSON: we store and forward it
    /// without interpreting most fields. Shared (`Arc`) with every map that
    /// sends it, rather than copied per peer and stream.
    pub hostinfo: Arc<serde_json::Value>,
    /// Node key expiry; `None` = never. In the past ⇒ logged out/expired.
    pub expiry: Option<DateTime<Utc>>,
    pub ephemeral: bool,
    pub auth_key_id: Option<PreAuthKeyId>,
    /// Capability version of the client's latest request.
    pub cap_version: i32,
    pub created_at: DateTime<Utc>,
    pub last_seen: Option<DateTime<Utc>>,
    /// Device approval (`node.require_approval`): an unauthorized node sees
    /// no peers and no peer sees it until an operator approves it.
    pub authorized: bool,
}

impl Node {
    pub fn owner(&self) -> Owner {
        if self.tags.is_empty() {
            Owner::User(self.user_id)
        } else {
            Owner::Tags(self.tags.clone())
        }
    }

    pub fn is_tagged(&self) -> bool {
        !self.tags.is_empty()
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expiry.is_some_and(|e| e <= now)
    }

    /// Whether the node takes part in the tailnet now: approved and with a
    /// key that has not expired. Others see no peers and are seen by none.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.authorized && !self.is_expired(now)
    }

    /// Addresses as single-host prefixes, IPv4 first.
    pub fn prefixes(&self) -> Vec<String> {
        let mut v = Vec::with_capacity(2);
        if let Some(a) = self.ipv4 {
            v.push(format!("{a}/32"));
        }
        if let Some(a) = self.ipv6 {
            v.push(format!("{a}/128"));
        }
        v
    }

    /// Routes the client advertises (`Hostinfo.RoutableIPs`), ignoring
    /// entries that do not parse: the client's word is not trusted input.
    pub fn routable_ips(&self) -> Vec<IpNet> {
        let Some(list) = self.hostinfo.get("RoutableIPs").and_then(|v| v.as_array()) else {
            return Vec::new();
        };
        let mut v: Vec<IpNet> = list
            .iter()
            .filter_map(|r| r.as_str()?.parse::<IpNet>().ok())
            .map(|n| n.trunc())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Approved routes the node currently advertises: what it may serve.
    pub fn served_routes(&self) -> Vec<IpNet> {
        // Most nodes have none approved: no need to read their Hostinfo
        // (done per peer for every map without a policy).
        if self.approved_routes.is_empty() {
            return Vec::new();
        }
        let adv = self.routable_ips();
        self.approved_routes
            .iter()
            .filter(|r| adv.contains(r))
            .copied()
            .collect()
    }

    pub fn addresses(&self) -> Vec<std::net::IpAddr> {
        let mut v = Vec::with_capacity(2);
        if let Some(a) = self.ipv4 {
            v.push(a.into());
        }
        if let Some(a) = self.ipv6 {
            v.push(a.into());
        }
        v
    }
}

/// Normalises requested tags: trims, sorts, deduplicates and validates the
/// `tag:` + letter + `[A-Za-z0-9-]*` form Tailscale enforces.
pub fn normalize_tags<I, S>(tags: I) -> Result<Vec<String>, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = Vec::new();
    for t in tags {
        let t = t.as_ref().trim();
        if t.is_empty() {
            continue;
        }
        let name = t
            .strip_prefix("tag:")
            .ok_or_else(|| format!("tag {t:?} must start with \"tag:\""))?;
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            return Err(format!(
                "tag {t:?} is invalid: after \"tag:\" use a letter, then letters, digits or '-'"
            ));
        }
        out.push(t.to_string());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_validated_and_normalised() {
        assert_eq!(
            normalize_tags(["tag:b", " tag:a", "tag:b", ""]).unwrap(),
            vec!["tag:a".to_string(), "tag:b".to_string()]
        );
        assert!(normalize_tags(["web"]).is_err());
        assert!(normalize_tags(["tag:1web"]).is_err());
        assert!(normalize_tags(["tag:we_b"]).is_err());
        assert!(normalize_tags(["tag:"]).is_err());
    }
}
