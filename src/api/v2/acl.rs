//! `/api/v2/tailnet/{tailnet}/acl`: the policy file. `GET` answers the text
//! as written (`Accept: application/hujson`) or as plain JSON, with an
//! `ETag` naming its revision; `POST` replaces it, only if `If-Match` (when
//! given) still names the policy in force (412 otherwise), checked by the
//! state writer so no other update slips in between. Without a policy the
//! tailnet is open, as Tailscale's default policy: `GET` shows that policy
//! with ETag `"ts-default"`, the value `If-Match` takes to mean "only if no
//! policy was set" (what Terraform sends when it creates `tailscale_acl`);
//! an empty `POST` body puts that open policy in force.
//! `POST …/acl/validate` checks a policy (and its tests) without storing
//! it: 200 with `{}` when it passes, `{"message": …}` when not.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE, ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::{Authed, Text};
use super::model::ValidateResponse;
use crate::admin::{self, Admin, Expect, PolicyInfo};

/// Tailscale's default policy: everyone may reach everything.
pub const DEFAULT_POLICY: &str =
    "{\n  \"acls\": [{ \"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:*\"] }]\n}\n";

/// The ETag of "no policy set".
const DEFAULT_ETAG: &str = "ts-default";

const HUJSON: &str = "application/hujson";

fn wants_hujson(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(HUJSON))
}

/// `If-Match` as a precondition: `*` or absent is none; quotes optional.
fn expect(headers: &HeaderMap) -> Result<Expect, ApiError> {
    let Some(v) = headers.get(IF_MATCH) else {
        return Ok(Expect::Any);
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::bad_request("If-Match is not text"))?
        .trim();
    let tag = v.trim_start_matches("W/").trim_matches('"');
    Ok(match tag {
        "" | "*" => Expect::Any,
        DEFAULT_ETAG => Expect::Default,
        rev => Expect::Revision(rev.to_string()),
    })
}

/// The policy in the form asked for, with its ETag.
fn answer(text: &str, etag: &str, json: Option<serde_json::Value>, hujson: bool) -> Response {
    let tag = HeaderValue::from_str(&format!("\"{etag}\"")).expect("hex or ts-default");
    let mut resp = match (hujson, json) {
        (false, Some(v)) => Json(v).into_response(),
        _ => ([(CONTENT_TYPE, HUJSON)], text.to_string()).into_response(),
    };
    resp.headers_mut().insert(ETAG, tag);
    resp
}

fn policy_answer(p: &PolicyInfo, hujson: bool) -> Result<Response, ApiError> {
    let json = if hujson { None } else { Some(p.json()?) };
    Ok(answer(&p.text, &p.revision, json, hujson))
}

/// The policy in force (or Tailscale's default when none is set).
#[utoipa::path(get, path = "/api/v2/tailnet/{tailnet}/acl", tag = "PolicyFile", operation_id = "getPolicyFile",
    params(("tailnet" = String, Path),
        ("Accept" = Option<String>, Header, description = "`application/hujson` for the text as written")),
    responses(
        (status = 200, description = "The policy; `ETag` names its revision", body = Object, content_type = "application/json"),
        (status = 403, body = ApiError)),
    security(("bearer" = [])))]
pub async fn get(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(_tailnet): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let hujson = wants_hujson(&headers);
    match admin.get_policy(&c) {
        Ok(p) => policy_answer(&p, hujson),
        Err(admin::Error::NotFound(_)) => {
            let json = serde_json::from_str(DEFAULT_POLICY).expect("valid JSON");
            Ok(answer(DEFAULT_POLICY, DEFAULT_ETAG, Some(json), hujson))
        }
        Err(e) => Err(e.into()),
    }
}

/// Replaces the policy (`policy.mode: database`); refused unless it
/// parses, validates and passes its own tests.
#[utoipa::path(post, path = "/api/v2/tailnet/{tailnet}/acl", tag = "PolicyFile", operation_id = "setPolicyFile",
    params(("tailnet" = String, Path),
        ("If-Match" = Option<String>, Header, description = "An ETag from GET, or `ts-default`"),
        ("Accept" = Option<String>, Header, description = "`application/hujson` for the text as written")),
    request_body(content = String, content_type = "application/hujson", description = "The policy (HuJSON or JSON)"),
    responses(
        (status = 200, description = "The new policy; `ETag` names its revision", body = Object, content_type = "application/json"),
        (status = 400, body = ApiError), (status = 403, body = ApiError), (status = 412, body = ApiError)),
    security(("bearer" = [])))]
pub async fn set(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(_tailnet): Path<String>,
    headers: HeaderMap,
    Text(body): Text,
) -> Result<Response, ApiError> {
    let text = if body.trim().is_empty() {
        DEFAULT_POLICY.to_string()
    } else {
        body
    };
    let p = admin.set_policy_if(&c, text, expect(&headers)?).await?;
    policy_answer(&p, wants_hujson(&headers))
}

/// Checks a policy against the live users and devices without storing it.
#[utoipa::path(post, path = "/api/v2/tailnet/{tailnet}/acl/validate", tag = "PolicyFile", operation_id = "validatePolicyFile",
    params(("tailnet" = String, Path)),
    request_body(content = String, content_type = "application/hujson"),
    responses((status = 200, body = ValidateResponse), (status = 403, body = ApiError)),
    security(("bearer" = [])))]
pub async fn validate(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(_tailnet): Path<String>,
    Text(body): Text,
) -> Result<Json<ValidateResponse>, ApiError> {
    match admin.check_policy(&c, &body) {
        Ok(()) => Ok(Json(ValidateResponse::default())),
        Err(admin::Error::InvalidArgument(m)) => Ok(Json(ValidateResponse { message: Some(m) })),
        Err(e) => Err(e.into()),
    }
}
