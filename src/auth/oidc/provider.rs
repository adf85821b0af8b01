//! The identity provider as `openidconnect` sees it: the client type with
//! our extra claims, built from the discovery document (which also names
//! the JWKS the ID token signatures are checked against).
//!
//! The document and keys are cached for [`REFRESH`], so a provider that
//! rotates its signing key is followed within minutes, and a provider that
//! was down at startup is tried again at the next login.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, ClientId, ClientSecret, EmptyExtraTokenFields, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl, RedirectUrl, StandardErrorResponse,
    StandardTokenResponse,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::config;

/// How long a discovery document (and its JWKS) is trusted before it is
/// fetched again.
pub const REFRESH: Duration = Duration::from_secs(300);
/// Bound on each request to the provider.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The claims `openidconnect` does not model (the groups claim among
/// them), kept as JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtraClaims {
    #[serde(flatten)]
    pub claims: BTreeMap<String, serde_json::Value>,
}

impl AdditionalClaims for ExtraClaims {}

pub type IdTokenClaims = openidconnect::IdTokenClaims<ExtraClaims, CoreGenderClaim>;
pub type UserInfoClaims = openidconnect::UserInfoClaims<ExtraClaims, CoreGenderClaim>;
#[cfg(test)]
pub type IdToken = openidconnect::IdToken<
    ExtraClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenFields = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
pub type TokenResponse = StandardTokenResponse<TokenFields, CoreTokenType>;

pub type Client = openidconnect::Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

pub struct Provider {
    issuer: IssuerUrl,
    client_id: ClientId,
    secret: Option<ClientSecret>,
    redirect: RedirectUrl,
    pub http: reqwest::Client,
    cached: Mutex<Option<(Instant, Arc<Client>)>>,
}

impl Provider {
    pub fn new(cfg: &config::Oidc, redirect: RedirectUrl) -> anyhow::Result<Provider> {
        let http = reqwest::Client::builder()
            // Following redirects would let the provider's answers point
            // this server at other hosts (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .build()?;
        Ok(Provider {
            issuer: IssuerUrl::new(cfg.issuer.clone())?,
            client_id: ClientId::new(cfg.client_id.clone()),
            secret: (!cfg.client_secret.is_empty())
                .then(|| ClientSecret::new(cfg.client_secret.clone())),
            redirect,
            http,
            cached: Mutex::new(None),
        })
    }

    /// The client for the provider's current discovery document.
    pub async fn client(&self) -> Result<Arc<Client>, String> {
        let mut cached = self.cached.lock().await;
        if let Some((at, c)) = cached.as_ref()
            && at.elapsed() < REFRESH
        {
            return Ok(c.clone());
        }
        // `discover_async` checks that the document names this issuer and
        // fetches its JWKS.
        let meta = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| {
                format!(
                    "cannot read the identity provider's discovery document at {}: {e}",
                    self.issuer.as_str()
                )
            })?;
        let client: Client = openidconnect::Client::from_provider_metadata(
            meta,
            self.client_id.clone(),
            self.secret.clone(),
        )
        .set_redirect_uri(self.redirect.clone());
        let client = Arc::new(client);
        *cached = Some((Instant::now(), client.clone()));
        Ok(client)
    }
}
