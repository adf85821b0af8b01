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
    // A data directory and a database directory the server must create
    // itself (the harness made the usual `data` directory).
    let mut server = Server::start_local(Db::Sqlite, |cfg| {
        let base = cfg
            .get("data_dir")
            .and_then(|v| v.as_str())
            .expect("data_dir")
            .to_owned();
        cfg.set("data_dir", format!("{base}/made/data"))
            .set("database.sqlite.path", format!("{base}/made/db/db.sqlite"));
    });
    server.create_user("alice");
    let made = server.dir().join("data/made");
    let data = made.join("data");
    for dir in [&data, &made.join("db")] {
        assert_eq!(mode(dir), 0o700, "{} is not private", dir.display());
    }
    for name in ["db.sqlite", "db.sqlite-wal", "db.sqlite-shm"] {
        let f = made.join("db").join(name);
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
