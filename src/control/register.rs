//! `POST /machine/register` (control.md §3).
//!
//! A registration without a key that `state` cannot authorize starts an
//! interactive login (`auth`): the answer carries `AuthURL`, the client
//! shows it and sends the same request again with `Followup` set to it,
//! which is held open until an operator decides, so the client logs in the
//! moment that happens (`control/controlclient/direct.go` `doLogin` and
//! `auto.go` `authRoutine` in 1.78 and 1.96 alike).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::{ControlState, Peer};
use crate::auth::FollowupOutcome;
use crate::http::error::ApiError;
use crate::mapper::build::TAGGED_DEVICES_USER_ID;
use crate::state::{RegisterInput, RegisterOutcome};
use crate::tailcfg::{
    self, CAPVER_DERP_CERT_PIN, MIN_CAPABILITY_VERSION, RegisterRequest, RegisterResponse,
};

pub(super) async fn handler(
    State(cs): State<ControlState>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: RegisterRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid register request: {e}")))?;
    if req.version < MIN_CAPABILITY_VERSION {
        return Err(ApiError::bad_request(format!(
            "client capability version {} is too old; clawscale needs {} (tailscale 1.78) or newer",
            req.version, MIN_CAPABILITY_VERSION
        )));
    }
    let node_key = req
        .node_key()
        .map_err(|e| ApiError::bad_request(format!("NodeKey: {e}")))?;
    if node_key.is_zero() {
        return Err(ApiError::bad_request("NodeKey must not be zero"));
    }
    let old_node_key = req
        .old_node_key()
        .map_err(|e| ApiError::bad_request(format!("OldNodeKey: {e}")))?;
    let input = RegisterInput {
        machine_key: peer.machine_key,
        node_key,
        old_node_key,
        auth_key: req.auth_key().map(str::to_string),
        expiry: req.expiry(),
        hostinfo: req
            .hostinfo
            .clone()
            .unwrap_or_else(|| serde_json::json!({})),
        ephemeral: req.ephemeral,
        version: req.version,
    };
    let followup = req.followup.as_deref().unwrap_or("");
    let outcome = match (&cs.auth, followup) {
        (Some(flows), f) if !f.is_empty() => match flows.follow(f, peer.machine_key).await {
            FollowupOutcome::Registered(node) => {
                let world = cs.state.world();
                let user = world.user(node.user_id).cloned().ok_or_else(|| {
                    ApiError::from(crate::state::Error::Internal("node owner vanished".into()))
                })?;
                // The newest copy: the operator's decision may not be the
                // last word (an approval right after, say).
                let node = world.node(node.id).cloned().unwrap_or(node);
                RegisterOutcome::Authorized { node, user }
            }
            FollowupOutcome::Failed(msg) => RegisterOutcome::Refused(msg),
        },
        _ => cs.state.register(input.clone()).await?,
    };
    let resp = match outcome {
        RegisterOutcome::NeedsLogin(why) => match &cs.auth {
            Some(flows) => match flows.begin(input).await {
                Ok(url) => {
                    cs.metrics.registration("auth_url");
                    tracing::info!(machine = ?peer.machine_key, %url, "interactive login started");
                    RegisterResponse {
                        auth_url: url,
                        ..Default::default()
                    }
                }
                Err(e) => RegisterResponse {
                    error: e.to_string(),
                    ..Default::default()
                },
            },
            None => {
                cs.metrics.registration("refused");
                RegisterResponse {
                    error: why,
                    ..Default::default()
                }
            }
        },
        RegisterOutcome::Authorized { node, user } => {
            cs.metrics.registration("authorized");
            if req.version < CAPVER_DERP_CERT_PIN && cs.self_signed_relay {
                // It gets the DERP map without pins (mapper), so it checks
                // the relay's certificate against its own trust store,
                // which a self-signed certificate does not pass.
                tracing::warn!(
                    node = %node.id,
                    capver = req.version,
                    "a client older than tailscale 1.82 registered, but the DERP relay only has \
                     a self-signed certificate, which such clients cannot verify: it cannot relay \
                     (behind NAT it has no path to its peers). Set tls_cert_path/tls_key_path to \
                     a certificate for server_url's host that the clients trust"
                );
            }
            let (id, login, display) = if node.is_tagged() {
                (
                    TAGGED_DEVICES_USER_ID,
                    "tagged-devices".to_string(),
                    "Tagged Devices".to_string(),
                )
            } else {
                (
                    user.id.0,
                    user.login_name().to_string(),
                    user.display().to_string(),
                )
            };
            RegisterResponse {
                user: tailcfg::User {
                    id,
                    display_name: display.clone(),
                },
                login: tailcfg::Login {
                    id,
                    provider: "clawscale".into(),
                    login_name: login,
                    display_name: display,
                },
                machine_authorized: node.authorized,
                ..Default::default()
            }
        }
        RegisterOutcome::LoggedOut => {
            cs.metrics.registration("logged_out");
            RegisterResponse::default()
        }
        RegisterOutcome::Refused(msg) => {
            cs.metrics.registration("refused");
            tracing::info!(machine = ?peer.machine_key, reason = %msg, "registration refused");
            RegisterResponse {
                error: msg,
                ..Default::default()
            }
        }
    };
    Ok(axum::Json(resp).into_response())
}
