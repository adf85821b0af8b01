//! The OIDC routes against a small provider made here, for the attacks a
//! real provider will not produce: ID tokens signed by another key, for
//! another audience or issuer, expired, or with another nonce. The same
//! harness also covers the state and cookie checks, the allow-lists and the
//! identity rules (issuer + subject; no takeover by e-mail). Each refusal
//! must leave no node and the pending registration in place. The
//! end-to-end flow with a real provider (`oidc-provider`) and real clients
//! is in `integration/oidc.rs`. Logins that pass a Tailscale SSH check
//! are in `tests/ssh_check.rs`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, Utc};
use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use openidconnect::{
    Audience, EndUserEmail, EndUserUsername, IssuerUrl, JsonWebKeyId, Nonce, PrivateSigningKey,
    StandardClaims, SubjectIdentifier,
};
use tower::ServiceExt;

use super::provider::{ExtraClaims, IdToken, IdTokenClaims};
use crate::admin::AuthId;
use crate::admin::testing::{Fixture, fixture};
use crate::auth::ssh_check::SshChecks;
use crate::state::RegisterInput;
use crate::types::{MachinePublic, NodePublic};

const IDP_KEY: &str = include_str!("testdata/idp.pem");
const OTHER_KEY: &str = include_str!("testdata/other.pem");
const CLIENT_ID: &str = "clawscale-test";

fn key(pem: &str) -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new("k1".into()))).unwrap()
}

/// A provider with discovery, a JWKS (the `idp.pem` key) and a token
/// endpoint answering with whatever ID token the test set.
struct TestIdp {
    issuer: String,
    id_token: Arc<Mutex<String>>,
}

impl TestIdp {
    async fn start() -> TestIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let id_token = Arc::new(Mutex::new(String::new()));
        let discovery = serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let jwks = serde_json::to_value(CoreJsonWebKeySet::new(vec![
            key(IDP_KEY).as_verification_key(),
        ]))
        .unwrap();
        let tok = id_token.clone();
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { axum::Json(discovery) }),
            )
            .route("/jwks", get(move || async move { axum::Json(jwks) }))
            .route(
                "/token",
                post(move || async move {
                    let t = tok.lock().unwrap().clone();
                    axum::Json(serde_json::json!({
                        "access_token": "opaque-access-token",
                        "token_type": "Bearer",
                        "expires_in": 300,
                        "id_token": t,
                    }))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestIdp { issuer, id_token }
    }

    fn answer_with(&self, token: String) {
        *self.id_token.lock().unwrap() = token;
    }
}

/// What goes into an ID token; each attack changes one field.
#[derive(Clone)]
struct Token {
    issuer: String,
    audience: String,
    subject: String,
    email: String,
    groups: Vec<&'static str>,
    nonce: Option<String>,
    expires: DateTime<Utc>,
    signer: &'static str,
}

impl Token {
    fn sign(&self) -> String {
        let mut extra = BTreeMap::new();
        extra.insert("groups".to_string(), serde_json::json!(self.groups));
        let std = StandardClaims::new(SubjectIdentifier::new(self.subject.clone()))
            .set_email(Some(EndUserEmail::new(self.email.clone())))
            .set_email_verified(Some(true))
            .set_preferred_username(Some(EndUserUsername::new(
                self.email.split('@').next().unwrap().to_string(),
            )));
        let claims = IdTokenClaims::new(
            IssuerUrl::new(self.issuer.clone()).unwrap(),
            vec![Audience::new(self.audience.clone())],
            self.expires,
            Utc::now() - Duration::seconds(5),
            std,
            ExtraClaims { claims: extra },
        )
        .set_nonce(self.nonce.clone().map(Nonce::new));
        IdToken::new(
            claims,
            &key(self.signer),
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            None,
            None,
        )
        .unwrap()
        .to_string()
    }
}

struct Setup {
    fx: Fixture,
    idp: TestIdp,
    app: Router,
    checks: SshChecks,
}

struct Started {
    id: AuthId,
    state: String,
    nonce: String,
    cookie: String,
}

fn input(seed: u8) -> RegisterInput {
    RegisterInput {
        machine_key: MachinePublic([seed; 32]),
        node_key: NodePublic([seed.wrapping_add(100); 32]),
        old_node_key: None,
        auth_key: None,
        expiry: None,
        hostinfo: serde_json::json!({"Hostname": format!("laptop-{seed}")}),
        ephemeral: false,
        version: 100,
    }
}

/// The OIDC settings for a login at `idp`, with PKCE, plus `extra_yaml`.
fn config(idp: &TestIdp, extra_yaml: &str) -> crate::config::Oidc {
    let yaml = format!(
        "oidc:\n  issuer: {}\n  client_id: {CLIENT_ID}\n  client_secret: s3cret\n  \
         pkce: {{enabled: true}}\n{extra_yaml}",
        idp.issuer
    );
    crate::config::Config::from_yaml(&yaml, &Default::default())
        .unwrap()
        .oidc
        .unwrap()
}

async fn setup(extra_yaml: &str) -> Setup {
    let fx = fixture().await;
    let idp = TestIdp::start().await;
    let cfg = config(&idp, extra_yaml);
    let checks = SshChecks::new(fx.state.clone(), fx.admin.clone());
    let app = super::router(
        cfg,
        "http://127.0.0.1:9",
        &fx.state,
        fx.admin.clone(),
        checks.clone(),
    )
    .unwrap();
    Setup {
        fx,
        idp,
        app,
        checks,
    }
}

/// Starts a login at `app` for the pending request `id` in a fresh
/// browser.
async fn begin(app: &Router, idp: &TestIdp, id: AuthId) -> Started {
    let r = app
        .clone()
        .oneshot(
            Request::get(format!("/oidc/start/{id}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let location = r.headers()[header::LOCATION].to_str().unwrap();
    let url = url::Url::parse(location).unwrap();
    assert!(location.starts_with(&format!("{}/auth?", idp.issuer)));
    let q: BTreeMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], "http://127.0.0.1:9/oidc/callback");
    let cookie = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    Started {
        id,
        state: q["state"].clone(),
        nonce: q["nonce"].clone(),
        cookie,
    }
}

async fn callback(app: &Router, state: &str, cookie: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::get(format!("/oidc/callback?code=c0de&state={state}"));
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    let r = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = r.status();
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

impl Setup {
    fn good_token(&self, s: &Started) -> Token {
        Token {
            issuer: self.idp.issuer.clone(),
            audience: CLIENT_ID.into(),
            subject: "sub-alice".into(),
            email: "alice@example.com".into(),
            groups: vec!["mcp-admins"],
            nonce: Some(s.nonce.clone()),
            expires: Utc::now() + Duration::minutes(5),
            signer: IDP_KEY,
        }
    }

    /// A pending registration for machine `seed`, and a login started for it.
    async fn start(&self, seed: u8) -> Started {
        let id = AuthId::generate();
        let rx = self
            .fx
            .admin
            .registrations()
            .insert(id.clone(), Some(input(seed)))
            .unwrap();
        // The client waits on its registration for the test's duration.
        std::mem::forget(rx);
        self.begin(id).await
    }

    /// Starts a login for the pending request `id` in a fresh browser.
    async fn begin(&self, id: AuthId) -> Started {
        begin(&self.app, &self.idp, id).await
    }

    async fn callback(&self, state: &str, cookie: Option<&str>) -> (StatusCode, String) {
        callback(&self.app, state, cookie).await
    }

    /// Logs in with `token`; returns the callback's answer.
    async fn login(&self, s: &Started, token: &Token) -> (StatusCode, String) {
        self.idp.answer_with(token.sign());
        self.callback(&s.state, Some(&s.cookie)).await
    }

    fn nodes(&self) -> usize {
        self.fx.state.world().nodes.len()
    }

    #[track_caller]
    fn assert_refused(&self, s: &Started, (status, body): &(StatusCode, String), why: &str) {
        assert!(
            status.is_client_error(),
            "{why}: expected a refusal, got {status}: {body}"
        );
        assert!(body.contains("Login failed"), "{why}: {body}");
        assert_eq!(self.nodes(), 0, "{why}: a node was registered");
        assert!(
            self.fx.admin.registrations().contains(&s.id),
            "{why}: the pending registration must survive a refused login"
        );
    }
}

#[tokio::test]
async fn a_valid_login_registers_the_machine_for_the_person() {
    let t = setup("").await;
    let s = t.start(1).await;
    let (status, body) = t.login(&s, &t.good_token(&s)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("alice@example.com"), "{body}");
    let w = t.fx.state.world();
    assert_eq!(w.nodes.len(), 1);
    let user = w.user_by_name("alice").expect("user created");
    assert_eq!(user.email, "alice@example.com");
    assert_eq!(user.groups, ["mcp-admins"]);
    let ident = user.oidc.as_ref().expect("oidc identity");
    assert_eq!(ident.subject, "sub-alice");
    assert_eq!(ident.issuer, t.idp.issuer);
    assert!(!t.fx.admin.registrations().contains(&s.id), "single use");
    let audit = t.fx.wait_audit(1).await;
    assert!(
        audit.iter().any(|e| e.action == "node.register_oidc"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn forged_tokens_are_refused_and_register_nothing() {
    let t = setup("").await;
    type Attack = (&'static str, fn(&mut Token), &'static str);
    let attacks: [Attack; 5] = [
        (
            "signed by another key",
            |k| k.signer = OTHER_KEY,
            "signature",
        ),
        (
            "for another audience",
            |k| k.audience = "someone-else".into(),
            "audience",
        ),
        (
            "from another issuer",
            |k| k.issuer = "https://evil.example.com".into(),
            "issuer",
        ),
        (
            "expired",
            |k| k.expires = Utc::now() - Duration::minutes(5),
            "expired",
        ),
        (
            "with another nonce",
            |k| k.nonce = Some("replayed-nonce".into()),
            "nonce",
        ),
    ];
    for (seed, (what, spoil, expect)) in attacks.into_iter().enumerate() {
        let s = t.start(seed as u8 + 1).await;
        let mut token = t.good_token(&s);
        spoil(&mut token);
        let answer = t.login(&s, &token).await;
        t.assert_refused(&s, &answer, what);
        assert!(
            answer.1.to_lowercase().contains(expect),
            "{what}: page should say why ({expect}): {}",
            answer.1
        );
    }
}

#[tokio::test]
async fn state_must_be_known_unused_and_from_the_same_browser() {
    let t = setup("").await;
    let s = t.start(1).await;
    t.idp.answer_with(t.good_token(&s).sign());

    let forged = t.callback("forged-state", Some(&s.cookie)).await;
    t.assert_refused(&s, &forged, "forged state");

    // The right state from a browser without the login's cookie (a login
    // link passed to someone else) is refused, and burns the state.
    let other_browser = t.callback(&s.state, None).await;
    t.assert_refused(&s, &other_browser, "state without its cookie");
    let replayed = t.callback(&s.state, Some(&s.cookie)).await;
    t.assert_refused(&s, &replayed, "replayed state");

    // A fresh login works, once.
    let s2 = t.start(2).await;
    let ok = t.login(&s2, &t.good_token(&s2)).await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
    let again = t.callback(&s2.state, Some(&s2.cookie)).await;
    assert_eq!(again.0, StatusCode::BAD_REQUEST, "{}", again.1);
    assert_eq!(t.nodes(), 1, "the replay must not register another node");
}

#[tokio::test]
async fn disallowed_domain_user_or_group_is_refused() {
    let t = setup("  allowed_domains: [example.org]\n").await;
    let s = t.start(1).await;
    let answer = t.login(&s, &t.good_token(&s)).await;
    t.assert_refused(&s, &answer, "disallowed domain");
    assert!(answer.1.contains("not allowed"), "{}", answer.1);

    let t = setup("  allowed_groups: [ops]\n").await;
    let s = t.start(1).await;
    let answer = t.login(&s, &t.good_token(&s)).await;
    t.assert_refused(&s, &answer, "disallowed group");
}

#[tokio::test]
async fn identity_is_issuer_and_subject_never_the_email() {
    let t = setup("").await;
    let s = t.start(1).await;
    assert_eq!(t.login(&s, &t.good_token(&s)).await.0, StatusCode::OK);
    let first = t.fx.state.world().user_by_name("alice").unwrap().clone();

    // Another subject claiming alice's address is refused: it must not
    // become alice, nor a second user holding her login.
    let s = t.start(2).await;
    let mut mallory = t.good_token(&s);
    mallory.subject = "sub-mallory".into();
    let answer = t.login(&s, &mallory).await;
    assert_eq!(answer.0, StatusCode::CONFLICT, "{}", answer.1);
    assert!(answer.1.contains("another user"), "{}", answer.1);
    let w = t.fx.state.world();
    assert_eq!(w.users.len(), 1);
    assert_eq!(w.nodes.len(), 1, "no node for the impostor");
    assert_eq!(*w.user_by_name("alice").unwrap(), first);
    assert!(t.fx.admin.registrations().contains(&s.id));

    // The same subject with a new address and groups updates alice.
    let s = t.start(3).await;
    let mut moved = t.good_token(&s);
    moved.email = "alice@example.org".into();
    moved.groups = vec![];
    assert_eq!(t.login(&s, &moved).await.0, StatusCode::OK);
    let w = t.fx.state.world();
    assert_eq!(w.users.len(), 1, "a changed e-mail must not create a user");
    let alice = w.user_by_name("alice").unwrap();
    assert_eq!(
        (alice.id, alice.email.as_str()),
        (first.id, "alice@example.org")
    );
    assert!(alice.groups.is_empty());
    assert_eq!(w.nodes.len(), 2);
    assert!(w.nodes.values().all(|n| n.user_id == first.id));
}

#[tokio::test]
async fn node_expiry_follows_config_or_token() {
    let t = setup("  expiry: 1h\n").await;
    let s = t.start(1).await;
    assert_eq!(t.login(&s, &t.good_token(&s)).await.0, StatusCode::OK);
    let w = t.fx.state.world();
    let exp = w.nodes.values().next().unwrap().expiry.expect("expiry");
    let left = exp - Utc::now();
    assert!(
        left > Duration::minutes(59) && left <= Duration::hours(1),
        "{left}"
    );

    let t = setup("  use_expiry_from_token: true\n").await;
    let s = t.start(1).await;
    let token = t.good_token(&s);
    assert_eq!(t.login(&s, &token).await.0, StatusCode::OK);
    let w = t.fx.state.world();
    let exp = w.nodes.values().next().unwrap().expiry.expect("expiry");
    assert_eq!(exp.timestamp(), token.expires.timestamp());
}

#[tokio::test]
async fn unknown_or_used_auth_ids_do_not_start_a_login() {
    let t = setup("").await;
    let r = t
        .app
        .clone()
        .oneshot(
            Request::get(format!("/oidc/start/{}", AuthId::generate()))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_login_for_a_request_that_registers_nothing_and_no_check_holds_is_refused() {
    let t = setup("").await;
    // Pending, but with nothing to register (and no SSH check holds it):
    // the login is for a check, which is not there to pass.
    let id = AuthId::generate();
    let regs = t.fx.admin.registrations();
    regs.insert_unwatched(id.clone(), None).unwrap();
    let s = t.begin(id.clone()).await;
    let (status, body) = t.login(&s, &t.good_token(&s)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("SSH login not approved"), "{body}");
    assert!(
        body.contains("unknown, already decided or expired"),
        "{body}"
    );
    assert_eq!(t.nodes(), 0);
    assert!(regs.contains(&id), "nothing was decided");
}

mod replicas;
mod ssh_check;
