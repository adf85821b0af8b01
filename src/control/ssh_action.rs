//! `GET /machine/ssh/action/{src}/to/{dst}?local_user=…[&auth_id=…]`: the
//! URL an SSH `check` rule delegates to, fetched by the destination node's
//! tailscaled over its Noise channel (`auth::ssh_check` has the flow).
//!
//! The tunnel's machine key must be the destination node's: only the node
//! that holds the login may ask about it (Headscale had to add this check,
//! or any machine could open checks for any pair of nodes).

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};

use super::{ControlState, Peer};
use crate::auth::ssh_check::Request;
use crate::http::error::ApiError;
use crate::tailcfg::SshAction;
use crate::types::NodeId;

/// Unknown parameters are ignored: tailscaled fills in what the URL
/// template asks for, and later templates may ask for more.
#[derive(serde::Deserialize)]
pub(super) struct ActionQuery {
    #[serde(default)]
    local_user: String,
    auth_id: Option<String>,
}

pub(super) async fn handler(
    State(cs): State<ControlState>,
    Extension(peer): Extension<Peer>,
    Path((src, dst)): Path<(i64, i64)>,
    Query(q): Query<ActionQuery>,
) -> Result<Response, ApiError> {
    let Some(checks) = &cs.ssh_checks else {
        // Without the service (in-process tests), refuse the login rather
        // than leave tailscaled retrying for half an hour.
        let action = SshAction {
            reject: true,
            message: "# clawscale: SSH check is not available on this server\n".into(),
            ..Default::default()
        };
        return Ok(axum::Json(action).into_response());
    };
    let req = Request {
        src: NodeId(src),
        dst: NodeId(dst),
        local_user: q.local_user,
        auth_id: q.auth_id,
    };
    match checks.action(peer.machine_key, req).await {
        Ok(action) => Ok(axum::Json(action).into_response()),
        Err(refusal) => {
            tracing::warn!(machine = ?peer.machine_key, src, dst, %refusal, "SSH action refused");
            Err(refusal.into())
        }
    }
}
