//! Two replicas on one PostgreSQL database behind one login URL: the
//! browser's requests go wherever the load balancer sends them, so a login
//! may start on one replica, come back from the identity provider to the
//! other, and serve a machine that waits on either.

use std::time::Duration as StdDuration;

use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};

use super::*;
use crate::admin::Admin;
use crate::auth::{AuthFlows, FollowupOutcome};
use crate::db::testing::PgTemp;
use crate::state::StateHandle;

struct Replica {
    state: StateHandle,
    checks: SshChecks,
    app: Router,
}

async fn replica(pg: &PgTemp, name: &str, idp: &TestIdp) -> (Replica, Admin) {
    let (state, admin) = crate::admin::testing::replica(pg, name).await;
    let checks = SshChecks::new(state.clone(), admin.clone());
    let app = super::super::router(
        config(idp, ""),
        "http://127.0.0.1:9",
        &state,
        admin.clone(),
        checks.clone(),
    )
    .unwrap();
    (Replica { state, checks, app }, admin)
}

fn token(idp: &TestIdp, s: &Started, person: &str) -> Token {
    Token {
        issuer: idp.issuer.clone(),
        audience: CLIENT_ID.into(),
        subject: format!("sub-{person}"),
        email: format!("{person}@example.com"),
        groups: vec![],
        nonce: Some(s.nonce.clone()),
        expires: Utc::now() + Duration::minutes(5),
        signer: IDP_KEY,
    }
}

/// The logins stored in the database: (state hash, sealed content).
async fn stored(pg: &PgTemp) -> Vec<(String, Vec<u8>)> {
    let mut c = PgConnection::connect(&pg.url).await.expect("connect");
    let rows = sqlx::query_as("SELECT state_hash, sealed FROM oidc_flows")
        .fetch_all(&mut c)
        .await
        .expect("read oidc_flows");
    c.close().await.expect("close");
    rows
}

#[tokio::test]
async fn a_login_started_on_one_replica_is_finished_on_the_other_once() {
    let Some(pg) = PgTemp::create("oidc_flows").await else {
        return;
    };
    let idp = TestIdp::start().await;
    let (a, a_admin) = replica(&pg, "replica_a", &idp).await;
    let (b, _b_admin) = replica(&pg, "replica_b", &idp).await;
    // Both machines wait on A (their Noise tunnel is there). The first
    // one's login starts on A and comes back to B; the second one's
    // starts on B, which reads the waiting registration from the
    // database, and comes back to A.
    let flows = AuthFlows::new("http://a.example", a_admin.registrations().clone());
    for (machine, person, start, back) in [(1u8, "alice", &a, &b), (2, "bob", &b, &a)] {
        let url = flows
            .begin(crate::state::testing::register_input(
                machine, machine, None, "laptop",
            ))
            .await
            .expect("begin");
        let id = AuthId::parse(url.rsplit('/').next().unwrap()).unwrap();
        let waiting = flows.clone();
        let wait =
            tokio::spawn(async move { waiting.follow(&url, MachinePublic([machine; 32])).await });

        let s = begin(&start.app, &idp, id.clone()).await;
        // Stored under the state's hash, and nothing in it readable.
        let rows = stored(&pg).await;
        assert_eq!(rows.len(), 1, "one login in progress");
        let (hash, sealed) = &rows[0];
        assert_eq!(*hash, hex::encode(Sha256::digest(s.state.as_bytes())));
        let text = String::from_utf8_lossy(sealed);
        for secret in [id.as_str(), s.nonce.as_str(), s.state.as_str()] {
            assert!(!text.contains(secret), "{secret} stored in the clear");
        }

        idp.answer_with(token(&idp, &s, person).sign());
        let (status, body) = callback(&back.app, &s.state, Some(&s.cookie)).await;
        assert_eq!(status, StatusCode::OK, "machine {machine}: {body}");
        assert!(body.contains(&format!("{person}@example.com")), "{body}");
        let outcome = tokio::time::timeout(StdDuration::from_secs(5), wait)
            .await
            .expect("the waiting client heard within 5 s")
            .expect("task");
        let node = match outcome {
            FollowupOutcome::Registered(node) => node,
            other => panic!("machine {machine}: {other:?}"),
        };
        assert_eq!(node.machine_key, MachinePublic([machine; 32]));
        assert!(stored(&pg).await.is_empty(), "the callback took the login");

        // Taken once across replicas: the same callback again is refused
        // on both, and registers nothing more.
        for r in [&a, &b] {
            let (status, body) = callback(&r.app, &s.state, Some(&s.cookie)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(body.contains("already used"), "{body}");
        }
    }
    crate::state::testing::until("both replicas to hold both nodes", || {
        a.state.world().nodes.len() == 2 && b.state.world().nodes.len() == 2
    })
    .await;
    for person in ["alice", "bob"] {
        let w = a.state.world();
        let user = w.user_by_name(person).expect("user made by the login");
        assert_eq!(w.nodes.values().filter(|n| n.user_id == user.id).count(), 1);
    }
}

#[tokio::test]
async fn an_ssh_check_held_on_one_replica_is_passed_by_a_login_on_the_other() {
    let Some(pg) = PgTemp::create("oidc_check_elsewhere").await else {
        return;
    };
    let idp = TestIdp::start().await;
    let (a, a_admin) = replica(&pg, "replica_a", &idp).await;
    let (b, _b_admin) = replica(&pg, "replica_b", &idp).await;
    // alice's laptop and server, enrolled by her earlier logins; the
    // policy asks for a check on root logins between them.
    let profile = crate::db::OidcProfile {
        identity: crate::types::OidcIdentity {
            issuer: idp.issuer.clone(),
            subject: "sub-alice".into(),
        },
        display_name: String::new(),
        email: "alice@example.com".into(),
        profile_pic_url: String::new(),
        groups: vec![],
    };
    let mut devices = Vec::new();
    for seed in [1, 2] {
        let login = a
            .state
            .oidc_login(profile.clone(), "alice".into(), input(seed), None)
            .await
            .unwrap();
        devices.push(login.node);
    }
    let (laptop, server) = (&devices[0], &devices[1]);
    a_admin
        .set_policy(
            &crate::admin::testing::local(),
            super::ssh_check::POLICY.into(),
        )
        .await
        .unwrap();
    crate::state::testing::until("B to follow A", || {
        let w = b.state.world();
        w.nodes.len() == 2 && w.policy.compiled.is_some()
    })
    .await;

    // tailscaled on the server asks A; the check is held there.
    let req = crate::auth::ssh_check::Request {
        src: laptop.id,
        dst: server.id,
        local_user: "root".into(),
        auth_id: None,
    };
    let held = a
        .checks
        .action(server.machine_key, req.clone())
        .await
        .unwrap();
    let id = held
        .hold_and_delegate
        .split("auth_id=")
        .nth(1)
        .expect("held");
    let id = AuthId::parse(id).unwrap();
    let follow = crate::auth::ssh_check::Request {
        auth_id: Some(id.to_string()),
        ..req
    };
    let (checks, machine) = (a.checks.clone(), server.machine_key);
    let poll = tokio::spawn(async move { checks.action(machine, follow).await });
    assert!(b.checks.source_of(&id).is_none(), "B does not hold it");

    // alice's browser starts on B and comes back to B.
    let s = begin(&b.app, &idp, id.clone()).await;
    idp.answer_with(token(&idp, &s, "alice").sign());
    let (status, body) = callback(&b.app, &s.state, Some(&s.cookie)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("SSH login approved"), "{body}");
    let action = tokio::time::timeout(StdDuration::from_secs(5), poll)
        .await
        .expect("A's long poll ends once B decided")
        .unwrap()
        .unwrap();
    assert!(action.accept, "{action:?}");
    // Decided once, for good.
    let again = a_admin
        .reject_auth(&crate::admin::testing::local(), &id)
        .await;
    assert!(
        matches!(again, Err(crate::admin::Error::NotFound(_))),
        "{again:?}"
    );
}
