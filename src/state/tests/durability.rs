//! The World follows the database through failed writes: a write whose
//! commit fails is an error, publishes nothing, and consumes no id, name,
//! address or key; the next write succeeds and World and database agree.

use std::time::Duration;

use super::{Fixture, input};
use crate::db::Db;
use crate::db::testing::{fail_commits_touching, heal};
use crate::state::{RegisterOutcome, StateHandle, World};

/// What the World says about users and nodes, for before/after comparisons.
fn contents(w: &World) -> (u64, Vec<crate::types::User>, Vec<crate::types::Node>) {
    (
        w.generation,
        w.users.values().map(|u| (**u).clone()).collect(),
        w.nodes.values().map(|n| (**n).clone()).collect(),
    )
}

/// The World's users and nodes equal the committed rows.
async fn assert_world_matches_database(state: &StateHandle, db: &Db) {
    let w = state.world();
    let users: Vec<_> = w.users.values().map(|u| (**u).clone()).collect();
    assert_eq!(
        users,
        db.list_users().await.expect("users"),
        "users drifted"
    );
    let nodes: Vec<_> = w.nodes.values().map(|n| (**n).clone()).collect();
    assert_eq!(
        nodes,
        db.list_nodes().await.expect("nodes"),
        "nodes drifted"
    );
}

async fn fixture_with_db() -> (Fixture, Db) {
    let (dir, db, state) =
        crate::state::testing::temp_state_with_db(Duration::from_secs(1800)).await;
    let user = state.create_user("alice", "", "").await.expect("user").id;
    (
        Fixture {
            _dir: dir,
            state,
            user,
        },
        db,
    )
}

#[tokio::test]
async fn failed_user_writes_leave_the_world_unchanged() {
    let (f, db) = fixture_with_db().await;
    let before = contents(&f.state.world());
    fail_commits_touching(&db, "users").await;
    let created = f.state.create_user("lost", "", "").await;
    assert!(
        created.is_err(),
        "acknowledged a user that was not committed: {created:?}"
    );
    assert!(f.state.rename_user(f.user, "renamed").await.is_err());
    assert!(f.state.delete_user(f.user).await.is_err());
    assert_eq!(
        contents(&f.state.world()),
        before,
        "a failed write changed the World"
    );
    heal(&db, "users").await;

    // The next user gets an id and the World agrees with the database.
    let bob = f.state.create_user("bob", "", "").await.expect("bob");
    assert_ne!(bob.id, f.user);
    let w = f.state.world();
    let names: Vec<_> = w.users.values().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_world_matches_database(&f.state, &db).await;
}

#[tokio::test]
async fn a_failed_registration_leaves_no_half_node_and_burns_nothing() {
    let (f, db) = fixture_with_db().await;
    let key = f.key(false, false, &[]).await;
    let before = contents(&f.state.world());
    fail_commits_touching(&db, "nodes").await;
    let r = f.state.register(input(1, 1, Some(&key), "web")).await;
    assert!(
        r.is_err(),
        "acknowledged a registration that was not committed: {r:?}"
    );
    assert_eq!(
        contents(&f.state.world()),
        before,
        "a failed write changed the World"
    );
    let keys = db.list_preauth_keys(None).await.expect("keys");
    assert!(
        !keys[0].used,
        "a failed registration consumed the single-use key"
    );
    heal(&db, "nodes").await;

    // The same device registers with the same key and gets the first name
    // and address: nothing was taken by the failed attempt.
    let RegisterOutcome::Authorized { node, .. } = f.register(input(1, 1, Some(&key), "web")).await
    else {
        panic!("the retry was not authorized");
    };
    assert_eq!(node.given_name.as_str(), "web");
    assert_eq!(
        node.ipv4.map(|a| a.to_string()).as_deref(),
        Some("100.64.0.1")
    );
    assert_world_matches_database(&f.state, &db).await;

    // Node updates whose commit fails change nothing either.
    let before = contents(&f.state.world());
    fail_commits_touching(&db, "nodes").await;
    assert!(f.state.rename_node(node.id, "other").await.is_err());
    assert!(f.state.expire_node(node.id).await.is_err());
    assert!(f.state.delete_node(node.id).await.is_err());
    assert_eq!(
        contents(&f.state.world()),
        before,
        "a failed write changed the World"
    );
    heal(&db, "nodes").await;
    f.state
        .rename_node(node.id, "other")
        .await
        .expect("rename after healing");
    assert_world_matches_database(&f.state, &db).await;
}

#[tokio::test]
async fn health_fails_while_the_database_refuses_writes() {
    let (f, db) = fixture_with_db().await;
    f.state.health().await.expect("healthy");
    fail_commits_touching(&db, "write_probe").await;
    // Answers are reused for a second, then the probe runs again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = f.state.health().await;
    assert!(
        matches!(refused, Err(crate::state::Error::Unavailable(_))),
        "healthy while writes fail: {refused:?}"
    );
    heal(&db, "write_probe").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    f.state.health().await.expect("healthy again");
}

#[tokio::test]
async fn deleting_a_key_clears_it_from_its_nodes_in_the_world_too() {
    let (f, db) = fixture_with_db().await;
    let key = f.key(true, false, &[]).await;
    let RegisterOutcome::Authorized { node, .. } = f.register(input(1, 1, Some(&key), "web")).await
    else {
        panic!("not authorized");
    };
    let id = node.auth_key_id.expect("enrolled with a key");
    f.state.delete_preauth_key(id).await.expect("delete key");
    // The database sets the reference to NULL; the World must agree.
    assert_eq!(
        f.state.world().node(node.id).and_then(|n| n.auth_key_id),
        None
    );
    assert_world_matches_database(&f.state, &db).await;
}
