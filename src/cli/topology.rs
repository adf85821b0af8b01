//! Topology files for the offline policy commands: the `topology` object of
//! the conformance cases, with nodes keyed by name. Node ids are assigned in
//! name order; users are referred to by name.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

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
    /// The user's identity-provider groups (`oidc:NAME` group members).
    #[serde(default)]
    groups: Vec<String>,
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
    /// HA state: the routes this node is primary for (default: elected).
    #[serde(default)]
    primary_routes: Option<Vec<IpNet>>,
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
            t.topology.nodes.push(Arc::new(TopoNode {
                id,
                name: name.clone(),
                hostname: n.hostname.clone().unwrap_or_else(|| name.clone()),
                user,
                tags,
                ipv4: n.ipv4,
                ipv6: n.ipv6,
                routable_ips: n.routable_ips.clone().unwrap_or_default(),
                approved_routes: n.approved_routes.clone().unwrap_or_default(),
                primary_routes: n.primary_routes.clone(),
            }));
            t.ids.insert(name.clone(), id);
            t.names.insert(id, name.clone());
        }
        t.topology.users = Arc::new(
            f.users
                .iter()
                .map(|u| TopoUser {
                    id: u.id,
                    name: u.name.clone(),
                    login: if u.email.is_empty() {
                        u.name.clone()
                    } else {
                        u.email.clone()
                    },
                    groups: u.groups.clone(),
                })
                .collect(),
        );
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
        // Ids are handed out in ascending order, so the list is sorted.
        self.topology.node(id).map(|n| &**n)
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

impl NamedTopology {
    /// A stand-in tailnet for checking a policy without a topology file:
    /// one device for every user login and every tag the policy names
    /// (Tailscale evaluates `tests` against devices, so a policy's tests can
    /// only pass where the identities they name have one).
    pub fn stand_ins(policy_text: &str) -> NamedTopology {
        let Ok((v, _)) = crate::policy::hujson::parse(policy_text) else {
            return NamedTopology::default();
        };
        let mut logins: std::collections::BTreeSet<String> = Default::default();
        let mut tags: std::collections::BTreeSet<String> = Default::default();
        let mut note = |s: &str| {
            if let Some(t) = s.strip_prefix("tag:") {
                let t = t.split(':').next().unwrap_or(t);
                tags.insert(format!("tag:{t}"));
            } else if s.contains('@') && !s.contains(':') {
                logins.insert(s.to_string());
            } else if let Some((u, port)) = s.rsplit_once(':')
                && u.contains('@')
                && !u.contains(':')
                && !port.is_empty()
            {
                logins.insert(u.to_string());
            }
        };
        walk_strings(&v, &mut note);
        let mut t = NamedTopology::default();
        let mut next_ip = 1u32;
        let mut add =
            |t: &mut NamedTopology, name: String, user: Option<u64>, tags: Vec<String>| {
                let id = t.topology.nodes.len() as u64 + 1;
                let v4 = std::net::Ipv4Addr::from(0x6440_0000 + next_ip);
                let v6 =
                    std::net::Ipv6Addr::from((0xfd7a_115c_a1e0u128 << 80) | u128::from(next_ip));
                next_ip += 1;
                t.topology.nodes.push(Arc::new(TopoNode {
                    id,
                    name: name.clone(),
                    hostname: name.clone(),
                    user,
                    tags,
                    ipv4: Some(v4),
                    ipv6: Some(v6),
                    routable_ips: vec![],
                    approved_routes: vec![],
                    primary_routes: None,
                }));
                t.ids.insert(name.clone(), id);
                t.names.insert(id, name);
            };
        for (i, login) in logins.iter().enumerate() {
            let uid = i as u64 + 1;
            let local = login.split('@').next().unwrap_or(login);
            Arc::make_mut(&mut t.topology.users).push(TopoUser {
                id: uid,
                name: local.to_string(),
                login: login.clone(),
                groups: vec![],
            });
            add(&mut t, format!("{local}-device-{uid}"), Some(uid), vec![]);
        }
        for tag in &tags {
            let name = format!("{}-device", tag.trim_start_matches("tag:"));
            add(&mut t, name, None, vec![tag.clone()]);
        }
        t
    }
}

fn walk_strings(v: &serde_json::Value, f: &mut impl FnMut(&str)) {
    match v {
        serde_json::Value::String(s) => f(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| walk_strings(x, f)),
        serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| {
            f(k);
            walk_strings(x, f)
        }),
        _ => {}
    }
}
