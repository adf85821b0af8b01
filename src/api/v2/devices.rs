//! `/api/v2/tailnet/{tailnet}/devices` and `/api/v2/device/{deviceId}`:
//! devices over clawscale's nodes. A device id is the numeric `id` or the
//! `nodeId` (`n<id>`). Mutations answer 200 with an empty body, as
//! Tailscale's do, except the routes, which answer with the routes.

use axum::Json;
use axum::extract::{Path, Query, State};
use ipnet::IpNet;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{Authed, Body, device_id};
use super::model::{
    AuthorizedRequest, Device, DeviceRoutes, DevicesResponse, Fields, RoutesRequest, TagsRequest,
};
use crate::admin::{Admin, NodeExpiry};

type Reply<T> = Result<Json<T>, ApiError>;

#[derive(Debug, Default, Deserialize)]
pub struct FieldsQuery {
    fields: Option<String>,
}

impl FieldsQuery {
    /// `all`, or the default set (Tailscale also takes a list of field
    /// names; anything but `all` gives the default set here).
    fn fields(&self) -> Fields {
        match self.fields.as_deref() {
            Some("all") => Fields::All,
            _ => Fields::Default,
        }
    }
}

/// Every device, in id order.
#[utoipa::path(get, path = "/api/v2/tailnet/{tailnet}/devices", tag = "Devices", operation_id = "listDevices",
    params(("tailnet" = String, Path, description = "`-` (clawscale serves one tailnet)"),
        ("fields" = Option<String>, Query, description = "`all` adds routes and client connectivity")),
    responses((status = 200, body = DevicesResponse), (status = 401, body = ApiError), (status = 403, body = ApiError)),
    security(("bearer" = [])))]
pub async fn list(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(_tailnet): Path<String>,
    Query(q): Query<FieldsQuery>,
) -> Reply<DevicesResponse> {
    let nodes = admin.list_nodes(&c, None).await?;
    let base = admin.base_domain();
    Ok(Json(DevicesResponse {
        devices: nodes
            .iter()
            .map(|i| Device::new(i, &base, q.fields()))
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v2/device/{deviceId}", tag = "Devices", operation_id = "getDevice",
    params(("deviceId" = String, Path, description = "`id` or `nodeId`"),
        ("fields" = Option<String>, Query, description = "`all` adds routes and client connectivity")),
    responses((status = 200, body = Device), (status = 400, body = ApiError), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub async fn get(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(id): Path<String>,
    Query(q): Query<FieldsQuery>,
) -> Reply<Device> {
    let i = admin.get_node(&c, device_id(&id)?).await?;
    Ok(Json(Device::new(&i, &admin.base_domain(), q.fields())))
}

/// Removes the device from the tailnet.
#[utoipa::path(delete, path = "/api/v2/device/{deviceId}", tag = "Devices", operation_id = "deleteDevice",
    params(("deviceId" = String, Path)),
    responses((status = 200, description = "Deleted (empty body)"), (status = 403, body = ApiError), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub async fn delete(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(id): Path<String>,
) -> Result<(), ApiError> {
    admin.delete_node(&c, device_id(&id)?).await?;
    Ok(())
}

/// Replaces the device's tags (at least one; an OAuth client may only give
/// its own).
#[utoipa::path(post, path = "/api/v2/device/{deviceId}/tags", tag = "Devices", operation_id = "setDeviceTags",
    params(("deviceId" = String, Path)), request_body = TagsRequest,
    responses((status = 200, description = "Done (empty body)"), (status = 400, body = ApiError), (status = 403, body = ApiError), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub async fn set_tags(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(id): Path<String>,
    Body(r): Body<TagsRequest>,
) -> Result<(), ApiError> {
    admin
        .set_tags(&c, device_id(&id)?, r.tags.unwrap_or_default())
        .await?;
    Ok(())
}

/// Routes the device advertises and those enabled (approved) for it.
#[utoipa::path(get, path = "/api/v2/device/{deviceId}/routes", tag = "Devices", operation_id = "getDeviceRoutes",
    params(("deviceId" = String, Path)),
    responses((status = 200, body = DeviceRoutes), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub async fn routes(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(id): Path<String>,
) -> Reply<DeviceRoutes> {
    let n = admin.node_routes(&c, device_id(&id)?)?;
    Ok(Json(DeviceRoutes::new(&n)))
}

/// Replaces the enabled routes (they may be enabled before the device
/// advertises them). An exit route of one family enables both.
#[utoipa::path(post, path = "/api/v2/device/{deviceId}/routes", tag = "Devices", operation_id = "setDeviceRoutes",
    params(("deviceId" = String, Path)), request_body = RoutesRequest,
    responses((status = 200, body = DeviceRoutes), (status = 400, body = ApiError), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub async fn set_routes(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(id): Path<String>,
    Body(r): Body<RoutesRequest>,
) -> Reply<DeviceRoutes> {
    let id = device_id(&id)?;
    let routes = r
        .routes
        .unwrap_or_default()
        .iter()
        .map(|s| {
            s.trim()
                .parse::<IpNet>()
                .map(|n| n.trunc())
                .map_err(|e| ApiError::bad_request(format!("route {s:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let i = admin.set_approved_routes(&c, id, routes).await?;
    Ok(Json(DeviceRoutes::new(&i.node)))
}

/// Authorizes the device (or, where device approval exists, revokes it).
#[utoipa::path(post, path = "/api/v2/device/{deviceId}/authorized", tag = "Devices", operation_id = "authorizeDevice",
    params(("deviceId" = String, Path)), request_body = AuthorizedRequest,
    responses((status = 200, description = "Done (empty body)"), (status = 400, body = ApiError), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub async fn authorize(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(id): Path<String>,
    Body(r): Body<AuthorizedRequest>,
) -> Result<(), ApiError> {
    let authorized = r
        .authorized
        .ok_or_else(|| ApiError::bad_request("authorized (true or false) is required"))?;
    admin
        .set_authorized(&c, device_id(&id)?, authorized)
        .await?;
    Ok(())
}

/// Expires the device's key now: it must log in again.
#[utoipa::path(post, path = "/api/v2/device/{deviceId}/expire", tag = "Devices", operation_id = "expireDevice",
    params(("deviceId" = String, Path)),
    responses((status = 200, description = "Done (empty body)"), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub async fn expire(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(id): Path<String>,
) -> Result<(), ApiError> {
    admin
        .expire_node(&c, device_id(&id)?, NodeExpiry::Now)
        .await?;
    Ok(())
}
