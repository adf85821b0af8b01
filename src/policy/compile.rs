//! Compilation against a topology, as Tailscale does it: each node's packet
//! filter holds only the rules where the node (or a subnet it routes, or
//! the internet it exits to) is a destination; peers are symmetric
//! reachability plus the routes each side needs; CapMap/SSH per node.
//!
//! Scaling: `build` resolves the shared state once — selectors to node
//! bitsets (`index.rs`), per rule its source and destination node sets, the
//! route viewers — and every node's output is computed lazily on first
//! `node()` call (then cached). Sources are grouped by identical selector
//! lists, so their address sets and `SrcIPs` text are built once.
//! `update` (compile_incr.rs) reuses the outputs of unaffected nodes.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use ipnet::IpNet;

use super::alias::{Alias, Resolver, node_ips};
use super::index::{AliasIndex, Bits, Facts, is_static};
use super::ipset::IpSet;
use super::model::{Doc, Ports};
use super::routes::{auto_approve, routes};
use super::{CapMap, Explanation, NodeOutput, Topology};

/// Sources shared by all rules with the same `src` selector list.
pub(crate) struct SrcGroup {
    /// Nodes matched by identity (users, groups, tags, autogroups).
    pub node_bits: Arc<Bits>,
    /// Address part (`*`, hosts, prefixes).
    pub static_set: IpSet,
    set: OnceLock<IpSet>,
    text: OnceLock<Arc<Vec<String>>>,
}

/// A rule with its node sets resolved.
pub(crate) struct CRule {
    pub src: usize,
    /// Nodes whose addresses or subnets are among the sources.
    pub src_nodes: Arc<Bits>,
    /// Nodes some destination applies to (`autogroup:self` aside).
    pub dst_nodes: Arc<Bits>,
    pub has_self: bool,
    /// Per `rule.dsts` entry: the nodes it applies to.
    pub dst_each: Vec<Arc<Bits>>,
    /// Per `rule.app_dsts` entry: the nodes it applies to.
    pub app_each: Vec<Arc<Bits>>,
    /// Per `rule.dsts` entry: its address set and text for a host/prefix.
    pub dst_static: Vec<Option<(IpSet, Vec<String>)>>,
    /// The rule grants capabilities Tailscale mirrors back to the sources.
    pub has_reverse: bool,
}

pub(crate) struct Inner {
    pub doc: Arc<Doc>,
    /// The topology with auto-approved routes applied.
    pub topo: Arc<Topology>,
    pub index: HashMap<u64, usize>,
    pub facts: Facts,
    pub groups: Vec<SrcGroup>,
    pub rules: Vec<CRule>,
    /// Per node: approved subnet routes for which it is primary.
    pub primary: Vec<Vec<IpNet>>,
    /// Per node: nodes allowed to use its exit routes.
    pub exit_viewers: Vec<Option<Bits>>,
    /// Per node: for each primary route, the nodes that see it.
    pub route_viewers: Vec<Vec<(IpNet, Bits)>>,
    /// Nodes carrying the `disable-ipv4` attribute.
    pub no_ipv4: Bits,
    pub has_via: bool,
    pub outputs: Vec<OnceLock<Arc<NodeOutput>>>,
    /// SSH rules resolved once for all destinations (built lazily).
    pub ssh: OnceLock<super::ssh::SshIndex>,
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

impl Compiled {
    pub(crate) fn build(doc: Arc<Doc>, topo: Arc<Topology>) -> Compiled {
        Compiled {
            inner: Arc::new(Inner::build(doc, topo)),
        }
    }

    pub fn node(&self, id: u64) -> Option<NodeOutput> {
        self.node_arc(id).map(|o| (*o).clone())
    }

    /// As `node`, without copying: the output is computed once per node and
    /// shared (prefer this on hot paths).
    pub fn node_arc(&self, id: u64) -> Option<Arc<NodeOutput>> {
        self.node_shared(id).cloned()
    }

    /// As `node_arc`, borrowed: no reference count touched, for per-request
    /// paths that only look.
    pub fn node_shared(&self, id: u64) -> Option<&Arc<NodeOutput>> {
        let i = *self.inner.index.get(&id)?;
        Some(self.inner.output_ref(i))
    }

    /// Computes every node's output now (they are otherwise computed on
    /// first `node()`), e.g. before a full netmap push. Sequential on
    /// purpose: the work is allocation-bound, and two threads measured
    /// slower than one on the 2-core build machine.
    pub fn materialize(&self) {
        for i in 0..self.inner.outputs.len() {
            self.inner.output(i);
        }
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
        let proto_ok = |dst: &super::model::Dst| match proto {
            None => true,
            Some(p) if dst.protos.is_empty() => matches!(p, 1 | 6 | 17 | 58),
            Some(p) => dst.protos.contains(&(p as i32)),
        };
        let mut hits = Vec::new();
        // For a denial: what the rules that do name this source offer it
        // towards this destination (other ports or protocols), if anything.
        let mut near = Vec::new();
        let mut from_src = 0;
        for (ri, rule) in self.inner.doc.rules.iter().enumerate() {
            let src = self.inner.src_set(ri);
            if !ips.iter().any(|a| src.contains(*a)) {
                continue;
            }
            from_src += 1;
            let mut offered = Vec::new();
            let mut ok = false;
            for (di, dst) in rule.dsts.iter().enumerate() {
                if self.inner.dst_target(ri, di, d).is_none() {
                    continue;
                }
                let port_ok = dst.ports.iter().any(|p| p.first <= port && port <= p.last);
                if port_ok && proto_ok(dst) {
                    ok = true;
                }
                offered.extend(dst.ports.iter().map(|p| match (p.first, p.last) {
                    (0, 65535) => "*".to_string(),
                    (a, b) if a == b => a.to_string(),
                    (a, b) => format!("{a}-{b}"),
                }));
            }
            if ok {
                hits.push(rule.origin.clone());
            } else if !offered.is_empty() {
                offered.dedup();
                near.push(format!(
                    "{} allows ports {} only",
                    rule.origin,
                    offered.join(",")
                ));
            }
        }
        let allowed = !hits.is_empty();
        let reason = if allowed {
            format!("allowed by {}", hits.join(", "))
        } else if !near.is_empty() {
            format!(
                "no rule allows port {port}{} to this destination: {}",
                proto
                    .map(|p| format!(" (protocol {p})"))
                    .unwrap_or_default(),
                near.join("; ")
            )
        } else if from_src > 0 {
            format!("{from_src} rule(s) name this source, but none has this destination")
        } else {
            "no rule names this source".into()
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

    /// Same policy, changed topology (nodes upserted/removed): the new state
    /// and the ids whose `NodeOutput` may differ. Outputs of other nodes are
    /// carried over, not recomputed.
    pub fn update(&self, topo: &Topology, changed: &[u64]) -> (Compiled, BTreeSet<u64>) {
        super::compile_incr::update(self, topo, changed)
    }
}

impl Inner {
    pub(crate) fn build(doc: Arc<Doc>, topo: Arc<Topology>) -> Inner {
        let topo = auto_approve(&doc, topo);
        let n = topo.nodes.len();
        let index = topo
            .nodes
            .iter()
            .enumerate()
            .map(|(i, x)| (x.id, i))
            .collect();
        let (primary, subnets, is_exit) = routes(&topo);
        let facts = Facts::new(&topo, subnets, is_exit);
        let mut ax = AliasIndex::new(&doc, &topo, &facts);
        let r = Resolver {
            doc: &doc,
            topo: &topo,
        };

        // Sources, grouped by identical selector lists.
        let mut groups: Vec<SrcGroup> = Vec::new();
        let mut group_of: HashMap<Vec<Alias>, usize> = HashMap::new();
        let mut group_nodes: Vec<Arc<Bits>> = Vec::new();
        let mut rules = Vec::with_capacity(doc.rules.len());
        let mut via_cache: HashMap<(Alias, Vec<String>), Arc<Bits>> = HashMap::new();
        for rule in &doc.rules {
            let g = match group_of.get(&rule.src) {
                Some(&g) => g,
                None => {
                    let mut node_bits = Bits::new(n);
                    let mut static_set = IpSet::new();
                    for a in &rule.src {
                        if is_static(a) {
                            static_set.extend(&r.src_set(a));
                        } else {
                            node_bits.or(&ax.nodes(a));
                        }
                    }
                    let mut touching = ax.touching(&static_set);
                    touching.or(&node_bits);
                    group_nodes.push(ax.interner.intern(touching));
                    groups.push(SrcGroup {
                        node_bits: ax.interner.intern(node_bits),
                        static_set,
                        set: OnceLock::new(),
                        text: OnceLock::new(),
                    });
                    group_of.insert(rule.src.clone(), groups.len() - 1);
                    groups.len() - 1
                }
            };
            let mut each = |a: &Alias, ax: &mut AliasIndex| {
                let key = (a.clone(), rule.via.clone());
                if let Some(b) = via_cache.get(&key) {
                    return b.clone();
                }
                let b = dst_bits(ax, &r, a, &rule.via);
                let b = ax.interner.intern(b);
                via_cache.insert(key, b.clone());
                b
            };
            let dst_each: Vec<Arc<Bits>> =
                rule.dsts.iter().map(|d| each(&d.alias, &mut ax)).collect();
            let app_each: Vec<Arc<Bits>> = rule.app_dsts.iter().map(|a| each(a, &mut ax)).collect();
            let mut dst_nodes = Bits::new(n);
            for b in dst_each.iter().chain(&app_each) {
                dst_nodes.or(b);
            }
            rules.push(CRule {
                src: g,
                src_nodes: group_nodes[g].clone(),
                dst_nodes: ax.interner.intern(dst_nodes),
                has_self: rule.dsts.iter().any(|d| d.alias == Alias::SelfDevices)
                    || rule.app_dsts.contains(&Alias::SelfDevices),
                dst_each,
                app_each,
                dst_static: rule
                    .dsts
                    .iter()
                    .map(|d| {
                        matches!(d.alias, Alias::Host(_) | Alias::Prefix(_)).then(|| {
                            let set = r.static_set(&d.alias);
                            let text = set.to_strings();
                            (set, text)
                        })
                    })
                    .collect(),
                has_reverse: rule
                    .app
                    .as_ref()
                    .is_some_and(|m| m.keys().any(|k| super::filter::reverse_cap(k).is_some())),
            });
        }
        let mut no_ipv4 = Bits::new(n);
        for na in &doc.node_attrs {
            if na.attrs.contains_key("disable-ipv4") {
                for t in &na.target {
                    no_ipv4.or(&ax.nodes(t));
                }
            }
        }
        drop(ax);
        let mut inner = Inner {
            has_via: doc.rules.iter().any(|r| !r.via.is_empty()),
            doc: doc.clone(),
            topo: topo.clone(),
            index,
            facts,
            groups,
            rules,
            primary,
            exit_viewers: vec![],
            route_viewers: vec![],
            no_ipv4,
            outputs: (0..n).map(|_| OnceLock::new()).collect(),
            ssh: OnceLock::new(),
        };
        inner.exit_viewers = (0..n).map(|p| inner.exit_viewers_of(p)).collect();
        inner.route_viewers = (0..n)
            .map(|p| {
                inner.primary[p]
                    .iter()
                    .map(|r| (*r, inner.route_viewers_of(p, r)))
                    .collect()
            })
            .collect();
        inner
    }

    /// The output of node `i`, computed on first use.
    pub(crate) fn output(&self, i: usize) -> Arc<NodeOutput> {
        self.output_ref(i).clone()
    }

    pub(crate) fn output_ref(&self, i: usize) -> &Arc<NodeOutput> {
        self.outputs[i].get_or_init(|| Arc::new(self.node_output(i)))
    }

    pub(crate) fn resolver(&self) -> Resolver<'_> {
        Resolver {
            doc: &self.doc,
            topo: &self.topo,
        }
    }

    /// Source addresses of rule `ri`.
    pub(crate) fn src_set(&self, ri: usize) -> &IpSet {
        let g = &self.groups[self.rules[ri].src];
        g.set.get_or_init(|| {
            let mut s = g.static_set.clone();
            for i in g.node_bits.iter() {
                for a in node_ips(&self.topo.nodes[i]) {
                    s.push_addr(a);
                }
            }
            s.normalize();
            s
        })
    }

    /// `SrcIPs` text of rule `ri` (shared by every node it is rendered for).
    pub(crate) fn src_text(&self, ri: usize) -> Arc<Vec<String>> {
        let g = &self.groups[self.rules[ri].src];
        g.text
            .get_or_init(|| Arc::new(self.src_set(ri).to_strings()))
            .clone()
    }
}

/// Nodes a destination selector applies to, given the rule's `via` tags.
fn dst_bits(ax: &mut AliasIndex, r: &Resolver, a: &Alias, via: &[String]) -> Bits {
    let topo = ax.topo;
    let n = topo.nodes.len();
    let via_ok = |i: usize| via.is_empty() || topo.nodes[i].tags.iter().any(|t| via.contains(t));
    let mut b = Bits::new(n);
    match a {
        Alias::Wildcard => return Bits::all(n),
        Alias::SelfDevices | Alias::Role(_) | Alias::DangerAll => {}
        Alias::Internet => {
            for i in 0..n {
                if ax.facts.is_exit[i] && via_ok(i) {
                    b.set(i);
                }
            }
        }
        Alias::Host(_) | Alias::Prefix(_) => {
            let set = r.static_set(a);
            for i in 0..n {
                let own = via.is_empty() && ax.facts.own[i].intersects(&set);
                if own || (via_ok(i) && ax.facts.subnets[i].intersects(&set)) {
                    b.set(i);
                }
            }
        }
        Alias::Service(_) => return (*ax.nodes(a)).clone(),
        _ if via.is_empty() => return (*ax.nodes(a)).clone(),
        _ => {}
    }
    b
}

/// How a destination entry applies to one node.
pub(crate) enum Target {
    /// The node's own addresses.
    Own,
    /// Literal text for `DstPorts[].IP` (`*`, a prefix, ...).
    Text(Vec<String>),
}

pub(crate) struct RuleOut<'a> {
    pub src: std::borrow::Cow<'a, IpSet>,
    /// Pre-rendered `src` when it is the rule's whole source set.
    pub src_text: Option<Arc<Vec<String>>>,
    pub protos: Vec<i32>,
    pub dst: Vec<(String, Ports)>,
    pub cap_grant: Option<CapMap>,
    pub cap_dsts: Vec<String>,
}
