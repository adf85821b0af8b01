//! Completing a pending registration through an OpenID Connect login
//! (`crate::auth::oidc` verified the ID token and applied the allow-lists).

use chrono::{DateTime, Utc};

use super::registrations::{AuthId, Verdict};
use super::{Actor, Admin, Caller, Done, Error, Mutation, Resource, Result, snapshot};
use crate::db::OidcProfile;
use crate::state::OidcLogin;

impl Admin {
    /// Registers the machine waiting under `id` for the person `profile`
    /// describes (their user created or updated, found by issuer and
    /// subject only) and releases the waiting client. The pending entry is
    /// consumed only on success, so a refused login leaves the client
    /// waiting for another attempt.
    pub async fn register_oidc(
        &self,
        id: &AuthId,
        profile: OidcProfile,
        preferred_name: String,
        expiry: Option<DateTime<Utc>>,
    ) -> Result<OidcLogin> {
        let caller = Caller::internal(Actor::System);
        let object = format!(
            "registration:{id} oidc:{}#{}",
            profile.identity.issuer, profile.identity.subject
        );
        let m = Mutation::new(Resource::Registrations, "node.register_oidc").on(object);
        self.mutate(&caller, m, async {
            let input = self
                .registrations()
                .peek_any(id)
                .await?
                .ok_or_else(|| {
                    Error::NotFound(format!("no pending auth session for auth id {id}"))
                })?
                .ok_or_else(|| {
                    Error::InvalidArgument(format!("auth session {id} is not a node registration"))
                })?;
            let login = self
                .state()
                .oidc_login(profile, preferred_name, input, expiry)
                .await?;
            let verdict = Verdict::Approved(Some(login.node.clone()));
            self.registrations().settled_here(id, &verdict).await;
            if let Ok(p) = self.registrations().take(id) {
                let _ = p.verdict.send(verdict);
            }
            let after = snapshot::node(&login.node);
            Ok(Done::new(login).after(after))
        })
        .await
    }
}
