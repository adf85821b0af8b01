//! API v2: the subset of Tailscale's API (`https://api.tailscale.com/api/v2`)
//! that Terraform's `tailscale` provider and the Kubernetes operator use,
//! served on the control port, so a client's base URL is clawscale's
//! `server_url` (the operator's `loginServer`). Tailscale's JSON field
//! names and error shape (`{"message": …}`); each handler parses
//! (`extract`), calls one operation of `admin::Admin` with the request's
//! `Caller` and converts the result (`model`).
//!
//! - `oauth`: `POST /api/v2/oauth/token` (client credentials), no key;
//! - `keys`: `/tailnet/{tailnet}/keys` (auth keys);
//! - `devices`: `/tailnet/{tailnet}/devices`, `/device/{id}` and its
//!   `tags`, `routes`, `authorized`, `expire`;
//! - `acl`: `/tailnet/{tailnet}/acl` (ETag/If-Match) and `acl/validate`;
//! - `dns`: `/tailnet/{tailnet}/dns/{nameservers,searchpaths,preferences}`.
//!
//! Everything else needs a credential (`authn`): an OAuth access token, or
//! a clawscale API key in either text form. What it may do is the
//! operations' decision (`admin::caller`: scopes map to grants). The
//! OpenAPI 3.1 document at `/api/v2/openapi.json` is generated from the
//! handlers' annotations, as v1's.

pub mod acl;
pub mod authn;
pub mod devices;
pub mod dns;
pub mod error;
pub mod extract;
pub mod keys;
pub mod model;
pub mod oauth;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::admin::Admin;

pub const OPENAPI_PATH: &str = "/api/v2/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "clawscale API v2",
        version = "v2",
        description = "The subset of Tailscale's API v2 that Terraform's provider and the \
                       Kubernetes operator use. Authenticate with an OAuth access token from \
                       `POST /api/v2/oauth/token`, or a clawscale API key (`cskey-api-…`, \
                       also accepted as `tskey-api-…`), as `Authorization: Bearer …` or as the \
                       user of HTTP Basic. `{tailnet}` is `-`: clawscale serves one tailnet."
    ),
    modifiers(&BearerScheme),
    tags((name = "OAuth"), (name = "Keys"), (name = "Devices"), (name = "PolicyFile"), (name = "DNS"))
)]
struct Doc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The operations that need a credential.
fn authed() -> OpenApiRouter<Admin> {
    OpenApiRouter::new()
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::get, keys::delete))
        .routes(routes!(devices::list))
        .routes(routes!(devices::get, devices::delete))
        .routes(routes!(devices::set_tags))
        .routes(routes!(devices::routes, devices::set_routes))
        .routes(routes!(devices::authorize))
        .routes(routes!(devices::expire))
        .routes(routes!(acl::get, acl::set))
        .routes(routes!(acl::validate))
        .routes(routes!(dns::nameservers, dns::set_nameservers))
        .routes(routes!(dns::search_paths, dns::set_search_paths))
        .routes(routes!(dns::preferences, dns::set_preferences))
}

/// The token endpoint: the client authenticates in the request itself.
fn public() -> OpenApiRouter<Admin> {
    OpenApiRouter::new().routes(routes!(oauth::token))
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = Doc::openapi();
    doc.merge(public().into_openapi());
    doc.merge(authed().into_openapi());
    doc
}

/// The API's routes, for the control port.
pub fn router(admin: Admin) -> Router {
    let doc: Arc<str> = openapi()
        .to_json()
        .expect("the OpenAPI document serialises")
        .into();
    let (authed, _) = authed().split_for_parts();
    let (public, _) = public().split_for_parts();
    let ops = authed
        .route_layer(middleware::from_fn_with_state(
            admin.clone(),
            authn::authenticate,
        ))
        .merge(public)
        .with_state(admin);
    // The document is public, as v1's is.
    let spec = Router::new().route(
        OPENAPI_PATH,
        get(move || {
            let doc = doc.clone();
            async move { ([("content-type", "application/json")], doc.to_string()) }
        }),
    );
    ops.merge(spec)
        .layer(middleware::from_fn(refuse_large_bodies))
}

/// A declared body over the limit is refused before anything reads it
/// (bodies without a length are cut off while reading, `extract`).
async fn refuse_large_bodies(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > extract::BODY_LIMIT as u64) {
        return extract::too_large().into_response();
    }
    next.run(req).await
}
