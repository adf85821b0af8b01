//! Live map sessions and their mailboxes.
//!
//! Each long-poll `/machine/map` stream is one session; a node may have
//! several at once (a reconnect races the old stream's teardown), so sessions
//! are keyed by a unique id and counted per node. The writer calls
//! [`Sessions::dispatch`] after publishing a World; that only merges the change
//! into each mailbox under a short leaf lock and wakes the session. Nothing
//! here ever waits on a client, and nothing is dropped: a slow session just
//! merges more into its pending change.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::policy::compile::Compiled;
use crate::state::World;
use crate::state::change::Change;
use crate::types::NodeId;

pub type SessionId = u64;

/// Who sees the nodes of one change, in the Worlds before and after it;
/// only built when both have a compiled policy (without one every node
/// sees every node). Indexed by viewer, from the rules' node sets, once per
/// change: a session's part is one lookup, so fan-out costs the number of
/// (changed node, viewer) pairs, not sessions × changed nodes (a mass
/// reconnect is many batches of presence patches).
struct Seen<'w> {
    /// Per viewer, the changed nodes it sees before or after (itself
    /// included).
    sees: HashMap<NodeId, Vec<NodeId>>,
    /// Changed nodes neither World knows: nothing is withheld about them.
    unknown: Vec<NodeId>,
    before: &'w Compiled,
    after: &'w Compiled,
}

impl<'w> Seen<'w> {
    fn of(change: &Change, before: &'w World, after: &'w World) -> Option<Self> {
        let sides = [
            before.policy.compiled.as_ref()?,
            after.policy.compiled.as_ref()?,
        ];
        let ids: BTreeSet<NodeId> = change
            .upserted
            .iter()
            .chain(&change.removed)
            .chain(&change.routes)
            .chain(change.patched.keys())
            .copied()
            .collect();
        let (mut sees, mut unknown) = (HashMap::<NodeId, Vec<NodeId>>::new(), Vec::new());
        for id in ids {
            let mut viewers = HashSet::from([id]);
            let mut known = false;
            for c in sides {
                if let Some(v) = c.viewers(id.0 as u64) {
                    known = true;
                    viewers.extend(v.into_iter().map(|p| NodeId(p as i64)));
                }
            }
            if !known {
                unknown.push(id);
                continue;
            }
            for v in viewers {
                sees.entry(v).or_default().push(id);
            }
        }
        let [before, after] = sides;
        Some(Seen {
            sees,
            unknown,
            before,
            after,
        })
    }

    /// The part of `change` for a session of `me`, or `None` when that is
    /// all of it: a node one World does not know counts as seeing
    /// everything there (nothing withheld in doubt).
    fn part(&self, change: &Change, me: NodeId) -> Option<Change> {
        let id = me.0 as u64;
        if !self.before.knows(id) || !self.after.knows(id) {
            return None;
        }
        let mine = self.sees.get(&me).map(Vec::as_slice).unwrap_or(&[]);
        if self.unknown.is_empty() {
            return Some(change.subset(me, Some(mine)));
        }
        let all: Vec<NodeId> = mine.iter().chain(&self.unknown).copied().collect();
        Some(change.subset(me, Some(&all)))
    }
}

/// One stream's mailbox.
#[derive(Debug)]
pub struct Session {
    pub id: SessionId,
    pub node: NodeId,
    pending: Mutex<Change>,
    notify: Notify,
}

impl Session {
    /// Takes everything merged since the last call.
    pub fn take(&self) -> Change {
        std::mem::take(&mut *self.lock())
    }

    /// Whether what is waiting is only presence (see
    /// [`Change::presence_only`]).
    pub fn presence_only(&self) -> bool {
        self.lock().presence_only()
    }

    /// Resolves when something has been merged (possibly already).
    pub async fn notified(&self) {
        self.notify.notified().await
    }

    fn push(&self, change: &Change, seen: Option<&Seen>) {
        // Of the nodes whose policy output moved, a session reads only
        // whether its own is one, so only that is kept (`Change::subset`):
        // a batch's affected set can be every node.
        // Under a policy, nodes this one sees neither before nor after the
        // change are nothing to it either: a join in one team then wakes
        // that team's streams, not every stream.
        let mine = match seen.and_then(|s| s.part(change, self.node)) {
            Some(part) => part,
            None => change.subset(self.node, None),
        };
        if mine.is_empty() {
            return;
        }
        self.lock().merge(mine);
        // notify_one stores a permit if the session is not waiting right now,
        // so a change that lands while a frame is being written is not lost.
        self.notify.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Change> {
        // A poisoned mailbox only means a panic elsewhere mid-merge; the
        // data is a plain set of ids, still usable.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, Default)]
pub struct Sessions {
    next_id: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: BTreeMap<SessionId, Arc<Session>>,
    /// Each node's open sessions, so a change reaches its viewers without
    /// a walk over every session.
    per_node: HashMap<NodeId, Vec<Arc<Session>>>,
}

impl Sessions {
    pub fn new() -> Arc<Self> {
        Arc::new(Sessions::default())
    }

    /// Registers a new session for `node`. Register *before* reading the
    /// World for the first full map, so no change published in between is
    /// missed (at worst it is sent twice).
    pub fn open(&self, node: NodeId) -> Arc<Session> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let s = Arc::new(Session {
            id,
            node,
            pending: Mutex::new(Change::default()),
            notify: Notify::new(),
        });
        let mut inner = self.lock();
        inner.by_id.insert(id, s.clone());
        inner.per_node.entry(node).or_default().push(s.clone());
        s
    }

    /// Removes a session; returns how many sessions the node still has.
    pub fn close(&self, session: &Session) -> usize {
        let mut inner = self.lock();
        if inner.by_id.remove(&session.id).is_none() {
            return inner.per_node.get(&session.node).map_or(0, Vec::len);
        }
        let left = match inner.per_node.get_mut(&session.node) {
            Some(v) => {
                v.retain(|s| s.id != session.id);
                v.len()
            }
            None => 0,
        };
        if left == 0 {
            inner.per_node.remove(&session.node);
        }
        left
    }

    pub fn count(&self, node: NodeId) -> usize {
        self.lock().per_node.get(&node).map_or(0, Vec::len)
    }

    pub fn total(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Merges `change` into every session's mailbox and wakes it. Sessions
    /// decide themselves what part concerns them (self vs. peers).
    pub fn dispatch(&self, change: &Change) {
        if change.is_empty() {
            return;
        }
        let sessions: Vec<Arc<Session>> = self.lock().by_id.values().cloned().collect();
        for s in sessions {
            s.push(change, None);
        }
    }

    /// As [`Sessions::dispatch`] for a change that took `before` to
    /// `after`: under a policy each session gets only the nodes it sees
    /// in either World (visibility is symmetric and is all a delta sends
    /// about a peer), and is not woken when that leaves nothing.
    pub fn dispatch_between(&self, change: &Change, before: &World, after: &World) {
        if change.is_empty() {
            return;
        }
        let Some(seen) = Seen::of(change, before, after) else {
            return self.dispatch(change);
        };
        // Only the viewers of what changed (each node sees itself, so a
        // created or deleted node's own sessions are among them) and the
        // nodes whose policy output moved; everyone for World-wide changes.
        let everyone = change.full || change.users || change.settings || !seen.unknown.is_empty();
        let sessions: Vec<Arc<Session>> = {
            let inner = self.lock();
            if everyone {
                inner.by_id.values().cloned().collect()
            } else {
                let nodes: BTreeSet<&NodeId> = seen.sees.keys().chain(&change.policy).collect();
                nodes
                    .into_iter()
                    .filter_map(|n| inner.per_node.get(n))
                    .flatten()
                    .cloned()
                    .collect()
            }
        };
        for s in sessions {
            s.push(change, Some(&seen));
        }
    }

    /// Sends a change to one node's sessions only.
    pub fn dispatch_to(&self, node: NodeId, change: &Change) {
        let sessions = self.lock().per_node.get(&node).cloned().unwrap_or_default();
        for s in sessions {
            s.push(change, None);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_count_per_node_and_old_close_does_not_remove_new() {
        let s = Sessions::new();
        let old = s.open(NodeId(1));
        let new = s.open(NodeId(1));
        assert_eq!(s.count(NodeId(1)), 2);
        assert_eq!(
            s.close(&old),
            1,
            "closing the old stream leaves the new one"
        );
        assert_eq!(s.close(&old), 1, "double close is harmless");
        assert_eq!(s.close(&new), 0);
        assert_eq!(s.total(), 0);
    }

    #[tokio::test]
    async fn dispatch_merges_and_wakes() {
        let s = Sessions::new();
        let a = s.open(NodeId(1));
        s.dispatch(&Change::upsert(NodeId(2)));
        s.dispatch(&Change::remove(NodeId(3)));
        // Permit stored: returns immediately.
        tokio::time::timeout(std::time::Duration::from_secs(1), a.notified())
            .await
            .unwrap();
        let c = a.take();
        assert!(c.upserted.contains(&NodeId(2)) && c.removed.contains(&NodeId(3)));
        assert!(a.take().is_empty());
    }

    /// A session gets only its own node of a change's policy set, and a
    /// change that leaves it nothing does not wake it.
    #[tokio::test]
    async fn a_session_keeps_only_its_own_policy_move() {
        let s = Sessions::new();
        let a = s.open(NodeId(1));
        s.dispatch(&Change::policy([NodeId(2), NodeId(3)]));
        assert!(a.take().is_empty(), "not its node: nothing pending");
        let woke = tokio::time::timeout(std::time::Duration::from_millis(50), a.notified()).await;
        assert!(woke.is_err(), "woken for nothing");
        s.dispatch(&Change::policy([NodeId(1), NodeId(2)]));
        assert_eq!(a.take().policy, [NodeId(1)].into());
    }
}
