//! `/api/v1/preauthkey` and `/api/v1/apikey`.

use axum::Json;
use axum::extract::{Path, State};

use super::extract::{Authed, Body, Params, db_id, parse_u64};
use super::model::{
    ApiKey, CreateApiKeyRequest, CreateApiKeyResponse, CreatePreAuthKeyRequest, Empty,
    ExpireApiKeyRequest, ExpirePreAuthKeyRequest, ListApiKeysResponse, ListPreAuthKeysResponse,
    PreAuthKey, PreAuthKeyResponse,
};
use crate::admin::{Admin, NewPreAuthKey};
use crate::api::problem::Problem;
use crate::types::{PreAuthKeyId, Scope, UserId};

type Reply<T> = Result<Json<T>, Problem>;

/// A pre-auth key id; absent or empty reads as 0, which names no key.
fn preauth_key_id(text: Option<&str>) -> Result<PreAuthKeyId, Problem> {
    let id = match text.filter(|t| !t.is_empty()) {
        Some(t) => parse_u64(t, "pre-auth key id")?,
        None => 0,
    };
    Ok(PreAuthKeyId(db_id(id, "pre-auth key")?))
}

#[utoipa::path(get, path = "/api/v1/preauthkey", tag = "PreAuthKeys", operation_id = "listPreAuthKeys",
    params(("user" = Option<String>, Query, description = "Only keys of the user with this id")),
    responses((status = 200, body = ListPreAuthKeysResponse)),
    security(("bearer" = [])))]
pub async fn list_preauth(
    State(admin): State<Admin>,
    Authed(c): Authed,
    q: Params,
) -> Reply<ListPreAuthKeysResponse> {
    let user = match q.id("user", "user id")? {
        Some(id) => Some(UserId(db_id(id, "user")?)),
        None => None,
    };
    let keys = admin.list_preauth_keys(&c, user).await?;
    Ok(Json(ListPreAuthKeysResponse {
        pre_auth_keys: keys.iter().map(PreAuthKey::masked).collect(),
    }))
}

/// Creates a key; the response holds its secret, shown only here.
#[utoipa::path(post, path = "/api/v1/preauthkey", tag = "PreAuthKeys", operation_id = "createPreAuthKey",
    request_body = CreatePreAuthKeyRequest,
    responses((status = 200, body = PreAuthKeyResponse), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_preauth(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Body(r): Body<CreatePreAuthKeyRequest>,
) -> Reply<PreAuthKeyResponse> {
    let user = match r.user.as_deref().filter(|u| !u.is_empty()) {
        Some(u) => Some(UserId(db_id(parse_u64(u, "user id")?, "user")?)),
        None => None,
    };
    let (info, secret) = admin
        .create_preauth_key(
            &c,
            NewPreAuthKey {
                user,
                reusable: r.reusable.unwrap_or(false),
                ephemeral: r.ephemeral.unwrap_or(false),
                expiration: r.expiration,
                tags: r.acl_tags.unwrap_or_default(),
                preauthorized: r.preauthorized.unwrap_or(false),
                ..Default::default()
            },
        )
        .await?;
    Ok(Json(PreAuthKeyResponse {
        pre_auth_key: PreAuthKey::new(&info, secret),
    }))
}

#[utoipa::path(post, path = "/api/v1/preauthkey/expire", tag = "PreAuthKeys",
    operation_id = "expirePreAuthKey", request_body = ExpirePreAuthKeyRequest,
    responses((status = 200, body = Empty), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn expire_preauth(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Body(r): Body<ExpirePreAuthKeyRequest>,
) -> Reply<Empty> {
    let id = preauth_key_id(r.id.as_deref())?;
    admin.expire_preauth_key(&c, id).await?;
    Ok(Json(Empty {}))
}

#[utoipa::path(delete, path = "/api/v1/preauthkey", tag = "PreAuthKeys", operation_id = "deletePreAuthKey",
    params(("id" = Option<String>, Query, description = "The key's id")),
    responses((status = 200, body = Empty), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete_preauth(
    State(admin): State<Admin>,
    Authed(c): Authed,
    q: Params,
) -> Reply<Empty> {
    let id = preauth_key_id(q.get("id"))?;
    admin.delete_preauth_key(&c, id).await?;
    Ok(Json(Empty {}))
}

#[utoipa::path(get, path = "/api/v1/apikey", tag = "ApiKeys", operation_id = "listApiKeys",
    responses((status = 200, body = ListApiKeysResponse)),
    security(("bearer" = [])))]
pub async fn list_api(State(admin): State<Admin>, Authed(c): Authed) -> Reply<ListApiKeysResponse> {
    let keys = admin.list_api_keys(&c).await?;
    Ok(Json(ListApiKeysResponse {
        api_keys: keys.iter().map(ApiKey::from).collect(),
    }))
}

/// Creates a key; the response holds its secret, shown only here.
#[utoipa::path(post, path = "/api/v1/apikey", tag = "ApiKeys", operation_id = "createApiKey",
    request_body = CreateApiKeyRequest,
    responses((status = 200, body = CreateApiKeyResponse), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_api(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Body(r): Body<CreateApiKeyRequest>,
) -> Reply<CreateApiKeyResponse> {
    let scope = match r.scope.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => s.parse::<Scope>().map_err(Problem::bad_request)?,
        None => Scope::Admin,
    };
    let (_, api_key) = admin.create_api_key(&c, scope, r.expiration).await?;
    Ok(Json(CreateApiKeyResponse { api_key }))
}

#[utoipa::path(post, path = "/api/v1/apikey/expire", tag = "ApiKeys", operation_id = "expireApiKey",
    request_body = ExpireApiKeyRequest,
    responses((status = 200, body = Empty), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn expire_api(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Body(r): Body<ExpireApiKeyRequest>,
) -> Reply<Empty> {
    let id = match r.id.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => Some(parse_u64(t, "API key id")?),
        None => None,
    };
    let key = crate::admin::api_key_ref(id, r.prefix.as_deref().unwrap_or_default())?;
    admin.expire_api_key(&c, key).await?;
    Ok(Json(Empty {}))
}

/// Deletes the key with this prefix (or, with `?id=`, this id).
#[utoipa::path(delete, path = "/api/v1/apikey/{prefix}", tag = "ApiKeys", operation_id = "deleteApiKey",
    params(("prefix" = String, Path), ("id" = Option<String>, Query)),
    responses((status = 200, body = Empty), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete_api(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(prefix): Path<String>,
    q: Params,
) -> Reply<Empty> {
    let id = q.id("id", "API key id")?;
    let key = crate::admin::api_key_ref(id, &prefix)?;
    admin.delete_api_key(&c, key).await?;
    Ok(Json(Empty {}))
}

/// Deletes the key with `?id=` (the path form without a prefix).
#[utoipa::path(delete, path = "/api/v1/apikey", tag = "ApiKeys", operation_id = "deleteApiKeyById",
    params(("id" = Option<String>, Query)),
    responses((status = 200, body = Empty), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete_api_by_id(
    State(admin): State<Admin>,
    Authed(c): Authed,
    q: Params,
) -> Reply<Empty> {
    let key = crate::admin::api_key_ref(q.id("id", "API key id")?, "")?;
    admin.delete_api_key(&c, key).await?;
    Ok(Json(Empty {}))
}
