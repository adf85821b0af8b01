//! HA subnet routers: the election of one primary router per subnet prefix.
//!
//! When several nodes serve the same subnet prefix (advertised and
//! approved), clients route it through one of them only, the primary: its
//! peers get the prefix in its `AllowedIPs` and `PrimaryRoutes`, the other
//! servers are standbys. The rules, as Tailscale's failover has them
//! ("one connector is used at a time by all clients; if it goes offline
//! another connector is used"; oldest first) and Headscale's
//! `hscontrol/routes/primary.go` implements them:
//!
//! - A primary keeps its prefix while it is online and still serves it: a
//!   standby that comes (back) online never takes it over, so traffic does
//!   not move twice per outage.
//! - When the primary goes offline, stops serving the prefix (approval
//!   revoked, no longer advertised) or leaves the tailnet (deleted,
//!   expired, unapproved), the online server with the lowest node id takes
//!   over. Ids grow with enrolment, so that is the oldest one, Tailscale's
//!   order; it also makes simultaneous arrivals deterministic.
//! - With no online server left, an offline primary keeps its prefix:
//!   losing the control connection does not mean its data plane is down,
//!   and dropping the route would cut traffic that may still flow. It is
//!   handed over as soon as another server is online.
//! - Nothing is stored: after a server restart nobody is online and
//!   nobody is primary; the first server of a prefix to connect becomes its
//!   primary.
//! - Exit routes (`0.0.0.0/0`, `::/0`) are not elected: every approved exit
//!   node is usable, and clients pick one themselves.
//!
//! The election lives in the World and is moved only by the writer
//! (`Core::follow_routes`, run on every publication): presence changes of
//! nodes that serve a subnet, and route changes (advertised, approved,
//! policy `autoApprovers`) of any node. Presence of a node that serves
//! nothing costs one map lookup. The nodes whose primary routes changed go
//! out as `Change::routes`, so sessions re-send just those peers, and into
//! the policy's topology (`TopoNode::primary_routes`).

use std::collections::BTreeSet;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};
use ipnet::IpNet;

use super::World;
use super::change::Change;
use super::policy::auto_approved;
use super::writer::Core;
use crate::types::{Node, NodeId};

/// The election state: who serves which subnet prefix, and who is primary.
/// Persistent maps, so cloning it with a World is O(1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Primaries {
    /// Per node serving at least one subnet prefix: those prefixes, sorted.
    served: OrdMap<NodeId, Arc<Vec<IpNet>>>,
    /// Per prefix: every node serving it, online or not.
    servers: OrdMap<IpNet, OrdSet<NodeId>>,
    /// Per prefix: its primary.
    primary: OrdMap<IpNet, NodeId>,
}

impl Primaries {
    /// The subnet prefixes `id` is primary for, sorted.
    pub fn of(&self, id: NodeId) -> Vec<IpNet> {
        self.served.get(&id).map_or_else(Vec::new, |routes| {
            routes
                .iter()
                .filter(|r| self.primary.get(*r) == Some(&id))
                .copied()
                .collect()
        })
    }

    /// The primary for `prefix`, if anyone serves it.
    pub fn primary(&self, prefix: &IpNet) -> Option<NodeId> {
        self.primary.get(prefix).copied()
    }

    /// The subnet prefixes `id` serves (primary or standby).
    pub fn served(&self, id: NodeId) -> &[IpNet] {
        match self.served.get(&id) {
            Some(r) => r.as_slice(),
            None => &[],
        }
    }

    /// Records that `id` serves `routes` (exit routes are dropped); returns
    /// the prefixes whose set of servers changed.
    pub fn set_served(&mut self, id: NodeId, routes: &[IpNet]) -> BTreeSet<IpNet> {
        let mut new: Vec<IpNet> = routes.iter().filter(|r| !is_exit(r)).copied().collect();
        new.sort();
        new.dedup();
        let old = self.served(id).to_vec();
        if old == new {
            return BTreeSet::new();
        }
        let mut touched = BTreeSet::new();
        for r in old.iter().filter(|r| !new.contains(r)) {
            if let Some(set) = self.servers.get_mut(r) {
                set.remove(&id);
                if set.is_empty() {
                    self.servers.remove(r);
                }
            }
            touched.insert(*r);
        }
        for r in new.iter().filter(|r| !old.contains(r)) {
            self.servers.entry(*r).or_default().insert(id);
            touched.insert(*r);
        }
        if new.is_empty() {
            self.served.remove(&id);
        } else {
            self.served.insert(id, Arc::new(new));
        }
        touched
    }

    /// Re-runs the election of `prefixes`. `online` says whether a node is
    /// online and `usable` whether it may serve at all (active in the
    /// tailnet). Returns the nodes whose primary routes changed (the old and
    /// the new primary of every prefix that moved).
    pub fn elect(
        &mut self,
        prefixes: impl IntoIterator<Item = IpNet>,
        online: impl Fn(NodeId) -> bool,
        usable: impl Fn(NodeId) -> bool,
    ) -> BTreeSet<NodeId> {
        let mut moved = BTreeSet::new();
        for r in prefixes {
            let current = self.primary.get(&r).copied();
            let next = match self.servers.get(&r) {
                None => None,
                Some(servers) => {
                    let serving = |id: &NodeId| servers.contains(id) && usable(*id);
                    match current.filter(&serving) {
                        Some(c) if online(c) => Some(c),
                        kept => servers
                            .iter()
                            .copied()
                            .find(|id| usable(*id) && online(*id))
                            .or(kept),
                    }
                }
            };
            if next == current {
                continue;
            }
            match next {
                Some(n) => self.primary.insert(r, n),
                None => self.primary.remove(&r),
            };
            moved.extend(current);
            moved.extend(next);
        }
        moved
    }

    /// The election for `w` from scratch: everyone's served routes, then
    /// every prefix elected (at boot nobody is online, so nobody is primary
    /// until a server connects).
    pub(super) fn of_world(w: &World, now: chrono::DateTime<chrono::Utc>) -> Primaries {
        let mut p = Primaries::default();
        let mut prefixes = BTreeSet::new();
        for n in w.nodes.values() {
            prefixes.extend(p.set_served(n.id, &served_by(w, n)));
        }
        p.elect(
            prefixes,
            |id| w.is_online(id),
            |id| w.node(id).is_some_and(|n| n.is_active(now)),
        );
        p
    }
}

fn is_exit(r: &IpNet) -> bool {
    r.prefix_len() == 0
}

/// The subnet routes `n` may serve in `w`: advertised, and approved by an
/// operator or by the policy's `autoApprovers` (a policy installed after
/// the route was advertised approves it without storing the approval, as
/// the compiled policy does).
fn served_by(w: &World, n: &Node) -> Vec<IpNet> {
    let advertised: Vec<IpNet> = n
        .routable_ips()
        .into_iter()
        .filter(|r| !is_exit(r))
        .collect();
    let mut served: Vec<IpNet> = advertised
        .iter()
        .filter(|r| n.approved_routes.contains(r))
        .copied()
        .collect();
    if served.len() < advertised.len() {
        for r in auto_approved(w, n) {
            if advertised.contains(&r) && !served.contains(&r) {
                served.push(r);
            }
        }
    }
    served
}

impl Core {
    /// Moves the election along with a World about to be published and
    /// adds the nodes whose primary routes changed to `change.routes`.
    ///
    /// Served routes are recomputed for nodes `change` upserts or removes
    /// (everyone's when the policy or the users changed: `autoApprovers`
    /// may approve differently); the election then reruns for the prefixes
    /// those nodes serve or served, and for those of every server whose
    /// presence changed.
    pub(super) fn follow_routes(&self, next: &mut World, change: &mut Change) {
        let old = &self.world;
        let policy_moved = !same_text(&old.policy.text, &next.policy.text) || change.users;
        let refresh: Vec<NodeId> = if change.full || policy_moved {
            let mut ids: BTreeSet<NodeId> = old.primaries.served.keys().copied().collect();
            ids.extend(
                next.nodes
                    .values()
                    .filter(|n| !n.routable_ips().is_empty())
                    .map(|n| n.id),
            );
            ids.into_iter().collect()
        } else {
            change
                .upserted
                .iter()
                .chain(&change.removed)
                .copied()
                .collect()
        };
        let presence = change
            .patched
            .iter()
            .filter(|(_, m)| m.online)
            .map(|(id, _)| *id);
        let served: Vec<(NodeId, Vec<IpNet>)> = refresh
            .iter()
            .map(|id| {
                let routes = next.node(*id).map_or_else(Vec::new, |n| served_by(next, n));
                (*id, routes)
            })
            .collect();
        let mut prefixes = BTreeSet::new();
        let primaries = &mut next.primaries;
        for (id, routes) in served {
            // Still serving the same routes, an upserted node may have
            // become unusable (expired, unapproved): re-elect them too.
            prefixes.extend(primaries.served(id).iter().copied());
            prefixes.extend(primaries.set_served(id, &routes));
        }
        for id in presence {
            prefixes.extend(primaries.served(id).iter().copied());
        }
        if prefixes.is_empty() {
            return;
        }
        let now = self.now();
        let (online, nodes) = (&next.online, &next.nodes);
        let moved = next.primaries.elect(
            prefixes,
            |id| online.contains(&id),
            |id| nodes.get(&id).is_some_and(|n| n.is_active(now)),
        );
        if !moved.is_empty() {
            tracing::info!(nodes = ?moved, "subnet router primaries changed");
        }
        change.routes.extend(moved);
    }
}

fn same_text(a: &Option<Arc<str>>, b: &Option<Arc<str>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
