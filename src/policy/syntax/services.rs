//! Our `svc:NAME` extension: a top-level `services` section defining which
//! nodes host a service and on which ports, usable as a destination
//! (`"dst": ["svc:mcp"]` in grants, `"svc:mcp:443"` in acls). A client allowed
//! to the service sees its hosts as peers, filtered to those ports.
//!
//! A service destination is lowered at parse time to one `Dst` per
//! (requested ports ∩ declared ports): `*` means "the declared ports"; a
//! port or protocol outside the declaration is rejected with its position.
//! Clients resolve `NAME.<base_domain>` to the hosts (`compile::services`).

use serde_json::Value;

use super::fields::{Ctx, key_path, obj, parse_ports, parse_proto, strings};
use super::selector::alias;
use crate::policy::model::{ALL_PORTS, Alias, Doc, Dst, PolicyError, Ports, ServiceDef};

pub fn parse(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
    for (name, def) in obj(ctx, v, "/services")? {
        let p = key_path("/services", name);
        let Some(short) = name.strip_prefix("svc:") else {
            return Err(ctx.err(&p, format!("service {name:?} must start with \"svc:\"")));
        };
        let o = obj(ctx, def, &p)?;
        let mut hosts = Vec::new();
        for (i, h) in strings(ctx, o.get("hosts"), &format!("{p}/hosts"))?
            .iter()
            .enumerate()
        {
            let a = alias(ctx, doc, h, &format!("{p}/hosts/{i}"))?;
            hosts.push(a);
        }
        let mut ports: Vec<(Vec<i32>, Ports)> = Vec::new();
        for (i, s) in strings(ctx, o.get("ports"), &format!("{p}/ports"))?
            .iter()
            .enumerate()
        {
            let pp = format!("{p}/ports/{i}");
            let (proto, ps) = s.split_once(':').unwrap_or(("", s));
            let protos = parse_proto(proto).map_err(|m| ctx.err(&pp, m))?;
            for r in parse_ports(ps).map_err(|m| ctx.err(&pp, m))? {
                ports.push((protos.clone(), r));
            }
        }
        doc.services
            .insert(short.to_string(), ServiceDef { hosts, ports });
    }
    Ok(())
}

/// Lowers a destination `svc:NAME` requested with `protos`/`ports` to the
/// service's declared ports. `Err` is the message for the caller to place.
pub fn restrict(
    doc: &Doc,
    name: &str,
    protos: &[i32],
    ports: &[Ports],
) -> Result<Vec<Dst>, String> {
    let Some(def) = doc.services.get(name) else {
        return Err(format!("service not found: \"svc:{name}\""));
    };
    if def.ports.is_empty() {
        return Err(format!("service \"svc:{name}\" declares no ports"));
    }
    let wildcard = ports == [ALL_PORTS];
    let mut out: Vec<Dst> = Vec::new();
    for want in ports {
        let mut covered: Vec<Ports> = Vec::new();
        for (sp_protos, sp) in &def.ports {
            let Some(pr) = proto_meet(protos, sp_protos) else {
                continue;
            };
            let first = want.first.max(sp.first);
            let last = want.last.min(sp.last);
            if first > last {
                continue;
            }
            covered.push(Ports { first, last });
            let p = Ports { first, last };
            match out.iter_mut().find(|d| d.protos == pr) {
                Some(d) if !d.ports.contains(&p) => d.ports.push(p),
                Some(_) => {}
                None => out.push(Dst {
                    alias: Alias::Service(name.to_string()),
                    ports: vec![p],
                    protos: pr,
                }),
            }
        }
        if !wildcard && !spans(&covered, *want) {
            let text = if want.first == want.last {
                want.first.to_string()
            } else {
                format!("{}-{}", want.first, want.last)
            };
            let proto = if protos.is_empty() {
                String::new()
            } else {
                format!(" (IP protocol {protos:?})")
            };
            return Err(format!(
                "port {text}{proto} is not among the ports of \"svc:{name}\""
            ));
        }
    }
    if out.is_empty() {
        return Err(format!(
            "no protocol/port in common with the ports of \"svc:{name}\""
        ));
    }
    Ok(out)
}

/// Protocols both a request and a declaration allow (empty = the default
/// TCP/UDP/ICMP set); `None` when they have none in common.
fn proto_meet(want: &[i32], have: &[i32]) -> Option<Vec<i32>> {
    const DEFAULT: [i32; 4] = [1, 6, 17, 58];
    match (want.is_empty(), have.is_empty()) {
        (true, _) => Some(have.to_vec()),
        (false, true) => want
            .iter()
            .all(|p| DEFAULT.contains(p))
            .then(|| want.to_vec()),
        (false, false) => {
            let both: Vec<i32> = want.iter().copied().filter(|p| have.contains(p)).collect();
            (!both.is_empty()).then_some(both)
        }
    }
}

/// Do the ranges in `parts` together cover all of `want`?
fn spans(parts: &[Ports], want: Ports) -> bool {
    let mut v = parts.to_vec();
    v.sort();
    let mut next = want.first as u32;
    for p in v {
        if p.first as u32 > next {
            break;
        }
        next = next.max(p.last as u32 + 1);
    }
    next > want.last as u32
}
