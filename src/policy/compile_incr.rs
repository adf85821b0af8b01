//! Incremental recompilation after topology changes. Sources are re-resolved
//! (cheap: set unions), outputs are recomputed and compared to the previous
//! ones so the caller learns exactly which nodes need a new netmap.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::Topology;
use super::compile::Compiled;

pub(crate) fn update(
    prev: &Compiled,
    topo: &Topology,
    changed: &[u64],
) -> (Compiled, BTreeSet<u64>) {
    let next = Compiled::build(prev.inner.doc.clone(), Arc::new(topo.clone()));
    let mut diff: BTreeSet<u64> = changed.iter().copied().collect();
    for n in &topo.nodes {
        if prev.node(n.id) != next.node(n.id) {
            diff.insert(n.id);
        }
    }
    (next, diff)
}
