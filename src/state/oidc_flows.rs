//! OpenID Connect logins waiting for their callback, shared between
//! replicas: the browser returns through the load balancer, maybe to
//! another replica than the one that sent it to the identity provider.
//! What is stored is sealed by `auth::oidc::flows`; this only moves it.

use std::time::Duration;

use super::{Result, StateHandle};

impl StateHandle {
    /// With replicas: stores a sealed login under `state_hash` for `ttl`,
    /// `Some(false)` when `max` are waiting already. `None` without
    /// replicas: the caller keeps its logins in memory.
    pub async fn share_oidc_flow(
        &self,
        state_hash: &str,
        sealed: &[u8],
        ttl: Duration,
        max: usize,
    ) -> Result<Option<bool>> {
        match &self.shared {
            Some(db) => Ok(Some(db.put_oidc_flow(state_hash, sealed, ttl, max).await?)),
            None => Ok(None),
        }
    }

    /// With replicas: takes the login stored under `state_hash`, once
    /// across all replicas (`None` when unknown, expired or taken).
    /// Always `None` without replicas.
    pub async fn take_shared_oidc_flow(&self, state_hash: &str) -> Result<Option<Vec<u8>>> {
        match &self.shared {
            Some(db) => Ok(db.take_oidc_flow(state_hash).await?),
            None => Ok(None),
        }
    }
}
