//! Which peers a policy change shows, hides or lets route differently for
//! one session, read against what its client holds.
//!
//! Both sides are sorted id lists, so they are walked together and only the
//! peers that differ are looked up in the World: a node that sees many
//! others (an MCP gateway every member may reach sees the whole tailnet)
//! gets a policy change with every join, and looking up each of its peers
//! cost O(nodes) per change. A plain peer the client already holds (the
//! common case) costs a comparison. Peers whose node changed are left to
//! the `upserted` handling; a peer whose key expires or whose approval is
//! withdrawn is published as an upsert too (`state::expiry`).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::super::view::{Routes, View};
use super::SentState;
use crate::state::World;
use crate::state::change::Change;
use crate::types::{Node, NodeId};

/// Peers to (re)send with what they route, and peers the client must drop.
pub(super) type Moved<'w> = (Vec<(&'w Arc<Node>, Routes<'w>)>, Vec<NodeId>);

pub(super) fn peers_moved<'w>(
    world: &'w World,
    view: &'w View,
    me: &Node,
    sent: &SentState,
    change: &Change,
    now: DateTime<Utc>,
) -> Moved<'w> {
    let (mut shown, mut gone) = (Vec::new(), Vec::new());
    // An inactive node is shown no peers (`build_full` likewise).
    let ids = view.peer_ids(world, me.id).filter(|_| me.is_active(now));
    let mut held = sent.peers.iter().copied().peekable();
    for id in ids {
        while let Some(h) = held.next_if(|h| *h < id) {
            gone.push(h);
        }
        let known = held.next_if_eq(&id).is_some();
        if change.upserted.contains(&id) {
            continue;
        }
        if known && view.plainly_own(id) && !sent.routes.contains_key(&id) {
            continue;
        }
        match world.node(id).filter(|p| p.is_active(now)) {
            Some(p) => {
                let routes = view.peer_routes(world, p);
                if !known || !sent.has_peer_routes(p, routes.as_deref()) {
                    shown.push((p, routes));
                }
            }
            None if known => gone.push(id),
            None => {}
        }
    }
    gone.extend(held);
    gone.retain(|id| !change.upserted.contains(id));
    (shown, gone)
}
