//! `tailcfg.DERPMap` (derp.md §1), sent to clients and read from remote or
//! local DERP map sources (`derp.urls`, `derp.paths`) in Tailscale's JSON.
//! Every field Tailscale defines is kept, so a map fetched from elsewhere
//! reaches clients unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{is_false, is_zero_i32};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DerpMap {
    #[serde(
        rename = "HomeParams",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub home_params: Option<DerpHomeParams>,
    /// Keyed by decimal region id (Go marshals `map[int]` keys as strings).
    #[serde(rename = "Regions", default)]
    pub regions: BTreeMap<String, DerpRegion>,
    #[serde(
        rename = "omitDefaultRegions",
        default,
        skip_serializing_if = "is_false"
    )]
    pub omit_default_regions: bool,
}

/// How clients weigh regions when picking a home (capver ≥ 65).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DerpHomeParams {
    /// Region id → latency multiplier.
    #[serde(
        rename = "RegionScore",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub region_score: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DerpRegion {
    #[serde(rename = "RegionID", default)]
    pub region_id: i32,
    #[serde(rename = "RegionCode", default)]
    pub region_code: String,
    #[serde(rename = "RegionName", default)]
    pub region_name: String,
    #[serde(rename = "Latitude", default, skip_serializing_if = "is_zero_f64")]
    pub latitude: f64,
    #[serde(rename = "Longitude", default, skip_serializing_if = "is_zero_f64")]
    pub longitude: f64,
    /// Deprecated by Tailscale, still honoured by clients.
    #[serde(rename = "Avoid", default, skip_serializing_if = "is_false")]
    pub avoid: bool,
    /// Never measured nor chosen as home (capver ≥ 115).
    #[serde(rename = "NoMeasureNoHome", default, skip_serializing_if = "is_false")]
    pub no_measure_no_home: bool,
    #[serde(rename = "Nodes", default)]
    pub nodes: Vec<DerpNode>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DerpNode {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "RegionID", default)]
    pub region_id: i32,
    #[serde(rename = "HostName", default)]
    pub host_name: String,
    /// Expected certificate name instead of `HostName`; `sha256-raw:<hex>`
    /// pins a self-signed certificate (understood from capver 115 on).
    #[serde(rename = "CertName", default, skip_serializing_if = "String::is_empty")]
    pub cert_name: String,
    /// An address to dial instead of resolving `HostName`; empty ⇒ DNS A
    /// records; any non-IPv4 text (conventionally `"none"`) ⇒ no IPv4.
    #[serde(rename = "IPv4", default, skip_serializing_if = "String::is_empty")]
    pub ipv4: String,
    /// Likewise for IPv6: empty ⇒ DNS AAAA records (and netcheck waits for
    /// an IPv6 STUN answer that may never come); `"none"` ⇒ no IPv6.
    #[serde(rename = "IPv6", default, skip_serializing_if = "String::is_empty")]
    pub ipv6: String,
    /// 0 ⇒ 3478; −1 ⇒ no STUN.
    #[serde(rename = "STUNPort", default, skip_serializing_if = "is_zero_i32")]
    pub stun_port: i32,
    #[serde(rename = "STUNOnly", default, skip_serializing_if = "is_false")]
    pub stun_only: bool,
    /// 0 ⇒ 443.
    #[serde(rename = "DERPPort", default, skip_serializing_if = "is_zero_i32")]
    pub derp_port: i32,
    #[serde(rename = "InsecureForTests", default, skip_serializing_if = "is_false")]
    pub insecure_for_tests: bool,
    #[serde(
        rename = "STUNTestIP",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub stun_test_ip: String,
    #[serde(rename = "CanPort80", default, skip_serializing_if = "is_false")]
    pub can_port_80: bool,
}

/// The `CertName` prefix that pins a certificate by hash.
pub const CERT_PIN_PREFIX: &str = "sha256-raw:";

fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

/// Every field name of the types above, as Go spells them: Go's JSON
/// decoder matches names case-insensitively and Headscale reads DERP map
/// files with `yaml.v3` (all lower case), so sources spell them either way.
pub const FIELD_NAMES: &[&str] = &[
    "HomeParams",
    "RegionScore",
    "Regions",
    "omitDefaultRegions",
    "RegionID",
    "RegionCode",
    "RegionName",
    "Latitude",
    "Longitude",
    "Avoid",
    "NoMeasureNoHome",
    "Nodes",
    "Name",
    "HostName",
    "CertName",
    "IPv4",
    "IPv6",
    "STUNPort",
    "STUNOnly",
    "DERPPort",
    "InsecureForTests",
    "STUNTestIP",
    "CanPort80",
];
