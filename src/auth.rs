//! People proving who they are to the control server, as opposed to
//! machines (which the Noise handshake and keys authenticate).
//!
//! Login flows for machines that register without a pre-auth key
//! (`tailscale up` alone): the control handler answers with an auth URL on
//! this server, the client long-polls with that URL as its `Followup`, and
//! the wait ends when an operator decides (`clawscale auth register`,
//! `auth approve`, `auth reject`; `admin::registrations`) or the pending
//! registration expires (`tuning.register_cache_expiration`).
//!
//! `register_page` serves the URL the client prints. Another login method
//! (OIDC) plugs in through [`AuthFlows::provider`]: when set, the page hands
//! the visitor to it instead of showing the operator's command.
//!
//! `oidc`: OpenID Connect (authorization code flow with PKCE), the
//! provider the register page hands visitors to when `oidc` is configured.
//!
//! `ssh_check`: Tailscale SSH `check` rules, where a destination node holds
//! an SSH login until the control server vouches for the person.
//!
//! May depend on: `admin` (the pending-request store and the audit trail),
//! `api::problem` (the HTTP status of an operation's error),
//! `state`, `policy` (via `state`), `tailcfg`, `types`.

pub mod html;
pub mod oidc;
pub mod register_page;
pub mod ssh_check;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::response::Response;
use tokio::sync::oneshot;

use crate::admin::registrations::{Verdict, WaitingClient};
use crate::admin::{AuthId, Registrations};
use crate::state::RegisterInput;
use crate::types::{MachinePublic, Node};

/// The page a person opens for pending request `id` on the server at
/// `base` (no trailing `/`): a registration's or an SSH check's.
pub fn register_url(base: &str, id: &AuthId) -> String {
    format!("{base}/register/{id}")
}

/// A login method that can complete a pending registration by itself (the
/// OIDC login fills this in).
pub trait LoginProvider: Send + Sync {
    /// The response to a visit of the auth URL of `id`: typically a
    /// redirect to the identity provider.
    fn start(&self, id: &AuthId) -> Response;
}

/// What a client's followup ends with.
#[derive(Debug)]
pub enum FollowupOutcome {
    /// Registered: the node to answer with.
    Registered(Arc<Node>),
    /// Refused, expired or unknown: a message for the user.
    Failed(String),
}

/// A client waiting for a decision: the receiver of its verdict and the
/// machine it belongs to (only that machine may wait on it).
struct Waiter {
    machine: MachinePublic,
    verdict: oneshot::Receiver<Verdict>,
    since: Instant,
}

/// The interactive login flows; cheap to clone.
#[derive(Clone)]
pub struct AuthFlows {
    /// `server_url` without a trailing slash: auth URLs start with it.
    server_url: String,
    registrations: Registrations,
    waiting: Arc<Mutex<HashMap<AuthId, Waiter>>>,
    /// Another login method for the register page; `None`: the page shows
    /// the operator's command.
    pub provider: Option<Arc<dyn LoginProvider>>,
}

const EXPIRED: &str = "login expired or unknown; run `tailscale up` again for a new login URL";

impl AuthFlows {
    pub fn new(server_url: &str, registrations: Registrations) -> AuthFlows {
        AuthFlows {
            server_url: server_url.trim_end_matches('/').to_string(),
            registrations,
            waiting: Arc::default(),
            provider: None,
        }
    }

    pub fn registrations(&self) -> &Registrations {
        &self.registrations
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AuthId, Waiter>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The auth URL of `id`.
    pub fn auth_url(&self, id: &AuthId) -> String {
        register_url(&self.server_url, id)
    }

    /// Starts an interactive login for `input`; returns the auth URL the
    /// client shows.
    pub async fn begin(&self, input: RegisterInput) -> Result<String, crate::admin::Error> {
        let id = AuthId::generate();
        let machine = input.machine_key;
        let verdict = self.registrations.insert(id.clone(), Some(input))?;
        // With replicas, any of them may decide it (a failure drops it).
        self.registrations.share(&id, None).await?;
        let ttl = self.registrations.ttl();
        let mut waiting = self.lock();
        // Waiters whose registration expired are never followed up.
        waiting.retain(|_, w| w.since.elapsed() < ttl);
        waiting.insert(
            id.clone(),
            Waiter {
                machine,
                verdict,
                since: Instant::now(),
            },
        );
        Ok(self.auth_url(&id))
    }

    /// Waits for the decision on the login a client's `Followup` names.
    pub async fn follow(&self, followup: &str, machine: MachinePublic) -> FollowupOutcome {
        let Some(id) = followup
            .rsplit('/')
            .next()
            .and_then(|t| AuthId::parse(t).ok())
        else {
            return FollowupOutcome::Failed(EXPIRED.into());
        };
        let here = {
            let mut waiting = self.lock();
            match waiting.remove(&id) {
                Some(w) if w.machine == machine => Some(w),
                Some(w) => {
                    // Another machine's login: leave it alone.
                    waiting.insert(id, w);
                    return FollowupOutcome::Failed(EXPIRED.into());
                }
                None => None,
            }
        };
        let waiter = match here {
            Some(w) => w,
            // With replicas, a login started on another one (the client's
            // connection moved, or that replica is gone) continues here.
            None => match self
                .registrations
                .adopt(&id, WaitingClient::Machine(machine))
                .await
            {
                Some((verdict, since)) => Waiter {
                    machine,
                    verdict,
                    since,
                },
                None => return FollowupOutcome::Failed(EXPIRED.into()),
            },
        };
        let remaining = self
            .registrations
            .ttl()
            .saturating_sub(waiter.since.elapsed());
        let mut held = Held {
            flows: self,
            id: id.clone(),
            waiter: Some(waiter),
        };
        let verdict = {
            let rx = &mut held.waiter.as_mut().expect("just set").verdict;
            tokio::time::timeout(remaining, rx).await
        };
        // Decided or expired: nothing to put back.
        held.waiter = None;
        match verdict {
            Ok(Ok(Verdict::Approved(Some(node)))) => FollowupOutcome::Registered(node),
            Ok(Ok(Verdict::Approved(None) | Verdict::Vouched(_))) => {
                FollowupOutcome::Failed("login approved without a node".into())
            }
            Ok(Ok(Verdict::Rejected(msg))) => {
                FollowupOutcome::Failed(format!("login refused: {msg}"))
            }
            Ok(Err(_)) | Err(_) => {
                self.registrations.forget(&id);
                FollowupOutcome::Failed(EXPIRED.into())
            }
        }
    }
}

/// A waiter taken out for a followup; if the request goes away before the
/// decision (the client's connection dropped), it is put back so the
/// client's next followup can wait on it again.
struct Held<'a> {
    flows: &'a AuthFlows,
    id: AuthId,
    waiter: Option<Waiter>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.waiter.take() {
            self.flows.lock().insert(self.id.clone(), w);
        }
    }
}

#[cfg(test)]
mod tests;
