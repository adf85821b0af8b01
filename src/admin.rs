//! The admin operations layer: every administrative operation clawscale
//! offers (users, pre-auth keys, API keys, nodes, policy, pending
//! registrations, the audit log, health), transport-neutral, in one place.
//!
//! Transports (`api::v1` REST, `api::grpc`, `api::v2`) only parse,
//! authenticate and convert: they build a [`Caller`] for each request and
//! call a method of [`Admin`]. Each method then
//! 1. checks the caller's grants ([`Caller::require`]; read or write on a
//!    [`Resource`]),
//! 2. applies the operation's rules and goes through the state writer
//!    (`state`), which commits, publishes and fans the change out,
//! 3. for a mutation, records exactly one audit line ([`audit`]) with the
//!    actor, the object before and after, and the outcome (also when it was
//!    refused or failed), and waits for it to be on disk before returning.
//!
//! Step 3 lives in one helper (`Admin::mutate`) that every mutation goes
//! through; control-protocol events (registrations, logouts, ephemeral
//! clean-up) reach the same log from the state writer's event sink, and
//! policy file reloads go through [`Admin::reload_policy_file`].
//!
//! Owns: [`Caller`] and the grant rule (`caller`), the error kinds
//! ([`Error`]), the audit log ([`audit`]) and its object views
//! (`snapshot`), the API key cache every transport authenticates with
//! ([`keycache`]), the pending-registration store ([`registrations`]), API
//! v2's OAuth clients and access tokens ([`oauth`]), and one file per
//! resource with its operations.
//!
//! May depend on: `state`, `types`, `policy` (via `state`). Nothing here
//! knows HTTP or protobuf.

pub mod audit;
pub mod caller;
mod error;
pub mod keycache;
pub mod oauth;
pub mod registrations;
mod snapshot;

mod api_keys;
mod dns;
mod nodes;
mod oidc;
mod policy;
mod preauth_keys;
mod ssh_check;
mod users;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use api_keys::key_ref as api_key_ref;
pub use caller::{Access, Actor, Caller, Grants, Resource, Transport};
pub use dns::{DnsChange, DnsView, Setting};
pub use error::{Error, Result};
pub use keycache::KeyCache;
pub use nodes::{NodeExpiry, NodeInfo, UserRef};
pub use oauth::token::TokenKey;
pub use oauth::{AccessToken, NewOAuthClient, TokenError};
pub use policy::{Expect, PolicyInfo};
pub use preauth_keys::{NewPreAuthKey, PreAuthKeyInfo, TAGGED_OWNER};
pub use registrations::{AuthId, Registrations};
pub use users::{NewUser, UserFilter};

use crate::state::StateHandle;
use crate::state::events::{Event, EventActor, EventKind};

/// The operations, shared by every transport; cheap to clone.
#[derive(Clone)]
pub struct Admin(Arc<Inner>);

struct Inner {
    state: StateHandle,
    audit: audit::Audit,
    keys: KeyCache,
    registrations: Registrations,
    clients: oauth::cache::ClientCache,
    token_key: TokenKey,
}

/// A mutation's result plus what its audit line says about it.
pub(crate) struct Done<T> {
    value: T,
    object: Option<String>,
    after: Option<Value>,
    revision: Option<String>,
}

impl<T> Done<T> {
    fn new(value: T) -> Self {
        Done {
            value,
            object: None,
            after: None,
            revision: None,
        }
    }

    /// The object, when only the operation learns it (a created id).
    fn object(mut self, object: String) -> Self {
        self.object = Some(object);
        self
    }

    fn after(mut self, after: Value) -> Self {
        self.after = Some(after);
        self
    }

    fn revision(mut self, revision: Option<String>) -> Self {
        self.revision = revision;
        self
    }
}

/// What a mutation is, for its audit line.
pub(crate) struct Mutation {
    resource: Resource,
    action: &'static str,
    object: Option<String>,
    before: Option<Value>,
}

impl Mutation {
    fn new(resource: Resource, action: &'static str) -> Self {
        Mutation {
            resource,
            action,
            object: None,
            before: None,
        }
    }

    fn on(mut self, object: String) -> Self {
        self.object = Some(object);
        self
    }

    fn before(mut self, before: Option<Value>) -> Self {
        self.before = before;
        self
    }
}

impl Admin {
    /// The operations over `state`, auditing to `audit`, signing API v2
    /// access tokens with `token_key`. Subscribes to the state writer's
    /// control-protocol events.
    pub async fn start(
        state: StateHandle,
        audit: audit::Audit,
        token_key: TokenKey,
    ) -> Result<Admin> {
        // With replicas the trail is kept in the database too, before any
        // line (an event's included) is written.
        audit.share_through(state.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        state.set_event_sink(tx).await?;
        let log = audit.clone();
        let clock = state.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                log.record_nowait(event_entry(&event, clock.now()));
            }
        });
        let registrations = Registrations::default();
        registrations.share_through(state.clone());
        Ok(Admin(Arc::new(Inner {
            keys: KeyCache::new(state.clone()),
            registrations,
            clients: oauth::cache::ClientCache::new(state.clone()),
            token_key,
            state,
            audit,
        })))
    }

    /// The API key cache transports authenticate with.
    pub fn keys(&self) -> &KeyCache {
        &self.0.keys
    }

    /// Pending interactive registrations (filled by the login flow).
    pub fn registrations(&self) -> &Registrations {
        &self.0.registrations
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.0.state.now()
    }

    /// The MagicDNS base domain node names are under (empty when none).
    pub fn base_domain(&self) -> String {
        self.0.state.world().settings.base_domain.clone()
    }

    fn state(&self) -> &StateHandle {
        &self.0.state
    }

    /// Checks that `caller` may read `resource`.
    fn read(&self, caller: &Caller, resource: Resource) -> Result<()> {
        caller.require(resource, Access::Read)
    }

    /// Runs `op` as mutation `m` for `caller`: checks the grants (a refusal
    /// is recorded too), runs it, records one audit line with the outcome,
    /// waits for the line to be on disk and returns the result.
    async fn mutate<T>(
        &self,
        caller: &Caller,
        m: Mutation,
        op: impl Future<Output = Result<Done<T>>>,
    ) -> Result<T> {
        let result = match caller.require(m.resource, Access::Write) {
            Ok(()) => op.await,
            Err(e) => Err(e),
        };
        let (object, after, revision, error) = match &result {
            Ok(d) => (
                d.object.clone().or(m.object),
                d.after.clone(),
                d.revision.clone(),
                None,
            ),
            Err(e) => (m.object, None, None, Some(e.to_string())),
        };
        self.0
            .audit
            .record(audit::Entry {
                time: self.now(),
                request_id: caller.request_id.clone(),
                actor: caller.actor.to_string(),
                transport: caller.transport.as_str().into(),
                action: m.action.into(),
                object,
                before: m.before,
                after,
                result: if error.is_none() { "ok" } else { "error" }.into(),
                error,
                policy_revision: revision,
            })
            .await;
        result.map(|d| d.value)
    }

    /// Database and writer round trip (`/api/v1/health`).
    pub async fn health(&self, caller: &Caller) -> Result<bool> {
        self.read(caller, Resource::Health)?;
        match self.state().health().await {
            Ok(()) => Ok(true),
            Err(e) => {
                tracing::warn!(error = %e, "health check: database unreachable");
                Ok(false)
            }
        }
    }

    /// Audit entries matching `q`, oldest first.
    pub async fn audit(&self, caller: &Caller, q: audit::Query) -> Result<Vec<audit::Entry>> {
        self.read(caller, Resource::Audit)?;
        self.0.audit.query(q).await.map_err(|e| match e {
            audit::Error::Disabled => Error::FailedPrecondition(e.to_string()),
            audit::Error::Database(m) => {
                tracing::error!(error = %m, "audit query failed");
                Error::Unavailable(error::DATABASE_UNAVAILABLE.into())
            }
            other => Error::Internal(other.to_string()),
        })
    }
}

/// The audit line for a control-protocol event.
fn event_entry(e: &Event, now: DateTime<Utc>) -> audit::Entry {
    let node = e.node();
    let (actor, transport) = match (e.actor, node) {
        (EventActor::Node, Some(n)) => (Actor::Node(n.id), "control"),
        _ => (Actor::System, Transport::Internal.as_str()),
    };
    let action = match e.kind {
        EventKind::Registered => "node.register",
        EventKind::LoggedIn => "node.login",
        EventKind::KeyRotated => "node.rotate_key",
        EventKind::LoggedOut => "node.logout",
        EventKind::Expired => "node.key_expired",
        EventKind::Deleted => "node.delete",
    };
    audit::Entry {
        time: now,
        request_id: None,
        actor: actor.to_string(),
        transport: transport.into(),
        action: action.into(),
        object: node.map(|n| format!("node:{}", n.id)),
        before: e.before.as_deref().map(snapshot::node),
        after: e.after.as_deref().map(snapshot::node),
        result: "ok".into(),
        error: None,
        policy_revision: None,
    }
}
