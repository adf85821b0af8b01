//! The policy engine: Tailscale policy files (HuJSON) parsed, validated and
//! compiled per node into packet filters, peer visibility, CapMaps and SSH
//! policies, mirroring Tailscale's hosted control plane (see the conformance
//! cases in `shared/conformance`). Depends only on `crate::tailcfg` wire
//! types.
//!
//! Layers, each importing only the ones below it (a unit test scanning the
//! `use` lines keeps it so):
//!
//! ```text
//! check   → compile → resolve → model ← syntax
//! ```
//!
//! - `syntax`: HuJSON text → the typed `model::Doc`, one file per section;
//! - `model`: the `Doc`, the `Topology` it is compiled against, errors;
//! - `resolve`: selectors → node sets and address sets;
//! - `compile`: per-node outputs (filter, peers, routes, SSH, CapMap);
//! - `check`: the `tests` and `sshTests` blocks, run at save time.
//!
//! This file is the facade the rest of the server uses.

pub mod check;
pub mod compile;
pub mod model;
pub mod resolve;
pub mod syntax;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

pub use compile::Compiled;
pub use compile::types::{Explanation, NodeOutput, PeerOutput, Peers};
pub use model::{CapMap, PolicyError, TopoNode, TopoUser, Topology};
pub use resolve::ipset;
pub use syntax::hujson;

use model::Alias;
use model::alias::user_matches;
use resolve::alias::Resolver;

/// A `svc:NAME` definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub hosts: Vec<String>,
    /// `(IP protocols, first port, last port)`; empty protocols = TCP/UDP/ICMP.
    pub ports: Vec<(Vec<i32>, u16, u16)>,
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

impl Policy {
    /// Syntax plus every check that needs no topology.
    pub fn parse(src: &str) -> Result<Policy, PolicyError> {
        let doc = syntax::parse(src)?;
        Ok(Policy { doc: Arc::new(doc) })
    }

    /// As `parse`, refusing every clawscale extension (`deny` rules,
    /// `services`, `svc:` selectors): only what Tailscale's hosted control
    /// plane accepts too, for tailnets that want to stay portable.
    pub fn parse_strict(src: &str) -> Result<Policy, PolicyError> {
        let p = Policy::parse(src)?;
        if let Some((what, at)) = p.doc.extensions.first() {
            let msg = format!(
                "{what} is a clawscale extension, refused in strict mode (the hosted control \
                 plane would reject it)"
            );
            return Err(match at {
                Some((l, c)) => PolicyError::at(*l, *c, msg),
                None => PolicyError::new(msg),
            });
        }
        Ok(p)
    }

    /// The clawscale extensions this policy uses (what `parse_strict`
    /// refuses), each with its line and column.
    pub fn extensions(&self) -> &[(String, Option<(usize, usize)>)] {
        &self.doc.extensions
    }

    /// `tests`, `sshTests` and topology-dependent checks.
    pub fn check(&self, topo: &Topology) -> Result<(), PolicyError> {
        check::check(&self.doc, topo)
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
                (Alias::Tag(ot), Claimant::Tags(have)) => have.contains(ot),
                (Alias::User(u), Claimant::User { login }) => user_matches(u, login),
                (Alias::Group(g), Claimant::User { login }) => self
                    .doc
                    .groups
                    .get(g)
                    .is_some_and(|ms| ms.iter().any(|m| user_matches(m, login))),
                (Alias::Member, Claimant::User { .. }) => true,
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
        self.doc
            .services
            .iter()
            .map(|(name, d)| Service {
                name: name.clone(),
                hosts: d.hosts.iter().map(|h| h.text()).collect(),
                ports: d
                    .ports
                    .iter()
                    .map(|(pr, p)| (pr.clone(), p.first, p.last))
                    .collect(),
            })
            .collect()
    }

    /// The routes node `node_id` advertises (`routable_ips`) that
    /// `autoApprovers` approve (the server stores them as approved).
    /// Unknown node: empty.
    pub fn auto_approved_routes(&self, topo: &Topology, node_id: u64) -> Vec<IpNet> {
        let Some(i) = topo.nodes.iter().position(|n| n.id == node_id) else {
            return vec![];
        };
        let r = Resolver {
            doc: &self.doc,
            topo,
        };
        compile::routes::auto_approved(&r, i)
    }

    /// As [`Policy::auto_approved_routes`], from `node` and its owner
    /// (`user`; none for a tagged node) alone: an approver selector reads
    /// nothing else (its tags, addresses, owner and the owner's groups),
    /// so a registration need not build the whole tailnet's topology.
    pub fn auto_approved_routes_of(&self, user: Option<TopoUser>, node: TopoNode) -> Vec<IpNet> {
        let id = node.id;
        let topo = Topology::new(user.into_iter().collect(), vec![node]);
        self.auto_approved_routes(&topo, id)
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
    resolve::alias::node_ips(n)
}
