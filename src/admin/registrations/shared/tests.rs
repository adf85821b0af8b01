//! Two replicas on one PostgreSQL database, each with its own operations
//! (`Admin`): a client waits on A while an operator decides on B, once.

use std::time::Duration;

use crate::admin::registrations::Verdict;
use crate::admin::testing::replica;
use crate::admin::{AuthId, Caller, Error, Transport};
use crate::auth::{AuthFlows, FollowupOutcome};
use crate::db::testing::PgTemp;
use crate::state::RegisterInput;
use crate::state::auth_requests::SharedVerdict;
use crate::state::testing::until;
use crate::types::MachinePublic;

fn input(machine: u8, hostname: &str) -> RegisterInput {
    crate::state::testing::register_input(machine, machine, None, hostname)
}

fn operator() -> Caller {
    Caller::local(Some(0), Transport::Grpc)
}

/// Starts an interactive login on `flows` and waits for its outcome in a
/// task: the login's id and the waiting task.
async fn login(
    flows: &AuthFlows,
    machine: u8,
) -> (AuthId, tokio::task::JoinHandle<FollowupOutcome>) {
    let url = flows.begin(input(machine, "laptop")).await.expect("begin");
    let id = AuthId::parse(url.rsplit('/').next().unwrap()).unwrap();
    let flows = flows.clone();
    let wait = tokio::spawn(async move { flows.follow(&url, MachinePublic([machine; 32])).await });
    (id, wait)
}

async fn outcome(wait: tokio::task::JoinHandle<FollowupOutcome>) -> FollowupOutcome {
    // The notification arrives within milliseconds; the safety poll (5 s)
    // is not what this waits for.
    tokio::time::timeout(Duration::from_secs(2), wait)
        .await
        .expect("the waiting client heard within 2 s")
        .expect("task")
}

#[tokio::test]
async fn a_request_waiting_on_one_replica_is_decided_on_the_other_once() {
    let Some(pg) = PgTemp::create("shared_requests").await else {
        return;
    };
    let (a_state, a) = replica(&pg, "replica_a").await;
    let (_b_state, b) = replica(&pg, "replica_b").await;
    a_state.create_user("alice", "", "").await.expect("user");
    let flows = AuthFlows::new("http://a.example", a.registrations().clone());
    let op = operator();

    // Registered on B for the client waiting on A.
    let (id, wait) = login(&flows, 1).await;
    let info = loop {
        // B's World learns of alice through the database.
        match b.register_pending(&op, &id, "alice").await {
            Err(Error::NotFound(m)) if m.contains("alice") => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => break other.expect("B registers A's login"),
        }
    };
    match outcome(wait).await {
        FollowupOutcome::Registered(node) => assert_eq!(node.id, info.node.id),
        other => panic!("A's client: {other:?}"),
    }
    // Once: neither replica decides it again.
    for admin in [&a, &b] {
        let again = admin.register_pending(&op, &id, "alice").await;
        assert!(matches!(again, Err(Error::NotFound(_))), "{again:?}");
    }

    // Rejected on B.
    let (id, wait) = login(&flows, 2).await;
    b.reject_auth(&op, &id).await.expect("B rejects");
    match outcome(wait).await {
        FollowupOutcome::Failed(m) => assert!(m.contains("rejected"), "{m}"),
        other => panic!("A's client: {other:?}"),
    }

    // Approving a new machine is refused without using the request up,
    // on B as on A; registering it then works.
    let (id, wait) = login(&flows, 3).await;
    let refused = b.approve_auth(&op, &id).await;
    assert!(
        matches!(refused, Err(Error::FailedPrecondition(_))),
        "{refused:?}"
    );
    b.register_pending(&op, &id, "alice")
        .await
        .expect("still pending");
    assert!(matches!(
        outcome(wait).await,
        FollowupOutcome::Registered(_)
    ));

    // Decided on A, where the client waits: B cannot decide it after.
    let (id, wait) = login(&flows, 4).await;
    a.reject_auth(&op, &id).await.expect("A rejects");
    assert!(matches!(outcome(wait).await, FollowupOutcome::Failed(_)));
    let late = b.register_pending(&op, &id, "alice").await;
    assert!(matches!(late, Err(Error::NotFound(_))), "{late:?}");

    // A made-up machine (Headscale's debug node) made on A is registered
    // on B.
    let debug = AuthId::generate();
    a.debug_create_node(&op, "alice", &debug, "made-up", vec![])
        .await
        .expect("debug node");
    let made = b
        .register_pending(&op, &debug, "alice")
        .await
        .expect("B registers it");
    assert_eq!(made.node.hostname, "made-up");

    // A request that only needs a verdict (an SSH check held on A) is
    // approved on B.
    let check = AuthId::generate();
    let verdict = a.registrations().insert(check.clone(), None).expect("hold");
    a.registrations().share(&check, None).await.expect("shared");
    b.approve_auth(&op, &check)
        .await
        .expect("B approves the check");
    let got = tokio::time::timeout(Duration::from_secs(2), verdict)
        .await
        .expect("A's waiter heard within 2 s")
        .expect("a verdict");
    assert!(matches!(got, Verdict::Approved(None)), "{got:?}");

    // An unknown id is unknown everywhere.
    let unknown = AuthId::generate();
    let r = b.reject_auth(&op, &unknown).await;
    assert!(matches!(r, Err(Error::NotFound(_))), "{r:?}");
}

#[tokio::test]
async fn a_login_started_on_one_replica_is_followed_up_on_the_other() {
    let Some(pg) = PgTemp::create("adopted_requests").await else {
        return;
    };
    let (a_state, a) = replica(&pg, "replica_a").await;
    let (b_state, b) = replica(&pg, "replica_b").await;
    a_state.create_user("alice", "", "").await.expect("user");
    let on_a = AuthFlows::new("http://a.example", a.registrations().clone());
    let on_b = AuthFlows::new("http://b.example", b.registrations().clone());
    let op = operator();
    let follow_on_b = |url: String, machine: u8| {
        let flows = on_b.clone();
        tokio::spawn(async move { flows.follow(&url, MachinePublic([machine; 32])).await })
    };
    until("B to know alice", || {
        b_state.world().user_by_name("alice").is_some()
    })
    .await;

    // The client moves to B, then the operator decides on A (where the
    // request was started): B's waiter hears it.
    let url = on_a.begin(input(1, "laptop")).await.expect("begin");
    let id = AuthId::parse(url.rsplit('/').next().unwrap()).unwrap();
    let wait = follow_on_b(url, 1);
    until("B to take the login over", || {
        b.registrations().contains(&id)
    })
    .await;
    let info = a
        .register_pending(&op, &id, "alice")
        .await
        .expect("A registers");
    match outcome(wait).await {
        FollowupOutcome::Registered(node) => assert_eq!(node.id, info.node.id),
        other => panic!("the client on B: {other:?}"),
    }

    // Decided (on B) while the client was between replicas: its followup
    // on B gets the verdict stored before it arrived.
    let url = on_a.begin(input(2, "desktop")).await.expect("begin");
    let id = AuthId::parse(url.rsplit('/').next().unwrap()).unwrap();
    let info = b
        .register_pending(&op, &id, "alice")
        .await
        .expect("B registers");
    match outcome(follow_on_b(url, 2)).await {
        FollowupOutcome::Registered(node) => assert_eq!(node.id, info.node.id),
        other => panic!("the client on B: {other:?}"),
    }

    // Another machine cannot wait on someone's login, and trying does not
    // use it up; an unknown one is unknown.
    let url = on_a.begin(input(3, "phone")).await.expect("begin");
    let id = AuthId::parse(url.rsplit('/').next().unwrap()).unwrap();
    match outcome(follow_on_b(url.clone(), 9)).await {
        FollowupOutcome::Failed(m) => assert!(m.contains("expired or unknown"), "{m}"),
        other => panic!("a stranger on B: {other:?}"),
    }
    let unknown = format!("http://a.example/register/{}", AuthId::generate());
    assert!(matches!(
        outcome(follow_on_b(unknown, 3)).await,
        FollowupOutcome::Failed(_)
    ));
    let wait = follow_on_b(url, 3);
    until("B to take the login over", || {
        b.registrations().contains(&id)
    })
    .await;
    b.reject_auth(&op, &id).await.expect("B rejects");
    match outcome(wait).await {
        FollowupOutcome::Failed(m) => assert!(m.contains("rejected"), "{m}"),
        other => panic!("the client on B: {other:?}"),
    }

    // A second follow-up on the replica where the first one still waits
    // is turned away; it does not take the request from the first.
    let (id, first) = login(&on_a, 4).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let url = format!("http://a.example/register/{id}");
    let second = on_a.follow(&url, MachinePublic([4; 32])).await;
    assert!(matches!(second, FollowupOutcome::Failed(_)), "{second:?}");
    a.register_pending(&op, &id, "alice")
        .await
        .expect("A registers");
    assert!(matches!(
        outcome(first).await,
        FollowupOutcome::Registered(_)
    ));
}

#[tokio::test]
async fn an_oidc_login_finished_on_one_replica_registers_a_client_waiting_on_the_other() {
    let Some(pg) = PgTemp::create("oidc_across").await else {
        return;
    };
    let (_a_state, a) = replica(&pg, "replica_a").await;
    let (_b_state, b) = replica(&pg, "replica_b").await;
    let flows = AuthFlows::new("http://a.example", a.registrations().clone());
    let (id, wait) = login(&flows, 1).await;
    let profile = crate::db::OidcProfile {
        identity: crate::types::OidcIdentity {
            issuer: "https://idp.example".into(),
            subject: "alice-sub".into(),
        },
        display_name: "Alice".into(),
        email: "alice@example.com".into(),
        profile_pic_url: String::new(),
        groups: vec![],
    };
    let done = b
        .register_oidc(&id, profile, "alice".into(), None)
        .await
        .expect("B finishes A's login");
    match outcome(wait).await {
        FollowupOutcome::Registered(node) => assert_eq!(node.id, done.node.id),
        other => panic!("A's client: {other:?}"),
    }
    // Decided once: an operator cannot decide it again anywhere.
    for admin in [&a, &b] {
        let again = admin.reject_auth(&operator(), &id).await;
        assert!(matches!(again, Err(Error::NotFound(_))), "{again:?}");
    }
}

#[tokio::test]
async fn a_verdict_whose_node_never_arrives_holds_up_no_other() {
    let Some(pg) = PgTemp::create("slow_verdicts").await else {
        return;
    };
    let (a_state, a) = replica(&pg, "replica_a").await;
    let (b_state, b) = replica(&pg, "replica_b").await;
    a_state.create_user("alice", "", "").await.expect("user");
    until("B to know alice", || {
        b_state.world().user_by_name("alice").is_some()
    })
    .await;
    let flows = AuthFlows::new("http://a.example", a.registrations().clone());
    let (ghost, ghost_wait) = login(&flows, 1).await;
    let (id, wait) = login(&flows, 2).await;
    // An approval naming a node A will never see (deleted at once, say),
    // decided first.
    let h = super::hash(&ghost);
    assert!(b_state.claim_request(&h).await.expect("claim").is_some());
    let missing = SharedVerdict::Approved(Some(crate::types::NodeId(424_242)));
    b_state.decide_request(&h, &missing).await.expect("decide");
    let info = b
        .register_pending(&operator(), &id, "alice")
        .await
        .expect("B registers");
    match outcome(wait).await {
        FollowupOutcome::Registered(node) => assert_eq!(node.id, info.node.id),
        other => panic!("A's client: {other:?}"),
    }
    // The other gives up once the node has had its time to arrive.
    let late = tokio::time::timeout(Duration::from_secs(10), ghost_wait)
        .await
        .expect("the ghost's client heard within 10 s")
        .expect("task");
    match late {
        FollowupOutcome::Failed(m) => assert!(m.contains("did not reach"), "{m}"),
        other => panic!("the ghost's client: {other:?}"),
    }
}

/// A check waits on A; a decision on B claims it in the database just as
/// A's wait runs out, and writes its verdict a moment later. A's expiry
/// must come back with that verdict, not expire the check; and a request
/// whose wait ran out on both replicas expires once.
#[tokio::test]
async fn a_verdict_claimed_elsewhere_as_the_wait_runs_out_is_not_an_expiry() {
    use super::Expired;

    let Some(pg) = PgTemp::create("shared_late_verdict").await else {
        return;
    };
    let (_a_state, a) = replica(&pg, "replica_a").await;
    let (_b_state, b) = replica(&pg, "replica_b").await;
    let hold = |regs: &crate::admin::registrations::Registrations| {
        let id = AuthId::generate();
        let waiter = regs.insert(id.clone(), None).expect("held");
        (id, waiter)
    };

    let (id, _waiter) = hold(a.registrations());
    a.registrations()
        .share(&id, Some("check"))
        .await
        .expect("shared");
    let claimed = b.registrations().claim(&id).await.expect("B claims");
    let expiring = {
        let regs = a.registrations().clone();
        let id = id.clone();
        tokio::spawn(async move { regs.expired(&id).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    claimed
        .settle(b.registrations(), Verdict::Rejected("no".into()))
        .await;
    match expiring.await.expect("task").expect("expired") {
        Expired::Decided(Verdict::Rejected(why)) => assert_eq!(why, "no"),
        other => panic!("A expired a check B had decided: {other:?}"),
    }

    // Ran out on both (B took it over): the first records it, the other
    // is told so, without waiting for a verdict that will not come.
    let (id, _waiter) = hold(a.registrations());
    a.registrations()
        .share(&id, Some("check"))
        .await
        .expect("shared");
    assert!(matches!(
        a.registrations().expired(&id).await.expect("A"),
        Expired::Here
    ));
    let start = std::time::Instant::now();
    assert!(matches!(
        b.registrations().expired(&id).await.expect("B"),
        Expired::Elsewhere
    ));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}
