//! Who is asking: the [`Caller`] every operation takes, built by a transport
//! after it authenticated the request, and the one authorisation rule
//! ([`Grants::allows`]) every operation applies before it does anything.
//!
//! A transport decides *who* (an API key's prefix and scope, a local uid
//! from `SO_PEERCRED`, later an OAuth client); the operations decide *what
//! that may do*, so a new transport cannot forget a check.

use std::fmt;

use crate::types::{NodeId, Scope};

/// What an operation works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Users,
    Nodes,
    PreAuthKeys,
    ApiKeys,
    Policy,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grants {
    /// Local trust: a process allowed onto the admin socket, or the server
    /// itself (policy file reloads).
    All,
    /// An API key's scope.
    Scope(Scope),
}

impl Grants {
    /// The authorisation rule. `admin` may do everything, `admin:read` may
    /// read everything, `whois` nothing here (its routes are `whois`'s own).
    pub fn allows(self, _resource: Resource, access: Access) -> bool {
        match self {
            Grants::All | Grants::Scope(Scope::Admin) => true,
            Grants::Scope(Scope::AdminRead) => access == Access::Read,
            Grants::Scope(Scope::Whois) => false,
        }
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
        Err(super::Error::PermissionDenied(match self.grants {
            Grants::Scope(s) => format!("an API key with scope {s} may not {what} this"),
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
            Resource::PreAuthKeys,
            Resource::ApiKeys,
            Resource::Policy,
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
