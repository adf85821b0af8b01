//! The `grants` section: network (`ip`) and application (`app`)
//! capabilities from sources to destinations, optionally `via` tagged
//! routers. Capability names follow Tailscale's rules.

use serde_json::Value;

use super::fields::{Ctx, key_path, obj, parse_ports, parse_proto, strings};
use super::selector::{alias, check_self, src_aliases};
use super::services;
use crate::policy::model::{Alias, CapMap, Doc, Dst, PolicyError, Rule};

const TS_CAP_ALLOWED: &[&str] = &[
    "tailscale.com/cap/drive",
    "tailscale.com/cap/drive-sharer",
    "tailscale.com/cap/kubernetes",
    "tailscale.com/cap/relay",
    "tailscale.com/cap/webui",
    "tailscale.com/cap/tailsql",
    "tailscale.com/cap/golink",
    "tailscale.com/cap/tsidp",
];

pub fn parse_grants(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
    let arr = v
        .as_array()
        .ok_or_else(|| ctx.err("/grants", "expected a list"))?;
    for (i, e) in arr.iter().enumerate() {
        let p = format!("/grants/{i}");
        let o = obj(ctx, e, &p)?;
        let ip = strings(ctx, o.get("ip"), &format!("{p}/ip"))?;
        let app: Option<CapMap> = match o.get("app") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) if m.is_empty() => None,
            Some(Value::Object(m)) => {
                let mut cm = CapMap::new();
                for (k, val) in m {
                    let kp = key_path(&format!("{p}/app"), k);
                    if k.starts_with("tailscale.com/") && !TS_CAP_ALLOWED.contains(&k.as_str()) {
                        return Err(ctx.err(
                            &kp,
                            "capability name must not be in the tailscale.com domain",
                        ));
                    }
                    if !k.contains('/') && !k.contains('.') {
                        return Err(
                            ctx.err(&kp, format!("capability name {k:?} must be a domain/path"))
                        );
                    }
                    let vals = match val {
                        Value::Array(a) => a.clone(),
                        Value::Null => vec![],
                        _ => {
                            return Err(ctx.err(&kp, "capability values must be a list of objects"));
                        }
                    };
                    cm.insert(k.clone(), vals);
                }
                Some(cm)
            }
            Some(_) => return Err(ctx.err(&format!("{p}/app"), "app must be an object")),
        };
        if ip.is_empty() && app.is_none() {
            return Err(ctx.err(&p, "ip and app can not both be empty"));
        }
        let src = src_aliases(ctx, doc, o.get("src"), &format!("{p}/src"))?;
        let mut via = Vec::new();
        for (j, t) in strings(ctx, o.get("via"), &format!("{p}/via"))?
            .iter()
            .enumerate()
        {
            let vp = format!("{p}/via/{j}");
            if !t.starts_with("tag:") {
                return Err(ctx.err(&vp, "via can only be a tag"));
            }
            if !doc.tag_owners.contains_key(t) {
                return Err(ctx.err(&vp, format!("tag {t:?} not found")));
            }
            via.push(t.clone());
        }
        let mut ipcaps = Vec::new();
        for (j, s) in ip.iter().enumerate() {
            let ipp = format!("{p}/ip/{j}");
            let (protos, ports) = match s.split_once(':') {
                Some((proto, ports)) => (parse_proto(proto), ports),
                None if s == "*" => (Ok(vec![]), "*"),
                None => (Ok(vec![]), s.as_str()),
            };
            let protos = protos.map_err(|m| ctx.err(&ipp, m))?;
            let ports = parse_ports(ports).map_err(|m| ctx.err(&ipp, m))?;
            ipcaps.push((protos, ports));
        }
        let mut dsts = Vec::new();
        let mut app_dsts = Vec::new();
        for (j, d) in strings(ctx, o.get("dst"), &format!("{p}/dst"))?
            .iter()
            .enumerate()
        {
            let dp = format!("{p}/dst/{j}");
            let a = alias(ctx, doc, d, &dp).map_err(|e| e.prefixed("dst="))?;
            match &a {
                Alias::DangerAll => {
                    return Err(ctx.err(&dp, "cannot use autogroup:danger-all as a dst"));
                }
                Alias::Prefix(n) if n.prefix_len() == 0 => {
                    return Err(ctx.err(
                        &dp,
                        format!("dst {d:?}: to allow all IP addresses, use \"*\" or \"autogroup:internet\""),
                    ));
                }
                Alias::Internet if app.is_some() => {
                    return Err(ctx.err(&dp, "cannot use app grants with autogroup:internet"));
                }
                Alias::SelfDevices => check_self(ctx, &src, false, &dp)?,
                _ => {}
            }
            if let Alias::Service(name) = &a {
                for (k, (protos, ports)) in ipcaps.iter().enumerate() {
                    // The offending entry is the `ip` one, so point there.
                    let lowered = services::restrict(doc, name, protos, ports)
                        .map_err(|m| ctx.err(&format!("{p}/ip/{k}"), format!("dst={d:?}: {m}")))?;
                    dsts.extend(lowered);
                }
                if app.is_some() {
                    app_dsts.push(a);
                }
                continue;
            }
            for (protos, ports) in &ipcaps {
                dsts.push(Dst {
                    alias: a.clone(),
                    ports: ports.clone(),
                    protos: protos.clone(),
                });
            }
            if app.is_some() {
                app_dsts.push(a);
            }
        }
        doc.rules.push(Rule {
            src,
            dsts,
            app_dsts,
            app,
            via,
            origin: format!("grants[{i}]"),
        });
    }
    Ok(())
}
