//! `/api/v1/auth/*`: deciding pending interactive registrations.

use axum::Json;
use axum::extract::State;

use super::extract::{Authed, Body};
use super::model::{AuthDecisionRequest, AuthRegisterRequest, Empty, Node, NodeResponse, NodeView};
use crate::admin::{Admin, AuthId};
use crate::api::problem::Problem;

type Reply<T> = Result<Json<T>, Problem>;

fn auth_id(text: Option<&str>) -> Result<AuthId, Problem> {
    AuthId::parse(text.unwrap_or_default()).map_err(Problem::bad_request)
}

/// Registers the machine waiting under `authId` for the user `user`.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "Auth", operation_id = "authRegister",
    request_body = AuthRegisterRequest,
    responses((status = 200, body = NodeResponse), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn register(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Body(r): Body<AuthRegisterRequest>,
) -> Reply<NodeResponse> {
    let id = auth_id(r.auth_id.as_deref())?;
    let i = admin
        .register_pending(&c, &id, r.user.as_deref().unwrap_or_default())
        .await?;
    Ok(Json(NodeResponse {
        node: Node::new(&i, NodeView::Single),
    }))
}

#[utoipa::path(post, path = "/api/v1/auth/approve", tag = "Auth", operation_id = "authApprove",
    request_body = AuthDecisionRequest,
    responses((status = 200, body = Empty), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn approve(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Body(r): Body<AuthDecisionRequest>,
) -> Reply<Empty> {
    admin
        .approve_auth(&c, &auth_id(r.auth_id.as_deref())?)
        .await?;
    Ok(Json(Empty {}))
}

#[utoipa::path(post, path = "/api/v1/auth/reject", tag = "Auth", operation_id = "authReject",
    request_body = AuthDecisionRequest,
    responses((status = 200, body = Empty), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn reject(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Body(r): Body<AuthDecisionRequest>,
) -> Reply<Empty> {
    admin
        .reject_auth(&c, &auth_id(r.auth_id.as_deref())?)
        .await?;
    Ok(Json(Empty {}))
}
