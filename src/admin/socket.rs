//! The admin API's unix socket: binding it safely (stale-socket clean-up,
//! permissions) and serving/connecting gRPC over it.
//!
//! Headscale serves the same API on `unix_socket` with mode
//! `unix_socket_permission` (default 0770); access control is the socket's
//! file mode, so the mode is applied right after binding.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{UnixListener, UnixStream};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint, Uri};

use super::{AdminService, Error, HeadscaleServiceClient};
use crate::limits::{self, Activity, Timeouts, Tracked};

/// Binds `path` with file mode `mode`, replacing a stale socket left by a
/// crashed server but never a live one or a non-socket file.
pub fn bind_unix(path: &Path, mode: u32) -> Result<UnixListener, Error> {
    let io = |source| Error::Socket {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // A blocking connect to a unix socket answers at once: refused
            // means nobody listens any more.
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(Error::InUse(path.to_path_buf())),
                Err(_) => std::fs::remove_file(path).map_err(io)?,
            }
        }
        Ok(_) => return Err(Error::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    // Until this runs the socket has the umask's mode, which for the usual
    // umasks denies connecting to group/others anyway.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    Ok(listener)
}

/// Serves the admin API on an already bound listener, for ever.
///
/// Each connection is HTTP/2 (gRPC) served like the public port's (see
/// `crate::limits`): its first request must come within `read_header`, and
/// it is closed after `idle` with no call in flight or when PINGs go
/// unanswered, so a client that connects and hangs cannot hold a
/// descriptor for ever. Accept errors (EMFILE under load) are logged and
/// retried after a short pause: the admin API must outlive them.
pub async fn serve_listener(listener: UnixListener, svc: AdminService, t: Timeouts) {
    let server = svc.into_server();
    loop {
        let conn = match listener.accept().await {
            Ok((conn, _addr)) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "admin socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let server = server.clone();
        tokio::spawn(async move {
            let first_request_by = Instant::now() + t.read_header;
            let activity = Activity::new();
            let service = Tracked::new(
                TowerToHyperService::new(server),
                activity.clone(),
                t.read_body,
            );
            let conn =
                limits::idle::http2_builder(&t).serve_connection(TokioIo::new(conn), service);
            if let Err(e) =
                limits::serve_connection(conn, &activity, first_request_by, t.idle).await
            {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
}

/// Binds `path` (see [`bind_unix`]) and serves the admin API on it.
pub async fn serve_unix(
    path: &Path,
    mode: u32,
    svc: AdminService,
    t: Timeouts,
) -> Result<(), Error> {
    let listener = bind_unix(path, mode)?;
    serve_listener(listener, svc, t).await;
    Ok(())
}

/// A gRPC client over the admin socket at `path`.
pub async fn connect_unix(path: &Path) -> Result<HeadscaleServiceClient<Channel>, Error> {
    // The URI is only a placeholder for HTTP/2's :authority; the connector
    // below ignores it and dials the socket.
    let endpoint = Endpoint::from_static("http://clawscale.sock")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60));
    let socket: PathBuf = path.to_path_buf();
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|e| connect_error(path, &e))?;
    Ok(HeadscaleServiceClient::new(channel))
}

/// Says why dialling the socket failed: tonic's own message is only
/// "transport error", the cause sits in its source chain.
fn connect_error(path: &Path, e: &(dyn std::error::Error + 'static)) -> Error {
    let path = path.to_path_buf();
    let mut cause = Some(e);
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                ErrorKind::PermissionDenied => Error::PermissionDenied { path },
                ErrorKind::NotFound | ErrorKind::ConnectionRefused => Error::NotRunning {
                    path,
                    source: std::io::Error::new(io.kind(), io.to_string()),
                },
                _ => Error::Connect {
                    path,
                    detail: io.to_string(),
                },
            };
        }
        cause = err.source();
    }
    let mut detail = e.to_string();
    let mut next = e.source();
    while let Some(err) = next {
        detail = format!("{detail}: {err}");
        next = err.source();
    }
    Error::Connect { path, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bind_applies_mode_and_replaces_only_stale_sockets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("admin.sock");

        let live = bind_unix(&path, 0o660).expect("first bind");
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o660);

        // A server is listening: refuse to steal its socket.
        assert!(matches!(bind_unix(&path, 0o660), Err(Error::InUse(_))));

        // The server is gone but its socket file remains: replace it.
        drop(live);
        assert!(path.exists());
        let _again = bind_unix(&path, 0o600).expect("stale socket replaced");
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test]
    async fn bind_never_deletes_a_regular_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("not-a-socket");
        std::fs::write(&path, b"precious").expect("write");
        assert!(matches!(bind_unix(&path, 0o600), Err(Error::NotASocket(_))));
        assert_eq!(std::fs::read(&path).expect("still there"), b"precious");
    }

    #[tokio::test]
    async fn connect_to_missing_socket_fails_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = connect_unix(&dir.path().join("nope.sock"))
            .await
            .expect_err("nothing listens");
        assert!(matches!(err, Error::NotRunning { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("nope.sock"), "{text}");
        assert!(text.contains("is `clawscale serve` running"), "{text}");
    }

    /// Regression: a permission error was reported as a bare "transport
    /// error". (As root the kernel never refuses, so the error is fed in;
    /// `integration/limits.rs` sees the real one as an unprivileged user.)
    #[test]
    fn permission_denied_names_the_cause_and_the_path() {
        let tonic_like = Wrapped(std::io::Error::from(ErrorKind::PermissionDenied));
        let err = connect_error(Path::new("/run/cs/admin.sock"), &tonic_like);
        assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("/run/cs/admin.sock"), "{text}");
        assert!(text.contains("permission denied"), "{text}");

        let other = Wrapped(std::io::Error::from(ErrorKind::InvalidInput));
        let text = connect_error(Path::new("/s"), &other).to_string();
        assert!(text.contains("invalid input"), "{text}");
    }

    /// An error whose cause is an I/O error, as tonic's transport error is.
    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("transport error")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
}
