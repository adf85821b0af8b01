//! The interactive login's wait and its page, without a server: only the
//! requesting machine may wait on a login, a decision releases it, an
//! expired or unknown login fails, a dropped wait can be resumed, and the
//! page escapes what the client sent.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::*;
use crate::admin::registrations::Verdict;

fn input(machine: u8, hostname: &str) -> RegisterInput {
    crate::state::testing::register_input(machine, machine, None, hostname)
}

fn flows() -> AuthFlows {
    AuthFlows::new("http://ctl.example:8080/", Registrations::default())
}

fn id_of(url: &str) -> AuthId {
    AuthId::parse(url.rsplit('/').next().unwrap()).unwrap()
}

#[tokio::test]
async fn a_followup_waits_for_the_decision_of_its_own_machine_only() {
    let f = flows();
    let url = f.begin(input(1, "a")).await.unwrap();
    assert!(
        url.starts_with("http://ctl.example:8080/register/cskey-authreq-"),
        "{url}"
    );
    // Another machine cannot wait on (or take) this login.
    match f.follow(&url, MachinePublic([2; 32])).await {
        FollowupOutcome::Failed(m) => assert!(m.contains("expired or unknown"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Rejected by the operator: the client is told.
    let id = id_of(&url);
    let waiter = {
        let f = f.clone();
        let url = url.clone();
        tokio::spawn(async move { f.follow(&url, MachinePublic([1; 32])).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(f.registrations().contains(&id));
    let p = f.registrations().peek(&id).unwrap().unwrap();
    assert_eq!(p.machine_key, MachinePublic([1; 32]));
    send(&f, &id, Verdict::Rejected("auth request rejected".into()));
    match waiter.await.unwrap() {
        FollowupOutcome::Failed(m) => assert!(m.contains("rejected"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Single use: the id is gone.
    assert!(f.registrations().peek(&id).is_none());
    match f.follow(&url, MachinePublic([1; 32])).await {
        FollowupOutcome::Failed(m) => assert!(m.contains("expired or unknown"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// Completes `id` as an operator's decision does.
fn send(f: &AuthFlows, id: &AuthId, v: Verdict) {
    f.registrations().decide_for_test(id, v);
}

#[tokio::test]
async fn an_abandoned_wait_can_be_resumed_and_logins_expire() {
    let f = flows();
    f.registrations().set_ttl(Duration::from_millis(400));
    let url = f.begin(input(1, "a")).await.unwrap();
    // The client's connection drops mid-wait: the login stays pending.
    let _ = tokio::time::timeout(
        Duration::from_millis(50),
        f.follow(&url, MachinePublic([1; 32])),
    )
    .await;
    assert!(f.registrations().contains(&id_of(&url)));
    // Its next followup waits until the TTL runs out.
    let t0 = std::time::Instant::now();
    match f.follow(&url, MachinePublic([1; 32])).await {
        FollowupOutcome::Failed(m) => assert!(m.contains("expired"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(!f.registrations().contains(&id_of(&url)));
}

async fn get(f: &AuthFlows, path: &str) -> (StatusCode, String) {
    let r = register_page::router(f.clone())
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = r.status();
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn the_page_shows_the_command_escaped_and_404s_unknown_ids() {
    let f = flows();
    let url = f
        .begin(input(1, "<script>alert(1)</script>"))
        .await
        .unwrap();
    let id = id_of(&url);
    let (status, page) = get(&f, &format!("/register/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(&format!(
            "clawscale auth register --auth-id {id} --user USERNAME"
        )),
        "{page}"
    );
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("&lt;script&gt;"), "{page}");
    for bad in [
        "/register/cskey-authreq-000000000000000000000000",
        "/register/%3Cb%3E",
        "/register/nonsense",
    ] {
        let (status, page) = get(&f, bad).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}");
        assert!(page.contains("unknown"), "{page}");
        assert!(!page.contains("<b>"), "{page}");
    }
}

#[tokio::test]
async fn an_ssh_check_page_asks_for_approval_not_registration() {
    let f = flows();
    let id = AuthId::generate();
    let _wait = f.registrations().insert(id.clone(), None).unwrap();
    let (status, page) = get(&f, &format!("/register/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(&format!("clawscale auth approve --auth-id {id}")),
        "{page}"
    );
    assert!(!page.contains("auth register"), "{page}");
}
