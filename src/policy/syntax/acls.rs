//! The `acls` section: ordered rules, each lowered to a `Rule` with one
//! `Dst` per destination (service destinations narrowed to the service's
//! declared ports). Besides Tailscale's `accept`, an entry may be a `deny`
//! (our extension): `acls` are then evaluated in order, the first entry
//! matching a connection deciding (`compile::deny`). Tailscale's legacy
//! field names `users` and `ports` are read as `src` and `dst`.

use serde_json::Value;

use super::fields::{
    Ctx, NO_POSTURE, has_ports, known_fields, obj, parse_ports, parse_proto, split_dst, strings,
};
use super::selector::{Place, alias, check_place, check_self, src_aliases};
use super::services;
use crate::policy::model::{ALL_PORTS, Alias, Doc, Dst, PolicyError, Rule};

const FIELDS: &[&str] = &["action", "src", "dst", "proto", "users", "ports"];

/// `src`/`dst`, or their legacy names `users`/`ports` (not both).
fn field<'v>(
    ctx: &Ctx,
    o: &'v serde_json::Map<String, Value>,
    p: &str,
    name: &str,
    legacy: &str,
) -> Result<(Option<&'v Value>, String), PolicyError> {
    match (o.get(name), o.get(legacy)) {
        (Some(_), Some(_)) => Err(ctx.err(
            &format!("{p}/{legacy}"),
            format!("{name:?} and its legacy name {legacy:?} cannot both be set"),
        )),
        (None, Some(v)) => Ok((Some(v), format!("{p}/{legacy}"))),
        (v, None) => Ok((v, format!("{p}/{name}"))),
    }
}

pub fn parse_acls(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
    let arr = v
        .as_array()
        .ok_or_else(|| ctx.err("/acls", "expected a list"))?;
    for (i, e) in arr.iter().enumerate() {
        let p = format!("/acls/{i}");
        let o = obj(ctx, e, &p)?;
        known_fields(ctx, o, &p, FIELDS, &[("srcPosture", NO_POSTURE)])?;
        let action = o.get("action").and_then(Value::as_str).unwrap_or("");
        let deny = match action {
            "accept" => false,
            "deny" => {
                let at = ctx.err(&format!("{p}/action"), "").position;
                doc.extensions
                    .push((format!("acls[{i}]: \"action\": \"deny\""), at));
                true
            }
            _ => {
                return Err(ctx.err(
                    &format!("{p}/action"),
                    format!("action={action:?} is not supported"),
                ));
            }
        };
        let protos = match o.get("proto") {
            None | Some(Value::Null) => vec![],
            Some(Value::String(s)) => {
                parse_proto(s).map_err(|m| ctx.err(&format!("{p}/proto"), m))?
            }
            Some(_) => return Err(ctx.err(&format!("{p}/proto"), "proto must be a string")),
        };
        if deny && protos.iter().any(|p| matches!(p, 1 | 58)) {
            // tailscaled answers ICMP from any source it accepts any
            // traffic from, whatever the protocol: such a deny could not
            // be enforced as written.
            return Err(ctx.err(
                &format!("{p}/proto"),
                "a deny rule cannot name ICMP: Tailscale clients answer ICMP from every source \
                 they accept any other traffic from; deny that traffic instead",
            ));
        }
        let (src_v, src_p) = field(ctx, o, &p, "src", "users")?;
        let src = src_aliases(ctx, doc, src_v, &src_p)?;
        let (dst_v, dst_p) = field(ctx, o, &p, "dst", "ports")?;
        let mut dsts = Vec::new();
        for (j, d) in strings(ctx, dst_v, &dst_p)?.iter().enumerate() {
            let dp = format!("{dst_p}/{j}");
            let (a, ports) = split_dst(d.trim()).map_err(|m| ctx.err(&dp, m))?;
            let ports = parse_ports(ports).map_err(|m| ctx.err(&dp, format!("dst={a:?}: {m}")))?;
            if !has_ports(&protos) && ports != [ALL_PORTS] {
                let proto = o.get("proto").and_then(Value::as_str).unwrap_or_default();
                return Err(ctx.err(
                    &dp,
                    format!(
                        "protocol does not support specific ports: {proto:?}, only \"*\" is allowed"
                    ),
                ));
            }
            let alias =
                alias(ctx, doc, &a, &dp).map_err(|e| e.prefixed(&format!("dst={a:?}: ")))?;
            check_place(ctx, doc, &alias, &a, &dp, Place::Dst)?;
            if alias == Alias::SelfDevices {
                check_self(ctx, &src, true, &dp)?;
            }
            if let Alias::Service(name) = &alias {
                let lowered = services::restrict(doc, name, &protos, &ports)
                    .map_err(|m| ctx.err(&dp, format!("dst={a:?}: {m}")))?;
                dsts.extend(lowered);
                continue;
            }
            dsts.push(Dst::new(alias, ports, protos.clone()));
        }
        doc.rules.push(Rule {
            deny,
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
