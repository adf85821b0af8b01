//! `explain`: which rules let a source node reach a destination node on a
//! port, or, when none does, what the rules naming that source offer it.

use super::inner::Inner;
use super::types::Explanation;
use crate::policy::model::Dst;
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
}
