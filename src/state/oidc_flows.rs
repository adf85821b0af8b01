//! OpenID Connect logins waiting for their callback, shared between
//! replicas: the browser returns through the load balancer, maybe to
//! another replica than the one that sent it to the identity provider.
//! What is stored is sealed by `auth::oidc::flows`, which keeps a single
//! server's logins in memory and calls these only with replicas.

use std::time::Duration;

use super::{Error, Result, StateHandle};
use crate::db::Db;

impl StateHandle {
    fn flows_db(&self) -> Result<&Db> {
        self.shared
            .as_ref()
            .ok_or_else(|| Error::Internal("logins are shared only between replicas".into()))
    }

    /// Stores a sealed login under `state_hash` for `ttl`; `false` when
    /// `max` are waiting already.
    pub async fn share_oidc_flow(
        &self,
        state_hash: &str,
        sealed: &[u8],
        ttl: Duration,
        max: usize,
    ) -> Result<bool> {
        let db = self.flows_db()?;
        Ok(db.put_oidc_flow(state_hash, sealed, ttl, max).await?)
    }

    /// Takes the login stored under `state_hash`, once across all replicas
    /// (`None` when unknown, expired or taken).
    pub async fn take_shared_oidc_flow(&self, state_hash: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.flows_db()?.take_oidc_flow(state_hash).await?)
    }
}
