//! `/api/v1/node` and `/api/v1/debug/node`.

use axum::Json;
use axum::extract::{Path, State};
use ipnet::IpNet;

use super::extract::{Authed, Body, Params, db_id, parse_u64};
use super::model::{
    BackfillNodeIpsResponse, DebugCreateNodeRequest, Empty, ExpireNodeRequest, ListNodesResponse,
    Node, NodeResponse, NodeView, SetApprovedRoutesRequest, SetTagsRequest,
};
use crate::admin::{Admin, AuthId, NodeExpiry, NodeInfo};
use crate::api::problem::Problem;
use crate::types::NodeId;

type Reply<T> = Result<Json<T>, Problem>;

fn node_id(text: &str) -> Result<NodeId, Problem> {
    Ok(NodeId(db_id(parse_u64(text, "node id")?, "node")?))
}

fn one(i: &NodeInfo, view: NodeView) -> Json<NodeResponse> {
    Json(NodeResponse {
        node: Node::new(i, view),
    })
}

fn auth_id(text: Option<&str>) -> Result<AuthId, Problem> {
    AuthId::parse(text.unwrap_or_default()).map_err(Problem::bad_request)
}

fn routes(list: &[String]) -> Result<Vec<IpNet>, Problem> {
    list.iter()
        .map(|r| {
            r.trim()
                .parse::<IpNet>()
                .map_err(|e| Problem::bad_request(format!("route {r:?}: {e}")))
        })
        .collect()
}

#[utoipa::path(get, path = "/api/v1/node", tag = "Nodes", operation_id = "listNodes",
    params(("user" = Option<String>, Query, description = "Only nodes of the user with this name")),
    responses((status = 200, body = ListNodesResponse), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(admin): State<Admin>,
    Authed(c): Authed,
    q: Params,
) -> Reply<ListNodesResponse> {
    let nodes = admin.list_nodes(&c, q.get("user")).await?;
    Ok(Json(ListNodesResponse {
        nodes: nodes
            .iter()
            .map(|i| Node::new(i, NodeView::Listed))
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/node/{nodeId}", tag = "Nodes", operation_id = "getNode",
    params(("nodeId" = String, Path)),
    responses((status = 200, body = NodeResponse), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(id): Path<String>,
) -> Reply<NodeResponse> {
    let i = admin.get_node(&c, node_id(&id)?).await?;
    Ok(one(&i, NodeView::Single))
}

#[utoipa::path(delete, path = "/api/v1/node/{nodeId}", tag = "Nodes", operation_id = "deleteNode",
    params(("nodeId" = String, Path)),
    responses((status = 200, body = Empty), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(id): Path<String>,
) -> Reply<Empty> {
    admin.delete_node(&c, node_id(&id)?).await?;
    Ok(Json(Empty {}))
}

/// Expires the node now, at `expiry`, or (`disableExpiry`) never.
#[utoipa::path(post, path = "/api/v1/node/{nodeId}/expire", tag = "Nodes", operation_id = "expireNode",
    params(("nodeId" = String, Path)), request_body = ExpireNodeRequest,
    responses((status = 200, body = NodeResponse), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn expire(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(id): Path<String>,
    Body(r): Body<ExpireNodeRequest>,
) -> Reply<NodeResponse> {
    let id = node_id(&id)?;
    let when = match (r.disable_expiry.unwrap_or(false), r.expiry) {
        (true, Some(_)) => {
            return Err(Problem::bad_request(
                "cannot set both disableExpiry and expiry",
            ));
        }
        (true, None) => NodeExpiry::Never,
        (false, Some(t)) => NodeExpiry::At(t),
        (false, None) => NodeExpiry::Now,
    };
    let i = admin.expire_node(&c, id, when).await?;
    Ok(one(&i, NodeView::Single))
}

#[utoipa::path(post, path = "/api/v1/node/{nodeId}/rename/{newName}", tag = "Nodes",
    operation_id = "renameNode",
    params(("nodeId" = String, Path), ("newName" = String, Path)),
    responses((status = 200, body = NodeResponse), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn rename(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path((id, name)): Path<(String, String)>,
) -> Reply<NodeResponse> {
    let i = admin.rename_node(&c, node_id(&id)?, &name).await?;
    Ok(one(&i, NodeView::Single))
}

#[utoipa::path(post, path = "/api/v1/node/{nodeId}/tags", tag = "Nodes", operation_id = "setTags",
    params(("nodeId" = String, Path)), request_body = SetTagsRequest,
    responses((status = 200, body = NodeResponse), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_tags(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(id): Path<String>,
    Body(r): Body<SetTagsRequest>,
) -> Reply<NodeResponse> {
    let i = admin
        .set_tags(&c, node_id(&id)?, r.tags.unwrap_or_default())
        .await?;
    Ok(one(&i, NodeView::Single))
}

#[utoipa::path(post, path = "/api/v1/node/{nodeId}/approve_routes", tag = "Nodes",
    operation_id = "setApprovedRoutes",
    params(("nodeId" = String, Path)), request_body = SetApprovedRoutesRequest,
    responses((status = 200, body = NodeResponse), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn approve_routes(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(id): Path<String>,
    Body(r): Body<SetApprovedRoutesRequest>,
) -> Reply<NodeResponse> {
    let id = node_id(&id)?;
    let routes = routes(&r.routes.unwrap_or_default())?;
    let i = admin.set_approved_routes(&c, id, routes).await?;
    Ok(one(&i, NodeView::Routes))
}

/// Registers the machine waiting under auth id `key` for the user `user`.
#[utoipa::path(post, path = "/api/v1/node/register", tag = "Nodes", operation_id = "registerNode",
    params(("user" = Option<String>, Query, description = "The user's name"),
        ("key" = Option<String>, Query, description = "The pending registration's auth id")),
    responses((status = 200, body = NodeResponse), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn register(
    State(admin): State<Admin>,
    Authed(c): Authed,
    q: Params,
) -> Reply<NodeResponse> {
    let id = auth_id(q.get("key"))?;
    let i = admin
        .register_pending(&c, &id, q.get("user").unwrap_or_default())
        .await?;
    Ok(one(&i, NodeView::Single))
}

/// clawscale extension (Headscale has no device approval): approves a
/// node, or with `?approved=false` takes the approval away.
#[utoipa::path(post, path = "/api/v1/node/{nodeId}/approve", tag = "Nodes", operation_id = "approveNode",
    params(("nodeId" = String, Path),
        ("approved" = Option<bool>, Query, description = "false takes the approval away; default true")),
    responses((status = 200, body = NodeResponse), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn approve(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(id): Path<String>,
    q: Params,
) -> Reply<NodeResponse> {
    let approved = if q.get("approved").is_some() {
        q.bool("approved")?
    } else {
        true
    };
    let i = admin.set_authorized(&c, node_id(&id)?, approved).await?;
    Ok(one(&i, NodeView::Single))
}

#[utoipa::path(post, path = "/api/v1/node/backfillips", tag = "Nodes", operation_id = "backfillNodeIPs",
    params(("confirmed" = Option<bool>, Query, description = "Must be true")),
    responses((status = 200, body = BackfillNodeIpsResponse), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn backfill_ips(
    State(admin): State<Admin>,
    Authed(c): Authed,
    q: Params,
) -> Reply<BackfillNodeIpsResponse> {
    let changes = admin.backfill_ips(&c, q.bool("confirmed")?).await?;
    Ok(Json(BackfillNodeIpsResponse { changes }))
}

#[utoipa::path(post, path = "/api/v1/debug/node", tag = "Nodes", operation_id = "debugCreateNode",
    request_body = DebugCreateNodeRequest,
    responses((status = 200, body = NodeResponse), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn debug_create(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Body(r): Body<DebugCreateNodeRequest>,
) -> Reply<NodeResponse> {
    let routes = routes(&r.routes.unwrap_or_default())?;
    let id = auth_id(r.key.as_deref())?;
    let i = admin
        .debug_create_node(
            &c,
            r.user.as_deref().unwrap_or_default(),
            &id,
            r.name.as_deref().unwrap_or_default(),
            routes,
        )
        .await?;
    Ok(one(&i, NodeView::Single))
}
