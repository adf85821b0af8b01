//! Tests of the policy engine as a whole, beyond each module's own unit
//! tests: the public API (`api`), the HuJSON parser's properties
//! (`hujson`), incremental recompilation (`incr`) and the layering rule
//! (`layering`). `rng` is their deterministic generator.

mod api;
mod deny;
mod extensions;
mod hujson;
mod incr;
mod layering;
mod oidc_groups;
mod rng;
mod sources;
mod validation;

use std::net::Ipv4Addr;

use crate::policy::TopoNode;

/// Node `id` at 100.64.0.`id` and fd7a:115c:a1e0::`id`, named `n{id}`.
fn node(id: u64, user: Option<u64>, tags: &[&str]) -> TopoNode {
    TopoNode {
        id,
        name: format!("n{id}"),
        hostname: format!("n{id}"),
        user,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ipv4: Some(Ipv4Addr::new(100, 64, 0, id as u8)),
        ipv6: Some(format!("fd7a:115c:a1e0::{id}").parse().expect("v6")),
        ..Default::default()
    }
}
