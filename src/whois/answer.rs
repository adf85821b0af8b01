//! The whois answer, as a pure function of a World (its nodes, users, and
//! compiled policy): what tailscaled's `GET /localapi/v0/whois` would say on
//! a gateway node about a caller, computed centrally.
//!
//! The node is converted with the mapper's own wire conversion
//! (`mapper::build::tail_node`, peer view) and the profile with the mapper's
//! `UserProfiles` logic, so whois shows exactly what clients are sent; then
//! the client-side normalisation tailscaled applies before answering is
//! mirrored: `AllowedIPs` filled from `Addresses`, the legacy `DERP` string
//! folded away, `ComputedName`/`ComputedNameWithHost` added. A tagged node's
//! profile is the tagged-devices user (`LoginName` `tagged-devices`, what
//! the hosted plane answers too); its identity is in `Node.Tags`.
//!
//! `CapMap` is what the policy's app-capability grants give the queried
//! address towards the destination node: the `CapGrant` rules of the
//! destination's compiled packet filter whose `SrcIPs` cover the address,
//! exactly what tailscaled on that node evaluates. The rules are parsed once
//! per compiled filter ([`CapRules`]); [`CapCache`] keeps them across
//! requests, keyed by the filter's identity, so a policy change is picked up
//! by the first request that sees the new World.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::mapper::build::{owner_id, profile, tail_node};
use crate::policy::CapMap;
use crate::policy::ipset::IpSet;
use crate::state::World;
use crate::tailcfg::{self, FilterRule, UserProfile};
use crate::types::{Node, NodeId, NodePublic};

/// What a caller asked about: the `addr` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    Ip(IpAddr),
    NodeKey(NodePublic),
}

/// Why an `addr` parameter was refused; the texts are tailscaled's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("missing 'addr' parameter")]
    Missing,
    #[error("invalid 'addr' parameter")]
    Invalid,
    #[error("invalid nodekey in 'addr' parameter")]
    InvalidNodeKey,
}

impl Query {
    /// Parses `IP`, `IP:port`, `[v6]:port` or `nodekey:<hex>`.
    pub fn parse(addr: Option<&str>) -> Result<Query, AddrError> {
        let addr = addr.map(str::trim).filter(|a| !a.is_empty());
        let Some(addr) = addr else {
            return Err(AddrError::Missing);
        };
        if addr.starts_with("nodekey:") {
            return addr
                .parse::<NodePublic>()
                .map(Query::NodeKey)
                .map_err(|_| AddrError::InvalidNodeKey);
        }
        parse_ip(addr).map(Query::Ip).ok_or(AddrError::Invalid)
    }
}

/// An IP with or without a port (`1.2.3.4`, `1.2.3.4:80`, `[::1]:80`,
/// `::1`); IPv6 zones are not tailnet addresses and are refused.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let ip = match s.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => s.parse::<std::net::SocketAddr>().ok()?.ip(),
    };
    // An IPv4-mapped IPv6 address (dual-stack sockets) is the IPv4 one.
    Some(ip.to_canonical())
}

/// The node as the whois answer shows it: the wire node plus the fields
/// tailscaled computes on its side.
#[derive(Debug, Clone, Serialize)]
pub struct WhoisNode {
    #[serde(flatten)]
    pub node: tailcfg::Node,
    #[serde(rename = "ComputedName")]
    pub computed_name: String,
    #[serde(rename = "ComputedNameWithHost")]
    pub computed_name_with_host: String,
}

/// `apitype.WhoIsResponse`.
#[derive(Debug, Clone, Serialize)]
pub struct WhoIs {
    #[serde(rename = "Node")]
    pub node: WhoisNode,
    #[serde(rename = "UserProfile")]
    pub user_profile: UserProfile,
    #[serde(rename = "CapMap", skip_serializing_if = "CapMap::is_empty")]
    pub cap_map: CapMap,
}

impl WhoIs {
    /// The node's MagicDNS label (first label of `Node.Name`).
    pub fn short_name(&self) -> &str {
        &self.node.computed_name
    }

    /// `Node.Name` without the trailing dot.
    pub fn fqdn(&self) -> &str {
        self.node.node.name.trim_end_matches('.')
    }
}

/// Finds a node by tailnet IP, MagicDNS label or FQDN (with or without the
/// trailing dot); used for the CapMap destination (`dst`, `whois.gateway`).
pub fn resolve_node<'w>(world: &'w World, spec: &str) -> Option<&'w Arc<Node>> {
    let spec = spec.trim();
    if let Some(ip) = parse_ip(spec) {
        return world.node_by_ip(&ip);
    }
    let name = spec.trim_end_matches('.').to_ascii_lowercase();
    let base = world.settings.base_domain.to_ascii_lowercase();
    let label = name
        .strip_suffix(&base)
        .and_then(|l| l.strip_suffix('.'))
        .unwrap_or(&name);
    world.node_by_name(label)
}

/// One destination's `CapGrant` rules with their sources parsed.
#[derive(Debug)]
pub struct CapRules {
    filter: Arc<Vec<FilterRule>>,
    rules: Vec<(IpSet, usize, usize)>,
}

impl CapRules {
    pub fn build(filter: Arc<Vec<FilterRule>>) -> CapRules {
        let mut rules = Vec::new();
        for (ri, r) in filter.iter().enumerate() {
            if r.cap_grant.is_empty() {
                continue;
            }
            let mut src = IpSet::new();
            for s in r.src_ips.iter() {
                if s == "*" {
                    src.push_net(&"0.0.0.0/0".parse().unwrap_or_default());
                    src.push_net(&"::/0".parse().unwrap_or_default());
                } else if let Some(set) = IpSet::parse_element(s) {
                    src.extend(&set);
                }
            }
            src.normalize();
            for gi in 0..r.cap_grant.len() {
                rules.push((src.clone(), ri, gi));
            }
        }
        CapRules { filter, rules }
    }

    /// The capabilities granted to `src`.
    pub fn caps(&self, src: IpAddr) -> CapMap {
        let mut out = CapMap::new();
        for (set, ri, gi) in &self.rules {
            if !set.contains(src) {
                continue;
            }
            for (k, v) in &self.filter[*ri].cap_grant[*gi].cap_map {
                out.entry(k.clone()).or_default().extend(v.iter().cloned());
            }
        }
        out
    }
}

/// Parsed `CapRules` per destination node, reused while its compiled
/// packet filter (an `Arc` shared by every World until the policy or the
/// topology changes it) stays the same.
#[derive(Debug, Default)]
pub struct CapCache(RwLock<HashMap<NodeId, Arc<CapRules>>>);

impl CapCache {
    fn get(&self, filter: &Arc<Vec<FilterRule>>, dst: NodeId) -> Arc<CapRules> {
        if let Some(r) = self
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&dst)
            .filter(|r| Arc::ptr_eq(&r.filter, filter))
        {
            return r.clone();
        }
        let rules = Arc::new(CapRules::build(filter.clone()));
        let mut m = self.0.write().unwrap_or_else(|e| e.into_inner());
        // Bounded: destinations are the few gateways asked about.
        if m.len() > 1024 {
            m.clear();
        }
        m.insert(dst, rules.clone());
        rules
    }
}

/// The whois answer for `query`, with the CapMap towards `dst` (none without
/// a destination). `None` is tailscaled's 404: unknown address, or no
/// profile for the node's user.
pub fn whois(
    world: &World,
    query: Query,
    dst: Option<NodeId>,
    now: DateTime<Utc>,
) -> Option<WhoIs> {
    whois_with(world, query, dst, now, None)
}

/// As [`whois`], reusing parsed CapGrant rules from `cache`.
pub fn whois_with(
    world: &World,
    query: Query,
    dst: Option<NodeId>,
    now: DateTime<Utc>,
    cache: Option<&CapCache>,
) -> Option<WhoIs> {
    let (node, src_ip) = locate(world, query)?;
    let filter = dst.and_then(|d| Some((d, dst_filter(world, d)?)));
    assemble(world, node, src_ip, filter, now, cache)
}

/// The node `query` names and the source address its CapMap is computed
/// for (a node-key query stands for the node's first address).
pub fn locate(world: &World, query: Query) -> Option<(&Arc<Node>, IpAddr)> {
    match query {
        Query::Ip(ip) => Some((world.node_by_ip(&ip)?, ip)),
        Query::NodeKey(k) => {
            let n = world.node_by_node_key(&k)?;
            Some((n, *n.addresses().first()?))
        }
    }
}

/// The destination's compiled packet filter (its CapGrant rules decide the
/// CapMap); `None` without a policy or when the destination is not a node.
pub fn dst_filter(world: &World, dst: NodeId) -> Option<&Arc<Vec<FilterRule>>> {
    let c = world.policy.compiled.as_ref()?;
    Some(&c.node_shared(dst.0 as u64)?.packet_filter)
}

/// The answer for `node` asked about as `src_ip`, from its parts.
pub fn assemble(
    world: &World,
    node: &Node,
    src_ip: IpAddr,
    filter: Option<(NodeId, &Arc<Vec<FilterRule>>)>,
    now: DateTime<Utc>,
    cache: Option<&CapCache>,
) -> Option<WhoIs> {
    let user_profile = profile(world, owner_id(node))?;
    let cap_map = match filter {
        Some((d, f)) => match cache {
            Some(cache) => cache.get(f, d).caps(src_ip),
            None => CapRules::build(f.clone()).caps(src_ip),
        },
        None => CapMap::new(),
    };
    Some(WhoIs {
        node: whois_node(world, node, now),
        user_profile,
        cap_map,
    })
}

fn whois_node(world: &World, n: &Node, now: DateTime<Utc>) -> WhoisNode {
    let mut node = tail_node(world, n, now, false);
    // tailscaled's view after netmap normalisation.
    if node.allowed_ips.is_none() {
        node.allowed_ips = Some(node.addresses.clone());
    }
    node.legacy_derp = String::new();
    let computed_name = node.name.split('.').next().unwrap_or_default().to_string();
    let computed_name_with_host = if n.hostname.is_empty() || n.hostname == computed_name {
        computed_name.clone()
    } else {
        format!("{computed_name} ({})", n.hostname)
    };
    WhoisNode {
        node,
        computed_name,
        computed_name_with_host,
    }
}

/// The response body tailscaled writes: JSON indented with tabs.
pub fn to_body(w: &WhoIs) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serialising plain data into a Vec cannot fail.
    let _ = w.serialize(&mut ser);
    out.push(b'\n');
    out
}

#[cfg(test)]
pub(crate) mod tests;
