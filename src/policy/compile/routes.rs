//! Route state derived from the topology and the policy: routes approved
//! through `autoApprovers`, the primary router of each subnet prefix (HA
//! election, or the server's own assignment via `TopoNode::primary_routes`),
//! per-node approved subnet sets and exit-node flags.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ipnet::IpNet;

use crate::policy::model::{Doc, Topology};
use crate::policy::resolve::alias::Resolver;
use crate::policy::resolve::ipset::IpSet;

pub(crate) fn is_exit_route(n: &IpNet) -> bool {
    n.prefix_len() == 0
}

/// Routes a node advertises that `autoApprovers` approve count as approved,
/// as on Tailscale (approval happens when the route is advertised).
pub(crate) fn auto_approve(doc: &Doc, topo: Arc<Topology>) -> Arc<Topology> {
    if doc.auto_routes.is_empty() && doc.auto_exit.is_empty() {
        return topo;
    }
    let r = Resolver { doc, topo: &topo };
    let extra: Vec<(usize, Vec<IpNet>)> = (0..topo.nodes.len())
        .map(|i| (i, auto_approved(&r, i)))
        .filter(|(i, v)| {
            v.iter()
                .any(|x| !topo.nodes[*i].approved_routes.contains(x))
        })
        .collect();
    if extra.is_empty() {
        return topo;
    }
    // The caller keeps the topology as given, so this copies the node
    // list (pointers) and then only the nodes that gain a route.
    let mut topo = topo;
    let t = Arc::make_mut(&mut topo);
    for (i, routes) in extra {
        for route in routes {
            if !t.nodes[i].approved_routes.contains(&route) {
                Arc::make_mut(&mut t.nodes[i]).approved_routes.push(route);
            }
        }
    }
    topo
}

/// The routes node `i` advertises that `autoApprovers` approve: a subnet
/// route under an approved prefix, an exit route by `exitNode` only.
pub(crate) fn auto_approved(r: &Resolver, i: usize) -> Vec<IpNet> {
    let doc = r.doc;
    let n = &r.topo.nodes[i];
    n.routable_ips
        .iter()
        .filter(|route| {
            if is_exit_route(route) {
                doc.auto_exit.iter().any(|a| r.node_matches(a, i))
            } else {
                doc.auto_routes.iter().any(|(p, aps)| {
                    p.contains(*route)
                        && !is_exit_route(p)
                        && aps.iter().any(|a| r.node_matches(a, i))
                })
            }
        })
        .copied()
        .collect()
}

/// Primary routes, approved subnet sets and exit-node flags. Primaries come
/// from `TopoNode::primary_routes` when given; every other approved prefix
/// goes to the lowest node id among the nodes that have it approved.
#[allow(clippy::type_complexity)]
pub(crate) fn routes(topo: &Topology) -> (Vec<Vec<IpNet>>, Vec<IpSet>, Vec<bool>) {
    let mut owner: BTreeMap<IpNet, usize> = BTreeMap::new();
    let mut claimed: BTreeSet<IpNet> = BTreeSet::new();
    for n in &topo.nodes {
        if let Some(p) = &n.primary_routes {
            claimed.extend(p.iter().filter(|r| n.approved_routes.contains(r)));
        }
    }
    let mut subnets = Vec::with_capacity(topo.nodes.len());
    let mut is_exit = Vec::with_capacity(topo.nodes.len());
    for (i, n) in topo.nodes.iter().enumerate() {
        let mut s = IpSet::new();
        let mut exit = false;
        for r in &n.approved_routes {
            if is_exit_route(r) {
                exit = true;
                continue;
            }
            s.push_net(r);
            let elect = match &n.primary_routes {
                Some(p) => p.contains(r),
                None => !claimed.contains(r),
            };
            if !elect {
                continue;
            }
            match owner.get(r) {
                Some(&j) if topo.nodes[j].primary_routes.is_some() => {}
                Some(&j) if topo.nodes[j].id <= n.id && n.primary_routes.is_none() => {}
                _ => {
                    owner.insert(*r, i);
                }
            }
        }
        s.normalize();
        subnets.push(s);
        is_exit.push(exit);
    }
    let mut primary = vec![Vec::new(); topo.nodes.len()];
    for (r, i) in owner {
        primary[i].push(r);
    }
    (primary, subnets, is_exit)
}
