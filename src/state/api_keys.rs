//! API key transitions. Like pre-auth keys, API keys change no World: they
//! live in the database only, and the whois API keeps its own short-lived
//! cache of them (`admin::keycache`), so nothing is published here.

use chrono::{DateTime, Utc};

use super::{Error, Result, StateHandle};
use crate::types::{ApiKey, ApiSecret, Scope};

/// Which key an expire/delete request means: Headscale accepts either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeyRef {
    Id(i64),
    Prefix(String),
}

impl ApiKeyRef {
    fn split(&self) -> (Option<i64>, String) {
        match self {
            ApiKeyRef::Id(id) => (Some(*id), String::new()),
            ApiKeyRef::Prefix(p) => (None, p.trim().to_ascii_lowercase()),
        }
    }
}

impl StateHandle {
    /// Creates a key and returns it with its secret text, which is never
    /// stored and never shown again.
    pub async fn create_api_key(
        &self,
        scope: Scope,
        expiration: Option<DateTime<Utc>>,
    ) -> Result<(ApiKey, String)> {
        self.run(move |core| {
            Box::pin(async move {
                let now = core.now();
                if expiration.is_some_and(|e| e <= now) {
                    return Err(Error::InvalidArgument("expiration is in the past".into()));
                }
                let secret = ApiSecret::generate();
                let key = core
                    .db
                    .create_api_key(&secret.prefix, &secret.hash(), scope, expiration, now)
                    .await?;
                Ok((key, secret.reveal()))
            })
        })
        .await
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        self.run(move |core| Box::pin(async move { Ok(core.db.list_api_keys().await?) }))
            .await
    }

    pub async fn expire_api_key(&self, key: ApiKeyRef) -> Result<()> {
        let (id, prefix) = key.split();
        self.run(move |core| {
            Box::pin(async move {
                let now = core.now();
                Ok(core.db.expire_api_key(id, &prefix, now).await?)
            })
        })
        .await
    }

    pub async fn delete_api_key(&self, key: ApiKeyRef) -> Result<()> {
        let (id, prefix) = key.split();
        self.run(move |core| {
            Box::pin(async move { Ok(core.db.delete_api_key(id, &prefix).await?) })
        })
        .await
    }
}
