//! SSH checks across replicas on one PostgreSQL database: a check opened
//! on A is taken over by B when the destination's follow-up reaches B (A
//! is gone, or the node moved), for that login only, and gets its verdict
//! whether it was given before or after, on either replica.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{POLICY, node_input, req};
use crate::admin::audit::{self, Audit};
use crate::admin::testing::local;
use crate::admin::{Admin, AuthId, NewPreAuthKey, NewUser};
use crate::auth::ssh_check::{Request, SshChecks};
use crate::db::testing::PgTemp;
use crate::state::auth_requests::SharedVerdict;
use crate::state::testing::until;
use crate::state::{RegisterOutcome, StateHandle};
use crate::tailcfg::SshAction;
use crate::types::Node;

struct Replica {
    state: StateHandle,
    admin: Admin,
    checks: SshChecks,
}

async fn replica(pg: &PgTemp, name: &str) -> Replica {
    let (state, admin) = crate::admin::testing::replica(pg, name).await;
    let checks = SshChecks::new(state.clone(), admin.clone());
    Replica {
        state,
        admin,
        checks,
    }
}

/// As `replica`, auditing to a file under `dir` (and so, with replicas,
/// to the shared trail), with checks and the store expiring after `ttl`.
async fn audited_replica(pg: &PgTemp, name: &str, dir: &Path, ttl: Duration) -> Replica {
    let log = Audit::open(Some(audit::Settings {
        path: dir.join(format!("{name}.jsonl")),
        max_size: 1 << 20,
        max_files: 1,
    }))
    .unwrap();
    let (state, admin) = crate::admin::testing::replica_auditing(pg, name, log).await;
    admin.registrations().set_ttl(ttl);
    let checks = SshChecks::with_ttl(state.clone(), admin.clone(), ttl);
    Replica {
        state,
        admin,
        checks,
    }
}

impl Replica {
    /// `req` asked by the destination's own machine.
    async fn ask(&self, req: Request) -> SshAction {
        let machine = self.state.world().node(req.dst).unwrap().machine_key;
        self.checks.action(machine, req).await.expect("an answer")
    }

    /// Asks `req` in a task (a follow-up's long poll).
    fn follow(&self, req: Request) -> tokio::task::JoinHandle<SshAction> {
        let (state, checks) = (self.state.clone(), self.checks.clone());
        tokio::spawn(async move {
            let machine = state.world().node(req.dst).unwrap().machine_key;
            checks.action(machine, req).await.expect("an answer")
        })
    }
}

async fn alices_node(r: &Replica, user: crate::types::UserId, seed: u8) -> Arc<Node> {
    let new = NewPreAuthKey {
        user: Some(user),
        ..Default::default()
    };
    let (_, secret) = r.admin.create_preauth_key(&local(), new).await.unwrap();
    match r.state.register(node_input(seed, secret)).await.unwrap() {
        RegisterOutcome::Authorized { node, .. } => node,
        other => panic!("not registered: {other:?}"),
    }
}

/// Alice's laptop and server, made on A, with the check policy, once B
/// knows them too.
async fn alices_laptop_and_server(a: &Replica, b: &Replica) -> (Arc<Node>, Arc<Node>) {
    let alice = NewUser {
        name: "alice".into(),
        display_name: String::new(),
        email: "alice@example.com".into(),
    };
    let alice = a.admin.create_user(&local(), alice).await.unwrap().id;
    let laptop = alices_node(a, alice, 1).await;
    let server = alices_node(a, alice, 2).await;
    a.admin.set_policy(&local(), POLICY.into()).await.unwrap();
    until("B to know the nodes and the policy", || {
        let w = b.state.world();
        w.node(server.id).is_some() && w.policy.compiled.is_some()
    })
    .await;
    (laptop, server)
}

/// A check opened on A for alice's root login from `src` to `dst`: its id
/// and its follow-up request.
async fn hold_on(a: &Replica, src: &Node, dst: &Node) -> (AuthId, Request) {
    let held = a.ask(req(src, dst, "root")).await;
    assert!(!held.accept && !held.reject, "{held:?}");
    let id = held.hold_and_delegate.split("auth_id=").nth(1).unwrap();
    let id = AuthId::parse(id).unwrap();
    let mut follow = req(src, dst, "root");
    follow.auth_id = Some(id.to_string());
    (id, follow)
}

async fn answer(task: tokio::task::JoinHandle<SshAction>) -> SshAction {
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("the follow-up answered within 2 s")
        .expect("task")
}

#[tokio::test]
async fn a_check_opened_on_one_replica_is_followed_up_on_the_other() {
    let Some(pg) = PgTemp::create("ssh_check_takeover").await else {
        return;
    };
    let a = replica(&pg, "replica_a").await;
    let b = replica(&pg, "replica_b").await;
    let (laptop, server) = alices_laptop_and_server(&a, &b).await;

    // The follow-up reaches B, which takes the check over; approved on B.
    let (id, follow) = hold_on(&a, &laptop, &server).await;
    // Another login naming this check (the reverse direction, asked by
    // the laptop's own machine) does not get it.
    let mut stranger = req(&server, &laptop, "root");
    stranger.auth_id = Some(id.to_string());
    let refused = answer(b.follow(stranger)).await;
    assert!(refused.reject, "{refused:?}");
    assert!(
        refused.message.contains("unknown, used or expired"),
        "{refused:?}"
    );
    let waiting = b.follow(follow);
    until("B to take the check over", || {
        b.admin.registrations().contains(&id)
    })
    .await;
    b.admin
        .approve_auth(&local(), &id)
        .await
        .expect("B approves");
    let done = answer(waiting).await;
    assert!(done.accept, "{done:?}");

    // Rejected on A before the follow-up reaches B: B hands it over.
    tokio::time::sleep(Duration::from_millis(1100)).await; // the check period
    let (id, follow) = hold_on(&a, &laptop, &server).await;
    a.admin.reject_auth(&local(), &id).await.expect("A rejects");
    let done = answer(b.follow(follow)).await;
    assert!(done.reject, "{done:?}");
    assert!(done.message.contains("SSH check rejected"), "{done:?}");
}

/// A check taken over by B runs out on both replicas (A still holds its
/// own wait); the trail they share records the expiry once.
#[tokio::test]
async fn a_check_running_out_on_two_replicas_is_audited_once() {
    let Some(pg) = PgTemp::create("ssh_check_expire_once").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ttl = Duration::from_millis(1500);
    let a = audited_replica(&pg, "replica_a", dir.path(), ttl).await;
    let b = audited_replica(&pg, "replica_b", dir.path(), ttl).await;
    let (laptop, server) = alices_laptop_and_server(&a, &b).await;

    let (id, follow) = hold_on(&a, &laptop, &server).await;
    let waiting = b.follow(follow);
    until("B to take the check over", || {
        b.admin.registrations().contains(&id)
    })
    .await;
    let done = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the follow-up answered within the TTL")
        .unwrap();
    assert!(done.reject && done.message.contains("expired"), "{done:?}");
    // A's wait ran out at the same moment as B's; give its line (if it
    // were written) time to reach the trail.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let object = format!("registration:{id}");
    for r in [&a, &b] {
        let lines = r
            .admin
            .audit(&local(), audit::Query::default())
            .await
            .unwrap();
        let expired: Vec<_> = lines
            .iter()
            .filter(|e| e.action == "ssh_check.expire")
            .collect();
        assert_eq!(expired.len(), 1, "{expired:#?}");
        assert_eq!(expired[0].actor, "system");
        assert_eq!(expired[0].object.as_deref(), Some(&*object));
    }
}

/// A decision on another replica claims the check in the database just
/// before A's wait runs out, and its verdict is written after: the login
/// is let in, not refused as expired, and no expiry is recorded.
#[tokio::test]
async fn a_check_approved_elsewhere_as_its_wait_runs_out_lets_the_login_in() {
    let Some(pg) = PgTemp::create("ssh_check_late_verdict").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ttl = Duration::from_millis(1000);
    let a = audited_replica(&pg, "replica_a", dir.path(), ttl).await;
    let b = replica(&pg, "replica_b").await;
    let (laptop, server) = alices_laptop_and_server(&a, &b).await;

    let (id, follow) = hold_on(&a, &laptop, &server).await;
    let waiting = a.follow(follow);
    // What B's `auth approve` does first: claim the row, once.
    let hash = crate::admin::registrations::request_hash(&id);
    let claimed = b.state.claim_request(&hash).await.unwrap();
    assert!(matches!(claimed, Some(None)), "{claimed:?}");
    // Then, after A's wait ran out, the verdict.
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "answered before the verdict");
    b.state
        .decide_request(&hash, &SharedVerdict::Approved(None))
        .await
        .unwrap();
    let done = answer(waiting).await;
    assert!(done.accept, "{done:?}");
    let lines = a
        .admin
        .audit(&local(), audit::Query::default())
        .await
        .unwrap();
    assert!(
        !lines.iter().any(|e| e.action == "ssh_check.expire"),
        "an expiry recorded for an approved check"
    );
}
