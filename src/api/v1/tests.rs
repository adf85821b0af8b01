//! Per-endpoint tests of REST v1 against Headscale main's documented
//! behaviour (`hscontrol/apiv1_*_test.go` and their goldens): status codes
//! and JSON shapes, timestamps and random key material neutralised as
//! Headscale's harness does. Requests go through the real router with
//! `oneshot`, on local trust (the socket's) unless a test sends a key.
//!
//! `nodes` covers `/node` and `/debug/node`; `security` authentication,
//! scopes, secrets, body limits and the cost of bad keys.

mod auth;
mod nodes;
mod security;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::admin::testing::{Fixture, fixture, local};
use crate::admin::{NewPreAuthKey, NewUser};
use crate::api::authn::LocalPeer;
use crate::types::UserId;

pub(super) struct H {
    pub fx: Fixture,
    pub app: Router,
}

pub(super) struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body with times and key material neutralised.
    pub fn norm(&self) -> Value {
        norm(self.json())
    }
}

/// Times become `<timestamp>` (the zero instant stays: it is a value of the
/// contract), keys and masked secrets `<secret>`.
pub(super) fn norm(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, norm(v))).collect()),
        Value::Array(a) => Value::Array(a.into_iter().map(norm).collect()),
        Value::String(s) if s == "0001-01-01T00:00:00Z" => Value::String(s),
        Value::String(s) if chrono::DateTime::parse_from_rfc3339(&s).is_ok() => {
            json!("<timestamp>")
        }
        Value::String(s)
            if [
                "mkey:",
                "nodekey:",
                "discokey:",
                "cskey-auth-",
                "cskey-api-",
            ]
            .iter()
            .any(|p| s.starts_with(p)) =>
        {
            json!("<secret>")
        }
        other => other,
    }
}

impl H {
    pub async fn new() -> H {
        let fx = fixture().await;
        let app = super::router(fx.admin.clone());
        H { fx, app }
    }

    /// A request on local trust.
    pub async fn call(&self, method: Method, path: &str, body: Option<&str>) -> Reply {
        self.send(method, path, body, &[], true).await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
        local: bool,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req
            .body(Body::from(body.unwrap_or("").to_string()))
            .expect("request");
        if local {
            req.extensions_mut().insert(LocalPeer { uid: Some(0) });
        }
        let resp = self.app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn user(&self, name: &str) -> UserId {
        let u = self
            .fx
            .admin
            .create_user(
                &local(),
                NewUser {
                    name: name.into(),
                    ..Default::default()
                },
            )
            .await
            .expect("user");
        u.id
    }

    pub async fn key(&self, user: UserId, reusable: bool, tags: &[&str]) -> String {
        let (_, secret) = self
            .fx
            .admin
            .create_preauth_key(
                &local(),
                NewPreAuthKey {
                    user: Some(user),
                    reusable,
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                    ..Default::default()
                },
            )
            .await
            .expect("key");
        secret
    }
}

fn user_json(id: &str, name: &str) -> Value {
    json!({
        "id": id, "name": name, "createdAt": "<timestamp>", "displayName": "",
        "email": "", "providerId": "", "provider": "", "profilePicUrl": "",
    })
}

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const DELETE: Method = Method::DELETE;

#[tokio::test]
async fn users() {
    let h = H::new().await;
    let r = h.call(GET, "/api/v1/user", None).await;
    assert_eq!((r.status, r.json()), (200, json!({ "users": [] })));

    let r = h
        .call(
            POST,
            "/api/v1/user",
            Some(r#"{"name":"test","displayName":"Test","email":"t@example.com"}"#),
        )
        .await;
    assert_eq!(r.status, 200);
    let mut want = user_json("1", "test");
    want["displayName"] = json!("Test");
    want["email"] = json!("t@example.com");
    assert_eq!(r.norm(), json!({ "user": want }));
    assert_eq!(r.headers.get("content-type").unwrap(), "application/json");

    let dup = h
        .call(POST, "/api/v1/user", Some(r#"{"name":"test"}"#))
        .await;
    assert_eq!(dup.status, 409);
    assert_eq!(
        dup.headers.get("content-type").unwrap(),
        "application/problem+json"
    );
    assert_eq!(dup.json()["status"], 409);
    assert_eq!(dup.json()["title"], "Conflict");
    let pic = r#"{"name":"p","pictureUrl":"https://x/p.png"}"#;
    assert_eq!(h.call(POST, "/api/v1/user", Some(pic)).await.status, 400);
    let unknown = r#"{"name":"p","nickname":"x"}"#;
    assert_eq!(
        h.call(POST, "/api/v1/user", Some(unknown)).await.status,
        400
    );
    assert_eq!(h.call(POST, "/api/v1/user", Some("{")).await.status, 400);
    assert_eq!(
        h.call(POST, "/api/v1/user", Some(r#"{"name":7}"#))
            .await
            .status,
        400
    );

    h.user("bob").await;
    h.user("carol").await;
    let r = h.call(GET, "/api/v1/user", None).await;
    let names: Vec<String> = r.json()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["test", "bob", "carol"]);
    let r = h.call(GET, "/api/v1/user?name=bob", None).await;
    assert_eq!(r.norm(), json!({ "users": [user_json("2", "bob")] }));
    let r = h.call(GET, "/api/v1/user?id=3", None).await;
    assert_eq!(r.norm(), json!({ "users": [user_json("3", "carol")] }));
    assert_eq!(h.call(GET, "/api/v1/user?id=abc", None).await.status, 400);
    assert_eq!(
        h.call(GET, "/api/v1/user?name=bob&id=abc", None)
            .await
            .status,
        400,
        "a malformed id is refused even when another filter wins"
    );

    let r = h.call(POST, "/api/v1/user/2/rename/robert", None).await;
    assert_eq!(r.norm(), json!({ "user": user_json("2", "robert") }));
    assert_eq!(
        h.call(POST, "/api/v1/user/999/rename/x", None).await.status,
        404
    );
    assert_eq!(
        h.call(POST, "/api/v1/user/abc/rename/x", None).await.status,
        400
    );
    assert_eq!(
        h.call(POST, "/api/v1/user/99999999999999999999/rename/x", None)
            .await
            .status,
        400,
        "beyond uint64"
    );

    let r = h.call(DELETE, "/api/v1/user/3", None).await;
    assert_eq!((r.status, r.json()), (200, json!({})));
    assert_eq!(h.call(DELETE, "/api/v1/user/999", None).await.status, 404);
    assert_eq!(h.call(DELETE, "/api/v1/user/abc", None).await.status, 400);
}

#[tokio::test]
async fn preauth_keys() {
    let h = H::new().await;
    let r = h.call(GET, "/api/v1/preauthkey", None).await;
    assert_eq!((r.status, r.json()), (200, json!({ "preAuthKeys": [] })));
    let alice = h.user("alice").await;

    let r = h
        .call(
            POST,
            "/api/v1/preauthkey",
            Some(r#"{"user":"1","reusable":true}"#),
        )
        .await;
    assert_eq!(r.status, 200);
    let k = r.json()["preAuthKey"].clone();
    assert!(k["key"].as_str().unwrap().starts_with("cskey-auth-"));
    assert!(
        !k["key"].as_str().unwrap().ends_with("-***"),
        "the full secret"
    );
    assert_eq!(
        norm(k),
        json!({
            "user": user_json("1", "alice"), "id": "1", "key": "<secret>",
            "reusable": true, "ephemeral": false, "used": false,
            "expiration": "0001-01-01T00:00:00Z", "createdAt": "<timestamp>", "aclTags": [],
        })
    );
    // hsapi-client sends nulls for what it does not set.
    let r = h
        .call(
            POST,
            "/api/v1/preauthkey",
            Some(
                r#"{"user":"1","reusable":null,"ephemeral":true,"expiration":"2099-01-01T00:00:00Z","aclTags":["tag:test"]}"#,
            ),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["preAuthKey"]["aclTags"], json!(["tag:test"]));
    assert_eq!(r.json()["preAuthKey"]["expiration"], "2099-01-01T00:00:00Z");

    for (body, code) in [
        (r#"{"user":"1","aclTags":["badtag"]}"#, 400),
        (r#"{"user":"999"}"#, 404),
        (r#"{"user":"abc"}"#, 400),
        // Neither owned nor (in clawscale) allowed without an owner.
        (r#"{"reusable":true}"#, 400),
        (r#"{"user":"1","expiration":"2001-01-01T00:00:00Z"}"#, 400),
    ] {
        let r = h.call(POST, "/api/v1/preauthkey", Some(body)).await;
        assert_eq!(
            r.status,
            code,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }

    let r = h.call(GET, "/api/v1/preauthkey", None).await;
    let keys = r.json()["preAuthKeys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 2);
    for k in &keys {
        let text = k["key"].as_str().unwrap();
        assert!(
            text.starts_with("cskey-auth-") && text.ends_with("-***"),
            "{text}"
        );
    }
    assert_eq!(keys[1]["ephemeral"], true);
    let r = h
        .call(GET, &format!("/api/v1/preauthkey?user={}", alice.0), None)
        .await;
    assert_eq!(r.json()["preAuthKeys"].as_array().unwrap().len(), 2);

    let r = h
        .call(POST, "/api/v1/preauthkey/expire", Some(r#"{"id":"1"}"#))
        .await;
    assert_eq!((r.status, r.json()), (200, json!({})));
    let after = h.call(GET, "/api/v1/preauthkey", None).await.json();
    assert_ne!(
        after["preAuthKeys"][0]["expiration"],
        "0001-01-01T00:00:00Z"
    );
    for (body, code) in [
        (r#"{"id":"99999"}"#, 404),
        (r#"{"id":"abc"}"#, 400),
        ("{}", 404),
    ] {
        let r = h.call(POST, "/api/v1/preauthkey/expire", Some(body)).await;
        assert_eq!(r.status, code, "{body}");
    }

    let r = h.call(DELETE, "/api/v1/preauthkey?id=1", None).await;
    assert_eq!((r.status, r.json()), (200, json!({})));
    assert_eq!(
        h.call(DELETE, "/api/v1/preauthkey?id=99999", None)
            .await
            .status,
        404
    );
    assert_eq!(
        h.call(DELETE, "/api/v1/preauthkey?id=abc", None)
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn api_keys() {
    let h = H::new().await;
    let r = h.call(GET, "/api/v1/apikey", None).await;
    assert_eq!((r.status, r.json()), (200, json!({ "apiKeys": [] })));
    let r = h.call(POST, "/api/v1/apikey", Some("{}")).await;
    assert_eq!(r.status, 200);
    let secret = r.json()["apiKey"].as_str().unwrap().to_string();
    assert!(secret.starts_with("cskey-api-"), "{secret}");
    h.call(POST, "/api/v1/apikey", Some(r#"{"scope":"admin:read"}"#))
        .await;
    assert_eq!(
        h.call(POST, "/api/v1/apikey", Some(r#"{"scope":"root"}"#))
            .await
            .status,
        400
    );

    let r = h.call(GET, "/api/v1/apikey", None).await;
    let keys = r.json()["apiKeys"].clone();
    assert_eq!(
        norm(keys.clone()),
        json!([
            {"id": "1", "prefix": "<secret>", "expiration": null, "createdAt": "<timestamp>",
             "lastSeen": null, "scope": "admin"},
            {"id": "2", "prefix": "<secret>", "expiration": null, "createdAt": "<timestamp>",
             "lastSeen": null, "scope": "admin:read"},
        ])
    );
    let masked = keys[0]["prefix"].as_str().unwrap().to_string();
    assert!(masked.ends_with("-***"));
    assert!(!r.body.windows(20).any(|w| secret.as_bytes()[30..50] == *w));

    for (body, code) in [
        (r#"{"id":"1"}"#.to_string(), 200),
        (format!(r#"{{"prefix":"{masked}"}}"#), 200),
        ("{}".into(), 400),
        (r#"{"id":"1","prefix":"abc"}"#.into(), 400),
        (r#"{"id":"999"}"#.into(), 404),
        (r#"{"id":"x"}"#.into(), 400),
    ] {
        let r = h.call(POST, "/api/v1/apikey/expire", Some(&body)).await;
        assert_eq!(r.status, code, "{body}");
    }
    let listed = h.call(GET, "/api/v1/apikey", None).await.json();
    assert!(listed["apiKeys"][0]["expiration"].is_string());

    let prefix2 = listed["apiKeys"][1]["prefix"].as_str().unwrap().to_string();
    for (path, code) in [
        (format!("/api/v1/apikey/{prefix2}?id=2"), 400),
        ("/api/v1/apikey/doesnotexist".into(), 404),
        ("/api/v1/apikey/abc?id=1".into(), 400),
        ("/api/v1/apikey/abc?id=notanumber".into(), 400),
        (format!("/api/v1/apikey/{prefix2}"), 200),
        ("/api/v1/apikey?id=1".into(), 200),
        ("/api/v1/apikey?id=1".into(), 404),
    ] {
        let r = h.call(DELETE, &path, None).await;
        assert_eq!(r.status, code, "{path}");
    }
    let r = h.call(GET, "/api/v1/apikey", None).await;
    assert_eq!(r.json(), json!({ "apiKeys": [] }));
}

#[tokio::test]
async fn policy_health_and_openapi() {
    let h = H::new().await;
    let r = h.call(GET, "/api/v1/health", None).await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({ "databaseConnectivity": true }))
    );

    // Headscale answers 500 here; no policy is not a server fault.
    assert_eq!(h.call(GET, "/api/v1/policy", None).await.status, 404);
    let valid = r#"{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}"#;
    let body = json!({ "policy": valid }).to_string();
    let r = h.call(PUT, "/api/v1/policy", Some(&body)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.norm(),
        json!({ "policy": valid, "updatedAt": "<timestamp>" })
    );
    let r = h.call(GET, "/api/v1/policy", None).await;
    assert_eq!(
        r.norm(),
        json!({ "policy": valid, "updatedAt": "<timestamp>" })
    );
    let bad = json!({ "policy": "{\"acls\": [" }).to_string();
    assert_eq!(h.call(PUT, "/api/v1/policy", Some(&bad)).await.status, 400);
    let r = h.call(POST, "/api/v1/policy/check", Some(&body)).await;
    assert_eq!((r.status, r.json()), (200, json!({})));
    assert_eq!(
        h.call(POST, "/api/v1/policy/check", Some(&bad))
            .await
            .status,
        400
    );

    // Public, generated, OpenAPI 3.1, naming every operation.
    let r = h.send(GET, "/api/v1/openapi.json", None, &[], false).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/health",
        "/api/v1/apikey",
        "/api/v1/apikey/expire",
        "/api/v1/apikey/{prefix}",
        "/api/v1/auth/register",
        "/api/v1/auth/approve",
        "/api/v1/auth/reject",
        "/api/v1/node",
        "/api/v1/node/{nodeId}",
        "/api/v1/node/{nodeId}/expire",
        "/api/v1/node/{nodeId}/rename/{newName}",
        "/api/v1/node/{nodeId}/tags",
        "/api/v1/node/{nodeId}/approve_routes",
        "/api/v1/node/register",
        "/api/v1/node/backfillips",
        "/api/v1/debug/node",
        "/api/v1/policy",
        "/api/v1/policy/check",
        "/api/v1/preauthkey",
        "/api/v1/preauthkey/expire",
        "/api/v1/user",
        "/api/v1/user/{oldId}/rename/{newName}",
        "/api/v1/user/{id}",
        "/api/v1/audit",
    ] {
        assert!(paths.contains_key(p), "{p} missing from the document");
    }
    assert_eq!(
        doc["paths"]["/api/v1/user"]["get"]["operationId"],
        "listUsers"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["Node"].is_object());
}
