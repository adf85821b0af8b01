//! OAuth client transitions (API v2). Like API keys, clients change no
//! World: they live in the database only and the admin layer keeps its own
//! short-lived cache of them (`admin::oauth`), so nothing is published.

use super::{Error, Result, StateHandle};
use crate::db::NewOAuthClient;
use crate::types::node::normalize_tags;
use crate::types::{OAuthClient, OAuthSecret, ScopeSet};

impl StateHandle {
    /// Creates a client and returns it with its secret text, which is never
    /// stored and never shown again.
    pub async fn create_oauth_client(
        &self,
        scopes: ScopeSet,
        tags: Vec<String>,
        description: String,
    ) -> Result<(OAuthClient, String)> {
        let tags = normalize_tags(tags).map_err(Error::InvalidArgument)?;
        self.run(move |core| {
            Box::pin(async move {
                let secret = OAuthSecret::generate();
                let client = core
                    .db
                    .create_oauth_client(
                        &NewOAuthClient {
                            client_id: secret.prefix.clone(),
                            hash: secret.hash(),
                            scopes,
                            tags,
                            description,
                        },
                        core.now(),
                    )
                    .await?;
                Ok((client, secret.reveal()))
            })
        })
        .await
    }

    pub async fn list_oauth_clients(&self) -> Result<Vec<OAuthClient>> {
        self.run(|core| Box::pin(async move { Ok(core.db.list_oauth_clients().await?) }))
            .await
    }

    pub async fn delete_oauth_client(&self, client_id: String) -> Result<()> {
        self.run(move |core| {
            Box::pin(async move { Ok(core.db.delete_oauth_client(&client_id).await?) })
        })
        .await
    }
}
