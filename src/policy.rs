//! The policy engine: Tailscale policy files (HuJSON) parsed, validated and
//! compiled per node into packet filters, peer visibility, CapMaps and SSH
//! policies, mirroring Tailscale's hosted control plane (see the conformance
//! cases in `shared/conformance`). Depends only on `crate::tailcfg` wire types.
//!
//! Pipeline: `hujson` → `parse` (typed `model::Doc`, topology-free checks) →
//! `compile` (per-node outputs against a `Topology`). `tests_block` evaluates
//! `tests`/`sshTests`; `services` adds our `svc:NAME` extension.

pub mod alias;
pub mod compile;
mod compile_incr;
mod filter;
pub mod hujson;
mod index;
pub mod ipset;
pub mod model;
pub mod node_attrs;
pub mod parse;
pub mod parse_ssh;
mod peers;
mod routes;
pub mod services;
pub mod ssh;
#[cfg(test)]
#[cfg(test)]
mod test_rng;
#[cfg(test)]
mod tests_api;
pub mod tests_block;
#[cfg(test)]
mod tests_hujson;
#[cfg(test)]
mod tests_incr;
mod tests_ssh;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::tailcfg::FilterRule;

pub use compile::Compiled;

pub type CapMap = BTreeMap<String, Vec<serde_json::Value>>;

/// A policy error, with the 1-based position in the source when one applies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    pub message: String,
    pub position: Option<(usize, usize)>,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some((l, c)) => write!(f, "line {l}, column {c}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl PolicyError {
    pub fn new(msg: impl Into<String>) -> Self {
        PolicyError {
            message: msg.into(),
            position: None,
        }
    }
    pub fn at(line: usize, col: usize, msg: impl Into<String>) -> Self {
        PolicyError {
            message: msg.into(),
            position: Some((line, col)),
        }
    }
    /// Prefixes the message (`src=`, `dst="tag:x": `) like Tailscale does.
    pub fn prefixed(mut self, p: &str) -> Self {
        self.message = format!("{p}{}", self.message);
        self
    }
}

/// Parsed and validated policy; cheap to clone.
#[derive(Debug, Clone)]
pub struct Policy {
    doc: Arc<model::Doc>,
}

/// Who is claiming tags: a user (pre-auth key owner / interactive login) or a
/// tagged key (its tags may own further tags).
pub enum Claimant<'a> {
    User { login: &'a str },
    Tags(&'a [String]),
}

#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub users: Vec<TopoUser>,
    pub nodes: Vec<TopoNode>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopoUser {
    pub id: u64,
    pub name: String,
    pub login: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopoNode {
    pub id: u64,
    pub name: String,
    pub hostname: String,
    pub user: Option<u64>,
    pub tags: Vec<String>,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub routable_ips: Vec<IpNet>,
    pub approved_routes: Vec<IpNet>,
    /// HA election result (control-plane state, not policy): the subnet
    /// routes this node is primary for. `None` = let the engine elect: for
    /// each approved prefix not claimed by any node's `Some(..)`, the lowest
    /// id among the nodes that have it approved.
    pub primary_routes: Option<Vec<IpNet>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeOutput {
    pub packet_filter: Arc<Vec<FilterRule>>,
    pub peers: BTreeMap<u64, PeerOutput>,
    pub ssh_policy: Option<crate::tailcfg::SshPolicy>,
    pub cap_map: CapMap,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerOutput {
    pub allowed_ips: Vec<IpNet>,
    pub primary_routes: Vec<IpNet>,
}

/// A `svc:NAME` definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub hosts: Vec<String>,
    /// `(IP protocols, first port, last port)`; empty protocols = TCP/UDP/ICMP.
    pub ports: Vec<(Vec<i32>, u16, u16)>,
}

/// Why traffic is or is not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub allowed: bool,
    /// Rules that allow it (`acls[2]`, `grants[0]`), or a reason when none.
    pub rules: Vec<String>,
    pub reason: String,
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.allowed {
            write!(f, "allowed by {}", self.rules.join(", "))
        } else {
            write!(f, "denied: {}", self.reason)
        }
    }
}

impl Policy {
    /// Syntax plus every check that needs no topology.
    pub fn parse(src: &str) -> Result<Policy, PolicyError> {
        let (v, pos) = hujson::parse(src).map_err(|e| PolicyError::at(e.line, e.col, e.msg))?;
        let ctx = model::Ctx { pos: &pos };
        let doc = parse::build(&ctx, &v)?;
        Ok(Policy { doc: Arc::new(doc) })
    }

    /// `tests`, `sshTests` and topology-dependent checks.
    pub fn check(&self, topo: &Topology) -> Result<(), PolicyError> {
        tests_block::check(&self.doc, topo)
    }

    pub fn compile(&self, topo: &Topology) -> Compiled {
        Compiled::build(self.doc.clone(), Arc::new(topo.clone()))
    }

    /// May `claimant` put these tags on a node?
    pub fn check_tags(&self, claimant: &Claimant, tags: &[String]) -> Result<(), PolicyError> {
        for t in tags {
            let Some(owners) = self.doc.tag_owners.get(t) else {
                return Err(PolicyError::new(format!(
                    "tag {t:?} is not defined in tagOwners"
                )));
            };
            let ok = owners.iter().any(|o| match (o, claimant) {
                (alias::Alias::Tag(ot), Claimant::Tags(have)) => have.contains(ot),
                (alias::Alias::User(u), Claimant::User { login }) => alias::user_matches(u, login),
                (alias::Alias::Group(g), Claimant::User { login }) => self
                    .doc
                    .groups
                    .get(g)
                    .is_some_and(|ms| ms.iter().any(|m| alias::user_matches(m, login))),
                (alias::Alias::Member, Claimant::User { .. }) => true,
                _ => false,
            });
            // A tagged key may always keep its own tags.
            let own = matches!(claimant, Claimant::Tags(have) if have.contains(t));
            if !ok && !own {
                let who = match claimant {
                    Claimant::User { login } => format!("user {login:?}"),
                    Claimant::Tags(have) => format!("tags {have:?}"),
                };
                return Err(PolicyError::new(format!(
                    "{who} is not a tag owner of {t:?}"
                )));
            }
        }
        Ok(())
    }

    /// Whether `tag` is defined (a key of `tagOwners`).
    pub fn defines_tag(&self, tag: &str) -> bool {
        self.doc.tag_owners.contains_key(tag)
    }

    pub fn services(&self) -> Vec<Service> {
        services::list(&self.doc)
    }

    /// The routes node `node_id` advertises (`routable_ips`) that
    /// `autoApprovers` approve (the server stores them as approved).
    /// Unknown node: empty.
    pub fn auto_approved_routes(&self, topo: &Topology, node_id: u64) -> Vec<IpNet> {
        let Some(i) = topo.nodes.iter().position(|n| n.id == node_id) else {
            return vec![];
        };
        let r = alias::Resolver {
            doc: &self.doc,
            topo,
        };
        routes::auto_approved(&r, i)
    }
}

/// Convenience used by the server: ids whose outputs differ between two
/// compiled states of the same topology.
pub fn changed_nodes(
    a: &Compiled,
    b: &Compiled,
    ids: impl IntoIterator<Item = u64>,
) -> BTreeSet<u64> {
    ids.into_iter()
        .filter(|id| a.node(*id) != b.node(*id))
        .collect()
}

/// Source address of a node for whois lookups.
pub fn node_addrs(n: &TopoNode) -> Vec<IpAddr> {
    alias::node_ips(n)
}
