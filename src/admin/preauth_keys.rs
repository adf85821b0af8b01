//! Pre-auth key operations. Keys live in the database only (the World does
//! not carry them), so these read through the state writer.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Admin, Caller, Done, Error, Mutation, Resource, Result, snapshot};
use crate::types::{PreAuthKey, PreAuthKeyId, User, UserId};

/// A key to create.
#[derive(Debug, Clone, Default)]
pub struct NewPreAuthKey {
    /// Required: clawscale keys always belong to a user.
    pub user: Option<UserId>,
    pub reusable: bool,
    pub ephemeral: bool,
    /// `None`: never expires.
    pub expiration: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
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
        let keys = self.state().list_preauth_keys(None).await.ok()?;
        keys.into_iter().find(|k| k.id == id)
    }

    /// Creates a key; returns it with its secret text, shown only now.
    pub async fn create_preauth_key(
        &self,
        caller: &Caller,
        new: NewPreAuthKey,
    ) -> Result<(PreAuthKeyInfo, String)> {
        let m = Mutation::new(Resource::PreAuthKeys, "preauthkey.create");
        self.mutate(caller, m, async {
            let user = new.user.ok_or_else(|| {
                Error::InvalidArgument(
                    "a user is required: clawscale pre-auth keys always belong to a user".into(),
                )
            })?;
            let (key, secret) = self
                .state()
                .create_preauth_key(user, new.reusable, new.ephemeral, new.expiration, new.tags)
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
