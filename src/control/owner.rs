//! Which node a tunnelled request acts for: the one its `NodeKey` names,
//! and only if the tunnel's authenticated machine key owns it (Headscale
//! #2642 was this check missing).

use std::sync::Arc;

use super::{ControlState, Peer};
use crate::http::error::ApiError;
use crate::state::World;
use crate::types::{Node, NodePublic};

/// The node `node_key` names, with the World it was read from, if the
/// tunnel's machine owns it. `request` names the request in the warning.
pub(super) fn owned_node(
    cs: &ControlState,
    peer: &Peer,
    node_key: Option<&str>,
    request: &'static str,
) -> Result<(Arc<World>, Arc<Node>), ApiError> {
    let node_key: NodePublic = node_key
        .unwrap_or("")
        .parse()
        .map_err(|e| ApiError::bad_request(format!("NodeKey: {e}")))?;
    let world = cs.state.world();
    let node = world
        .node_by_node_key(&node_key)
        .cloned()
        .ok_or_else(|| ApiError::unauthorized("node not registered"))?;
    if node.machine_key != peer.machine_key {
        tracing::warn!(node = %node.id, machine = ?peer.machine_key, request, "foreign node key");
        return Err(ApiError::unauthorized(
            "node key does not belong to this machine",
        ));
    }
    Ok((world, node))
}
