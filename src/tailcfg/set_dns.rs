//! `/machine/set-dns` request and response (tailcfg `SetDNSRequest`,
//! `SetDNSResponse`): a node asks control to publish a DNS record, in
//! practice the TXT record of an ACME DNS-01 challenge.

use serde::{Deserialize, Serialize};

/// What the client sends. Unknown fields are ignored; every field tolerates
/// `null`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SetDnsRequest {
    /// The client's capability version (over Noise).
    #[serde(rename = "Version")]
    pub version: i32,
    #[serde(rename = "NodeKey")]
    pub node_key: Option<String>,
    /// `_acme-challenge.<one of the node's CertDomains>`.
    #[serde(rename = "Name")]
    pub name: String,
    /// `TXT` for ACME.
    #[serde(rename = "Type")]
    pub r#type: String,
    #[serde(rename = "Value")]
    pub value: String,
}

/// The empty JSON object the client decodes on success.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SetDnsResponse {}
