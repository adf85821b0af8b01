//! The one place state errors become HTTP responses. Client errors pass their
//! message through; internal errors are logged here and answered with a
//! generic text so nothing internal leaks.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::auth::ssh_check;
use crate::{certs, state};

#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }

    pub fn unauthorized(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::UNAUTHORIZED, msg.into())
    }
}

impl From<state::Error> for ApiError {
    fn from(e: state::Error) -> Self {
        use state::Error::*;
        match e {
            NotFound(m) => ApiError(StatusCode::NOT_FOUND, m),
            InvalidArgument(m) => ApiError(StatusCode::BAD_REQUEST, m),
            Conflict(m) => ApiError(StatusCode::CONFLICT, m),
            FailedPrecondition(m) | Stale(m) => ApiError(StatusCode::PRECONDITION_FAILED, m),
            Internal(m) => {
                tracing::error!(error = %m, "internal error");
                ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
            Unavailable(m) => {
                tracing::error!(error = %m, "database unavailable");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database unavailable".into(),
                )
            }
            Stopped => ApiError(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into()),
        }
    }
}

impl From<certs::Refusal> for ApiError {
    fn from(r: certs::Refusal) -> Self {
        use certs::Refusal::*;
        let status = match &r {
            Disabled => StatusCode::NOT_IMPLEMENTED,
            NotForThisNode | Name { .. } => StatusCode::FORBIDDEN,
            Type(_) | Value(_) => StatusCode::BAD_REQUEST,
        };
        ApiError(status, r.to_string())
    }
}

impl From<ssh_check::Refusal> for ApiError {
    fn from(r: ssh_check::Refusal) -> Self {
        use ssh_check::Refusal::*;
        let status = match &r {
            NotDestination(_) | OtherConnection(_) => StatusCode::FORBIDDEN,
            Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, r.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}
