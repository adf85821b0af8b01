//! Checks that need the topology, run when a policy is saved: the domains
//! of `localpart:*@domain` SSH users, the `tests` block (`acl_tests`) and
//! the `sshTests` block (`ssh_tests`). Depends on `compile` and below.

pub mod acl_tests;
pub mod ssh_tests;

use std::sync::Arc;

use crate::policy::model::{Doc, PolicyError, Topology};

/// Every topology-dependent check, in the order Tailscale reports them.
pub fn check(doc: &Arc<Doc>, topo: &Topology) -> Result<(), PolicyError> {
    for (dom, at) in &doc.ssh_domains {
        // Case matters, as on Tailscale: `EXAMPLE.COM` is not `example.com`.
        let known = topo
            .users
            .iter()
            .any(|u| u.login.rsplit_once('@').is_some_and(|(_, d)| d == dom));
        if !known {
            let msg = format!(
                "{dom} is not associated with this Tailnet and cannot be used in user:*@<domain> expressions"
            );
            return Err(match at {
                Some((l, c)) => PolicyError::at(*l, *c, msg),
                None => PolicyError::new(msg),
            });
        }
    }
    acl_tests::check(doc, topo)?;
    ssh_tests::check(doc, topo)
}
