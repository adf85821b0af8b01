//! Compilation against a topology: resolves every rule's sources once, then
//! derives each node's packet filter (only rules where the node, or a subnet
//! it routes, is a destination), its peers (symmetric reachability, plus the
//! routes each side needs) and its CapMap/SSH policy, as Tailscale does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::alias::{Resolver, node_ips};
use super::ipset::IpSet;
use super::model::{Doc, Rule};
use super::{CapMap, Explanation, NodeOutput, Topology};

/// A rule with its sources resolved.
pub(crate) struct CRule {
    pub src: IpSet,
}

pub(crate) struct Inner {
    pub doc: Arc<Doc>,
    pub topo: Arc<Topology>,
    pub index: HashMap<u64, usize>,
    pub rules: Vec<CRule>,
    /// Per node: approved subnet routes for which it is primary.
    pub primary: Vec<Vec<IpNet>>,
    /// Per node: approved subnet routes (primary or not), exit routes aside.
    pub subnets: Vec<IpSet>,
    pub is_exit: Vec<bool>,
    pub outputs: Vec<Arc<NodeOutput>>,
}

/// The compiled policy for one topology; cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Compiled {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Compiled({} nodes)", self.inner.topo.nodes.len())
    }
}

pub(crate) fn is_exit_route(n: &IpNet) -> bool {
    n.prefix_len() == 0
}

impl Compiled {
    pub(crate) fn build(doc: Arc<Doc>, topo: Arc<Topology>) -> Compiled {
        let topo = auto_approve(&doc, topo);
        let index = topo
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id, i))
            .collect();
        let r = Resolver {
            doc: &doc,
            topo: &topo,
        };
        let rules = doc
            .rules
            .iter()
            .map(|rule| CRule {
                src: union_src(&r, rule),
            })
            .collect();
        let (primary, subnets, is_exit) = routes(&topo);
        let mut inner = Inner {
            doc: doc.clone(),
            topo: topo.clone(),
            index,
            rules,
            primary,
            subnets,
            is_exit,
            outputs: vec![],
        };
        let reach = inner.reach();
        let outputs = (0..topo.nodes.len())
            .map(|i| Arc::new(inner.node_output_with(&reach, i)))
            .collect();
        inner.outputs = outputs;
        Compiled {
            inner: Arc::new(inner),
        }
    }

    pub fn node(&self, id: u64) -> Option<NodeOutput> {
        let i = *self.inner.index.get(&id)?;
        Some((*self.inner.outputs[i]).clone())
    }

    /// App capabilities granted from `src` to `dst_node` (what whois returns).
    pub fn whois_caps(&self, src: IpAddr, dst_node: u64) -> CapMap {
        let Some(&d) = self.inner.index.get(&dst_node) else {
            return CapMap::new();
        };
        let mut out = CapMap::new();
        for rule in self.inner.filter_rules(d) {
            let Some(grants) = &rule.cap_grant else {
                continue;
            };
            if !rule.src.contains(src) {
                continue;
            }
            for (k, v) in grants {
                out.entry(k.clone()).or_default().extend(v.iter().cloned());
            }
        }
        out
    }

    pub fn explain(
        &self,
        src_node: u64,
        dst_node: u64,
        port: u16,
        proto: Option<u8>,
    ) -> Explanation {
        let (Some(&s), Some(&d)) = (
            self.inner.index.get(&src_node),
            self.inner.index.get(&dst_node),
        ) else {
            return Explanation {
                allowed: false,
                rules: vec![],
                reason: "unknown node".into(),
            };
        };
        let ips = node_ips(&self.inner.topo.nodes[s]);
        let mut hits = Vec::new();
        for (ri, rule) in self.inner.doc.rules.iter().enumerate() {
            let src = self.inner.rule_src_for(ri, d);
            if !ips.iter().any(|a| src.contains(*a)) {
                continue;
            }
            let ok = rule.dsts.iter().any(|dst| {
                self.inner.dst_targets(rule, dst, d).is_some()
                    && dst.ports.iter().any(|p| p.first <= port && port <= p.last)
                    && match proto {
                        None => true,
                        Some(p) => {
                            if dst.protos.is_empty() {
                                matches!(p, 1 | 6 | 17 | 58)
                            } else {
                                dst.protos.contains(&(p as i32))
                            }
                        }
                    }
            });
            if ok {
                hits.push(rule.origin.clone());
            }
        }
        let allowed = !hits.is_empty();
        let reason = if allowed {
            format!("allowed by {}", hits.join(", "))
        } else {
            "no rule allows this source to reach this destination port".into()
        };
        Explanation {
            allowed,
            rules: hits,
            reason,
        }
    }

    /// Each `svc:NAME` (without the prefix) with its hosts' addresses, for
    /// DNS `NAME.<base_domain>`.
    pub fn service_addrs(&self) -> Vec<(String, Vec<IpAddr>)> {
        super::services::addrs(&self.inner.doc, &self.inner.topo)
    }

    /// Same policy, changed topology. Recompiles the resolved state and
    /// reports which nodes' outputs differ from `self`.
    pub fn update(&self, topo: &Topology, changed: &[u64]) -> (Compiled, BTreeSet<u64>) {
        super::compile_incr::update(self, topo, changed)
    }
}

/// Routes a node advertises that `autoApprovers` approve count as approved,
/// as on Tailscale (approval happens when the route is advertised).
fn auto_approve(doc: &Doc, topo: Arc<Topology>) -> Arc<Topology> {
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
    let mut t = (*topo).clone();
    for (i, routes) in extra {
        for route in routes {
            if !t.nodes[i].approved_routes.contains(&route) {
                t.nodes[i].approved_routes.push(route);
            }
        }
    }
    Arc::new(t)
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

fn union_src(r: &Resolver, rule: &Rule) -> IpSet {
    let mut s = IpSet::new();
    for a in &rule.src {
        s.extend(&r.src_set(a));
    }
    s
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

/// How a destination entry applies to one node.
pub(crate) enum Target {
    /// The node's own addresses.
    Own,
    /// Literal text for `DstPorts[].IP` (`*`, a prefix, ...).
    Text(Vec<String>),
}

pub(crate) struct RuleOut {
    pub src: IpSet,
    pub protos: Vec<i32>,
    pub dst: Vec<(String, super::model::Ports)>,
    pub cap_grant: Option<CapMap>,
    pub cap_dsts: Vec<String>,
}
