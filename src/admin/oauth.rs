//! OAuth clients and access tokens of API v2 (Tailscale's client
//! credentials flow): operators create, list and delete clients; a client
//! trades its secret for an access token of at most its scopes, valid for
//! an hour ([`token`]); requests with that token act as `oauth:<client id>`
//! with the grants its scopes map to (`caller`) and the client's tags as
//! the bound on the tags it gives keys and devices.
//!
//! Neither a token request nor a request with a token queries the database
//! beyond the bounded client cache ([`cache`]).

pub mod cache;
pub mod token;

use std::sync::Arc;

use serde_json::json;

use super::keycache::AuthError;
use super::{Admin, Caller, Done, Error, Mutation, Resource, Result};
use crate::types::{OAuthClient, OAuthSecret, ScopeSet};

/// A client to create.
#[derive(Debug, Clone, Default)]
pub struct NewOAuthClient {
    pub scopes: ScopeSet,
    pub tags: Vec<String>,
    pub description: String,
}

/// An issued access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    pub scopes: ScopeSet,
}

/// Why a token request failed, as RFC 6749 §5.2 names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    InvalidRequest(String),
    /// Unknown client or wrong secret (never says which).
    #[error("invalid client credentials")]
    InvalidClient,
    #[error("{0}")]
    InvalidScope(String),
    #[error("OAuth clients cannot be checked right now")]
    Unavailable,
}

fn view(c: &OAuthClient) -> serde_json::Value {
    json!({
        "client_id": c.client_id,
        "scopes": c.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "tags": c.tags,
        "description": c.description,
    })
}

fn object(client_id: &str) -> String {
    format!("oauth-client:{client_id}")
}

/// Longest description kept (Tailscale allows 50 characters).
const MAX_DESCRIPTION: usize = 100;

impl Admin {
    /// Creates a client; returns it with its secret, shown only now.
    pub async fn create_oauth_client(
        &self,
        caller: &Caller,
        new: NewOAuthClient,
    ) -> Result<(OAuthClient, String)> {
        let m = Mutation::new(Resource::OAuthClients, "oauthclient.create");
        self.mutate(caller, m, async {
            if new.scopes.is_empty() {
                return Err(Error::InvalidArgument(
                    "an OAuth client needs at least one scope".into(),
                ));
            }
            if new.tags.is_empty()
                && let Some(s) = new.scopes.iter().find(|s| s.needs_tags())
            {
                return Err(Error::InvalidArgument(format!(
                    "scope {s} needs tags: what the client creates is owned by them"
                )));
            }
            if new.description.chars().count() > MAX_DESCRIPTION {
                return Err(Error::InvalidArgument(format!(
                    "description over {MAX_DESCRIPTION} characters"
                )));
            }
            let (client, secret) = self
                .state()
                .create_oauth_client(new.scopes, new.tags, new.description)
                .await?;
            self.0.clients.invalidate();
            Ok(Done::new((client.clone(), secret))
                .object(object(&client.client_id))
                .after(view(&client)))
        })
        .await
    }

    /// Clients in creation order, without secrets.
    pub async fn list_oauth_clients(&self, caller: &Caller) -> Result<Vec<OAuthClient>> {
        self.read(caller, Resource::OAuthClients)?;
        Ok(self.state().list_oauth_clients().await?)
    }

    /// Deletes a client; its access tokens stop working at once.
    pub async fn delete_oauth_client(&self, caller: &Caller, client_id: &str) -> Result<()> {
        let client_id = client_id.trim().to_ascii_lowercase();
        let before = self.0.clients.get(&client_id).await.ok().flatten();
        let m = Mutation::new(Resource::OAuthClients, "oauthclient.delete")
            .on(object(&client_id))
            .before(before.as_ref().map(view));
        self.mutate(caller, m, async {
            self.state().delete_oauth_client(client_id.clone()).await?;
            self.0.clients.invalidate();
            Ok(Done::new(()))
        })
        .await
    }

    /// The client credentials grant: `secret` (the `tskey-client-…` text)
    /// for a token of `requested` scopes (all of the client's when `None`).
    pub async fn issue_token(
        &self,
        secret: &str,
        requested: Option<ScopeSet>,
    ) -> std::result::Result<AccessToken, TokenError> {
        let secret = OAuthSecret::parse(secret).ok_or(TokenError::InvalidClient)?;
        let client = self
            .0
            .clients
            .get(&secret.prefix)
            .await
            .map_err(|_| TokenError::Unavailable)?
            .filter(|c| c.matches(&secret))
            .ok_or(TokenError::InvalidClient)?;
        let scopes = match requested {
            None => client.scopes,
            Some(r) if r.is_empty() => client.scopes,
            Some(r) if r.is_subset(client.scopes) => r,
            Some(r) => {
                return Err(TokenError::InvalidScope(format!(
                    "requested scopes [{}] exceed the client's [{}]",
                    r.to_text(),
                    client.scopes.to_text()
                )));
            }
        };
        let now = self.now();
        let expires = now + token::LIFETIME;
        tracing::info!(client = %client.client_id, scopes = %scopes.to_text(), "API v2 access token issued");
        Ok(AccessToken {
            token: token::issue(&self.0.token_key, &client.client_id, scopes, expires),
            expires_in: token::LIFETIME.num_seconds(),
            scopes,
        })
    }

    /// The caller a presented access token stands for: a valid, unexpired
    /// token of a client that still exists, with the scopes both allow.
    pub async fn authenticate_token(&self, text: &str) -> std::result::Result<Caller, AuthError> {
        let claims = token::verify(&self.0.token_key, text, self.now()).map_err(|e| match e {
            token::Refused::Invalid => AuthError::Invalid,
            token::Refused::Expired => AuthError::Expired,
        })?;
        let client = self
            .0
            .clients
            .get(&claims.client_id)
            .await?
            .ok_or(AuthError::Invalid)?;
        Ok(Caller::oauth(
            &client.client_id,
            claims.scopes.intersect(client.scopes),
            Arc::from(client.tags),
        ))
    }

    /// The client cache (for tests and bounds).
    pub fn oauth_clients(&self) -> &cache::ClientCache {
        &self.0.clients
    }
}

#[cfg(test)]
mod tests;
