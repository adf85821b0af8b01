//! Selector resolution against a `Topology`: which nodes an `Alias`
//! selects and which source addresses it stands for, plus the address
//! spaces Tailscale names implicitly (`*` as a source, `autogroup:internet`).
//! Mirrors Tailscale's alias rules: logins (`alice@example.com`, `alice@`,
//! `user:*@domain`), `group:`, `tag:`, hosts, IPs/CIDRs, `*`, autogroups,
//! and our `svc:NAME` extension.

use std::net::IpAddr;

use super::ipset::IpSet;
use crate::policy::model::alias::{member_matches, user_matches};
use crate::policy::model::{Alias, Doc, TopoNode, TopoUser, Topology};

/// The tailnet's node address space as `*` matches it in `SrcIPs`: the
/// CGNAT range minus Tailscale's reserved 100.115.92.0/23, plus the ULA /48.
pub fn tailnet_space() -> IpSet {
    let mut s = IpSet::new();
    s.push_range_v4(0x6440_0000, 0x647F_FFFF);
    s.push_range_v6(
        0xfd7a_115c_a1e0u128 << 80,
        (0xfd7a_115c_a1e0u128 << 80) | ((1u128 << 80) - 1),
    );
    s.normalize();
    s.remove_v4(0x6473_5C00, 0x6473_5DFF);
    s
}

/// `autogroup:internet` as an exit node's filter names it: IPv4 minus
/// private, CGNAT and link-local space; IPv6 global unicast (2000::/3).
pub fn internet_space() -> IpSet {
    let mut s = IpSet::new();
    s.push_range_v4(0, u32::MAX);
    s.normalize();
    for (a, b) in [
        (0x0A00_0000, 0x0AFF_FFFF), // 10/8
        (0x6440_0000, 0x647F_FFFF), // 100.64/10
        (0xA9FE_0000, 0xA9FE_FFFF), // 169.254/16
        (0xAC10_0000, 0xAC1F_FFFF), // 172.16/12
        (0xC0A8_0000, 0xC0A8_FFFF), // 192.168/16
    ] {
        s.remove_v4(a, b);
    }
    s.push_range_v6(0x2000u128 << 112, (0x4000u128 << 112) - 1);
    s.normalize();
    s
}

/// Resolution context: the policy plus the topology, with per-node facts.
pub struct Resolver<'a> {
    pub doc: &'a Doc,
    pub topo: &'a Topology,
}

impl Resolver<'_> {
    pub fn login_of(&self, node: usize) -> Option<&str> {
        self.user_of(node).map(|u| u.login.as_str())
    }

    pub fn user_of(&self, node: usize) -> Option<&TopoUser> {
        let uid = self.topo.nodes[node].user?;
        self.topo.users.iter().find(|u| u.id == uid)
    }

    /// Nodes (by index) an alias selects; `None` for aliases that are pure
    /// address space (`*`, IPs, hosts, internet) or not node-based.
    pub fn node_matches(&self, alias: &Alias, node: usize) -> bool {
        let n = &self.topo.nodes[node];
        let tagged = !n.tags.is_empty();
        match alias {
            Alias::Wildcard | Alias::DangerAll => true,
            Alias::User(sel) => {
                !tagged && self.login_of(node).is_some_and(|l| user_matches(sel, l))
            }
            Alias::UserDomain(d) => {
                !tagged
                    && self
                        .login_of(node)
                        .is_some_and(|l| l.rsplit_once('@').is_some_and(|(_, dom)| dom == d))
            }
            Alias::Group(g) => {
                !tagged
                    && self.user_of(node).is_some_and(|u| {
                        self.doc
                            .groups
                            .get(g)
                            .is_some_and(|ms| ms.iter().any(|m| member_matches(m, u)))
                    })
            }
            Alias::Tag(t) => n.tags.iter().any(|x| x == t),
            Alias::Member => !tagged && n.user.is_some(),
            Alias::Tagged => tagged,
            Alias::Host(_) | Alias::Prefix(_) => {
                let set = self.static_set(alias);
                node_ips(n).iter().any(|a| set.contains(*a))
            }
            Alias::Service(s) => self
                .doc
                .services
                .get(s)
                .is_some_and(|svc| svc.hosts.iter().any(|h| self.node_matches(h, node))),
            Alias::SelfDevices | Alias::Internet | Alias::Role(_) => false,
        }
    }

    /// Address set of a non-node alias (hosts, prefixes).
    pub fn static_set(&self, alias: &Alias) -> IpSet {
        match alias {
            Alias::Prefix(p) => IpSet::from_nets([p]),
            Alias::Host(h) => self
                .doc
                .hosts
                .get(h)
                .map(|p| IpSet::from_nets([p]))
                .unwrap_or_default(),
            _ => IpSet::new(),
        }
    }

    /// Source address set of an alias (`autogroup:self` is handled by the
    /// caller, per destination user).
    pub fn src_set(&self, alias: &Alias) -> IpSet {
        match alias {
            Alias::Wildcard => {
                let mut s = tailnet_space();
                for n in &self.topo.nodes {
                    for r in &n.approved_routes {
                        if r.prefix_len() != 0 {
                            s.push_net(r);
                        }
                    }
                }
                s.normalize();
                s
            }
            Alias::DangerAll => {
                let mut s = IpSet::new();
                s.push_net(&"0.0.0.0/0".parse().expect("static"));
                s.push_net(&"::/0".parse().expect("static"));
                s.normalize();
                s
            }
            Alias::Host(_) | Alias::Prefix(_) => self.static_set(alias),
            _ => {
                let mut s = IpSet::new();
                for (i, n) in self.topo.nodes.iter().enumerate() {
                    if self.node_matches(alias, i) {
                        for a in node_ips(n) {
                            s.push_addr(a);
                        }
                    }
                }
                s.normalize();
                s
            }
        }
    }
}

pub fn node_ips(n: &TopoNode) -> Vec<IpAddr> {
    let mut v = Vec::with_capacity(2);
    if let Some(a) = n.ipv4 {
        v.push(IpAddr::V4(a));
    }
    if let Some(a) = n.ipv6 {
        v.push(IpAddr::V6(a));
    }
    v
}
