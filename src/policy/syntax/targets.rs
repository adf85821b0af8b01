//! The sections the others refer to: `groups` (named sets of users),
//! `hosts` (named addresses and prefixes) and `tagOwners` (who may put
//! which tag on a node).

use serde_json::{Map, Value};

use super::fields::{Ctx, key_path, obj, strings};
use super::selector::{Place, alias_at};
use crate::policy::model::alias::OIDC_MEMBER_PREFIX;
use crate::policy::model::{Doc, PolicyError};

pub fn parse(ctx: &Ctx, doc: &mut Doc, top: &Map<String, Value>) -> Result<(), PolicyError> {
    if let Some(g) = top.get("groups") {
        groups(ctx, doc, g)?;
    }
    if let Some(h) = top.get("hosts") {
        hosts(ctx, doc, h)?;
    }
    if let Some(t) = top.get("tagOwners") {
        tag_owners(ctx, doc, t)?;
    }
    Ok(())
}

/// Group members are logins (`alice@example.com`, `alice@`) or, as a
/// clawscale extension, identity-provider groups (`oidc:NAME`); groups do
/// not nest.
fn groups(ctx: &Ctx, doc: &mut Doc, g: &Value) -> Result<(), PolicyError> {
    for (name, members) in obj(ctx, g, "/groups")? {
        let p = key_path("/groups", name);
        if !name.starts_with("group:") || name.len() == "group:".len() {
            return Err(ctx.err(&p, format!("group {name:?} must start with \"group:\"")));
        }
        if !members.is_array() {
            return Err(ctx.err(
                &p,
                format!("group value must be an array of users: group {name:?}"),
            ));
        }
        let ms: Vec<String> = strings(ctx, Some(members), &p)?
            .into_iter()
            .map(|m| m.trim().to_string())
            .collect();
        for (i, m) in ms.iter().enumerate() {
            if m.starts_with("group:") {
                return Err(ctx.err(
                    &format!("{p}/{i}"),
                    format!("groups[{name:?}]: {m:?}: group members cannot be recursive"),
                ));
            }
            if let Some(idp_group) = m.strip_prefix(OIDC_MEMBER_PREFIX) {
                let at = ctx.err(&format!("{p}/{i}"), "").position;
                if idp_group.is_empty() {
                    return Err(ctx.err(
                        &format!("{p}/{i}"),
                        format!("groups[{name:?}]: {m:?}: name the identity provider's group"),
                    ));
                }
                doc.extensions
                    .push((format!("OIDC group member {m:?}"), at));
                continue;
            }
            if !m.contains('@') {
                return Err(ctx.err(
                    &format!("{p}/{i}"),
                    format!("groups[{name:?}]: {m:?}: invalid user (username must contain @)"),
                ));
            }
        }
        doc.groups.insert(name.clone(), ms);
    }
    Ok(())
}

/// Host names are plain names (no `@`, no `:`); values an address or prefix.
fn hosts(ctx: &Ctx, doc: &mut Doc, h: &Value) -> Result<(), PolicyError> {
    for (name, addr) in obj(ctx, h, "/hosts")? {
        let p = key_path("/hosts", name);
        if name.is_empty() || name.contains('@') || name.contains(':') || name == "*" {
            return Err(ctx.err(&p, format!("invalid hostname: {name:?}")));
        }
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
    Ok(())
}

fn tag_owners(ctx: &Ctx, doc: &mut Doc, t: &Value) -> Result<(), PolicyError> {
    let t = obj(ctx, t, "/tagOwners")?;
    // Tags may own tags defined later: note every tag first.
    for tag in t.keys() {
        let p = key_path("/tagOwners", tag);
        check_tag_name(tag).map_err(|m| ctx.err(&p, format!("tagOwners[{tag:?}]: {m}")))?;
        doc.tag_owners.insert(tag.clone(), vec![]);
    }
    for (tag, owners) in t {
        let p = key_path("/tagOwners", tag);
        let mut v = Vec::new();
        for (i, o) in strings(ctx, Some(owners), &p)?.iter().enumerate() {
            let op = format!("{p}/{i}");
            v.push(alias_at(ctx, doc, o, &op, Place::TagOwner)?);
        }
        doc.tag_owners.insert(tag.clone(), v);
    }
    Ok(())
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
