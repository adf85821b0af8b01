//! `/api/v1/policy`: read, replace, check.

use axum::Json;
use axum::extract::State;

use super::extract::{Authed, Body};
use super::model::{Empty, PolicyRequest, PolicyResponse};
use crate::admin::Admin;
use crate::api::problem::Problem;

type Reply<T> = Result<Json<T>, Problem>;

/// The policy in force, as written; 404 when none is set.
#[utoipa::path(get, path = "/api/v1/policy", tag = "Policy", operation_id = "getPolicy",
    responses((status = 200, body = PolicyResponse), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(State(admin): State<Admin>, Authed(c): Authed) -> Reply<PolicyResponse> {
    Ok(Json(PolicyResponse::from(&admin.get_policy(&c)?)))
}

/// Replaces the policy (`policy.mode: database` only); refused unless it
/// parses, validates and passes its own tests.
#[utoipa::path(put, path = "/api/v1/policy", tag = "Policy", operation_id = "setPolicy",
    request_body = PolicyRequest,
    responses((status = 200, body = PolicyResponse), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn set(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Body(r): Body<PolicyRequest>,
) -> Reply<PolicyResponse> {
    let info = admin.set_policy(&c, r.policy.unwrap_or_default()).await?;
    Ok(Json(PolicyResponse::from(&info)))
}

/// Validates a policy against the live users and nodes without storing it.
#[utoipa::path(post, path = "/api/v1/policy/check", tag = "Policy", operation_id = "checkPolicy",
    request_body = PolicyRequest,
    responses((status = 200, body = Empty), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn check(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Body(r): Body<PolicyRequest>,
) -> Reply<Empty> {
    admin.check_policy(&c, r.policy.as_deref().unwrap_or_default())?;
    Ok(Json(Empty {}))
}
