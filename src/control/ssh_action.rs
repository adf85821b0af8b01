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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request as HttpRequest, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::super::{ControlState, Peer, tunnel_router};
    use crate::admin::registrations::TTL;
    use crate::auth::ssh_check::tests::net;
    use crate::http::metrics::Metrics;
    use crate::types::MachinePublic;

    /// GET `uri` inside the tunnel of `machine`: (status, body).
    async fn get(cs: &ControlState, machine: MachinePublic, uri: &str) -> (StatusCode, String) {
        let peer = Peer {
            machine_key: machine,
            version: 130,
        };
        let app = tunnel_router(cs.clone()).layer(axum::Extension(peer));
        let req = HttpRequest::get(uri).body(Body::empty()).unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_route_answers_the_destination_and_refuses_others() {
        let n = net(TTL).await;
        let key = x25519_dalek::StaticSecret::from([7u8; 32]);
        let mut cs = ControlState::new(n.fx.state.clone(), key, Metrics::new());
        cs.ssh_checks = Some(n.checks.clone());
        let (a1, a2, b1) = (n.a1.id, n.a2.id, n.b1.id);
        let uri = format!("/machine/ssh/action/{a1}/to/{a2}?local_user=root");

        let (status, _) = get(&cs, n.a1.machine_key, &uri).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "only the destination asks");
        let (status, body) = get(&cs, n.a2.machine_key, &uri).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let action: serde_json::Value = serde_json::from_str(&body).unwrap();
        let follow = action["holdAndDelegate"].as_str().unwrap();
        assert!(follow.contains("&auth_id=cskey-authreq-"), "{follow}");
        assert!(action["message"].as_str().unwrap().contains("/register/"));
        // The follow-up presented for bob's laptop, which no rule covers:
        // a reject (not a retry-forever error).
        let path = follow.split_once("/machine/").unwrap().1;
        let bobs = path.replacen(
            &format!("ssh/action/{a1}/"),
            &format!("ssh/action/{b1}/"),
            1,
        );
        let (status, body) = get(&cs, n.a2.machine_key, &format!("/machine/{bobs}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("\"reject\":true"), "{body}");
        let (status, _) = get(&cs, n.a2.machine_key, "/machine/ssh/action/x/to/2").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
