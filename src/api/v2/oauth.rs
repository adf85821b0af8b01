//! `POST /api/v2/oauth/token`: the client credentials grant (RFC 6749
//! §4.4) as Tailscale serves it. The client authenticates with its secret,
//! in the form body (`client_secret`, what the Python client sends) or as
//! HTTP Basic credentials (`client_id:client_secret`, what Go's oauth2
//! package tries first). `client_id` is not checked: the secret holds the
//! client id, and `tailscale up --auth-key tskey-client-…` sends a
//! placeholder. `scope` (space-separated) narrows the token's scopes; it
//! cannot widen them. Errors are RFC 6749's `{"error": …}` with Tailscale's
//! `message` beside it.

use axum::Json;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::extract::Text;
use super::model::{TokenError as TokenErrorBody, TokenResponse};
use crate::admin::{Admin, TokenError};
use crate::types::ScopeSet;

fn error(status: StatusCode, code: &str, description: String) -> Response {
    let body = TokenErrorBody {
        error: code.into(),
        error_description: description.clone(),
        message: description,
    };
    (status, [(CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

fn invalid_request(description: impl Into<String>) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        description.into(),
    )
}

/// The secret from `Authorization: Basic`, if that is how it came.
fn basic_secret(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (_, secret) = text.split_once(':')?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded first.
    let decoded: String = form_urlencoded::parse(format!("s={secret}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    Some(decoded)
}

/// Trades an OAuth client's secret for an access token valid one hour.
#[utoipa::path(post, path = "/api/v2/oauth/token", tag = "OAuth", operation_id = "oauthToken",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "grant_type=client_credentials&client_id=…&client_secret=tskey-client-…[&scope=…]"),
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, body = TokenErrorBody),
        (status = 401, body = TokenErrorBody),
    ))]
pub async fn token(State(admin): State<Admin>, headers: HeaderMap, Text(body): Text) -> Response {
    let mut secret = basic_secret(&headers);
    let mut scope = None;
    for (k, v) in form_urlencoded::parse(body.as_bytes()) {
        match k.as_ref() {
            "grant_type" if v != "client_credentials" => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    format!("grant_type {v:?} is not supported (use client_credentials)"),
                );
            }
            "client_secret" if secret.is_none() => secret = Some(v.into_owned()),
            "scope" => scope = Some(v.into_owned()),
            "tags" => {
                return invalid_request("narrowing a token's tags is not supported by clawscale");
            }
            _ => {}
        }
    }
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return invalid_request("client_secret is required");
    };
    let requested = match scope.as_deref().map(|s| ScopeSet::parse([s])) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, "invalid_scope", e),
    };
    match admin.issue_token(&secret, requested).await {
        Ok(t) => (
            [(CACHE_CONTROL, "no-store")],
            Json(TokenResponse {
                access_token: t.token,
                token_type: "Bearer".into(),
                expires_in: t.expires_in,
                scope: t.scopes.to_text(),
            }),
        )
            .into_response(),
        Err(e @ TokenError::InvalidClient) => {
            error(StatusCode::UNAUTHORIZED, "invalid_client", e.to_string())
        }
        Err(TokenError::InvalidScope(m)) => error(StatusCode::BAD_REQUEST, "invalid_scope", m),
        Err(TokenError::InvalidRequest(m)) => invalid_request(m),
        Err(e @ TokenError::Unavailable) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            e.to_string(),
        ),
    }
}
