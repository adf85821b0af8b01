//! The tailnet a policy is compiled against: users and nodes with their
//! addresses, tags and routes, as the control plane knows them.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub users: Vec<TopoUser>,
    pub nodes: Vec<TopoNode>,
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
