//! Authentication for the REST transports: who is calling, as a [`Caller`]
//! put in the request's extensions before any handler runs.
//!
//! - On the admin unix socket the connection's server inserts a
//!   [`LocalPeer`] (the peer's uid from `SO_PEERCRED`): local trust, no key,
//!   as Headscale's socket.
//! - Everywhere else `Authorization: Bearer <API key>` is required; the key
//!   is checked against the key cache (`admin::keycache`), so a flood of
//!   bad keys costs at most one database query per second. What the key's
//!   scope allows is decided by the operations, not here.
//!
//! Every response carries `X-Request-Id` (the client's, when acceptable,
//! else a fresh one); the audit log records the same id.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;
use crate::admin::caller::{accept_request_id, new_request_id};
use crate::admin::keycache::{AuthError, bearer_token};
use crate::admin::{Admin, Caller, Transport};

pub const REQUEST_ID: &str = "x-request-id";

/// Marks a request that came over the admin unix socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalPeer {
    pub uid: Option<u32>,
}

/// What the middleware needs.
#[derive(Clone)]
pub struct Authn {
    pub admin: Admin,
    pub transport: Transport,
}

/// The 401/503 for a request that could not be authenticated. The body is
/// small and names no object (Headscale's is `Unauthorized` too).
pub fn refusal(e: AuthError) -> Problem {
    match e {
        AuthError::Unavailable => Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        _ => Problem::new(StatusCode::UNAUTHORIZED, e.to_string()),
    }
}

/// Establishes the caller, or answers 401 without running the handler.
pub async fn authenticate(State(authn): State<Authn>, mut req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(accept_request_id)
        .unwrap_or_else(new_request_id);
    let local = req.extensions().get::<LocalPeer>().copied();
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.to_str().map(str::to_string));
    let caller = match local {
        Some(peer) => Ok(Caller::local(peer.uid, authn.transport)),
        None => bearer_caller(&authn, header).await,
    };
    let mut resp = match caller {
        Ok(c) => {
            req.extensions_mut()
                .insert(c.with_request_id(request_id.clone()));
            next.run(req).await
        }
        Err(e) => refusal(e).into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// `header`: the `Authorization` value, if any (`Err`: not text).
async fn bearer_caller(
    authn: &Authn,
    header: Option<Result<String, axum::http::header::ToStrError>>,
) -> Result<Caller, AuthError> {
    let header = header
        .ok_or(AuthError::Missing)?
        .map_err(|_| AuthError::Invalid)?;
    let key = authn
        .admin
        .keys()
        .authenticate(bearer_token(&header)?)
        .await?;
    Ok(Caller::api_key(&key.prefix, key.scope, authn.transport))
}
