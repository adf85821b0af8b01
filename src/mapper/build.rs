//! Pure derivation of one node's MapResponses from a World: the full map for
//! a new stream and deltas for merged changes.
//!
//! Every session keeps a [`SentState`] (which peers and user profiles it has
//! sent) so removals are computed, never guessed, and profiles are sent once.
//! Values are always read from the World passed in, i.e. the newest one.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::state::World;
use crate::state::change::{Change, PatchMask};
use crate::tailcfg::{self, FilterRule, MapResponse, PeerChange, UserProfile};
use crate::types::{Node, NodeId};

/// Tailscale's convention (and Headscale's id) for the synthetic owner of
/// tagged nodes.
pub const TAGGED_DEVICES_USER_ID: i64 = 2147455555;

/// What a session has told its client so far.
#[derive(Debug, Clone, Default)]
pub struct SentState {
    pub peers: BTreeSet<NodeId>,
    pub profiles: BTreeSet<i64>,
}

/// Result of building a delta.
#[derive(Debug)]
pub enum Delta {
    Frame(Box<MapResponse>),
    Nothing,
    /// The session's own node is gone: end the stream.
    SelfRemoved,
}

/// The full map for `self_id`; also used mid-stream after a `full` change, in
/// which case `sent` lists what the client had, so vanished peers are removed.
pub fn build_full(
    world: &World,
    self_id: NodeId,
    sent: &mut SentState,
    now: DateTime<Utc>,
) -> Option<MapResponse> {
    let me = world.node(self_id)?;
    let peers: Vec<&Node> = visible_peers(world, me).collect();
    let peer_ids: BTreeSet<NodeId> = peers.iter().map(|p| p.id).collect();
    let peers_removed = sent
        .peers
        .difference(&peer_ids)
        .map(|id| id.0)
        .collect::<Vec<_>>();

    let mut user_ids: BTreeSet<i64> = BTreeSet::new();
    user_ids.insert(owner_id(me));
    user_ids.extend(peers.iter().map(|p| owner_id(p)));
    let user_profiles = user_ids
        .iter()
        .filter_map(|id| profile(world, *id))
        .collect();

    let settings = &world.settings;
    let resp = MapResponse {
        node: Some(tail_node(world, me, now, true)),
        derp_map: Some(settings.derp_map.clone()),
        peers: (!peers.is_empty()).then(|| {
            peers
                .iter()
                .map(|p| tail_node(world, p, now, false))
                .collect()
        }),
        peers_removed,
        dns_config: Some(settings.dns.clone()),
        domain: settings.domain.clone(),
        collect_services: Some(false),
        packet_filters: Some(BTreeMap::from([(
            "base".to_string(),
            vec![FilterRule::allow_all()],
        )])),
        user_profiles,
        control_time: Some(now),
        debug: Some(tailcfg::map::Debug {
            disable_log_tail: true,
        }),
        ..Default::default()
    };
    sent.peers = peer_ids;
    sent.profiles = user_ids;
    Some(resp)
}

/// The delta for one session after `change`.
pub fn build_delta(
    world: &World,
    self_id: NodeId,
    change: &Change,
    sent: &mut SentState,
    now: DateTime<Utc>,
) -> Delta {
    let Some(me) = world.node(self_id) else {
        return Delta::SelfRemoved;
    };
    if change.full {
        return match build_full(world, self_id, sent, now) {
            Some(r) => Delta::Frame(Box::new(r)),
            None => Delta::SelfRemoved,
        };
    }
    let mut resp = MapResponse::default();
    let mut new_profiles: BTreeSet<i64> = BTreeSet::new();

    if change.upserted.contains(&self_id) {
        resp.node = Some(tail_node(world, me, now, true));
        new_profiles.insert(owner_id(me));
    }
    for id in change.upserted.iter().filter(|id| **id != self_id) {
        match world.node(*id).filter(|p| peer_visible(me, p)) {
            Some(p) => {
                resp.peers_changed.push(tail_node(world, p, now, false));
                new_profiles.insert(owner_id(p));
                sent.peers.insert(*id);
            }
            None => {
                if sent.peers.remove(id) {
                    resp.peers_removed.push(id.0);
                }
            }
        }
    }
    for id in &change.removed {
        if sent.peers.remove(id) {
            resp.peers_removed.push(id.0);
        }
    }
    for (id, mask) in &change.patched {
        if *id == self_id || !sent.peers.contains(id) {
            continue;
        }
        if let Some(p) = world.node(*id) {
            resp.peers_changed_patch.push(peer_patch(world, p, *mask));
        }
    }
    if change.users {
        // Names may have changed: re-send every profile the client holds.
        new_profiles.extend(sent.profiles.iter().copied());
    }
    for id in new_profiles {
        if (change.users || !sent.profiles.contains(&id))
            && let Some(p) = profile(world, id)
        {
            resp.user_profiles.push(p);
            sent.profiles.insert(id);
        }
    }
    if resp.is_empty_delta() {
        return Delta::Nothing;
    }
    resp.control_time = Some(now);
    Delta::Frame(Box::new(resp))
}

/// Until the policy engine lands every node sees every other node.
fn visible_peers<'a>(world: &'a World, me: &'a Node) -> impl Iterator<Item = &'a Node> + 'a {
    world
        .nodes
        .values()
        .map(|n| n.as_ref())
        .filter(move |p| peer_visible(me, p))
}

fn peer_visible(me: &Node, peer: &Node) -> bool {
    me.id != peer.id
}

fn owner_id(n: &Node) -> i64 {
    if n.is_tagged() {
        TAGGED_DEVICES_USER_ID
    } else {
        n.user_id.0
    }
}

fn profile(world: &World, id: i64) -> Option<UserProfile> {
    if id == TAGGED_DEVICES_USER_ID {
        return Some(UserProfile {
            id,
            login_name: "tagged-devices".into(),
            display_name: "Tagged Devices".into(),
        });
    }
    let u = world.user(crate::types::UserId(id))?;
    Some(UserProfile {
        id,
        login_name: u.login_name().to_string(),
        display_name: u.display().to_string(),
    })
}

fn key_string<K: std::fmt::Display>(k: &K, zero: bool) -> Option<String> {
    (!zero).then(|| k.to_string())
}

/// Converts a node for the wire; `is_self` selects the self-node view.
pub fn tail_node(world: &World, n: &Node, now: DateTime<Utc>, is_self: bool) -> tailcfg::Node {
    let online = world.is_online(n.id);
    let expired = n.is_expired(now);
    tailcfg::Node {
        id: n.id.0,
        stable_id: format!("n{}", n.id.0),
        name: n.given_name.fqdn(&world.settings.base_domain),
        user: owner_id(n),
        key: n.node_key.to_string(),
        key_expiry: n.expiry,
        machine: Some(n.machine_key.to_string()),
        disco_key: key_string(&n.disco_key, n.disco_key.is_zero()),
        addresses: n.prefixes(),
        allowed_ips: None,
        endpoints: if is_self { vec![] } else { n.endpoints.clone() },
        home_derp: n.home_derp,
        legacy_derp: if n.home_derp > 0 {
            format!("127.3.3.40:{}", n.home_derp)
        } else {
            String::new()
        },
        hostinfo: Some(n.hostinfo.clone()),
        created: Some(n.created_at),
        cap: n.cap_version,
        tags: n.tags.clone(),
        primary_routes: vec![],
        last_seen: if online { None } else { n.last_seen },
        online: (!is_self).then_some(online),
        machine_authorized: !expired,
        cap_map: BTreeMap::new(),
        expired,
        sharer: 0,
    }
}

fn peer_patch(world: &World, p: &Node, mask: PatchMask) -> PeerChange {
    let PatchMask {
        endpoints,
        derp,
        disco,
        online,
        key,
        key_expiry,
    } = mask;
    let is_online = world.is_online(p.id);
    PeerChange {
        node_id: p.id.0,
        derp_region: if derp { p.home_derp } else { 0 },
        endpoints: endpoints.then(|| p.endpoints.clone()),
        key: key.then(|| p.node_key.to_string()),
        disco_key: if disco && !p.disco_key.is_zero() {
            Some(p.disco_key.to_string())
        } else {
            None
        },
        online: online.then_some(is_online),
        last_seen: if online && !is_online {
            p.last_seen
        } else {
            None
        },
        // A patch cannot say "never expires"; expiry changes that clear the
        // expiry are sent as full upserts instead.
        key_expiry: if key_expiry { p.expiry } else { None },
    }
}

#[cfg(test)]
mod tests;
