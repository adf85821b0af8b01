//! Our `svc:NAME` extension: a top-level `services` section defining which
//! nodes host a service and on which ports, usable as a destination
//! (`"dst": ["svc:mcp"]` in grants, `"svc:mcp:443"` in acls). A client allowed
//! to the service sees its hosts as peers, filtered to those ports.

use serde_json::Value;

use super::model::{Ctx, Doc, Ports, ServiceDef, key_path, obj, parse_ports, parse_proto, strings};
use super::{PolicyError, Service};

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
            let a = super::parse::alias(ctx, doc, h, &format!("{p}/hosts/{i}"))?;
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

pub fn list(doc: &Doc) -> Vec<Service> {
    doc.services
        .iter()
        .map(|(name, d)| Service {
            name: name.clone(),
            hosts: d.hosts.iter().map(|h| h.text()).collect(),
            ports: d
                .ports
                .iter()
                .map(|(pr, p)| (pr.clone(), p.first, p.last))
                .collect(),
        })
        .collect()
}
