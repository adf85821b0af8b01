//! One node's share of the policy, as the mapper needs it: which peers it
//! sees (and with which AllowedIPs/PrimaryRoutes), its packet filter, SSH
//! policy and CapMap. Without a policy every node sees every other node and
//! may reach it, Headscale's default.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::policy::{CapMap, PeerOutput};
use crate::state::World;
use crate::tailcfg::{FilterRule, SshPolicy};
use crate::types::{Node, NodeId};

#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// `None`: no policy, every other node is a peer.
    pub peers: Option<BTreeMap<NodeId, PeerOutput>>,
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
            .and_then(|c| c.node(me.0 as u64));
        match out {
            Some(o) => View {
                peers: Some(
                    o.peers
                        .into_iter()
                        .map(|(id, p)| (NodeId(id as i64), p))
                        .collect(),
                ),
                filter: o.packet_filter,
                ssh: o.ssh_policy,
                cap_map: o.cap_map,
            },
            None => View {
                peers: None,
                filter: Arc::new(vec![FilterRule::allow_all()]),
                ssh: None,
                cap_map: CapMap::new(),
            },
        }
    }

    pub fn sees(&self, me: NodeId, peer: NodeId) -> bool {
        match &self.peers {
            Some(p) => p.contains_key(&peer),
            None => me != peer,
        }
    }

    /// The peers `me` sees, with what each may route.
    pub fn visible<'w>(&'w self, world: &'w World, me: NodeId) -> Vec<(&'w Node, PeerOutput)> {
        match &self.peers {
            Some(p) => p
                .iter()
                .filter_map(|(id, out)| Some((world.node(*id)?.as_ref(), out.clone())))
                .collect(),
            None => world
                .nodes
                .values()
                .filter(|n| n.id != me)
                .map(|n| (n.as_ref(), default_peer_output(n)))
                .collect(),
        }
    }

    /// What `peer` may route as seen by `me` (for a peer in `visible`).
    pub fn peer_output(&self, peer: &Node) -> PeerOutput {
        match self.peers.as_ref().and_then(|p| p.get(&peer.id)) {
            Some(o) => o.clone(),
            None => default_peer_output(peer),
        }
    }
}

/// Without a policy: its addresses plus every route it serves.
fn default_peer_output(n: &Node) -> PeerOutput {
    let mut allowed: Vec<ipnet::IpNet> =
        n.addresses().into_iter().map(ipnet::IpNet::from).collect();
    let routes = n.served_routes();
    allowed.extend(routes.iter().copied());
    PeerOutput {
        allowed_ips: allowed,
        primary_routes: routes,
    }
}

/// Whether a peer's output says more than "its own addresses": only such
/// peers need their AllowedIPs remembered per session.
pub fn is_plain(n: &Node, o: &PeerOutput) -> bool {
    o.primary_routes.is_empty()
        && o.allowed_ips.len() == n.addresses().len()
        && o.allowed_ips
            .iter()
            .all(|a| n.addresses().contains(&a.addr()) && a.prefix_len() == a.max_prefix_len())
}
