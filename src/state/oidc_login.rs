//! An OpenID Connect login as one state transition: the person's user is
//! created or updated from the ID token's claims (found by issuer and
//! subject only), then the machine waiting for that login is enrolled for
//! them. The caller (`admin::oidc`) has verified the token and applied the
//! allow-lists; this is where the no-takeover rules live, next to the data.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::change::Change;
use super::writer::Core;
use super::{Error, RegisterInput, Result, StateHandle};
use crate::db::OidcProfile;
use crate::types::user::validate_user_name;
use crate::types::{Node, User};

/// What a completed OIDC login produced.
#[derive(Debug, Clone)]
pub struct OidcLogin {
    pub node: Arc<Node>,
    pub user: Arc<User>,
    /// The user was created by this login.
    pub created: bool,
}

impl StateHandle {
    /// Creates or updates the user `profile` describes (named after
    /// `preferred_name` when new) and enrols `input`'s machine for it;
    /// the node expires at `expiry` if given.
    pub async fn oidc_login(
        &self,
        profile: OidcProfile,
        preferred_name: String,
        input: RegisterInput,
        expiry: Option<DateTime<Utc>>,
    ) -> Result<OidcLogin> {
        self.run(move |core| {
            Box::pin(async move {
                let user = core.oidc_user(&profile, &preferred_name).await?;
                let created = user.1;
                let user = user.0;
                let mut node = core.register_pending(input, user.id).await?;
                if let Some(at) = expiry {
                    let mut n = (*node).clone();
                    n.expiry = Some(at);
                    let id = n.id;
                    core.commit_node(n, Change::upsert(id)).await?;
                    node = core
                        .world
                        .node(id)
                        .cloned()
                        .ok_or_else(|| Error::Internal("registered node vanished".into()))?;
                }
                Ok(OidcLogin {
                    node,
                    user,
                    created,
                })
            })
        })
        .await
    }
}

impl Core {
    async fn oidc_user(
        &mut self,
        profile: &OidcProfile,
        preferred_name: &str,
    ) -> Result<(Arc<User>, bool)> {
        let mine = |u: &User| u.oidc.as_ref() == Some(&profile.identity);
        // Policy selectors and client logins go by e-mail: a second
        // identity claiming a taken address would inherit the first one's
        // access, so such a login is refused rather than merged or added.
        if !profile.email.is_empty()
            && self
                .world
                .users
                .values()
                .any(|u| !mine(u) && u.email.eq_ignore_ascii_case(&profile.email))
        {
            return Err(Error::Conflict(format!(
                "the e-mail address {} already belongs to another user",
                profile.email
            )));
        }
        let name = match self.world.users.values().find(|u| mine(u)) {
            Some(u) => u.name.clone(),
            None => self.free_user_name(preferred_name),
        };
        let now = self.now();
        let (user, created) = self.db.upsert_oidc_user(&name, profile, now).await?;
        let user = Arc::new(user);
        let mut w = self.draft();
        w.put_user((*user).clone());
        self.publish(w, Change::users());
        Ok((user, created))
    }

    /// `wanted` made a valid user name not yet taken (`alice`, `alice-2`, ...).
    fn free_user_name(&self, wanted: &str) -> String {
        let base: String = wanted
            .trim()
            .trim_start_matches(['@', '-'])
            .chars()
            .map(|c| {
                if c.is_whitespace() || c.is_control() {
                    '-'
                } else {
                    c
                }
            })
            .take(56)
            .collect();
        let base = if validate_user_name(&base).is_ok() {
            base
        } else {
            "user".to_string()
        };
        let taken = |n: &str| self.world.user_by_name(n).is_some();
        if !taken(&base) {
            return base;
        }
        (2..)
            .map(|i| format!("{base}-{i}"))
            .find(|n| !taken(n))
            .unwrap_or(base)
    }
}
