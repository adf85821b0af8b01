//! `GET /oidc/start/{auth_id}` and `GET /oidc/callback`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::Utc;
use openidconnect::core::CoreAuthenticationFlow;
use openidconnect::{
    AccessTokenHash, AuthorizationCode, CsrfToken, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    RedirectUrl, Scope, TokenResponse as _,
};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::claims::{Person, Refusal};
use super::flows::{FLOW_TTL, Flow, Flows};
use super::provider::Provider;
use super::{CALLBACK_PATH, page};
use crate::admin::{Admin, AuthId, Error as AdminError};
use crate::api::problem::status_of;
use crate::auth::ssh_check::{NotVouched, SshChecks};
use crate::config::{self, PkceMethod};
use crate::state::StateHandle;

/// The cookie binding a login to the browser that started it: a callback
/// must come from the same browser, so a login link cannot be finished by
/// whoever it is passed to (login CSRF).
const COOKIE: &str = "clawscale_oidc_state";

pub struct Login {
    cfg: config::Oidc,
    provider: Provider,
    flows: Flows,
    admin: Admin,
    /// Held SSH checks: a login for one of them passes the check instead
    /// of registering a machine.
    checks: SshChecks,
    secure_cookie: bool,
}

impl Login {
    pub fn new(
        cfg: config::Oidc,
        login_url: &str,
        state: &StateHandle,
        admin: Admin,
        checks: SshChecks,
    ) -> anyhow::Result<Login> {
        let redirect = RedirectUrl::new(format!(
            "{}{CALLBACK_PATH}",
            login_url.trim_end_matches('/')
        ))?;
        Ok(Login {
            provider: Provider::new(&cfg, redirect)?,
            cfg,
            flows: Flows::new(state),
            admin,
            checks,
            secure_cookie: login_url.starts_with("https://"),
        })
    }
}

pub fn router(login: Arc<Login>) -> Router {
    Router::new()
        .route("/oidc/start/{auth_id}", get(start))
        .route(CALLBACK_PATH, get(callback))
        .with_state(login)
}

fn refused(status: StatusCode, reason: &str) -> Response {
    tracing::info!(%status, reason, "OIDC login refused");
    page::refused(status, reason)
}

async fn start(State(login): State<Arc<Login>>, Path(auth_id): Path<String>) -> Response {
    let Ok(id) = AuthId::parse(&auth_id) else {
        return refused(StatusCode::BAD_REQUEST, "this login link is malformed");
    };
    // With replicas the machine (or the SSH check) may wait on another
    // one: its request is then read from the database.
    let check = match login.admin.registrations().peek_any(&id).await {
        Ok(Some(registration)) => registration.is_none(),
        Ok(None) => {
            return refused(
                StatusCode::NOT_FOUND,
                "this login link has expired or was already used; run `tailscale up` again",
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not look up a login");
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "this login cannot be looked up now; try again shortly",
            );
        }
    };
    let client = match login.provider.client().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "OIDC provider unavailable");
            return refused(
                StatusCode::BAD_GATEWAY,
                "the identity provider cannot be reached; try again later",
            );
        }
    };
    let mut req = client.authorize_url(
        CoreAuthenticationFlow::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for s in login.cfg.scope.iter().filter(|s| *s != "openid") {
        req = req.add_scope(Scope::new(s.clone()));
    }
    for (k, v) in &login.cfg.extra_params {
        req = req.add_extra_param(k.clone(), v.clone());
    }
    let verifier = match login.cfg.pkce {
        Some(method) => {
            let (challenge, verifier) = match method {
                PkceMethod::S256 => PkceCodeChallenge::new_random_sha256(),
                PkceMethod::Plain => PkceCodeChallenge::new_random_plain(),
            };
            req = req.set_pkce_challenge(challenge);
            Some(verifier)
        }
        None => None,
    };
    let (url, state, nonce) = req.url();
    match login
        .flows
        .insert(state.secret(), Flow::new(id, check, nonce, verifier))
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many logins in progress; try again later",
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not record an OIDC login");
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "the login cannot be started now; try again shortly",
            );
        }
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/oidc; HttpOnly; SameSite=Lax; Max-Age={}{}",
        state.secret(),
        FLOW_TTL.as_secs(),
        if login.secure_cookie { "; Secure" } else { "" }
    );
    let mut r = Redirect::to(url.as_str()).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn cookie_state(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

async fn callback(
    State(login): State<Arc<Login>>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let mut r = finish(&login, &headers, q).await;
    // The state is single-use either way.
    let clear = format!("{COOKIE}=; Path=/oidc; HttpOnly; SameSite=Lax; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn finish(login: &Login, headers: &HeaderMap, q: Callback) -> Response {
    let Some(state) = q.state else {
        return refused(StatusCode::BAD_REQUEST, "the login response has no state");
    };
    let flow = match login.flows.take(&state).await {
        Ok(Some(flow)) => flow,
        Ok(None) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "unknown, expired or already used login state; run `tailscale up` again",
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read an OIDC login");
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "the login cannot be finished now; run `tailscale up` again shortly",
            );
        }
    };
    // A login for a held SSH check is refused with that page (the
    // person is not registering a device).
    let for_check = flow.check;
    let refuse = |status: StatusCode, why: &str| {
        if for_check {
            tracing::info!(%status, reason = why, "OIDC login for an SSH check refused");
            page::check_refused(status, why)
        } else {
            refused(status, why)
        }
    };
    let same_browser =
        cookie_state(headers).is_some_and(|c| bool::from(c.as_bytes().ct_eq(state.as_bytes())));
    if !same_browser {
        return refuse(
            StatusCode::BAD_REQUEST,
            "this login was started in another browser; open the login link again here",
        );
    }
    if let Some(err) = q.error {
        let detail = q.error_description.unwrap_or_default();
        return refuse(
            StatusCode::FORBIDDEN,
            &format!("the identity provider refused the login: {err} {detail}"),
        );
    }
    let Some(code) = q.code else {
        return refuse(StatusCode::BAD_REQUEST, "the login response has no code");
    };
    let person = match verify(login, flow.nonce.clone(), flow.pkce, code).await {
        Ok(p) => p,
        Err(Refusal(why)) => return refuse(StatusCode::FORBIDDEN, &why),
    };
    if let Err(Refusal(why)) = person.check_allowed(&login.cfg) {
        return refuse(StatusCode::FORBIDDEN, &why);
    }
    if for_check {
        return pass_ssh_check(login, &flow.auth_id, &person).await;
    }
    let expiry = if login.cfg.use_expiry_from_token {
        Some(person.token_expiry)
    } else {
        login
            .cfg
            .expiry
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| Utc::now() + d)
    };
    match login
        .admin
        .register_oidc(&flow.auth_id, person.profile, person.preferred_name, expiry)
        .await
    {
        Ok(done) => {
            tracing::info!(
                user = %done.user.name,
                node = %done.node.id,
                created = done.created,
                "OIDC login registered a node"
            );
            page::logged_in(done.user.login_name(), done.node.given_name.as_str())
        }
        Err(e) => {
            // The status every HTTP transport gives this kind of error.
            let status = status_of(&e);
            let why = match &e {
                AdminError::NotFound(_) => {
                    "this login has expired or was already used; run `tailscale up` again"
                        .to_string()
                }
                other => other.public_message(),
            };
            if status.is_server_error() {
                tracing::warn!(error = %e, "OIDC login could not register the node");
            }
            refused(status, &why)
        }
    }
}

/// A login for a held Tailscale SSH check: the person re-authenticated,
/// and passes the check if the SSH login comes from a device of theirs.
/// Their user is only looked up (a check creates or updates nobody).
async fn pass_ssh_check(login: &Login, id: &AuthId, person: &Person) -> Response {
    match login.checks.pass_as(id, &person.profile.identity).await {
        Ok((user, src)) => {
            tracing::info!(user = %user.name, src = %src.id, auth_id = %id,
                "OIDC login passed an SSH check");
            page::check_passed(user.login_name(), src.given_name.as_str())
        }
        Err(NotVouched::Unavailable(e)) => {
            tracing::warn!(error = %e, auth_id = %id, "OIDC login could not pass an SSH check");
            page::check_refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "the SSH login could not be approved now; try again later",
            )
        }
        Err(why) => {
            let status = match why {
                NotVouched::Gone => StatusCode::NOT_FOUND,
                _ => StatusCode::FORBIDDEN,
            };
            tracing::info!(%status, reason = %why, auth_id = %id, "OIDC login did not pass an SSH check");
            page::check_refused(status, &why.to_string())
        }
    }
}

/// Exchanges `code` and verifies the ID token: signature against the
/// provider's JWKS, `iss`, `aud`/`azp`, `exp`, `nonce`, and `at_hash` when
/// present.
async fn verify(
    login: &Login,
    nonce: Nonce,
    pkce: Option<openidconnect::PkceCodeVerifier>,
    code: String,
) -> Result<Person, Refusal> {
    let client =
        login.provider.client().await.map_err(|_| {
            Refusal("the identity provider cannot be reached; try again later".into())
        })?;
    let mut req = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| Refusal(format!("the identity provider has no token endpoint: {e}")))?;
    if let Some(v) = pkce {
        req = req.set_pkce_verifier(v);
    }
    let tokens = req.request_async(&login.provider.http).await.map_err(|e| {
        tracing::info!(error = %e, "OIDC code exchange failed");
        Refusal("the identity provider did not accept the login code".into())
    })?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| Refusal("the identity provider sent no ID token".into()))?;
    let verifier = client.id_token_verifier();
    let claims = id_token.claims(&verifier, &nonce).map_err(|e| {
        tracing::info!(error = %e, "OIDC ID token rejected");
        Refusal(format!("the ID token is not valid: {e}"))
    })?;
    if let Some(expected) = claims.access_token_hash() {
        let alg = id_token
            .signing_alg()
            .map_err(|e| Refusal(format!("the ID token is not valid: {e}")))?;
        let key = id_token
            .signing_key(&verifier)
            .map_err(|e| Refusal(format!("the ID token is not valid: {e}")))?;
        let actual = AccessTokenHash::from_token(tokens.access_token(), alg, key)
            .map_err(|e| Refusal(format!("the ID token is not valid: {e}")))?;
        if actual != *expected {
            return Err(Refusal(
                "the ID token does not belong to its access token".into(),
            ));
        }
    }
    let info = user_info(login, &client, &tokens, claims.subject()).await;
    Ok(Person::from_claims(claims, info.as_ref(), &login.cfg))
}

/// The userinfo answer for the token's subject, when the provider has the
/// endpoint; a failure only means the ID token's claims are used alone.
async fn user_info(
    login: &Login,
    client: &super::provider::Client,
    tokens: &super::provider::TokenResponse,
    subject: &openidconnect::SubjectIdentifier,
) -> Option<super::provider::UserInfoClaims> {
    let req = client
        .user_info(tokens.access_token().clone(), Some(subject.clone()))
        .ok()?;
    match req.request_async(&login.provider.http).await {
        Ok(info) => Some(info),
        Err(e) => {
            tracing::info!(error = %e, "OIDC userinfo request failed; using the ID token's claims");
            None
        }
    }
}
