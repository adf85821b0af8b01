//! The SSH check flow against a real state and audit log: who may ask,
//! which logins a check covers, the long poll and its verdicts (approve,
//! reject, expiry), single use, and `checkPeriod` reuse.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::admin::testing::{Fixture, fixture, local};
use crate::admin::{NewPreAuthKey, NewUser};
use crate::state::{RegisterInput, RegisterOutcome};
use crate::types::NodePublic;

mod replicas;

/// alice may log in as root between her own nodes after a check that
/// counts for 1 s, and as ubuntu without one; bob has no SSH rule.
const POLICY: &str = r#"{"ssh": [
  {"action": "check", "src": ["alice@example.com"], "dst": ["alice@example.com"],
   "users": ["root"], "checkPeriod": "1s"},
  {"action": "accept", "src": ["alice@example.com"], "dst": ["alice@example.com"],
   "users": ["ubuntu"]}
]}"#;

pub(crate) struct Net {
    pub fx: Fixture,
    pub checks: SshChecks,
    /// alice's laptop, alice's server, bob's laptop.
    pub a1: Arc<Node>,
    pub a2: Arc<Node>,
    pub b1: Arc<Node>,
}

/// Machine `seed` registering with pre-auth key `secret`.
fn node_input(seed: u8, secret: String) -> RegisterInput {
    RegisterInput {
        machine_key: MachinePublic([seed; 32]),
        node_key: NodePublic([seed + 100; 32]),
        old_node_key: None,
        auth_key: Some(secret),
        expiry: None,
        hostinfo: json!({ "Hostname": format!("host{seed}") }),
        ephemeral: false,
        version: 100,
    }
}

async fn node(fx: &Fixture, user: UserId, seed: u8) -> Arc<Node> {
    let new = NewPreAuthKey {
        user: Some(user),
        ..Default::default()
    };
    let (_, secret) = fx.admin.create_preauth_key(&local(), new).await.unwrap();
    match fx.state.register(node_input(seed, secret)).await.unwrap() {
        RegisterOutcome::Authorized { node, .. } => node,
        other => panic!("not registered: {other:?}"),
    }
}

pub(crate) async fn net(ttl: Duration) -> Net {
    let fx = fixture().await;
    let mut ids = Vec::new();
    for name in ["alice", "bob"] {
        let new = NewUser {
            name: name.into(),
            display_name: String::new(),
            email: format!("{name}@example.com"),
        };
        ids.push(fx.admin.create_user(&local(), new).await.unwrap().id);
    }
    let a1 = node(&fx, ids[0], 1).await;
    let a2 = node(&fx, ids[0], 2).await;
    let b1 = node(&fx, ids[1], 3).await;
    fx.admin.set_policy(&local(), POLICY.into()).await.unwrap();
    let checks = SshChecks::with_ttl(fx.state.clone(), fx.admin.clone(), ttl);
    Net {
        fx,
        checks,
        a1,
        a2,
        b1,
    }
}

fn req(src: &Node, dst: &Node, user: &str) -> Request {
    Request {
        src: src.id,
        dst: dst.id,
        local_user: user.into(),
        auth_id: None,
    }
}

impl Net {
    /// `req` asked by the destination's own machine.
    async fn ask(&self, req: Request) -> Result<SshAction, Refusal> {
        let machine = self.fx.state.world().node(req.dst).unwrap().machine_key;
        self.checks.action(machine, req).await
    }

    fn actions(&self) -> Vec<String> {
        self.fx.audit().into_iter().map(|e| e.action).collect()
    }

    /// Opens a check for alice's root login to her server: its auth id
    /// and the follow-up request.
    async fn hold(&self) -> (AuthId, Request) {
        let a = self.ask(req(&self.a1, &self.a2, "root")).await.unwrap();
        assert!(!a.accept && !a.reject, "{a:?}");
        let id = a.hold_and_delegate.split("auth_id=").nth(1).unwrap();
        let id = AuthId::parse(id).unwrap();
        assert!(
            a.message
                .contains(&format!("visit: {CHECK_URL_BASE}/register/{id}")),
            "{}",
            a.message
        );
        assert!(self.fx.admin.registrations().contains(&id));
        let follow = Request {
            auth_id: Some(id.to_string()),
            ..req(&self.a1, &self.a2, "root")
        };
        (id, follow)
    }
}

#[tokio::test]
async fn only_the_destination_node_may_ask() {
    let n = net(TTL).await;
    let r = req(&n.a1, &n.a2, "root");
    // alice's laptop asks about logins to her server: refused.
    assert_eq!(
        n.checks.action(n.a1.machine_key, r.clone()).await,
        Err(Refusal::NotDestination(n.a2.id))
    );
    // An unknown destination looks the same.
    let ghost = Request {
        dst: NodeId(99),
        ..r
    };
    assert_eq!(
        n.checks.action(n.a2.machine_key, ghost).await,
        Err(Refusal::NotDestination(NodeId(99)))
    );
    assert!(!n.actions().iter().any(|a| a.starts_with("ssh_check")));
}

#[tokio::test]
async fn logins_no_check_rule_covers_are_rejected_without_a_pending_request() {
    let n = net(TTL).await;
    let ghost = Request {
        src: NodeId(99),
        ..req(&n.a1, &n.a2, "root")
    };
    for (r, why) in [
        (ghost, "not in this tailnet"),
        (req(&n.b1, &n.a2, "root"), "no SSH check rule"),
        (req(&n.a1, &n.a2, "ubuntu"), "no SSH check rule"),
        (req(&n.a1, &n.a2, "nobody"), "no SSH check rule"),
    ] {
        let a = n.ask(r).await.unwrap();
        assert!(
            a.reject && !a.accept && a.hold_and_delegate.is_empty(),
            "{a:?}"
        );
        assert!(a.message.contains(why), "{}", a.message);
    }
    assert!(!n.actions().iter().any(|a| a.starts_with("ssh_check")));
}

#[tokio::test]
async fn approval_ends_the_long_poll_and_counts_for_the_check_period() {
    let n = net(TTL).await;
    let (id, follow) = n.hold().await;
    let mut poll = tokio::spawn({
        let (checks, machine) = (n.checks.clone(), n.a2.machine_key);
        async move { checks.action(machine, follow).await }
    });
    // It waits for a verdict.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut poll)
            .await
            .is_err()
    );
    n.fx.admin.approve_auth(&local(), &id).await.unwrap();
    let a = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("answered at once")
        .unwrap()
        .unwrap();
    assert!(
        a.accept && !a.reject && a.hold_and_delegate.is_empty(),
        "{a:?}"
    );
    assert_eq!(a.session_duration, 1_000_000_000);
    // Single use: the same follow-up again gets nothing.
    let replay = Request {
        auth_id: Some(id.to_string()),
        ..req(&n.a1, &n.a2, "root")
    };
    let a = n.ask(replay).await.unwrap();
    assert!(
        a.reject && a.message.contains("unknown, used or expired"),
        "{a:?}"
    );
    // Within the period the same login passes at once; another local
    // user or source does not ride on it.
    let a = n.ask(req(&n.a1, &n.a2, "root")).await.unwrap();
    assert!(a.accept && a.hold_and_delegate.is_empty(), "{a:?}");
    assert!(a.session_duration > 0 && a.session_duration <= 1_000_000_000);
    // After the period, a new check.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let a = n.ask(req(&n.a1, &n.a2, "root")).await.unwrap();
    assert!(!a.accept && !a.hold_and_delegate.is_empty(), "{a:?}");
    let actions = n.actions();
    let ssh: Vec<&str> = actions
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("ssh_check") || a.starts_with("auth."))
        .collect();
    assert_eq!(
        ssh,
        [
            "ssh_check.hold",
            "auth.approve",
            "ssh_check.remembered",
            "ssh_check.hold"
        ]
    );
}

#[tokio::test]
async fn rejection_answers_reject_and_is_not_remembered() {
    let n = net(TTL).await;
    let (id, follow) = n.hold().await;
    let poll = tokio::spawn({
        let (checks, machine) = (n.checks.clone(), n.a2.machine_key);
        async move { checks.action(machine, follow).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    n.fx.admin.reject_auth(&local(), &id).await.unwrap();
    let a = poll.await.unwrap().unwrap();
    assert!(a.reject && !a.accept, "{a:?}");
    assert!(a.message.contains("rejected"), "{}", a.message);
    // Nothing remembered: the next login is held again.
    let (again, _) = n.hold().await;
    assert_ne!(again, id);
}

#[tokio::test]
async fn an_undecided_check_expires_into_a_reject() {
    let n = net(Duration::from_millis(300)).await;
    let (id, follow) = n.hold().await;
    let a = tokio::time::timeout(Duration::from_secs(5), n.ask(follow))
        .await
        .expect("bounded by the TTL")
        .unwrap();
    assert!(a.reject && a.message.contains("expired"), "{a:?}");
    let lines = n.fx.wait_audit(1).await;
    let line = lines
        .iter()
        .find(|e| e.action == "ssh_check.expire")
        .expect("the expiry is audited");
    assert_eq!(line.actor, "system");
    assert_eq!(line.object.as_deref(), Some(&*format!("registration:{id}")));
}

#[tokio::test]
async fn a_follow_up_for_another_connection_is_refused() {
    let n = net(TTL).await;
    let (id, follow) = n.hold().await;
    // Logins no rule covers are rejected before the id is looked at.
    let uncovered = Request {
        src: n.b1.id,
        ..follow.clone()
    };
    assert!(n.ask(uncovered).await.unwrap().reject);
    // A covered login presenting the id of another login's check: refused.
    let third = node(&n.fx, n.a1.user_id, 4).await;
    let foreign = Request {
        src: third.id,
        ..follow
    };
    assert_eq!(
        n.ask(foreign).await,
        Err(Refusal::OtherConnection(id.to_string()))
    );
}

#[tokio::test]
async fn only_the_source_nodes_owner_or_an_operator_may_vouch() {
    let n = net(TTL).await;
    let mut src = (*n.a1).clone();
    assert!(may_vouch(&src, &Approver::Operator));
    assert!(may_vouch(&src, &Approver::User(n.a1.user_id)));
    assert!(!may_vouch(&src, &Approver::User(n.b1.user_id)));
    src.tags = vec!["tag:server".into()];
    assert!(!may_vouch(&src, &Approver::User(n.a1.user_id)));
    assert!(may_vouch(&src, &Approver::Operator));
}

#[tokio::test]
async fn a_persons_verdict_is_held_against_the_source_node_again() {
    let n = net(TTL).await;
    // bob's word for alice's login (however it got past the login) is a
    // reject, not an accept.
    let (id, follow) = n.hold().await;
    let poll = tokio::spawn({
        let (checks, machine) = (n.checks.clone(), n.a2.machine_key);
        async move { checks.action(machine, follow).await }
    });
    assert_eq!(n.checks.source_of(&id), Some(n.a1.id));
    n.fx.admin
        .registrations()
        .decide_for_test(&id, Verdict::Vouched(n.b1.user_id));
    let a = poll.await.unwrap().unwrap();
    assert!(a.reject && a.message.contains("may not vouch"), "{a:?}");
    // alice's own word is an accept.
    let (id, follow) = n.hold().await;
    n.fx.admin
        .registrations()
        .decide_for_test(&id, Verdict::Vouched(n.a1.user_id));
    assert!(n.ask(follow).await.unwrap().accept);
    assert_eq!(n.checks.source_of(&AuthId::generate()), None);
}
