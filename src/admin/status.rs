//! The one place a `state::Error` becomes a `tonic::Status`.
//!
//! Client mistakes keep their message (it is written for operators); internal
//! failures are logged here with the real cause and reach the client only as
//! a generic `INTERNAL`, unlike Headscale v0.29's bare `return nil, err`
//! (which leaks internals as `UNKNOWN`).

use tonic::Status;

use crate::state;

impl From<state::Error> for Status {
    fn from(e: state::Error) -> Self {
        match e {
            state::Error::NotFound(m) => Status::not_found(m),
            state::Error::InvalidArgument(m) => Status::invalid_argument(m),
            state::Error::Conflict(m) => Status::already_exists(m),
            state::Error::FailedPrecondition(m) => Status::failed_precondition(m),
            state::Error::Internal(m) => {
                tracing::error!(error = %m, "admin request failed");
                Status::internal("internal server error (details are in the server log)")
            }
            state::Error::Unavailable(m) => {
                tracing::error!(error = %m, "admin request failed: database unavailable");
                Status::unavailable(UNAVAILABLE)
            }
            state::Error::Stopped => {
                tracing::warn!("admin request while the state writer is stopped");
                Status::unavailable("the server is shutting down")
            }
        }
    }
}

/// What a client is told when the database failed a request: that it failed
/// as a whole (every write is one transaction, rolled back on error), not
/// why (the cause, which may name files, is in the server log).
const UNAVAILABLE: &str = "database unavailable: the request failed and changed nothing \
     (details are in the server log)";

/// The answer for headscale.v1 methods clawscale does not implement.
pub(super) fn unsupported(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not supported by clawscale"))
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn client_errors_keep_code_and_message() {
        let cases = [
            (
                state::Error::NotFound("node not found".into()),
                Code::NotFound,
            ),
            (
                state::Error::InvalidArgument("bad".into()),
                Code::InvalidArgument,
            ),
            (state::Error::Conflict("dup".into()), Code::AlreadyExists),
            (
                state::Error::FailedPrecondition("no".into()),
                Code::FailedPrecondition,
            ),
        ];
        for (err, code) in cases {
            let msg = err.to_string();
            let s = Status::from(err);
            assert_eq!(s.code(), code);
            assert_eq!(s.message(), msg);
        }
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let s = Status::from(state::Error::Internal(
            "database error: disk I/O at /var/lib/secret.db".into(),
        ));
        assert_eq!(s.code(), Code::Internal);
        assert!(!s.message().contains("secret"), "{}", s.message());
        assert_eq!(
            Status::from(state::Error::Stopped).code(),
            Code::Unavailable
        );
        let s = Status::from(state::Error::Unavailable(
            "error returned from database: (code: 13) database or disk is full".into(),
        ));
        assert_eq!(s.code(), Code::Unavailable);
        assert!(s.message().contains("changed nothing"), "{}", s.message());
        assert!(!s.message().contains("disk"), "{}", s.message());
    }

    #[test]
    fn unsupported_names_the_method() {
        let s = unsupported("SetPolicy");
        assert_eq!(s.code(), Code::Unimplemented);
        assert_eq!(s.message(), "SetPolicy is not supported by clawscale");
    }
}
