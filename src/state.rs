//! The one place that owns tailnet state and its change notifications.
//!
//! Readers get an immutable `Arc<World>` (never blocking). Every mutation goes
//! through [`StateHandle`], whose methods run as jobs on a single writer task
//! (`writer`): validate against the current World, commit to the database,
//! build the next World, publish it, then hand a typed [`change::Change`] to
//! the map sessions. Because the writer publishes, callers (control protocol,
//! admin API, scheduler) cannot forget to propagate a change.
//!
//! May depend on: `types`, `db`, `policy`, `tailcfg` (settings only),
//! `mapper::sessions`, `clock`.

mod api_keys;
pub mod audit_log;
pub mod auth_requests;
mod batch;
pub mod certs;
pub mod change;
mod derp_maps;
pub mod dns;
pub mod events;
mod expiry;
pub mod ipam;
mod membership;
mod memo;
mod nodes;
mod oauth_clients;
mod oidc_flows;
mod oidc_login;
pub mod policy;
mod preauth_keys;
pub mod primary;
mod register;
mod replication;
mod settings;
mod users;
mod world;
mod writer;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

pub use api_keys::ApiKeyRef;
pub use batch::BatchCounts;
pub use derp_maps::DerpMaps;
pub use oidc_login::OidcLogin;
pub use preauth_keys::NewKey;
pub use primary::Primaries;
pub use register::{PendingOwner, RegisterInput, RegisterOutcome};
pub use replication::ReplicaOptions;
pub use world::{Certs, Services, Settings, World};
pub use writer::{Core, MapUpdate, StateHandle, start};

use crate::db;

/// What can go wrong in a state operation, by kind; transports map these to
/// status codes in one place each (`http::error` for the control protocol;
/// the admin API goes through `admin::Error`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// The object changed since the caller read it (API v2's `If-Match`).
    #[error("{0}")]
    Stale(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The database refused or did not answer; the operation changed
    /// nothing (its transaction was rolled back).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("the state writer has stopped")]
    Stopped,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<db::Error> for Error {
    fn from(e: db::Error) -> Self {
        match e {
            db::Error::NotFound(m) => Error::NotFound(m.to_string()),
            db::Error::Conflict(m) => Error::Conflict(m),
            e @ db::Error::KeyAlreadyUsed => Error::Conflict(e.to_string()),
            db::Error::Sqlx(
                e @ (sqlx::Error::Database(_)
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed),
            ) => Error::Unavailable(e.to_string()),
            e @ db::Error::Aborted(_) => Error::Unavailable(e.to_string()),
            other => Error::Internal(other.to_string()),
        }
    }
}

/// Read-only access to the newest World, for DNS, whois and the mapper.
#[derive(Clone, Debug)]
pub struct StateReader(watch::Receiver<Arc<World>>);

impl StateReader {
    pub fn world(&self) -> Arc<World> {
        // Clone the Arc out; never hold the borrow across an await.
        self.0.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<World>> {
        self.0.clone()
    }
}

/// Options fixed at start-up that shape state transitions.
#[derive(Debug, Clone)]
pub struct Options {
    pub ipam: ipam::Ipam,
    pub ephemeral_inactivity_timeout: std::time::Duration,
    pub policy_store: policy::PolicyStore,
    /// In file mode: the policy file's text at boot (`None`: no file).
    pub policy_text: Option<String>,
    /// Refuse policies using clawscale extensions (`policy.strict`).
    pub policy_strict: bool,
    /// The config file's DNS settings, which API v2's changes apply to.
    pub dns: dns::DnsBase,
    /// Key expiry and device approval for new logins.
    pub login: LoginRules,
    /// How replicas on one PostgreSQL database follow each other.
    pub replica: ReplicaOptions,
}

/// How logins set a node's key expiry and authorization
/// (`node.expiry`, `node.require_approval`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LoginRules {
    /// Key lifetime from each login of a user-owned node; `None`: keys do
    /// not expire. Tagged nodes never get one (Tailscale's rule).
    pub node_expiry: Option<chrono::Duration>,
    /// New nodes start unauthorized unless their key is preauthorized.
    pub require_approval: bool,
}

/// Optional expiry for a new key: `None` = never.
pub type Expiration = Option<DateTime<Utc>>;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
