//! Request parsing for REST v1: JSON bodies (at most [`BODY_LIMIT`],
//! unknown fields refused, an empty body read as `{}`), query parameters,
//! ids in paths, and the authenticated [`Caller`]. Every failure is a
//! problem document: 400 for malformed input, 413 for a body over the
//! limit, never a 500.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;

use crate::admin::Caller;
use crate::api::problem::Problem;
use axum::http::StatusCode;

/// Largest request body accepted (as Headscale's 1 MiB limit).
pub const BODY_LIMIT: usize = 1 << 20;

/// A JSON request body.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, _: &S) -> Result<Self, Problem> {
        let bytes = Limited::new(req.into_body(), BODY_LIMIT)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_large()
                } else {
                    Problem::bad_request("could not read the request body")
                }
            })?
            .to_bytes();
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(text)
            .map(Body)
            .map_err(|e| Problem::bad_request(format!("invalid request body: {e}")))
    }
}

pub fn too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body over {BODY_LIMIT} bytes"),
    )
}

/// The authenticated caller (put in place by `api::authn`).
pub struct Authed(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authed {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Authed)
            .ok_or_else(|| Problem::new(StatusCode::UNAUTHORIZED, ""))
    }
}

/// Query parameters; the first of a repeated name wins (Go's
/// `url.Values.Get`), unknown names are ignored.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Ok(Params(map))
    }
}

impl Params {
    /// A parameter's value; empty counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn id(&self, name: &str, what: &str) -> Result<Option<u64>, Problem> {
        self.get(name).map(|v| parse_u64(v, what)).transpose()
    }

    pub fn bool(&self, name: &str) -> Result<bool, Problem> {
        match self.get(name) {
            None => Ok(false),
            Some("true" | "1" | "True" | "TRUE") => Ok(true),
            Some("false" | "0" | "False" | "FALSE") => Ok(false),
            Some(v) => Err(Problem::bad_request(format!(
                "{name}: {v:?} is not a boolean"
            ))),
        }
    }

    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, Problem> {
        self.get(name)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| Problem::bad_request(format!("{name}: {v:?}: {e}")))
            })
            .transpose()
    }
}

/// A decimal uint64 id, as Headscale's contract has them.
pub fn parse_u64(text: &str, what: &str) -> Result<u64, Problem> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| Problem::bad_request(format!("invalid {what}: {text:?} is not a number")))
}

/// An id in the database's range. A larger one is well-formed but cannot
/// exist: not found.
pub fn db_id(id: u64, what: &str) -> Result<i64, Problem> {
    i64::try_from(id).map_err(|_| Problem::new(StatusCode::NOT_FOUND, format!("{what} not found")))
}
