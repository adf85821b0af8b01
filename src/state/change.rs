//! Typed descriptions of what changed in a new World, so map sessions can send
//! exactly the matching delta instead of rebuilding everyone's full map.
//!
//! `merge` is associative and commutative (a session that was slow to wake
//! simply merges several changes into one delta); the values themselves are
//! always read from the newest World when the delta is built, so merging never
//! has to pick between old and new values.

use std::collections::{BTreeMap, BTreeSet};

use crate::types::NodeId;

/// Light, patchable fields of a node (`PeersChangedPatch`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PatchMask {
    pub endpoints: bool,
    pub derp: bool,
    pub disco: bool,
    pub online: bool,
    pub key: bool,
    pub key_expiry: bool,
}

impl PatchMask {
    pub fn merge(self, o: PatchMask) -> PatchMask {
        let PatchMask {
            endpoints,
            derp,
            disco,
            online,
            key,
            key_expiry,
        } = o;
        PatchMask {
            endpoints: self.endpoints || endpoints,
            derp: self.derp || derp,
            disco: self.disco || disco,
            online: self.online || online,
            key: self.key || key,
            key_expiry: self.key_expiry || key_expiry,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == PatchMask::default()
    }
}

/// Why a change happened; used for metrics labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NodeRegistered,
    NodeUpdated,
    NodeRemoved,
    Presence,
    UserChanged,
    Settings,
    Policy,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NodeRegistered => "node_registered",
            Reason::NodeUpdated => "node_updated",
            Reason::NodeRemoved => "node_removed",
            Reason::Presence => "presence",
            Reason::UserChanged => "user_changed",
            Reason::Settings => "settings",
            Reason::Policy => "policy",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// Everything may have changed: send a full map.
    pub full: bool,
    /// Nodes whose structural fields changed (name, addresses, tags, user,
    /// hostinfo…) or that are new: send the whole node.
    pub upserted: BTreeSet<NodeId>,
    /// Nodes that no longer exist.
    pub removed: BTreeSet<NodeId>,
    /// Nodes with only light changes.
    pub patched: BTreeMap<NodeId, PatchMask>,
    /// User records changed (profiles must be re-sent).
    pub users: bool,
    /// Nodes whose policy output (packet filter, visible peers, routes,
    /// SSH policy, CapMap) may differ: their sessions recompute and diff it.
    pub policy: BTreeSet<NodeId>,
    /// The World's `Settings` (DNS config, DERP map) were replaced: every
    /// session compares what it sent with the new value.
    pub settings: bool,
    /// Nodes whose primary subnet routes changed (HA election,
    /// `state::primary`): their `AllowedIPs`/`PrimaryRoutes` as peers, and
    /// their own `PrimaryRoutes`, may differ.
    pub routes: BTreeSet<NodeId>,
}

impl Change {
    pub fn full() -> Self {
        Change {
            full: true,
            ..Default::default()
        }
    }

    pub fn upsert(id: NodeId) -> Self {
        let mut c = Change::default();
        c.upserted.insert(id);
        c
    }

    pub fn remove(id: NodeId) -> Self {
        let mut c = Change::default();
        c.removed.insert(id);
        c
    }

    pub fn patch(id: NodeId, mask: PatchMask) -> Self {
        let mut c = Change::default();
        if !mask.is_empty() {
            c.patched.insert(id, mask);
        }
        c
    }

    pub fn policy(ids: impl IntoIterator<Item = NodeId>) -> Self {
        Change {
            policy: ids.into_iter().collect(),
            ..Default::default()
        }
    }

    pub fn routes(ids: impl IntoIterator<Item = NodeId>) -> Self {
        Change {
            routes: ids.into_iter().collect(),
            ..Default::default()
        }
    }

    pub fn users() -> Self {
        Change {
            users: true,
            ..Default::default()
        }
    }

    pub fn settings() -> Self {
        Change {
            settings: true,
            ..Default::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.patches_only() && self.patched.is_empty()
    }

    /// Whether all this change says is that nodes came online or went
    /// offline: what a reconnect storm is made of, and what map streams
    /// may hold back longer than anything else (`control::map`).
    pub fn presence_only(&self) -> bool {
        let online = PatchMask {
            online: true,
            ..PatchMask::default()
        };
        self.patches_only()
            && !self.patched.is_empty()
            && self.patched.values().all(|m| *m == online)
    }

    /// Whether nothing but `patched` may be set.
    fn patches_only(&self) -> bool {
        !self.full
            && !self.users
            && !self.settings
            && self.upserted.is_empty()
            && self.removed.is_empty()
            && self.policy.is_empty()
            && self.routes.is_empty()
    }

    /// What of this change a session of node `me` acts on: the flags, the
    /// node ids in `only` (all of them for `None`), and of `policy` only
    /// whether `me` is in it (a session reads nothing else there). Built
    /// from `only` when given, so its cost is `only`'s size, not the
    /// change's.
    pub fn subset(&self, me: NodeId, only: Option<&[NodeId]>) -> Change {
        let ids = |set: &BTreeSet<NodeId>| match only {
            None => set.clone(),
            Some(only) => only.iter().copied().filter(|id| set.contains(id)).collect(),
        };
        Change {
            full: self.full,
            upserted: ids(&self.upserted),
            removed: ids(&self.removed),
            patched: match only {
                None => self.patched.clone(),
                Some(only) => only
                    .iter()
                    .filter_map(|id| self.patched.get(id).map(|&m| (*id, m)))
                    .collect(),
            },
            users: self.users,
            policy: if self.policy.contains(&me) {
                BTreeSet::from([me])
            } else {
                BTreeSet::new()
            },
            settings: self.settings,
            routes: ids(&self.routes),
        }
    }

    /// Folds `other` into `self`. A node that is removed supersedes earlier
    /// upserts/patches; a later upsert of a removed id (re-created) wins over
    /// the removal; an upsert subsumes patches.
    pub fn merge(&mut self, other: Change) {
        let Change {
            full,
            upserted,
            removed,
            patched,
            users,
            policy,
            settings,
            routes,
        } = other;
        self.full |= full;
        self.routes.extend(routes);
        self.settings |= settings;
        self.policy.extend(policy);
        self.users |= users;
        for id in removed {
            self.upserted.remove(&id);
            self.patched.remove(&id);
            self.removed.insert(id);
        }
        for id in upserted {
            self.removed.remove(&id);
            self.patched.remove(&id);
            self.upserted.insert(id);
        }
        for (id, mask) in patched {
            if self.upserted.contains(&id) || self.removed.contains(&id) {
                continue;
            }
            let m = self.patched.entry(id).or_default();
            *m = m.merge(mask);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: i64) -> NodeId {
        NodeId(i)
    }

    fn merged(a: Change, b: Change) -> Change {
        let mut x = a;
        x.merge(b);
        x
    }

    #[test]
    fn upsert_subsumes_patch_and_remove_supersedes_upsert() {
        let online = PatchMask {
            online: true,
            ..Default::default()
        };
        let c = merged(Change::patch(n(1), online), Change::upsert(n(1)));
        assert!(c.patched.is_empty());
        assert!(c.upserted.contains(&n(1)));
        let c = merged(c, Change::remove(n(1)));
        assert!(c.upserted.is_empty());
        assert!(c.removed.contains(&n(1)));
        let c = merged(c, Change::patch(n(1), online));
        assert!(c.patched.is_empty(), "patch of a removed node is dropped");
    }

    #[test]
    fn patches_accumulate_fields() {
        let a = PatchMask {
            endpoints: true,
            ..Default::default()
        };
        let b = PatchMask {
            derp: true,
            ..Default::default()
        };
        let c = merged(Change::patch(n(2), a), Change::patch(n(2), b));
        assert_eq!(c.patched[&n(2)], a.merge(b));
    }

    #[test]
    fn merge_is_associative_on_samples() {
        let samples = [
            Change::upsert(n(1)),
            Change::remove(n(1)),
            Change::patch(
                n(1),
                PatchMask {
                    disco: true,
                    ..Default::default()
                },
            ),
            Change::users(),
            Change::upsert(n(2)),
            Change::policy([n(1), n(3)]),
            Change::settings(),
            Change::routes([n(2), n(3)]),
        ];
        for a in &samples {
            for b in &samples {
                for c in &samples {
                    let left = merged(merged(a.clone(), b.clone()), c.clone());
                    let right = merged(a.clone(), merged(b.clone(), c.clone()));
                    assert_eq!(left, right, "{a:?} {b:?} {c:?}");
                }
            }
        }
    }
}
