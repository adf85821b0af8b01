//! One node's share of the policy, as the mapper needs it: which peers it
//! sees (and with which AllowedIPs/PrimaryRoutes), its packet filter, SSH
//! policy and CapMap (with `https` as `certs` decides). Without a policy
//! every node sees every other node and may reach it, Headscale's default.

use std::borrow::Cow;
use std::sync::Arc;

use crate::certs;
use crate::policy::{CapMap, NodeOutput, PeerOutput};
use crate::state::World;
use crate::tailcfg::{FilterRule, SshPolicy};
use crate::types::{Node, NodeId};

#[derive(Debug, Clone)]
pub struct View {
    /// The node's compiled output, shared with the compiled policy (no
    /// copy); `None`: no policy, every other node is a peer.
    out: Option<Arc<NodeOutput>>,
    pub filter: Arc<Vec<FilterRule>>,
    pub ssh: Option<SshPolicy>,
    pub cap_map: CapMap,
}

impl View {
    pub fn of(world: &World, me: NodeId) -> View {
        let out = world
            .policy
            .compiled
            .as_ref()
            .and_then(|c| c.node_arc(me.0 as u64));
        match out {
            Some(o) => View {
                filter: o.packet_filter.clone(),
                // `check` rules keep Tailscale's `https://unused/…` URL
                // (`ssh::CHECK_URL_BASE` says why).
                ssh: o.ssh_policy.clone(),
                cap_map: certs::map_caps(world.settings.certs, o.cap_map.clone()),
                out: Some(o),
            },
            None => View {
                out: None,
                filter: Arc::new(vec![FilterRule::allow_all()]),
                ssh: None,
                cap_map: certs::map_caps(world.settings.certs, CapMap::new()),
            },
        }
    }

    pub fn sees(&self, me: NodeId, peer: NodeId) -> bool {
        match &self.out {
            Some(o) => o.peers.contains(peer.0 as u64),
            None => me != peer,
        }
    }

    /// The peers `me` sees, with what each may route.
    pub fn visible<'w>(&'w self, world: &'w World, me: NodeId) -> Vec<(&'w Arc<Node>, Routes<'w>)> {
        match &self.out {
            Some(o) => o
                .peers
                .ids()
                .filter_map(|id| {
                    let n = world.node(NodeId(id as i64))?;
                    Some((n, routed(o, n)))
                })
                .collect(),
            None => world
                .nodes
                .values()
                .filter(|n| n.id != me)
                .map(|n| (n, unless_plain(n, default_peer_output(world, n))))
                .collect(),
        }
    }

    /// The ids of the peers `me` sees, ascending, without looking a node
    /// up: a delta compares them with what the client holds.
    pub fn peer_ids<'w>(
        &'w self,
        world: &'w World,
        me: NodeId,
    ) -> Box<dyn Iterator<Item = NodeId> + 'w> {
        match &self.out {
            Some(o) => Box::new(o.peers.ids().map(|id| NodeId(id as i64))),
            None => Box::new(world.nodes.keys().copied().filter(move |id| *id != me)),
        }
    }

    /// Whether `peer` (seen by `me`) is a plain peer here: it routes its
    /// own addresses only, so the client's copy needs no `AllowedIPs`
    /// check. Decided without the node for most peers.
    pub fn plainly_own(&self, peer: NodeId) -> bool {
        match &self.out {
            Some(o) => o.peers.routed(peer.0 as u64).is_none(),
            None => false,
        }
    }

    /// What `peer` may route as seen by `me` (for a peer in `visible`).
    pub fn peer_routes<'w>(&'w self, world: &World, peer: &Node) -> Routes<'w> {
        match &self.out {
            Some(o) => routed(o, peer),
            None => unless_plain(peer, default_peer_output(world, peer)),
        }
    }
}

/// What a viewer is told a peer routes beyond the peer's node: `None` when
/// that is only its own addresses, the common case, which then costs no
/// allocation and nothing remembered per session.
pub type Routes<'w> = Option<Cow<'w, PeerOutput>>;

/// `peer`'s routes in a compiled policy's `out`, borrowed from it.
fn routed<'w>(out: &'w NodeOutput, peer: &Node) -> Routes<'w> {
    let o = out.peers.routed(peer.id.0 as u64)?;
    (!is_plain(peer, o)).then_some(Cow::Borrowed(o))
}

fn unless_plain(peer: &Node, out: PeerOutput) -> Routes<'static> {
    (!is_plain(peer, &out)).then_some(Cow::Owned(out))
}

/// Without a policy: its addresses, the subnet routes it is the elected
/// primary for (`state::primary`) and the exit routes it serves.
fn default_peer_output(world: &World, n: &Node) -> PeerOutput {
    let mut allowed: Vec<ipnet::IpNet> =
        n.addresses().into_iter().map(ipnet::IpNet::from).collect();
    let primary = world.primaries.of(n.id);
    allowed.extend(primary.iter().copied());
    allowed.extend(
        n.served_routes()
            .into_iter()
            .filter(|r| r.prefix_len() == 0),
    );
    PeerOutput {
        allowed_ips: allowed,
        primary_routes: primary,
    }
}

/// Whether a peer's output says more than "its own addresses": only such
/// peers need their AllowedIPs remembered per session.
fn is_plain(n: &Node, o: &PeerOutput) -> bool {
    o.primary_routes.is_empty()
        && o.allowed_ips.len() == n.addresses().len()
        && o.allowed_ips
            .iter()
            .all(|a| n.addresses().contains(&a.addr()) && a.prefix_len() == a.max_prefix_len())
}
