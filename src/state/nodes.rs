//! Node transitions driven by map requests and the admin API.

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use super::change::{Change, PatchMask};
use super::writer::MapUpdate;
use super::{Error, Result, StateHandle};

use crate::types::node::normalize_tags;
use crate::types::{DnsLabel, Node, NodeId};

impl StateHandle {
    /// Applies what a map request reports (disco key, endpoints, hostinfo)
    /// and tells peers, as a patch where the change is light.
    pub async fn update_from_map(&self, id: NodeId, u: MapUpdate) -> Result<()> {
        self.run(move |core| {
            Box::pin(async move {
                let mut n = core.node_copy(id)?;
                let mut mask = PatchMask::default();
                let mut structural = false;
                if let Some(d) = u.disco_key.filter(|d| *d != n.disco_key) {
                    n.disco_key = d;
                    mask.disco = true;
                }
                if let Some(e) = u.endpoints.filter(|e| *e != n.endpoints) {
                    n.endpoints = e;
                    mask.endpoints = true;
                }
                if let Some(h) = u.hostinfo {
                    let derp = home_derp_of(&h);
                    if derp != 0 && derp != n.home_derp {
                        n.home_derp = derp;
                        mask.derp = true;
                    }
                    let h = merge_hostinfo(&n.hostinfo, h);
                    if h != *n.hostinfo {
                        structural |= hostinfo_visible_change(&n.hostinfo, &h);
                        if let Some(name) = h.get("Hostname").and_then(|v| v.as_str()) {
                            n.hostname = name.to_string();
                        }
                        n.hostinfo = h.into();
                    }
                }
                if u.cap_version != 0 && u.cap_version != n.cap_version {
                    n.cap_version = u.cap_version;
                    structural = true;
                }
                if mask.is_empty() && !structural {
                    return Ok(());
                }
                if structural {
                    n = core.auto_approve(n);
                }
                let change = if structural {
                    Change::upsert(id)
                } else {
                    Change::patch(id, mask)
                };
                core.commit_node(n, change).await
            })
        })
        .await
    }

    /// Marks a node online (first stream) or offline (last stream gone).
    /// Presence is derived from the session registry's count, so an old
    /// stream closing after a reconnect cannot mark the node offline.
    pub async fn refresh_presence(&self, id: NodeId) -> Result<()> {
        self.run(move |core| {
            Box::pin(async move {
                let online = core.sessions.count(id) > 0;
                core.set_presence(id, online).await
            })
        })
        .await
    }

    pub async fn delete_node(&self, id: NodeId) -> Result<()> {
        self.run(move |core| Box::pin(async move { core.delete_node(id).await }))
            .await
    }

    /// Expires a node's key now: the node must log in again.
    pub async fn expire_node(&self, id: NodeId) -> Result<()> {
        self.run(move |core| {
            Box::pin(async move {
                let mut n = core.node_copy(id)?;
                n.expiry = Some(core.now());
                core.commit_node(n, Change::upsert(id)).await
            })
        })
        .await
    }

    /// Sets when a node's key expires (`None`: never). A time in the past
    /// logs the node out at once, as [`StateHandle::expire_node`] does.
    pub async fn set_node_expiry(&self, id: NodeId, expiry: Option<DateTime<Utc>>) -> Result<Node> {
        self.run(move |core| {
            Box::pin(async move {
                let mut n = core.node_copy(id)?;
                if n.is_tagged() && expiry.is_some_and(|e| e > core.now()) {
                    return Err(Error::FailedPrecondition(
                        "tagged nodes do not expire (Tailscale's rule); expire it now or \
                         disable its expiry instead"
                            .into(),
                    ));
                }
                n.expiry = expiry;
                core.commit_node(n.clone(), Change::upsert(id)).await?;
                Ok(n)
            })
        })
        .await
    }

    /// Approves a node (device approval) or takes its approval away. Peers
    /// see the change as an upsert: the node joins or leaves their maps.
    pub async fn set_node_authorized(&self, id: NodeId, authorized: bool) -> Result<Node> {
        self.run(move |core| {
            Box::pin(async move {
                let mut n = core.node_copy(id)?;
                if n.authorized == authorized {
                    return Ok(n);
                }
                n.authorized = authorized;
                core.commit_node(n.clone(), Change::upsert(id)).await?;
                Ok(n)
            })
        })
        .await
    }

    /// Gives every node an address of each configured family it lacks
    /// (after a prefix was added to the config), in node id order. Returns
    /// one line per address handed out.
    pub async fn backfill_ips(&self) -> Result<Vec<String>> {
        self.run(move |core| {
            Box::pin(async move {
                let mut changes = Vec::new();
                let ids: Vec<NodeId> = core.world.nodes.keys().copied().collect();
                for id in ids {
                    let mut n = core.node_copy(id)?;
                    let mut assigned = Vec::new();
                    if n.ipv4.is_none() {
                        let world = &core.world;
                        n.ipv4 = core
                            .opts
                            .ipam
                            .next_v4(world.ip_floor.v4, |ip| world.ip_taken(ip))
                            .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
                        assigned.extend(n.ipv4.map(|ip| ip.to_string()));
                    }
                    if n.ipv6.is_none() {
                        let world = &core.world;
                        n.ipv6 = core
                            .opts
                            .ipam
                            .next_v6(world.ip_floor.v6, |ip| world.ip_taken(ip))
                            .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
                        assigned.extend(n.ipv6.map(|ip| ip.to_string()));
                    }
                    if assigned.is_empty() {
                        continue;
                    }
                    for ip in &assigned {
                        changes.push(format!("assigned {ip} to node {} ({id})", n.given_name));
                    }
                    core.commit_node(n, Change::upsert(id)).await?;
                }
                Ok(changes)
            })
        })
        .await
    }

    /// Replaces a node's tags (admin API). With a policy, every tag must be
    /// one its `tagOwners` defines; an empty list makes the node user-owned
    /// again.
    pub async fn set_tags(&self, id: NodeId, tags: Vec<String>) -> Result<Node> {
        let tags = normalize_tags(tags).map_err(Error::InvalidArgument)?;
        self.run(move |core| {
            Box::pin(async move {
                let mut n = core.node_copy(id)?;
                if let Some(p) = &core.world.policy.policy
                    && let Some(t) = tags.iter().find(|t| !p.defines_tag(t))
                {
                    return Err(Error::InvalidArgument(format!(
                        "tag {t:?} is not defined in the policy's tagOwners"
                    )));
                }
                n.tags = tags;
                core.commit_node(n.clone(), Change::upsert(id)).await?;
                Ok(n)
            })
        })
        .await
    }

    /// Replaces the routes an operator approves for a node (admin API).
    pub async fn set_approved_routes(&self, id: NodeId, routes: Vec<IpNet>) -> Result<Node> {
        let mut routes: Vec<IpNet> = routes.into_iter().map(|r| r.trunc()).collect();
        routes.sort();
        routes.dedup();
        self.run(move |core| {
            Box::pin(async move {
                let mut n = core.node_copy(id)?;
                n.approved_routes = routes;
                core.commit_node(n.clone(), Change::upsert(id)).await?;
                Ok(n)
            })
        })
        .await
    }

    pub async fn rename_node(&self, id: NodeId, new_name: &str) -> Result<()> {
        let label = DnsLabel::parse(new_name).map_err(Error::InvalidArgument)?;
        self.run(move |core| {
            Box::pin(async move {
                let mut n = core.node_copy(id)?;
                if core.world.name_taken(label.as_str(), Some(id)) {
                    return Err(Error::Conflict(format!(
                        "name {label} is already used by another node"
                    )));
                }
                n.given_name = label;
                core.commit_node(n, Change::upsert(id)).await
            })
        })
        .await
    }
}

/// `Hostinfo.NetInfo.PreferredDERP`, 0 when absent.
fn home_derp_of(hostinfo: &serde_json::Value) -> i32 {
    hostinfo
        .pointer("/NetInfo/PreferredDERP")
        .and_then(|v| v.as_i64())
        .and_then(|v| i32::try_from(v).ok())
        .unwrap_or(0)
}

/// A Hostinfo without `NetInfo` keeps the previous `NetInfo` (clients send it
/// only when it changed).
fn merge_hostinfo(old: &serde_json::Value, mut new: serde_json::Value) -> serde_json::Value {
    if let (Some(obj), Some(prev)) = (new.as_object_mut(), old.get("NetInfo"))
        && !obj.contains_key("NetInfo")
    {
        obj.insert("NetInfo".into(), prev.clone());
    }
    new
}

/// Whether peers need the whole node again: anything but NetInfo changed.
fn hostinfo_visible_change(old: &serde_json::Value, new: &serde_json::Value) -> bool {
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("NetInfo");
        }
        v
    };
    strip(old) != strip(new)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hostinfo_keeps_netinfo_and_detects_visible_changes() {
        let old = json!({"Hostname": "a", "NetInfo": {"PreferredDERP": 999}});
        let merged = merge_hostinfo(&old, json!({"Hostname": "a"}));
        assert_eq!(merged["NetInfo"]["PreferredDERP"], 999);
        assert!(!hostinfo_visible_change(&old, &merged));
        assert!(hostinfo_visible_change(&old, &json!({"Hostname": "b"})));
        assert_eq!(home_derp_of(&old), 999);
        assert_eq!(home_derp_of(&json!({})), 0);
    }
}
