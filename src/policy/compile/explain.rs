//! `explain`: which rules let a source node reach a destination node on a
//! port, or, when none does, the deny rule that decides it or what the
//! rules naming that source offer it.

use super::first_match::{Probe, first_match};
use super::inner::Inner;
use super::types::Explanation;
use crate::policy::model::{Alias, Dst};
use crate::policy::resolve::alias::node_ips;

impl Inner {
    pub(crate) fn explain(
        &self,
        src_node: u64,
        dst_node: u64,
        port: u16,
        proto: Option<u8>,
    ) -> Explanation {
        let (Some(&s), Some(&d)) = (self.index.get(&src_node), self.index.get(&dst_node)) else {
            return Explanation {
                allowed: false,
                rules: vec![],
                reason: "unknown node".into(),
                denied_by: None,
            };
        };
        let ips = node_ips(&self.topo.nodes[s]);
        let proto_ok = |dst: &Dst| match proto {
            None => true,
            Some(p) if dst.protos.is_empty() => matches!(p, 1 | 6 | 17 | 58),
            Some(p) => dst.protos.contains(&(p as i32)),
        };
        let mut hits = Vec::new();
        // For a denial: what the rules that do name this source offer it
        // towards this destination (other ports or protocols), if anything.
        let mut near = Vec::new();
        let mut from_src = 0;
        for (ri, rule) in self.doc.rules.iter().enumerate() {
            let src = self.src_set(ri);
            if !ips.iter().any(|a| src.contains(*a)) {
                continue;
            }
            from_src += 1;
            let mut offered = Vec::new();
            let mut ok = false;
            for (di, dst) in rule.dsts.iter().enumerate() {
                if self.dst_target(ri, di, d).is_none() {
                    continue;
                }
                // `autogroup:self`: only between devices of one user.
                if dst.alias == Alias::SelfDevices && !self.same_user_nodes(d).contains(&s) {
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
                if !hits.contains(&rule.origin) {
                    hits.push(rule.origin.clone());
                }
            } else if !offered.is_empty() {
                offered.sort();
                offered.dedup();
                let text = format!("{} allows ports {} only", rule.origin, offered.join(","));
                if !near.contains(&text) {
                    near.push(text);
                }
            }
        }
        let allowed = !hits.is_empty();
        let denied_by = if allowed {
            None
        } else {
            self.deciding_deny(s, d, port, proto)
        };
        let reason = if allowed {
            format!("allowed by {}", hits.join(", "))
        } else if let Some(rule) = &denied_by {
            format!("denied by {rule} (a deny rule)")
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
            denied_by,
        }
    }

    /// The deny rule of the policy as written that decides traffic from
    /// node `s` to node `d` (first match, address by address; TCP when no
    /// protocol is given), if one does.
    fn deciding_deny(&self, s: usize, d: usize, port: u16, proto: Option<u8>) -> Option<String> {
        if !self.source.rules.iter().any(|r| r.deny) {
            return None;
        }
        let proto = proto.map_or(6, i32::from);
        for src in node_ips(&self.topo.nodes[s]) {
            for dst in node_ips(&self.topo.nodes[d]) {
                if src.is_ipv4() != dst.is_ipv4() {
                    continue;
                }
                let probe = Probe {
                    src,
                    dst,
                    node: d,
                    proto,
                    port,
                };
                if let Some(i) = first_match(&self.source, &self.topo, &probe)
                    && self.source.rules[i].deny
                {
                    return Some(self.source.rules[i].origin.clone());
                }
            }
        }
        None
    }
}
