//! `/machine/map` request and response (tailcfg `MapRequest`, `MapResponse`,
//! `PeerChange`, `UserProfile`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{DerpMap, DnsConfig, FilterRule, Node, Peer, is_false, is_zero_i32};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MapRequest {
    #[serde(rename = "Version")]
    pub version: i32,
    #[serde(rename = "Compress")]
    pub compress: Option<String>,
    #[serde(rename = "KeepAlive")]
    pub keep_alive: bool,
    #[serde(rename = "NodeKey")]
    pub node_key: Option<String>,
    #[serde(rename = "DiscoKey")]
    pub disco_key: Option<String>,
    #[serde(rename = "Stream")]
    pub stream: bool,
    #[serde(rename = "OmitPeers")]
    pub omit_peers: bool,
    #[serde(rename = "Hostinfo")]
    pub hostinfo: Option<serde_json::Value>,
    #[serde(rename = "Endpoints")]
    pub endpoints: Option<Vec<String>>,
}

/// One frame of the map stream. Every field is optional; absent means
/// "unchanged" for the client (control.md §4.5), so nothing empty is sent
/// unless emptiness is the message.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MapResponse {
    #[serde(rename = "KeepAlive", skip_serializing_if = "is_false")]
    pub keep_alive: bool,
    #[serde(rename = "Node", skip_serializing_if = "Option::is_none")]
    pub node: Option<Node>,
    #[serde(rename = "DERPMap", skip_serializing_if = "Option::is_none")]
    pub derp_map: Option<DerpMap>,
    /// Full peer list; only in full maps (a non-empty list replaces all).
    #[serde(rename = "Peers", skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<Peer>>,
    #[serde(rename = "PeersChanged", skip_serializing_if = "Vec::is_empty")]
    pub peers_changed: Vec<Peer>,
    #[serde(rename = "PeersRemoved", skip_serializing_if = "Vec::is_empty")]
    pub peers_removed: Vec<i64>,
    #[serde(rename = "PeersChangedPatch", skip_serializing_if = "Vec::is_empty")]
    pub peers_changed_patch: Vec<PeerChange>,
    #[serde(rename = "DNSConfig", skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<DnsConfig>,
    #[serde(rename = "Domain", skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(rename = "CollectServices", skip_serializing_if = "Option::is_none")]
    pub collect_services: Option<bool>,
    /// Named filter chunks (`mapper::build::filter`): a chunk's rules, or
    /// `null` to delete it; `"*": null` clears them all first. Unlike
    /// `PacketFilter: []`, which Go's `omitempty` drops, this can say "no
    /// rules" (deny all inbound).
    #[serde(rename = "PacketFilters", skip_serializing_if = "Option::is_none")]
    pub packet_filters: Option<BTreeMap<String, Option<Vec<FilterRule>>>>,
    /// Absent = unchanged; `{"rules": []}` = no SSH access.
    #[serde(rename = "SSHPolicy", skip_serializing_if = "Option::is_none")]
    pub ssh_policy: Option<super::SshPolicy>,
    #[serde(rename = "UserProfiles", skip_serializing_if = "Vec::is_empty")]
    pub user_profiles: Vec<UserProfile>,
    #[serde(rename = "ControlTime", skip_serializing_if = "Option::is_none")]
    pub control_time: Option<DateTime<Utc>>,
    #[serde(rename = "Debug", skip_serializing_if = "Option::is_none")]
    pub debug: Option<Debug>,
}

/// `Debug{DisableLogTail:true}` keeps clients from uploading logs to
/// Tailscale's log service.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Debug {
    #[serde(rename = "DisableLogTail", skip_serializing_if = "is_false")]
    pub disable_log_tail: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UserProfile {
    #[serde(rename = "ID")]
    pub id: i64,
    #[serde(rename = "LoginName")]
    pub login_name: String,
    #[serde(rename = "DisplayName")]
    pub display_name: String,
}

/// A light peer update (`PeersChangedPatch` entry). Absent fields are
/// unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PeerChange {
    #[serde(rename = "NodeID")]
    pub node_id: i64,
    #[serde(rename = "DERPRegion", skip_serializing_if = "is_zero_i32")]
    pub derp_region: i32,
    #[serde(rename = "Endpoints", skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<String>>,
    #[serde(rename = "Key", skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(rename = "DiscoKey", skip_serializing_if = "Option::is_none")]
    pub disco_key: Option<String>,
    #[serde(rename = "Online", skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    #[serde(rename = "LastSeen", skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<DateTime<Utc>>,
    #[serde(rename = "KeyExpiry", skip_serializing_if = "Option::is_none")]
    pub key_expiry: Option<DateTime<Utc>>,
}

impl MapResponse {
    pub fn keep_alive() -> Self {
        MapResponse {
            keep_alive: true,
            ..Default::default()
        }
    }

    /// True when the frame carries nothing a client would act on.
    pub fn is_empty_delta(&self) -> bool {
        self.node.is_none()
            && self.derp_map.is_none()
            && self.peers.is_none()
            && self.peers_changed.is_empty()
            && self.peers_removed.is_empty()
            && self.peers_changed_patch.is_empty()
            && self.dns_config.is_none()
            && self.packet_filters.is_none()
            && self.ssh_policy.is_none()
            && self.user_profiles.is_empty()
            && self.domain.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_is_minimal() {
        let j = serde_json::to_string(&MapResponse::keep_alive()).unwrap();
        assert_eq!(j, r#"{"KeepAlive":true}"#);
    }

    #[test]
    fn patch_omits_unchanged_fields() {
        let p = PeerChange {
            node_id: 7,
            derp_region: 999,
            online: Some(false),
            ..Default::default()
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"NodeID":7,"DERPRegion":999,"Online":false})
        );
    }

    #[test]
    fn parses_lite_request() {
        let r: MapRequest = serde_json::from_str(
            r#"{"Version":133,"Compress":"zstd","KeepAlive":true,"OmitPeers":true,
            "Endpoints":["10.0.0.1:41641"],"EndpointTypes":[1],"Hostinfo":{"NetInfo":{"PreferredDERP":999}}}"#,
        )
        .unwrap();
        assert!(!r.stream && r.omit_peers);
        assert_eq!(r.endpoints.unwrap(), vec!["10.0.0.1:41641"]);
    }
}
