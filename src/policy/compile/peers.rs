//! Peer visibility and AllowedIPs. A node sees a peer when either may reach
//! the other under some rule (subnets a node routes count on both sides);
//! a peer's primary routes (and exit routes) appear in AllowedIPs only when
//! traffic between them and the viewer is allowed, as on Tailscale's plane.
//! Route and exit viewers are precomputed per router (`build`).

use std::collections::HashSet;

use ipnet::IpNet;

use super::inner::Inner;
use super::routes::is_exit_route;
use super::types::{PeerOutput, Peers};
use crate::policy::model::Alias;
use crate::policy::resolve::alias::{internet_space, node_ips};
use crate::policy::resolve::index::Bits;
use crate::policy::resolve::ipset::IpSet;

impl Inner {
    /// Nodes `v` sees as peers (may include `v`).
    pub(crate) fn visible(&self, v: usize) -> Bits {
        let mut vis = Bits::new(self.topo.nodes.len());
        let mut done: HashSet<*const Bits> = HashSet::new();
        let mut add = |vis: &mut Bits, b: &std::sync::Arc<Bits>| {
            if done.insert(std::sync::Arc::as_ptr(b)) {
                vis.or(b);
            }
        };
        let user_node = self.user_node(v);
        for cr in &self.rules {
            if cr.src_nodes.get(v) {
                add(&mut vis, &cr.dst_nodes);
            }
            if cr.dst_nodes.get(v) {
                add(&mut vis, &cr.src_nodes);
            }
            if cr.has_self && user_node {
                let v_src = cr.src_nodes.get(v);
                for &p in self.same_user_nodes(v) {
                    if v_src || cr.src_nodes.get(p) {
                        vis.set(p);
                    }
                }
            }
        }
        vis
    }

    /// Viewers allowed to use exit node `p`'s exit routes.
    pub(crate) fn exit_viewers_of(&self, p: usize) -> Option<Bits> {
        if !self.facts.is_exit[p] {
            return None;
        }
        let mut b = Bits::new(self.topo.nodes.len());
        let internet = internet_space();
        for (ri, rule) in self.doc.rules.iter().enumerate() {
            let masks = &self.rules[ri].dst_mask;
            if self.via_ok(rule, p)
                && rule.dsts.iter().zip(masks).any(|(d, m)| {
                    matches!(d.alias, Alias::Internet | Alias::Wildcard)
                        && m.as_ref().is_none_or(|m| m.intersects(&internet))
                })
            {
                b.or(&self.rules[ri].src_nodes);
            }
        }
        Some(b)
    }

    /// Viewers that may send to `route` behind router `p`, or receive from it.
    pub(crate) fn route_viewers_of(&self, p: usize, route: &IpNet) -> Bits {
        let rset = IpSet::from_nets([route]);
        let r = self.resolver();
        let mut b = Bits::new(self.topo.nodes.len());
        for (ri, rule) in self.doc.rules.iter().enumerate() {
            let cr = &self.rules[ri];
            let via_ok = self.via_ok(rule, p);
            let to_dst = rule.dsts.iter().enumerate().any(|(di, d)| match d.alias {
                Alias::Wildcard => cr.dst_mask[di].as_ref().is_none_or(|m| m.intersects(&rset)),
                Alias::Host(_) | Alias::Prefix(_) => {
                    via_ok
                        && cr.dst_static[di]
                            .as_ref()
                            .is_some_and(|(set, _)| set.intersects(&rset))
                }
                _ => false,
            });
            let to_app = rule.app_dsts.iter().any(|a| match a {
                Alias::Wildcard => true,
                Alias::Host(_) | Alias::Prefix(_) => via_ok && r.static_set(a).intersects(&rset),
                _ => false,
            });
            let to_route = to_dst || to_app;
            if to_route {
                b.or(&cr.src_nodes);
            }
            if self.groups[cr.src].static_set.intersects(&rset) {
                b.or(&cr.dst_nodes);
            }
        }
        b
    }

    /// Does `v` see primary router `g`'s `route`?
    fn sees_primary(&self, v: usize, g: usize, route: &IpNet) -> bool {
        // HA: a router serving the same prefix learns the primary.
        self.topo.nodes[v].approved_routes.contains(route)
            || self.route_viewers[g]
                .iter()
                .any(|(r, b)| r == route && b.get(v))
    }

    /// Is `p`, although not the primary for `r`, the router a `via` grant
    /// steers `v`'s traffic for `r` through? Among the approvers of `r`
    /// matching the grant's `via` tags, the primary wins, else the lowest id.
    fn via_primary(&self, v: usize, p: usize, r: &IpNet) -> bool {
        if !self.has_via {
            return false;
        }
        let rset = IpSet::from_nets([r]);
        // A route the primary already gives `v` is not steered.
        let primary = (0..self.topo.nodes.len()).find(|&i| self.primary[i].contains(r));
        if let Some(g) = primary
            && self.sees_primary(v, g, r)
        {
            return false;
        }
        self.doc.rules.iter().enumerate().any(|(ri, rule)| {
            if rule.via.is_empty() || !self.rules[ri].src_nodes.get(v) || !self.via_ok(rule, p) {
                return false;
            }
            let names_route = self.rules[ri]
                .dst_static
                .iter()
                .flatten()
                .any(|(set, _)| set.intersects(&rset));
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

    pub(crate) fn peers_of(&self, v: usize) -> Peers {
        let visible = self.visible(v);
        let mut ids = Vec::with_capacity(visible.count());
        let mut routed = Vec::new();
        let no_v4 = self.no_ipv4.get(v);
        for p in visible.iter() {
            if p == v || p >= self.topo.nodes.len() {
                continue;
            }
            let pn = &self.topo.nodes[p];
            ids.push(pn.id);
            // A peer with no approved route and every address shown is
            // `PeerOutput::own`: its id says it all. Most peers are; a host
            // seen by 10,000 nodes had its output rebuilt per generation
            // with two allocations per peer.
            // `disable-ipv4` on either side withholds the peer's IPv4.
            let hide_v4 = no_v4 || self.no_ipv4.get(p);
            if pn.approved_routes.is_empty() && !(hide_v4 && pn.ipv4.is_some()) {
                continue;
            }
            let ips = node_ips(pn);
            let mut allowed: Vec<IpNet> = ips
                .iter()
                .copied()
                .filter(|a| !(a.is_ipv4() && hide_v4))
                .map(IpNet::from)
                .collect();
            let mut primary = Vec::new();
            for r in &pn.approved_routes {
                if is_exit_route(r) {
                    continue;
                }
                let show = if self.primary[p].contains(r) {
                    self.sees_primary(v, p, r)
                } else {
                    self.via_primary(v, p, r)
                };
                if show {
                    allowed.push(*r);
                    primary.push(*r);
                }
            }
            if self.exit_viewers[p].as_ref().is_some_and(|b| b.get(v)) {
                for r in &pn.approved_routes {
                    if is_exit_route(r) {
                        allowed.push(*r);
                    }
                }
            }
            let out = PeerOutput {
                allowed_ips: allowed,
                primary_routes: primary,
            };
            if !out.is_own(&ips) {
                routed.push((pn.id, out));
            }
        }
        Peers::from_parts(ids, routed)
    }
}
