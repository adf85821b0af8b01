//! The World: an immutable snapshot of everything the control plane serves
//! (users, nodes, presence, policy, static settings) plus the indexes readers need.
//!
//! Assumptions: reads vastly outnumber writes; readers take an `Arc<World>`
//! and never block; only the writer (`state::writer`) builds new Worlds,
//! always *after* the database commit they reflect.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use imbl::{HashMap, OrdMap, OrdSet};

use super::ipam::Floor;
use super::memo::{Memo, Version};
use super::policy::PolicyState;
use crate::tailcfg;
use crate::types::{MachinePublic, Node, NodeId, NodePublic, User, UserId};

/// Settings derived from configuration that every map carries. Reloadable
/// parts (DERP map, DNS) live here so changes fan out like any other state.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub base_domain: String,
    /// The DERP map, per client capability class.
    pub derp_map: super::DerpMaps,
    /// The operator's DNS settings. `extra_records` holds every configured
    /// record (A, AAAA, CNAME, TXT, SRV); maps get [`World::dns_config`].
    pub dns: tailcfg::DnsConfig,
    /// `MapResponse.Domain`: the tailnet's display name.
    pub domain: String,
    /// Who may get HTTPS certificates for tailnet names (`dns.certs`).
    pub certs: Certs,
    /// The URL clients log in through (`login_url`, else `server_url`; no
    /// trailing `/`); empty in tests that do not serve. SSH `check` rules
    /// delegate to it (tailscaled sends that request over its Noise channel
    /// only when the URL is its login server's) and point people at its
    /// pages.
    pub login_url: String,
}

/// `dns.certs`: which nodes get `CertDomains` and the `https` capability.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Certs {
    #[default]
    Off,
    /// Every node unless policy `nodeAttrs` give it `disable-https`.
    AllNodes,
    /// Only nodes whose `nodeAttrs` give `https` (and not `disable-https`).
    OptIn,
}

/// Every collection is a persistent map (`imbl`): cloning a World shares
/// all of it, and a write copies only the O(log n) path it touches, so the
/// writer's draft-edit-publish cycle costs the same at 10 nodes as at 10,000.
#[derive(Debug, Clone)]
pub struct World {
    pub generation: u64,
    pub settings: Arc<Settings>,
    pub users: OrdMap<UserId, Arc<User>>,
    pub nodes: OrdMap<NodeId, Arc<Node>>,
    /// Nodes with at least one live map stream.
    pub online: OrdSet<NodeId>,
    /// The policy in force, compiled for this World's nodes.
    pub policy: Arc<PolicyState>,
    /// ACME challenges each node published (not persisted; `state::certs`).
    pub acme_challenges: Arc<super::certs::ChallengesSeen>,
    /// The primary router of each subnet prefix (HA election; not
    /// persisted; `state::primary`).
    pub primaries: super::primary::Primaries,
    by_node_key: HashMap<NodePublic, NodeId>,
    by_machine_key: HashMap<MachinePublic, NodeId>,
    by_ip: HashMap<IpAddr, NodeId>,
    by_name: HashMap<String, NodeId>,
    /// Where the sequential address allocator starts (see [`Floor`]).
    pub(super) ip_floor: Floor,
    /// `services()` of one policy version.
    services_cache: Memo<Version<PolicyState>, Services>,
    /// `dns_config()` of one settings and policy version.
    dns_cache: Memo<(Version<Settings>, Version<PolicyState>), Arc<tailcfg::DnsConfig>>,
}

/// `svc:NAME` → its hosts' addresses, for one `PolicyState`.
pub type Services = Arc<Vec<(String, Vec<IpAddr>)>>;

impl World {
    pub fn new(settings: Settings, users: Vec<User>, nodes: Vec<Node>) -> Self {
        let mut w = World {
            generation: 0,
            settings: Arc::new(settings),
            users: users.into_iter().map(|u| (u.id, Arc::new(u))).collect(),
            nodes: OrdMap::new(),
            online: OrdSet::new(),
            policy: Arc::default(),
            acme_challenges: Arc::default(),
            primaries: Default::default(),
            by_node_key: HashMap::default(),
            by_machine_key: HashMap::default(),
            by_ip: HashMap::default(),
            by_name: HashMap::default(),
            ip_floor: Floor::default(),
            services_cache: Memo::default(),
            dns_cache: Memo::default(),
        };
        for n in nodes {
            w.put_node(Arc::new(n));
        }
        w.reelect(chrono::Utc::now());
        w
    }

    /// Recomputes the HA election from scratch for this World's nodes,
    /// presence and policy (see `state::primary`).
    pub fn reelect(&mut self, now: chrono::DateTime<chrono::Utc>) {
        self.primaries = super::primary::Primaries::of_world(self, now);
    }

    /// Each policy service (`svc:NAME`, without the prefix) with its hosts'
    /// addresses, sorted by name; empty without a policy. Computed once per
    /// policy version, however many sessions ask.
    pub fn services(&self) -> Services {
        self.services_cache.get(Version::of(&self.policy), |_| {
            let mut list = self
                .policy
                .compiled
                .as_ref()
                .map(|c| c.service_addrs())
                .unwrap_or_default();
            list.retain(|(_, addrs)| !addrs.is_empty());
            list.sort_by(|a, b| a.0.cmp(&b.0));
            Arc::new(list)
        })
    }

    /// The `DNSConfig` every map carries: the operator's settings with only
    /// the A/AAAA extra records (all Tailscale clients serve), plus
    /// `NAME.<base_domain>` for each service ([`World::published_services`]).
    /// `CertDomains` is per node: the mapper adds it.
    ///
    /// Built once per settings and policy version and shared: every map
    /// stream keeps the config it sent, and a copy each was several KiB of
    /// every connected node's memory. A rebuild equal to the last one
    /// returns the same `Arc`, so streams tell an unchanged config by its
    /// pointer across policy versions (every batch of joins makes one).
    pub fn dns_config(&self) -> Arc<tailcfg::DnsConfig> {
        let key = (Version::of(&self.settings), Version::of(&self.policy));
        self.dns_cache.get(key, |last| {
            let built = self.build_dns_config();
            match last {
                Some(old) if *old == built => old,
                _ => Arc::new(built),
            }
        })
    }

    fn build_dns_config(&self) -> tailcfg::DnsConfig {
        let mut dns = self.settings.dns.clone();
        dns.extra_records
            .retain(|r| matches!(r.r#type.as_str(), "A" | "AAAA"));
        for (fqdn, addrs) in self.published_services() {
            // Untyped ("A or AAAA by value"): tailscaled's own dialer
            // (`tailscale nc`, userspace networking) only reads untyped
            // records and keeps the last one per name (tsdial's
            // dnsMapFromNetworkMap, 1.96), so IPv6 goes first and the
            // dialer uses IPv4, as it does for peer names. Its MagicDNS
            // resolver reads typed and untyped alike.
            for ip in addrs
                .iter()
                .filter(|a| a.is_ipv6())
                .chain(addrs.iter().filter(|a| a.is_ipv4()))
            {
                dns.extra_records.push(tailcfg::DnsRecord {
                    name: fqdn.clone(),
                    r#type: String::new(),
                    value: ip.to_string(),
                });
            }
        }
        dns
    }

    /// Each service's `NAME.<base_domain>` (lower-case) with its hosts'
    /// addresses. A service whose name is taken by a node or an operator
    /// record is left out: those win, as on the authoritative server.
    pub fn published_services(&self) -> Vec<(String, Vec<IpAddr>)> {
        let base = self.settings.base_domain.trim_end_matches('.');
        if base.is_empty() {
            return Vec::new();
        }
        let taken: HashSet<String> = self
            .settings
            .dns
            .extra_records
            .iter()
            .map(|r| r.name.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        self.services()
            .iter()
            .filter_map(|(name, addrs)| {
                let label = name.to_ascii_lowercase();
                let fqdn = format!("{label}.{base}").to_ascii_lowercase();
                let free = !self.by_name.contains_key(&label) && !taken.contains(&fqdn);
                free.then(|| (fqdn, addrs.clone()))
            })
            .collect()
    }

    pub fn node(&self, id: NodeId) -> Option<&Arc<Node>> {
        self.nodes.get(&id)
    }

    pub fn user(&self, id: UserId) -> Option<&Arc<User>> {
        self.users.get(&id)
    }

    pub fn user_by_name(&self, name: &str) -> Option<&Arc<User>> {
        self.users.values().find(|u| u.name == name)
    }

    pub fn node_by_node_key(&self, k: &NodePublic) -> Option<&Arc<Node>> {
        self.by_node_key.get(k).and_then(|id| self.nodes.get(id))
    }

    /// Whether `k` belongs to a node whose key has not expired: the DERP
    /// admission rule for `verify_clients`.
    pub fn is_live_node_key(&self, k: &NodePublic, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.node_by_node_key(k).is_some_and(|n| !n.is_expired(now))
    }

    pub fn node_by_machine_key(&self, k: &MachinePublic) -> Option<&Arc<Node>> {
        self.by_machine_key.get(k).and_then(|id| self.nodes.get(id))
    }

    pub fn node_by_ip(&self, ip: &IpAddr) -> Option<&Arc<Node>> {
        self.by_ip.get(ip).and_then(|id| self.nodes.get(id))
    }

    /// The node with MagicDNS label `name` (exact, lower-case).
    pub fn node_by_name(&self, name: &str) -> Option<&Arc<Node>> {
        self.by_name.get(name).and_then(|id| self.nodes.get(id))
    }

    pub fn name_taken(&self, name: &str, except: Option<NodeId>) -> bool {
        self.by_name.get(name).is_some_and(|id| Some(*id) != except)
    }

    pub fn ip_taken(&self, ip: &IpAddr) -> bool {
        self.by_ip.contains_key(ip)
    }

    pub fn is_online(&self, id: NodeId) -> bool {
        self.online.contains(&id)
    }

    /// Inserts or replaces a node, keeping every index in step. Only ever
    /// called on a draft the caller owns: published Worlds sit behind `Arc`.
    pub fn put_node(&mut self, node: Arc<Node>) {
        if let Some(old) = self.nodes.get(&node.id).cloned() {
            self.unindex(&old);
        }
        self.by_node_key.insert(node.node_key, node.id);
        self.by_machine_key.insert(node.machine_key, node.id);
        for ip in node.addresses() {
            self.by_ip.insert(ip, node.id);
        }
        self.by_name
            .insert(node.given_name.as_str().to_string(), node.id);
        self.nodes.insert(node.id, node);
    }

    pub fn remove_node(&mut self, id: NodeId) -> Option<Arc<Node>> {
        let old = self.nodes.remove(&id)?;
        self.unindex(&old);
        self.online.remove(&id);
        if self.acme_challenges.contains_key(&id) {
            Arc::make_mut(&mut self.acme_challenges).remove(&id);
        }
        Some(old)
    }

    pub(super) fn put_user(&mut self, user: User) {
        self.users.insert(user.id, Arc::new(user));
    }

    pub(super) fn remove_user(&mut self, id: UserId) {
        self.users.remove(&id);
    }

    fn unindex(&mut self, n: &Node) {
        // Only drop index entries that still point at this node: a key or
        // name may already have moved to another node in the same batch.
        let id = n.id;
        if self.by_node_key.get(&n.node_key) == Some(&id) {
            self.by_node_key.remove(&n.node_key);
        }
        if self.by_machine_key.get(&n.machine_key) == Some(&id) {
            self.by_machine_key.remove(&n.machine_key);
        }
        for ip in n.addresses() {
            if self.by_ip.get(&ip) == Some(&id) {
                self.by_ip.remove(&ip);
                self.ip_floor.lower(ip);
            }
        }
        if self.by_name.get(n.given_name.as_str()) == Some(&id) {
            self.by_name.remove(n.given_name.as_str());
        }
    }
}
