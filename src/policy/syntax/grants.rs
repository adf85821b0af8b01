//! The `grants` section: network (`ip`) and application (`app`)
//! capabilities from sources to destinations, optionally `via` tagged
//! routers. Capability names follow Tailscale's rules. Grants are
//! unordered and only ever allow; an `acls` deny still applies to their
//! network part, which is evaluated after every `acls` entry.

use serde_json::Value;

use super::fields::{
    Ctx, NO_POSTURE, key_path, known_fields, obj, parse_ports, parse_proto, strings,
};
use super::selector::{Place, alias, check_place, check_self, src_aliases};
use super::services;
use crate::policy::model::{Alias, CapMap, Doc, Dst, PolicyError, Rule};

const FIELDS: &[&str] = &["src", "dst", "ip", "app", "via"];

/// `tailscale.com/cap/…` names a policy may grant: the capabilities of
/// Tailscale's own applications. Their server-made companions
/// (`drive-sharer`, `relay-target`) and internal ones (ingress, funnel)
/// may not be written.
const TS_CAP_ALLOWED: &[&str] = &[
    "tailscale.com/cap/drive",
    "tailscale.com/cap/kubernetes",
    "tailscale.com/cap/relay",
    "tailscale.com/cap/webui",
    "tailscale.com/cap/tailsql",
    "tailscale.com/cap/golink",
    "tailscale.com/cap/tsidp",
    "tailscale.com/cap/secrets",
];

/// Tailscale's rules for an application capability name: `{domain}/{path}`
/// without a URL scheme, and nothing under `tailscale.com/` but the
/// capabilities of Tailscale's applications.
pub fn check_cap_name(k: &str) -> Result<(), String> {
    let shaped = !k.contains("://")
        && k.split_once('/')
            .is_some_and(|(domain, path)| !domain.is_empty() && !path.is_empty());
    if !shaped {
        return Err("capability name must have the form {domain}/{path}".into());
    }
    if k.starts_with("tailscale.com/") && !TS_CAP_ALLOWED.contains(&k) {
        return Err("capability name must not be in the tailscale.com domain".into());
    }
    Ok(())
}

/// An `ip` entry: `*`, `PORTS`, or `PROTO:PORTS`.
fn ip_entry(s: &str) -> Result<(Vec<i32>, Vec<crate::policy::model::Ports>), String> {
    if s == "*" {
        return Ok((vec![], parse_ports("*")?));
    }
    let (protos, ports) = match s.split(':').collect::<Vec<_>>().as_slice() {
        [ports] => (vec![], *ports),
        [proto, ports] => (parse_proto(proto)?, *ports),
        parts => {
            return Err(format!(
                "expected only one colon in Internet protocol and port type, got: {parts:?}({})",
                parts.len()
            ));
        }
    };
    let ports = parse_ports(ports).map_err(|m| format!("port range {ports:?}: {m}"))?;
    Ok((protos, ports))
}

pub fn parse_grants(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
    let arr = v
        .as_array()
        .ok_or_else(|| ctx.err("/grants", "expected a list"))?;
    for (i, e) in arr.iter().enumerate() {
        let p = format!("/grants/{i}");
        let o = obj(ctx, e, &p)?;
        known_fields(ctx, o, &p, FIELDS, &[("srcPosture", NO_POSTURE)])?;
        let ip = strings(ctx, o.get("ip"), &format!("{p}/ip"))?;
        let app: Option<CapMap> = match o.get("app") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) if m.is_empty() => None,
            Some(Value::Object(m)) => {
                let mut cm = CapMap::new();
                for (k, val) in m {
                    let kp = key_path(&format!("{p}/app"), k);
                    check_cap_name(k).map_err(|m| ctx.err(&kp, m))?;
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
            let t = t.trim();
            if !t.starts_with("tag:") {
                return Err(ctx.err(&vp, "via can only be a tag"));
            }
            if !doc.tag_owners.contains_key(t) {
                return Err(ctx.err(&vp, format!("tag {t:?} not found")));
            }
            via.push(t.to_string());
        }
        let mut ipcaps = Vec::new();
        for (j, s) in ip.iter().enumerate() {
            let ipp = format!("{p}/ip/{j}");
            ipcaps.push(ip_entry(s.trim()).map_err(|m| ctx.err(&ipp, m))?);
        }
        let mut dsts = Vec::new();
        let mut app_dsts = Vec::new();
        for (j, d) in strings(ctx, o.get("dst"), &format!("{p}/dst"))?
            .iter()
            .enumerate()
        {
            let dp = format!("{p}/dst/{j}");
            let d = d.trim();
            let a = alias(ctx, doc, d, &dp).map_err(|e| e.prefixed("dst="))?;
            check_place(ctx, doc, &a, d, &dp, Place::Dst)?;
            match &a {
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
                dsts.push(Dst::new(a.clone(), ports.clone(), protos.clone()));
            }
            if app.is_some() {
                app_dsts.push(a);
            }
        }
        doc.rules.push(Rule {
            deny: false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names() {
        for ok in [
            "example.com/cap/mcp",
            "clawql.dev/cap/mcp",
            "tailscale.com/cap/drive",
            "tailscale.com/cap/golink",
        ] {
            assert!(check_cap_name(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("https://example.com/cap/x", "{domain}/{path}"),
            ("example.com", "{domain}/{path}"),
            ("example.com/", "{domain}/{path}"),
            ("/cap", "{domain}/{path}"),
            ("tailscale.com/cap/drive-sharer", "tailscale.com domain"),
            ("tailscale.com/cap/relay-target", "tailscale.com domain"),
            ("tailscale.com/cap/ingress", "tailscale.com domain"),
        ] {
            assert!(check_cap_name(bad).unwrap_err().contains(why), "{bad}");
        }
    }

    #[test]
    fn ip_entries() {
        assert_eq!(ip_entry("*").unwrap().0, Vec::<i32>::new());
        assert_eq!(ip_entry("tcp:443").unwrap().0, vec![6]);
        assert_eq!(ip_entry("22").unwrap().1[0].first, 22);
        assert!(
            ip_entry("tcp:80:90")
                .unwrap_err()
                .contains("only one colon")
        );
        assert!(ip_entry("bogus:80").is_err());
        assert!(ip_entry("tcp:0").is_err());
    }
}
