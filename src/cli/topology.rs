//! Topology files for the offline policy commands: the `topology` object of
//! the conformance cases, with nodes keyed by name. Node ids are assigned in
//! name order; users are referred to by name.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::Deserialize;

use super::{Error, Result};
use crate::policy::{TopoNode, TopoUser, Topology};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    id: u64,
    name: String,
    #[serde(default)]
    email: String,
}

#[derive(Debug, Deserialize)]
struct FileNode {
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    ipv4: Option<Ipv4Addr>,
    #[serde(default)]
    ipv6: Option<Ipv6Addr>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    routable_ips: Option<Vec<IpNet>>,
    #[serde(default)]
    approved_routes: Option<Vec<IpNet>>,
}

#[derive(Debug, Deserialize)]
struct File {
    #[serde(default)]
    users: Vec<FileUser>,
    #[serde(default)]
    nodes: BTreeMap<String, FileNode>,
}

/// A topology whose nodes have names, as in the files.
#[derive(Debug, Default, Clone)]
pub struct NamedTopology {
    pub topology: Topology,
    ids: BTreeMap<String, u64>,
    names: BTreeMap<u64, String>,
}

impl NamedTopology {
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let f: File = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let by_name: BTreeMap<&str, u64> =
            f.users.iter().map(|u| (u.name.as_str(), u.id)).collect();
        let mut t = NamedTopology::default();
        for (i, (name, n)) in f.nodes.iter().enumerate() {
            let id = i as u64 + 1;
            let tags = n.tags.clone().unwrap_or_default();
            let user = match (&n.user, tags.is_empty()) {
                (Some(u), true) => Some(
                    *by_name
                        .get(u.as_str())
                        .ok_or_else(|| format!("node {name:?}: unknown user {u:?}"))?,
                ),
                _ => None,
            };
            t.topology.nodes.push(TopoNode {
                id,
                name: name.clone(),
                hostname: n.hostname.clone().unwrap_or_else(|| name.clone()),
                user,
                tags,
                ipv4: n.ipv4,
                ipv6: n.ipv6,
                routable_ips: n.routable_ips.clone().unwrap_or_default(),
                approved_routes: n.approved_routes.clone().unwrap_or_default(),
            });
            t.ids.insert(name.clone(), id);
            t.names.insert(id, name.clone());
        }
        t.topology.users = f
            .users
            .iter()
            .map(|u| TopoUser {
                id: u.id,
                name: u.name.clone(),
                login: if u.email.is_empty() {
                    u.name.clone()
                } else {
                    u.email.clone()
                },
            })
            .collect();
        Ok(t)
    }

    pub fn id_of(&self, name: &str) -> Result<u64> {
        self.ids
            .get(name)
            .copied()
            .ok_or_else(|| Error::Usage(format!("no node named {name:?} in the topology")))
    }

    pub fn name_of(&self, id: u64) -> &str {
        self.names.get(&id).map(String::as_str).unwrap_or("?")
    }

    pub fn node(&self, id: u64) -> Option<&TopoNode> {
        self.topology.nodes.iter().find(|n| n.id == id)
    }

    /// Whois login: the owner's login, or Tailscale's tagged-devices user.
    pub fn login_of(&self, n: &TopoNode) -> String {
        match n.user {
            Some(uid) => self
                .topology
                .users
                .iter()
                .find(|u| u.id == uid)
                .map(|u| u.login.clone())
                .unwrap_or_default(),
            None => "tagged-devices".into(),
        }
    }
}
