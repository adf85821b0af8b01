//! The typed policy (`Doc`), what it is compiled against (`Topology`) and
//! the error every stage reports (`PolicyError`). Plain data: the bottom
//! layer of `policy`, depending on nothing else in it. `syntax` builds a
//! `Doc` (ACL entries are lowered to the same `Rule` shape as grants, as
//! Tailscale does internally); `resolve`, `compile` and `check` read it.

pub mod alias;
pub mod error;
pub mod topology;

use std::collections::BTreeMap;

use ipnet::IpNet;

pub use alias::Alias;
pub use error::PolicyError;
pub use topology::{TopoNode, TopoUser, Topology};

/// A CapMap (`tailcfg.NodeCapMap` / `PeerCapMap`): capability → values.
pub type CapMap = BTreeMap<String, Vec<serde_json::Value>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ports {
    pub first: u16,
    pub last: u16,
}

pub const ALL_PORTS: Ports = Ports {
    first: 0,
    last: 65535,
};

/// One destination of a rule: selector, ports, IP protocols (empty = default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dst {
    pub alias: Alias,
    pub ports: Vec<Ports>,
    pub protos: Vec<i32>,
    /// Only these addresses of what `alias` stands for (`None`: all of
    /// them). Never written in a policy: set when `compile::deny` carves
    /// the destinations of an earlier `deny` rule out of an accept.
    pub mask: Option<Vec<IpNet>>,
}

impl Dst {
    /// A destination as written in a policy (no mask).
    pub fn new(alias: Alias, ports: Vec<Ports>, protos: Vec<i32>) -> Dst {
        Dst {
            alias,
            ports,
            protos,
            mask: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// An `acls` entry with `"action": "deny"` (our extension): traffic it
    /// matches is refused by it unless an earlier `acls` entry accepted it.
    pub deny: bool,
    pub src: Vec<Alias>,
    /// Network destinations (from `acls[].dst` or `grants[].dst` × `ip`).
    pub dsts: Vec<Dst>,
    /// Destination selectors for `app` capabilities.
    pub app_dsts: Vec<Alias>,
    pub app: Option<CapMap>,
    pub via: Vec<String>,
    /// Position in the source for explanations ("acls[3]").
    pub origin: String,
}

#[derive(Debug, Clone)]
pub struct NodeAttr {
    pub target: Vec<Alias>,
    pub attrs: CapMap,
}

/// A `tests` entry: from `src`, each `(destination, port)` must be
/// accepted / denied over `proto` (empty: TCP).
#[derive(Debug, Clone)]
pub struct AclTest {
    pub src: Alias,
    pub proto: Vec<i32>,
    pub accept: Vec<(Alias, u16)>,
    pub deny: Vec<(Alias, u16)>,
}

/// `services` extension: `"svc:NAME": {"hosts": ["tag:x"], "ports": ["tcp:443"]}`
/// or TailOpsMCP's `{"protocol", "port", "tags", "allowedTags"}`.
#[derive(Debug, Clone)]
pub struct ServiceDef {
    pub hosts: Vec<Alias>,
    pub ports: Vec<(Vec<i32>, Ports)>,
    /// Selectors that may reach the service (TailOpsMCP's `allowedTags`).
    pub allowed: Vec<Alias>,
}

#[derive(Debug, Clone)]
pub struct SshRule {
    pub check: bool,
    /// `checkPeriod` (zero: `"always"`); `None` when not given.
    pub check_period: Option<std::time::Duration>,
    pub src: Vec<Alias>,
    pub dst: Vec<Alias>,
    pub users: Vec<String>,
    pub accept_env: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SshTest {
    pub src: Alias,
    pub dst: Vec<Alias>,
    pub accept: Vec<String>,
    pub check: Vec<String>,
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Doc {
    pub groups: BTreeMap<String, Vec<String>>,
    pub hosts: BTreeMap<String, IpNet>,
    pub tag_owners: BTreeMap<String, Vec<Alias>>,
    pub rules: Vec<Rule>,
    pub ssh: Vec<SshRule>,
    pub node_attrs: Vec<NodeAttr>,
    pub auto_routes: Vec<(IpNet, Vec<Alias>)>,
    pub auto_exit: Vec<Alias>,
    pub tests: Vec<AclTest>,
    pub ssh_tests: Vec<SshTest>,
    pub services: BTreeMap<String, ServiceDef>,
    /// Domains named by `localpart:*@domain` SSH users and `user:*@domain`
    /// selectors in SSH rules, with where (checked against the topology:
    /// only the tailnet's own domains may be used).
    pub ssh_domains: Vec<(String, Option<(usize, usize)>)>,
    /// Every clawscale extension the policy uses, with where: what
    /// `--strict` (hosted-plane portability) refuses.
    pub extensions: Vec<(String, Option<(usize, usize)>)>,
    /// Top-level `randomizeClientPort`.
    pub randomize_client_port: bool,
}

/// The domain of a canonical `localpart:*@<domain>` SSH user entry. Other
/// shapes starting with `localpart:` are plain user names (Tailscale emits
/// them literally).
pub fn localpart_domain(user: &str) -> Option<&str> {
    let pat = user.strip_prefix("localpart:")?;
    let (local, dom) = pat.rsplit_once('@')?;
    (local == "*" && !dom.is_empty()).then_some(dom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localpart_domains() {
        assert_eq!(
            localpart_domain("localpart:*@example.com"),
            Some("example.com")
        );
        assert_eq!(localpart_domain("localpart:*@"), None);
        assert_eq!(localpart_domain("localpart:foo@example.com"), None);
        assert_eq!(localpart_domain("localpart:foo"), None);
        assert_eq!(localpart_domain("root"), None);
    }
}
