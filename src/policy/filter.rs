//! Per-node packet filter: which rules name this node (or a subnet it routes,
//! or the internet it exits to) as a destination, rendered as
//! `tailcfg.FilterRule`s with Tailscale's address formatting.

use std::net::IpAddr;
use std::sync::Arc;

use super::CapMap;
use super::alias::{Alias, Resolver, node_ips};
use super::compile::{Inner, RuleOut, Target};
use super::ipset::IpSet;
use super::model::{Dst, Ports, Rule};
use crate::tailcfg::{FilterRule, NetPortRange, PortRange, filter::CapGrant};

/// Destinations of one rule sharing `autogroup:self`-ness and protocols.
type DstGroup = (bool, Vec<i32>, Vec<(String, Ports)>);

impl Inner {
    pub(crate) fn resolver(&self) -> Resolver<'_> {
        Resolver {
            doc: &self.doc,
            topo: &self.topo,
        }
    }

    /// Sources of rule `ri` as seen by destination node `d` (narrowed to
    /// d's user's devices for `autogroup:self`).
    pub(crate) fn rule_src_for(&self, ri: usize, _d: usize) -> IpSet {
        self.rules[ri].src.clone()
    }

    fn self_src(&self, ri: usize, d: usize) -> IpSet {
        self.rules[ri].src.intersection(&self.same_user_set(d))
    }

    /// Does `dst` of `rule` apply to node `d`, and as what?
    pub(crate) fn dst_targets(&self, rule: &Rule, dst: &Dst, d: usize) -> Option<Target> {
        self.alias_target(rule, &dst.alias, d)
    }

    pub(crate) fn alias_target(&self, rule: &Rule, alias: &Alias, d: usize) -> Option<Target> {
        let n = &self.topo.nodes[d];
        let via_ok = rule.via.is_empty() || n.tags.iter().any(|t| rule.via.contains(t));
        match alias {
            Alias::Wildcard => Some(Target::Text(vec!["*".into()])),
            // An approved exit node filters what it forwards to the
            // internet: public unicast space (as the hosted plane sends it).
            Alias::Internet => (self.is_exit[d] && via_ok)
                .then(|| Target::Text(super::alias::internet_space().to_strings())),
            Alias::SelfDevices => (n.tags.is_empty() && n.user.is_some()).then_some(Target::Own),
            Alias::Host(_) | Alias::Prefix(_) => {
                let set = self.resolver().static_set(alias);
                let own = IpSet::from_addrs(node_ips(n));
                let via_route = self.subnets[d].intersects(&set);
                if (own.intersects(&set) && rule.via.is_empty()) || (via_route && via_ok) {
                    Some(Target::Text(set.to_strings()))
                } else {
                    None
                }
            }
            Alias::Service(_) => self
                .resolver()
                .node_matches(alias, d)
                .then_some(Target::Own),
            _ => (rule.via.is_empty() && self.resolver().node_matches(alias, d))
                .then_some(Target::Own),
        }
    }

    /// Filter rules for node `d`, before rendering.
    pub(crate) fn filter_rules(&self, d: usize) -> Vec<RuleOut> {
        let own: Vec<String> = node_ips(&self.topo.nodes[d])
            .iter()
            .map(IpAddr::to_string)
            .collect();
        let mut out: Vec<RuleOut> = Vec::new();
        for (ri, rule) in self.doc.rules.iter().enumerate() {
            // Network part: one FilterRule per protocol set, self separately.
            let mut groups: Vec<DstGroup> = Vec::new();
            for dst in &rule.dsts {
                let Some(t) = self.dst_targets(rule, dst, d) else {
                    continue;
                };
                let is_self = dst.alias == Alias::SelfDevices;
                let ips = match t {
                    Target::Own => own.clone(),
                    Target::Text(v) => v,
                };
                let g = match groups
                    .iter_mut()
                    .position(|g| g.0 == is_self && g.1 == dst.protos)
                {
                    Some(i) => &mut groups[i],
                    None => {
                        groups.push((is_self, dst.protos.clone(), vec![]));
                        groups.last_mut().expect("just pushed")
                    }
                };
                for ip in &ips {
                    for p in &dst.ports {
                        if !g.2.contains(&(ip.clone(), *p)) {
                            g.2.push((ip.clone(), *p));
                        }
                    }
                }
            }
            for (is_self, protos, dst) in groups {
                let src = if is_self {
                    self.self_src(ri, d)
                } else {
                    self.rules[ri].src.clone()
                };
                if src.is_empty() || dst.is_empty() {
                    continue;
                }
                out.push(RuleOut {
                    src,
                    protos,
                    dst,
                    cap_grant: None,
                    cap_dsts: vec![],
                });
            }
            // App part: CapGrant to this node.
            if let Some(app) = &rule.app {
                self.app_rules(ri, rule, app, d, &mut out);
            }
        }
        out
    }

    /// CapGrants of an app grant as seen by node `d`: the forward grant when
    /// `d` is a destination, and the reverse capabilities Tailscale derives
    /// (`drive` → `drive-sharer`, `relay` → `relay-target`) when `d` is a
    /// source, granted by the destinations to `d`.
    fn app_rules(&self, ri: usize, rule: &Rule, app: &CapMap, d: usize, out: &mut Vec<RuleOut>) {
        let n = &self.topo.nodes[d];
        let own_cidrs = || -> Vec<String> {
            node_ips(n)
                .iter()
                .map(|ip| ipnet::IpNet::from(*ip).to_string())
                .collect()
        };
        let mut is_self = false;
        let mut dsts: Vec<String> = Vec::new();
        for a in &rule.app_dsts {
            // App capabilities apply to nodes, never to subnets behind them.
            let hit = match a {
                Alias::Host(_) | Alias::Prefix(_) => {
                    let set = self.resolver().static_set(a);
                    node_ips(n).iter().any(|ip| set.contains(*ip))
                }
                _ => self.alias_target(rule, a, d).is_some(),
            };
            if !hit {
                continue;
            }
            is_self |= *a == Alias::SelfDevices;
            for x in own_cidrs() {
                if !dsts.contains(&x) {
                    dsts.push(x);
                }
            }
        }
        if !dsts.is_empty() {
            // An empty source set still yields the grant (as Tailscale does).
            let src = if is_self {
                self.self_src(ri, d)
            } else {
                self.rules[ri].src.clone()
            };
            out.push(RuleOut {
                src,
                protos: vec![],
                dst: vec![],
                cap_grant: Some(app.clone()),
                cap_dsts: dsts,
            });
        }
        let reverse: Vec<&str> = app.keys().filter_map(|k| reverse_cap(k)).collect();
        if reverse.is_empty() {
            return;
        }
        let own = IpSet::from_addrs(node_ips(n));
        if !self.rules[ri].src.intersects(&own) {
            return;
        }
        let r = self.resolver();
        let mut peers = IpSet::new();
        for a in &rule.app_dsts {
            match a {
                Alias::SelfDevices => peers.extend(&self.same_user_set(d)),
                Alias::Internet => {}
                a => peers.extend(&r.src_set(a)),
            }
        }
        if peers.is_empty() {
            return;
        }
        for cap in reverse {
            out.push(RuleOut {
                src: peers.clone(),
                protos: vec![],
                dst: vec![],
                cap_grant: Some(CapMap::from([(cap.to_string(), vec![])])),
                cap_dsts: own_cidrs(),
            });
        }
    }

    /// Addresses of the untagged devices of `d`'s user (empty when tagged).
    pub(crate) fn same_user_set(&self, d: usize) -> IpSet {
        let n = &self.topo.nodes[d];
        let mut own = IpSet::new();
        if n.tags.is_empty()
            && let Some(u) = n.user
        {
            for m in &self.topo.nodes {
                if m.tags.is_empty() && m.user == Some(u) {
                    for a in node_ips(m) {
                        own.push_addr(a);
                    }
                }
            }
        }
        own.normalize();
        own
    }

    pub(crate) fn render_filter(&self, d: usize) -> Arc<Vec<FilterRule>> {
        let mut rules: Vec<FilterRule> = Vec::new();
        for r in self.filter_rules(d) {
            let src_ips = r.src.to_strings();
            if let Some(cm) = r.cap_grant {
                rules.push(FilterRule {
                    src_ips,
                    dst_ports: vec![],
                    ip_proto: vec![],
                    cap_grant: vec![CapGrant {
                        dsts: r.cap_dsts,
                        cap_map: cm,
                    }],
                });
                continue;
            }
            let dst_ports: Vec<NetPortRange> = r
                .dst
                .iter()
                .map(|(ip, p)| NetPortRange {
                    ip: ip.clone(),
                    ports: PortRange {
                        first: p.first,
                        last: p.last,
                    },
                })
                .collect();
            // Rules with the same sources and protocols merge, as Tailscale does.
            if let Some(prev) = rules
                .iter_mut()
                .find(|x| x.cap_grant.is_empty() && x.src_ips == src_ips && x.ip_proto == r.protos)
            {
                for dp in dst_ports {
                    if !prev.dst_ports.contains(&dp) {
                        prev.dst_ports.push(dp);
                    }
                }
                continue;
            }
            rules.push(FilterRule {
                src_ips,
                dst_ports,
                ip_proto: r.protos,
                cap_grant: vec![],
            });
        }
        Arc::new(rules)
    }
}

/// The capability Tailscale grants in the opposite direction of `cap`.
fn reverse_cap(cap: &str) -> Option<&'static str> {
    match cap {
        "tailscale.com/cap/drive" => Some("tailscale.com/cap/drive-sharer"),
        "tailscale.com/cap/relay" => Some("tailscale.com/cap/relay-target"),
        _ => None,
    }
}
