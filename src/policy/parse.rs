//! From parsed HuJSON to `Doc`: sections `groups`, `hosts`, `tagOwners`,
//! `acls`, `grants`, `autoApprovers`, `nodeAttrs`, `tests`, `services`; SSH
//! sections live in `parse_ssh.rs`. Rejects what Tailscale rejects at save
//! time, with its wording where known.

use serde_json::Value;

use super::alias::Alias;
use super::model::*;
use super::{CapMap, PolicyError};

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

const KNOWN_KEYS: &[&str] = &[
    "groups",
    "hosts",
    "tagOwners",
    "acls",
    "grants",
    "ssh",
    "nodeAttrs",
    "autoApprovers",
    "tests",
    "sshTests",
    "services",
    "derpMap",
    "disableIPv4",
    "randomizeClientPort",
    "OneCGNATRoute",
    "postures",
    "defaultSrcPosture",
    "ipsets",
    "attrConfig",
    "settings",
    "etc",
    "$schema",
    "autogroups",
    "ipPool",
    "tailnetLock",
];

pub fn build(ctx: &Ctx, root: &Value) -> Result<Doc, PolicyError> {
    let top = obj(ctx, root, "")?;
    for k in top.keys() {
        if !KNOWN_KEYS.contains(&k.as_str()) {
            return Err(ctx.err(&key_path("", k), format!("unknown top-level field {k:?}")));
        }
    }
    let mut doc = Doc {
        randomize_client_port: top
            .get("randomizeClientPort")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        ..Doc::default()
    };
    if let Some(g) = top.get("groups") {
        for (name, members) in obj(ctx, g, "/groups")? {
            let p = key_path("/groups", name);
            if !name.starts_with("group:") {
                return Err(ctx.err(&p, format!("group {name:?} must start with \"group:\"")));
            }
            let ms = strings(ctx, Some(members), &p)?;
            for (i, m) in ms.iter().enumerate() {
                if m.starts_with("group:") {
                    return Err(ctx.err(
                        &format!("{p}/{i}"),
                        format!("groups[{name:?}]: {m:?}: group members cannot be recursive"),
                    ));
                }
                if !m.contains('@') && !m.starts_with("autogroup:") {
                    return Err(ctx.err(
                        &format!("{p}/{i}"),
                        format!("groups[{name:?}]: {m:?}: invalid user"),
                    ));
                }
            }
            doc.groups.insert(name.clone(), ms);
        }
    }
    if let Some(h) = top.get("hosts") {
        for (name, addr) in obj(ctx, h, "/hosts")? {
            let p = key_path("/hosts", name);
            let s = addr
                .as_str()
                .ok_or_else(|| ctx.err(&p, "expected a string"))?;
            let net = s
                .parse::<ipnet::IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ctx.err(
                        &p,
                        format!("hosts[{name:?}]: {s:?}: invalid IP address or prefix"),
                    )
                })?;
            doc.hosts.insert(name.clone(), net);
        }
    }
    if let Some(t) = top.get("tagOwners") {
        for (tag, owners) in obj(ctx, t, "/tagOwners")? {
            let p = key_path("/tagOwners", tag);
            check_tag_name(tag).map_err(|m| ctx.err(&p, format!("tagOwners[{tag:?}]: {m}")))?;
            let mut v = Vec::new();
            for (i, o) in strings(ctx, Some(owners), &p)?.iter().enumerate() {
                // Tags may own tags defined later (checked once all are known).
                let a = if o.starts_with("tag:") {
                    Alias::Tag(o.clone())
                } else {
                    alias(ctx, &doc, o, &format!("{p}/{i}"))?
                };
                v.push(a);
            }
            doc.tag_owners.insert(tag.clone(), v);
        }
    }
    if let Some(s) = top.get("services") {
        super::services::parse(ctx, &mut doc, s)?;
    }
    if let Some(a) = top.get("acls") {
        parse_acls(ctx, &mut doc, a)?;
    }
    if let Some(g) = top.get("grants") {
        parse_grants(ctx, &mut doc, g)?;
    }
    if !top.contains_key("acls") && !top.contains_key("grants") {
        // No access rules at all means "allow everything", as on Tailscale.
        doc.rules.push(Rule {
            src: vec![Alias::Wildcard],
            dsts: vec![Dst {
                alias: Alias::Wildcard,
                ports: vec![ALL_PORTS],
                protos: vec![],
            }],
            app_dsts: vec![],
            app: None,
            via: vec![],
            origin: "default allow-all".into(),
        });
    }
    if let Some(a) = top.get("autoApprovers") {
        parse_auto(ctx, &mut doc, a)?;
    }
    if let Some(n) = top.get("nodeAttrs") {
        super::node_attrs::parse(ctx, &mut doc, n)?;
    }
    if let Some(s) = top.get("ssh") {
        super::parse_ssh::parse_rules(ctx, &mut doc, s)?;
    }
    if let Some(t) = top.get("tests") {
        super::tests_block::parse_tests(ctx, &mut doc, t)?;
    }
    if let Some(t) = top.get("sshTests") {
        super::parse_ssh::parse_tests(ctx, &mut doc, t)?;
    }
    // Every tag owned by tags must itself be defined.
    for owners in doc.tag_owners.values() {
        for o in owners {
            if let Alias::Tag(t) = o
                && !doc.tag_owners.contains_key(t)
            {
                return Err(PolicyError::new(format!("tag not found: {t:?}")));
            }
        }
    }
    Ok(doc)
}

pub fn check_tag_name(tag: &str) -> Result<(), String> {
    let Some(rest) = tag.strip_prefix("tag:") else {
        return Err("tag names must start with 'tag:'".into());
    };
    if !rest.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return Err("tag names must start with a letter, after 'tag:'".into());
    }
    if !rest
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("tag names can only contain numbers, letters, or dashes".into());
    }
    Ok(())
}

/// Parses a selector and checks that groups, tags and hosts it names exist.
pub fn alias(ctx: &Ctx, doc: &Doc, s: &str, path: &str) -> Result<Alias, PolicyError> {
    let hosts = |h: &str| doc.hosts.contains_key(h);
    let a = Alias::parse(s, &hosts).map_err(|m| ctx.err(path, m))?;
    match &a {
        Alias::Group(g) if !doc.groups.contains_key(g) => {
            Err(ctx.err(path, format!("group not found: {g:?}")))
        }
        Alias::Tag(t) if !doc.tag_owners.contains_key(t) => {
            Err(ctx.err(path, format!("tag not found: {t:?}")))
        }
        Alias::Service(s) if !doc.services.contains_key(s) => {
            Err(ctx.err(path, format!("service not found: \"svc:{s}\"")))
        }
        _ => Ok(a),
    }
}

fn src_aliases(
    ctx: &Ctx,
    doc: &Doc,
    v: Option<&Value>,
    path: &str,
) -> Result<Vec<Alias>, PolicyError> {
    let mut out = Vec::new();
    for (i, s) in strings(ctx, v, path)?.iter().enumerate() {
        let p = format!("{path}/{i}");
        let a = alias(ctx, doc, s, &p).map_err(|e| e.prefixed("src="))?;
        if a == Alias::SelfDevices {
            return Err(ctx.err(&p, "\"autogroup:self\" not valid on the src side of a rule"));
        }
        if matches!(a, Alias::Service(_)) {
            return Err(ctx.err(&p, format!("{s:?} not valid on the src side of a rule")));
        }
        out.push(a);
    }
    Ok(out)
}

/// `autogroup:self` destinations need sources that are users.
fn check_self(
    ctx: &Ctx,
    src: &[Alias],
    allow_wildcard: bool,
    path: &str,
) -> Result<(), PolicyError> {
    for s in src {
        let ok = matches!(
            s,
            Alias::User(_) | Alias::UserDomain(_) | Alias::Group(_) | Alias::Member
        ) || (allow_wildcard && *s == Alias::Wildcard);
        if !ok {
            return Err(ctx.err(
                path,
                "autogroup:self can only be used with users, groups, or supported autogroups",
            ));
        }
    }
    Ok(())
}

fn parse_acls(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
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
                let lowered = super::services::restrict(doc, name, &protos, &ports)
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

fn parse_grants(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
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
                    let lowered = super::services::restrict(doc, name, protos, ports)
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

fn parse_auto(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
    let o = obj(ctx, v, "/autoApprovers")?;
    if let Some(r) = o.get("routes") {
        for (prefix, approvers) in obj(ctx, r, "/autoApprovers/routes")? {
            let p = key_path("/autoApprovers/routes", prefix);
            let net: ipnet::IpNet = prefix
                .parse()
                .map_err(|_| ctx.err(&p, format!("autoApprovers: {prefix:?}: invalid prefix")))?;
            let mut v = Vec::new();
            for (i, s) in strings(ctx, Some(approvers), &p)?.iter().enumerate() {
                v.push(alias(ctx, doc, s, &format!("{p}/{i}"))?);
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
                alias(ctx, doc, s, &format!("{p}/{i}"))?;
            }
        }
    }
    if let Some(e) = o.get("exitNode") {
        for (i, s) in strings(ctx, Some(e), "/autoApprovers/exitNode")?
            .iter()
            .enumerate()
        {
            let a = alias(ctx, doc, s, &format!("/autoApprovers/exitNode/{i}"))?;
            doc.auto_exit.push(a);
        }
    }
    Ok(())
}
