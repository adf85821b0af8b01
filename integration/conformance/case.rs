//! The case file format (see shared/conformance/README.md) and its topology
//! converted to the engine's `Topology` (node ids in name order).

use std::collections::BTreeMap;

use clawscale::policy::{TopoNode, TopoUser, Topology};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
pub struct Case {
    pub id: String,
    pub category: String,
    pub policy: Value,
    pub accepted: bool,
    #[serde(default)]
    pub error_message: Option<String>,
    pub topology: Topo,
    #[serde(default)]
    pub expect: BTreeMap<String, NodeExpect>,
}

#[derive(Deserialize)]
pub struct Topo {
    pub users: Vec<User>,
    pub nodes: BTreeMap<String, Node>,
}

#[derive(Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub email: String,
}

#[derive(Deserialize)]
pub struct Node {
    pub hostname: String,
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub user: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub routable_ips: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub approved_routes: Vec<String>,
}

#[derive(Deserialize, Default)]
pub struct NodeExpect {
    #[serde(default)]
    pub packet_filter_rules: Option<Vec<Value>>,
    #[serde(default)]
    pub peers: Option<BTreeMap<String, Value>>,
    #[serde(default, rename = "self")]
    pub self_: Option<Value>,
    #[serde(default)]
    pub ssh_rules: Option<Vec<Value>>,
    #[serde(default)]
    pub ssh_policy: Option<Value>,
    #[serde(default)]
    pub whois: Option<BTreeMap<String, Value>>,
}

impl Case {
    pub fn policy_text(&self) -> String {
        match &self.policy {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        }
    }

    /// Node ids are assigned in name order (1-based). Primary routes are
    /// control-plane state (HA election by registration order, which the
    /// captures do not record), so the runner passes the hosted plane's
    /// observed assignment as `TopoNode::primary_routes`: per prefix, the
    /// node most viewers list it under `PrimaryRoutes` for. Nodes never seen
    /// as a primary get `None` and the engine elects among them (lowest id).
    pub fn topology(&self) -> (Topology, BTreeMap<String, u64>) {
        let users: Vec<TopoUser> = self
            .topology
            .users
            .iter()
            .map(|u| TopoUser {
                id: u.id,
                name: u.name.clone(),
                login: u.email.clone(),
                groups: vec![],
            })
            .collect();
        // Per prefix, how many viewers saw each node as its primary; the
        // most seen wins (`via` grants steer single viewers elsewhere).
        let mut seen: BTreeMap<ipnet::IpNet, BTreeMap<&str, usize>> = BTreeMap::new();
        for e in self.expect.values() {
            for (peer, v) in e.peers.iter().flatten() {
                for r in v["PrimaryRoutes"].as_array().into_iter().flatten() {
                    if let Some(net) = r.as_str().and_then(|s| s.parse().ok()) {
                        *seen
                            .entry(net)
                            .or_default()
                            .entry(peer.as_str())
                            .or_default() += 1;
                    }
                }
            }
        }
        let mut primaries: BTreeMap<&str, Vec<ipnet::IpNet>> = BTreeMap::new();
        for (net, counts) in &seen {
            if let Some((node, _)) = counts
                .iter()
                .max_by_key(|(n, c)| (**c, std::cmp::Reverse(**n)))
            {
                primaries.entry(node).or_default().push(*net);
            }
        }
        let order: Vec<&String> = self.topology.nodes.keys().collect();
        let mut ids = BTreeMap::new();
        let mut nodes = Vec::new();
        for (i, name) in order.into_iter().enumerate() {
            let n = &self.topology.nodes[name];
            let id = i as u64 + 1;
            ids.insert(name.clone(), id);
            let user = n
                .user
                .as_ref()
                .and_then(|un| self.topology.users.iter().find(|u| &u.name == un))
                .map(|u| u.id);
            nodes.push(TopoNode {
                id,
                name: name.clone(),
                hostname: n.hostname.clone(),
                user: if n.tags.is_empty() { user } else { None },
                tags: n.tags.clone(),
                ipv4: n.ipv4.as_ref().and_then(|s| s.parse().ok()),
                ipv6: n.ipv6.as_ref().and_then(|s| s.parse().ok()),
                routable_ips: n
                    .routable_ips
                    .iter()
                    .filter_map(|s| s.parse().ok())
                    .collect(),
                approved_routes: n
                    .approved_routes
                    .iter()
                    .filter_map(|s| s.parse().ok())
                    .collect(),
                primary_routes: primaries.get(name.as_str()).cloned(),
            });
        }
        (Topology::new(users, nodes), ids)
    }
}

fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}
