//! `/api/v2/tailnet/{tailnet}/dns/{nameservers,searchpaths,preferences}`:
//! the DNS settings every map carries. A change is stored and reaches every
//! connected client (`admin::dns`, `state::dns`). In a request, a `null` or
//! missing value returns the setting to the config file's (a clawscale
//! extension: Tailscale has no file); `[]` clears a list.

use axum::Json;
use axum::extract::{Path, State};

use super::error::ApiError;
use super::extract::{Authed, Body};
use super::model::{Nameservers, NameserversResponse, Preferences, SearchPaths};
use crate::admin::{Admin, DnsChange, Setting};

type Reply<T> = Result<Json<T>, ApiError>;

fn setting<T>(v: Option<T>) -> Option<Setting<T>> {
    Some(v.map_or(Setting::FromFile, Setting::Set))
}

#[utoipa::path(get, path = "/api/v2/tailnet/{tailnet}/dns/nameservers", tag = "DNS", operation_id = "getNameservers",
    params(("tailnet" = String, Path)),
    responses((status = 200, body = Nameservers), (status = 403, body = ApiError)),
    security(("bearer" = [])))]
pub async fn nameservers(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(_tailnet): Path<String>,
) -> Reply<Nameservers> {
    let v = admin.dns(&c).await?;
    Ok(Json(Nameservers {
        dns: Some(v.nameservers),
    }))
}

/// Replaces the global nameservers (IP addresses).
#[utoipa::path(post, path = "/api/v2/tailnet/{tailnet}/dns/nameservers", tag = "DNS", operation_id = "setNameservers",
    params(("tailnet" = String, Path)), request_body = Nameservers,
    responses((status = 200, body = NameserversResponse), (status = 400, body = ApiError), (status = 403, body = ApiError)),
    security(("bearer" = [])))]
pub async fn set_nameservers(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(_tailnet): Path<String>,
    Body(r): Body<Nameservers>,
) -> Reply<NameserversResponse> {
    let change = DnsChange {
        nameservers: setting(r.dns),
        ..Default::default()
    };
    let v = admin.set_dns(&c, change).await?;
    Ok(Json(NameserversResponse {
        dns: v.nameservers,
        magic_dns: v.magic_dns,
    }))
}

#[utoipa::path(get, path = "/api/v2/tailnet/{tailnet}/dns/searchpaths", tag = "DNS", operation_id = "getSearchPaths",
    params(("tailnet" = String, Path)),
    responses((status = 200, body = SearchPaths), (status = 403, body = ApiError)),
    security(("bearer" = [])))]
pub async fn search_paths(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(_tailnet): Path<String>,
) -> Reply<SearchPaths> {
    let v = admin.dns(&c).await?;
    Ok(Json(SearchPaths {
        search_paths: Some(v.search_paths),
    }))
}

/// Replaces the search paths (DNS names).
#[utoipa::path(post, path = "/api/v2/tailnet/{tailnet}/dns/searchpaths", tag = "DNS", operation_id = "setSearchPaths",
    params(("tailnet" = String, Path)), request_body = SearchPaths,
    responses((status = 200, body = SearchPaths), (status = 400, body = ApiError), (status = 403, body = ApiError)),
    security(("bearer" = [])))]
pub async fn set_search_paths(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(_tailnet): Path<String>,
    Body(r): Body<SearchPaths>,
) -> Reply<SearchPaths> {
    let change = DnsChange {
        search_paths: setting(r.search_paths),
        ..Default::default()
    };
    let v = admin.set_dns(&c, change).await?;
    Ok(Json(SearchPaths {
        search_paths: Some(v.search_paths),
    }))
}

#[utoipa::path(get, path = "/api/v2/tailnet/{tailnet}/dns/preferences", tag = "DNS", operation_id = "getDnsPreferences",
    params(("tailnet" = String, Path)),
    responses((status = 200, body = Preferences), (status = 403, body = ApiError)),
    security(("bearer" = [])))]
pub async fn preferences(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(_tailnet): Path<String>,
) -> Reply<Preferences> {
    Ok(Json(Preferences::from(&admin.dns(&c).await?)))
}

/// Turns MagicDNS on or off (on needs `dns.base_domain` in the config file).
#[utoipa::path(post, path = "/api/v2/tailnet/{tailnet}/dns/preferences", tag = "DNS", operation_id = "setDnsPreferences",
    params(("tailnet" = String, Path)), request_body = Preferences,
    responses((status = 200, body = Preferences), (status = 400, body = ApiError), (status = 403, body = ApiError)),
    security(("bearer" = [])))]
pub async fn set_preferences(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(_tailnet): Path<String>,
    Body(r): Body<Preferences>,
) -> Reply<Preferences> {
    let change = DnsChange {
        magic_dns: setting(r.magic_dns),
        ..Default::default()
    };
    Ok(Json(Preferences::from(&admin.set_dns(&c, change).await?)))
}
