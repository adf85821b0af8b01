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
                let node = core
                    .register_pending(input, super::PendingOwner::User(user.id), expiry)
                    .await?;
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::types::{MachinePublic, NodePublic, OidcIdentity};

    fn input(seed: u8, host: &str) -> RegisterInput {
        RegisterInput {
            machine_key: MachinePublic([seed; 32]),
            node_key: NodePublic([seed + 100; 32]),
            old_node_key: None,
            auth_key: None,
            expiry: None,
            hostinfo: serde_json::json!({"Hostname": host}),
            ephemeral: false,
            version: 100,
        }
    }

    fn profile(sub: &str, email: &str, groups: &[&str]) -> OidcProfile {
        OidcProfile {
            identity: OidcIdentity {
                issuer: "https://id.example.com".into(),
                subject: sub.into(),
            },
            display_name: String::new(),
            email: email.into(),
            profile_pic_url: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// A group removed at the identity provider takes effect at the next
    /// login: the policy is recompiled and the peers that lose (or gain)
    /// access get a map delta.
    #[tokio::test]
    async fn a_group_change_at_login_recompiles_and_notifies_peers() {
        let (_dir, state) = crate::state::testing::temp_state(Duration::from_secs(1800)).await;
        state
            .set_policy(
                r#"{"groups": {"group:mcp-admins": ["oidc:mcp-admins"]},
                    "acls": [{"action": "accept", "src": ["group:mcp-admins"],
                              "dst": ["ops@example.com:443"]}]}"#
                    .into(),
            )
            .await
            .expect("policy");
        let login = |sub: &str, email: &str, groups: &[&str], seed: u8, host: &str| {
            let (p, i) = (profile(sub, email, groups), input(seed, host));
            let state = state.clone();
            let name = email.split('@').next().unwrap().to_string();
            async move { state.oidc_login(p, name, i, None).await.expect("login") }
        };
        let alice = login("a", "alice@example.com", &["mcp-admins"], 1, "laptop").await;
        assert!(alice.created);
        let server = login("o", "ops@example.com", &[], 2, "mcp").await;
        let peers = |id: crate::types::NodeId| -> Vec<u64> {
            let w = state.world();
            let c = w.policy.compiled.as_ref().unwrap();
            c.node(id.0 as u64).unwrap().peers.ids().collect()
        };
        assert_eq!(peers(server.node.id), [alice.node.id.0 as u64]);

        let session = state.sessions().open(server.node.id);
        session.take();
        let again = login("a", "alice@example.com", &[], 1, "laptop").await;
        assert!(!again.created);
        assert_eq!(again.node.id, alice.node.id, "same machine, same node");
        assert_eq!(again.user.id, alice.user.id);
        assert!(peers(server.node.id).is_empty(), "alice lost access");
        let delta = session.take();
        assert!(
            delta.policy.contains(&server.node.id),
            "the server must get a map delta: {delta:?}"
        );
    }

    #[tokio::test]
    async fn new_users_get_free_names() {
        let (_dir, state) = crate::state::testing::temp_state(Duration::from_secs(1800)).await;
        state
            .create_user("alice", "", "")
            .await
            .expect("operator's alice");
        let l = state
            .oidc_login(
                profile("a", "alice@example.com", &[]),
                "alice".into(),
                input(1, "x"),
                None,
            )
            .await
            .expect("login");
        assert_eq!(l.user.name, "alice-2");
        let l = state
            .oidc_login(
                profile("b", "", &[]),
                " @bad name".into(),
                input(2, "y"),
                None,
            )
            .await
            .expect("login");
        assert_eq!(l.user.name, "bad-name");
    }
}
