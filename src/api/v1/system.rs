//! `/api/v1/health` and `/api/v1/audit` (clawscale extension).

use axum::Json;
use axum::extract::State;

use super::extract::{Authed, Params};
use super::model::{AuditResponse, HealthResponse};
use crate::admin::{Admin, audit};
use crate::api::problem::Problem;

type Reply<T> = Result<Json<T>, Problem>;

/// Whether the database answers (through the state writer).
#[utoipa::path(get, path = "/api/v1/health", tag = "Health", operation_id = "health",
    responses((status = 200, body = HealthResponse)),
    security(("bearer" = [])))]
pub async fn health(State(admin): State<Admin>, Authed(c): Authed) -> Reply<HealthResponse> {
    Ok(Json(HealthResponse {
        database_connectivity: admin.health(&c).await?,
    }))
}

/// Audit entries, oldest first: the newest `limit` (default and most
/// 10000) matching every filter given.
#[utoipa::path(get, path = "/api/v1/audit", tag = "Audit", operation_id = "listAudit",
    params(
        ("since" = Option<String>, Query, description = "RFC 3339 time: only entries at or after it"),
        ("actor" = Option<String>, Query, description = "e.g. apikey:0123456789ab, uid:0, policy-file, node:3, system"),
        ("object" = Option<String>, Query, description = "e.g. node:3, or a kind: node"),
        ("limit" = Option<u64>, Query),
    ),
    responses((status = 200, body = AuditResponse), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn audit(
    State(admin): State<Admin>,
    Authed(c): Authed,
    q: Params,
) -> Reply<AuditResponse> {
    let limit = q
        .id("limit", "limit")?
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let query = audit::Query {
        since: q.time("since")?,
        actor: q.get("actor").map(str::to_string),
        object: q.get("object").map(str::to_string),
        limit,
    };
    Ok(Json(AuditResponse {
        entries: admin.audit(&c, query).await?,
    }))
}
