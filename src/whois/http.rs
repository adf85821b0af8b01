//! The HTTP face of whois: `GET /localapi/v0/whois` (LocalAPI-compatible),
//! `GET /api/v1/whois` (same answer) and `GET /api/v1/authorize`
//! (forward-auth), on three kinds of listener:
//! - the public control port: `/api/v1/*` only, API key required;
//! - `whois.listen_addr`: all three, API key required;
//! - `whois.unix_socket`: all three, no key (the socket's mode is the
//!   authentication, as with tailscaled); its clients count as trusted
//!   proxies for `X-Forwarded-For`.
//!
//! Every answer is computed from the newest World at request time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Service;
use super::answer::{self, Query as Addr};
use super::audit::Record;
use super::authorize::{self, Decision};
use super::keys::AuthError;
use crate::types::{NodeId, Scope};

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Public,
    Tcp,
    Unix,
}

#[derive(Clone)]
struct Ctx {
    svc: Arc<Service>,
    via: Via,
}

/// The routes for one listener kind.
pub fn router(svc: Arc<Service>, via: Via) -> Router {
    let mut r = Router::new()
        .route("/api/v1/whois", get(whois))
        .route("/api/v1/authorize", get(authorize));
    if via != Via::Public {
        r = r.route("/localapi/v0/whois", get(whois));
    }
    r.with_state(Ctx { svc, via })
}

fn text(code: StatusCode, msg: impl Into<String>) -> Response {
    let mut body = msg.into();
    body.push('\n');
    (code, [(CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn auth_failure(e: AuthError) -> Response {
    let code = match e {
        AuthError::Missing | AuthError::Invalid | AuthError::Expired => StatusCode::UNAUTHORIZED,
        AuthError::Scope => StatusCode::FORBIDDEN,
        AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    text(code, e.to_string())
}

impl Ctx {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<(), Response> {
        if self.via == Via::Unix {
            return Ok(());
        }
        self.svc
            .keys
            .check(headers, Scope::Whois)
            .await
            .map_err(auth_failure)
    }

    fn count(&self, endpoint: &'static str, code: StatusCode) {
        self.svc
            .metrics
            .whois_requests
            .get_or_create(&vec![
                ("endpoint".into(), endpoint.into()),
                ("code".into(), code.as_u16().to_string()),
            ])
            .inc();
    }
}

fn params(req: &Request) -> HashMap<String, String> {
    Query::<HashMap<String, String>>::try_from_uri(req.uri())
        .map(|q| q.0)
        .unwrap_or_default()
}

async fn whois(State(ctx): State<Ctx>, req: Request) -> Response {
    let resp = whois_inner(&ctx, req).await;
    ctx.count("whois", resp.status());
    resp
}

async fn whois_inner(ctx: &Ctx, req: Request) -> Response {
    if let Err(r) = ctx.authenticate(req.headers()).await {
        return r;
    }
    let q = params(&req);
    let addr = match Addr::parse(q.get("addr").map(String::as_str)) {
        Ok(a) => a,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let world = ctx.svc.state.world();
    let dst = ctx
        .svc
        .destination(&world, q.get("dst").map(String::as_str));
    match answer::whois_with(&world, addr, dst, ctx.svc.state.now(), Some(&ctx.svc.caps)) {
        Some(w) => {
            let mut r = Response::new(Body::from(answer::to_body(&w)));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        None => text(StatusCode::NOT_FOUND, "no match for IP:port"),
    }
}

async fn authorize(State(ctx): State<Ctx>, req: Request) -> Response {
    let resp = authorize_inner(&ctx, req).await;
    ctx.count("authorize", resp.status());
    resp
}

fn header<'r>(h: &'r HeaderMap, name: &str) -> Option<&'r str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

async fn authorize_inner(ctx: &Ctx, req: Request) -> Response {
    if let Err(r) = ctx.authenticate(req.headers()).await {
        return r;
    }
    let peer = match ctx.via {
        Via::Unix => None,
        _ => match req.extensions().get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(a)) => Some(a.ip()),
            // No peer address at all: never fall back to headers.
            None => return text(StatusCode::FORBIDDEN, "no caller address"),
        },
    };
    let h = req.headers();
    let forwarded: Vec<&str> = h
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let src = match authorize::client_ip(peer, &forwarded, &ctx.svc.trusted_proxies) {
        Ok(ip) => ip,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let tool = header(h, "x-mcp-tool");
    let server = header(h, "x-mcp-server");
    let q = params(&req);
    let world = ctx.svc.state.world();
    let dst: Option<NodeId> = ctx
        .svc
        .destination(&world, q.get("dst").map(String::as_str));
    let now = ctx.svc.state.now();
    let who = answer::whois_with(&world, Addr::Ip(src), dst, now, Some(&ctx.svc.caps));
    let decision = match &who {
        None => Decision::deny("caller is not a node of this tailnet"),
        Some(_) if dst.is_none() => Decision::deny("no gateway: set whois.gateway or pass dst"),
        Some(w) => authorize::decide(&w.cap_map, tool, server),
    };
    if let Some(log) = &ctx.svc.audit {
        log.record(Record {
            time: now,
            src: Some(src),
            node: who.as_ref().map(|w| w.fqdn().to_string()),
            user: who.as_ref().map(|w| w.user_profile.login_name.clone()),
            tags: who
                .as_ref()
                .map(|w| w.node.node.tags.clone())
                .unwrap_or_default(),
            tool: tool.map(str::to_string),
            server: server.map(str::to_string),
            decision: if decision.allowed { "allow" } else { "deny" },
            rule: decision.rule.clone(),
            reason: decision.reason.clone(),
        });
    }
    match (&who, decision.allowed) {
        (Some(w), true) => {
            let mut r = text(StatusCode::OK, "ok");
            for (name, value) in authorize::identity_headers(w) {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    r.headers_mut().insert(name, v);
                }
            }
            r
        }
        _ => text(StatusCode::FORBIDDEN, decision.reason),
    }
}
