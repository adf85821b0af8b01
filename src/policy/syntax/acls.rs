//! The `acls` section: ordered rules, each lowered to a `Rule` with one
//! `Dst` per destination (service destinations narrowed to the service's
//! declared ports).

use serde_json::Value;

use super::fields::{Ctx, obj, parse_ports, parse_proto, split_dst, strings};
use super::selector::{alias, check_self, src_aliases};
use super::services;
use crate::policy::model::{Alias, Doc, Dst, PolicyError, Rule};

pub fn parse_acls(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
    let arr = v
        .as_array()
        .ok_or_else(|| ctx.err("/acls", "expected a list"))?;
    for (i, e) in arr.iter().enumerate() {
        let p = format!("/acls/{i}");
        let o = obj(ctx, e, &p)?;
        let action = o.get("action").and_then(Value::as_str).unwrap_or("");
        if action != "accept" {
            return Err(ctx.err(
                &format!("{p}/action"),
                format!("action={action:?} is not supported"),
            ));
        }
        let protos = match o.get("proto") {
            None | Some(Value::Null) => vec![],
            Some(Value::String(s)) => {
                parse_proto(s).map_err(|m| ctx.err(&format!("{p}/proto"), m))?
            }
            Some(_) => return Err(ctx.err(&format!("{p}/proto"), "proto must be a string")),
        };
        let src = src_aliases(ctx, doc, o.get("src"), &format!("{p}/src"))?;
        let mut dsts = Vec::new();
        for (j, d) in strings(ctx, o.get("dst"), &format!("{p}/dst"))?
            .iter()
            .enumerate()
        {
            let dp = format!("{p}/dst/{j}");
            let (a, ports) = split_dst(d).map_err(|m| ctx.err(&dp, m))?;
            let ports = parse_ports(ports).map_err(|m| ctx.err(&dp, format!("dst={a:?}: {m}")))?;
            let alias = alias(ctx, doc, a, &dp).map_err(|e| e.prefixed(&format!("dst={a:?}: ")))?;
            if alias == Alias::DangerAll {
                return Err(ctx.err(&dp, "cannot use autogroup:danger-all as a dst"));
            }
            if alias == Alias::SelfDevices {
                check_self(ctx, &src, true, &dp)?;
            }
            if let Alias::Service(name) = &alias {
                let lowered = services::restrict(doc, name, &protos, &ports)
                    .map_err(|m| ctx.err(&dp, format!("dst={a:?}: {m}")))?;
                dsts.extend(lowered);
                continue;
            }
            dsts.push(Dst {
                alias,
                ports,
                protos: protos.clone(),
            });
        }
        doc.rules.push(Rule {
            src,
            dsts,
            app_dsts: vec![],
            app: None,
            via: vec![],
            origin: format!("acls[{i}]"),
        });
    }
    Ok(())
}
