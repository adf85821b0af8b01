//! The `nodeAttrs` section: node attributes (`attr`, `app`) for targeted
//! nodes, which become keys of their `CapMap` (`compile::node_attrs`).
//! Targets are node selectors (users, groups, tags, hosts, addresses, `*`,
//! `autogroup:member`, `autogroup:tagged`); `ipPool` prefixes must lie in
//! the CGNAT range outside Tailscale's reserved blocks.

use ipnet::IpNet;
use serde_json::Value;

use super::fields::{Ctx, key_path, known_fields, obj, strings};
use super::selector::{Place, alias_at};
use crate::policy::model::{CapMap, Doc, NodeAttr, PolicyError};

const FIELDS: &[&str] = &["target", "attr", "app", "ipPool"];

/// Tailscale's rule for `ipPool`: inside 100.64.0.0/10, clear of
/// 100.100.100.0/24 (MagicDNS) and 100.115.92.0/23 (Quad100 services).
fn check_ip_pool(pool: &str) -> Result<(), String> {
    let net: IpNet = pool
        .parse()
        .map_err(|_| format!("IPPool({pool}): invalid prefix"))?;
    let net = net.trunc();
    let cgnat: IpNet = "100.64.0.0/10".parse().expect("static");
    if !cgnat.contains(&net) {
        return Err(format!(
            "IPPool({pool}): nodeAttrs ipPool must be within 100.64.0.0/10"
        ));
    }
    for reserved in ["100.100.100.0/24", "100.115.92.0/23"] {
        let r: IpNet = reserved.parse().expect("static");
        if r.contains(&net) || net.contains(&r) {
            return Err(format!(
                "IPPool({pool}): network within reserved range {reserved}"
            ));
        }
    }
    Ok(())
}

pub fn parse(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
    let arr = v
        .as_array()
        .ok_or_else(|| ctx.err("/nodeAttrs", "expected a list"))?;
    for (i, e) in arr.iter().enumerate() {
        let p = format!("/nodeAttrs/{i}");
        let o = obj(ctx, e, &p)?;
        known_fields(ctx, o, &p, FIELDS, &[])?;
        let mut target = Vec::new();
        for (j, t) in strings(ctx, o.get("target"), &format!("{p}/target"))?
            .iter()
            .enumerate()
        {
            let tp = format!("{p}/target/{j}");
            target.push(alias_at(ctx, doc, t, &tp, Place::NodeAttrTarget)?);
        }
        let mut attrs = CapMap::new();
        for (j, a) in strings(ctx, o.get("attr"), &format!("{p}/attr"))?
            .into_iter()
            .enumerate()
        {
            if a.trim().is_empty() {
                return Err(ctx.err(&format!("{p}/attr/{j}"), "attr cannot be empty"));
            }
            attrs.entry(a).or_default();
        }
        match o.get("app") {
            None | Some(Value::Null) => {}
            Some(Value::Object(app)) => {
                for (k, v) in app {
                    let vals = match v {
                        Value::Array(a) => a.clone(),
                        Value::Null => vec![],
                        _ => {
                            return Err(ctx.err(
                                &key_path(&format!("{p}/app"), k),
                                "capability values must be a list",
                            ));
                        }
                    };
                    attrs.entry(k.clone()).or_default().extend(vals);
                }
            }
            Some(_) => return Err(ctx.err(&format!("{p}/app"), "app must be an object")),
        }
        for (j, pool) in strings(ctx, o.get("ipPool"), &format!("{p}/ipPool"))?
            .iter()
            .enumerate()
        {
            check_ip_pool(pool).map_err(|m| ctx.err(&format!("{p}/ipPool/{j}"), m))?;
        }
        doc.node_attrs.push(NodeAttr { target, attrs });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_pools() {
        assert!(check_ip_pool("100.80.0.0/16").is_ok());
        assert!(
            check_ip_pool("100.100.0.0/16")
                .unwrap_err()
                .contains("reserved")
        );
        assert!(
            check_ip_pool("100.100.100.0/25")
                .unwrap_err()
                .contains("reserved")
        );
        assert!(
            check_ip_pool("100.115.92.0/24")
                .unwrap_err()
                .contains("reserved")
        );
        assert!(
            check_ip_pool("10.0.0.0/8")
                .unwrap_err()
                .contains("100.64.0.0/10")
        );
        assert!(
            check_ip_pool("100.0.0.0/8")
                .unwrap_err()
                .contains("100.64.0.0/10")
        );
        assert!(
            check_ip_pool("nope")
                .unwrap_err()
                .contains("invalid prefix")
        );
    }
}
