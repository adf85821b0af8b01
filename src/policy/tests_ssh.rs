//! `sshTests`: for a source and destinations, which local users must be
//! accepted, held for check, or denied by the compiled SSH rules.

use std::sync::Arc;

use super::alias::{Alias, Resolver};
use super::compile::Compiled;
use super::model::Doc;
use super::{PolicyError, Topology};

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
        {
            return Err(fail());
        }
        if t.accept.iter().any(|u| t.deny.contains(u)) {
            return Err(fail());
        }
        let srcs: Vec<usize> = (0..topo.nodes.len())
            .filter(|&i| r.node_matches(&t.src, i))
            .collect();
        let mut dsts: Vec<usize> = Vec::new();
        for a in &t.dst {
            if let Alias::Prefix(p) = a
                && p.addr().is_ipv6()
            {
                return Err(fail());
            }
            for i in 0..topo.nodes.len() {
                if r.node_matches(a, i) && !dsts.contains(&i) {
                    dsts.push(i);
                }
            }
        }
        for &d in &dsts {
            let policy = compiled.inner.ssh_policy(d).unwrap_or_default();
            // The action a user gets from the first matching rule.
            let verdict = |user: &str| -> Option<bool> {
                for s in &srcs {
                    let ips: Vec<String> = super::alias::node_ips(&topo.nodes[*s])
                        .iter()
                        .map(|a| a.to_string())
                        .collect();
                    for rule in &policy.rules {
                        if !rule.principals.iter().any(|p| ips.contains(&p.node_ip)) {
                            continue;
                        }
                        let mapped = rule.ssh_users.get(user).or_else(|| {
                            if user != "root" {
                                rule.ssh_users.get("*")
                            } else {
                                None
                            }
                        });
                        match mapped {
                            Some(m) if !m.is_empty() => return Some(rule.action.accept),
                            Some(_) => return None,
                            None => {}
                        }
                    }
                }
                None
            };
            for u in &t.accept {
                if verdict(u) != Some(true) {
                    return Err(fail());
                }
            }
            for u in &t.check {
                if verdict(u).is_none() {
                    return Err(fail());
                }
            }
            for u in &t.deny {
                if verdict(u).is_some() {
                    return Err(fail());
                }
            }
        }
        if dsts.is_empty() && !t.accept.is_empty() {
            return Err(fail());
        }
    }
    Ok(())
}
