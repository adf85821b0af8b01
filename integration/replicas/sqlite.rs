//! SQLite stays single-process: a second `clawscale serve` on the same file
//! refuses to start and names the process that holds it; once that process
//! is gone (even by SIGKILL) the file is free again.

use crate::harness::{Db, Server};

#[test]
fn a_second_server_on_one_sqlite_file_is_refused() {
    let mut server = Server::start_local(Db::Sqlite, |_| {});
    let pid = server.pid().expect("running");
    // The same config: same database file (and the same listen port, which
    // the lock is checked before).
    let out = server.cli(&["serve"]);
    assert!(!out.success() && !out.timed_out(), "second serve: {out}");
    let text = out.to_string();
    assert!(
        text.contains(&format!("is already in use by process {pid}")),
        "the refusal does not name the holder {pid}:\n{text}"
    );
    assert!(text.contains("db.sqlite"), "names no database:\n{text}");
    assert_eq!(
        server.healthz().map(|(c, _)| c),
        Ok(200),
        "first still serves"
    );

    // SIGKILL runs no clean-up; the kernel still drops the lock.
    server.kill();
    server.start_again();
}
