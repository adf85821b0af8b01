//! `GET /register/{auth_id}`: the page a client's auth URL opens. Plain
//! HTML without scripts. Without another login method it shows the command
//! an operator runs to finish the login; an unknown or expired id gets a
//! 404 page. With replicas, a request whose client waits on another
//! replica is found in the database (503 when it cannot be read).
//! Everything interpolated is escaped.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use super::AuthFlows;
use super::html::{escape, page as html};
use crate::admin::AuthId;

pub fn router(flows: AuthFlows) -> Router {
    Router::new()
        .route("/register/{auth_id}", get(page))
        .with_state(flows)
}

async fn page(State(flows): State<AuthFlows>, Path(text): Path<String>) -> Response {
    let regs = flows.registrations();
    let pending = match AuthId::parse(&text) {
        // With replicas, a request whose client waits on another one is
        // shown (and may be decided) here too.
        Ok(id) => match regs.peek_any(&id).await {
            Ok(found) => found.map(|r| (id, r)),
            Err(e) => {
                tracing::warn!(error = %e, "could not look up a login");
                return html(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Login link not available",
                    "<p>This server cannot look up the login right now. Try again shortly.</p>",
                );
            }
        },
        Err(_) => None,
    };
    let Some((id, registration)) = pending else {
        return html(
            StatusCode::NOT_FOUND,
            "Login link unknown or expired",
            "<p>This login link is unknown, was already used, or has expired.</p>\
             <p>Run <code>tailscale up</code> again for a new one.</p>",
        );
    };
    if let Some(provider) = &flows.provider {
        return provider.start(&id);
    }
    let Some(registration) = registration else {
        // A request that needs only a verdict: a Tailscale SSH `check`.
        let body = format!(
            "<p>An SSH login through this tailnet is waiting for an administrator's \
             approval. Ask one to run:</p>\n<pre>clawscale auth approve --auth-id {}</pre>\n\
             <p>The login proceeds as soon as that is done; this link works once and \
             expires.</p>",
            escape(id.as_str())
        );
        return html(StatusCode::OK, "SSH login check", &body);
    };
    let machine = registration
        .hostinfo
        .get("Hostname")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let machine = if machine.is_empty() {
        String::new()
    } else {
        format!("<p>Machine: <b>{}</b></p>", escape(machine))
    };
    let body = format!(
        "<p>This machine is waiting for an administrator of this tailnet to approve its \
         login. Ask one to run:</p>\n<pre>clawscale auth register --auth-id {} --user USERNAME\
         </pre>\n{machine}<p>The machine connects as soon as that is done; this link works \
         once and expires.</p>",
        escape(id.as_str())
    );
    html(StatusCode::OK, "Machine login", &body)
}
