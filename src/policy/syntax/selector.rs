//! Selector strings: parsing one into an `Alias`, and the checks that apply
//! wherever selectors appear (named groups, tags, hosts and services must
//! exist; `autogroup:self` needs user sources).

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use super::fields::{Ctx, strings};
use crate::policy::model::{Alias, Doc, PolicyError};

/// Parses one selector; `Err` carries Tailscale's wording.
pub fn parse(s: &str, doc_hosts: &dyn Fn(&str) -> bool) -> Result<Alias, String> {
    if s == "*" {
        return Ok(Alias::Wildcard);
    }
    if let Some(ag) = s.strip_prefix("autogroup:") {
        return match ag {
            "member" => Ok(Alias::Member),
            "tagged" => Ok(Alias::Tagged),
            "self" => Ok(Alias::SelfDevices),
            "internet" => Ok(Alias::Internet),
            "danger-all" => Ok(Alias::DangerAll),
            "admin" | "owner" | "it-admin" | "network-admin" | "billing-admin" | "auditor"
            | "shared" => Ok(Alias::Role(ag.to_string())),
            _ => Err(format!("autogroup {s:?} is not valid")),
        };
    }
    if s.starts_with("group:") {
        return Ok(Alias::Group(s.to_string()));
    }
    if s.starts_with("tag:") {
        return Ok(Alias::Tag(s.to_string()));
    }
    if let Some(name) = s.strip_prefix("svc:") {
        if name.is_empty() {
            return Err(format!("{s:?}: empty service name"));
        }
        return Ok(Alias::Service(name.to_string()));
    }
    if let Some(rest) = s.strip_prefix("user:") {
        if let Some(domain) = rest.strip_prefix("*@") {
            return Ok(Alias::UserDomain(domain.to_string()));
        }
        return Ok(Alias::User(rest.to_string()));
    }
    if s.contains('@') {
        return Ok(Alias::User(s.to_string()));
    }
    if doc_hosts(s) {
        return Ok(Alias::Host(s.to_string()));
    }
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(Alias::Prefix(n.trunc()));
    }
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok(Alias::Prefix(IpNet::from(a)));
    }
    Err(format!("{s:?}: invalid address"))
}

/// Parses a selector and checks that groups, tags and hosts it names exist.
pub fn alias(ctx: &Ctx, doc: &Doc, s: &str, path: &str) -> Result<Alias, PolicyError> {
    let hosts = |h: &str| doc.hosts.contains_key(h);
    let a = parse(s, &hosts).map_err(|m| ctx.err(path, m))?;
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

pub fn src_aliases(
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
pub fn check_self(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_selectors() {
        let hosts = |s: &str| s == "web";
        assert_eq!(parse("*", &hosts), Ok(Alias::Wildcard));
        assert_eq!(parse("web", &hosts), Ok(Alias::Host("web".into())));
        assert_eq!(parse("alice@", &hosts), Ok(Alias::User("alice@".into())));
        assert_eq!(
            parse("user:*@example.com", &hosts),
            Ok(Alias::UserDomain("example.com".into()))
        );
        assert_eq!(
            parse("10.1.2.3", &hosts),
            Ok(Alias::Prefix("10.1.2.3/32".parse().unwrap()))
        );
        assert!(parse("%bogus%", &hosts).is_err());
        assert!(parse("autogroup:nope", &hosts).is_err());
    }
}
