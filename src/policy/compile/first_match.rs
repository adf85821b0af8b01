//! The reference semantics of an ordered policy: walk the rules (`acls` in
//! order, then `grants`) and let the first one matching a connection
//! attempt decide. Slow and obvious on purpose: `explain` uses it to name
//! the deciding rule, and the tests check the compiled packet filters
//! against it.

use std::net::IpAddr;

use super::deny::{DEFAULT_PROTOS, ported};
use crate::policy::model::{ALL_PORTS, Alias, Doc, Dst, Rule, Topology};
use crate::policy::resolve::alias::{Resolver, internet_space, node_ips};
use crate::policy::resolve::ipset::IpSet;

/// A connection attempt from address `src` to address `dst`, which node
/// `node` (an index into the topology) receives: one of its own addresses
/// or one of the subnets it routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub node: usize,
    pub proto: i32,
    pub port: u16,
}

/// The index of the rule that decides `p`, if any rule matches.
pub fn first_match(doc: &Doc, topo: &Topology, p: &Probe) -> Option<usize> {
    let r = Resolver { doc, topo };
    doc.rules.iter().position(|rule| matches(&r, rule, p))
}

/// Is `p` allowed (its first matching rule is an accept)?
pub fn allows(doc: &Doc, topo: &Topology, p: &Probe) -> bool {
    first_match(doc, topo, p).is_some_and(|i| !doc.rules[i].deny)
}

/// Does destination `d` let `proto` traffic to `port` through, as the
/// client's filter would (ports only count for TCP, UDP and SCTP)?
pub(crate) fn dst_allows(d: &Dst, proto: i32, port: u16) -> bool {
    let protos: &[i32] = if d.protos.is_empty() {
        &DEFAULT_PROTOS
    } else {
        &d.protos
    };
    if !protos.contains(&proto) {
        return false;
    }
    if ported(proto) {
        d.ports.iter().any(|r| r.first <= port && port <= r.last)
    } else if matches!(proto, 1 | 58) {
        !d.ports.is_empty()
    } else {
        d.ports.contains(&ALL_PORTS)
    }
}

/// The untagged user owning the node with address `a`, if any.
fn owner_of(topo: &Topology, a: IpAddr) -> Option<u64> {
    topo.nodes
        .iter()
        .find(|n| n.tags.is_empty() && node_ips(n).contains(&a))
        .and_then(|n| n.user)
}

fn dst_matches(r: &Resolver, rule: &Rule, d: &Dst, p: &Probe) -> bool {
    if let Some(m) = &d.mask
        && !IpSet::from_nets(m).contains(p.dst)
    {
        return false;
    }
    let node = &r.topo.nodes[p.node];
    let own = node_ips(node).contains(&p.dst);
    let via_ok = rule.via.is_empty() || node.tags.iter().any(|t| rule.via.contains(t));
    match &d.alias {
        Alias::Wildcard => true,
        Alias::Internet => {
            let exit = node.approved_routes.iter().any(|n| n.prefix_len() == 0);
            exit && via_ok && internet_space().contains(p.dst)
        }
        Alias::Host(_) | Alias::Prefix(_) => {
            r.static_set(&d.alias).contains(p.dst) && if own { rule.via.is_empty() } else { via_ok }
        }
        Alias::SelfDevices => {
            own && node.tags.is_empty()
                && node.user.is_some()
                && owner_of(r.topo, p.src) == node.user
        }
        Alias::DangerAll | Alias::Role(_) => false,
        // A service's hosts are its own destination, `via` or not.
        Alias::Service(_) => own && r.node_matches(&d.alias, p.node),
        a => own && rule.via.is_empty() && r.node_matches(a, p.node),
    }
}

fn matches(r: &Resolver, rule: &Rule, p: &Probe) -> bool {
    rule.src.iter().any(|a| r.src_set(a).contains(p.src))
        && rule
            .dsts
            .iter()
            .any(|d| dst_allows(d, p.proto, p.port) && dst_matches(r, rule, d, p))
}
