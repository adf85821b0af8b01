//! REST `/api/v1`: Headscale main's admin API contract (`hscontrol/api/v1`),
//! served on the control port (API key required) and on the admin unix
//! socket (local trust).
//!
//! Each handler parses (`extract`), calls one operation of `admin::Admin`
//! with the request's `Caller`, and converts the result (`model`); errors
//! become problem documents in `api::problem`. The OpenAPI 3.1 document at
//! `/api/v1/openapi.json` is generated from the handlers' annotations
//! (utoipa), so it cannot drift from the routes.
//!
//! API v2 can follow the same shape: its own `OpenApiRouter` of annotated
//! handlers over the same operations, its own document under `/api/v2`.

pub mod extract;
pub mod model;

mod auth;
mod keys;
mod nodes;
mod oauth_clients;
mod policy;
mod system;
mod users;

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

use super::authn::{Authn, authenticate};
use crate::admin::{Admin, Transport};

pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "clawscale API",
        version = "v1",
        description = "Headscale-compatible admin API of clawscale. Every operation needs \
                       `Authorization: Bearer <API key>` (scope `admin`, or `admin:read` for \
                       reads) except on the admin unix socket."
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "Users"), (name = "Nodes"), (name = "PreAuthKeys"), (name = "ApiKeys"),
        (name = "Policy"), (name = "Auth"), (name = "Health"), (name = "Audit"),
        (name = "OAuthClients"),
    )
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

/// Every operation, with its route and its part of the document.
fn operations() -> OpenApiRouter<Admin> {
    OpenApiRouter::with_openapi(Doc::openapi())
        .routes(routes!(system::health))
        .routes(routes!(system::audit))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::rename))
        .routes(routes!(users::delete))
        .routes(routes!(nodes::list))
        .routes(routes!(nodes::get, nodes::delete))
        .routes(routes!(nodes::expire))
        .routes(routes!(nodes::rename))
        .routes(routes!(nodes::set_tags))
        .routes(routes!(nodes::approve_routes))
        .routes(routes!(nodes::register))
        .routes(routes!(nodes::approve))
        .routes(routes!(nodes::backfill_ips))
        .routes(routes!(nodes::debug_create))
        .routes(routes!(
            keys::list_preauth,
            keys::create_preauth,
            keys::delete_preauth
        ))
        .routes(routes!(keys::expire_preauth))
        .routes(routes!(
            keys::list_api,
            keys::create_api,
            keys::delete_api_by_id
        ))
        .routes(routes!(keys::expire_api))
        .routes(routes!(keys::delete_api))
        .routes(routes!(policy::get, policy::set))
        .routes(routes!(policy::check))
        .routes(routes!(auth::register))
        .routes(routes!(auth::approve))
        .routes(routes!(auth::reject))
        .routes(routes!(oauth_clients::list, oauth_clients::create))
        .routes(routes!(oauth_clients::delete))
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    operations().into_openapi()
}

/// The API's routes; `transport` is recorded with every audited request.
pub fn router(admin: Admin) -> Router {
    let (ops, doc) = operations().split_for_parts();
    let doc: Arc<str> = doc
        .to_json()
        .expect("the OpenAPI document serialises")
        .into();
    let authn = Authn {
        admin: admin.clone(),
        transport: Transport::RestV1,
    };
    let ops = ops
        .route_layer(middleware::from_fn_with_state(authn, authenticate))
        .with_state(admin);
    // The document is public, as Headscale's is.
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
/// (bodies without a length are cut off while reading, `extract::Body`).
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
