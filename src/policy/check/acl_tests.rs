//! The `tests` block: assertions evaluated against the compiled rules when
//! a policy is saved; any failure rejects the policy ("test(s) failed"), as
//! on Tailscale.
//!
//! An `accept` holds when every source address may reach every address of
//! the destination on its port (same address family), a `deny` when none
//! may. The rules consulted are the compiled ones, so `deny` entries of
//! `acls` count exactly as they do in the packet filters. A test without
//! `proto` checks TCP. A source or destination that selects no address
//! fails `accept` (and passes `deny`).

use std::sync::Arc;

use crate::policy::compile::Compiled;
use crate::policy::compile::first_match::dst_allows;
use crate::policy::compile::inner::Inner;
use crate::policy::model::{AclTest, Alias, Doc, PolicyError, Topology};
use crate::policy::resolve::alias::{Resolver, internet_space, node_ips, tailnet_space};
use crate::policy::resolve::ipset::IpSet;

pub fn check(doc: &Arc<Doc>, topo: &Topology) -> Result<(), PolicyError> {
    if doc.tests.is_empty() {
        return Ok(());
    }
    let compiled = Compiled::build(doc.clone(), Arc::new(topo.clone()));
    let c = &compiled.inner;
    // Tailscale's message is a bare "test(s) failed"; we keep it as the
    // prefix and say which test and destination broke.
    let failed = |i: usize, t: &AclTest, dst: &Alias, port: u16, want: &str| {
        PolicyError::new(format!(
            "test(s) failed: tests[{i}]: {} to {}:{port} should be {want}",
            t.src.text(),
            dst.text(),
        ))
    };
    for (i, t) in doc.tests.iter().enumerate() {
        let src = c.resolver().src_set(&t.src);
        let proto = t.proto.first().copied().unwrap_or(6);
        for (dst, port) in &t.accept {
            let d = dst_set(c, &t.src, dst);
            if !accepted(&entries(c, proto, *port), &src, &d) {
                return Err(failed(i, t, dst, *port, "accepted but is not"));
            }
        }
        for (dst, port) in &t.deny {
            let d = dst_set(c, &t.src, dst);
            if reached(&entries(c, proto, *port), &src, &d) {
                return Err(failed(i, t, dst, *port, "denied but is not"));
            }
        }
    }
    Ok(())
}

/// Destination addresses of a test destination (`autogroup:self`: the
/// test source user's own devices).
fn dst_set(c: &Inner, src: &Alias, a: &Alias) -> IpSet {
    let r = c.resolver();
    match a {
        Alias::Wildcard => tailnet_space(),
        Alias::SelfDevices => {
            let own = r.src_set(src);
            let user = c
                .topo
                .nodes
                .iter()
                .find(|n| n.tags.is_empty() && node_ips(n).iter().any(|ip| own.contains(*ip)))
                .and_then(|n| n.user);
            match (src, user) {
                (Alias::User(_), Some(u)) => user_set(c, u),
                _ => IpSet::new(),
            }
        }
        _ => r.src_set(a),
    }
}

/// Addresses of user `u`'s untagged nodes.
fn user_set(c: &Inner, u: u64) -> IpSet {
    IpSet::from_addrs(
        c.topo
            .nodes
            .iter()
            .filter(|n| n.tags.is_empty() && n.user == Some(u))
            .flat_map(|n| node_ips(n)),
    )
}

/// (sources, destinations) pairs the compiled rules allow over `proto`
/// to `port`.
fn entries(c: &Inner, proto: i32, port: u16) -> Vec<(IpSet, IpSet)> {
    let r: Resolver = c.resolver();
    let mut out = Vec::new();
    for (ri, rule) in c.doc.rules.iter().enumerate() {
        let src = c.src_set(ri);
        for (di, d) in rule.dsts.iter().enumerate() {
            if !dst_allows(d, proto, port) {
                continue;
            }
            let mask = |s: IpSet| match &c.rules[ri].dst_mask[di] {
                Some(m) => s.intersection(m),
                None => s,
            };
            match &d.alias {
                Alias::SelfDevices => {
                    let users: std::collections::BTreeSet<u64> =
                        c.topo.nodes.iter().filter_map(|n| n.user).collect();
                    for u in users {
                        let own = user_set(c, u);
                        out.push((src.intersection(&own), mask(own)));
                    }
                }
                Alias::Wildcard => out.push((src.clone(), mask(IpSet::full()))),
                Alias::Internet => out.push((src.clone(), mask(internet_space()))),
                Alias::Host(_) | Alias::Prefix(_) => {
                    if let Some((set, _)) = &c.rules[ri].dst_static[di] {
                        out.push((src.clone(), set.clone()));
                    }
                }
                a => out.push((src.clone(), mask(r.src_set(a)))),
            }
        }
    }
    out
}

fn families() -> [IpSet; 2] {
    [
        IpSet::from_nets(&["0.0.0.0/0".parse().expect("static")]),
        IpSet::from_nets(&["::/0".parse().expect("static")]),
    ]
}

/// May any address of `src` reach any address of `dst`?
fn reached(entries: &[(IpSet, IpSet)], src: &IpSet, dst: &IpSet) -> bool {
    families().iter().any(|fam| {
        let (s, d) = (src.intersection(fam), dst.intersection(fam));
        entries
            .iter()
            .any(|(es, ed)| es.intersects(&s) && ed.intersects(&d))
    })
}

/// May every address of `src` reach every address of `dst` (same family),
/// with at least one such pair?
fn accepted(entries: &[(IpSet, IpSet)], src: &IpSet, dst: &IpSet) -> bool {
    let mut pairs = false;
    for fam in families() {
        let (s, d) = (src.intersection(&fam), dst.intersection(&fam));
        if s.is_empty() || d.is_empty() {
            continue;
        }
        pairs = true;
        // Cut `d` wherever an entry's destinations start or end: on each
        // piece, every entry's destinations hold all of it or none.
        let mut pieces = vec![d];
        for (_, ed) in entries {
            pieces = pieces
                .into_iter()
                .flat_map(|p| [p.intersection(ed), p.difference(ed)])
                .filter(|p| !p.is_empty())
                .collect();
        }
        for piece in &pieces {
            let mut allowed = IpSet::new();
            for (es, ed) in entries {
                if ed.covers(piece) {
                    allowed.extend(es);
                }
            }
            if !allowed.covers(&s) {
                return false;
            }
        }
    }
    pairs
}
