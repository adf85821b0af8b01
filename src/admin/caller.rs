//! Who is asking: the [`Caller`] every operation takes, built by a transport
//! after it authenticated the request, and the one authorisation rule
//! ([`Grants::allows`]) every operation applies before it does anything.
//!
//! A transport decides *who* (an API key's prefix and scope, a local uid
//! from `SO_PEERCRED`, an OAuth client's access token); the operations
//! decide *what that may do*, so a new transport cannot forget a check.

use std::fmt;
use std::sync::Arc;

use crate::types::{NodeId, OAuthScope, Scope, ScopeSet};

/// What an operation works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Users,
    Nodes,
    /// A node's subnet and exit routes (API v2 `devices:routes`).
    Routes,
    PreAuthKeys,
    ApiKeys,
    Policy,
    /// The DNS settings API v2 changes (nameservers, search paths, MagicDNS).
    Dns,
    /// OAuth clients of API v2.
    OAuthClients,
    /// Pending interactive registrations (`/auth/*`, `node/register`).
    Registrations,
    Audit,
    Health,
}

/// Whether an operation reads or changes state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// What a caller may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grants {
    /// Local trust: a process allowed onto the admin socket, or the server
    /// itself (policy file reloads).
    All,
    /// An API key's scope.
    Scope(Scope),
    /// An OAuth access token (API v2): its scopes, and the tags of its
    /// client, which bound the tags of what it creates or tags.
    OAuth {
        scopes: ScopeSet,
        tags: Arc<[String]>,
    },
}

impl Grants {
    /// The authorisation rule. `admin` may do everything, `admin:read` may
    /// read everything, `whois` nothing here (its routes are `whois`'s own).
    /// OAuth scopes map as Tailscale's do (`oauth_allows`).
    pub fn allows(&self, resource: Resource, access: Access) -> bool {
        match self {
            Grants::All | Grants::Scope(Scope::Admin) => true,
            Grants::Scope(Scope::AdminRead) => access == Access::Read,
            Grants::Scope(Scope::Whois) => false,
            Grants::OAuth { scopes, .. } => oauth_allows(*scopes, resource, access),
        }
    }

    /// The tags an OAuth client may put on keys and devices (`None`: no
    /// such bound).
    pub fn tag_bound(&self) -> Option<&[String]> {
        match self {
            Grants::OAuth { tags, .. } => Some(tags),
            _ => None,
        }
    }
}

/// Tailscale's scopes over clawscale's resources: each scope gives write
/// (and read) on its resource, its `:read` form read only; `all` and
/// `all:read` cover every resource API v2 serves. Nothing gives an OAuth
/// token API keys, OAuth clients, users, registrations, the audit log or
/// health (Tailscale's scopes for those have no clawscale counterpart).
fn oauth_allows(scopes: ScopeSet, resource: Resource, access: Access) -> bool {
    use OAuthScope::*;
    let (write, read) = match resource {
        Resource::PreAuthKeys => (AuthKeys, AuthKeysRead),
        Resource::Nodes => (DevicesCore, DevicesCoreRead),
        Resource::Routes => (DevicesRoutes, DevicesRoutesRead),
        Resource::Policy => (PolicyFile, PolicyFileRead),
        Resource::Dns => (Dns, DnsRead),
        Resource::Users
        | Resource::ApiKeys
        | Resource::OAuthClients
        | Resource::Registrations
        | Resource::Audit
        | Resource::Health => return false,
    };
    let has = |s| scopes.contains(s);
    match access {
        Access::Write => has(All) || has(write),
        Access::Read => has(All) || has(AllRead) || has(write) || has(read),
    }
}

/// Who is acting, as the audit log names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An API key, by its public prefix (never the secret).
    ApiKey(String),
    /// An OAuth client of API v2, by client id.
    OAuthClient(String),
    /// A process on the admin unix socket, by its uid (`SO_PEERCRED`); `None`
    /// when the kernel did not say.
    LocalUser(Option<u32>),
    /// The watched policy file.
    PolicyFile,
    /// A node over the control protocol.
    Node(NodeId),
    /// The server itself (timers, clean-up).
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::ApiKey(prefix) => write!(f, "apikey:{prefix}"),
            Actor::OAuthClient(id) => write!(f, "oauth:{id}"),
            Actor::LocalUser(Some(uid)) => write!(f, "uid:{uid}"),
            Actor::LocalUser(None) => f.write_str("uid:unknown"),
            Actor::PolicyFile => f.write_str("policy-file"),
            Actor::Node(id) => write!(f, "node:{id}"),
            Actor::System => f.write_str("system"),
        }
    }
}

/// The API surface a request came through (recorded in the audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// REST `/api/v1`.
    RestV1,
    /// REST `/api/v2` (Tailscale's API).
    RestV2,
    /// headscale.v1 gRPC.
    Grpc,
    /// The server's own watchers and timers.
    Internal,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::RestV1 => "rest-v1",
            Transport::RestV2 => "rest-v2",
            Transport::Grpc => "grpc",
            Transport::Internal => "internal",
        }
    }
}

/// An authenticated caller of the operations layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub actor: Actor,
    pub grants: Grants,
    pub transport: Transport,
    /// The request's id (`X-Request-Id` or generated), for the audit log.
    pub request_id: Option<String>,
}

impl Caller {
    /// A process on the admin unix socket.
    pub fn local(uid: Option<u32>, transport: Transport) -> Caller {
        Caller {
            actor: Actor::LocalUser(uid),
            grants: Grants::All,
            transport,
            request_id: None,
        }
    }

    /// A request authenticated with an API key.
    pub fn api_key(prefix: &str, scope: Scope, transport: Transport) -> Caller {
        Caller {
            actor: Actor::ApiKey(prefix.to_string()),
            grants: Grants::Scope(scope),
            transport,
            request_id: None,
        }
    }

    /// A request with an OAuth access token of `client_id` (API v2).
    pub fn oauth(client_id: &str, scopes: ScopeSet, tags: Arc<[String]>) -> Caller {
        Caller {
            actor: Actor::OAuthClient(client_id.to_string()),
            grants: Grants::OAuth { scopes, tags },
            transport: Transport::RestV2,
            request_id: None,
        }
    }

    /// The server acting on its own behalf for `actor` (policy file).
    pub fn internal(actor: Actor) -> Caller {
        Caller {
            actor,
            grants: Grants::All,
            transport: Transport::Internal,
            request_id: None,
        }
    }

    pub fn with_request_id(mut self, id: impl Into<String>) -> Caller {
        self.request_id = Some(id.into());
        self
    }

    /// Checks the grants; the error names what was refused.
    pub fn require(&self, resource: Resource, access: Access) -> Result<(), super::Error> {
        if self.grants.allows(resource, access) {
            return Ok(());
        }
        let what = match access {
            Access::Read => "read",
            Access::Write => "change",
        };
        Err(super::Error::PermissionDenied(match &self.grants {
            Grants::Scope(s) => format!("an API key with scope {s} may not {what} this"),
            Grants::OAuth { scopes, .. } => format!(
                "an access token with scopes [{}] may not {what} this",
                scopes.to_text()
            ),
            Grants::All => format!("not allowed to {what} this"),
        }))
    }
}

/// A fresh request id: 16 random hex digits.
pub fn new_request_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A client-supplied request id, if it is short printable ASCII (it goes
/// into the audit log and a response header verbatim).
pub fn accept_request_id(id: &str) -> Option<String> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_map_to_grants() {
        let all = [
            Resource::Users,
            Resource::Nodes,
            Resource::Routes,
            Resource::PreAuthKeys,
            Resource::ApiKeys,
            Resource::Policy,
            Resource::Dns,
            Resource::OAuthClients,
            Resource::Registrations,
            Resource::Audit,
            Resource::Health,
        ];
        for r in all {
            for a in [Access::Read, Access::Write] {
                assert!(Grants::All.allows(r, a));
                assert!(Grants::Scope(Scope::Admin).allows(r, a));
                assert!(!Grants::Scope(Scope::Whois).allows(r, a));
            }
            assert!(Grants::Scope(Scope::AdminRead).allows(r, Access::Read));
            assert!(!Grants::Scope(Scope::AdminRead).allows(r, Access::Write));
        }
    }

    #[test]
    fn oauth_scopes_map_to_their_resources_only() {
        let g = |names: &str| Grants::OAuth {
            scopes: ScopeSet::parse([names]).unwrap(),
            tags: Arc::from(vec![]),
        };
        let keys = g("auth_keys");
        assert!(keys.allows(Resource::PreAuthKeys, Access::Write));
        assert!(keys.allows(Resource::PreAuthKeys, Access::Read));
        for r in [
            Resource::Nodes,
            Resource::Routes,
            Resource::Policy,
            Resource::Dns,
        ] {
            assert!(!keys.allows(r, Access::Read), "{r:?}");
            assert!(!keys.allows(r, Access::Write), "{r:?}");
        }
        let devices = g("devices:core");
        assert!(devices.allows(Resource::Nodes, Access::Write));
        assert!(!devices.allows(Resource::Routes, Access::Write));
        let reader = g("devices:core:read devices:routes:read dns:read policy_file:read");
        for r in [
            Resource::Nodes,
            Resource::Routes,
            Resource::Dns,
            Resource::Policy,
        ] {
            assert!(reader.allows(r, Access::Read), "{r:?}");
            assert!(!reader.allows(r, Access::Write), "{r:?}");
        }
        let all = g("all");
        let all_read = g("all:read");
        for r in [
            Resource::PreAuthKeys,
            Resource::Nodes,
            Resource::Routes,
            Resource::Dns,
        ] {
            assert!(all.allows(r, Access::Write));
            assert!(all_read.allows(r, Access::Read));
            assert!(!all_read.allows(r, Access::Write));
        }
        // Never clawscale's own administration.
        for r in [
            Resource::ApiKeys,
            Resource::OAuthClients,
            Resource::Users,
            Resource::Audit,
        ] {
            assert!(!all.allows(r, Access::Read), "{r:?}");
        }
        let c = Caller::oauth(
            "k1",
            ScopeSet::parse(["dns:read"]).unwrap(),
            Arc::from(vec![]),
        );
        let e = c.require(Resource::Dns, Access::Write).unwrap_err();
        assert!(e.to_string().contains("dns:read"), "{e}");
        assert_eq!(c.actor.to_string(), "oauth:k1");
    }

    #[test]
    fn actors_render_for_the_audit_log() {
        assert_eq!(
            Actor::ApiKey("0123456789ab".into()).to_string(),
            "apikey:0123456789ab"
        );
        assert_eq!(Actor::LocalUser(Some(0)).to_string(), "uid:0");
        assert_eq!(Actor::PolicyFile.to_string(), "policy-file");
        assert_eq!(Actor::Node(NodeId(7)).to_string(), "node:7");
        assert_eq!(Actor::System.to_string(), "system");
        assert_eq!(Actor::OAuthClient("k1".into()).to_string(), "oauth:k1");
    }

    #[test]
    fn request_ids_are_checked() {
        assert_eq!(
            accept_request_id("abc-123_x.y:z").as_deref(),
            Some("abc-123_x.y:z")
        );
        assert_eq!(accept_request_id(""), None);
        assert_eq!(accept_request_id("has space"), None);
        assert_eq!(accept_request_id("line\nbreak"), None);
        assert_eq!(accept_request_id(&"a".repeat(129)), None);
        assert_eq!(new_request_id().len(), 16);
    }

    #[test]
    fn refusals_name_the_scope() {
        let c = Caller::api_key("0123456789ab", Scope::AdminRead, Transport::RestV1);
        assert!(c.require(Resource::Nodes, Access::Read).is_ok());
        let e = c.require(Resource::Nodes, Access::Write).unwrap_err();
        assert!(matches!(e, super::super::Error::PermissionDenied(_)));
        assert!(e.to_string().contains("admin:read"), "{e}");
    }
}
