//! The ACME challenges each node published (`/machine/set-dns`), for the
//! operator's view: which names a node proved, and when; and, with
//! replicas, the challenge values themselves, shared through the database
//! so that any replica's DNS server answers a CA.
//!
//! clawscale never sees the certificate itself: a CA issues it to the node
//! right after the challenge validates. So this is evidence of an order,
//! not of a certificate: "last challenge for NAME at T". Kept in the World
//! only, like presence: a restart forgets it (documented in docs/https.md),
//! and a node's entries go with the node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::change::Change;
use super::{Error, Result, StateHandle};
use crate::types::NodeId;

/// Per node: cert domain → when its last challenge was published.
pub type ChallengesSeen = BTreeMap<NodeId, BTreeMap<String, DateTime<Utc>>>;

impl StateHandle {
    /// Notes that node `id` published the challenge for `domain` now.
    pub async fn note_acme_challenge(&self, id: NodeId, domain: String) -> Result<()> {
        self.run(move |core| {
            Box::pin(async move {
                if core.world.node(id).is_none() {
                    return Err(Error::NotFound("node not found".into()));
                }
                let at = core.now();
                let mut w = core.draft();
                Arc::make_mut(&mut w.acme_challenges)
                    .entry(id)
                    .or_default()
                    .insert(domain, at);
                // Nothing a map shows changed: no session is woken.
                core.publish(w, Change::default());
                Ok(())
            })
        })
        .await
    }
}

impl StateHandle {
    /// With replicas: publishes challenge `value` at `owner` for `lifetime`
    /// to the others (their DNS servers read it with
    /// [`StateHandle::shared_acme_challenge`]). Not a World change, so it
    /// does not go through the writer. Without replicas: nothing to do.
    pub async fn share_acme_challenge(
        &self,
        owner: &str,
        value: &str,
        lifetime: Duration,
    ) -> Result<()> {
        match &self.shared {
            Some(db) => Ok(db.put_acme_challenge(owner, value, lifetime).await?),
            None => Ok(()),
        }
    }

    /// The live challenge values any replica published at `owner` (empty
    /// without replicas).
    pub async fn shared_acme_challenge(&self, owner: &str) -> Result<Vec<String>> {
        match &self.shared {
            Some(db) => Ok(db.acme_challenge_values(owner).await?),
            None => Ok(Vec::new()),
        }
    }
}
