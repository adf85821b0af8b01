//! Authentication and authorisation on REST v1: keys missing, malformed,
//! unknown, expired, deleted or of the wrong scope; secrets kept out of
//! answers and logs; body limits; what a flood of bad keys costs; request
//! ids in answers and the audit log.

use serde_json::json;

use super::{DELETE, GET, H, POST};
use crate::admin::testing::local;
use crate::types::{ApiSecret, Scope};

impl H {
    async fn api_key(&self, scope: Scope) -> String {
        self.fx
            .admin
            .create_api_key(&local(), scope, None)
            .await
            .expect("api key")
            .1
    }

    async fn with_key(
        &self,
        method: axum::http::Method,
        path: &str,
        key: &str,
        body: Option<&str>,
    ) -> u16 {
        let auth = format!("Bearer {key}");
        self.send(method, path, body, &[("authorization", &auth)], false)
            .await
            .status
    }
}

#[tokio::test]
async fn keys_are_required_valid_and_unexpired() {
    let h = H::new().await;
    let r = h.send(GET, "/api/v1/node", None, &[], false).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/problem+json"
    );
    assert!(
        r.body.len() < 100,
        "small body: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["title"], "Unauthorized");

    let admin_key = h.api_key(Scope::Admin).await;
    assert_eq!(h.with_key(GET, "/api/v1/node", &admin_key, None).await, 200);
    for bad in [
        "tskey-invalid".to_string(),
        format!("Basic {admin_key}"),
        ApiSecret::generate().reveal(),
        // The right prefix with another secret.
        format!(
            "{}{}",
            &admin_key[..admin_key.len() - 1],
            if admin_key.ends_with('0') { '1' } else { '0' }
        ),
    ] {
        assert_eq!(
            h.with_key(GET, "/api/v1/node", &bad, None).await,
            401,
            "{bad}"
        );
    }
    let r = h
        .send(
            GET,
            "/api/v1/node",
            None,
            &[("authorization", &admin_key)],
            false,
        )
        .await;
    assert_eq!(r.status, 401, "no Bearer scheme");

    // Expired and deleted keys stop working at once.
    let doomed = h.api_key(Scope::Admin).await;
    assert_eq!(h.with_key(GET, "/api/v1/user", &doomed, None).await, 200);
    let prefix = ApiSecret::parse(&doomed).unwrap().prefix;
    let body = json!({ "prefix": prefix }).to_string();
    assert_eq!(
        h.with_key(POST, "/api/v1/apikey/expire", &admin_key, Some(&body))
            .await,
        200
    );
    assert_eq!(h.with_key(GET, "/api/v1/user", &doomed, None).await, 401);
    let other = h.api_key(Scope::Admin).await;
    assert_eq!(h.with_key(GET, "/api/v1/user", &other, None).await, 200);
    let path = format!(
        "/api/v1/apikey/{}",
        ApiSecret::parse(&other).unwrap().prefix
    );
    assert_eq!(h.with_key(DELETE, &path, &admin_key, None).await, 200);
    assert_eq!(h.with_key(GET, "/api/v1/user", &other, None).await, 401);
    // The OpenAPI document needs no key.
    assert_eq!(
        h.send(GET, "/api/v1/openapi.json", None, &[], false)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn scopes_are_enforced_on_every_route() {
    let h = H::new().await;
    let whois = h.api_key(Scope::Whois).await;
    let read = h.api_key(Scope::AdminRead).await;
    h.user("alice").await;
    for path in [
        "/api/v1/node",
        "/api/v1/user",
        "/api/v1/apikey",
        "/api/v1/health",
        "/api/v1/audit",
    ] {
        assert_eq!(
            h.with_key(GET, path, &whois, None).await,
            403,
            "whois on {path}"
        );
        assert_eq!(
            h.with_key(GET, path, &read, None).await,
            200,
            "admin:read on {path}"
        );
    }
    let mutations = [
        (POST, "/api/v1/user", Some(r#"{"name":"mallory"}"#)),
        (POST, "/api/v1/user/1/rename/x", None),
        (DELETE, "/api/v1/user/1", None),
        (POST, "/api/v1/preauthkey", Some(r#"{"user":"1"}"#)),
        (POST, "/api/v1/apikey", Some("{}")),
        (POST, "/api/v1/node/backfillips?confirmed=true", None),
    ];
    for (m, path, body) in mutations {
        assert_eq!(
            h.with_key(m.clone(), path, &read, body).await,
            403,
            "admin:read {m} {path}"
        );
        assert_eq!(
            h.with_key(m.clone(), path, &whois, body).await,
            403,
            "whois {m} {path}"
        );
    }
    let r = h
        .send(
            POST,
            "/api/v1/user",
            Some(r#"{"name":"x"}"#),
            &[("authorization", &format!("Bearer {read}"))],
            false,
        )
        .await;
    assert_eq!(r.json()["status"], 403);
    assert!(r.json()["detail"].as_str().unwrap().contains("admin:read"));
    // Nothing happened, and each refusal is on record.
    assert_eq!(h.fx.state.world().users.len(), 1);
    let refused: Vec<_> =
        h.fx.audit()
            .into_iter()
            .filter(|e| e.result == "error")
            .collect();
    assert_eq!(refused.len(), 13);
}

#[tokio::test]
async fn secrets_stay_out_of_answers_and_the_audit_log() {
    let h = H::new().await;
    let admin = h.api_key(Scope::Admin).await;
    let alice = h.user("alice").await;
    let pak = h.key(alice, true, &[]).await;
    for (path, secret) in [("/api/v1/apikey", &admin), ("/api/v1/preauthkey", &pak)] {
        let r = h.call(GET, path, None).await;
        let text = String::from_utf8(r.body).unwrap();
        let secret_half = secret.rsplit('-').next().unwrap();
        assert!(!text.contains(secret_half), "{path} shows a secret: {text}");
    }
    let log = std::fs::read_to_string(&h.fx.audit_path).unwrap();
    for secret in [&admin, &pak] {
        assert!(!log.contains(secret.rsplit('-').next().unwrap()));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn secrets_never_reach_the_server_log() {
    let (buf, _guard) = crate::admin::testing::capture_logs().await;

    let h = H::new().await;
    let key = h.api_key(Scope::Admin).await;
    let user = h.user("alice").await;
    let pak = h.key(user, false, &[]).await;
    h.with_key(GET, "/api/v1/preauthkey", &key, None).await;
    let forged = format!("{}0", &key[..key.len() - 1]);
    h.with_key(GET, "/api/v1/node", &forged, None).await;
    h.with_key(
        POST,
        "/api/v1/user",
        "cskey-api-000000000000-00",
        Some("{}"),
    )
    .await;
    // A node joins with the pre-auth key (logged), another presents a
    // forged one (refused).
    for (seed, text) in [
        (1u8, pak.clone()),
        (2, format!("{}0", &pak[..pak.len() - 1])),
    ] {
        h.fx.state
            .register(crate::state::RegisterInput {
                machine_key: crate::types::MachinePublic([seed; 32]),
                node_key: crate::types::NodePublic([seed + 10; 32]),
                old_node_key: None,
                auth_key: Some(text),
                expiry: None,
                hostinfo: json!({ "Hostname": "n" }),
                ephemeral: false,
                version: 100,
            })
            .await
            .unwrap();
    }
    let log = buf.text();
    assert!(log.contains("node registered"), "the capture works:\n{log}");
    for secret in [&key, &pak, &forged] {
        let half = secret.rsplit('-').next().unwrap();
        assert!(!log.contains(half), "secret in the log:\n{log}");
    }
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_refused_with_413() {
    let h = H::new().await;
    let big = format!(r#"{{"name":"{}"}}"#, "a".repeat(1 << 20));
    // Without a declared length: cut off while reading.
    let r = h.call(POST, "/api/v1/user", Some(&big)).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["status"], 413);
    // Declared: refused before reading.
    let len = big.len().to_string();
    let r = h
        .send(
            POST,
            "/api/v1/user",
            Some(&big),
            &[("content-length", &len)],
            true,
        )
        .await;
    assert_eq!(r.status, 413);
    let r = h
        .send(
            POST,
            "/api/v1/user",
            None,
            &[("content-length", "1048577")],
            true,
        )
        .await;
    assert_eq!(r.status, 413);
    assert!(h.fx.state.world().users.is_empty());
    // Just under the limit is read (and refused for what it says).
    let fits = format!(r#"{{"name":"{}"}}"#, "a".repeat((1 << 20) - 20));
    assert_eq!(h.call(POST, "/api/v1/user", Some(&fits)).await.status, 400);
}

#[tokio::test]
async fn a_flood_of_bad_keys_costs_at_most_one_query_a_second() {
    let h = H::new().await;
    h.api_key(Scope::Admin).await;
    let started = std::time::Instant::now();
    let before = h.fx.admin.keys().database_reads();
    for _ in 0..1000 {
        let bad = ApiSecret::generate().reveal();
        assert_eq!(h.with_key(GET, "/api/v1/node", &bad, None).await, 401);
    }
    let reads = h.fx.admin.keys().database_reads() - before;
    let bound = 1 + started.elapsed().as_secs() + 1;
    assert!(
        reads <= bound,
        "{reads} database reads for 1000 bad keys (bound {bound})"
    );
    assert!(reads >= 1, "the keys were read at least once");
}

#[tokio::test]
async fn request_ids_are_echoed_and_audited() {
    let h = H::new().await;
    let r = h
        .send(
            POST,
            "/api/v1/user",
            Some(r#"{"name":"alice"}"#),
            &[("x-request-id", "req-42")],
            true,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers.get("x-request-id").unwrap(), "req-42");
    let r = h
        .send(
            GET,
            "/api/v1/user",
            None,
            &[("x-request-id", "bad id\twith tab")],
            true,
        )
        .await;
    let generated = r.headers.get("x-request-id").unwrap().to_str().unwrap();
    assert_eq!(generated.len(), 16);
    let lines = h.fx.audit();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].request_id.as_deref(), Some("req-42"));
    assert_eq!(lines[0].actor, "uid:0");
    assert_eq!(lines[0].transport, "rest-v1");
    // And the audit log is queryable over the API.
    let r = h
        .call(GET, "/api/v1/audit?actor=uid:0&object=user", None)
        .await;
    assert_eq!(r.json()["entries"].as_array().unwrap().len(), 1);
    assert_eq!(
        h.call(GET, "/api/v1/audit?since=yesterday", None)
            .await
            .status,
        400
    );
}
