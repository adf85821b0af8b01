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

/// Where a selector is written: each place accepts different kinds, as on
/// Tailscale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// `src` of an `acls` or `grants` entry.
    Src,
    /// `dst` of an `acls` or `grants` entry.
    Dst,
    SshSrc,
    SshDst,
    NodeAttrTarget,
    TagOwner,
    AutoApprover,
    /// `hosts`/`tags` of one of our `services`.
    ServiceHost,
    /// `src` of a `tests` or `sshTests` entry.
    TestSrc,
}

/// What Tailscale answers for `autogroup:internet` anywhere but a
/// destination of `acls` or `grants`.
pub const INTERNET_ONLY_DST: &str = "autogroup:internet can only be used in ACL destinations";

/// Parses a selector written at `place` (surrounding blanks ignored, as
/// Tailscale does), checks that the group, tag, host or service it names
/// exists and that this kind of selector may appear there.
pub fn alias_at(
    ctx: &Ctx,
    doc: &mut Doc,
    s: &str,
    path: &str,
    place: Place,
) -> Result<Alias, PolicyError> {
    let s = s.trim();
    let a = alias(ctx, doc, s, path)?;
    check_place(ctx, doc, &a, s, path, place)?;
    Ok(a)
}

/// Is selector `a` (written `s`) allowed at `place`? Records what the
/// `Doc` must remember about it (extensions, SSH domains).
pub fn check_place(
    ctx: &Ctx,
    doc: &mut Doc,
    a: &Alias,
    s: &str,
    path: &str,
    place: Place,
) -> Result<(), PolicyError> {
    let bad = |m: String| Err(ctx.err(path, m));
    match (place, a) {
        (p, Alias::Internet) if p != Place::Dst => return bad(INTERNET_ONLY_DST.into()),
        (Place::Src | Place::TestSrc, Alias::SelfDevices) => {
            return bad("\"autogroup:self\" not valid on the src side of a rule".into());
        }
        (Place::Src | Place::TestSrc, Alias::Service(_)) => {
            return bad(format!("{s:?} not valid on the src side of a rule"));
        }
        (Place::Dst, Alias::DangerAll) => {
            return bad("cannot use autogroup:danger-all as a dst".into());
        }
        (
            Place::SshSrc,
            Alias::Wildcard
            | Alias::Host(_)
            | Alias::Prefix(_)
            | Alias::SelfDevices
            | Alias::DangerAll
            | Alias::Service(_),
        ) => return bad(format!("invalid src {s:?}")),
        (
            Place::SshDst,
            Alias::Wildcard
            | Alias::Host(_)
            | Alias::Prefix(_)
            | Alias::Group(_)
            | Alias::UserDomain(_)
            | Alias::DangerAll
            | Alias::Role(_)
            | Alias::Service(_),
        ) => return bad(format!("invalid dst {s:?}")),
        (Place::NodeAttrTarget, Alias::SelfDevices | Alias::DangerAll) => {
            return bad(format!(
                "nodeAttrs target does not support this autogroup: {s:?}, can be \
                 [autogroup:member autogroup:tagged]"
            ));
        }
        (Place::NodeAttrTarget, Alias::Service(_)) => {
            return bad(format!("{s:?} is not valid as a nodeAttrs target"));
        }
        (
            Place::TagOwner,
            Alias::Wildcard
            | Alias::Host(_)
            | Alias::Prefix(_)
            | Alias::Tagged
            | Alias::SelfDevices
            | Alias::DangerAll
            | Alias::Service(_),
        ) => {
            return bad(format!(
                "{s:?} cannot own tags (tag owners are users, groups, tags or autogroup:member)"
            ));
        }
        (
            Place::AutoApprover,
            Alias::Wildcard
            | Alias::Host(_)
            | Alias::Prefix(_)
            | Alias::SelfDevices
            | Alias::DangerAll
            | Alias::Service(_),
        ) => return bad(format!("invalid auto approver format: {s:?}")),
        (
            Place::ServiceHost,
            Alias::Wildcard
            | Alias::SelfDevices
            | Alias::DangerAll
            | Alias::Role(_)
            | Alias::Service(_),
        ) => {
            return bad(format!(
                "{s:?} cannot host a service (use tags, users or groups)"
            ));
        }
        _ => {}
    }
    if let Alias::Service(name) = a {
        let at = ctx.err(path, "").position;
        doc.extensions
            .push((format!("service selector \"svc:{name}\""), at));
    }
    if let (Place::SshSrc, Alias::UserDomain(d)) = (place, a) {
        let at = ctx.err(path, "").position;
        doc.ssh_domains.push((d.clone(), at));
    }
    Ok(())
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

/// The `src` list of an `acls` or `grants` entry.
pub fn src_aliases(
    ctx: &Ctx,
    doc: &mut Doc,
    v: Option<&Value>,
    path: &str,
) -> Result<Vec<Alias>, PolicyError> {
    let mut out = Vec::new();
    for (i, s) in strings(ctx, v, path)?.iter().enumerate() {
        let p = format!("{path}/{i}");
        let s = s.trim();
        let a = alias(ctx, doc, s, &p).map_err(|e| e.prefixed("src="))?;
        check_place(ctx, doc, &a, s, &p, Place::Src)?;
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
