//! Checks that need the topology, run when a policy is saved: the domains
//! of `localpart:*@domain` SSH users, the `tests` block (`acl_tests`) and
//! the `sshTests` block (`ssh_tests`). Depends on `compile` and below.

pub mod acl_tests;
pub mod ssh_tests;

use std::sync::Arc;

use crate::policy::model::{Doc, PolicyError, Topology};

/// Every topology-dependent check, in the order Tailscale reports them.
pub fn check(doc: &Arc<Doc>, topo: &Topology) -> Result<(), PolicyError> {
    for (dom, _) in &doc.localpart_domains {
        let known = topo
            .users
            .iter()
            .any(|u| u.login.rsplit_once('@').is_some_and(|(_, d)| d == dom));
        if !known {
            return Err(PolicyError::new(format!(
                "{dom} is not associated with this Tailnet and cannot be used in user:*@<domain> expressions"
            )));
        }
    }
    acl_tests::check(doc, topo)?;
    ssh_tests::check(doc, topo)
}
