//! The tailnet a policy is compiled against: users and nodes with their
//! addresses, tags and routes, as the control plane knows them.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

/// Nodes and the user list are shared (`Arc`): the topology after a
/// change is the one before with the changed nodes replaced, so a batch
/// of joins costs its joins, not a copy of every node and user, and an
/// unchanged user list compares equal by pointer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    pub users: Arc<Vec<TopoUser>>,
    pub nodes: Vec<Arc<TopoNode>>,
}

impl Topology {
    pub fn new(users: Vec<TopoUser>, nodes: Vec<TopoNode>) -> Topology {
        Topology {
            users: Arc::new(users),
            nodes: nodes.into_iter().map(Arc::new).collect(),
        }
    }

    /// Node `id`, in a topology whose nodes are sorted by id (as the
    /// state's are; `with_nodes` checks it in debug builds).
    pub fn node(&self, id: u64) -> Option<&Arc<TopoNode>> {
        let i = self.nodes.binary_search_by_key(&id, |n| n.id).ok()?;
        Some(&self.nodes[i])
    }

    /// This topology (nodes sorted by id) with `upserts` put in place of
    /// the nodes with their ids (or added) and the nodes `removed` gone;
    /// every other node is shared, not copied.
    pub fn with_nodes(
        &self,
        users: Arc<Vec<TopoUser>>,
        upserts: Vec<TopoNode>,
        removed: &[u64],
    ) -> Topology {
        debug_assert!(self.nodes.is_sorted_by_key(|n| n.id));
        let mut nodes = self.nodes.clone();
        for &id in removed {
            if let Ok(i) = nodes.binary_search_by_key(&id, |n| n.id) {
                nodes.remove(i);
            }
        }
        for n in upserts {
            match nodes.binary_search_by_key(&n.id, |x| x.id) {
                Ok(i) => nodes[i] = Arc::new(n),
                Err(i) => nodes.insert(i, Arc::new(n)),
            }
        }
        Topology { users, nodes }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopoUser {
    pub id: u64,
    pub name: String,
    pub login: String,
    /// The identity provider's groups for this user (OpenID Connect groups
    /// claim), matched by `oidc:NAME` group members.
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopoNode {
    pub id: u64,
    pub name: String,
    pub hostname: String,
    pub user: Option<u64>,
    pub tags: Vec<String>,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub routable_ips: Vec<IpNet>,
    pub approved_routes: Vec<IpNet>,
    /// HA election result (control-plane state, not policy): the subnet
    /// routes this node is primary for. `None` = let the engine elect: for
    /// each approved prefix not claimed by any node's `Some(..)`, the lowest
    /// id among the nodes that have it approved.
    pub primary_routes: Option<Vec<IpNet>>,
}
