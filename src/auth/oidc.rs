//! OpenID Connect login: the authorization code flow with PKCE, `state`
//! and `nonce`, the ID token verified by `openidconnect` against the
//! issuer's discovery document and JWKS.
//!
//! Routes (on the public listener, when `oidc.issuer` is set):
//! - `GET /oidc/start/{auth_id}`: for a pending registration, redirects the
//!   browser to the identity provider and binds the login to this browser
//!   with a cookie holding the `state`;
//! - `GET /oidc/callback`: the provider sends the browser back here with a
//!   code; the code is exchanged, the ID token verified, the allow-lists
//!   applied, and `Admin::register_oidc` enrols the waiting machine for the
//!   person (their user found by issuer and subject, never by e-mail). When
//!   the pending request is a held Tailscale SSH check instead, the person's
//!   existing user (same rule; none is created) passes it if the SSH login
//!   comes from an untagged device of theirs (`SshChecks::pass_as`).
//!
//! Every refusal is an HTML page saying why, and registers nothing.

mod claims;
mod flows;
mod page;
mod provider;
mod routes;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;

use crate::admin::{Admin, AuthId};
use crate::auth::ssh_check::SshChecks;
use crate::config;
use crate::state::StateHandle;

pub use claims::{Person, Refusal};

/// Where a browser starts the OIDC login for the pending registration `id`
/// (the interactive registration page links or redirects here).
pub fn start_path(id: &AuthId) -> String {
    format!("/oidc/start/{id}")
}

/// The OIDC login as the interactive registration page's provider: a visit
/// of a login URL goes straight to [`start_path`].
pub struct StartPage;

impl crate::auth::LoginProvider for StartPage {
    fn start(&self, id: &AuthId) -> axum::response::Response {
        use axum::response::IntoResponse;
        axum::response::Redirect::to(&start_path(id)).into_response()
    }
}

/// The callback path registered at the identity provider, under `login_url`
/// (else `server_url`).
pub const CALLBACK_PATH: &str = "/oidc/callback";

/// The OIDC routes for `cfg`, completing registrations through `admin`
/// and passing the SSH checks `checks` holds; logins in progress are
/// shared through `state` when it has replicas.
pub fn router(
    cfg: config::Oidc,
    login_url: &str,
    state: &StateHandle,
    admin: Admin,
    checks: SshChecks,
) -> anyhow::Result<Router> {
    let login = routes::Login::new(cfg, login_url, state, admin, checks)?;
    Ok(routes::router(Arc::new(login)))
}
