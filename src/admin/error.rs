//! What an operation can fail with, by kind. Transports map these to their
//! status codes in one place each: `api::problem` (HTTP) and
//! `api::grpc::status` (gRPC).

use crate::state;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    /// Bad input: the message says what and why.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Conflict(String),
    /// The request is well-formed but the current state forbids it (a user
    /// who still owns nodes, a file-managed policy).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The object changed since the caller read it: a conditional update
    /// (API v2's `If-Match`) was refused.
    #[error("{0}")]
    Stale(String),
    /// Authenticated, but the grants do not cover the operation.
    #[error("{0}")]
    PermissionDenied(String),
    /// Logged where it is mapped; clients see a generic text.
    #[error("internal error: {0}")]
    Internal(String),
    /// The state writer stopped (shutdown).
    #[error("{0}")]
    Unavailable(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a client is told when the database failed its request.
pub const DATABASE_UNAVAILABLE: &str =
    "database unavailable: the request failed and changed nothing (details are in the server log)";

impl From<state::Error> for Error {
    fn from(e: state::Error) -> Self {
        match e {
            state::Error::NotFound(m) => Error::NotFound(m),
            state::Error::InvalidArgument(m) => Error::InvalidArgument(m),
            state::Error::Conflict(m) => Error::Conflict(m),
            state::Error::FailedPrecondition(m) => Error::FailedPrecondition(m),
            state::Error::Stale(m) => Error::Stale(m),
            state::Error::Internal(m) => Error::Internal(m),
            state::Error::Stopped => Error::Unavailable("the server is shutting down".into()),
            state::Error::Unavailable(m) => {
                // The cause may name files; it stays in the log. Every write
                // is one transaction, so "changed nothing" is exact.
                tracing::error!(error = %m, "admin request failed: database unavailable");
                Error::Unavailable(DATABASE_UNAVAILABLE.into())
            }
        }
    }
}

impl Error {
    /// The text a client may see: internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => "internal server error (details are in the server log)".into(),
            other => other.to_string(),
        }
    }
}
