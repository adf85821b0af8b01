//! Compilation against a topology, as Tailscale does it: each node's packet
//! filter holds only the rules where the node (or a subnet it routes, or
//! the internet it exits to) is a destination; peers are symmetric
//! reachability plus the routes each side needs; CapMap/SSH per node.
//!
//! Layout: `build` resolves the shared state once (`inner`), and every
//! node's output (`output`: `filter`, `peers`, `ssh`, `node_attrs`) is
//! computed lazily on first `node()` call, then cached. `incr` reuses the
//! outputs of unaffected nodes after a topology change; `explain` answers
//! "why"; `routes` and `services` derive route and service facts. Ordered
//! `deny` rules are compiled away first (`deny`), against the reference
//! semantics in `first_match`. The types handed out live in `types`.
//! Depends on `resolve` and `model`.

pub mod build;
pub mod deny;
pub mod explain;
pub mod filter;
pub mod first_match;
pub mod incr;
pub mod inner;
pub mod node_attrs;
pub mod output;
pub mod peers;
pub mod routes;
pub mod services;
pub mod ssh;
pub mod types;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use self::inner::Inner;
use self::types::{Explanation, NodeOutput, PeerOutput};
use crate::policy::model::{CapMap, Doc, Topology};
use crate::policy::resolve::alias::node_ips;

/// The compiled policy for one topology; cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Compiled {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Compiled({} nodes)", self.inner.topo.nodes.len())
    }
}

impl Compiled {
    pub(crate) fn build(doc: Arc<Doc>, topo: Arc<Topology>) -> Compiled {
        Compiled {
            inner: Arc::new(Inner::build(doc, topo)),
        }
    }

    pub fn node(&self, id: u64) -> Option<NodeOutput> {
        self.node_arc(id).map(|o| (*o).clone())
    }

    /// As `node`, without copying: the output is computed once per node and
    /// shared (prefer this on hot paths).
    pub fn node_arc(&self, id: u64) -> Option<Arc<NodeOutput>> {
        self.node_shared(id).cloned()
    }

    /// As `node_arc`, borrowed: no reference count touched, for per-request
    /// paths that only look.
    pub fn node_shared(&self, id: u64) -> Option<&Arc<NodeOutput>> {
        let i = *self.inner.index.get(&id)?;
        Some(self.inner.output_ref(i))
    }

    /// Node `id`'s peers, each with its full output (`NodeOutput::peers`
    /// keeps only the outputs that are more than a peer's own addresses).
    /// For tools and tests; the mapper reads the addresses from its World.
    pub fn peer_outputs(&self, id: u64) -> Option<Vec<(u64, PeerOutput)>> {
        let out = self.node_shared(id)?;
        let inner = &self.inner;
        let ips = |p: u64| {
            inner
                .index
                .get(&p)
                .map(|&i| node_ips(&inner.topo.nodes[i]))
                .unwrap_or_default()
        };
        Some(out.peers.outputs(ips).collect())
    }

    /// Whether node `id` is in this policy's topology.
    pub fn knows(&self, id: u64) -> bool {
        self.inner.index.contains_key(&id)
    }

    /// The nodes that see node `id` (its own peers: visibility is
    /// symmetric), or `None` when `id` is not in this topology. Read from
    /// the rules' node sets, so no node output is computed for it.
    pub fn viewers(&self, id: u64) -> Option<Vec<u64>> {
        let i = *self.inner.index.get(&id)?;
        let nodes = &self.inner.topo.nodes;
        Some(
            self.inner
                .visible(i)
                .iter()
                .filter_map(|p| nodes.get(p).map(|n| n.id))
                .collect(),
        )
    }

    /// Computes every node's output now (they are otherwise computed on
    /// first `node()`), e.g. before a full netmap push. Sequential on
    /// purpose: the work is allocation-bound, and two threads measured
    /// slower than one on the 2-core build machine.
    pub fn materialize(&self) {
        for i in 0..self.inner.outputs.len() {
            self.inner.output(i);
        }
    }

    /// App capabilities granted from `src` to `dst_node` (what whois returns).
    pub fn whois_caps(&self, src: IpAddr, dst_node: u64) -> CapMap {
        let Some(&d) = self.inner.index.get(&dst_node) else {
            return CapMap::new();
        };
        let mut out = CapMap::new();
        for rule in self.inner.filter_rules(d) {
            let Some(grants) = &rule.cap_grant else {
                continue;
            };
            if !rule.src.contains(src) {
                continue;
            }
            for (k, v) in grants {
                out.entry(k.clone()).or_default().extend(v.iter().cloned());
            }
        }
        out
    }

    /// How long a passed SSH check from `src_node` to `dst_node` as local
    /// user `local_user` counts (zero: ask every time), or `None` when no
    /// `check` rule of `dst_node`'s SSH policy covers that login.
    pub fn ssh_check_period(
        &self,
        src_node: u64,
        dst_node: u64,
        local_user: &str,
    ) -> Option<std::time::Duration> {
        let s = *self.inner.index.get(&src_node)?;
        let d = *self.inner.index.get(&dst_node)?;
        self.inner.ssh_check_period(s, d, local_user)
    }

    /// Which rules let `src_node` reach `dst_node` on `port`, or why none.
    pub fn explain(
        &self,
        src_node: u64,
        dst_node: u64,
        port: u16,
        proto: Option<u8>,
    ) -> Explanation {
        self.inner.explain(src_node, dst_node, port, proto)
    }

    /// Each `svc:NAME` (without the prefix) with its hosts' addresses, for
    /// DNS `NAME.<base_domain>`.
    pub fn service_addrs(&self) -> Vec<(String, Vec<IpAddr>)> {
        services::addrs(&self.inner.doc, &self.inner.topo)
    }

    /// The topology this was compiled for, as given (before routes the
    /// policy auto-approves are added).
    pub fn topology(&self) -> &Topology {
        &self.inner.input
    }

    /// Same policy, changed topology (nodes upserted/removed): the new state
    /// and the ids whose `NodeOutput` may differ. Outputs of other nodes are
    /// carried over, not recomputed.
    /// Takes the topology by value: it becomes the new state's own.
    pub fn update(&self, topo: Topology, changed: &[u64]) -> (Compiled, BTreeSet<u64>) {
        let (inner, affected) = incr::update(&self.inner, topo, changed);
        (
            Compiled {
                inner: Arc::new(inner),
            },
            affected,
        )
    }
}
