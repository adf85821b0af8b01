//! The HTTP face of whois: `/localapi/v0/whois` (LocalAPI-compatible),
//! `/api/v1/whois` (same answer) and `/api/v1/authorize` (forward-auth), on
//! three kinds of listener:
//! - the public control port: `/api/v1/*` only, API key required;
//! - `whois.listen_addr`: all three, API key required;
//! - `whois.unix_socket`: all three, no key (the socket's mode is the
//!   authentication, as with tailscaled); its clients count as trusted
//!   proxies for `X-Forwarded-For`.
//!
//! Every answer is computed from the newest World at request time. Any
//! method gets the same answer and a request body is never read, as with
//! tailscaled's LocalAPI whois: gateways that forward the client's own
//! method to their auth call (agentgateway's extAuthz turns every MCP POST
//! into `POST /localapi/v0/whois?addr=…`) must work unchanged.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::routing::any;
use axum::serve::{Listener, ListenerExt};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Service;
use super::answer::Query as Addr;
use super::audit::Record;
use super::authorize::{self, Decision};
use crate::admin::keycache::AuthError;
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

/// A whois response: the body is always complete in memory.
type Reply = axum::http::Response<Full<Bytes>>;

/// The routes the public control port mounts (`/api/v1/*`).
pub fn router(svc: Arc<Service>) -> Router {
    let ctx = Ctx {
        svc,
        via: Via::Public,
    };
    Router::new()
        .route("/api/v1/whois", any(public))
        .route("/api/v1/authorize", any(public))
        .route("/api/v1/authorize/", any(public))
        .route("/api/v1/authorize/{*original}", any(public))
        .with_state(ctx)
}

async fn public(State(ctx): State<Ctx>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    ctx.handle(req.uri(), req.headers(), peer)
        .await
        .map(Body::new)
}

/// Serves a dedicated whois listener (`whois.listen_addr`) until the
/// process ends. Straight on hyper, without a router: these listeners
/// answer three fixed paths and nothing else, and each request's cost is
/// what bounds their throughput (docs/whois.md, *Performance*).
pub async fn serve_tcp(l: tokio::net::TcpListener, svc: Arc<Service>) {
    // Answers are one small write each: never hold one back.
    let l = l.tap_io(|s| {
        let _ = s.set_nodelay(true);
    });
    serve(l, Ctx { svc, via: Via::Tcp }, Some).await;
}

/// Serves the whois unix socket until the process ends.
pub async fn serve_unix(l: tokio::net::UnixListener, svc: Arc<Service>) {
    serve(
        l,
        Ctx {
            svc,
            via: Via::Unix,
        },
        |_| None,
    )
    .await;
}

/// Accepts for ever (axum's listeners retry or back off on accept errors)
/// and serves each connection on its own task.
async fn serve<L: Listener>(mut l: L, ctx: Ctx, peer: fn(L::Addr) -> Option<SocketAddr>) {
    let ctx = Arc::new(ctx);
    loop {
        let (io, addr) = l.accept().await;
        tokio::spawn(serve_connection(io, ctx.clone(), peer(addr)));
    }
}

async fn serve_connection<I>(io: I, ctx: Arc<Ctx>, peer: Option<SocketAddr>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let idle = ctx.svc.idle_timeout;
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let ctx = ctx.clone();
        async move {
            let reply = ctx.handle(req.uri(), req.headers(), peer).await;
            Ok::<_, Infallible>(reply)
        }
    });
    // HTTP/1.1 only, as tailscaled's LocalAPI (and every gateway's
    // forward-auth client) speaks. A connection that sends no complete
    // request head for `idle`, after connecting or after an answer, is
    // closed. (Version detection for HTTP/2 would wait for a first byte
    // before any timer runs, so a silent client would never be closed.)
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(idle)
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

fn text(code: StatusCode, msg: impl Into<String>) -> Reply {
    let mut body = msg.into();
    body.push('\n');
    let mut r = Reply::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn auth_failure(e: AuthError) -> Reply {
    let code = match e {
        AuthError::Missing | AuthError::Invalid | AuthError::Expired => StatusCode::UNAUTHORIZED,
        AuthError::Scope => StatusCode::FORBIDDEN,
        AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    text(code, e.to_string())
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Whois,
    Authorize,
}

impl Ctx {
    fn endpoint(&self, path: &str) -> Option<Endpoint> {
        match path {
            "/api/v1/whois" => Some(Endpoint::Whois),
            "/api/v1/authorize" => Some(Endpoint::Authorize),
            // Envoy's HTTP ext_authz (and gateways built on it) appends the
            // original request's path to its `path_prefix`; what follows
            // the prefix changes nothing about the answer.
            p if p.starts_with("/api/v1/authorize/") => Some(Endpoint::Authorize),
            "/localapi/v0/whois" if self.via != Via::Public => Some(Endpoint::Whois),
            _ => None,
        }
    }

    /// One request, whatever its method: routing, then the endpoint.
    async fn handle(&self, uri: &Uri, headers: &HeaderMap, peer: Option<SocketAddr>) -> Reply {
        let Some(endpoint) = self.endpoint(uri.path()) else {
            let mut r = Reply::default();
            *r.status_mut() = StatusCode::NOT_FOUND;
            return r;
        };
        let q = Params::of(uri);
        let (name, reply) = match endpoint {
            Endpoint::Whois => ("whois", self.whois(headers, &q).await),
            Endpoint::Authorize => ("authorize", self.authorize(headers, &q, peer).await),
        };
        self.count(name, reply.status());
        reply
    }

    async fn authenticate(&self, headers: &HeaderMap) -> Result<(), Reply> {
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

    async fn whois(&self, headers: &HeaderMap, q: &Params<'_>) -> Reply {
        if let Err(r) = self.authenticate(headers).await {
            return r;
        }
        let addr = match Addr::parse(q.addr.as_deref()) {
            Ok(a) => a,
            Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let world = self.svc.state.world();
        let dst = self.svc.destination(&world, q.dst.as_deref());
        match self.svc.answer(&world, addr, dst) {
            Some(a) => {
                let mut r = Reply::new(Full::new(a.body()));
                r.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                r
            }
            None => text(StatusCode::NOT_FOUND, "no match for IP:port"),
        }
    }

    async fn authorize(&self, h: &HeaderMap, q: &Params<'_>, peer: Option<SocketAddr>) -> Reply {
        if let Err(r) = self.authenticate(h).await {
            return r;
        }
        let peer = match (self.via, peer) {
            (Via::Unix, _) => None,
            (_, Some(a)) => Some(a.ip()),
            // No peer address at all: never fall back to headers.
            (_, None) => return text(StatusCode::FORBIDDEN, "no caller address"),
        };
        let forwarded: Vec<&str> = h
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let src = match authorize::client_ip(peer, &forwarded, &self.svc.trusted_proxies) {
            Ok(ip) => ip,
            Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let tool = header(h, "x-mcp-tool");
        let server = header(h, "x-mcp-server");
        let world = self.svc.state.world();
        let dst: Option<NodeId> = self.svc.destination(&world, q.dst.as_deref());
        let answer = self.svc.answer(&world, Addr::Ip(src), dst);
        let decision = match &answer {
            None => Decision::deny("caller is not a node of this tailnet"),
            Some(_) if dst.is_none() => Decision::deny("no gateway: set whois.gateway or pass dst"),
            Some(a) => a.decide(tool, server),
        };
        if let Some(log) = &self.svc.audit {
            let who = answer.as_ref().map(|a| &a.whois);
            log.record(Record {
                time: self.svc.state.now(),
                src: Some(src),
                node: who.map(|w| w.fqdn().to_string()),
                user: who.map(|w| w.user_profile.login_name.clone()),
                tags: who.map(|w| w.node.node.tags.clone()).unwrap_or_default(),
                tool: tool.map(str::to_string),
                server: server.map(str::to_string),
                decision: if decision.allowed { "allow" } else { "deny" },
                rule: decision.rule.clone(),
                reason: decision.reason.clone(),
                policy_revision: None,
                policy_text: world.policy.text.clone(),
            });
        }
        match (&answer, decision.allowed) {
            (Some(a), true) => {
                let mut r = text(StatusCode::OK, "ok");
                let headers = r.headers_mut();
                headers.reserve(a.identity_headers().len());
                for (name, value) in a.identity_headers() {
                    headers.insert(name.clone(), value.clone());
                }
                r
            }
            _ => text(StatusCode::FORBIDDEN, decision.reason),
        }
    }
}

/// The query parameters whois and authorize read; others are ignored, as
/// tailscaled does. Borrowed unless percent-decoding changed them.
#[derive(Debug, Default)]
struct Params<'u> {
    addr: Option<std::borrow::Cow<'u, str>>,
    dst: Option<std::borrow::Cow<'u, str>>,
}

impl<'u> Params<'u> {
    fn of(uri: &'u Uri) -> Params<'u> {
        let mut p = Params::default();
        for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
            match &*k {
                // The first of a repeated parameter wins, as with Go's
                // `url.Values.Get`.
                "addr" if p.addr.is_none() => p.addr = Some(v),
                "dst" if p.dst.is_none() => p.dst = Some(v),
                _ => {}
            }
        }
        p
    }
}

fn header<'r>(h: &'r HeaderMap, name: &str) -> Option<&'r str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}
