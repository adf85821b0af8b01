//! What compilation produces for one node, and the answer to "why is this
//! allowed": the types the rest of the server consumes (mapper, whois,
//! CLI). Plain data.

use std::collections::BTreeMap;
use std::sync::Arc;

use ipnet::IpNet;

use crate::policy::model::CapMap;
use crate::tailcfg::{FilterRule, SshPolicy};

#[derive(Debug, Clone, PartialEq)]
pub struct NodeOutput {
    pub packet_filter: Arc<Vec<FilterRule>>,
    pub peers: BTreeMap<u64, PeerOutput>,
    pub ssh_policy: Option<SshPolicy>,
    pub cap_map: CapMap,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerOutput {
    pub allowed_ips: Vec<IpNet>,
    pub primary_routes: Vec<IpNet>,
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
