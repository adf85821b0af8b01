//! HTTP routes of the embedded DERP node (axum 0.8).
//!
//! Owns `GET /derp` (HTTP/1.1 upgrade to the DERP stream), the netcheck probes
//! `/derp/probe` and `/derp/latency-check`, and the captive-portal check
//! `/generate_204`. Mirrors `derp/derpserver/handler.go` (Tailscale 1.96): the reply
//! to a `/derp` upgrade is `101` with `Upgrade: DERP`, `Connection: Upgrade`,
//! `Derp-Version: 2` and `Derp-Public-Key: <hex>`; a request without `Upgrade: DERP`
//! gets `426`. WebSocket DERP (js/wasm clients only) is not offered.
//!
//! `/derp` is upgraded only on connections that arrived over TLS (the listener marks
//! their requests with [`OverTls`]); over plain HTTP it answers `403`. Tailscale
//! clients always dial DERP over TLS unless a node is `InsecureForTests` (never set
//! here) or the debug knob `TS_DEBUG_USE_DERP_HTTP` is on, which is for Tailscale's
//! own tests and not supported. Relaying over plain HTTP would also put the relay on
//! a path where nothing authenticates the server to the client. A reverse proxy in
//! front of clawscale must pass TLS through (SNI/TCP passthrough), which the pinned
//! self-signed certificate needs anyway.
//! The router must be served with HTTP/1.1 upgrades enabled (`axum::serve` does;
//! with hyper directly use `serve_connection(..).with_upgrades()`).
//! Depends on [`crate::derp::server`].

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;

use super::frame::PROTOCOL_VERSION;
use super::server::Server;

/// Marks a request that arrived over TLS; set by the listener, required by `/derp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverTls;

const CHALLENGE_HEADER: &str = "X-Tailscale-Challenge";
const RESPONSE_HEADER: &str = "X-Tailscale-Response";

/// Routes for the DERP node, to be merged into the public router.
pub fn router(server: Server) -> Router {
    Router::new()
        .route("/derp", get(derp_upgrade))
        .route("/derp/probe", get(probe))
        .route("/derp/latency-check", get(probe))
        .route("/generate_204", get(no_content))
        .with_state(server)
}

async fn derp_upgrade(State(server): State<Server>, mut req: Request) -> Response {
    if req.extensions().get::<OverTls>().is_none() {
        return (
            StatusCode::FORBIDDEN,
            "DERP is served only over TLS on this port",
        )
            .into_response();
    }
    let wants_derp = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("derp"));
    // Only an HTTP/1.1 connection served with upgrades carries OnUpgrade.
    let upgradable = req
        .extensions()
        .get::<hyper::upgrade::OnUpgrade>()
        .is_some();
    if !wants_derp || !upgradable {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "DERP requires connection upgrade",
        )
            .into_response();
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let public_key = hex::encode(server.public_key());
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                if let Err(e) = server.serve_conn(TokioIo::new(upgraded)).await {
                    tracing::debug!(error = %e, "DERP connection ended");
                }
            }
            Err(e) => tracing::debug!(error = %e, "DERP upgrade failed"),
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("DERP"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert("Derp-Version", HeaderValue::from(PROTOCOL_VERSION));
    if let Ok(v) = HeaderValue::from_str(&public_key) {
        h.insert("Derp-Public-Key", v);
    }
    resp
}

/// Netcheck's HTTPS latency probe: any 2xx will do (HEAD is routed here by axum).
async fn probe() -> impl IntoResponse {
    ([(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], "")
}

/// Captive-portal check: 204, echoing a well-formed challenge as
/// `X-Tailscale-Response: response <challenge>`.
async fn no_content(headers: HeaderMap) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let challenge = headers
        .get(CHALLENGE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|c| !c.is_empty() && is_valid_challenge(c));
    if let Some(c) = challenge
        && let Ok(v) = HeaderValue::from_str(&format!("response {c}"))
    {
        resp.headers_mut().insert(RESPONSE_HEADER, v);
    }
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate, no-transform, max-age=0"),
    );
    resp
}

/// Same limits as Tailscale: at most 64 characters from `[A-Za-z0-9._:-]`, so the
/// echo cannot be abused to inject arbitrary header content.
fn is_valid_challenge(c: &str) -> bool {
    c.len() <= 64
        && c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_' | ':'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;
    use std::sync::Arc;
    use tower::ServiceExt;

    fn app() -> Router {
        router(Server::new(
            crate::derp::key::generate(),
            Arc::new(crate::derp::AllowAll),
        ))
    }

    async fn call(method: Method, uri: &str, headers: &[(&str, &str)]) -> Response {
        let mut b = axum::http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        app()
            .oneshot(b.body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    async fn call_tls(headers: &[(&str, &str)]) -> Response {
        let mut b = axum::http::Request::builder()
            .method(Method::GET)
            .uri("/derp");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut req = b.body(Body::empty()).expect("request");
        req.extensions_mut().insert(OverTls);
        app().oneshot(req).await.expect("infallible")
    }

    /// Regression: `/derp` used to upgrade on plain HTTP too.
    #[tokio::test]
    async fn derp_over_plain_http_is_403() {
        let r = call(Method::GET, "/derp", &[("Upgrade", "DERP")]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(r.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(&body[..], b"DERP is served only over TLS on this port");
    }

    #[tokio::test]
    async fn derp_without_upgrade_is_426() {
        let r = call_tls(&[]).await;
        assert_eq!(r.status(), StatusCode::UPGRADE_REQUIRED);
        let r = call_tls(&[("Upgrade", "websocket")]).await;
        assert_eq!(r.status(), StatusCode::UPGRADE_REQUIRED);
        // Asking for DERP on a connection that cannot be upgraded (here: no hyper
        // connection at all) must not claim 101.
        let r = call_tls(&[("Upgrade", "DeRp")]).await;
        assert_eq!(r.status(), StatusCode::UPGRADE_REQUIRED);
    }

    #[tokio::test]
    async fn probes_answer_get_and_head() {
        for path in ["/derp/probe", "/derp/latency-check"] {
            for m in [Method::GET, Method::HEAD] {
                let r = call(m.clone(), path, &[]).await;
                assert_eq!(r.status(), StatusCode::OK, "{m} {path}");
                assert_eq!(r.headers()["access-control-allow-origin"], "*");
            }
            let r = call(Method::POST, path, &[]).await;
            assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        }
    }

    #[tokio::test]
    async fn generate_204_echoes_valid_challenge_only() {
        let r = call(
            Method::GET,
            "/generate_204",
            &[(CHALLENGE_HEADER, "ts_abc.1:2-3")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.headers()[RESPONSE_HEADER], "response ts_abc.1:2-3");

        let r = call(Method::GET, "/generate_204", &[]).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert!(r.headers().get(RESPONSE_HEADER).is_none());

        let long = "a".repeat(65);
        for bad in ["a b", "x<y>", long.as_str()] {
            let r = call(Method::GET, "/generate_204", &[(CHALLENGE_HEADER, bad)]).await;
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
            assert!(r.headers().get(RESPONSE_HEADER).is_none(), "{bad:?}");
        }
    }
}
