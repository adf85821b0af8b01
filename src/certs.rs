//! HTTPS certificates for tailnet names (`dns.certs`): which names a node may
//! get a certificate for, and the ACME DNS-01 challenges it asks us to publish.
//!
//! clawscale never sees a certificate or a key. The node runs ACME itself
//! (tailscaled `ipn/ipnlocal/cert.go`): it may only ask for a name listed in
//! its map's `DNSConfig.CertDomains`, and for each authorization it asks
//! control (`POST /machine/set-dns` over Noise) to publish the TXT record
//! `_acme-challenge.<name>`, then at once tells the CA to validate. The
//! authoritative DNS server (`dns`) answers that record from [`Challenges`].
//!
//! One rule decides both what the map offers and what set-dns accepts
//! ([`cert_domains`]): `<node>.<base_domain>`, plus `NAME.<base_domain>` for
//! each `svc:NAME` the node hosts, when certificates are on for the node
//! ([`https_enabled`]). So a node can never publish a record for another
//! node, for a service it does not host, or for anything else in the zone.
//!
//! May depend on: `state` (the World), `policy` (CapMap), `types`, `clock`.

mod challenges;

use crate::policy::CapMap;
use crate::state::{Certs, World};
use crate::types::Node;

pub use challenges::{Challenges, MAX_VALUES_PER_NAME};

/// The node capability that lets `tailscale cert` and `tailscale serve
/// --https` proceed (tailcfg `CapabilityHTTPS`).
pub const HTTPS: &str = "https";
/// clawscale's node attribute that withholds certificates from a node
/// (named like tailcfg's `disable-*` attributes).
pub const DISABLE_HTTPS: &str = "disable-https";
/// How long a published challenge is answered: a CA validates within
/// seconds to a minute of the client's request, which follows set-dns at
/// once; a retried order publishes again.
pub const CHALLENGE_LIFETIME: chrono::Duration = chrono::Duration::minutes(10);
/// The owner-name prefix of an ACME DNS-01 challenge (RFC 8555 §8.4).
pub const CHALLENGE_PREFIX: &str = "_acme-challenge.";

/// Whether a node whose policy CapMap is `caps` may get certificates.
pub fn https_enabled(certs: Certs, caps: &CapMap) -> bool {
    match certs {
        Certs::Off => false,
        Certs::AllNodes => !caps.contains_key(DISABLE_HTTPS),
        Certs::OptIn => caps.contains_key(HTTPS) && !caps.contains_key(DISABLE_HTTPS),
    }
}

/// The CapMap a node's map carries: the policy's, with `https` present
/// exactly when [`https_enabled`] (a policy `https` attribute alone, with
/// certificates off on the server, would promise what set-dns refuses).
pub fn map_caps(certs: Certs, mut caps: CapMap) -> CapMap {
    if https_enabled(certs, &caps) {
        caps.entry(HTTPS.into()).or_default();
    } else {
        caps.remove(HTTPS);
    }
    caps
}

/// The policy CapMap of node `node` in `world` (empty without a policy).
pub fn policy_caps(world: &World, node: &Node) -> CapMap {
    world
        .policy
        .compiled
        .as_ref()
        .and_then(|c| c.node_arc(node.id.0 as u64))
        .map(|o| o.cap_map.clone())
        .unwrap_or_default()
}

/// The names `node` may get certificates for, lower-case, without a
/// trailing dot, its own name first: `DNSConfig.CertDomains`.
pub fn cert_domains(world: &World, node: &Node, caps: &CapMap) -> Vec<String> {
    let base = world.settings.base_domain.trim_end_matches('.');
    if base.is_empty() || !https_enabled(world.settings.certs, caps) {
        return Vec::new();
    }
    let own = node
        .given_name
        .fqdn(base)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let mine = node.addresses();
    let mut domains = vec![own];
    for (fqdn, addrs) in world.published_services() {
        // A service's hosts are the nodes its addresses belong to.
        if addrs.iter().any(|a| mine.contains(a)) && !domains.contains(&fqdn) {
            domains.push(fqdn);
        }
    }
    domains
}

/// Why a set-dns request is refused; the text goes back to the client,
/// which shows it in `tailscale cert`'s error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("HTTPS certificates are not enabled on this control server (dns.certs.enabled)")]
    Disabled,
    #[error("HTTPS certificates are turned off for this node by policy")]
    NotForThisNode,
    #[error("only TXT records can be set, not {0:?}")]
    Type(String),
    #[error("{name:?} is not an ACME challenge for this node; allowed: {allowed:?}")]
    Name { name: String, allowed: Vec<String> },
    #[error("invalid challenge value: {0}")]
    Value(&'static str),
}

/// A challenge the node may publish: the record's owner name (lower-case,
/// no trailing dot), the cert domain it proves, and the TXT value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub owner: String,
    pub domain: String,
    pub value: String,
}

/// Decides a set-dns request from `node` (already authenticated as the
/// owner of its node key) for record `name` of type `kind` with `value`.
pub fn authorize(
    world: &World,
    node: &Node,
    name: &str,
    kind: &str,
    value: &str,
) -> Result<Challenge, Refusal> {
    if world.settings.certs == Certs::Off {
        return Err(Refusal::Disabled);
    }
    let caps = policy_caps(world, node);
    let domains = cert_domains(world, node, &caps);
    if domains.is_empty() {
        return Err(Refusal::NotForThisNode);
    }
    if !kind.eq_ignore_ascii_case("TXT") {
        return Err(Refusal::Type(kind.to_string()));
    }
    let wanted = name.trim_end_matches('.').to_ascii_lowercase();
    let domain = wanted
        .strip_prefix(CHALLENGE_PREFIX)
        .filter(|d| domains.iter().any(|c| c == d))
        .ok_or_else(|| Refusal::Name {
            name: name.to_string(),
            allowed: domains
                .iter()
                .map(|d| format!("{CHALLENGE_PREFIX}{d}"))
                .collect(),
        })?
        .to_string();
    check_value(value)?;
    Ok(Challenge {
        owner: wanted,
        domain,
        value: value.to_string(),
    })
}

/// A DNS-01 value is the unpadded base64url SHA-256 of the key
/// authorization (RFC 8555 §8.4): 43 characters of that alphabet. Nothing
/// else is published, so the record cannot carry arbitrary text.
fn check_value(value: &str) -> Result<(), Refusal> {
    if value.len() != 43 {
        return Err(Refusal::Value("must be 43 characters (base64url SHA-256)"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Refusal::Value("must be base64url"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
