//! Pure derivation of one node's MapResponses from a World: the full map for
//! a new stream and deltas for merged changes.
//!
//! Every session keeps a [`SentState`] (which peers and user profiles it has
//! sent) so removals are computed, never guessed, and profiles are sent once.
//! Values are always read from the World passed in, i.e. the newest one.
//!
//! What is sent depends on the viewer's capability version (the `CAPVER_*`
//! constants in `tailcfg`): explicit `AllowedIPs` below 112, the legacy
//! `DERP` string below 111, a DERP map without certificate pins below 115.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};

use chrono::{DateTime, SubsecRound, Utc};

mod filter;
mod peers;
mod wire;

use self::peers::peers_moved;
use self::wire::{for_viewer, peer_node};
use super::view::View;
use crate::certs;
use crate::policy::{CapMap, PeerOutput};
use crate::state::change::{Change, PatchMask};
use crate::state::policy::PolicyState;
use crate::state::{Certs, Settings, World};
use crate::tailcfg::{
    self, DerpMap, DnsConfig, FilterRule, MapResponse, PeerChange, SshPolicy, UserProfile,
};
use crate::types::{Node, NodeId};

/// Tailscale's convention (and Headscale's id) for the synthetic owner of
/// tagged nodes.
pub const TAGGED_DEVICES_USER_ID: i64 = 2147455555;

/// What a session has told its client so far.
#[derive(Debug, Clone, Default)]
pub struct SentState {
    pub peers: BTreeSet<NodeId>,
    pub profiles: BTreeSet<i64>,
    /// AllowedIPs/PrimaryRoutes sent for peers that route more than their
    /// own addresses (the rest are implied by `peers`).
    pub routes: BTreeMap<NodeId, PeerOutput>,
    pub filter: Option<Arc<Vec<FilterRule>>>,
    pub ssh: Option<SshPolicy>,
    pub caps: CapMap,
    /// The DNSConfig sent, with what it was derived from.
    pub dns: Option<SentDns>,
    /// The DERP map variant sent (shared with the Settings it came from).
    pub derp: Option<Arc<DerpMap>>,
    /// The session's own node as last built from, so its deletion can be
    /// told to the client (see [`Delta::SelfRemoved`]).
    pub me: Option<Arc<Node>>,
    /// Whether the last full map was built for an active node (approved,
    /// key valid): when that flips, the next delta is a full map.
    pub active: bool,
}

impl SentState {
    fn record_peer(&mut self, p: &Node, routes: Option<&PeerOutput>) {
        self.peers.insert(p.id);
        match routes {
            None => {
                self.routes.remove(&p.id);
            }
            Some(o) => {
                self.routes.insert(p.id, o.clone());
            }
        }
    }

    fn forget_peer(&mut self, id: NodeId) -> bool {
        self.routes.remove(&id);
        self.peers.remove(&id)
    }

    /// Whether the client holds `routes` for `p` already (`None`: its own
    /// addresses, as `view::Routes`).
    fn has_peer_routes(&self, p: &Node, routes: Option<&PeerOutput>) -> bool {
        self.routes.get(&p.id) == routes
    }
}

/// A DNSConfig as sent, with the settings, policy and own node it was
/// derived from (held so pointer comparisons tell whether it can have
/// changed: services, extra records and `CertDomains` come from them).
/// The policy is held weakly: a compiled policy is O(nodes) and is
/// replaced with every batch of node changes, so each idle stream pinning
/// the one it last saw kept O(nodes) generations alive (514 KiB per node
/// at 1,000 nodes, team policy). A `Weak` keeps only the allocation, so
/// its address cannot be reused while it is compared.
#[derive(Debug, Clone)]
pub struct SentDns {
    settings: Arc<Settings>,
    policy: Weak<PolicyState>,
    me: Arc<Node>,
    /// What the config was made of: the World's shared config (the same
    /// `Arc` while its content is unchanged, see `World::dns_config`) and,
    /// with certificates on, this node's caps. A new policy generation
    /// (every batch of joins) mostly leaves both equal, and comparing them
    /// is much cheaper than rebuilding this node's config.
    base: Arc<DnsConfig>,
    caps: Option<CapMap>,
    /// Shared with the World's cache unless this node's `CertDomains`
    /// made it its own.
    config: Arc<DnsConfig>,
}

/// Result of building a delta.
#[derive(Debug)]
pub enum Delta {
    Frame(Box<MapResponse>),
    Nothing,
    /// The session's own node is gone: send this last frame (if any), then
    /// end the stream. The frame marks the client's node key as expired, so
    /// the client leaves `Running` for `NeedsLogin` and takes its tailnet
    /// interface down: a map request that fails (the node is unknown from
    /// now on) changes no client state, it only retries
    /// (`control/controlclient/auto.go` `mapRoutine`), whereas an expired
    /// self key does (`ipn/ipnlocal/local.go` `nextStateLocked`).
    SelfRemoved(Option<Box<MapResponse>>),
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
    let viewer = me.cap_version;
    let view = View::of(world, self_id);
    // An unapproved or expired node sees nobody (its client shows
    // NeedsMachineAuth or NeedsLogin), and nobody sees it.
    let peers: Vec<_> = if me.is_active(now) {
        view.visible(world, self_id)
            .into_iter()
            .filter(|(p, _)| p.is_active(now))
            .collect()
    } else {
        Vec::new()
    };
    let peer_ids: BTreeSet<NodeId> = peers.iter().map(|(p, _)| p.id).collect();
    let peers_removed = sent
        .peers
        .difference(&peer_ids)
        .map(|id| id.0)
        .collect::<Vec<_>>();

    let mut user_ids: BTreeSet<i64> = BTreeSet::new();
    user_ids.insert(owner_id(me));
    user_ids.extend(peers.iter().map(|(p, _)| owner_id(p)));
    let user_profiles = user_ids
        .iter()
        .filter_map(|id| profile(world, *id))
        .collect();

    let settings = &world.settings;
    let resp = MapResponse {
        node: Some(self_node(world, me, &view, now)),
        derp_map: derp_now(world, me, sent, true),
        peers: (!peers.is_empty()).then(|| {
            peers
                .iter()
                .map(|(p, routes)| peer_node(world, p, routes.as_deref(), now, viewer))
                .collect()
        }),
        peers_removed,
        dns_config: Some(dns_now(world, me, sent, true).unwrap_or_default()),
        domain: settings.domain.clone(),
        collect_services: Some(false),
        packet_filters: Some(filter::full(&view.filter)),
        ssh_policy: Some(view.ssh.clone().unwrap_or_default()),
        user_profiles,
        control_time: Some(control_time(now)),
        debug: Some(tailcfg::map::Debug {
            disable_log_tail: true,
        }),
        ..Default::default()
    };
    sent.peers = BTreeSet::new();
    sent.routes = BTreeMap::new();
    for (p, routes) in &peers {
        sent.record_peer(p, routes.as_deref());
    }
    debug_assert_eq!(sent.peers, peer_ids);
    sent.profiles = user_ids;
    sent.filter = Some(view.filter.clone());
    sent.ssh = view.ssh.clone();
    sent.caps = view.cap_map.clone();
    sent.me = Some(me.clone());
    sent.active = me.is_active(now);
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
        return Delta::SelfRemoved(farewell(world, sent, now));
    };
    // Becoming (in)active changes every peer at once: rebuild in full,
    // which removes what the client holds.
    if change.full || sent.active != me.is_active(now) {
        return match build_full(world, self_id, sent, now) {
            Some(r) => Delta::Frame(Box::new(r)),
            None => Delta::SelfRemoved(farewell(world, sent, now)),
        };
    }
    let viewer = me.cap_version;
    sent.me = Some(me.clone());
    let mut resp = MapResponse::default();
    let mut new_profiles: BTreeSet<i64> = BTreeSet::new();
    let policy_moved = change.policy.contains(&self_id);
    // The view is only worth computing when something can have moved it.
    let view = (policy_moved || !change.upserted.is_empty() || !change.routes.is_empty())
        .then(|| View::of(world, self_id));

    if let Some(v) = &view
        && (change.upserted.contains(&self_id)
            || change.routes.contains(&self_id)
            || (policy_moved && v.cap_map != sent.caps))
    {
        resp.node = Some(self_node(world, me, v, now));
        new_profiles.insert(owner_id(me));
        sent.caps = v.cap_map.clone();
    }
    if let Some(v) = &view
        && policy_moved
    {
        // Only the chunks that changed (`filter`); an unchanged filter is
        // mostly the same `Arc`, shared with the compiled policy.
        if !sent
            .filter
            .as_ref()
            .is_some_and(|f| Arc::ptr_eq(f, &v.filter))
        {
            resp.packet_filters = match &sent.filter {
                Some(old) => filter::delta(old, &v.filter),
                None => Some(filter::full(&v.filter)),
            };
            sent.filter = Some(v.filter.clone());
        }
        if sent.ssh != v.ssh {
            resp.ssh_policy = Some(v.ssh.clone().unwrap_or_default());
            sent.ssh = v.ssh.clone();
        }
        // Peers the policy now shows, hides, or lets route differently.
        let (shown, gone) = peers_moved(world, v, me, sent, change, now);
        for (p, routes) in &shown {
            let routes = routes.as_deref();
            resp.peers_changed
                .push(peer_node(world, p, routes, now, viewer));
            new_profiles.insert(owner_id(p));
            sent.record_peer(p, routes);
        }
        for id in gone {
            if sent.forget_peer(id) {
                resp.peers_removed.push(id.0);
            }
        }
    }
    // Peers whose primary routes moved (HA failover): re-sent where what
    // they may route for this viewer changed.
    if let Some(v) = &view {
        for id in &change.routes {
            if *id == self_id || change.upserted.contains(id) || !sent.peers.contains(id) {
                continue;
            }
            if let Some(p) = world.node(*id) {
                let routes = v.peer_routes(world, p);
                if !sent.has_peer_routes(p, routes.as_deref()) {
                    resp.peers_changed
                        .push(peer_node(world, p, routes.as_deref(), now, viewer));
                    sent.record_peer(p, routes.as_deref());
                }
            }
        }
    }
    for id in change.upserted.iter().filter(|id| **id != self_id) {
        let shown = view
            .as_ref()
            .filter(|v| v.sees(self_id, *id) && me.is_active(now))
            .and_then(|v| world.node(*id).map(|p| (p, v.peer_routes(world, p))))
            .filter(|(p, _)| p.is_active(now));
        match shown {
            Some((p, routes)) => {
                resp.peers_changed
                    .push(peer_node(world, p, routes.as_deref(), now, viewer));
                new_profiles.insert(owner_id(p));
                sent.record_peer(p, routes.as_deref());
            }
            None => {
                if sent.forget_peer(*id) {
                    resp.peers_removed.push(id.0);
                }
            }
        }
    }
    for id in &change.removed {
        if sent.forget_peer(*id) {
            resp.peers_removed.push(id.0);
        }
    }
    for (id, mask) in &change.patched {
        if *id == self_id || !sent.peers.contains(id) || change.upserted.contains(id) {
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
    resp.dns_config = dns_now(world, me, sent, false);
    resp.derp_map = derp_now(world, me, sent, false);
    if resp.is_empty_delta() {
        return Delta::Nothing;
    }
    resp.control_time = Some(control_time(now));
    Delta::Frame(Box::new(resp))
}

/// `ControlTime` in whole seconds: clients only use it to notice a clock
/// more than a minute off, and the deltas many streams get in the same
/// second are then the same bytes, compressed once (`frame`).
fn control_time(now: DateTime<Utc>) -> DateTime<Utc> {
    now.trunc_subsecs(0)
}

/// The DNSConfig to send: always for a full map; in a delta only when the
/// settings or policy it derives from were replaced and the result differs
/// from what the client holds (service hosts and extra records change it).
fn dns_now(world: &World, me: &Arc<Node>, sent: &mut SentState, full: bool) -> Option<DnsConfig> {
    if let Some(d) = &sent.dns
        && Arc::ptr_eq(&d.settings, &world.settings)
        && std::ptr::eq(d.policy.as_ptr(), Arc::as_ptr(&world.policy))
        && Arc::ptr_eq(&d.me, me)
    {
        return full.then(|| (*d.config).clone());
    }
    let base = world.dns_config();
    let caps = (world.settings.certs != Certs::Off).then(|| certs::policy_caps(world, me));
    if let Some(d) = &mut sent.dns
        && Arc::ptr_eq(&d.base, &base)
        && Arc::ptr_eq(&d.me, me)
        && d.caps == caps
    {
        d.settings = world.settings.clone();
        d.policy = Arc::downgrade(&world.policy);
        return full.then(|| (*d.config).clone());
    }
    let mut config = base.clone();
    if let Some(caps) = &caps {
        Arc::make_mut(&mut config).cert_domains = certs::cert_domains(world, me, caps);
    }
    let changed = sent.dns.as_ref().is_none_or(|d| d.config != config);
    sent.dns = Some(SentDns {
        settings: world.settings.clone(),
        policy: Arc::downgrade(&world.policy),
        me: me.clone(),
        base,
        caps,
        config: config.clone(),
    });
    (full || changed).then(|| (*config).clone())
}

/// The DERP map for this viewer's capability class: always in a full map;
/// in a delta only when it differs from the one the client holds (a
/// refreshed map, or a client that changed class by upgrading).
fn derp_now(world: &World, me: &Node, sent: &mut SentState, full: bool) -> Option<DerpMap> {
    let map = world.settings.derp_map.for_capver(me.cap_version);
    let unchanged = sent
        .derp
        .as_ref()
        .is_some_and(|old| Arc::ptr_eq(old, map) || old == map);
    sent.derp = Some(map.clone());
    (full || !unchanged).then(|| (**map).clone())
}

/// The last frame for a session whose node was deleted: its own node with
/// the key expired, and every peer removed.
fn farewell(world: &World, sent: &mut SentState, now: DateTime<Utc>) -> Option<Box<MapResponse>> {
    let me = sent.me.take()?;
    let mut node = for_viewer(tail_node(world, &me, now, true), me.cap_version);
    // A fixed instant long past, so no clock skew can make it look valid.
    node.key_expiry = Some(DateTime::<Utc>::UNIX_EPOCH);
    node.expired = true;
    let peers_removed = std::mem::take(&mut sent.peers)
        .into_iter()
        .map(|id| id.0)
        .collect();
    sent.routes.clear();
    Some(Box::new(MapResponse {
        node: Some(node),
        peers_removed,
        control_time: Some(control_time(now)),
        ..Default::default()
    }))
}

/// The self node: its CapMap comes from the policy (nodeAttrs), and its
/// AllowedIPs include the routes it serves, as Tailscale sends them.
fn self_node(world: &World, me: &Node, v: &View, now: DateTime<Utc>) -> tailcfg::Node {
    let mut n = tail_node(world, me, now, true);
    n.cap_map = v.cap_map.clone();
    n.primary_routes = world
        .primaries
        .of(me.id)
        .iter()
        .map(ToString::to_string)
        .collect();
    let routes = me.served_routes();
    if !routes.is_empty() {
        let mut allowed = n.addresses.clone();
        allowed.extend(routes.iter().map(ToString::to_string));
        n.allowed_ips = Some(allowed);
    }
    for_viewer(n, me.cap_version)
}

/// The `User` id clients are sent for `n`: its owner, or the tagged-devices
/// user for a tagged node.
pub fn owner_id(n: &Node) -> i64 {
    if n.is_tagged() {
        TAGGED_DEVICES_USER_ID
    } else {
        n.user_id.0
    }
}

/// The `UserProfiles` entry clients are sent for user id `id` (including
/// the synthetic tagged-devices user); `None` for an unknown user.
pub fn profile(world: &World, id: i64) -> Option<UserProfile> {
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
        machine_authorized: n.authorized && !expired,
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
