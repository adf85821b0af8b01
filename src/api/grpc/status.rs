//! The one place an admin error becomes a `tonic::Status`.
//!
//! Client mistakes keep their message (it is written for operators);
//! internal failures are logged here with the real cause and reach the
//! client only as a generic `INTERNAL`, unlike Headscale v0.29's bare
//! `return nil, err` (which leaks internals as `UNKNOWN`).

use tonic::Status;

use crate::admin;

impl From<admin::Error> for Status {
    fn from(e: admin::Error) -> Self {
        use admin::Error::*;
        match e {
            NotFound(m) => Status::not_found(m),
            InvalidArgument(m) => Status::invalid_argument(m),
            Conflict(m) => Status::already_exists(m),
            FailedPrecondition(m) | Stale(m) => Status::failed_precondition(m),
            PermissionDenied(m) => Status::permission_denied(m),
            Unavailable(m) => Status::unavailable(m),
            e @ Internal(_) => {
                tracing::error!(error = %e, "admin request failed");
                Status::internal(e.public_message())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn client_errors_keep_code_and_message() {
        let cases = [
            (
                admin::Error::NotFound("node not found".into()),
                Code::NotFound,
            ),
            (
                admin::Error::InvalidArgument("bad".into()),
                Code::InvalidArgument,
            ),
            (admin::Error::Conflict("dup".into()), Code::AlreadyExists),
            (
                admin::Error::FailedPrecondition("no".into()),
                Code::FailedPrecondition,
            ),
            (
                admin::Error::PermissionDenied("scope".into()),
                Code::PermissionDenied,
            ),
            (admin::Error::Unavailable("later".into()), Code::Unavailable),
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
        let s = Status::from(admin::Error::Internal(
            "database error: disk I/O at /var/lib/secret.db".into(),
        ));
        assert_eq!(s.code(), Code::Internal);
        assert!(!s.message().contains("secret"), "{}", s.message());
    }
}
