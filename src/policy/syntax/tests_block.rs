//! The `tests` and `sshTests` sections: assertions a policy makes about
//! itself, parsed here and evaluated against the topology by `check`.
//!
//! Tailscale's shape rules: a `tests` entry describes connection attempts
//! from one source to single hosts on single ports over TCP, UDP or SCTP
//! (so no port lists, ranges or `*`, no CIDR destinations, no
//! `autogroup:internet`); an `sshTests` entry names single SSH-reachable
//! hosts. A malformed assertion is reported as "test(s) failed", as on
//! Tailscale, followed by what is wrong.

use serde_json::Value;

use super::fields::{
    Ctx, NO_POSTURE, known_fields, obj, parse_ports, parse_proto, split_dst, strings,
};
use super::selector::{Place, alias, alias_at};
use crate::policy::model::{AclTest, Alias, Doc, PolicyError, SshTest};

const TEST_FIELDS: &[&str] = &["src", "proto", "accept", "deny"];
const SSH_TEST_FIELDS: &[&str] = &["src", "dst", "accept", "check", "deny"];

/// A `tests` destination: `alias:port` with one port, naming one host.
fn test_dst(doc: &Doc, d: &str) -> Result<(Alias, u16), String> {
    let (a, ports) = split_dst(d.trim())?;
    let ports = parse_ports(ports)?;
    let [p] = ports.as_slice() else {
        return Err(format!(
            "{d:?}: test destination port must be a single port"
        ));
    };
    if p.first != p.last {
        return Err(format!(
            "{d:?}: test destination port must be a single port"
        ));
    }
    let hosts = |h: &str| doc.hosts.contains_key(h);
    let alias = super::selector::parse(&a, &hosts)?;
    let range = match &alias {
        Alias::Prefix(_) => a.contains('/'),
        Alias::Host(h) => doc
            .hosts
            .get(h)
            .is_some_and(|n| n.prefix_len() < n.max_prefix_len()),
        Alias::Internet => {
            return Err(format!(
                "{d:?}: autogroup:internet not valid as a test destination"
            ));
        }
        _ => false,
    };
    if range {
        return Err(format!(
            "{d:?}: test destination must be a single host, not a CIDR range"
        ));
    }
    Ok((alias, p.first))
}

pub fn parse_tests(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
    let arr = v
        .as_array()
        .ok_or_else(|| ctx.err("/tests", "expected a list"))?;
    for (i, e) in arr.iter().enumerate() {
        let p = format!("/tests/{i}");
        let o = obj(ctx, e, &p)?;
        known_fields(ctx, o, &p, TEST_FIELDS, &[("srcPostureAttrs", NO_POSTURE)])?;
        let failed =
            |at: &str, why: String| ctx.err(at, format!("test(s) failed: tests[{i}]: {why}"));
        let sp = format!("{p}/src");
        let src_s = o
            .get("src")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| failed(&sp, "src must be one selector".into()))?;
        let src =
            alias_at(ctx, doc, src_s, &sp, Place::TestSrc).map_err(|e| failed(&sp, e.message))?;
        let pp = format!("{p}/proto");
        let proto = match o.get("proto") {
            None | Some(Value::Null) => vec![],
            Some(Value::String(s)) => parse_proto(s.trim())
                .ok()
                .filter(|v| matches!(v.as_slice(), [] | [6] | [17] | [132]))
                .ok_or_else(|| {
                    failed(
                        &pp,
                        format!("test protocol must be tcp, udp, sctp, or empty: {s:?}"),
                    )
                })?,
            Some(_) => return Err(failed(&pp, "proto must be a string".into())),
        };
        let mut lists = [Vec::new(), Vec::new()];
        for (k, key) in ["accept", "deny"].iter().enumerate() {
            let lp = format!("{p}/{key}");
            for (j, d) in strings(ctx, o.get(*key), &lp)?.iter().enumerate() {
                let dp = format!("{lp}/{j}");
                let (a, port) = test_dst(doc, d).map_err(|m| failed(&dp, m))?;
                let a = match &a {
                    // Named groups, tags, services must exist.
                    Alias::Group(_) | Alias::Tag(_) | Alias::Service(_) => {
                        alias(ctx, doc, &a.text(), &dp).map_err(|e| failed(&dp, e.message))?
                    }
                    _ => a,
                };
                lists[k].push((a, port));
            }
        }
        let [accept, deny] = lists;
        if accept.is_empty() && deny.is_empty() {
            return Err(failed(
                &p,
                "test entry must have at least one of \"accept\" or \"deny\"".into(),
            ));
        }
        doc.tests.push(AclTest {
            src,
            proto,
            accept,
            deny,
        });
    }
    Ok(())
}

/// An `sshTests` destination: one SSH-reachable host (a tag, user, host or
/// single address, or an SSH autogroup).
fn ssh_test_dst(ctx: &Ctx, doc: &Doc, s: &str, dp: &str) -> Result<Alias, PolicyError> {
    let s = s.trim();
    let disallowed = || {
        ctx.err(
            dp,
            format!("SSH tests dst contains disallowed element {s:?}"),
        )
    };
    if s.starts_with("tag:") && !doc.tag_owners.contains_key(s) {
        // `tag:server:22` lands here too: sshTests take no ports.
        return Err(ctx.err(dp, format!("SSH tests dst contains unknown tag {s:?}")));
    }
    let a = alias(ctx, doc, s, dp)?;
    let multi = |n: &ipnet::IpNet| n.prefix_len() < n.max_prefix_len();
    match &a {
        Alias::Internet | Alias::Wildcard | Alias::DangerAll => Err(disallowed()),
        Alias::Prefix(n) if multi(n) => Err(disallowed()),
        Alias::Host(h) if doc.hosts.get(h).is_some_and(multi) => Err(disallowed()),
        _ => Ok(a),
    }
}

pub fn parse_ssh_tests(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
    let arr = v
        .as_array()
        .ok_or_else(|| ctx.err("/sshTests", "expected a list"))?;
    for (i, e) in arr.iter().enumerate() {
        let p = format!("/sshTests/{i}");
        let o = obj(ctx, e, &p)?;
        known_fields(ctx, o, &p, SSH_TEST_FIELDS, &[])?;
        let failed =
            |at: &str, why: &str| ctx.err(at, format!("test(s) failed: sshTests[{i}]: {why}"));
        let sp = format!("{p}/src");
        let src_s = o.get("src").and_then(Value::as_str).unwrap_or("").trim();
        if src_s.is_empty() {
            return Err(failed(&sp, "SSH tests entry must have a non-empty src"));
        }
        let src = alias_at(ctx, doc, src_s, &sp, Place::TestSrc)?;
        let mut dst = Vec::new();
        let dp = format!("{p}/dst");
        for (j, s) in strings(ctx, o.get("dst"), &dp)?.iter().enumerate() {
            dst.push(ssh_test_dst(ctx, doc, s, &format!("{dp}/{j}"))?);
        }
        if dst.is_empty() {
            return Err(failed(&dp, "SSH tests entry must have at least one dst"));
        }
        let accept = strings(ctx, o.get("accept"), &format!("{p}/accept"))?;
        let check = strings(ctx, o.get("check"), &format!("{p}/check"))?;
        let deny = strings(ctx, o.get("deny"), &format!("{p}/deny"))?;
        doc.ssh_tests.push(SshTest {
            src,
            dst,
            accept,
            check,
            deny,
        });
    }
    Ok(())
}
