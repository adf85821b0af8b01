//! API v2's error answer: Tailscale's shape, `{"message": "…"}` (clients
//! read `message`; the Go client's `APIError`, the Python client's
//! `_response_error`). The status of each admin error kind is v1's
//! (`api::problem::status_of`), so both transports agree on codes; only the
//! body differs. Internal failures are logged and answered generically.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::admin::{self, keycache::AuthError};
use crate::api::problem::status_of;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiError {
    /// What went wrong, for people.
    pub message: String,
    #[serde(skip)]
    #[schema(ignore)]
    pub status: u16,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            message: message.into(),
            status: status.as_u16(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<admin::Error> for ApiError {
    fn from(e: admin::Error) -> Self {
        if let admin::Error::Internal(m) = &e {
            tracing::error!(error = %m, "API v2 request failed");
        }
        ApiError::new(status_of(&e), e.public_message())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let status = match e {
            AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        (status, axum::Json(self)).into_response()
    }
}
