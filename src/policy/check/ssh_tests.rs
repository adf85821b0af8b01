//! `sshTests`: for a source and destinations, which local users must be
//! accepted (by an accept or check rule), held for check, or denied by the
//! SSH rules compiled for each destination. Every address of the source
//! must agree; a source or destination that selects no node fails the test,
//! as Tailscale's "test(s) failed" does.

use std::net::IpAddr;
use std::sync::Arc;

use crate::policy::compile::Compiled;
use crate::policy::model::{Alias, Doc, PolicyError, Topology, alias::user_matches};
use crate::policy::resolve::alias::{Resolver, node_ips};
use crate::tailcfg::SshPolicy;

/// Does `m` (a rule's `sshUsers`) let `user` log in? An exact entry wins;
/// otherwise non-root users fall back to `"*"`. An empty mapping means the
/// rule does not apply to that user.
fn user_allowed(m: &std::collections::BTreeMap<String, String>, user: &str) -> bool {
    if user.is_empty() {
        return false;
    }
    if let Some(v) = m.get(user) {
        return !v.is_empty();
    }
    user != "root" && m.get("*").is_some_and(|v| !v.is_empty())
}

/// (reached by any rule, reached by a check rule) for `src` logging in as `user`.
fn reach(policy: &SshPolicy, src: IpAddr, user: &str) -> (bool, bool) {
    let src = src.to_string();
    let (mut any, mut check) = (false, false);
    for r in &policy.rules {
        if r.principals.iter().any(|p| p.node_ip == src) && user_allowed(&r.ssh_users, user) {
            any = true;
            check |= !r.action.hold_and_delegate.is_empty();
        }
    }
    (any, check)
}

pub fn check(doc: &Arc<Doc>, topo: &Topology) -> Result<(), PolicyError> {
    if doc.ssh_tests.is_empty() {
        return Ok(());
    }
    let fail = || PolicyError::new("test(s) failed");
    let compiled = Compiled::build(doc.clone(), Arc::new(topo.clone()));
    let r = Resolver { doc, topo };
    for t in &doc.ssh_tests {
        if t.accept.is_empty() && t.check.is_empty() && t.deny.is_empty() {
            return Err(fail());
        }
        if t.accept
            .iter()
            .chain(&t.check)
            .chain(&t.deny)
            .any(|u| u.is_empty())
            || t.accept.iter().any(|u| t.deny.contains(u))
        {
            return Err(fail());
        }
        let src_nodes: Vec<usize> = (0..topo.nodes.len())
            .filter(|&i| r.node_matches(&t.src, i))
            .collect();
        let src_addrs: Vec<IpAddr> = src_nodes
            .iter()
            .flat_map(|&i| node_ips(&topo.nodes[i]))
            .collect();
        if src_addrs.is_empty() {
            return Err(fail());
        }
        // `autogroup:self` in a test means the source user's own devices.
        let src_user = match &t.src {
            Alias::User(sel) => topo
                .users
                .iter()
                .find(|u| user_matches(sel, &u.login))
                .map(|u| u.id),
            _ => None,
        };
        let mut dsts: Vec<usize> = Vec::new();
        for a in &t.dst {
            if let Alias::Prefix(p) = a
                && p.addr().is_ipv6()
            {
                return Err(fail());
            }
            let matched: Vec<usize> = (0..topo.nodes.len())
                .filter(|&i| {
                    let n = &topo.nodes[i];
                    match a {
                        Alias::SelfDevices => {
                            src_user.is_some() && n.tags.is_empty() && n.user == src_user
                        }
                        _ => r.node_matches(a, i),
                    }
                })
                .collect();
            if matched.is_empty() {
                return Err(fail());
            }
            for i in matched {
                if !dsts.contains(&i) {
                    dsts.push(i);
                }
            }
        }
        for &d in &dsts {
            let policy = compiled.inner.ssh_policy(d).unwrap_or_default();
            let all = |user: &str, want: fn((bool, bool)) -> bool| {
                src_addrs.iter().all(|&a| want(reach(&policy, a, user)))
            };
            let ok = t.accept.iter().all(|u| all(u, |(any, _)| any))
                && t.check.iter().all(|u| all(u, |(_, chk)| chk))
                && t.deny.iter().all(|u| all(u, |(any, _)| !any));
            if !ok {
                return Err(fail());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::policy::Policy;
    use crate::policy::compile::ssh::tests::topo;

    fn run(ssh: &str, tests: &str) -> Result<(), PolicyError> {
        let src = format!(
            r#"{{"tagOwners": {{"tag:server": ["odin@example.com"], "tag:nobody": ["odin@example.com"]}},
                "ssh": {ssh}, "sshTests": {tests}}}"#
        );
        Policy::parse(&src).expect("parses").check(&topo())
    }

    #[test]
    fn user_map_semantics() {
        let m = BTreeMap::from([
            ("root".to_string(), String::new()),
            ("*".to_string(), "=".to_string()),
        ]);
        assert!(!user_allowed(&m, "root"));
        assert!(user_allowed(&m, "alice"));
        assert!(!user_allowed(&m, ""));
        let only_root = BTreeMap::from([("root".to_string(), "root".to_string())]);
        assert!(user_allowed(&only_root, "root"));
        assert!(!user_allowed(&only_root, "alice"));
    }

    const ACCEPT_ROOT: &str = r#"[{"action": "accept", "src": ["thor@example.org"],
        "dst": ["tag:server"], "users": ["root"]}]"#;

    #[test]
    fn accept_and_deny() {
        assert!(
            run(
                ACCEPT_ROOT,
                r#"[{"src": "thor@example.org", "dst": ["tag:server"], "accept": ["root"], "deny": ["ubuntu"]}]"#
            )
            .is_ok()
        );
        // odin has no rule: accepting root must fail, denying it passes.
        assert!(
            run(
                ACCEPT_ROOT,
                r#"[{"src": "odin@example.com", "dst": ["tag:server"], "accept": ["root"]}]"#
            )
            .is_err()
        );
        assert!(
            run(
                ACCEPT_ROOT,
                r#"[{"src": "odin@example.com", "dst": ["tag:server"], "deny": ["root"]}]"#
            )
            .is_ok()
        );
    }

    #[test]
    fn check_needs_a_check_rule() {
        let check = r#"[{"action": "check", "src": ["thor@example.org"],
            "dst": ["tag:server"], "users": ["root"]}]"#;
        let t = r#"[{"src": "thor@example.org", "dst": ["tag:server"], "check": ["root"], "accept": ["root"]}]"#;
        assert!(run(check, t).is_ok());
        assert!(run(ACCEPT_ROOT, t).is_err());
    }

    #[test]
    fn localpart_user_is_reached_past_the_empty_root_rule() {
        // The first rule maps root to "" (no match); the localpart rule
        // after it grants odin.
        let lp = r#"[{"action": "accept", "src": ["odin@example.com"],
            "dst": ["tag:server"], "users": ["localpart:*@example.com"]}]"#;
        let ok = r#"[{"src": "odin@example.com", "dst": ["tag:server"], "accept": ["odin"], "deny": ["root"]}]"#;
        assert!(run(lp, ok).is_ok());
        let bad = r#"[{"src": "odin@example.com", "dst": ["tag:server"], "accept": ["thor"]}]"#;
        assert!(run(lp, bad).is_err());
    }

    #[test]
    fn empty_selections_fail() {
        // A destination selecting no node fails even for deny.
        assert!(
            run(
                ACCEPT_ROOT,
                r#"[{"src": "thor@example.org", "dst": ["tag:nobody"], "deny": ["root"]}]"#
            )
            .is_err()
        );
        assert!(
            run(
                ACCEPT_ROOT,
                r#"[{"src": "thor@example.org", "dst": ["tag:server"]}]"#
            )
            .is_err()
        );
    }
}
