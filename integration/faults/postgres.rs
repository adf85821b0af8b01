//! PostgreSQL stopped and started again under a running server: writes fail
//! cleanly and say so, `/healthz` answers 503, then everything resumes with
//! no drift. Uses a private PostgreSQL server (`PgServer`), never the shared
//! cluster.

use std::time::Duration;

use super::{
    Acked, Failed, assert_listing_is, assert_reported, listing, wait_for_health, write_each_kind,
};
use crate::harness::{Db, PgServer, Server};

#[test]
fn postgres_stopped_under_the_server_fails_writes_cleanly_then_recovers() {
    let mut pg = PgServer::start();
    let mut server = Server::start_local(Db::Sqlite, |cfg| pg.configure(cfg));
    server.create_user("base");
    let (mut acked, mut failed) = (Acked::default(), Failed::default());
    write_each_kind(&server, "before", &mut acked, &mut failed);
    assert_eq!(failed.total(), 0, "writes failed with PostgreSQL up");

    pg.stop();
    for args in [
        &["users", "create", "down"][..],
        &["preauthkeys", "create", "--user", "base"],
        &["apikeys", "create"],
    ] {
        assert_reported(&server.cli(args));
    }
    wait_for_health(&server, 503, Duration::from_secs(30));
    // The World still serves what was committed.
    assert_eq!(listing_users(&server), ["base", "before"]);

    pg.start_again();
    wait_for_health(&server, 200, Duration::from_secs(60));
    for i in 0..2 {
        write_each_kind(&server, &format!("after{i}"), &mut acked, &mut failed);
    }
    assert_eq!(
        failed.total(),
        0,
        "writes still fail after PostgreSQL came back"
    );

    let before = listing(&server);
    assert_listing_is(&before, &acked);
    server.restart();
    assert_eq!(listing(&server), before, "a restart changed what is listed");
    drop(server); // before its database server
}

fn listing_users(server: &Server) -> Vec<String> {
    super::json_list(server, &["users", "list"])
        .iter()
        .map(|u| u["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}
