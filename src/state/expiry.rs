//! Telling the tailnet when node keys expire.
//!
//! An expiry is a point in time, not a write, so nothing else would wake
//! the map sessions when one passes: this task sleeps until the next expiry
//! in the World (or until the World changes) and then publishes the nodes
//! that expired as upserts, so their peers drop them and they learn they
//! must log in again (`mapper::build` reads `Node::is_active`).

use std::collections::BTreeSet;
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

/// Nodes whose expiry lies in `(after, until]`.
pub(super) fn expired_between(
    world: &World,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> BTreeSet<NodeId> {
    world
        .nodes
        .values()
        .filter(|n| n.expiry.is_some_and(|e| e > after && e <= until))
        .map(|n| n.id)
        .collect()
}

/// The earliest expiry after `now`, if any.
fn next_expiry(world: &World, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    world
        .nodes
        .values()
        .filter_map(|n| n.expiry)
        .filter(|e| *e > now)
        .min()
}

/// Runs until the writer stops.
pub(super) async fn watch(state: WeakState) {
    let mut worlds = state.reader().subscribe();
    let mut checked = state.now();
    loop {
        let world = worlds.borrow_and_update().clone();
        let now = state.now();
        let sleep = next_expiry(&world, now)
            .and_then(|e| (e - now).to_std().ok())
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
        let now = state.now();
        if now <= checked {
            continue;
        }
        let ids = expired_between(&state.reader().world(), checked, now);
        checked = now;
        if ids.is_empty() {
            continue;
        }
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
    }
}
