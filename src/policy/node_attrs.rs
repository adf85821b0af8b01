//! `nodeAttrs` (and top-level `randomizeClientPort`): node attributes that
//! become keys of the node's `CapMap`, as on Tailscale's plane.

use serde_json::Value;

use super::compile::Inner;
use super::model::{Ctx, Doc, NodeAttr, obj, strings};
use super::{CapMap, PolicyError};

pub fn parse(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
    let arr = v
        .as_array()
        .ok_or_else(|| ctx.err("/nodeAttrs", "expected a list"))?;
    for (i, e) in arr.iter().enumerate() {
        let p = format!("/nodeAttrs/{i}");
        let o = obj(ctx, e, &p)?;
        let mut target = Vec::new();
        for (j, t) in strings(ctx, o.get("target"), &format!("{p}/target"))?
            .iter()
            .enumerate()
        {
            target.push(super::parse::alias(
                ctx,
                doc,
                t,
                &format!("{p}/target/{j}"),
            )?);
        }
        let mut attrs = CapMap::new();
        for a in strings(ctx, o.get("attr"), &format!("{p}/attr"))? {
            attrs.entry(a).or_default();
        }
        if let Some(Value::Object(app)) = o.get("app") {
            for (k, v) in app {
                let vals = v.as_array().cloned().unwrap_or_default();
                attrs.entry(k.clone()).or_default().extend(vals);
            }
        }
        for (j, pool) in strings(ctx, o.get("ipPool"), &format!("{p}/ipPool"))?
            .iter()
            .enumerate()
        {
            let pp = format!("{p}/ipPool/{j}");
            let net: ipnet::IpNet = pool
                .parse()
                .map_err(|_| ctx.err(&pp, format!("IPPool({pool}): invalid prefix")))?;
            let reserved: ipnet::IpNet = "100.100.100.0/24".parse().expect("static");
            if reserved.contains(&net) || net.contains(&reserved) {
                return Err(ctx.err(
                    &pp,
                    format!("IPPool({pool}): network within reserved range"),
                ));
            }
        }
        doc.node_attrs.push(NodeAttr { target, attrs });
    }
    Ok(())
}

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
