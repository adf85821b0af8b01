//! `tailcfg.DNSConfig` (control.md §4.8).

use std::collections::BTreeMap;

use serde::Serialize;

use super::is_false;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DnsConfig {
    #[serde(rename = "Resolvers", skip_serializing_if = "Vec::is_empty")]
    pub resolvers: Vec<Resolver>,
    /// Split DNS; an empty list routes the suffix to 100.100.100.100 itself.
    /// Values are never `null`: the client drops nil entries.
    #[serde(rename = "Routes", skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, Vec<Resolver>>,
    #[serde(rename = "FallbackResolvers", skip_serializing_if = "Vec::is_empty")]
    pub fallback_resolvers: Vec<Resolver>,
    #[serde(rename = "Domains", skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// MagicDNS on.
    #[serde(rename = "Proxied", skip_serializing_if = "is_false")]
    pub proxied: bool,
    #[serde(rename = "ExtraRecords", skip_serializing_if = "Vec::is_empty")]
    pub extra_records: Vec<DnsRecord>,
    /// Names this node may get a TLS certificate for (`tailscale cert`);
    /// the client refuses any other name (`ipn/ipnlocal/cert.go`).
    #[serde(rename = "CertDomains", skip_serializing_if = "Vec::is_empty")]
    pub cert_domains: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Resolver {
    #[serde(rename = "Addr")]
    pub addr: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DnsRecord {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Type", skip_serializing_if = "String::is_empty")]
    pub r#type: String,
    #[serde(rename = "Value")]
    pub value: String,
}
