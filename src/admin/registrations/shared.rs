//! Pending requests across replicas (PostgreSQL): a request is also stored
//! in the database when it starts (`share`), a decision claims it there
//! first, whichever replica makes it (`claim`), and the verdict is written
//! back and announced (`Claimed::settle`). The replica whose client waits
//! hands announced verdicts to that client (`follow`); it also looks every
//! [`POLL`] and after a reconnect, so a lost notification only delays.
//! Without replicas every step is local and immediate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::{AuthId, Pending, Registrations, Verdict};
use crate::admin::{Error, Result};
use crate::state::auth_requests::{Expiry, SharedVerdict};
use crate::state::{RegisterInput, StateHandle};
use crate::types::MachinePublic;

/// Look for verdicts unasked this often while requests wait here.
const POLL: Duration = Duration::from_secs(5);
/// Wait before reconnecting a lost listener.
const RETRY: Duration = Duration::from_millis(500);
/// How long a verdict naming a node waits for that node to reach this
/// replica's World (it follows the database within milliseconds).
const NODE_ARRIVAL: Duration = Duration::from_secs(5);

/// How long a replica whose wait ran out waits for the verdict of a
/// decision that claimed the request just before (see `late_verdict`).
const VERDICT_WAIT: Duration = Duration::from_secs(5);

/// What became of a request whose wait here ran out.
#[derive(Debug)]
pub(in crate::admin) enum Expired {
    /// It expired, and this replica records that.
    Here,
    /// Another replica's wait for it ran out first and recorded it.
    Elsewhere,
    /// A decision on another replica claimed it first: its verdict.
    Decided(Verdict),
}

/// How a request is named in the database: its auth id is a bearer value.
pub(crate) fn hash(id: &AuthId) -> String {
    hex::encode(Sha256::digest(id.as_str().as_bytes()))
}

/// A verdict as the database keeps it (a node by its id).
fn stored(verdict: &Verdict) -> SharedVerdict {
    match verdict {
        Verdict::Approved(node) => SharedVerdict::Approved(node.as_ref().map(|n| n.id)),
        Verdict::Vouched(user) => SharedVerdict::Vouched(*user),
        Verdict::Rejected(m) => SharedVerdict::Rejected(m.clone()),
    }
}

/// Whom a request taken over from another replica must belong to: only
/// its own client may wait on it.
pub enum WaitingClient<'a> {
    /// A login: the machine that started it.
    Machine(MachinePublic),
    /// An SSH check: the login it is about, as stored (`subject`).
    Check(&'a str),
}

/// A request taken for a decision.
pub(in crate::admin) struct Claimed {
    id: AuthId,
    /// Its waiter, when the client waits on this replica.
    local: Option<Pending>,
    /// What it registers (`None`: a request that only needs a verdict).
    pub(in crate::admin) registration: Option<RegisterInput>,
}

impl Claimed {
    /// Gives the verdict to the waiting client, here or (through the
    /// database) on its replica.
    pub(in crate::admin) async fn settle(self, regs: &Registrations, verdict: Verdict) {
        if let Some(state) = regs.shared()
            && let Err(e) = state
                .decide_request(&hash(&self.id), &stored(&verdict))
                .await
        {
            // A client waiting elsewhere times out and logs in again.
            tracing::warn!(id = %self.id, error = %e, "could not store a verdict");
        }
        if let Some(p) = self.local {
            let _ = p.verdict.send(verdict);
        }
    }
}

impl Registrations {
    /// Shares requests through `state`'s database from now on, and starts
    /// handing verdicts given on other replicas to clients waiting here.
    pub fn share_through(&self, state: StateHandle) {
        if !state.is_replicated() || self.shared.set(state.clone()).is_err() {
            return;
        }
        tokio::spawn(follow(self.clone(), state));
    }

    pub(super) fn shared(&self) -> Option<&StateHandle> {
        self.shared.get()
    }

    /// With replicas, stores pending request `id` in the database so any
    /// replica may decide it; if that fails the request is dropped here
    /// too (its client is told to try again). `subject`: what a request
    /// that registers nothing is about (an SSH check's login), so that
    /// another replica can take it over for the node it is about.
    pub async fn share(
        &self,
        id: &AuthId,
        subject: Option<&str>,
    ) -> std::result::Result<(), Error> {
        let Some(state) = self.shared() else {
            return Ok(());
        };
        let Some(registration) = self.peek(id) else {
            return Err(Error::NotFound(format!(
                "no pending auth session for auth id {id}"
            )));
        };
        let stored = state
            .share_request(&hash(id), registration.as_ref(), subject, self.ttl())
            .await;
        stored.map_err(|e| {
            self.forget(id);
            Error::from(e)
        })
    }

    /// What pending request `id` would register (as `peek`), here or, with
    /// replicas, wherever its client waits.
    pub async fn peek_any(&self, id: &AuthId) -> Result<Option<Option<RegisterInput>>> {
        if let Some(local) = self.peek(id) {
            return Ok(Some(local));
        }
        match self.shared() {
            Some(state) => Ok(state.peek_request(&hash(id)).await?),
            None => Ok(None),
        }
    }

    /// With replicas: what the request `id`, which registers nothing and
    /// whose client waits on another replica, is about (its `subject`: an
    /// SSH check's login). `None` for anything else, and without replicas.
    pub async fn subject_elsewhere(&self, id: &AuthId) -> Result<Option<String>> {
        let Some(state) = self.shared() else {
            return Ok(None);
        };
        let found = state.find_request(&hash(id)).await?;
        Ok(found
            .filter(|f| f.registration.is_none())
            .and_then(|f| f.subject))
    }

    /// Takes request `id` for a decision: from this replica's store, or
    /// (with replicas) from the database when its client waits elsewhere.
    /// Once only, across all replicas.
    pub(in crate::admin) async fn claim(&self, id: &AuthId) -> Result<Claimed> {
        let Some(state) = self.shared() else {
            let p = self.take(id)?;
            let registration = p.registration.clone();
            return Ok(Claimed {
                id: id.clone(),
                local: Some(p),
                registration,
            });
        };
        // The database first: if it cannot be reached, nothing is taken.
        let Some(stored) = state.claim_request(&hash(id)).await? else {
            return Err(Error::NotFound(format!(
                "no pending auth session for auth id {id}"
            )));
        };
        let local = self.take(id).ok();
        let registration = match &local {
            Some(p) => p.registration.clone(),
            None => stored,
        };
        Ok(Claimed {
            id: id.clone(),
            local,
            registration,
        })
    }

    /// Forgets request `id`, whose wait here ran out, and says what became
    /// of it. With replicas a request taken over elsewhere runs out there
    /// too, and only the first replica to take it in the database records
    /// the expiry; a decision that claimed it on another replica just
    /// before (its verdict not yet delivered here) still counts.
    pub(in crate::admin) async fn expired(&self, id: &AuthId) -> Result<Expired> {
        self.forget(id);
        let Some(state) = self.shared() else {
            return Ok(Expired::Here);
        };
        let h = hash(id);
        match state.expire_request(&h).await? {
            Expiry::Expired => Ok(Expired::Here),
            Expiry::ExpiredElsewhere => Ok(Expired::Elsewhere),
            Expiry::Decided => Ok(match late_verdict(state, &h).await {
                Some(v) => Expired::Decided(local_verdict(state, v).await),
                None => Expired::Here,
            }),
        }
    }

    /// Marks a request decided here without `claim` (a login completed on
    /// this replica) as decided in the database too, so no other replica
    /// decides it again.
    pub(in crate::admin) async fn settled_here(&self, id: &AuthId, verdict: &Verdict) {
        let Some(state) = self.shared() else {
            return;
        };
        let h = hash(id);
        let result = match state.claim_request(&h).await {
            Ok(Some(_)) => state.decide_request(&h, &stored(verdict)).await,
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(%id, error = %e, "could not mark a request decided");
        }
    }

    /// With replicas: takes over a request started on another replica
    /// (which may be gone) that its client now follows up here, if it is
    /// unexpired and `owner`'s. Its verdict, whether given before or after,
    /// on any replica, reaches the returned receiver; the instant is when
    /// the request started.
    pub async fn adopt(
        &self,
        id: &AuthId,
        owner: WaitingClient<'_>,
    ) -> Option<(oneshot::Receiver<Verdict>, Instant)> {
        let state = self.shared()?;
        if self.contains(id) {
            // Pending here already: an earlier follow-up of its client
            // still holds the wait (it is put back when that one ends).
            return None;
        }
        let h = hash(id);
        let found = match state.find_request(&h).await {
            Ok(found) => found?,
            Err(e) => {
                // The client follows up again after a back-off.
                tracing::warn!(error = %e, "could not look up a request started elsewhere");
                return None;
            }
        };
        let belongs = match owner {
            WaitingClient::Machine(m) => found
                .registration
                .as_ref()
                .is_some_and(|r| r.machine_key == m),
            WaitingClient::Check(subject) => {
                found.registration.is_none() && found.subject.as_deref() == Some(subject)
            }
        };
        if !belongs {
            return None;
        }
        let age = self.ttl().saturating_sub(found.left);
        let since = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        let verdict = self
            .insert_since(id.clone(), found.registration, since)
            .ok()?;
        // A verdict stored before the request was taken over here was
        // announced when no one here waited for it.
        let (regs, state, waiting) = (self.clone(), state.clone(), vec![(h, id.clone())]);
        tokio::spawn(async move { deliver_to(&regs, &state, waiting).await });
        tracing::info!(%id, "a request started on another replica is followed up here");
        Some((verdict, since))
    }

    /// The requests waiting here, by database name.
    fn waiting_hashes(&self) -> Vec<(String, AuthId)> {
        let ttl = self.ttl();
        self.lock()
            .iter()
            .filter(|(_, p)| p.since.elapsed() < ttl && !p.verdict.is_closed())
            .map(|(id, _)| (hash(id), id.clone()))
            .collect()
    }
}

/// Hands verdicts stored by other replicas to the clients waiting here.
async fn follow(regs: Registrations, state: StateHandle) {
    loop {
        let mut listener = match state.listen_verdicts().await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "verdict listener down; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        // Whatever was announced while no one listened.
        deliver(&regs, &state).await;
        loop {
            match tokio::time::timeout(POLL, listener.recv()).await {
                Ok(Ok(_)) | Err(_) => deliver(&regs, &state).await,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "verdict listener lost; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn deliver(regs: &Registrations, state: &StateHandle) {
    deliver_to(regs, state, regs.waiting_hashes()).await;
}

/// Hands the verdicts stored for `waiting` (database name, id) to their
/// waiters here.
async fn deliver_to(regs: &Registrations, state: &StateHandle, waiting: Vec<(String, AuthId)>) {
    if waiting.is_empty() {
        return;
    }
    let hashes: Vec<String> = waiting.iter().map(|(h, _)| h.clone()).collect();
    let verdicts = match state.request_verdicts(&hashes).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "could not read verdicts");
            return;
        }
    };
    for (h, v) in verdicts {
        let Some((_, id)) = waiting.iter().find(|(w, _)| *w == h) else {
            continue;
        };
        let Ok(p) = regs.take(id) else {
            continue;
        };
        if matches!(v, SharedVerdict::Approved(Some(_))) {
            // Waited for apart: a node slow to arrive (or deleted
            // meanwhile) holds up no other verdict.
            let state = state.clone();
            tokio::spawn(async move {
                let _ = p.verdict.send(local_verdict(&state, v).await);
            });
            continue;
        }
        let _ = p.verdict.send(local_verdict(state, v).await);
    }
}

/// A stored verdict as this replica hands it out: an approval naming a
/// node waits for that node to reach this replica's World.
async fn local_verdict(state: &StateHandle, v: SharedVerdict) -> Verdict {
    match v {
        SharedVerdict::Approved(Some(node)) => match arrived(state, node).await {
            Some(n) => Verdict::Approved(Some(n)),
            None => Verdict::Rejected("the registered node did not reach this server".into()),
        },
        SharedVerdict::Approved(None) => Verdict::Approved(None),
        SharedVerdict::Vouched(user) => Verdict::Vouched(user),
        SharedVerdict::Rejected(m) => Verdict::Rejected(m),
    }
}

/// The verdict of request `h`, claimed by a decision on another replica:
/// it is written right after the claim, so this waits at most
/// [`VERDICT_WAIT`] (`None` after that: the deciding replica died or lost
/// the database in between).
async fn late_verdict(state: &StateHandle, h: &str) -> Option<SharedVerdict> {
    let start = Instant::now();
    let hashes = [h.to_string()];
    loop {
        match state.request_verdicts(&hashes).await {
            Ok(found) => {
                if let Some((_, v)) = found.into_iter().next() {
                    return Some(v);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read a late verdict"),
        }
        if start.elapsed() > VERDICT_WAIT {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Node `id` once this replica's World has it.
async fn arrived(state: &StateHandle, id: crate::types::NodeId) -> Option<Arc<crate::types::Node>> {
    let start = Instant::now();
    loop {
        if let Some(n) = state.world().node(id) {
            return Some(n.clone());
        }
        if start.elapsed() > NODE_ARRIVAL {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests;
