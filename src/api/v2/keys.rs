//! `/api/v2/tailnet/{tailnet}/keys`: auth keys (Tailscale's `keyType`
//! `auth`) over clawscale's pre-auth keys. A key without an expiry gets
//! Tailscale's default of 90 days; keys listed and read never show their
//! secret.

use axum::Json;
use axum::extract::{Path, State};

use super::error::ApiError;
use super::extract::{Authed, Body, key_id};
use super::model::{CreateKeyRequest, Key, KeysResponse};
use crate::admin::{Admin, NewPreAuthKey};

type Reply<T> = Result<Json<T>, ApiError>;

/// Tailscale's default (and longest) auth key life.
const DEFAULT_EXPIRY_SECONDS: i64 = 90 * 24 * 3600;

/// Auth keys of the tailnet, oldest first.
#[utoipa::path(get, path = "/api/v2/tailnet/{tailnet}/keys", tag = "Keys", operation_id = "listKeys",
    params(("tailnet" = String, Path, description = "`-` (clawscale serves one tailnet)"),
        ("all" = Option<bool>, Query, description = "Accepted; every auth key is listed either way")),
    responses((status = 200, body = KeysResponse), (status = 401, body = ApiError), (status = 403, body = ApiError)),
    security(("bearer" = [])))]
pub async fn list(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(_tailnet): Path<String>,
) -> Reply<KeysResponse> {
    let now = admin.now();
    let keys = admin.list_preauth_keys(&c, None).await?;
    Ok(Json(KeysResponse {
        keys: keys
            .iter()
            .map(|k| Key::new(k, String::new(), now))
            .collect(),
    }))
}

/// Creates an auth key; the answer holds its secret, shown only here.
#[utoipa::path(post, path = "/api/v2/tailnet/{tailnet}/keys", tag = "Keys", operation_id = "createKey",
    params(("tailnet" = String, Path)),
    request_body = CreateKeyRequest,
    responses((status = 200, body = Key), (status = 400, body = ApiError), (status = 403, body = ApiError)),
    security(("bearer" = [])))]
pub async fn create(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(_tailnet): Path<String>,
    Body(r): Body<CreateKeyRequest>,
) -> Reply<Key> {
    match r.key_type.as_deref() {
        None | Some("") | Some("auth") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "keyType {other:?} is not supported: clawscale creates auth keys here \
                 (OAuth clients with `clawscale oauth-clients create`)"
            )));
        }
    }
    let seconds = match r.expiry_seconds.unwrap_or(0) {
        0 => DEFAULT_EXPIRY_SECONDS,
        s if s < 0 => return Err(ApiError::bad_request("expirySeconds must not be negative")),
        s => s,
    };
    let expiration = chrono::Duration::try_seconds(seconds)
        .and_then(|d| admin.now().checked_add_signed(d))
        .ok_or_else(|| ApiError::bad_request("expirySeconds is too large"))?;
    let description = r.description.unwrap_or_default();
    if description.chars().count() > 50 {
        return Err(ApiError::bad_request(
            "description must be at most 50 characters",
        ));
    }
    let cap = r.capabilities.devices.create;
    let (info, secret) = admin
        .create_preauth_key(
            &c,
            NewPreAuthKey {
                user: None,
                reusable: cap.reusable,
                ephemeral: cap.ephemeral,
                expiration: Some(expiration),
                tags: cap.tags,
                description,
                preauthorized: cap.preauthorized,
            },
        )
        .await?;
    Ok(Json(Key::new(&info, secret, admin.now())))
}

/// One auth key, without its secret.
#[utoipa::path(get, path = "/api/v2/tailnet/{tailnet}/keys/{keyId}", tag = "Keys", operation_id = "getKey",
    params(("tailnet" = String, Path), ("keyId" = String, Path)),
    responses((status = 200, body = Key), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub async fn get(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path((_tailnet, id)): Path<(String, String)>,
) -> Reply<Key> {
    let info = admin.get_preauth_key(&c, key_id(&id)?).await?;
    Ok(Json(Key::new(&info, String::new(), admin.now())))
}

/// Deletes an auth key; devices that enrolled with it stay.
#[utoipa::path(delete, path = "/api/v2/tailnet/{tailnet}/keys/{keyId}", tag = "Keys", operation_id = "deleteKey",
    params(("tailnet" = String, Path), ("keyId" = String, Path)),
    responses((status = 200, description = "Deleted (empty body)"), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub async fn delete(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path((_tailnet, id)): Path<(String, String)>,
) -> Result<(), ApiError> {
    admin.delete_preauth_key(&c, key_id(&id)?).await?;
    Ok(())
}
