//! Peers rendered for the wire, shared between streams.
//!
//! A peer's wire form depends on its node, whether it is online and
//! expired, the base domain and the viewer's capability version; and, when
//! it routes more than its own addresses, on the viewer (those are built
//! each time). A join is sent to every stream that sees the newcomer, and
//! each new stream's full map lists every peer, so the same node was built
//! and serialised once per stream. Here a render is kept in a small
//! direct-mapped cache keyed by the node's allocation and reused while
//! that node is unchanged.
//!
//! Hits are exact: an entry holds `Weak` references to the node and the
//! settings it was made from, so neither allocation can be reused for
//! another value while the entry exists; a node that changes is a new
//! `Arc` (the World is copy-on-write) and misses.

use std::sync::{Arc, Mutex, Weak};

use chrono::{DateTime, Utc};

use super::tail_node;
use crate::policy::PeerOutput;
use crate::state::{Settings, World};
use crate::tailcfg::{self, CAPVER_HOME_DERP, CAPVER_NIL_ALLOWED_IPS, Peer};
use crate::types::Node;

/// Slots (a power of two). An entry is 1–3 KiB (halving the slots saved
/// 2–6 MiB of RSS at 1,000 nodes), so the cache holds up to about 12 MiB;
/// 4,096 covers the peer list of a full map at 1,000 nodes with room for
/// the nodes a burst of joins is fanning out (2,048 cost 6 % more server
/// CPU there).
const SLOTS: usize = 4096;

/// The wire form of peer `p` for a viewer of capability version `viewer`,
/// with `routes` when it routes more than its own addresses for this
/// viewer.
pub(super) fn peer_node(
    world: &World,
    p: &Arc<Node>,
    routes: Option<&PeerOutput>,
    now: DateTime<Utc>,
    viewer: i32,
) -> Peer {
    if routes.is_some() {
        return Peer::new(render(world, p, routes, now, viewer));
    }
    let key = Key {
        online: world.is_online(p.id),
        expired: p.is_expired(now),
        shape: Shape::of(viewer),
    };
    let slot = &CACHE.slots[key.slot(p)];
    if let Some(hit) = cached(slot, p, key, &world.settings) {
        return hit;
    }
    let peer = Peer::new(render(world, p, None, now, viewer));
    *lock(slot) = Some(Entry {
        node: Arc::downgrade(p),
        settings: Arc::downgrade(&world.settings),
        key,
        peer: peer.clone(),
    });
    peer
}

fn render(
    world: &World,
    p: &Node,
    routes: Option<&PeerOutput>,
    now: DateTime<Utc>,
    viewer: i32,
) -> tailcfg::Node {
    let mut n = tail_node(world, p, now, false);
    if let Some(out) = routes {
        n.allowed_ips = Some(out.allowed_ips.iter().map(ToString::to_string).collect());
        n.primary_routes = out.primary_routes.iter().map(ToString::to_string).collect();
    }
    for_viewer(n, viewer)
}

/// Gives a node the shape a viewer of capability version `viewer` reads
/// correctly: older clients take a nil `AllowedIPs` for "route nothing"
/// and know the home region only from the legacy `DERP` string; newer ones
/// need neither.
pub(super) fn for_viewer(mut n: tailcfg::Node, viewer: i32) -> tailcfg::Node {
    if viewer < CAPVER_NIL_ALLOWED_IPS && n.allowed_ips.is_none() {
        n.allowed_ips = Some(n.addresses.clone());
    }
    if viewer >= CAPVER_HOME_DERP {
        n.legacy_derp = String::new();
    }
    n
}

/// What [`for_viewer`] distinguishes in a capability version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shape {
    explicit_allowed_ips: bool,
    legacy_derp: bool,
}

impl Shape {
    pub(super) fn of(viewer: i32) -> Shape {
        Shape {
            explicit_allowed_ips: viewer < CAPVER_NIL_ALLOWED_IPS,
            legacy_derp: viewer < CAPVER_HOME_DERP,
        }
    }
}

/// Everything besides the node and the settings a render depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Key {
    pub online: bool,
    pub expired: bool,
    pub shape: Shape,
}

impl Key {
    fn slot(&self, p: &Arc<Node>) -> usize {
        // Allocations are at least 8-aligned; a multiplicative hash spreads
        // the address bits that vary.
        let addr = Arc::as_ptr(p) as usize as u64 >> 3;
        let bits = u64::from(self.online)
            | u64::from(self.expired) << 1
            | u64::from(self.shape.explicit_allowed_ips) << 2
            | u64::from(self.shape.legacy_derp) << 3;
        let h = (addr ^ bits << 60).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 52) as usize % SLOTS
    }
}

pub(super) struct Entry {
    pub node: Weak<Node>,
    pub settings: Weak<Settings>,
    pub key: Key,
    pub peer: Peer,
}

impl Entry {
    fn holds(&self, p: &Arc<Node>, settings: &Arc<Settings>) -> bool {
        // `p` and `settings` are alive, and the weak references keep the
        // cached allocations from being reused: equal addresses are the
        // same values.
        std::ptr::eq(self.node.as_ptr(), Arc::as_ptr(p))
            && std::ptr::eq(self.settings.as_ptr(), Arc::as_ptr(settings))
    }
}

/// The render in `slot` if it was made for `p` and `key` with `settings`.
pub(super) fn cached(
    slot: &Mutex<Option<Entry>>,
    p: &Arc<Node>,
    key: Key,
    settings: &Arc<Settings>,
) -> Option<Peer> {
    lock(slot)
        .as_ref()
        .filter(|e| e.key == key && e.holds(p, settings))
        .map(|e| e.peer.clone())
}

struct Cache {
    slots: Vec<Mutex<Option<Entry>>>,
}

static CACHE: std::sync::LazyLock<Cache> = std::sync::LazyLock::new(|| Cache {
    slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
});

fn lock(slot: &Mutex<Option<Entry>>) -> std::sync::MutexGuard<'_, Option<Entry>> {
    // An entry is written whole; a panic elsewhere cannot leave one torn.
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
