//! Per-node packet filter: which rules name this node (or a subnet it routes,
//! or the internet it exits to) as a destination, rendered as
//! `tailcfg.FilterRule`s with Tailscale's address formatting. Only rules
//! whose precomputed destination set holds the node are visited.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use super::inner::{Inner, RuleOut, SelfSrcMap, Target, reverse_cap};
use crate::policy::model::{Alias, CapMap, Ports, Rule};
use crate::policy::resolve::alias::{internet_space, node_ips};
use crate::policy::resolve::ipset::IpSet;
use crate::tailcfg::{FilterRule, NetPortRange, PortRange, filter::CapGrant};

/// Destinations of one rule sharing `autogroup:self`-ness and protocols.
type DstGroup = (bool, Vec<i32>, Vec<(String, Ports)>);

/// `autogroup:internet` as text, built once per process.
fn internet_text() -> &'static Vec<String> {
    static TEXT: OnceLock<Vec<String>> = OnceLock::new();
    TEXT.get_or_init(|| internet_space().to_strings())
}

impl Inner {
    /// Sources of rule `ri` among `d`'s user's devices (`autogroup:self`),
    /// with their text; shared by the user's devices (see `self_srcs`).
    fn self_src(&self, ri: usize, d: usize) -> (IpSet, Arc<Vec<String>>) {
        let g = self.rules[ri].src;
        // Only a user's devices share it (a tagged one has none).
        let key = self.topo.nodes[d]
            .user
            .filter(|_| self.user_node(d))
            .map(|u| (g, u));
        if let Some(k) = key
            && let Some(hit) = self.cache().get(&k)
        {
            return hit.clone();
        }
        let src = self.src_set(ri);
        let set = IpSet::from_addrs(
            self.same_user_nodes(d)
                .iter()
                .flat_map(|&m| node_ips(&self.topo.nodes[m]))
                .filter(|a| src.contains(*a)),
        );
        let out = (set.clone(), Arc::new(set.to_strings()));
        if let Some(k) = key {
            self.cache().insert(k, out.clone());
        }
        out
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, SelfSrcMap> {
        // A poisoned cache only lost an insert: its entries stay valid.
        self.self_srcs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Does destination `di` of rule `ri` apply to node `d`, and as what?
    pub(crate) fn dst_target(&self, ri: usize, di: usize, d: usize) -> Option<Target> {
        let alias = &self.doc.rules[ri].dsts[di].alias;
        if let Some(mask) = &self.rules[ri].dst_mask[di] {
            return self.masked_target(ri, di, d, alias, mask);
        }
        if *alias == Alias::SelfDevices {
            return self.user_node(d).then_some(Target::Own);
        }
        if !self.rules[ri].dst_each[di].get(d) {
            return None;
        }
        Some(match alias {
            Alias::Wildcard => Target::Text(vec!["*".into()]),
            // An approved exit node filters what it forwards to the
            // internet: public unicast space (as the hosted plane sends it).
            Alias::Internet => Target::Text(internet_text().clone()),
            Alias::Host(_) | Alias::Prefix(_) => match &self.rules[ri].dst_static[di] {
                Some((_, text)) => Target::Text(text.clone()),
                None => return None,
            },
            _ => Target::Own,
        })
    }

    /// `dst_target` for a destination narrowed by a deny (`Dst::mask`):
    /// the addresses of it node `d` receives, as text.
    fn masked_target(
        &self,
        ri: usize,
        di: usize,
        d: usize,
        alias: &Alias,
        mask: &IpSet,
    ) -> Option<Target> {
        let own = &self.facts.own[d];
        let set = match alias {
            Alias::SelfDevices if self.user_node(d) => own.intersection(mask),
            Alias::SelfDevices => return None,
            _ if !self.rules[ri].dst_each[di].get(d) => return None,
            Alias::Wildcard if self.facts.is_exit[d] => mask.clone(),
            Alias::Wildcard => {
                let mut local = own.clone();
                local.extend(&self.facts.subnets[d]);
                local.intersection(mask)
            }
            Alias::Internet => internet_space().intersection(mask),
            Alias::Host(_) | Alias::Prefix(_) => self.rules[ri].dst_static[di].as_ref()?.0.clone(),
            _ => own.intersection(mask),
        };
        (!set.is_empty()).then(|| Target::Text(set.to_strings()))
    }

    /// Filter rules for node `d`, before rendering.
    pub(crate) fn filter_rules(&self, d: usize) -> Vec<RuleOut<'_>> {
        let own: Vec<String> = node_ips(&self.topo.nodes[d])
            .iter()
            .map(IpAddr::to_string)
            .collect();
        let user_node = self.user_node(d);
        let mut out: Vec<RuleOut> = Vec::new();
        for (ri, rule) in self.doc.rules.iter().enumerate() {
            let cr = &self.rules[ri];
            let as_dst = cr.dst_nodes.get(d) || (cr.has_self && user_node);
            let as_src = cr.has_reverse && cr.src_nodes.get(d);
            if !as_dst && !as_src {
                continue;
            }
            // Network part: one FilterRule per protocol set, self separately.
            let mut groups: Vec<DstGroup> = Vec::new();
            for (di, dst) in rule.dsts.iter().enumerate() {
                let Some(t) = self.dst_target(ri, di, d) else {
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
                let (src, src_text) = if is_self {
                    let (set, text) = self.self_src(ri, d);
                    (Cow::Owned(set), Some(text))
                } else {
                    (Cow::Borrowed(self.src_set(ri)), Some(self.src_text(ri)))
                };
                if src.is_empty() || dst.is_empty() {
                    continue;
                }
                out.push(RuleOut {
                    src,
                    src_text,
                    protos,
                    dst,
                    cap_grant: None,
                    cap_dsts: vec![],
                });
            }
            // App part: CapGrant to (and back from) this node.
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
    fn app_rules<'a>(
        &'a self,
        ri: usize,
        rule: &Rule,
        app: &CapMap,
        d: usize,
        out: &mut Vec<RuleOut<'a>>,
    ) {
        let n = &self.topo.nodes[d];
        let own_cidrs = || -> Vec<String> {
            node_ips(n)
                .iter()
                .map(|ip| ipnet::IpNet::from(*ip).to_string())
                .collect()
        };
        let mut is_self = false;
        let mut hit = false;
        for (ai, a) in rule.app_dsts.iter().enumerate() {
            // App capabilities apply to nodes, never to subnets behind them.
            let applies = match a {
                Alias::SelfDevices => self.user_node(d),
                Alias::Host(_) | Alias::Prefix(_) => {
                    let set = self.resolver().static_set(a);
                    rule.via.is_empty() && node_ips(n).iter().any(|ip| set.contains(*ip))
                }
                _ => self.rules[ri].app_each[ai].get(d),
            };
            if applies {
                is_self |= *a == Alias::SelfDevices;
                hit = true;
            }
        }
        // Sources that match nothing (an empty group) still yield the grant,
        // with no `SrcIPs`; a grant with no sources written (`"src": []`)
        // yields none. Both as Tailscale does.
        if hit && !rule.src.is_empty() {
            let (src, src_text) = if is_self {
                let (set, text) = self.self_src(ri, d);
                (Cow::Owned(set), Some(text))
            } else {
                (Cow::Borrowed(self.src_set(ri)), Some(self.src_text(ri)))
            };
            out.push(RuleOut {
                src,
                src_text,
                protos: vec![],
                dst: vec![],
                cap_grant: Some(app.clone()),
                cap_dsts: own_cidrs(),
            });
        }
        if !self.rules[ri].has_reverse || !self.rules[ri].src_nodes.get(d) {
            return;
        }
        let own = &self.facts.own[d];
        if !self.src_set(ri).intersects(own) {
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
        for cap in app.keys().filter_map(|k| reverse_cap(k)) {
            out.push(RuleOut {
                src: Cow::Owned(peers.clone()),
                src_text: None,
                protos: vec![],
                dst: vec![],
                cap_grant: Some(CapMap::from([(cap.to_string(), vec![])])),
                cap_dsts: own_cidrs(),
            });
        }
    }

    /// Addresses of the untagged devices of `d`'s user (empty when tagged).
    pub(crate) fn same_user_set(&self, d: usize) -> IpSet {
        let mut own = IpSet::new();
        for &m in self.same_user_nodes(d) {
            for a in node_ips(&self.topo.nodes[m]) {
                own.push_addr(a);
            }
        }
        own.normalize();
        own
    }

    pub(crate) fn render_filter(&self, d: usize) -> Arc<Vec<FilterRule>> {
        let mut rules: Vec<FilterRule> = Vec::new();
        // Per network rule emitted: its sources, to merge rules with the same
        // sources and protocols as Tailscale does.
        let mut keys: Vec<(usize, RuleOut)> = Vec::new();
        for r in self.filter_rules(d) {
            let src_ips = || match &r.src_text {
                Some(t) => t.clone(),
                None => Arc::new(r.src.to_strings()),
            };
            if let Some(cm) = &r.cap_grant {
                rules.push(FilterRule {
                    src_ips: src_ips(),
                    dst_ports: vec![],
                    ip_proto: vec![],
                    cap_grant: vec![CapGrant {
                        dsts: r.cap_dsts.clone(),
                        cap_map: cm.clone(),
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
            let same = keys.iter().find(|(_, k)| {
                k.protos == r.protos
                    && match (&k.src_text, &r.src_text) {
                        (Some(a), Some(b)) if Arc::ptr_eq(a, b) => true,
                        _ => *k.src == *r.src,
                    }
            });
            if let Some((i, _)) = same {
                let prev = &mut rules[*i];
                for dp in dst_ports {
                    if !prev.dst_ports.contains(&dp) {
                        prev.dst_ports.push(dp);
                    }
                }
                continue;
            }
            rules.push(FilterRule {
                src_ips: src_ips(),
                dst_ports,
                ip_proto: r.protos.clone(),
                cap_grant: vec![],
            });
            keys.push((rules.len() - 1, r));
        }
        Arc::new(rules)
    }
}
