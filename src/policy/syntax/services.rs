//! Our `svc:NAME` extension: a top-level `services` section defining which
//! nodes host a service and on which ports, usable as a destination
//! (`"dst": ["svc:mcp"]` in grants, `"svc:mcp:443"` in acls). A client allowed
//! to the service sees its hosts as peers, filtered to those ports.
//!
//! Two forms: ours (`hosts` selectors, `ports` like `"tcp:443"`) and
//! TailOpsMCP's (`protocol`, `port`, host `tags`, and `allowedTags` that
//! may reach it: an implied grant).
//!
//! A service destination is lowered at parse time to one `Dst` per
//! (requested ports ∩ declared ports): `*` means "the declared ports"; a
//! port or protocol outside the declaration is rejected with its position.
//! Clients resolve `NAME.<base_domain>` to the hosts (`compile::services`).

use serde_json::Value;

use super::fields::{Ctx, key_path, known_fields, obj, parse_ports, parse_proto, strings};
use super::selector::{Place, alias_at};
use crate::policy::model::{ALL_PORTS, Alias, Doc, Dst, PolicyError, Ports, Rule, ServiceDef};

const FIELDS: &[&str] = &["hosts", "ports", "protocol", "port", "tags", "allowedTags"];

/// A list of tags (defined in `tagOwners`) at `path`.
fn tags(
    ctx: &Ctx,
    doc: &mut Doc,
    v: Option<&Value>,
    path: &str,
) -> Result<Vec<Alias>, PolicyError> {
    let mut out = Vec::new();
    for (i, t) in strings(ctx, v, path)?.iter().enumerate() {
        let tp = format!("{path}/{i}");
        if !t.trim().starts_with("tag:") {
            return Err(ctx.err(&tp, format!("{t:?} is not a tag")));
        }
        out.push(alias_at(ctx, doc, t, &tp, Place::ServiceHost)?);
    }
    Ok(out)
}

/// TailOpsMCP's form: `{"protocol": "tcp", "port": 8080, "tags": [...],
/// "allowedTags": [...]}` (protocol defaults to TCP).
fn tailops_form(
    ctx: &Ctx,
    doc: &mut Doc,
    o: &serde_json::Map<String, Value>,
    p: &str,
) -> Result<ServiceDef, PolicyError> {
    let protos = match o.get("protocol") {
        None | Some(Value::Null) => vec![6],
        Some(Value::String(s)) => {
            parse_proto(s.trim()).map_err(|m| ctx.err(&format!("{p}/protocol"), m))?
        }
        Some(_) => return Err(ctx.err(&format!("{p}/protocol"), "protocol must be a string")),
    };
    let pp = format!("{p}/port");
    let ports = match o.get("port") {
        Some(Value::Number(n)) => {
            let port = n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| ctx.err(&pp, format!("port {n} is not a port number (1-65535)")))?;
            vec![Ports {
                first: port,
                last: port,
            }]
        }
        Some(Value::String(s)) => parse_ports(s.trim()).map_err(|m| ctx.err(&pp, m))?,
        Some(_) => return Err(ctx.err(&pp, "port must be a number or a port list")),
        None => return Err(ctx.err(p, "a service with \"tags\" needs a \"port\"")),
    };
    let hosts = tags(ctx, doc, o.get("tags"), &format!("{p}/tags"))?;
    if hosts.is_empty() {
        return Err(ctx.err(
            &format!("{p}/tags"),
            "a service needs at least one host tag",
        ));
    }
    let allowed = tags(ctx, doc, o.get("allowedTags"), &format!("{p}/allowedTags"))?;
    Ok(ServiceDef {
        hosts,
        ports: ports.into_iter().map(|r| (protos.clone(), r)).collect(),
        allowed,
    })
}

/// clawscale's form: `{"hosts": [selectors], "ports": ["tcp:443", ...]}`.
fn hosts_form(
    ctx: &Ctx,
    doc: &mut Doc,
    o: &serde_json::Map<String, Value>,
    p: &str,
) -> Result<ServiceDef, PolicyError> {
    let mut hosts = Vec::new();
    for (i, h) in strings(ctx, o.get("hosts"), &format!("{p}/hosts"))?
        .iter()
        .enumerate()
    {
        hosts.push(alias_at(
            ctx,
            doc,
            h,
            &format!("{p}/hosts/{i}"),
            Place::ServiceHost,
        )?);
    }
    let mut ports: Vec<(Vec<i32>, Ports)> = Vec::new();
    for (i, s) in strings(ctx, o.get("ports"), &format!("{p}/ports"))?
        .iter()
        .enumerate()
    {
        let pp = format!("{p}/ports/{i}");
        let (proto, ps) = s.trim().split_once(':').unwrap_or(("", s.trim()));
        let protos = parse_proto(proto).map_err(|m| ctx.err(&pp, m))?;
        for r in parse_ports(ps).map_err(|m| ctx.err(&pp, m))? {
            ports.push((protos.clone(), r));
        }
    }
    Ok(ServiceDef {
        hosts,
        ports,
        allowed: vec![],
    })
}

pub fn parse(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
    for (name, def) in obj(ctx, v, "/services")? {
        let p = key_path("/services", name);
        let Some(short) = name.strip_prefix("svc:") else {
            return Err(ctx.err(&p, format!("service {name:?} must start with \"svc:\"")));
        };
        if short.is_empty() {
            return Err(ctx.err(&p, format!("{name:?}: empty service name")));
        }
        let o = obj(ctx, def, &p)?;
        known_fields(ctx, o, &p, FIELDS, &[])?;
        let ours = o.contains_key("hosts") || o.contains_key("ports");
        let tailops = ["protocol", "port", "tags", "allowedTags"]
            .iter()
            .any(|k| o.contains_key(*k));
        let def = match (ours, tailops) {
            (true, true) => {
                return Err(ctx.err(
                    &p,
                    format!(
                        "service {name:?} mixes the \"hosts\"/\"ports\" form with the \
                         \"tags\"/\"port\" form; use one"
                    ),
                ));
            }
            (false, true) => tailops_form(ctx, doc, o, &p)?,
            _ => hosts_form(ctx, doc, o, &p)?,
        };
        let at = ctx.err(&p, "").position;
        doc.extensions
            .push((format!("services section ({name:?})"), at));
        doc.services.insert(short.to_string(), def);
    }
    Ok(())
}

/// The grants a service's `allowedTags` imply: those tags may reach the
/// service on its ports. Added after the policy's own grants, named
/// `services["svc:NAME"].allowedTags` (as `explain` shows them).
pub fn implied_grants(doc: &mut Doc) {
    let mut rules = Vec::new();
    for (name, def) in &doc.services {
        if def.allowed.is_empty() {
            continue;
        }
        let Ok(dsts) = restrict(doc, name, &[], &[ALL_PORTS]) else {
            continue;
        };
        rules.push(Rule {
            deny: false,
            src: def.allowed.clone(),
            dsts,
            app_dsts: vec![],
            app: None,
            via: vec![],
            origin: format!("services[\"svc:{name}\"].allowedTags"),
        });
    }
    doc.rules.extend(rules);
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
                None => out.push(Dst::new(Alias::Service(name.to_string()), vec![p], pr)),
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
