//! HuJSON text to the typed `Doc`, with every check Tailscale performs at
//! save time that needs no topology, worded as Tailscale words it where
//! known. One file per section (`acls`, `grants`, `ssh`, `services`,
//! `node_attrs`, `tests_block`, `auto_approvers`); `groups`, `hosts` and
//! `tagOwners` are read here since the others refer to them. Depends on
//! `model` only.

pub mod acls;
pub mod auto_approvers;
pub mod fields;
pub mod grants;
pub mod hujson;
pub mod node_attrs;
pub mod selector;
pub mod services;
pub mod ssh;
pub mod tests_block;

use serde_json::Value;

use self::fields::{Ctx, key_path, obj, strings};
use self::selector::alias;
use crate::policy::model::{ALL_PORTS, Alias, Doc, Dst, PolicyError, Rule};

/// Parses and validates a policy text (no topology needed).
pub fn parse(src: &str) -> Result<Doc, PolicyError> {
    let (v, pos) = hujson::parse(src).map_err(|e| PolicyError::at(e.line, e.col, e.msg))?;
    let ctx = Ctx { pos: &pos };
    build(&ctx, &v)
}

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
        services::parse(ctx, &mut doc, s)?;
    }
    if let Some(a) = top.get("acls") {
        acls::parse_acls(ctx, &mut doc, a)?;
    }
    if let Some(g) = top.get("grants") {
        grants::parse_grants(ctx, &mut doc, g)?;
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
        auto_approvers::parse_auto(ctx, &mut doc, a)?;
    }
    if let Some(n) = top.get("nodeAttrs") {
        node_attrs::parse(ctx, &mut doc, n)?;
    }
    if let Some(s) = top.get("ssh") {
        ssh::parse_rules(ctx, &mut doc, s)?;
    }
    if let Some(t) = top.get("tests") {
        tests_block::parse_tests(ctx, &mut doc, t)?;
    }
    if let Some(t) = top.get("sshTests") {
        tests_block::parse_ssh_tests(ctx, &mut doc, t)?;
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
