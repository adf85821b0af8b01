//! Telling the tailnet when node keys expire.
//!
//! An expiry is a point in time, not a write, so nothing else would wake
//! the map sessions when one passes: this task sleeps until the next expiry
//! in the World (or until the World changes) and then publishes the nodes
//! that expired as upserts, so their peers drop them and they learn they
//! must log in again (`mapper::build` reads `Node::is_active`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use imbl::OrdMap;
use imbl::ordmap::DiffItem;

use super::change::Change;
use super::events::{Event, EventActor, EventKind};
use super::writer::WeakState;
use crate::types::{Node, NodeId};

/// Upper bound on one sleep: a clock that jumps (or a test clock) is
/// noticed within this.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Expiries still ahead: the ones this task reports when they pass. A node
/// logged out or expired by an operator gets an expiry that is already past
/// when it is published, so it is never among them (those writes publish
/// their own change and event).
///
/// Kept up to date from the difference between the last World it saw and
/// the next, which skips the subtrees they share: rebuilding it from every
/// node on each World cost O(nodes) per published batch, which an
/// enrollment wave or a reconnect storm publishes hundreds of.
#[derive(Debug, Default)]
pub(super) struct Schedule {
    nodes: OrdMap<NodeId, Arc<Node>>,
    ahead: BTreeMap<NodeId, DateTime<Utc>>,
    by_time: BTreeSet<(DateTime<Utc>, NodeId)>,
}

impl Schedule {
    /// Moves to `nodes` (a newer World's) at `now`: returns the nodes whose
    /// scheduled expiry has passed and is still theirs in `nodes`, and keeps
    /// ahead only the expiries later than `now`.
    pub(super) fn advance(
        &mut self,
        nodes: &OrdMap<NodeId, Arc<Node>>,
        now: DateTime<Utc>,
    ) -> BTreeSet<NodeId> {
        let passed: Vec<(DateTime<Utc>, NodeId)> = self
            .by_time
            .iter()
            .take_while(|(e, _)| *e <= now)
            .copied()
            .collect();
        let mut due = BTreeSet::new();
        for (e, id) in passed {
            if nodes.get(&id).and_then(|n| n.expiry) == Some(e) {
                due.insert(id);
            }
            self.unschedule(id);
        }
        let before = std::mem::replace(&mut self.nodes, nodes.clone());
        for d in before.diff(nodes) {
            match d {
                DiffItem::Add(id, n) | DiffItem::Update { new: (id, n), .. } => {
                    self.unschedule(*id);
                    if let Some(e) = n.expiry.filter(|e| *e > now) {
                        self.ahead.insert(*id, e);
                        self.by_time.insert((e, *id));
                    }
                }
                DiffItem::Remove(id, _) => self.unschedule(*id),
            }
        }
        due
    }

    /// The earliest expiry ahead.
    pub(super) fn next(&self) -> Option<DateTime<Utc>> {
        self.by_time.first().map(|(e, _)| *e)
    }

    fn unschedule(&mut self, id: NodeId) {
        if let Some(e) = self.ahead.remove(&id) {
            self.by_time.remove(&(e, id));
        }
    }
}

/// Runs until the writer stops.
pub(super) async fn watch(state: WeakState) {
    let mut worlds = state.reader().subscribe();
    let mut schedule = Schedule::default();
    loop {
        let world = worlds.borrow_and_update().clone();
        let now = state.now();
        let ids = schedule.advance(&world.nodes, now);
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
        let sleep = schedule
            .next()
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).unwrap()
    }

    /// The definition the schedule keeps incrementally: of the expiries
    /// ahead after the last World, those passed at `now` and unchanged are
    /// due; ahead become all of `nodes`' expiries later than `now`.
    fn by_definition(
        ahead: &BTreeMap<NodeId, DateTime<Utc>>,
        nodes: &OrdMap<NodeId, Arc<Node>>,
        now: DateTime<Utc>,
    ) -> (BTreeSet<NodeId>, BTreeMap<NodeId, DateTime<Utc>>) {
        let due = ahead
            .iter()
            .filter(|(id, e)| **e <= now && nodes.get(*id).and_then(|n| n.expiry) == Some(**e))
            .map(|(id, _)| *id)
            .collect();
        let next = nodes
            .values()
            .filter_map(|n| n.expiry.filter(|e| *e > now).map(|e| (n.id, e)))
            .collect();
        (due, next)
    }

    /// Random Worlds (nodes added, removed, their expiries moved or
    /// cleared, many left shared) with a clock that moves forward: the
    /// schedule reports exactly what the definition does at every step.
    #[test]
    fn an_incremental_schedule_matches_its_definition() {
        let mut rng = StdRng::seed_from_u64(15);
        let mut nodes: OrdMap<NodeId, Arc<Node>> = OrdMap::new();
        let mut schedule = Schedule::default();
        let mut ahead = BTreeMap::new();
        let mut now = 1_000;
        let mut reported = 0;
        for _ in 0..2_000 {
            for _ in 0..rng.gen_range(0..4) {
                let id = rng.gen_range(1..150);
                if rng.gen_bool(0.15) {
                    nodes.remove(&NodeId(id));
                    continue;
                }
                let mut n = crate::whois::answer::tests::node(id, 1, "n", &[]);
                n.expiry = rng.gen_bool(0.8).then(|| at(now + rng.gen_range(-5..40)));
                nodes.insert(n.id, Arc::new(n));
            }
            now += rng.gen_range(0..4);
            let (want_due, want_ahead) = by_definition(&ahead, &nodes, at(now));
            let due = schedule.advance(&nodes, at(now));
            assert_eq!(due, want_due, "at {now}");
            assert_eq!(schedule.ahead, want_ahead, "at {now}");
            assert_eq!(schedule.next(), want_ahead.values().min().copied());
            assert_eq!(schedule.by_time.len(), schedule.ahead.len());
            reported += due.len();
            ahead = want_ahead;
        }
        // The walk did report expiries, not only empty sets.
        assert!(reported > 100, "only {reported} expiries reported");
    }
}
