//! The one place an admin error becomes an HTTP response: RFC 7807
//! `application/problem+json` (`{"title", "status", "detail"}`), the shape
//! Headscale's Huma-based API answers with, for REST v1 (and v2 after it).
//!
//! Client mistakes keep their message; internal failures are logged here
//! and answered with a generic text, so nothing internal leaks.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::admin;

pub const CONTENT_TYPE_PROBLEM: &str = "application/problem+json";

/// An RFC 7807 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// The status code's reason phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The status code of each error kind.
pub fn status_of(e: &admin::Error) -> StatusCode {
    use admin::Error::*;
    match e {
        NotFound(_) => StatusCode::NOT_FOUND,
        // Headscale answers a state that forbids the request (a user who
        // still owns nodes, a file-managed policy) with 400 too.
        InvalidArgument(_) | FailedPrecondition(_) => StatusCode::BAD_REQUEST,
        Conflict(_) => StatusCode::CONFLICT,
        Stale(_) => StatusCode::PRECONDITION_FAILED,
        PermissionDenied(_) => StatusCode::FORBIDDEN,
        Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl From<admin::Error> for Problem {
    fn from(e: admin::Error) -> Self {
        if let admin::Error::Internal(m) = &e {
            tracing::error!(error = %m, "admin request failed");
        }
        Problem::new(status_of(&e), e.public_message())
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut r = (status, body).into_response();
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_PROBLEM));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_codes_and_internals_stay_inside() {
        let cases = [
            (admin::Error::NotFound("x".into()), 404),
            (admin::Error::InvalidArgument("x".into()), 400),
            (admin::Error::FailedPrecondition("x".into()), 400),
            (admin::Error::Conflict("x".into()), 409),
            (admin::Error::Stale("x".into()), 412),
            (admin::Error::PermissionDenied("x".into()), 403),
            (admin::Error::Unavailable("x".into()), 503),
        ];
        for (e, code) in cases {
            let p = Problem::from(e);
            assert_eq!(p.status, code);
            assert_eq!(p.detail, "x");
        }
        let p = Problem::from(admin::Error::Internal("disk /var/lib/secret.db".into()));
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("secret"), "{}", p.detail);
        assert_eq!(p.title, "Internal Server Error");
    }
}
