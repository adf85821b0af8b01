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
use super::answer::Query as Addr;
use super::audit::Record;
use super::authorize::{self, Decision};
use super::keys::AuthError;
use crate::http::metrics::WhoisLabels;
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
            .get_or_create(&WhoisLabels {
                endpoint,
                code: code.as_u16(),
            })
            .inc();
    }
}

/// The query parameters whois and authorize read; others are ignored, as
/// tailscaled does.
#[derive(Debug, Default, serde::Deserialize)]
struct Params {
    addr: Option<String>,
    dst: Option<String>,
}

fn params(req: &Request) -> Params {
    Query::<Params>::try_from_uri(req.uri())
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
    let addr = match Addr::parse(q.addr.as_deref()) {
        Ok(a) => a,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let world = ctx.svc.state.world();
    let dst = ctx.svc.destination(&world, q.dst.as_deref());
    match ctx.svc.answer(&world, addr, dst) {
        Some(a) => {
            let mut r = Response::new(Body::from(a.body()));
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
    let dst: Option<NodeId> = ctx.svc.destination(&world, q.dst.as_deref());
    let now = ctx.svc.state.now();
    let answer = ctx.svc.answer(&world, Addr::Ip(src), dst);
    let who = answer.as_ref().map(|a| &a.whois);
    let decision = match &answer {
        None => Decision::deny("caller is not a node of this tailnet"),
        Some(_) if dst.is_none() => Decision::deny("no gateway: set whois.gateway or pass dst"),
        Some(a) => a.decide(tool, server),
    };
    if let Some(log) = &ctx.svc.audit {
        log.record(Record {
            time: now,
            src: Some(src),
            node: who.map(|w| w.fqdn().to_string()),
            user: who.map(|w| w.user_profile.login_name.clone()),
            tags: who.map(|w| w.node.node.tags.clone()).unwrap_or_default(),
            tool: tool.map(str::to_string),
            server: server.map(str::to_string),
            decision: if decision.allowed { "allow" } else { "deny" },
            rule: decision.rule.clone(),
            reason: decision.reason.clone(),
        });
    }
    match (&answer, decision.allowed) {
        (Some(a), true) => {
            let mut r = text(StatusCode::OK, "ok");
            for (name, value) in a.identity_headers() {
                r.headers_mut().insert(name.clone(), value.clone());
            }
            r
        }
        _ => text(StatusCode::FORBIDDEN, decision.reason),
    }
}
