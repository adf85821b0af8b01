//! Request parsing for API v2: JSON bodies and raw (HuJSON) bodies of at
//! most [`BODY_LIMIT`], device ids in both of Tailscale's forms, and the
//! authenticated caller. Every failure is an [`ApiError`]: 400 for
//! malformed input, 413 for a body over the limit, never a 500.
//!
//! Unknown JSON fields are ignored, as Tailscale's API does: clients send
//! fields clawscale has no use for (`keyType`, `scopes` of other key kinds),
//! and the fields that change behaviour are checked where they are used.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::admin::Caller;
use crate::types::{NodeId, PreAuthKeyId};

/// Largest request body accepted (1 MiB, as REST v1's).
pub const BODY_LIMIT: usize = crate::api::v1::extract::BODY_LIMIT;

pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body over {BODY_LIMIT} bytes"),
    )
}

async fn read(req: Request) -> Result<bytes::Bytes, ApiError> {
    Ok(Limited::new(req.into_body(), BODY_LIMIT)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                ApiError::bad_request("could not read the request body")
            }
        })?
        .to_bytes())
}

/// A JSON request body; an empty body reads as `{}`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = read(req).await?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(text)
            .map(Body)
            .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
    }
}

/// A UTF-8 request body taken as it is (a HuJSON policy).
pub struct Text(pub String);

impl<S: Send + Sync> FromRequest<S> for Text {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = read(req).await?;
        String::from_utf8(bytes.to_vec())
            .map(Text)
            .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))
    }
}

/// The authenticated caller (put in place by `authn`).
pub struct Authed(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Authed)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "not authenticated"))
    }
}

/// A device id: the numeric id (`"7"`, Tailscale's legacy `id`) or the
/// node id (`"n7"`, its `nodeId`). A well-formed id out of range cannot
/// exist: 404.
pub fn device_id(text: &str) -> Result<NodeId, ApiError> {
    let digits = text.strip_prefix('n').unwrap_or(text);
    let n: u64 = digits
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid device id {text:?}")))?;
    i64::try_from(n)
        .map(NodeId)
        .map_err(|_| ApiError::not_found("device not found"))
}

/// A key id (the decimal id keys are listed with).
pub fn key_id(text: &str) -> Result<PreAuthKeyId, ApiError> {
    let n: u64 = text
        .parse()
        .map_err(|_| ApiError::not_found("key not found"))?;
    i64::try_from(n)
        .map(PreAuthKeyId)
        .map_err(|_| ApiError::not_found("key not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_in_both_forms() {
        assert_eq!(device_id("7").unwrap(), NodeId(7));
        assert_eq!(device_id("n7").unwrap(), NodeId(7));
        assert_eq!(device_id("x7").unwrap_err().status, 400);
        assert_eq!(device_id("").unwrap_err().status, 400);
        assert_eq!(device_id(&u64::MAX.to_string()).unwrap_err().status, 404);
        assert_eq!(key_id("3").unwrap(), PreAuthKeyId(3));
        assert_eq!(key_id("kABC").unwrap_err().status, 404);
    }
}
