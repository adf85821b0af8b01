//! The audit side of Tailscale SSH check mode (`auth::ssh_check`): a held
//! check becomes a pending request of the registration store, decided by
//! the same audited `approve_auth` / `reject_auth` as a login; the verdicts
//! nobody typed (a check remembered from earlier, a check that expired)
//! get their own lines here, with the node or the server as the actor.

use serde_json::Value;
use tokio::sync::oneshot;

use super::registrations::Verdict;
use super::{Actor, Admin, AuthId, Caller, Done, Mutation, Resource, Result};
use crate::types::NodeId;

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
            Ok(Done::new(rx).after(what))
        })
        .await
    }

    /// Records a verdict that no operator gave: `action` is
    /// `ssh_check.remembered` (an earlier check still counts; actor: the
    /// destination node) or `ssh_check.expire` (nobody decided in time;
    /// actor: the server).
    pub async fn ssh_check_verdict(
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
}
