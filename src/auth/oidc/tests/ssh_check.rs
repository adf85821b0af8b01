//! Logins through the identity provider that pass a held Tailscale SSH
//! check: only the owner of the (untagged) source device passes it, found
//! by issuer and subject and never created; every refusal is a page saying
//! why and leaves the check pending, its long poll still waiting.

use std::time::Duration as StdDuration;

use tokio::task::JoinHandle;

use super::*;
use crate::admin::NewPreAuthKey;
use crate::admin::testing::local;
use crate::auth::ssh_check::{Refusal as SshRefusal, Request as SshRequest};
use crate::db::OidcProfile;
use crate::state::RegisterOutcome;
use crate::tailcfg::SshAction;
use crate::types::{Node, OidcIdentity, UserId};

/// alice's devices check root logins between each other; so do the
/// tagged `ci` and `srv` (tagged sources may only reach tagged devices).
pub(super) const POLICY: &str = r#"{
  "tagOwners": {"tag:ci": ["alice@example.com"], "tag:srv": ["alice@example.com"]},
  "ssh": [
    {"action": "check", "src": ["alice@example.com"], "dst": ["alice@example.com"],
     "users": ["root"]},
    {"action": "check", "src": ["tag:ci"], "dst": ["tag:srv"], "users": ["root"]}
  ]}"#;

type Poll = JoinHandle<Result<SshAction, SshRefusal>>;

struct Tailnet {
    t: Setup,
    /// alice's laptop and server.
    laptop: Arc<Node>,
    server: Arc<Node>,
    /// Tagged devices (their keys made by an operator).
    ci: Arc<Node>,
    srv: Arc<Node>,
}

/// A device of the person with subject `sub`, enrolled through an earlier
/// OIDC login (which made their user).
async fn device(t: &Setup, sub: &str, name: &str, seed: u8) -> Arc<Node> {
    let profile = OidcProfile {
        identity: OidcIdentity {
            issuer: t.idp.issuer.clone(),
            subject: sub.into(),
        },
        display_name: String::new(),
        email: format!("{name}@example.com"),
        profile_pic_url: String::new(),
        groups: vec![],
    };
    let login =
        t.fx.state
            .oidc_login(profile, name.into(), input(seed), None);
    login.await.unwrap().node
}

/// A device tagged `tag` by a key of alice's (she owns the tags).
async fn tagged(t: &Setup, alice: UserId, tag: &str, seed: u8) -> Arc<Node> {
    let new = NewPreAuthKey {
        user: Some(alice),
        tags: vec![tag.into()],
        ..Default::default()
    };
    let (_, secret) = t.fx.admin.create_preauth_key(&local(), new).await.unwrap();
    let input = RegisterInput {
        auth_key: Some(secret),
        ..input(seed)
    };
    match t.fx.state.register(input).await.unwrap() {
        RegisterOutcome::Authorized { node, .. } => node,
        other => panic!("not registered: {other:?}"),
    }
}

async fn tailnet(extra_yaml: &str) -> Tailnet {
    let t = setup(extra_yaml).await;
    let laptop = device(&t, "sub-alice", "alice", 1).await;
    let server = device(&t, "sub-alice", "alice", 2).await;
    device(&t, "sub-bob", "bob", 3).await;
    t.fx.admin
        .set_policy(&local(), POLICY.into())
        .await
        .unwrap();
    let ci = tagged(&t, laptop.user_id, "tag:ci", 4).await;
    let srv = tagged(&t, laptop.user_id, "tag:srv", 5).await;
    assert!(ci.is_tagged() && srv.is_tagged());
    Tailnet {
        t,
        laptop,
        server,
        ci,
        srv,
    }
}

impl Tailnet {
    /// Holds the root login from `src` to `dst` as tailscaled on `dst`
    /// asks: the check's auth id and its follow-up long poll, running.
    async fn hold(&self, src: &Node, dst: &Node) -> (AuthId, Poll) {
        let req = SshRequest {
            src: src.id,
            dst: dst.id,
            local_user: "root".into(),
            auth_id: None,
        };
        let a = self.t.checks.action(dst.machine_key, req.clone()).await;
        let a = a.unwrap();
        let id = a.hold_and_delegate.split("auth_id=").nth(1).expect("held");
        let id = AuthId::parse(id).unwrap();
        assert_eq!(self.t.checks.source_of(&id), Some(src.id));
        let follow = SshRequest {
            auth_id: Some(id.to_string()),
            ..req
        };
        let (checks, machine) = (self.t.checks.clone(), dst.machine_key);
        let poll = tokio::spawn(async move { checks.action(machine, follow).await });
        (id, poll)
    }

    /// The person with subject `sub` logs in for check `id` in a fresh
    /// browser.
    async fn login_as(&self, id: &AuthId, sub: &str, email: &str) -> (StatusCode, String) {
        let s = self.t.begin(id.clone()).await;
        let mut token = self.t.good_token(&s);
        token.subject = sub.into();
        token.email = email.into();
        self.t.login(&s, &token).await
    }

    /// The refused login left check `id` as it was: pending, its poll
    /// waiting, no user or node made.
    #[track_caller]
    fn assert_still_pending(
        &self,
        id: &AuthId,
        poll: &Poll,
        (status, body): &(StatusCode, String),
    ) {
        assert!(status.is_client_error(), "{status}: {body}");
        assert!(body.contains("SSH login not approved"), "{body}");
        assert!(self.t.fx.admin.registrations().contains(id), "{body}");
        assert!(!poll.is_finished(), "the SSH session must keep waiting");
        let w = self.t.fx.state.world();
        assert_eq!((w.users.len(), w.nodes.len()), (2, 5), "{body}");
        assert!(
            !self
                .t
                .fx
                .audit()
                .iter()
                .any(|e| e.action == "ssh_check.approve_oidc"),
            "nothing approved"
        );
    }
}

async fn answer(poll: Poll) -> SshAction {
    tokio::time::timeout(StdDuration::from_secs(5), poll)
        .await
        .expect("the long poll ends once the check is decided")
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn the_source_devices_owner_passes_the_check_by_logging_in() {
    let n = tailnet("").await;
    let (id, poll) = n.hold(&n.laptop, &n.server).await;
    tokio::time::sleep(StdDuration::from_millis(100)).await;
    assert!(!poll.is_finished(), "waits for a verdict");
    let before = n.t.fx.audit().len();

    let (status, body) = n.login_as(&id, "sub-alice", "alice@example.com").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("SSH login approved"), "{body}");
    assert!(body.contains("alice@example.com"), "{body}");
    let a = answer(poll).await;
    assert!(
        a.accept && !a.reject && a.hold_and_delegate.is_empty(),
        "{a:?}"
    );
    assert!(!n.t.fx.admin.registrations().contains(&id), "single use");
    let w = n.t.fx.state.world();
    assert_eq!((w.users.len(), w.nodes.len()), (2, 5), "nothing enrolled");

    let lines = n.t.fx.wait_audit(before + 1).await;
    let line = lines
        .iter()
        .find(|e| e.action == "ssh_check.approve_oidc")
        .expect("the approval is audited");
    assert_eq!(line.actor, "system");
    let object = format!("registration:{id} oidc:{}#sub-alice", n.t.idp.issuer);
    assert_eq!(line.object.as_deref(), Some(&*object));
    assert!(!lines.iter().any(|e| e.action == "node.register_oidc"));
}

#[tokio::test]
async fn another_persons_login_does_not_pass_the_check() {
    let n = tailnet("").await;
    let (id, poll) = n.hold(&n.laptop, &n.server).await;
    let refused = n.login_as(&id, "sub-bob", "bob@example.com").await;
    assert_eq!(refused.0, StatusCode::FORBIDDEN, "{}", refused.1);
    assert!(refused.1.contains("another user"), "{}", refused.1);
    n.assert_still_pending(&id, &poll, &refused);
    // Nor does a token for alice that her provider did not sign.
    let s = n.t.begin(id.clone()).await;
    let mut forged = n.t.good_token(&s);
    forged.signer = OTHER_KEY;
    let refused = n.t.login(&s, &forged).await;
    assert!(
        refused.1.to_lowercase().contains("signature"),
        "{}",
        refused.1
    );
    n.assert_still_pending(&id, &poll, &refused);

    // The check is still there for its owner.
    let ok = n.login_as(&id, "sub-alice", "alice@example.com").await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
    assert!(answer(poll).await.accept);
}

#[tokio::test]
async fn no_person_vouches_for_a_tagged_device() {
    let n = tailnet("").await;
    let (id, poll) = n.hold(&n.ci, &n.srv).await;
    // alice owns the tags, yet no person is at a tagged device.
    let refused = n.login_as(&id, "sub-alice", "alice@example.com").await;
    assert_eq!(refused.0, StatusCode::FORBIDDEN, "{}", refused.1);
    assert!(refused.1.contains("tagged device"), "{}", refused.1);
    n.assert_still_pending(&id, &poll, &refused);

    // An operator still can.
    n.t.fx.admin.approve_auth(&local(), &id).await.unwrap();
    assert!(answer(poll).await.accept);
}

#[tokio::test]
async fn an_unknown_or_disallowed_person_is_refused_and_not_created() {
    let n = tailnet("").await;
    let (id, poll) = n.hold(&n.laptop, &n.server).await;
    // carol has an account at the provider but no user here; mallory
    // claims alice's address under another subject.
    for (sub, email) in [
        ("sub-carol", "carol@example.com"),
        ("sub-mallory", "alice@example.com"),
    ] {
        let refused = n.login_as(&id, sub, email).await;
        assert_eq!(refused.0, StatusCode::FORBIDDEN, "{sub}: {}", refused.1);
        assert!(refused.1.contains("no user"), "{sub}: {}", refused.1);
        n.assert_still_pending(&id, &poll, &refused);
        assert!(n.t.fx.state.world().user_by_name("carol").is_none());
    }

    // The allow-lists apply as for a registration: alice is not in `ops`.
    let n = tailnet("  allowed_groups: [ops]\n").await;
    let (id, poll) = n.hold(&n.laptop, &n.server).await;
    let refused = n.login_as(&id, "sub-alice", "alice@example.com").await;
    assert_eq!(refused.0, StatusCode::FORBIDDEN, "{}", refused.1);
    assert!(refused.1.contains("allowed to log in"), "{}", refused.1);
    assert!(
        refused.1.contains("SSH login not approved"),
        "{}",
        refused.1
    );
    assert!(n.t.fx.admin.registrations().contains(&id));
    assert!(!poll.is_finished());
}
