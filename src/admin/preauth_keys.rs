//! Pre-auth key operations. Keys live in the database only (the World does
//! not carry them), so these read through the state writer.
//!
//! A key belongs to a user or, without one, to its tags (as Headscale ≥
//! 0.28's tagged keys and every key an OAuth client creates); such a key is
//! stored under the service user [`TAGGED_OWNER`], created when first
//! needed, since every stored key and node names a user. An OAuth client's
//! keys must carry tags, all of them the client's own (Tailscale's rule).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Admin, Caller, Done, Error, Mutation, Resource, Result, snapshot};
use crate::state::NewKey;
use crate::types::{PreAuthKey, PreAuthKeyId, User, UserId};

/// The user keys without a user are stored under.
pub const TAGGED_OWNER: &str = "tagged-devices";

/// A key to create.
#[derive(Debug, Clone, Default)]
pub struct NewPreAuthKey {
    /// `None`: the key is owned by its tags, which must then be given.
    pub user: Option<UserId>,
    pub reusable: bool,
    pub ephemeral: bool,
    /// `None`: never expires.
    pub expiration: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub description: String,
    pub preauthorized: bool,
}

/// Checks `tags` against the tags an OAuth caller's client has: each must
/// be one of them. `what` names the object for the message.
pub(super) fn check_tag_bound(caller: &Caller, tags: &[String], what: &str) -> Result<()> {
    let Some(bound) = caller.grants.tag_bound() else {
        return Ok(());
    };
    if tags.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{what} made by an OAuth client must carry tags (the client's: {})",
            bound.join(", ")
        )));
    }
    match tags.iter().find(|t| !bound.contains(t)) {
        Some(t) => Err(Error::PermissionDenied(format!(
            "tag {t:?} is not one of this OAuth client's tags ({})",
            bound.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A stored key with its owner.
#[derive(Debug, Clone)]
pub struct PreAuthKeyInfo {
    pub key: PreAuthKey,
    pub owner: Option<Arc<User>>,
}

fn object(id: PreAuthKeyId) -> String {
    format!("preauthkey:{}", id.0)
}

impl Admin {
    /// Keys (of `user`, or all) in id order, without secrets.
    pub async fn list_preauth_keys(
        &self,
        caller: &Caller,
        user: Option<UserId>,
    ) -> Result<Vec<PreAuthKeyInfo>> {
        self.read(caller, Resource::PreAuthKeys)?;
        self.preauth_keys(user).await
    }

    async fn preauth_keys(&self, user: Option<UserId>) -> Result<Vec<PreAuthKeyInfo>> {
        let mut keys = self.state().list_preauth_keys(user).await?;
        keys.sort_by_key(|k| k.id);
        let world = self.state().world();
        Ok(keys
            .into_iter()
            .map(|key| PreAuthKeyInfo {
                owner: world.user(key.user_id).cloned(),
                key,
            })
            .collect())
    }

    async fn preauth_key(&self, id: PreAuthKeyId) -> Option<PreAuthKey> {
        self.state().preauth_key(id).await.ok().flatten()
    }

    /// One key, without its secret.
    pub async fn get_preauth_key(
        &self,
        caller: &Caller,
        id: PreAuthKeyId,
    ) -> Result<PreAuthKeyInfo> {
        self.read(caller, Resource::PreAuthKeys)?;
        let key = self
            .state()
            .preauth_key(id)
            .await?
            .ok_or_else(|| Error::NotFound("key not found".into()))?;
        Ok(PreAuthKeyInfo {
            owner: self.state().world().user(key.user_id).cloned(),
            key,
        })
    }

    /// The user keys without one are stored under, created on first use.
    async fn tagged_owner(&self) -> Result<UserId> {
        if let Some(u) = self.state().world().user_by_name(TAGGED_OWNER) {
            return Ok(u.id);
        }
        match self
            .state()
            .create_user(TAGGED_OWNER, "Tagged Devices", "")
            .await
        {
            Ok(u) => Ok(u.id),
            // Another request created it meanwhile.
            Err(crate::state::Error::Conflict(_)) => self
                .state()
                .world()
                .user_by_name(TAGGED_OWNER)
                .map(|u| u.id)
                .ok_or_else(|| Error::Internal("tagged-devices user vanished".into())),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a key; returns it with its secret text, shown only now.
    pub async fn create_preauth_key(
        &self,
        caller: &Caller,
        new: NewPreAuthKey,
    ) -> Result<(PreAuthKeyInfo, String)> {
        let m = Mutation::new(Resource::PreAuthKeys, "preauthkey.create");
        self.mutate(caller, m, async {
            check_tag_bound(caller, &new.tags, "keys")?;
            let user = match new.user {
                Some(u) if caller.grants.tag_bound().is_some() => {
                    return Err(Error::InvalidArgument(format!(
                        "keys made by an OAuth client are owned by their tags, not by user {u}"
                    )));
                }
                Some(u) => u,
                None if new.tags.is_empty() => {
                    return Err(Error::InvalidArgument(
                        "a key needs a user or tags (a tagged key is owned by its tags)".into(),
                    ));
                }
                None => self.tagged_owner().await?,
            };
            let (key, secret) = self
                .state()
                .create_key(NewKey {
                    user,
                    reusable: new.reusable,
                    ephemeral: new.ephemeral,
                    expiration: new.expiration,
                    tags: new.tags,
                    description: new.description,
                    preauthorized: new.preauthorized,
                })
                .await?;
            let after = snapshot::preauth_key(&key);
            let info = PreAuthKeyInfo {
                owner: self.state().world().user(key.user_id).cloned(),
                key,
            };
            Ok(Done::new((info.clone(), secret))
                .object(object(info.key.id))
                .after(after))
        })
        .await
    }

    pub async fn expire_preauth_key(&self, caller: &Caller, id: PreAuthKeyId) -> Result<()> {
        let before = self.preauth_key(id).await;
        let m = Mutation::new(Resource::PreAuthKeys, "preauthkey.expire")
            .on(object(id))
            .before(before.as_ref().map(snapshot::preauth_key));
        self.mutate(caller, m, async {
            self.state().expire_preauth_key(id).await?;
            let after = self.preauth_key(id).await;
            let mut done = Done::new(());
            if let Some(k) = after {
                done = done.after(snapshot::preauth_key(&k));
            }
            Ok(done)
        })
        .await
    }

    pub async fn delete_preauth_key(&self, caller: &Caller, id: PreAuthKeyId) -> Result<()> {
        let before = self.preauth_key(id).await;
        let m = Mutation::new(Resource::PreAuthKeys, "preauthkey.delete")
            .on(object(id))
            .before(before.as_ref().map(snapshot::preauth_key));
        self.mutate(caller, m, async {
            self.state().delete_preauth_key(id).await?;
            Ok(Done::new(()))
        })
        .await
    }
}
