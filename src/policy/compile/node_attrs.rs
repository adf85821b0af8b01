//! Per-node `CapMap`: the `nodeAttrs` whose targets select the node, plus
//! the top-level `randomizeClientPort`, as on Tailscale's plane.
//!
//! `funnel` comes with the ports Funnel may listen on, as the hosted plane
//! sends them: tailscaled refuses `tailscale funnel` unless its CapMap has
//! the `funnel` attribute and a `https://tailscale.com/cap/funnel-ports`
//! entry listing the port (`ipn.CheckFunnelAccess`, tailcfg's
//! `NodeAttrFunnel` and `CapabilityFunnelPorts`).

use super::inner::Inner;
use crate::policy::model::CapMap;

/// The `funnel` node attribute (tailcfg `NodeAttrFunnel`).
pub const FUNNEL: &str = "funnel";

/// The ports Funnel may use, as the hosted plane grants them with `funnel`
/// (tailcfg `CapabilityFunnelPorts`, ports in the query).
pub const FUNNEL_PORTS: &str = "https://tailscale.com/cap/funnel-ports?ports=443,8443,10000";

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
        if cm.contains_key(FUNNEL) {
            cm.entry(FUNNEL_PORTS.into()).or_default();
        }
        cm
    }
}
