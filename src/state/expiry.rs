//! Telling the tailnet when node keys expire.
//!
//! An expiry is a point in time, not a write, so nothing else would wake
//! the map sessions when one passes: this task sleeps until the next expiry
//! in the World (or until the World changes) and then publishes the nodes
//! that expired as upserts, so their peers drop them and they learn they
//! must log in again (`mapper::build` reads `Node::is_active`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::change::Change;
use super::events::{Event, EventActor, EventKind};
use super::world::World;
use super::writer::WeakState;
use crate::types::NodeId;

/// Upper bound on one sleep: a clock that jumps (or a test clock) is
/// noticed within this.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Expiries still ahead at `now`: the ones this task reports when they
/// pass. A node logged out or expired by an operator gets an expiry that is
/// already past when it is published, so it is never among them (those
/// writes publish their own change and event).
pub(super) fn scheduled(world: &World, now: DateTime<Utc>) -> BTreeMap<NodeId, DateTime<Utc>> {
    world
        .nodes
        .values()
        .filter_map(|n| n.expiry.filter(|e| *e > now).map(|e| (n.id, e)))
        .collect()
}

/// Of `scheduled`, the nodes whose expiry has passed at `now` and is still
/// theirs in `world`.
pub(super) fn due(
    scheduled: &BTreeMap<NodeId, DateTime<Utc>>,
    world: &World,
    now: DateTime<Utc>,
) -> BTreeSet<NodeId> {
    scheduled
        .iter()
        .filter(|(id, e)| **e <= now && world.node(**id).and_then(|n| n.expiry) == Some(**e))
        .map(|(id, _)| *id)
        .collect()
}

/// Runs until the writer stops.
pub(super) async fn watch(state: WeakState) {
    let mut worlds = state.reader().subscribe();
    let mut ahead = BTreeMap::new();
    loop {
        let world = worlds.borrow_and_update().clone();
        let now = state.now();
        let ids = due(&ahead, &world, now);
        ahead = scheduled(&world, now);
        if !ids.is_empty() {
            tracing::info!(nodes = ?ids, "node keys expired");
            let Some(handle) = state.upgrade() else {
                return;
            };
            let published = handle
                .run(move |core| {
                    Box::pin(async move {
                        for id in &ids {
                            let node = core.world.node(*id).cloned();
                            core.emit(Event {
                                kind: EventKind::Expired,
                                actor: EventActor::System,
                                before: node.clone(),
                                after: node,
                            });
                        }
                        let change = Change {
                            upserted: ids,
                            ..Default::default()
                        };
                        let w = core.draft();
                        core.publish(w, change);
                        Ok(())
                    })
                })
                .await;
            if published.is_err() {
                return;
            }
            continue;
        }
        let sleep = ahead
            .values()
            .min()
            .and_then(|e| (*e - now).to_std().ok())
            .map_or(MAX_SLEEP, |d| d.min(MAX_SLEEP))
            // Expiry times have sub-second precision; wake just after.
            + Duration::from_millis(5);
        tokio::select! {
            changed = worlds.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(sleep) => {}
        }
    }
}
