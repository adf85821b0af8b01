//! `tailcfg.DERPMap` (derp.md §1).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{is_false, is_zero_i32};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DerpMap {
    /// Keyed by decimal region id (Go marshals `map[int]` keys as strings).
    #[serde(rename = "Regions")]
    pub regions: BTreeMap<String, DerpRegion>,
    #[serde(rename = "omitDefaultRegions", skip_serializing_if = "is_false")]
    pub omit_default_regions: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DerpRegion {
    #[serde(rename = "RegionID")]
    pub region_id: i32,
    #[serde(rename = "RegionCode")]
    pub region_code: String,
    #[serde(rename = "RegionName")]
    pub region_name: String,
    #[serde(rename = "Nodes")]
    pub nodes: Vec<DerpNode>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DerpNode {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "RegionID")]
    pub region_id: i32,
    #[serde(rename = "HostName")]
    pub host_name: String,
    /// `sha256-raw:<hex>` pins a self-signed certificate.
    #[serde(rename = "CertName", skip_serializing_if = "String::is_empty")]
    pub cert_name: String,
    #[serde(rename = "IPv4", skip_serializing_if = "String::is_empty")]
    pub ipv4: String,
    #[serde(rename = "IPv6", skip_serializing_if = "String::is_empty")]
    pub ipv6: String,
    /// 0 ⇒ 3478; −1 ⇒ no STUN.
    #[serde(rename = "STUNPort", skip_serializing_if = "is_zero_i32")]
    pub stun_port: i32,
    /// 0 ⇒ 443.
    #[serde(rename = "DERPPort", skip_serializing_if = "is_zero_i32")]
    pub derp_port: i32,
    #[serde(rename = "InsecureForTests", skip_serializing_if = "is_false")]
    pub insecure_for_tests: bool,
}
