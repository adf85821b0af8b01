//! The audit side of Tailscale SSH check mode (`auth::ssh_check`): a held
//! check becomes a pending request of the registration store, decided by
//! the same audited `approve_auth` / `reject_auth` as a login; the verdicts
//! nobody typed (a check remembered from earlier, a check that expired)
//! get their own lines here, with the node or the server as the actor.
//! A person who passes a check by logging in at the identity provider
//! (`auth::oidc`, which has found their user and held it against the
//! source node) is recorded by their OIDC identity.

use serde_json::Value;
use tokio::sync::oneshot;

use super::registrations::{Expired, Verdict};
use super::{Actor, Admin, AuthId, Caller, Done, Error, Mutation, Resource, Result};
use crate::types::{NodeId, OidcIdentity, UserId};

/// What an SSH check line is about: the pending request when there is one,
/// else the (source, destination) pair.
fn object(id: Option<&AuthId>, what: &Value) -> String {
    match id {
        Some(id) => format!("registration:{id}"),
        None => format!("ssh_check:{}->{}", what["src"], what["dst"]),
    }
}

impl Admin {
    /// Holds an SSH login that node `dst` asked about until someone decides
    /// it under `id`; `what` (source, destination, local user) is recorded.
    pub async fn ssh_check_hold(
        &self,
        dst: NodeId,
        id: &AuthId,
        what: Value,
    ) -> Result<oneshot::Receiver<Verdict>> {
        let caller = Caller::internal(Actor::Node(dst));
        let m =
            Mutation::new(Resource::Registrations, "ssh_check.hold").on(object(Some(id), &what));
        self.mutate(&caller, m, async {
            let rx = self.registrations().insert(id.clone(), None)?;
            // Another replica the node reaches may take the check over
            // for this login only.
            let subject = what.to_string();
            self.registrations().share(id, Some(&subject)).await?;
            Ok(Done::new(rx).after(what))
        })
        .await
    }

    /// Records that node `dst` let a login in on an earlier check that
    /// still counts (`ssh_check.remembered`).
    pub async fn ssh_check_remembered(&self, dst: NodeId, what: Value) -> Result<()> {
        self.ssh_check_line(Actor::Node(dst), "ssh_check.remembered", None, what)
            .await
    }

    /// Records, with the server as the actor, that nobody decided check
    /// `id` in time (`ssh_check.expire`), once across replicas: a check
    /// taken over by another replica runs out on both, and the one that
    /// does not claim it first writes nothing. A decision made on another
    /// replica just before, whose verdict had not reached this one yet,
    /// is returned instead (its own line was written where it was made).
    pub async fn ssh_check_expire(&self, id: &AuthId, what: Value) -> Result<Option<Verdict>> {
        match self.registrations().expired(id).await? {
            Expired::Here => {
                self.ssh_check_line(Actor::System, "ssh_check.expire", Some(id), what)
                    .await?;
                Ok(None)
            }
            Expired::Elsewhere => Ok(None),
            Expired::Decided(verdict) => Ok(Some(verdict)),
        }
    }

    /// A line for a verdict that no operator gave.
    async fn ssh_check_line(
        &self,
        actor: Actor,
        action: &'static str,
        id: Option<&AuthId>,
        what: Value,
    ) -> Result<()> {
        let caller = Caller::internal(actor);
        let m = Mutation::new(Resource::Registrations, action).on(object(id, &what));
        self.mutate(&caller, m, async { Ok(Done::new(()).after(what)) })
            .await
    }

    /// Passes the SSH check waiting under `id` for `user`, who proved to
    /// be `identity` at the identity provider; the caller has established
    /// that this person may vouch for the check's source node `src`. The
    /// waiting check holds the verdict against its source node once more.
    /// Only a verdict-only request (an SSH check) can be passed this way.
    pub async fn approve_ssh_check_oidc(
        &self,
        id: &AuthId,
        identity: &OidcIdentity,
        user: UserId,
        src: NodeId,
    ) -> Result<()> {
        // No person acts through the admin API here: the server acts on
        // the identity provider's word, and the line names whose.
        let caller = Caller::internal(Actor::System);
        let object = format!(
            "registration:{id} oidc:{}#{}",
            identity.issuer, identity.subject
        );
        let m = Mutation::new(Resource::Registrations, "ssh_check.approve_oidc").on(object);
        self.mutate(&caller, m, async {
            let regs = self.registrations();
            match regs.peek_any(id).await? {
                None => {
                    return Err(Error::NotFound(format!(
                        "no pending auth session for auth id {id}"
                    )));
                }
                Some(Some(_)) => {
                    return Err(Error::InvalidArgument(format!(
                        "auth session {id} is a node registration, not an SSH check"
                    )));
                }
                Some(None) => {}
            }
            // With replicas the check may be held on another one: the
            // verdict reaches it through the database.
            regs.claim(id)
                .await?
                .settle(regs, Verdict::Vouched(user))
                .await;
            let after = serde_json::json!({"src": src.0, "user": user.0});
            Ok(Done::new(()).after(after))
        })
        .await
    }
}
