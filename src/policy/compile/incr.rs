//! Incremental recompilation after topology changes (same policy). The
//! shared per-rule state is rebuilt (cheap: bitsets, see `build`); node
//! outputs are not. The nodes whose output may change are derived from the
//! changed nodes, and every other node keeps its computed output.
//!
//! A change to node X can only alter the output of:
//! - X itself;
//! - nodes that see X, before or after (visibility is symmetric): X joins
//!   or leaves their peers, and X's addresses join or leave the `SrcIPs` of
//!   their rules (a rule with X as a source and them as a destination makes
//!   them visible to each other; `autogroup:self` likewise);
//! - destinations of SSH rules X is a source of (principals);
//! - everyone, when X routes subnets or exits (before or after): primary
//!   routes, route viewers and `*` sources all depend on routes.
//!
//! A change of the user list invalidates everything, and so does a change
//! of what deny rules leave of the accepts (`deny::lower`).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::inner::Inner;
use crate::policy::model::{Alias, Topology};
use crate::policy::resolve::alias::Resolver;

/// The state for `topo` and the ids whose output may differ from `old`'s.
pub(crate) fn update(old: &Inner, topo: Topology, changed: &[u64]) -> (Inner, BTreeSet<u64>) {
    let new = Inner::build(old.source.clone(), Arc::new(topo));
    // Deny rules are subtracted per topology: when what they leave of the
    // accepts changes, rendered address sets may change anywhere.
    let lowered_moved = !Arc::ptr_eq(&old.doc, &new.doc) && old.doc.rules != new.doc.rules;
    let mut everyone = old.topo.users != new.topo.users || lowered_moved;

    // The caller names what changed; also catch anything it did not name.
    // Nodes shared with the old topology compare by pointer (`Arc`'s `Eq`),
    // so this costs little when the caller built `topo` by `with_nodes`.
    let mut xs: BTreeSet<u64> = changed.iter().copied().collect();
    for n in &new.topo.nodes {
        match old.index.get(&n.id) {
            Some(&i) if old.topo.nodes[i] == *n => {}
            _ => {
                xs.insert(n.id);
            }
        }
    }
    for n in &old.topo.nodes {
        if !new.index.contains_key(&n.id) {
            xs.insert(n.id);
        }
    }

    let mut affected: BTreeSet<u64> = xs.clone();
    for &x in &xs {
        if everyone {
            break;
        }
        for side in [old, &new] {
            let Some(&i) = side.index.get(&x) else {
                continue;
            };
            if !side.topo.nodes[i].approved_routes.is_empty() {
                everyone = true;
                break;
            }
            for p in side.visible(i).iter() {
                affected.insert(side.topo.nodes[p].id);
            }
            ssh_affected(side, i, &mut affected);
        }
    }
    if everyone {
        affected.extend(old.topo.nodes.iter().map(|n| n.id));
        affected.extend(new.topo.nodes.iter().map(|n| n.id));
    } else {
        // Carry over what is already computed for everyone else.
        for (i, n) in new.topo.nodes.iter().enumerate() {
            if affected.contains(&n.id) {
                continue;
            }
            if let Some(&j) = old.index.get(&n.id)
                && let Some(out) = old.outputs[j].get()
            {
                let _ = new.outputs[i].set(out.clone());
            }
        }
    }
    (new, affected)
}

/// Destinations of SSH rules node `i` is a source of.
fn ssh_affected(side: &Inner, i: usize, out: &mut BTreeSet<u64>) {
    let r = Resolver {
        doc: &side.doc,
        topo: &side.topo,
    };
    for rule in &side.doc.ssh {
        if !rule.src.iter().any(|a| r.node_matches(a, i)) {
            continue;
        }
        for (j, n) in side.topo.nodes.iter().enumerate() {
            if rule.dst.iter().any(|a| r.node_matches(a, j)) {
                out.insert(n.id);
            }
        }
        if rule.dst.contains(&Alias::SelfDevices) {
            for &j in side.same_user_nodes(i) {
                out.insert(side.topo.nodes[j].id);
            }
        }
    }
}
