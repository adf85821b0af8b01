//! Pre-auth key transitions. Keys are not in the World (they are only read
//! at registration, from the database); only deleting one changes it, as the
//! nodes that enrolled with it stop referring to it.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::change::Change;
use super::{Error, Result, StateHandle};
use crate::db::NewPreAuthKey;
use crate::types::node::normalize_tags;
use crate::types::{PreAuthKey, PreAuthKeyId, PreAuthSecret, UserId};

/// A key to create (see [`StateHandle::create_key`]).
#[derive(Debug, Clone)]
pub struct NewKey {
    pub user: UserId,
    pub reusable: bool,
    pub ephemeral: bool,
    /// `None`: never expires.
    pub expiration: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub description: String,
    pub preauthorized: bool,
}

impl StateHandle {
    /// Creates a key and returns it with its secret text, which is never
    /// stored and never shown again.
    pub async fn create_preauth_key(
        &self,
        user: UserId,
        reusable: bool,
        ephemeral: bool,
        expiration: Option<DateTime<Utc>>,
        tags: Vec<String>,
    ) -> Result<(PreAuthKey, String)> {
        self.create_key(NewKey {
            user,
            reusable,
            ephemeral,
            expiration,
            tags,
            description: String::new(),
            preauthorized: false,
        })
        .await
    }

    /// [`StateHandle::create_preauth_key`] with every field.
    pub async fn create_key(&self, new: NewKey) -> Result<(PreAuthKey, String)> {
        let tags = normalize_tags(new.tags).map_err(Error::InvalidArgument)?;
        self.run(move |core| {
            Box::pin(async move {
                if core.world.user(new.user).is_none() {
                    return Err(Error::NotFound("user not found".into()));
                }
                let now = core.now();
                if new.expiration.is_some_and(|e| e <= now) {
                    return Err(Error::InvalidArgument("expiration is in the past".into()));
                }
                let secret = PreAuthSecret::generate();
                let key = core
                    .db
                    .create_preauth_key(
                        &NewPreAuthKey {
                            prefix: secret.prefix.clone(),
                            hash: secret.hash(),
                            user_id: new.user,
                            reusable: new.reusable,
                            ephemeral: new.ephemeral,
                            tags,
                            expiration: new.expiration,
                            description: new.description,
                            preauthorized: new.preauthorized,
                        },
                        now,
                    )
                    .await?;
                Ok((key, secret.reveal()))
            })
        })
        .await
    }

    pub async fn list_preauth_keys(&self, user: Option<UserId>) -> Result<Vec<PreAuthKey>> {
        self.run(move |core| Box::pin(async move { Ok(core.db.list_preauth_keys(user).await?) }))
            .await
    }

    pub async fn expire_preauth_key(&self, id: PreAuthKeyId) -> Result<()> {
        self.run(move |core| {
            Box::pin(async move {
                let now = core.now();
                Ok(core.db.expire_preauth_key(id, now).await?)
            })
        })
        .await
    }

    /// The key with `id`, if it exists.
    pub async fn preauth_key(&self, id: PreAuthKeyId) -> Result<Option<PreAuthKey>> {
        self.run(move |core| Box::pin(async move { Ok(core.db.get_preauth_key(id).await?) }))
            .await
    }

    pub async fn delete_preauth_key(&self, id: PreAuthKeyId) -> Result<()> {
        self.run(move |core| {
            Box::pin(async move {
                core.db.delete_preauth_key(id).await?;
                // The database cleared the nodes' reference (ON DELETE SET
                // NULL); the World follows, or it would differ until restart.
                let mut w = core.draft();
                let enrolled: Vec<_> = w
                    .nodes
                    .values()
                    .filter(|n| n.auth_key_id == Some(id))
                    .map(|n| (**n).clone())
                    .collect();
                if !enrolled.is_empty() {
                    for mut n in enrolled {
                        n.auth_key_id = None;
                        w.put_node(Arc::new(n));
                    }
                    // Nothing a client sees changed.
                    core.publish(w, Change::default());
                }
                Ok(())
            })
        })
        .await
    }
}
