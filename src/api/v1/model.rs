//! The JSON of REST `/api/v1`, field for field Headscale's (`hscontrol/api/
//! v1`, which follows protojson): camelCase names, 64-bit ids as decimal
//! strings, RFC 3339 times, every field emitted (an unset time is `null`
//! where Headscale's field is nullable and the zero instant
//! `0001-01-01T00:00:00Z` where it is not), empty lists as `[]`, enums as
//! their proto names. Request bodies take every field as optional, read
//! `null` as absent (as protojson does), and refuse unknown fields.
//!
//! The CLI decodes the same types, so client and server cannot drift.
//! Conversions from the operations layer's types live here too; nothing
//! here holds logic beyond presentation.

use chrono::{DateTime, TimeZone, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::admin::{NodeInfo, PolicyInfo, PreAuthKeyInfo};
use crate::mapper::build::TAGGED_DEVICES_USER_ID;
use crate::types;

/// Go's zero `time.Time`, which Headscale emits for unset non-nullable
/// times.
pub fn zero_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid instant")
}

fn id(n: i64) -> String {
    n.to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Decimal uint64.
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub display_name: String,
    pub email: String,
    pub provider_id: String,
    pub provider: String,
    pub profile_pic_url: String,
}

impl From<&types::User> for User {
    fn from(u: &types::User) -> Self {
        User {
            id: id(u.id.0),
            name: u.name.clone(),
            created_at: u.created_at,
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            provider_id: u.provider_id(),
            provider: u.provider().into(),
            profile_pic_url: u.profile_pic_url.clone(),
        }
    }
}

impl User {
    /// The pseudo-user node lists show tagged nodes under (Headscale's
    /// `types.TaggedDevices`; same id as in map responses).
    pub fn tagged_devices() -> User {
        User {
            id: TAGGED_DEVICES_USER_ID.to_string(),
            name: "tagged-devices".into(),
            created_at: zero_time(),
            display_name: "Tagged Devices".into(),
            email: String::new(),
            provider_id: String::new(),
            provider: String::new(),
            profile_pic_url: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum RegisterMethod {
    #[serde(rename = "REGISTER_METHOD_UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "REGISTER_METHOD_AUTH_KEY")]
    AuthKey,
    #[serde(rename = "REGISTER_METHOD_CLI")]
    Cli,
    #[serde(rename = "REGISTER_METHOD_OIDC")]
    Oidc,
}

/// A pre-auth key as embedded in a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePreAuthKey {
    pub user: Option<User>,
    pub id: String,
    /// Masked: `cskey-auth-<prefix>-***`.
    pub key: String,
    pub reusable: bool,
    pub ephemeral: bool,
    pub used: bool,
    pub expiration: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub acl_tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub id: String,
    pub machine_key: String,
    pub node_key: String,
    pub disco_key: String,
    pub ip_addresses: Vec<String>,
    /// The client's hostname.
    pub name: String,
    pub user: Option<User>,
    pub last_seen: Option<DateTime<Utc>>,
    pub expiry: Option<DateTime<Utc>>,
    pub pre_auth_key: Option<NodePreAuthKey>,
    pub created_at: DateTime<Utc>,
    pub register_method: RegisterMethod,
    /// The MagicDNS name.
    pub given_name: String,
    pub online: bool,
    pub approved_routes: Vec<String>,
    pub available_routes: Vec<String>,
    pub subnet_routes: Vec<String>,
    pub tags: Vec<String>,
    /// clawscale extension (`dns.certs`): names the node proved to a CA
    /// through an ACME DNS-01 challenge. Absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<NodeCertificate>,
}

/// The last ACME challenge a node published for one of its names. The
/// server never sees the certificate: `expectedExpiry` is when one issued
/// at that moment would expire, assuming the CA's usual 90-day lifetime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeCertificate {
    pub domain: String,
    pub last_challenge: DateTime<Utc>,
    pub expected_expiry: DateTime<Utc>,
}

/// Let's Encrypt's certificate lifetime, the one `expectedExpiry` assumes.
pub const USUAL_CERT_LIFETIME_DAYS: i64 = 90;

/// How an endpoint presents a node; Headscale's endpoints differ here and
/// clients rely on what each one does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeView {
    /// `GET /node`: tagged nodes under the `tagged-devices` user, served
    /// routes (exit routes included) in `subnetRoutes`.
    Listed,
    /// `GET /node/{id}` and the mutations: a tagged node has no user (tags
    /// are its owner) and `subnetRoutes` is empty.
    Single,
    /// `approve_routes`: as `Single`, with the served routes other than
    /// exit routes in `subnetRoutes`.
    Routes,
}

fn strings<T: ToString>(v: impl IntoIterator<Item = T>) -> Vec<String> {
    v.into_iter().map(|x| x.to_string()).collect()
}

fn is_exit(r: &IpNet) -> bool {
    r.prefix_len() == 0
}

/// Masked text of a pre-auth key: its public prefix only.
pub fn masked_preauth_key(prefix: &str) -> String {
    format!("cskey-auth-{prefix}-***")
}

impl Node {
    pub fn new(i: &NodeInfo, view: NodeView) -> Node {
        let n = &i.node;
        let owner = i.owner.as_deref().map(User::from);
        let user = match (n.is_tagged(), view) {
            (false, _) => owner.clone(),
            (true, NodeView::Listed) => Some(User::tagged_devices()),
            (true, _) => None,
        };
        let subnet_routes = match view {
            NodeView::Listed => strings(n.served_routes()),
            NodeView::Single => vec![],
            NodeView::Routes => strings(n.served_routes().into_iter().filter(|r| !is_exit(r))),
        };
        let pre_auth_key = i.auth_key.as_ref().map(|k| NodePreAuthKey {
            user: owner.clone(),
            id: id(k.id.0),
            key: masked_preauth_key(&k.prefix),
            reusable: k.reusable,
            ephemeral: k.ephemeral,
            used: k.used,
            expiration: k.expiration,
            created_at: Some(k.created_at),
            acl_tags: k.tags.clone(),
        });
        Node {
            id: id(n.id.0),
            machine_key: n.machine_key.to_string(),
            node_key: n.node_key.to_string(),
            disco_key: n.disco_key.to_string(),
            ip_addresses: strings(n.addresses()),
            name: n.hostname.clone(),
            user,
            last_seen: n.last_seen,
            expiry: n.expiry,
            pre_auth_key,
            created_at: n.created_at,
            // A node without a key was registered by an operator.
            register_method: if n.auth_key_id.is_some() {
                RegisterMethod::AuthKey
            } else {
                RegisterMethod::Cli
            },
            given_name: n.given_name.to_string(),
            online: i.online,
            approved_routes: strings(&n.approved_routes),
            available_routes: strings(n.routable_ips()),
            subnet_routes,
            tags: n.tags.clone(),
            certificates: i
                .certificates
                .iter()
                .map(|(domain, at)| NodeCertificate {
                    domain: domain.clone(),
                    last_challenge: *at,
                    expected_expiry: *at + chrono::Duration::days(USUAL_CERT_LIFETIME_DAYS),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreAuthKey {
    pub user: Option<User>,
    pub id: String,
    /// The full secret in the creation response, masked everywhere else.
    pub key: String,
    pub reusable: bool,
    pub ephemeral: bool,
    pub used: bool,
    /// The zero instant when the key never expires.
    pub expiration: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub acl_tags: Vec<String>,
}

impl PreAuthKey {
    /// `key`: the secret right after creation, else the masked form.
    pub fn new(i: &PreAuthKeyInfo, key: String) -> PreAuthKey {
        let k = &i.key;
        PreAuthKey {
            user: i.owner.as_deref().map(User::from),
            id: id(k.id.0),
            key,
            reusable: k.reusable,
            ephemeral: k.ephemeral,
            used: k.used,
            expiration: k.expiration.unwrap_or_else(zero_time),
            created_at: k.created_at,
            acl_tags: k.tags.clone(),
        }
    }

    pub fn masked(i: &PreAuthKeyInfo) -> PreAuthKey {
        PreAuthKey::new(i, masked_preauth_key(&i.key.prefix))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: String,
    /// Masked: `cskey-api-<prefix>-***`.
    pub prefix: String,
    pub expiration: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    /// clawscale extension: `admin`, `admin:read` or `whois`.
    pub scope: String,
}

impl From<&types::ApiKey> for ApiKey {
    fn from(k: &types::ApiKey) -> Self {
        ApiKey {
            id: id(k.id),
            prefix: types::api_key::masked(&k.prefix),
            expiration: k.expiration,
            created_at: Some(k.created_at),
            last_seen: k.last_seen,
            scope: k.scope.to_string(),
        }
    }
}

// === responses ===

/// An empty object, `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserResponse {
    pub user: User,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListUsersResponse {
    pub users: Vec<User>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeResponse {
    pub node: Node,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListNodesResponse {
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreAuthKeyResponse {
    pub pre_auth_key: PreAuthKey,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListPreAuthKeysResponse {
    pub pre_auth_keys: Vec<PreAuthKey>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateApiKeyResponse {
    /// The full secret, shown only here.
    pub api_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListApiKeysResponse {
    pub api_keys: Vec<ApiKey>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyResponse {
    pub policy: String,
    /// The zero instant when unknown (a policy loaded at boot).
    pub updated_at: DateTime<Utc>,
}

impl From<&PolicyInfo> for PolicyResponse {
    fn from(p: &PolicyInfo) -> Self {
        PolicyResponse {
            policy: p.text.to_string(),
            updated_at: p.updated_at.unwrap_or_else(zero_time),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthResponse {
    pub database_connectivity: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BackfillNodeIpsResponse {
    pub changes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditResponse {
    pub entries: Vec<crate::admin::audit::Entry>,
}

// === requests ===

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CreateUserRequest {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// Not supported: must be empty.
    pub picture_url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CreatePreAuthKeyRequest {
    /// The owner's id (decimal); required by clawscale.
    pub user: Option<String>,
    pub reusable: Option<bool>,
    pub ephemeral: Option<bool>,
    /// Absent: the key never expires.
    pub expiration: Option<DateTime<Utc>>,
    pub acl_tags: Option<Vec<String>>,
    /// clawscale extension: nodes joining with the key skip device
    /// approval (`node.require_approval`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preauthorized: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExpirePreAuthKeyRequest {
    pub id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CreateApiKeyRequest {
    /// Absent: the key never expires.
    pub expiration: Option<DateTime<Utc>>,
    /// clawscale extension: `admin` (default), `admin:read` or `whois`.
    pub scope: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExpireApiKeyRequest {
    pub prefix: Option<String>,
    pub id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExpireNodeRequest {
    /// When; now if absent.
    pub expiry: Option<DateTime<Utc>>,
    /// Never expire (exclusive with `expiry`).
    pub disable_expiry: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SetTagsRequest {
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SetApprovedRoutesRequest {
    pub routes: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PolicyRequest {
    /// The HuJSON policy document.
    pub policy: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuthRegisterRequest {
    /// The user's name.
    pub user: Option<String>,
    pub auth_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuthDecisionRequest {
    pub auth_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DebugCreateNodeRequest {
    /// The user's name.
    pub user: Option<String>,
    /// The auth id to register it under.
    pub key: Option<String>,
    pub name: Option<String>,
    pub routes: Option<Vec<String>>,
}

/// An OAuth client of API v2 (clawscale extension); never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthClient {
    /// The client id (12 hex digits).
    pub id: String,
    pub scopes: Vec<String>,
    pub tags: Vec<String>,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

impl From<&types::OAuthClient> for OAuthClient {
    fn from(c: &types::OAuthClient) -> Self {
        OAuthClient {
            id: c.client_id.clone(),
            scopes: c.scopes.iter().map(|s| s.as_str().to_string()).collect(),
            tags: c.tags.clone(),
            description: c.description.clone(),
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListOAuthClientsResponse {
    pub oauth_clients: Vec<OAuthClient>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CreateOAuthClientRequest {
    /// Tailscale's scope names: `all`, `auth_keys`, `devices:core`,
    /// `devices:routes`, `dns`, `policy_file`, each also `…:read`.
    pub scopes: Option<Vec<String>>,
    /// `tag:` names; required with `all`, `auth_keys` or `devices:core`.
    pub tags: Option<Vec<String>>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateOAuthClientResponse {
    pub oauth_client: OAuthClient,
    /// `tskey-client-…`: shown only here.
    pub secret: String,
}

#[cfg(test)]
mod tests;
