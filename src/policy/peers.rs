//! Peer visibility and AllowedIPs. A node sees a peer when either may reach
//! the other under some rule (subnets a node routes count on both sides);
//! a peer's primary routes (and exit routes) appear in AllowedIPs only when
//! traffic between them and the viewer is allowed, as on Tailscale's plane.

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::alias::{Alias, node_ips};
use super::compile::{Inner, is_exit_route};
use super::ipset::IpSet;
use super::{NodeOutput, PeerOutput};

/// Fixed-size bitset over node indices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    pub fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    pub fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    pub fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    pub fn or(&mut self, o: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a |= b;
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &x)| {
            (0..64)
                .filter(move |b| x & (1 << b) != 0)
                .map(move |b| w * 64 + b)
        })
    }
}

/// Per rule: which nodes are sources and which are destinations.
pub(crate) struct Reach {
    pub src: Vec<Bits>,
    pub dst: Vec<Bits>,
    /// Rules with an `autogroup:self` destination.
    pub has_self: Vec<bool>,
}

impl Inner {
    pub(crate) fn reach(&self) -> Reach {
        let n = self.topo.nodes.len();
        let own: Vec<IpSet> = self
            .topo
            .nodes
            .iter()
            .map(|x| IpSet::from_addrs(node_ips(x)))
            .collect();
        let mut src = Vec::with_capacity(self.doc.rules.len());
        let mut dst = Vec::with_capacity(self.doc.rules.len());
        let mut has_self = Vec::with_capacity(self.doc.rules.len());
        for (ri, rule) in self.doc.rules.iter().enumerate() {
            let s = &self.rules[ri].src;
            let mut sb = Bits::new(n);
            let mut db = Bits::new(n);
            for (i, own_i) in own.iter().enumerate() {
                if s.intersects(own_i) || s.intersects(&self.subnets[i]) {
                    sb.set(i);
                }
                let hit = rule
                    .dsts
                    .iter()
                    .map(|d| &d.alias)
                    .chain(rule.app_dsts.iter())
                    .any(|a| match a {
                        Alias::SelfDevices => false,
                        Alias::Internet => self.is_exit[i] && self.via_ok(rule, i),
                        _ => self.alias_target(rule, a, i).is_some(),
                    });
                if hit {
                    db.set(i);
                }
            }
            src.push(sb);
            dst.push(db);
            has_self.push(
                rule.dsts.iter().any(|d| d.alias == Alias::SelfDevices)
                    || rule.app_dsts.contains(&Alias::SelfDevices),
            );
        }
        Reach { src, dst, has_self }
    }

    pub(crate) fn via_ok(&self, rule: &super::model::Rule, i: usize) -> bool {
        rule.via.is_empty() || self.topo.nodes[i].tags.iter().any(|t| rule.via.contains(t))
    }

    fn exit_allowed(&self, reach: &Reach, v: usize, p: usize) -> bool {
        self.doc.rules.iter().enumerate().any(|(ri, rule)| {
            reach.src[ri].get(v)
                && self.via_ok(rule, p)
                && rule
                    .dsts
                    .iter()
                    .any(|d| matches!(d.alias, Alias::Internet | Alias::Wildcard))
        })
    }

    fn same_user(&self, a: usize, b: usize) -> bool {
        let (x, y) = (&self.topo.nodes[a], &self.topo.nodes[b]);
        x.tags.is_empty() && y.tags.is_empty() && x.user.is_some() && x.user == y.user
    }

    pub(crate) fn visible(&self, reach: &Reach, v: usize) -> Bits {
        let n = self.topo.nodes.len();
        let mut vis = Bits::new(n);
        for ri in 0..reach.src.len() {
            if reach.src[ri].get(v) {
                vis.or(&reach.dst[ri]);
            }
            if reach.dst[ri].get(v) {
                vis.or(&reach.src[ri]);
            }
            if reach.has_self[ri] {
                for p in 0..n {
                    if p != v
                        && self.same_user(v, p)
                        && (reach.src[ri].get(v) || reach.src[ri].get(p))
                    {
                        vis.set(p);
                    }
                }
            }
        }
        vis
    }

    /// May node `v` send to `route` behind peer `p`, or `route` send to `v`?
    fn route_allowed(&self, reach: &Reach, v: usize, p: usize, route: &IpNet) -> bool {
        let rset = IpSet::from_nets([route]);
        let pn = &self.topo.nodes[p];
        for (ri, rule) in self.doc.rules.iter().enumerate() {
            if reach.src[ri].get(v) {
                let via_ok = rule.via.is_empty() || pn.tags.iter().any(|t| rule.via.contains(t));
                let hit = rule
                    .dsts
                    .iter()
                    .map(|d| &d.alias)
                    .chain(rule.app_dsts.iter())
                    .any(|a| match a {
                        Alias::Wildcard => true,
                        Alias::Host(_) | Alias::Prefix(_) => {
                            via_ok && self.resolver().static_set(a).intersects(&rset)
                        }
                        _ => false,
                    });
                if hit {
                    return true;
                }
            }
            if reach.dst[ri].get(v) && self.rules[ri].src.intersects(&rset) {
                return true;
            }
        }
        false
    }

    /// Is `p`, although not the primary for `r`, the router a `via` grant
    /// steers `v`'s traffic for `r` through? Among the approvers of `r`
    /// matching the grant's `via` tags, the primary wins, else the lowest id.
    fn via_primary(&self, reach: &Reach, v: usize, p: usize, r: &IpNet) -> bool {
        let rset = IpSet::from_nets([r]);
        // A route the primary already gives `v` is not steered.
        let primary = (0..self.topo.nodes.len()).find(|&i| self.primary[i].contains(r));
        if let Some(g) = primary
            && (self.topo.nodes[v].approved_routes.contains(r)
                || self.route_allowed(reach, v, g, r))
        {
            return false;
        }
        self.doc.rules.iter().enumerate().any(|(ri, rule)| {
            if rule.via.is_empty() || !reach.src[ri].get(v) || !self.via_ok(rule, p) {
                return false;
            }
            let names_route = rule.dsts.iter().any(|d| {
                matches!(d.alias, Alias::Host(_) | Alias::Prefix(_))
                    && self.resolver().static_set(&d.alias).intersects(&rset)
            });
            if !names_route {
                return false;
            }
            let candidates = self
                .topo
                .nodes
                .iter()
                .enumerate()
                .filter(|(i, n)| n.approved_routes.contains(r) && self.via_ok(rule, *i));
            let mut best: Option<(bool, u64, usize)> = None;
            for (i, n) in candidates {
                let key = (!self.primary[i].contains(r), n.id, i);
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
            best.is_some_and(|b| b.2 == p)
        })
    }

    /// Does node `i` carry the `disable-ipv4` node attribute?
    pub(crate) fn no_ipv4(&self, i: usize) -> bool {
        self.cap_map(i).contains_key("disable-ipv4")
    }

    pub(crate) fn peers_of(&self, reach: &Reach, v: usize) -> BTreeMap<u64, PeerOutput> {
        let mut out = BTreeMap::new();
        let no_v4 = self.no_ipv4(v);
        for p in self.visible(reach, v).iter() {
            if p == v || p >= self.topo.nodes.len() {
                continue;
            }
            let pn = &self.topo.nodes[p];
            let mut allowed: Vec<IpNet> = node_ips(pn)
                .into_iter()
                .filter(|a| !(a.is_ipv4() && (no_v4 || self.no_ipv4(p))))
                .map(IpNet::from)
                .collect();
            let mut primary = Vec::new();
            for r in &pn.approved_routes {
                if is_exit_route(r) {
                    continue;
                }
                let show = if self.primary[p].contains(r) {
                    // HA: a router serving the same prefix learns the primary.
                    self.topo.nodes[v].approved_routes.contains(r)
                        || self.route_allowed(reach, v, p, r)
                } else {
                    self.via_primary(reach, v, p, r)
                };
                if show {
                    allowed.push(*r);
                    primary.push(*r);
                }
            }
            if self.is_exit[p] && self.exit_allowed(reach, v, p) {
                for r in &pn.approved_routes {
                    if r.prefix_len() == 0 {
                        allowed.push(*r);
                    }
                }
            }
            out.insert(
                pn.id,
                PeerOutput {
                    allowed_ips: allowed,
                    primary_routes: primary,
                },
            );
        }
        out
    }

    pub(crate) fn node_output_with(&self, reach: &Reach, d: usize) -> NodeOutput {
        NodeOutput {
            packet_filter: self.render_filter(d),
            peers: self.peers_of(reach, d),
            ssh_policy: self.ssh_policy(d),
            cap_map: self.cap_map(d),
        }
    }
}
