//! Two writers (replicas) on one PostgreSQL database: each follows the
//! other's writes within a second, catches up on what it missed while its
//! listener was gone, never hands out an address twice, and reports (and
//! refuses writes) while it has lost the database.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::SubsecRound;
use sqlx::Connection;

use super::input;
use crate::db::testing::PgTemp;
use crate::state::testing::no_poll;
use crate::state::{RegisterOutcome, ReplicaOptions, StateHandle, World};
use crate::types::Node;

/// The listener's last statement, to find its session.
const LISTEN: &str = "LISTEN";

/// Waits up to `limit` for `ok` on `state`'s World; returns how long it took.
async fn within(state: &StateHandle, limit: Duration, ok: impl Fn(&World) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if ok(&state.world()) {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "not seen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `state` reports healthy (its listener is up).
async fn healthy(state: &StateHandle) {
    let start = Instant::now();
    while let Err(e) = state.health().await {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never healthy: {e}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The same node as far as the database keeps it (PostgreSQL stores
/// microseconds, the writer's copy has nanoseconds).
fn same(a: &Node, b: &Node) -> bool {
    let micros = |n: &Node| {
        let mut n = n.clone();
        n.created_at = n.created_at.trunc_subsecs(6);
        n.last_seen = n.last_seen.map(|t| t.trunc_subsecs(6));
        n.expiry = n.expiry.map(|t| t.trunc_subsecs(6));
        n
    };
    micros(a) == micros(b)
}

/// User "alice" on `s` and a reusable pre-auth key of hers.
async fn alice_with_key(s: &StateHandle) -> (crate::types::UserId, String) {
    let user = s.create_user("alice", "", "").await.expect("user").id;
    let (_, key) = s
        .create_preauth_key(user, true, false, None, vec![])
        .await
        .expect("key");
    (user, key)
}

/// Registers machine `i` with `key` on `s`.
async fn enrol(s: &StateHandle, i: u8, key: &str, hostname: &str) -> std::sync::Arc<Node> {
    match s.register(input(i, i, Some(key), hostname)).await {
        Ok(RegisterOutcome::Authorized { node, .. }) => node,
        other => panic!("registration of {hostname} on a replica: {other:?}"),
    }
}

async fn pair(tag: &str, b_opts: ReplicaOptions) -> Option<(PgTemp, StateHandle, StateHandle)> {
    let pg = PgTemp::create(tag).await?;
    let a = crate::state::testing::replica(pg.db_named("replica_a").await, no_poll()).await;
    let b = crate::state::testing::replica(pg.db_named("replica_b").await, b_opts).await;
    healthy(&a).await;
    healthy(&b).await;
    Some((pg, a, b))
}

#[tokio::test]
async fn writes_on_one_replica_reach_the_other_within_a_second() {
    let Some((_pg, a, b)) = pair("repl_follow", no_poll()).await else {
        return;
    };
    let user = a.create_user("alice", "", "").await.expect("user").id;
    let took = within(&b, Duration::from_secs(1), |w| w.user(user).is_some()).await;
    eprintln!("user created on A seen on B after {took:?}");

    let (_, key) = a
        .create_preauth_key(user, true, false, None, vec![])
        .await
        .expect("key");
    let node = enrol(&a, 1, &key, "web").await;
    let took = within(&b, Duration::from_secs(1), |w| {
        w.node(node.id).is_some_and(|n| same(n, &node))
    })
    .await;
    eprintln!("node registered on A seen on B after {took:?}");

    // A node registered on B (with A's key) gets the next address, and A
    // learns of it.
    let other = enrol(&b, 2, &key, "db").await;
    assert_ne!(other.ipv4, node.ipv4);
    within(&a, Duration::from_secs(1), |w| w.node(other.id).is_some()).await;

    let policy = r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:22"]}]}"#;
    a.set_policy(policy.into()).await.expect("policy");
    let took = within(&b, Duration::from_secs(1), |w| {
        w.policy.text.as_deref() == Some(policy)
    })
    .await;
    eprintln!("policy set on A in force on B after {took:?}");

    b.delete_node(node.id).await.expect("delete on B");
    let took = within(&a, Duration::from_secs(1), |w| w.node(node.id).is_none()).await;
    eprintln!("node deleted on B gone on A after {took:?}");
}

#[tokio::test]
async fn a_replica_catches_up_on_changes_made_while_its_listener_was_gone() {
    let Some((pg, _a, b)) = pair("repl_catchup", no_poll()).await else {
        return;
    };
    // Another writer's connection, open before the outage.
    let mut other = sqlx::PgConnection::connect(&pg.url).await.expect("connect");
    // B's listener loses its connection and cannot get a new one.
    pg.allow_connections(false).await;
    assert_eq!(pg.terminate("replica_b", LISTEN).await, 1, "B's listener");
    let start = Instant::now();
    loop {
        match b.health().await {
            // "not listening", or the database refusing the probe's
            // connection: either way unhealthy.
            Err(_) => break,
            Ok(()) => assert!(
                start.elapsed() < Duration::from_secs(5),
                "B still healthy without its listener"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A write from a connection that is still open; B hears nothing of it.
    let user: i64 = sqlx::query_scalar(
        "INSERT INTO users (name, created_at) VALUES ('missed', now()) RETURNING id",
    )
    .fetch_one(&mut other)
    .await
    .expect("insert");
    let user = crate::types::UserId(user);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        b.world().user(user).is_none(),
        "B heard of it without a listener"
    );
    other.close().await.expect("close");

    // Back: B reconnects and reads what it missed.
    pg.allow_connections(true).await;
    let took = within(&b, Duration::from_secs(3), |w| w.user(user).is_some()).await;
    eprintln!("missed change applied {took:?} after the database took connections again");
    healthy(&b).await;
}

#[tokio::test]
async fn concurrent_registrations_on_two_replicas_never_share_an_address() {
    let Some((_pg, a, b)) = pair("repl_ipam", no_poll()).await else {
        return;
    };
    let (_, key) = alice_with_key(&a).await;
    let mut tasks = Vec::new();
    for i in 0..20u8 {
        let (state, key) = (if i % 2 == 0 { a.clone() } else { b.clone() }, key.clone());
        tasks.push(tokio::spawn(async move {
            state
                .register(input(10 + i, 10 + i, Some(&key), "host"))
                .await
        }));
    }
    let mut v4 = BTreeSet::new();
    let mut v6 = BTreeSet::new();
    let mut names = BTreeSet::new();
    for t in tasks {
        match t.await.expect("task") {
            Ok(RegisterOutcome::Authorized { node, .. }) => {
                assert!(v4.insert(node.ipv4), "IPv4 given twice: {:?}", node.ipv4);
                assert!(v6.insert(node.ipv6), "IPv6 given twice: {:?}", node.ipv6);
                assert!(names.insert(node.given_name.as_str().to_string()));
            }
            other => panic!("registration failed: {other:?}"),
        }
    }
    // Both replicas end with the same 20 nodes.
    for s in [&a, &b] {
        within(s, Duration::from_secs(1), |w| w.nodes.len() == 20).await;
    }
    let (wa, wb) = (a.world(), b.world());
    for (x, y) in wa.nodes.values().zip(wb.nodes.values()) {
        assert!(same(x, y), "replicas disagree: {x:?} {y:?}");
    }
}

#[tokio::test]
async fn a_replica_that_lost_the_database_is_unhealthy_and_refuses_writes() {
    let Some((pg, a, b)) = pair("repl_loss", ReplicaOptions::default()).await else {
        return;
    };
    pg.allow_connections(false).await;
    assert!(pg.terminate("replica_b", "").await >= 1);
    let start = Instant::now();
    while b.health().await.is_ok() {
        assert!(start.elapsed() < Duration::from_secs(5), "B still healthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let err = b
        .create_user("lost", "", "")
        .await
        .expect_err("a write without the database");
    assert!(
        matches!(err, crate::state::Error::Unavailable(_)),
        "not a clear unavailability: {err:?}"
    );
    assert!(b.world().user_by_name("lost").is_none());

    pg.allow_connections(true).await;
    healthy(&b).await;
    let u = b
        .create_user("back", "", "")
        .await
        .expect("write after recovery");
    within(&a, Duration::from_secs(1), |w| w.user(u.id).is_some()).await;
}

#[tokio::test]
async fn presence_is_shared_and_follows_a_node_that_moves() {
    let Some((_pg, a, b)) = pair("repl_presence", no_poll()).await else {
        return;
    };
    let (_, key) = alice_with_key(&a).await;
    let node = enrol(&a, 1, &key, "web").await;
    let id = node.id;
    // A stream on A: online on both.
    let on_a = a.sessions().open(id);
    a.refresh_presence(id).await.expect("presence");
    let took = within(&b, Duration::from_secs(1), |w| w.is_online(id)).await;
    eprintln!("online on A seen on B after {took:?}");

    // The node moves to B; A's old stream closes afterwards: still online.
    let on_b = b.sessions().open(id);
    b.refresh_presence(id).await.expect("presence");
    a.sessions().close(&on_a);
    a.refresh_presence(id).await.expect("presence");
    assert!(
        a.world().is_online(id),
        "A took it offline though B holds it"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a.world().is_online(id) && b.world().is_online(id));

    // Its last stream closes: offline everywhere.
    b.sessions().close(&on_b);
    b.refresh_presence(id).await.expect("presence");
    within(&a, Duration::from_secs(1), |w| !w.is_online(id)).await;
}

#[tokio::test]
async fn a_dead_replicas_nodes_go_offline_and_its_relay_leaves_the_derp_map() {
    let Some(pg) = PgTemp::create("repl_dead").await else {
        return;
    };
    let region = |id: i32| crate::tailcfg::DerpRegion {
        region_id: id,
        region_code: format!("r{id}"),
        region_name: format!("replica {id}"),
        nodes: vec![crate::tailcfg::DerpNode {
            name: format!("{id}a"),
            region_id: id,
            host_name: format!("replica{id}.example"),
            ..Default::default()
        }],
        ..Default::default()
    };
    // A 3 s timeout, not the shortest that works on an idle machine: with
    // 1 s, a full `--test-threads 16` run (other tests creating and
    // dropping databases, each a checkpoint) held heartbeat commits past
    // it, the replicas saw each other die and come back, and one run in
    // two missed the bounds below.
    let timeout = Duration::from_secs(3);
    let opts = |id: i32| ReplicaOptions {
        heartbeat: Duration::from_millis(200),
        timeout,
        derp_region: Some(region(id)),
        ..no_poll()
    };
    let a = crate::state::testing::replica(pg.db_named("replica_a").await, opts(901)).await;
    let b = crate::state::testing::replica(pg.db_named("replica_b").await, opts(902)).await;
    healthy(&a).await;
    healthy(&b).await;
    // Each lists the other's relay as its own region.
    let has = |w: &World, id: i32| {
        w.settings
            .derp_map
            .map()
            .regions
            .contains_key(&id.to_string())
    };
    // Usually there before the first look.
    within(&a, Duration::from_secs(5), |w| has(w, 902)).await;
    within(&b, Duration::from_secs(5), |w| has(w, 901)).await;

    let (_, key) = alice_with_key(&a).await;
    let node = enrol(&b, 1, &key, "web").await;
    let _stream = b.sessions().open(node.id);
    b.refresh_presence(node.id).await.expect("presence");
    within(&a, Duration::from_secs(1), |w| w.is_online(node.id)).await;

    // B dies without a word: its state is dropped and whatever it still
    // had open on the database is cut, as a killed process's would be.
    // (Dropping B usually closes them first, so none may be left.)
    drop(b);
    pg.terminate("replica_b", "").await;
    let start = Instant::now();
    // The timeout after B's last heartbeat, then A's next tick (200 ms);
    // the rest is slack for a loaded machine.
    within(&a, timeout + Duration::from_secs(3), |w| {
        !w.is_online(node.id) && !has(w, 902)
    })
    .await;
    eprintln!(
        "dead replica's node offline and relay gone after {:?}",
        start.elapsed()
    );
}

/// A replica whose state is dropped stops heartbeating at its next tick,
/// even though its database connections (and so its change listener)
/// stay up: its nodes and relay must not outlive it.
#[tokio::test]
async fn a_dropped_replica_stops_saying_it_is_alive() {
    // B is told apart by its relay's region.
    let beat = ReplicaOptions {
        heartbeat: Duration::from_millis(100),
        derp_region: Some(crate::tailcfg::DerpRegion {
            region_id: 903,
            ..Default::default()
        }),
        ..no_poll()
    };
    let Some((pg, _a, b)) = pair("repl_drop", beat).await else {
        return;
    };
    let db = pg.db().await;
    let b_beat_within = |d: Duration| {
        let db = &db;
        async move {
            db.live_replicas(d)
                .await
                .expect("live replicas")
                .iter()
                .any(|r| r.derp_region.as_deref().is_some_and(|j| j.contains("903")))
        }
    };
    assert!(b_beat_within(Duration::from_secs(2)).await, "B never beat");
    drop(b);
    // Its last beat, at most one tick (100 ms) after the drop, ages out of
    // a 300 ms window; one still beating never leaves it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !b_beat_within(Duration::from_millis(300)).await,
        "a dropped replica still heartbeats"
    );
}

#[tokio::test]
async fn a_reader_behind_a_pruned_log_is_told_to_reload_everything() {
    let Some(pg) = PgTemp::create("repl_prune").await else {
        return;
    };
    let db = pg.db().await;
    let now = chrono::Utc::now();
    db.create_user("a", "", "", now).await.expect("user");
    let behind = db.latest_change().await.expect("latest");
    for name in ["b", "c", "d"] {
        db.create_user(name, "", "", now).await.expect("user");
    }
    let fresh = db.changes_since(behind).await.expect("changes");
    assert!(fresh.users && !fresh.reload_all, "{fresh:?}");
    // Everything but the newest row is older than "no time at all".
    assert_eq!(db.prune_changes(Duration::ZERO).await.expect("prune"), 3);
    let late = db.changes_since(behind).await.expect("changes");
    assert!(late.reload_all, "{late:?}");
    // A reader that was up to date is not.
    let newest = db.latest_change().await.expect("latest");
    assert!(db.changes_since(newest).await.expect("changes").is_empty());
}

/// An ACME challenge value published through one replica is read by the
/// other (its DNS server asks), until it expires; without replicas nothing
/// is shared.
#[tokio::test]
async fn acme_challenges_published_on_one_replica_are_read_on_the_other() {
    let Some((_pg, a, b)) = pair("acme_shared", no_poll()).await else {
        return;
    };
    const OWNER: &str = "_acme-challenge.laptop.example.com";
    assert!(a.is_replicated() && b.is_replicated());
    assert!(b.shared_acme_challenge(OWNER).await.unwrap().is_empty());
    a.share_acme_challenge(OWNER, "first", Duration::from_secs(60))
        .await
        .unwrap();
    // Long enough that the reads below see it on a loaded machine.
    const SHORT: Duration = Duration::from_secs(2);
    let shared_at = Instant::now();
    b.share_acme_challenge(OWNER, "second", SHORT)
        .await
        .unwrap();
    // Renewing a value keeps one row.
    a.share_acme_challenge(OWNER, "first", Duration::from_secs(60))
        .await
        .unwrap();
    let read = b.shared_acme_challenge(OWNER).await.unwrap();
    assert_eq!(read.len(), 2, "{read:?}");
    assert!(read.contains(&"first".into()) && read.contains(&"second".into()));
    assert!(
        b.shared_acme_challenge("_acme-challenge.other.example.com")
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep((SHORT + Duration::from_millis(100)).saturating_sub(shared_at.elapsed()))
        .await;
    assert_eq!(a.shared_acme_challenge(OWNER).await.unwrap(), ["first"]);

    let (_dir, single) = crate::state::testing::temp_state(Duration::from_secs(60)).await;
    assert!(!single.is_replicated());
    single
        .share_acme_challenge(OWNER, "first", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        single
            .shared_acme_challenge(OWNER)
            .await
            .unwrap()
            .is_empty()
    );
}
