//! `/api/v1/oauthclient` (clawscale extension): OAuth clients of API v2,
//! for `clawscale oauth-clients` and any REST v1 client.

use axum::Json;
use axum::extract::{Path, State};

use super::extract::{Authed, Body};
use super::model::{
    CreateOAuthClientRequest, CreateOAuthClientResponse, Empty, ListOAuthClientsResponse,
    OAuthClient,
};
use crate::admin::{Admin, NewOAuthClient};
use crate::api::problem::Problem;
use crate::types::ScopeSet;

type Reply<T> = Result<Json<T>, Problem>;

#[utoipa::path(get, path = "/api/v1/oauthclient", tag = "OAuthClients", operation_id = "listOAuthClients",
    responses((status = 200, body = ListOAuthClientsResponse), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(admin): State<Admin>,
    Authed(c): Authed,
) -> Reply<ListOAuthClientsResponse> {
    let clients = admin.list_oauth_clients(&c).await?;
    Ok(Json(ListOAuthClientsResponse {
        oauth_clients: clients.iter().map(OAuthClient::from).collect(),
    }))
}

/// Creates a client; the answer holds its secret, shown only here.
#[utoipa::path(post, path = "/api/v1/oauthclient", tag = "OAuthClients", operation_id = "createOAuthClient",
    request_body = CreateOAuthClientRequest,
    responses((status = 200, body = CreateOAuthClientResponse), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Body(r): Body<CreateOAuthClientRequest>,
) -> Reply<CreateOAuthClientResponse> {
    let names = r.scopes.unwrap_or_default();
    let scopes = ScopeSet::parse(names.iter().map(String::as_str)).map_err(Problem::bad_request)?;
    let (client, secret) = admin
        .create_oauth_client(
            &c,
            NewOAuthClient {
                scopes,
                tags: r.tags.unwrap_or_default(),
                description: r.description.unwrap_or_default(),
            },
        )
        .await?;
    Ok(Json(CreateOAuthClientResponse {
        oauth_client: OAuthClient::from(&client),
        secret,
    }))
}

/// Deletes a client; its access tokens stop working at once.
#[utoipa::path(delete, path = "/api/v1/oauthclient/{clientId}", tag = "OAuthClients", operation_id = "deleteOAuthClient",
    params(("clientId" = String, Path)),
    responses((status = 200, body = Empty), (status = 404, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(id): Path<String>,
) -> Reply<Empty> {
    admin.delete_oauth_client(&c, &id).await?;
    Ok(Json(Empty {}))
}
