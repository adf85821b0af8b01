//! Ordered `deny` rules (our extension) compiled away. `acls` are
//! evaluated in order and the first entry matching a (source, destination,
//! protocol, port) decides; `grants` come after every `acls` entry. Clients
//! only understand allow-lists, so for one topology each accept entry is
//! replaced by what is left of it once every deny above it is subtracted:
//! set differences over source addresses, destination addresses and
//! (protocol, port) pairs. The result is a deny-free `Doc` the rest of
//! `compile` handles as any other, so filters, peers, routes and `tests`
//! all see the same, already-subtracted rules; a pair of nodes no accept
//! connects any more no longer sees each other.
//!
//! What one rule matches, the unit of subtraction (`Svc`), follows the
//! client's packet filter: a port range applies to TCP, UDP and SCTP; ICMP
//! matches whatever the ports; any other protocol only with `*` ports.
//! Entries no deny touches are kept as written.
//!
//! Depends on `resolve` and `model`; `first_match` is the reference
//! evaluation these outputs are tested against.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::policy::model::{ALL_PORTS, Alias, Doc, Dst, Ports, Rule, Topology};
use crate::policy::resolve::alias::{Resolver, internet_space, node_ips};
use crate::policy::resolve::ipset::IpSet;

/// What an empty `proto` means: TCP, UDP, ICMP and ICMPv6.
pub(crate) const DEFAULT_PROTOS: [i32; 4] = [1, 6, 17, 58];

/// Does `proto` carry ports the filter matches on?
pub(crate) fn ported(proto: i32) -> bool {
    matches!(proto, 6 | 17 | 132)
}

/// IP protocol → the port ranges it is matched on (sorted, disjoint,
/// non-empty). ICMP is always all ports; a protocol without ports is
/// present only when all ports were allowed, as the client matches it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Svc(BTreeMap<i32, Ranges>);

/// Sorted, disjoint, inclusive port ranges (wide enough to step past 65535).
type Ranges = Vec<(u32, u32)>;

/// An operation on two range lists (`meet`, `cut`).
type RangeOp = fn(&[(u32, u32)], &[(u32, u32)]) -> Ranges;

fn norm(mut r: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    r.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(r.len());
    for (a, b) in r {
        match out.last_mut() {
            Some(last) if a <= last.1 + 1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn meet(a: &[(u32, u32)], b: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for &(x, y) in a {
        for &(u, v) in b {
            let (lo, hi) = (x.max(u), y.min(v));
            if lo <= hi {
                out.push((lo, hi));
            }
        }
    }
    norm(out)
}

fn cut(a: &[(u32, u32)], b: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for &(x, y) in a {
        let mut pieces = vec![(x, y)];
        for &(u, v) in b {
            pieces = pieces
                .into_iter()
                .flat_map(|(lo, hi)| {
                    let mut keep = Vec::new();
                    if v < lo || u > hi {
                        keep.push((lo, hi));
                    } else {
                        if u > lo {
                            keep.push((lo, u - 1));
                        }
                        if v < hi {
                            keep.push((v + 1, hi));
                        }
                    }
                    keep
                })
                .collect();
        }
        out.extend(pieces);
    }
    norm(out)
}

impl Svc {
    /// The (protocol, port) pairs a destination with `protos` (empty:
    /// the default set) and `ports` matches.
    pub(crate) fn new(protos: &[i32], ports: &[Ports]) -> Svc {
        let all = ports.contains(&ALL_PORTS);
        let ranges = norm(
            ports
                .iter()
                .map(|p| (u32::from(p.first), u32::from(p.last)))
                .collect(),
        );
        let protos: &[i32] = if protos.is_empty() {
            &DEFAULT_PROTOS
        } else {
            protos
        };
        let mut m = BTreeMap::new();
        for &p in protos {
            let r = if ported(p) {
                ranges.clone()
            } else if matches!(p, 1 | 58) || all {
                vec![(0, 65535)]
            } else {
                continue;
            };
            if !r.is_empty() {
                m.insert(p, r);
            }
        }
        Svc(m)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn combine(&self, o: &Svc, f: RangeOp, keep_missing: bool) -> Svc {
        let mut m = BTreeMap::new();
        for (p, r) in &self.0 {
            let v = match o.0.get(p) {
                Some(q) => f(r, q),
                None if keep_missing => r.clone(),
                None => vec![],
            };
            if !v.is_empty() {
                m.insert(*p, v);
            }
        }
        Svc(m)
    }

    pub(crate) fn intersect(&self, o: &Svc) -> Svc {
        self.combine(o, meet, false)
    }

    pub(crate) fn minus(&self, o: &Svc) -> Svc {
        self.combine(o, cut, true)
    }

    /// As destinations on `alias` restricted to `mask`: one per set of
    /// protocols sharing the same ports.
    fn dsts(&self, alias: &Alias, mask: &IpSet) -> Vec<Dst> {
        let mut groups: Vec<(Ranges, Vec<i32>)> = Vec::new();
        for (p, r) in &self.0 {
            match groups.iter_mut().find(|(rr, _)| rr == r) {
                Some((_, ps)) => ps.push(*p),
                None => groups.push((r.clone(), vec![*p])),
            }
        }
        groups
            .into_iter()
            .map(|(r, protos)| Dst {
                alias: alias.clone(),
                ports: r
                    .iter()
                    .map(|&(a, b)| Ports {
                        first: a as u16,
                        last: b as u16,
                    })
                    .collect(),
                protos,
                mask: Some(mask.to_nets()),
            })
            .collect()
    }
}

/// A box of traffic: from `src` to `dst` over `svc`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Piece {
    src: IpSet,
    dst: IpSet,
    svc: Svc,
}

impl Piece {
    fn is_empty(&self) -> bool {
        self.src.is_empty() || self.dst.is_empty() || self.svc.is_empty()
    }

    /// `self` minus `d`, as disjoint boxes; `None` when they do not meet.
    fn minus(&self, d: &Piece) -> Option<Vec<Piece>> {
        let src = self.src.intersection(&d.src);
        let dst = self.dst.intersection(&d.dst);
        let svc = self.svc.intersect(&d.svc);
        if src.is_empty() || dst.is_empty() || svc.is_empty() {
            return None;
        }
        let out = [
            Piece {
                src: self.src.difference(&d.src),
                dst: self.dst.clone(),
                svc: self.svc.clone(),
            },
            Piece {
                src: src.clone(),
                dst: self.dst.difference(&d.dst),
                svc: self.svc.clone(),
            },
            Piece {
                src,
                dst,
                svc: self.svc.minus(&d.svc),
            },
        ];
        Some(out.into_iter().filter(|p| !p.is_empty()).collect())
    }
}

/// Addresses a destination selector stands for.
pub(crate) fn dst_set(r: &Resolver, a: &Alias) -> IpSet {
    match a {
        Alias::Wildcard => IpSet::full(),
        Alias::Internet => internet_space(),
        Alias::Host(_) | Alias::Prefix(_) => r.static_set(a),
        Alias::SelfDevices | Alias::DangerAll | Alias::Role(_) => IpSet::new(),
        _ => r.src_set(a),
    }
}

/// Per user with untagged nodes: those nodes' addresses (what
/// `autogroup:self` is for that user's sources).
fn self_sets(topo: &Topology) -> Vec<IpSet> {
    let mut by_user: BTreeMap<u64, IpSet> = BTreeMap::new();
    for n in topo.nodes.iter().filter(|n| n.tags.is_empty()) {
        if let Some(u) = n.user {
            let s = by_user.entry(u).or_default();
            for a in node_ips(n) {
                s.push_addr(a);
            }
        }
    }
    by_user
        .into_values()
        .map(|mut s| {
            s.normalize();
            s
        })
        .collect()
}

/// One box per address family: traffic never crosses from IPv4 to IPv6,
/// so a box with sources of one family and destinations of the other is
/// no traffic at all (and must not make two nodes peers).
fn by_family(p: Piece) -> Vec<Piece> {
    let v4 = IpSet::from_nets(&["0.0.0.0/0".parse().expect("static")]);
    let v6 = IpSet::from_nets(&["::/0".parse().expect("static")]);
    [v4, v6]
        .iter()
        .map(|fam| Piece {
            src: p.src.intersection(fam),
            dst: p.dst.intersection(fam),
            svc: p.svc.clone(),
        })
        .filter(|p| !p.is_empty())
        .collect()
}

/// The boxes one destination of a rule covers, given the rule's sources.
fn boxes(r: &Resolver, selves: &[IpSet], src: &IpSet, d: &Dst) -> Vec<Piece> {
    let svc = Svc::new(&d.protos, &d.ports);
    let mask = |s: IpSet| match &d.mask {
        Some(m) => s.intersection(&IpSet::from_nets(m)),
        None => s,
    };
    if d.alias == Alias::SelfDevices {
        return selves
            .iter()
            .flat_map(|own| {
                by_family(Piece {
                    src: src.intersection(own),
                    dst: mask(own.clone()),
                    svc: svc.clone(),
                })
            })
            .collect();
    }
    by_family(Piece {
        src: src.clone(),
        dst: mask(dst_set(r, &d.alias)),
        svc,
    })
}

fn src_set(r: &Resolver, src: &[Alias]) -> IpSet {
    let mut s = IpSet::new();
    for a in src {
        s.extend(&r.src_set(a));
    }
    s
}

/// `doc` with its deny rules compiled away for `topo` (the same `Arc` when
/// it has none).
pub(crate) fn lower(doc: &Arc<Doc>, topo: &Topology) -> Arc<Doc> {
    if !doc.rules.iter().any(|r| r.deny) {
        return doc.clone();
    }
    let r = Resolver { doc, topo };
    let selves = self_sets(topo);
    let mut denies: Vec<Piece> = Vec::new();
    let mut rules = Vec::with_capacity(doc.rules.len());
    for rule in &doc.rules {
        let src = src_set(&r, &rule.src);
        if rule.deny {
            for d in &rule.dsts {
                denies.extend(boxes(&r, &selves, &src, d));
            }
            continue;
        }
        rules.extend(subtract(&r, &selves, rule, &src, &denies));
    }
    Arc::new(Doc {
        rules,
        ..(**doc).clone()
    })
}

/// `rule` minus `denies`: the rule itself with its untouched destinations
/// (and its `app` part), plus one rule per source set of what is left of
/// the others.
fn subtract(
    r: &Resolver,
    selves: &[IpSet],
    rule: &Rule,
    src: &IpSet,
    denies: &[Piece],
) -> Vec<Rule> {
    let mut kept = Vec::new();
    let mut cut: Vec<(IpSet, Vec<Dst>)> = Vec::new();
    for d in &rule.dsts {
        let mut pieces = boxes(r, selves, src, d);
        let mut touched = false;
        for deny in denies {
            pieces = pieces
                .into_iter()
                .flat_map(|p| match p.minus(deny) {
                    Some(rest) => {
                        touched = true;
                        rest
                    }
                    None => vec![p],
                })
                .collect();
        }
        if !touched {
            kept.push(d.clone());
            continue;
        }
        for p in pieces {
            let dsts = p.svc.dsts(&d.alias, &p.dst);
            match cut.iter_mut().find(|(s, _)| *s == p.src) {
                Some((_, v)) => v.extend(dsts),
                None => cut.push((p.src, dsts)),
            }
        }
    }
    let mut out = Vec::new();
    if !kept.is_empty() || rule.app.is_some() {
        out.push(Rule {
            dsts: kept,
            ..rule.clone()
        });
    }
    for (s, dsts) in cut {
        out.push(Rule {
            deny: false,
            src: s.to_nets().into_iter().map(Alias::Prefix).collect(),
            dsts,
            app_dsts: vec![],
            app: None,
            via: rule.via.clone(),
            origin: rule.origin.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(v: &[(u16, u16)]) -> Vec<Ports> {
        v.iter()
            .map(|&(first, last)| Ports { first, last })
            .collect()
    }

    #[test]
    fn svc_follows_the_client_filter() {
        let s = Svc::new(&[], &ports(&[(22, 22)]));
        assert_eq!(
            s.0,
            BTreeMap::from([
                (1, vec![(0, 65535)]),
                (6, vec![(22, 22)]),
                (17, vec![(22, 22)]),
                (58, vec![(0, 65535)]),
            ])
        );
        // GRE has no ports: only `*` lets it through.
        assert!(Svc::new(&[47], &ports(&[(22, 22)])).is_empty());
        assert_eq!(Svc::new(&[47], &[ALL_PORTS]).0[&47], vec![(0, 65535)]);
        let all = Svc::new(&[6], &[ALL_PORTS]);
        let ssh = Svc::new(&[6], &ports(&[(22, 22)]));
        assert_eq!(all.minus(&ssh).0[&6], vec![(0, 21), (23, 65535)]);
        assert_eq!(all.intersect(&ssh), ssh);
        assert!(ssh.minus(&all).is_empty());
        let udp = Svc::new(&[17], &[ALL_PORTS]);
        assert_eq!(all.minus(&udp), all);
        assert!(all.intersect(&udp).is_empty());
    }

    #[test]
    fn port_ranges() {
        assert_eq!(
            norm(vec![(5, 9), (1, 3), (4, 4), (20, 30)]),
            vec![(1, 9), (20, 30)]
        );
        assert_eq!(
            cut(&[(0, 100)], &[(0, 0), (50, 60), (100, 200)]),
            vec![(1, 49), (61, 99)]
        );
        assert_eq!(
            meet(&[(0, 10), (20, 30)], &[(5, 25)]),
            vec![(5, 10), (20, 25)]
        );
    }
}
