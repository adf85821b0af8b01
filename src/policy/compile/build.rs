//! Building the shared compiled state (`Inner`) for a policy and a
//! topology, as Tailscale does it: each rule's sources and destinations are
//! resolved once to node bitsets (`resolve::index`), sources grouped by
//! identical selector lists (so their address sets and `SrcIPs` text are
//! built once), then the route viewers. Per-node outputs are left empty
//! and computed on first use (`output`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use super::deny::lower;
use super::inner::{CRule, Inner, SrcGroup, reverse_cap};
use super::routes::{auto_approve, routes};
use crate::policy::model::{Alias, Doc, Topology};
use crate::policy::resolve::alias::{Resolver, internet_space};
use crate::policy::resolve::index::{AliasIndex, Bits, Facts, is_static};
use crate::policy::resolve::ipset::IpSet;

impl Inner {
    pub(crate) fn build(doc: Arc<Doc>, topo: Arc<Topology>) -> Inner {
        let input = topo.clone();
        let topo = auto_approve(&doc, topo);
        // From here on the rules are deny-free; `source` keeps them as
        // written (for `explain` and recompiles).
        let source = doc;
        let doc = lower(&source, &topo);
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
                        danger_all: rule.src.contains(&Alias::DangerAll),
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
            let dst_mask: Vec<Option<IpSet>> = rule
                .dsts
                .iter()
                .map(|d| d.mask.as_deref().map(IpSet::from_nets))
                .collect();
            let dst_each: Vec<Arc<Bits>> = rule
                .dsts
                .iter()
                .zip(&dst_mask)
                .map(|(d, m)| {
                    let b = each(&d.alias, &mut ax);
                    match m {
                        Some(m) => {
                            let b = masked(&ax, &r, &d.alias, &rule.via, &b, m);
                            ax.interner.intern(b)
                        }
                        None => b,
                    }
                })
                .collect();
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
                    .zip(&dst_mask)
                    .map(|(d, m)| {
                        matches!(d.alias, Alias::Host(_) | Alias::Prefix(_)).then(|| {
                            let mut set = r.static_set(&d.alias);
                            if let Some(m) = m {
                                set = set.intersection(m);
                            }
                            let text = set.to_strings();
                            (set, text)
                        })
                    })
                    .collect(),
                dst_mask,
                has_reverse: rule
                    .app
                    .as_ref()
                    .is_some_and(|m| m.keys().any(|k| reverse_cap(k).is_some())),
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
            source,
            topo: topo.clone(),
            input,
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
            self_srcs: Default::default(),
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

/// `nodes` (what destination `a` applies to) narrowed to the nodes for
/// which `a` restricted to `mask` still names an address they receive:
/// their own, a subnet they route, or (exit nodes) the internet.
fn masked(
    ax: &AliasIndex,
    r: &Resolver,
    a: &Alias,
    via: &[String],
    nodes: &Bits,
    mask: &IpSet,
) -> Bits {
    let topo = ax.topo;
    let via_ok = |i: usize| via.is_empty() || topo.nodes[i].tags.iter().any(|t| via.contains(t));
    let f = ax.facts;
    let mut b = Bits::new(topo.nodes.len());
    for i in nodes.iter() {
        let keep = match a {
            Alias::Wildcard => {
                (f.is_exit[i] && !mask.is_empty())
                    || f.own[i].intersects(mask)
                    || f.subnets[i].intersects(mask)
            }
            Alias::Internet => internet_space().intersects(mask),
            Alias::Host(_) | Alias::Prefix(_) => {
                let set = r.static_set(a).intersection(mask);
                (via.is_empty() && f.own[i].intersects(&set))
                    || (via_ok(i) && f.subnets[i].intersects(&set))
            }
            _ => f.own[i].intersects(mask),
        };
        if keep {
            b.set(i);
        }
    }
    b
}
