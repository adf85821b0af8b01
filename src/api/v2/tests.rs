//! Per-endpoint tests of API v2: status codes and JSON shapes against what
//! Tailscale's clients read (`tailscale.com/client/tailscale/v2`, the
//! Terraform provider, the `tailscale` PyPI package). Requests go through
//! the real router with `oneshot`, authenticated with OAuth access tokens
//! from the token endpoint or with API keys.
//!
//! `devices` covers devices and keys; `policy` the ACL and DNS; `security`
//! credentials, scopes, tags, secrets, body limits, floods and the audit.

mod devices;
mod policy;
mod security;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request};
use base64::Engine;
use serde_json::Value;
use tower::ServiceExt;

use crate::admin::testing::{Fixture, fixture, local};
use crate::admin::{NewOAuthClient, NewPreAuthKey, NewUser};
use crate::state::{RegisterInput, RegisterOutcome};
use crate::types::{MachinePublic, NodeId, NodePublic, Scope, ScopeSet};

pub(super) const GET: Method = Method::GET;
pub(super) const POST: Method = Method::POST;
pub(super) const DELETE: Method = Method::DELETE;

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
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Tailscale's error shape: a `message`, nothing else needed.
    #[track_caller]
    pub fn message(&self) -> String {
        let v = self.json();
        v["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {v}"))
            .to_string()
    }
}

pub(super) fn bearer(credential: &str) -> String {
    format!("Bearer {credential}")
}

impl H {
    pub async fn new() -> H {
        let fx = fixture().await;
        let app = super::router(fx.admin.clone());
        H { fx, app }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Body::from(body.unwrap_or("").to_string()))
            .expect("request");
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

    /// A request with `credential` as the bearer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        credential: &str,
        body: Option<&str>,
    ) -> Reply {
        let auth = bearer(credential);
        self.send(method, path, body, &[("authorization", &auth)])
            .await
    }

    /// An OAuth client: (client id, secret).
    pub async fn client(&self, scopes: &str, tags: &[&str]) -> (String, String) {
        let (c, secret) = self
            .fx
            .admin
            .create_oauth_client(
                &local(),
                NewOAuthClient {
                    scopes: ScopeSet::parse([scopes]).expect("scopes"),
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                    description: String::new(),
                },
            )
            .await
            .expect("client");
        (c.client_id, secret)
    }

    /// An access token through the token endpoint (form-encoded, as the
    /// Python client sends it).
    pub async fn token(&self, secret: &str) -> String {
        let body = format!("client_id=ignored&client_secret={secret}");
        let r = self
            .send(
                POST,
                "/api/v2/oauth/token",
                Some(&body),
                &[("content-type", "application/x-www-form-urlencoded")],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["access_token"]
            .as_str()
            .expect("token")
            .to_string()
    }

    /// A token of a fresh client with `scopes` and `tags`.
    pub async fn oauth(&self, scopes: &str, tags: &[&str]) -> String {
        let (_, secret) = self.client(scopes, tags).await;
        self.token(&secret).await
    }

    pub async fn api_key(&self, scope: Scope) -> String {
        self.fx
            .admin
            .create_api_key(&local(), scope, None)
            .await
            .expect("api key")
            .1
    }

    /// A node enrolled with a key of a fresh user (tagged with `tags`).
    pub async fn node(&self, seed: u8, tags: &[&str]) -> NodeId {
        let user = self
            .fx
            .admin
            .create_user(
                &local(),
                NewUser {
                    name: format!("user{seed}"),
                    email: format!("user{seed}@example.com"),
                    ..Default::default()
                },
            )
            .await
            .expect("user");
        let (_, key) = self
            .fx
            .admin
            .create_preauth_key(
                &local(),
                NewPreAuthKey {
                    user: Some(user.id),
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                    ..Default::default()
                },
            )
            .await
            .expect("key");
        let out = self
            .fx
            .state
            .register(RegisterInput {
                machine_key: MachinePublic([seed; 32]),
                node_key: NodePublic([seed.wrapping_add(100); 32]),
                old_node_key: None,
                auth_key: Some(key),
                expiry: None,
                hostinfo: serde_json::json!({
                    "Hostname": format!("host{seed}"),
                    "OS": "linux",
                    "IPNVersion": "1.96.4",
                    "RoutableIPs": ["10.1.0.0/24"],
                    "NetInfo": { "WorkingUDP": true, "MappingVariesByDestIP": false },
                }),
                ephemeral: false,
                version: 100,
            })
            .await
            .expect("register");
        match out {
            RegisterOutcome::Authorized { node, .. } => node.id,
            other => panic!("not registered: {other:?}"),
        }
    }
}

fn basic(user: &str, password: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b}")
}

#[tokio::test]
async fn the_token_endpoint_speaks_rfc_6749() {
    let h = H::new().await;
    let (id, secret) = h.client("auth_keys devices:core", &["tag:k8s"]).await;
    let form = [("content-type", "application/x-www-form-urlencoded")];

    let body = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let r = h
        .send(POST, "/api/v2/oauth/token", Some(&body), &form)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(v["scope"], "auth_keys devices:core");
    assert!(v["access_token"].as_str().unwrap().starts_with("cstoken-"));
    assert_eq!(r.headers["cache-control"], "no-store");

    // HTTP Basic client authentication (what Go's oauth2 tries first), with
    // a narrowed scope.
    let auth = basic(&id, &secret);
    let r = h
        .send(
            POST,
            "/api/v2/oauth/token",
            Some("grant_type=client_credentials&scope=auth_keys"),
            &[("authorization", &auth), form[0]],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["scope"], "auth_keys");

    let cases: [(String, u16, &str); 6] = [
        (
            format!("client_secret=tskey-client-{id}-{}", "0".repeat(64)),
            401,
            "invalid_client",
        ),
        ("client_id=x".into(), 400, "invalid_request"),
        (
            format!("grant_type=password&client_secret={secret}"),
            400,
            "unsupported_grant_type",
        ),
        (
            format!("client_secret={secret}&scope=dns"),
            400,
            "invalid_scope",
        ),
        (
            format!("client_secret={secret}&scope=nonsense"),
            400,
            "invalid_scope",
        ),
        (
            format!("client_secret={secret}&tags=tag:k8s"),
            400,
            "invalid_request",
        ),
    ];
    for (body, status, error) in cases {
        let r = h
            .send(POST, "/api/v2/oauth/token", Some(&body), &form)
            .await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
        let v = r.json();
        assert_eq!(v["error"], error, "{body}");
        assert!(!v["message"].as_str().unwrap().is_empty(), "{v}");
        assert!(!r.text().contains(&secret[30..]), "no secret echoed");
    }
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let h = H::new().await;
    let r = h.send(GET, "/api/v2/openapi.json", None, &[]).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/api/v2/oauth/token",
        "/api/v2/tailnet/{tailnet}/keys",
        "/api/v2/tailnet/{tailnet}/keys/{keyId}",
        "/api/v2/tailnet/{tailnet}/devices",
        "/api/v2/device/{deviceId}",
        "/api/v2/device/{deviceId}/tags",
        "/api/v2/device/{deviceId}/routes",
        "/api/v2/device/{deviceId}/authorized",
        "/api/v2/device/{deviceId}/expire",
        "/api/v2/tailnet/{tailnet}/acl",
        "/api/v2/tailnet/{tailnet}/acl/validate",
        "/api/v2/tailnet/{tailnet}/dns/nameservers",
        "/api/v2/tailnet/{tailnet}/dns/searchpaths",
        "/api/v2/tailnet/{tailnet}/dns/preferences",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    assert_eq!(paths.len(), 14);
    let key = &doc["components"]["schemas"]["Key"]["properties"];
    for f in ["id", "keyType", "expirySeconds", "capabilities", "invalid"] {
        assert!(key.get(f).is_some(), "Key.{f} missing: {key}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}
