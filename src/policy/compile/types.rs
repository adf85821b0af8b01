//! What compilation produces for one node, and the answer to "why is this
//! allowed": the types the rest of the server consumes (mapper, whois,
//! CLI). Plain data.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::policy::model::CapMap;
use crate::tailcfg::{FilterRule, SshPolicy};

#[derive(Debug, Clone, PartialEq)]
pub struct NodeOutput {
    pub packet_filter: Arc<Vec<FilterRule>>,
    pub peers: Peers,
    pub ssh_policy: Option<SshPolicy>,
    pub cap_map: CapMap,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerOutput {
    pub allowed_ips: Vec<IpNet>,
    pub primary_routes: Vec<IpNet>,
}

impl PeerOutput {
    /// The output of a peer that routes only its own addresses (host
    /// prefixes, in the order given), the common case.
    pub fn own(addresses: &[IpAddr]) -> PeerOutput {
        PeerOutput {
            allowed_ips: addresses.iter().map(|a| IpNet::from(*a)).collect(),
            primary_routes: Vec::new(),
        }
    }

    /// Whether this is `PeerOutput::own(addresses)` (without building it:
    /// asked for each visible peer with routes or a withheld address when
    /// a node's output is computed).
    pub fn is_own(&self, addresses: &[IpAddr]) -> bool {
        self.primary_routes.is_empty()
            && self.allowed_ips.len() == addresses.len()
            && self
                .allowed_ips
                .iter()
                .zip(addresses)
                .all(|(net, a)| *net == IpNet::from(*a))
    }
}

/// The peers one node sees. Most peers route only their own addresses, so
/// only the others keep a `PeerOutput`; the rest are an id each (8 bytes
/// instead of a map entry and a heap list: at 10,000 nodes of 100 peers
/// this table was a sixth of the server's memory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peers {
    /// Every peer, ascending.
    ids: Box<[u64]>,
    /// Peers whose output is not `PeerOutput::own` of their addresses,
    /// ascending by id.
    routed: Box<[(u64, PeerOutput)]>,
}

impl Peers {
    /// From every peer's id and the outputs of those that are not
    /// `PeerOutput::own`, in any order.
    pub(crate) fn from_parts(mut ids: Vec<u64>, mut routed: Vec<(u64, PeerOutput)>) -> Peers {
        ids.sort_unstable();
        ids.dedup();
        routed.sort_unstable_by_key(|(id, _)| *id);
        routed.dedup_by_key(|(id, _)| *id);
        Peers {
            ids: ids.into(),
            routed: routed.into(),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.ids.binary_search(&id).is_ok()
    }

    /// Every peer's id, ascending.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.ids.iter().copied()
    }

    /// The output of peer `id` when it is more than its own addresses
    /// (routes, or an address withheld); `None` for a plain peer or a
    /// node that is not a peer (see `contains`).
    pub fn routed(&self, id: u64) -> Option<&PeerOutput> {
        let i = self.routed.binary_search_by_key(&id, |(p, _)| *p).ok()?;
        Some(&self.routed[i].1)
    }

    /// Every peer with its output, given each peer's addresses.
    pub fn outputs<'a, F>(
        &'a self,
        mut addresses: F,
    ) -> impl Iterator<Item = (u64, PeerOutput)> + 'a
    where
        F: FnMut(u64) -> Vec<IpAddr> + 'a,
    {
        self.ids().map(move |id| {
            let out = match self.routed(id) {
                Some(o) => o.clone(),
                None => PeerOutput::own(&addresses(id)),
            };
            (id, out)
        })
    }
}

/// Why traffic is or is not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub allowed: bool,
    /// Rules that allow it (`acls[2]`, `grants[0]`), or a reason when none.
    pub rules: Vec<String>,
    pub reason: String,
    /// The `deny` rule (`acls[3]`) that decides it, when one does.
    pub denied_by: Option<String>,
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.allowed {
            write!(f, "allowed by {}", self.rules.join(", "))
        } else if let Some(rule) = &self.denied_by {
            write!(f, "denied by {rule} (a deny rule)")
        } else {
            write!(f, "denied: {}", self.reason)
        }
    }
}
