//! The `autoApprovers` section: who may advertise which subnet routes and
//! exit routes without an operator's approval (and Tailscale's own
//! `services` approvers, validated and kept out of the model).

use serde_json::Value;

use super::fields::{Ctx, key_path, known_fields, obj, strings};
use super::selector::{Place, alias_at};
use crate::policy::model::{Doc, PolicyError};

pub fn parse_auto(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
    let o = obj(ctx, v, "/autoApprovers")?;
    known_fields(
        ctx,
        o,
        "/autoApprovers",
        &["routes", "exitNode", "services"],
        &[],
    )?;
    if let Some(r) = o.get("routes") {
        for (prefix, approvers) in obj(ctx, r, "/autoApprovers/routes")? {
            let p = key_path("/autoApprovers/routes", prefix);
            let net: ipnet::IpNet = prefix
                .parse()
                .map_err(|_| ctx.err(&p, format!("autoApprovers: {prefix:?}: invalid prefix")))?;
            let mut v = Vec::new();
            for (i, s) in strings(ctx, Some(approvers), &p)?.iter().enumerate() {
                v.push(alias_at(
                    ctx,
                    doc,
                    s,
                    &format!("{p}/{i}"),
                    Place::AutoApprover,
                )?);
            }
            doc.auto_routes.push((net, v));
        }
    }
    // Tailscale's own `autoApprovers.services` ("svc:NAME": approvers):
    // validated and accepted; our services are defined by the policy.
    if let Some(sv) = o.get("services") {
        for (name, approvers) in obj(ctx, sv, "/autoApprovers/services")? {
            let p = key_path("/autoApprovers/services", name);
            if !name.starts_with("svc:") {
                return Err(ctx.err(&p, format!("service {name:?} must start with \"svc:\"")));
            }
            for (i, s) in strings(ctx, Some(approvers), &p)?.iter().enumerate() {
                alias_at(ctx, doc, s, &format!("{p}/{i}"), Place::AutoApprover)?;
            }
        }
    }
    if let Some(e) = o.get("exitNode") {
        for (i, s) in strings(ctx, Some(e), "/autoApprovers/exitNode")?
            .iter()
            .enumerate()
        {
            let ep = format!("/autoApprovers/exitNode/{i}");
            let a = alias_at(ctx, doc, s, &ep, Place::AutoApprover)?;
            doc.auto_exit.push(a);
        }
    }
    Ok(())
}
