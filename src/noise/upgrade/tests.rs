//! End-to-end: axum on a real loopback socket, our client, HTTP/2 inside.

use super::*;
use crate::noise::client::connect;
use crate::noise::handshake::Initiator;
use axum::Router;
use axum::extract::State;
use axum::routing::any;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use x25519_dalek::PublicKey;

#[derive(Clone)]
struct Server {
    key: Arc<StaticSecret>,
    early: bool,
}

async fn ts2021(State(s): State<Server>, req: Request) -> Response {
    let (resp, pending) = match accept(req, &s.key) {
        Ok(ok) => ok,
        Err(e) => return e.into_response(),
    };
    let pending = if s.early {
        pending
    } else {
        pending.without_early_payload()
    };
    tokio::spawn(async move {
        let acc = pending.finish().await.expect("upgrade finishes");
        serve_h2(acc).await;
    });
    resp
}

/// Answers every request with `mkey=<hex> v=<version> len=<body len>`.
async fn serve_h2(acc: Accepted) {
    let who = format!("mkey={} v={}", hex::encode(acc.machine_key), acc.version);
    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let who = who.clone();
        async move {
            let path = req.uri().path().to_owned();
            let body = req.into_body().collect().await?.to_bytes();
            let text = format!(
                "{who} path={path} len={} sum={}",
                body.len(),
                checksum(&body)
            );
            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(text))))
        }
    });
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(acc.stream), svc)
        .await;
}

fn checksum(b: &[u8]) -> u64 {
    b.iter()
        .enumerate()
        .map(|(i, &x)| (i as u64 + 1) * u64::from(x))
        .sum()
}

async fn start(early: bool) -> (SocketAddr, [u8; 32]) {
    let key = StaticSecret::random();
    let public = *PublicKey::from(&key).as_bytes();
    let app = Router::new()
        .route("/ts2021", any(ts2021))
        .with_state(Server {
            key: Arc::new(key),
            early,
        });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, public)
}

async fn h2_requests(addr: SocketAddr, server_pub: [u8; 32], expect_early: bool) {
    let machine = StaticSecret::random();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (stream, challenge) = connect(tcp, &addr.to_string(), server_pub, &machine, 133)
        .await
        .unwrap();
    match challenge {
        Some(c) => {
            assert!(expect_early);
            assert!(c.starts_with("chalpub:") && c.len() == 8 + 64, "{c}");
        }
        None => assert!(!expect_early),
    }

    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mkey = hex::encode(PublicKey::from(&machine).as_bytes());

    // Several streams at once on the one connection, bodies big enough to
    // need many Noise records each way.
    let mut tasks = Vec::new();
    for i in 0..5usize {
        let mut sender = sender.clone();
        let body: Vec<u8> = (0..30_000 + i * 7_001)
            .map(|j| (j * 13 + i) as u8)
            .collect();
        let want = format!(
            "mkey={mkey} v=133 path=/machine/{i} len={} sum={}",
            body.len(),
            checksum(&body)
        );
        tasks.push(tokio::spawn(async move {
            let req = hyper::Request::post(format!("https://ctl/machine/{i}"))
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let got = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(std::str::from_utf8(&got).unwrap(), want);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn upgrade_over_loopback_then_http2_with_early_payload() {
    let (addr, public) = start(true).await;
    h2_requests(addr, public, true).await;
}

#[tokio::test]
async fn upgrade_without_early_payload_still_carries_http2() {
    let (addr, public) = start(false).await;
    h2_requests(addr, public, false).await;
}

#[tokio::test]
async fn client_with_wrong_server_key_gets_400() {
    let (addr, _) = start(true).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let err = connect(tcp, "ctl", [7; 32], &StaticSecret::random(), 133)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::UpgradeStatus(400)), "{err}");
}

/// Sends a hand-made request and returns the response head and body text.
async fn raw(addr: SocketAddr, method: &str, headers: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req =
        format!("{method} /ts2021 HTTP/1.1\r\nHost: ctl\r\n{headers}Content-Length: 0\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    // Read until the head (and a short body, if any) has arrived.
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        let n = tcp.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), async {
        let n = tcp.read(&mut buf).await.unwrap_or(0);
        got.extend_from_slice(&buf[..n]);
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

fn valid_init(server_pub: &[u8; 32]) -> String {
    let (_, init) = Initiator::new(&StaticSecret::random(), server_pub, 133).unwrap();
    STANDARD.encode(init)
}

#[tokio::test]
async fn bad_requests_get_short_4xx_answers() {
    let (addr, public) = start(true).await;
    let good = valid_init(&public);
    let mut tampered = STANDARD.decode(&good).unwrap();
    tampered[60] ^= 1;
    let tampered = STANDARD.encode(tampered);
    let short = STANDARD.encode([0u8; 100]);
    let unpadded = good.trim_end_matches('=').to_owned();
    let cases = [
        ("POST", String::new(), "400", "Upgrade"),
        (
            "POST",
            "Upgrade: websocket\r\n".to_owned(),
            "400",
            "Upgrade",
        ),
        (
            "POST",
            "Upgrade: tailscale-control-protocol\r\n".to_owned(),
            "400",
            "missing X-Tailscale-Handshake",
        ),
        (
            "POST",
            "Upgrade: tailscale-control-protocol\r\nX-Tailscale-Handshake: !!!\r\n".to_owned(),
            "400",
            "invalid X-Tailscale-Handshake",
        ),
        (
            "POST",
            format!("Upgrade: tailscale-control-protocol\r\nX-Tailscale-Handshake: {unpadded}\r\n"),
            "400",
            "invalid X-Tailscale-Handshake",
        ),
        (
            "POST",
            format!("Upgrade: tailscale-control-protocol\r\nX-Tailscale-Handshake: {short}\r\n"),
            "400",
            "100 bytes, want 101",
        ),
        (
            "POST",
            format!("Upgrade: tailscale-control-protocol\r\nX-Tailscale-Handshake: {tampered}\r\n"),
            "400",
            "authentication failed",
        ),
        (
            "PUT",
            format!("Upgrade: tailscale-control-protocol\r\nX-Tailscale-Handshake: {good}\r\n"),
            "405",
            "method",
        ),
    ];
    for (method, headers, status, text) in cases {
        let resp = raw(addr, method, &headers).await;
        assert!(
            resp.starts_with(&format!("HTTP/1.1 {status}")),
            "{headers:?} -> {resp}"
        );
        assert!(resp.contains(text), "{headers:?} -> {resp}");
    }
}

#[tokio::test]
async fn get_and_any_case_upgrade_are_accepted_with_both_headers_in_the_101() {
    let (addr, public) = start(true).await;
    let headers = format!(
        "Upgrade: Tailscale-Control-Protocol\r\nConnection: Upgrade\r\nX-Tailscale-Handshake: {}\r\n",
        valid_init(&public)
    );
    let resp = raw(addr, "GET", &headers).await.to_ascii_lowercase();
    assert!(resp.starts_with("http/1.1 101"), "{resp}");
    assert!(
        resp.contains("upgrade: tailscale-control-protocol\r\n"),
        "{resp}"
    );
    assert!(resp.contains("connection: upgrade\r\n"), "{resp}");
}

#[test]
fn accept_without_hyper_upgrade_support_is_a_400() {
    let key = StaticSecret::random();
    let public = *PublicKey::from(&key).as_bytes();
    let req = axum::http::Request::post("/ts2021")
        .header("upgrade", UPGRADE_PROTOCOL)
        .header(HANDSHAKE_HEADER, valid_init(&public))
        .body(Body::empty())
        .unwrap();
    let err = accept(req, &key).err().unwrap();
    assert!(matches!(err, Error::NotUpgradable));
    assert_eq!(err.into_response().status(), StatusCode::BAD_REQUEST);
}

#[test]
fn local_failures_map_to_500_without_details() {
    let e = Error::Io(std::io::Error::other("disk on fire"));
    let resp = e.into_response();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
}
