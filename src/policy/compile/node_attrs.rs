//! Per-node `CapMap`: the `nodeAttrs` whose targets select the node, plus
//! the top-level `randomizeClientPort`, as on Tailscale's plane.

use super::inner::Inner;
use crate::policy::model::CapMap;

impl Inner {
    pub(crate) fn cap_map(&self, d: usize) -> CapMap {
        let r = self.resolver();
        let mut cm = CapMap::new();
        if self.doc.randomize_client_port {
            cm.entry("randomize-client-port".into()).or_default();
        }
        for na in &self.doc.node_attrs {
            if na.target.iter().any(|t| r.node_matches(t, d)) {
                for (k, v) in &na.attrs {
                    cm.entry(k.clone()).or_default().extend(v.iter().cloned());
                }
            }
        }
        cm
    }
}
