//! The JSON of API v2, field for field Tailscale's (as its API documentation
//! and its clients have it: `tailscale.com/client/tailscale/v2`, the
//! Terraform provider, the `tailscale` PyPI package): camelCase names,
//! string ids, RFC 3339 times, Go's zero time for "never". Conversions from
//! the operations layer's types live here; nothing here holds logic beyond
//! presentation.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::admin::{DnsView, NodeInfo, PreAuthKeyInfo, TAGGED_OWNER};
use crate::types::Node;

/// Go's zero `time.Time`: what Tailscale sends for a key that never expires.
fn zero_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid instant")
}

fn strings<T: ToString>(v: impl IntoIterator<Item = T>) -> Vec<String> {
    v.into_iter().map(|x| x.to_string()).collect()
}

/// Which fields a device answer holds (`?fields=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fields {
    /// Without routes and client connectivity.
    Default,
    All,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSupports {
    pub hair_pinning: bool,
    pub ipv6: bool,
    pub pcp: bool,
    pub pmp: bool,
    pub udp: bool,
    pub upnp: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientConnectivity {
    pub endpoints: Vec<String>,
    /// The home DERP region, as `"<id>"` (empty when none).
    pub derp: String,
    #[serde(rename = "mappingVariesByDestIP")]
    pub mapping_varies_by_dest_ip: bool,
    /// Per-region latency; clawscale does not report it (always empty).
    pub latency: BTreeMap<String, serde_json::Value>,
    pub client_supports: ClientSupports,
}

/// A device (`/device/{id}`, `/tailnet/-/devices`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// Tailnet addresses, IPv4 first.
    pub addresses: Vec<String>,
    /// The numeric id (Tailscale's legacy `id`).
    pub id: String,
    /// The stable node id (`n<id>`), also what maps carry as `StableID`.
    pub node_id: String,
    /// The owner's login; `tagged-devices` for a tagged device.
    pub user: String,
    /// The MagicDNS name (FQDN, no trailing dot).
    pub name: String,
    /// The client's own hostname.
    pub hostname: String,
    pub client_version: String,
    pub update_available: bool,
    pub os: String,
    pub created: DateTime<Utc>,
    /// When the device was last connected; absent while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<DateTime<Utc>>,
    pub key_expiry_disabled: bool,
    /// Go's zero time when key expiry is disabled.
    pub expires: DateTime<Utc>,
    pub authorized: bool,
    pub is_external: bool,
    pub machine_key: String,
    pub node_key: String,
    pub blocks_incoming_connections: bool,
    pub tags: Vec<String>,
    pub tailnet_lock_key: String,
    pub tailnet_lock_error: String,
    pub is_ephemeral: bool,
    pub multiple_connections: bool,
    pub connected_to_control: bool,
    /// `fields=all` only: approved routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_routes: Option<Vec<String>>,
    /// `fields=all` only: routes the client advertises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertised_routes: Option<Vec<String>>,
    /// `fields=all` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_connectivity: Option<ClientConnectivity>,
}

fn hostinfo_str(n: &Node, field: &str) -> String {
    n.hostinfo
        .get(field)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

fn net_info_flag(n: &Node, field: &str) -> bool {
    n.hostinfo
        .get("NetInfo")
        .and_then(|i| i.get(field))
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

fn connectivity(n: &Node) -> ClientConnectivity {
    ClientConnectivity {
        endpoints: n.endpoints.clone(),
        derp: if n.home_derp > 0 {
            n.home_derp.to_string()
        } else {
            String::new()
        },
        mapping_varies_by_dest_ip: net_info_flag(n, "MappingVariesByDestIP"),
        latency: BTreeMap::new(),
        client_supports: ClientSupports {
            hair_pinning: net_info_flag(n, "HairPinning"),
            ipv6: net_info_flag(n, "WorkingIPv6"),
            pcp: net_info_flag(n, "PCP"),
            pmp: net_info_flag(n, "PMP"),
            udp: net_info_flag(n, "WorkingUDP"),
            upnp: net_info_flag(n, "UPnP"),
        },
    }
}

impl Device {
    pub fn new(i: &NodeInfo, base_domain: &str, fields: Fields) -> Device {
        let n = &i.node;
        let user = if n.is_tagged() {
            TAGGED_OWNER.to_string()
        } else {
            i.owner
                .as_deref()
                .map(|u| u.login_name().to_string())
                .unwrap_or_default()
        };
        let all = fields == Fields::All;
        Device {
            addresses: strings(n.addresses()),
            id: n.id.0.to_string(),
            node_id: format!("n{}", n.id.0),
            user,
            name: n
                .given_name
                .fqdn(base_domain)
                .trim_end_matches('.')
                .to_string(),
            hostname: n.hostname.clone(),
            client_version: hostinfo_str(n, "IPNVersion"),
            update_available: false,
            os: hostinfo_str(n, "OS"),
            created: n.created_at,
            last_seen: if i.online { None } else { n.last_seen },
            key_expiry_disabled: n.expiry.is_none(),
            expires: n.expiry.unwrap_or_else(zero_time),
            authorized: n.authorized,
            is_external: false,
            machine_key: n.machine_key.to_string(),
            node_key: n.node_key.to_string(),
            blocks_incoming_connections: n
                .hostinfo
                .get("ShieldsUp")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            tags: n.tags.clone(),
            tailnet_lock_key: String::new(),
            tailnet_lock_error: String::new(),
            is_ephemeral: n.ephemeral,
            multiple_connections: false,
            connected_to_control: i.online,
            enabled_routes: all.then(|| strings(&n.approved_routes)),
            advertised_routes: all.then(|| strings(n.routable_ips())),
            client_connectivity: all.then(|| connectivity(n)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DevicesResponse {
    pub devices: Vec<Device>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeviceRoutes {
    #[serde(rename = "advertisedRoutes")]
    pub advertised: Vec<String>,
    #[serde(rename = "enabledRoutes")]
    pub enabled: Vec<String>,
}

impl DeviceRoutes {
    pub fn new(n: &Node) -> DeviceRoutes {
        DeviceRoutes {
            advertised: strings(n.routable_ips()),
            enabled: strings(&n.approved_routes),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TagsRequest {
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoutesRequest {
    #[serde(default)]
    pub routes: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthorizedRequest {
    #[serde(default)]
    pub authorized: Option<bool>,
}

/// What keys created with this capability may do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateCapability {
    #[serde(default)]
    pub reusable: bool,
    #[serde(default)]
    pub ephemeral: bool,
    #[serde(default)]
    pub preauthorized: bool,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeviceCapabilities {
    #[serde(default)]
    pub create: CreateCapability,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyCapabilities {
    #[serde(default)]
    pub devices: DeviceCapabilities,
}

/// `POST /tailnet/-/keys`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateKeyRequest {
    /// Only `auth` (the default) is served.
    #[serde(default)]
    pub key_type: Option<String>,
    #[serde(default)]
    pub capabilities: KeyCapabilities,
    /// Seconds until the key expires; 0 or absent: 90 days.
    #[serde(default)]
    pub expiry_seconds: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
}

/// An auth key. `key` holds the secret only in the creation answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Key {
    pub id: String,
    pub key_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    pub description: String,
    pub created: DateTime<Utc>,
    /// Go's zero time for a key that never expires.
    pub expires: DateTime<Utc>,
    /// Seconds from creation to expiry (absent for a key without expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_seconds: Option<i64>,
    /// Expired, or single-use and used.
    pub invalid: bool,
    pub capabilities: KeyCapabilities,
    /// The creating user's id; empty for keys owned by tags.
    pub user_id: String,
}

impl Key {
    /// `secret`: the key's text right after creation, else empty.
    pub fn new(i: &PreAuthKeyInfo, secret: String, now: DateTime<Utc>) -> Key {
        let k = &i.key;
        let user_id = match i.owner.as_deref() {
            Some(u) if u.name != TAGGED_OWNER => u.id.to_string(),
            _ => String::new(),
        };
        Key {
            id: k.id.0.to_string(),
            key_type: "auth".into(),
            key: secret,
            description: k.description.clone(),
            created: k.created_at,
            expires: k.expiration.unwrap_or_else(zero_time),
            // Rounded: the expiry is fixed a moment before the row is made.
            expiry_seconds: k
                .expiration
                .map(|e| ((e - k.created_at).num_milliseconds() + 500).div_euclid(1000)),
            invalid: k.is_expired(now) || (k.used && !k.reusable),
            capabilities: KeyCapabilities {
                devices: DeviceCapabilities {
                    create: CreateCapability {
                        reusable: k.reusable,
                        ephemeral: k.ephemeral,
                        preauthorized: k.preauthorized,
                        tags: k.tags.clone(),
                    },
                },
            },
            user_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeysResponse {
    pub keys: Vec<Key>,
}

/// `GET|POST /tailnet/-/dns/nameservers`. In a request, `null` or a
/// missing `dns` returns to the config file's nameservers (a clawscale
/// extension); `[]` means none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Nameservers {
    #[serde(default)]
    pub dns: Option<Vec<String>>,
}

/// The answer to setting nameservers: the list and the MagicDNS state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NameserversResponse {
    pub dns: Vec<String>,
    #[serde(rename = "magicDNS")]
    pub magic_dns: bool,
}

/// `GET|POST /tailnet/-/dns/searchpaths` (`null`: the file's, as above).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchPaths {
    #[serde(rename = "searchPaths", default)]
    pub search_paths: Option<Vec<String>>,
}

/// `GET|POST /tailnet/-/dns/preferences` (`null`: the file's, as above).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Preferences {
    #[serde(rename = "magicDNS", default)]
    pub magic_dns: Option<bool>,
}

impl From<&DnsView> for Preferences {
    fn from(v: &DnsView) -> Self {
        Preferences {
            magic_dns: Some(v.magic_dns),
        }
    }
}

/// `POST /tailnet/-/acl/validate`: empty when the policy passes; else
/// `message` says why (Tailscale answers 200 either way).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValidateResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The token endpoint's answer (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires (3600).
    pub expires_in: i64,
    /// The token's scopes, space-separated.
    pub scope: String,
}

/// The token endpoint's error (RFC 6749 §5.2, plus Tailscale's `message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenError {
    pub error: String,
    pub error_description: String,
    pub message: String,
}
