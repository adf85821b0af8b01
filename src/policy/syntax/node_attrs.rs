//! The `nodeAttrs` section: node attributes (`attr`, `app`) for targeted
//! nodes, which become keys of their `CapMap` (`compile::node_attrs`).

use serde_json::Value;

use super::fields::{Ctx, obj, strings};
use super::selector::alias;
use crate::policy::model::{CapMap, Doc, NodeAttr, PolicyError};

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
            target.push(alias(ctx, doc, t, &format!("{p}/target/{j}"))?);
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
