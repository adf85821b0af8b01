//! Binding unix sockets safely (the admin socket, the whois socket):
//! stale-socket clean-up, refusing to replace a live socket or a regular
//! file, and the requested permissions applied right after binding.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("unix socket {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "unix socket {} is in use by a running server (stop it first)",
        .0.display()
    )]
    InUse(PathBuf),
    #[error("{} exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(PathBuf),
}

/// Binds `path` with file mode `mode`, replacing a stale socket left by a
/// crashed server but never a live one or a non-socket file.
pub fn bind(path: &Path, mode: u32) -> Result<UnixListener, BindError> {
    let io = |source| BindError::Io {
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
                Ok(_) => return Err(BindError::InUse(path.to_path_buf())),
                Err(_) => std::fs::remove_file(path).map_err(io)?,
            }
        }
        Ok(_) => return Err(BindError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    // Until this runs the socket has the umask's mode, which for the usual
    // umasks denies connecting to group/others anyway.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bind_applies_mode_and_replaces_only_stale_sockets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("admin.sock");

        let live = bind(&path, 0o660).expect("first bind");
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o660);

        // A server is listening: refuse to steal its socket.
        assert!(matches!(bind(&path, 0o660), Err(BindError::InUse(_))));

        // The server is gone but its socket file remains: replace it. A
        // child that another test forks holds the listener's descriptor
        // until its exec closes it, and the socket answers meanwhile; so
        // a few tries.
        drop(live);
        assert!(path.exists());
        let mut tries = 0;
        let _again = loop {
            match bind(&path, 0o600) {
                Err(BindError::InUse(_)) if tries < 20 => tries += 1,
                other => break other.expect("stale socket replaced"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
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
        assert!(matches!(bind(&path, 0o600), Err(BindError::NotASocket(_))));
        assert_eq!(std::fs::read(&path).expect("still there"), b"precious");
    }
}
