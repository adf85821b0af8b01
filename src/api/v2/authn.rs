//! Who is calling API v2, as a [`Caller`] put in the request's extensions
//! before any handler runs. Three credentials work, each as
//! `Authorization: Bearer <credential>` or, as Tailscale's Go clients send
//! API keys, `Authorization: Basic base64(<credential>:)`:
//! - an OAuth access token from `/api/v2/oauth/token` (`cstoken-…`),
//!   checked by its signature and expiry, its client by the bounded client
//!   cache (`admin::oauth`): actor `oauth:<client id>`;
//! - a clawscale API key (`cskey-api-…`), or the same key written in
//!   Tailscale's form (`tskey-api-<prefix>-<secret>`, an accepted alias for
//!   tools that expect that prefix): actor `apikey:<prefix>`, checked by the
//!   key cache (`admin::keycache`).
//!
//! A bad credential of any kind costs at most one database read a second.
//! Every answer carries `X-Request-Id`, as REST v1's.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::error::ApiError;
use crate::admin::caller::{accept_request_id, new_request_id};
use crate::admin::keycache::AuthError;
use crate::admin::oauth::token;
use crate::admin::{Admin, Caller, Transport};
use crate::api::authn::REQUEST_ID;

/// The Tailscale-form prefix accepted for clawscale API keys.
const TS_API_PREFIX: &str = "tskey-api-";
const CS_API_PREFIX: &str = "cskey-api-";

/// The credential in an `Authorization` header value.
pub fn credential(value: &str) -> Result<String, AuthError> {
    let (scheme, rest) = value.trim().split_once(' ').ok_or(AuthError::Invalid)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| AuthError::Invalid)?;
        let text = String::from_utf8(raw).map_err(|_| AuthError::Invalid)?;
        let (user, _password) = text.split_once(':').unwrap_or((&text, ""));
        return Ok(user.to_string());
    }
    Err(AuthError::Invalid)
}

/// The caller `credential` stands for.
pub async fn caller(admin: &Admin, credential: &str) -> Result<Caller, AuthError> {
    if token::is_token(credential) {
        return admin.authenticate_token(credential).await;
    }
    let key = match credential.strip_prefix(TS_API_PREFIX) {
        Some(rest) => format!("{CS_API_PREFIX}{rest}"),
        None => credential.to_string(),
    };
    let key = admin.keys().authenticate(&key).await?;
    Ok(Caller::api_key(&key.prefix, key.scope, Transport::RestV2))
}

/// Establishes the caller, or answers 401 without running the handler.
pub async fn authenticate(State(admin): State<Admin>, mut req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(accept_request_id)
        .unwrap_or_else(new_request_id);
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.to_str().map(str::to_string));
    let who = async {
        let value = header
            .ok_or(AuthError::Missing)?
            .map_err(|_| AuthError::Invalid)?;
        caller(&admin, &credential(&value)?).await
    };
    let mut resp = match who.await {
        Ok(c) => {
            req.extensions_mut()
                .insert(c.with_request_id(request_id.clone()));
            next.run(req).await
        }
        Err(e) => ApiError::from(e).into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_bearer_and_basic() {
        assert_eq!(credential("Bearer abc").unwrap(), "abc");
        assert_eq!(credential("bearer   abc ").unwrap(), "abc");
        let basic = base64::engine::general_purpose::STANDARD.encode("tskey-api-x-y:");
        assert_eq!(
            credential(&format!("Basic {basic}")).unwrap(),
            "tskey-api-x-y"
        );
        assert_eq!(credential("Digest abc"), Err(AuthError::Invalid));
        assert_eq!(credential("abc"), Err(AuthError::Invalid));
        assert_eq!(credential("Basic %%%"), Err(AuthError::Invalid));
    }
}
