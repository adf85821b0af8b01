//! The SQLite files are private to the server, a shared data directory is
//! reported, and a database path that cannot be written is named in the
//! error (issue 11: files were created 0644, the error named no path).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::harness::{Db, Server, Tmpfs};

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn sqlite_files_are_private_and_path_problems_are_reported() {
    let mut server = Server::start_local(Db::Sqlite, |_| {});
    server.create_user("alice");
    let data = server.dir().join("data");
    assert_eq!(mode(&data), 0o700, "{}", data.display());
    for name in ["db.sqlite", "db.sqlite-wal", "db.sqlite-shm"] {
        let f = data.join(name);
        assert_eq!(mode(&f), 0o600, "{} is not private", f.display());
    }

    server.stop();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).expect("chmod");
    server.start_again();
    let log = server.log();
    assert!(
        log.lines().any(
            |l| l.contains("data directory is accessible to group or others")
                && l.contains(&*data.to_string_lossy())
        ),
        "no warning naming {} in the server log",
        data.display()
    );

    server.stop();
    let ro = Tmpfs::mount_read_only();
    let path = ro.path().join("db.sqlite");
    server.edit_config(|cfg| {
        cfg.set("database.sqlite.path", path.to_string_lossy());
    });
    let out = server.start_expecting_failure();
    assert!(
        out.combined().contains(&*path.to_string_lossy()),
        "the error does not name {}:\n{out}",
        path.display()
    );
    drop(server);
}
