//! Each mechanism against a real loopback connection: a silent client, a
//! half-sent head, an idle keep-alive connection (HTTP/1 and HTTP/2), a
//! trickled body, a stream that must stay open, and one whose peer stopped
//! answering PINGs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

type TestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// Deliberately short bounds, and `idle` far from the others so each test
/// shows which mechanism closed the connection; every test allows several
/// times more for a loaded machine.
fn timeouts() -> Timeouts {
    Timeouts {
        read_header: Duration::from_millis(300),
        read_body: Duration::from_millis(400),
        idle: Duration::from_secs(3),
        keepalive_interval: Duration::from_millis(200),
        keepalive_timeout: Duration::from_millis(200),
    }
}

/// Well under `idle`: a connection closed within this was closed by
/// something else.
const BEFORE_IDLE: Duration = Duration::from_secs(2);
const LIMIT: Duration = Duration::from_secs(8);

/// `/` answers at once; `/stream?n` streams `n` chunks 150 ms apart (0:
/// for ever); `/echo` reads the whole body and answers its length, or 408
/// when reading fails.
async fn handle(
    req: Request<Deadlined<hyper::body::Incoming>>,
) -> Result<Response<TestBody>, Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = match path.as_str() {
        "/stream" => {
            let n: u32 = query.parse().unwrap_or(0);
            let chunks = futures_util::stream::unfold(0u32, move |i| async move {
                if n != 0 && i == n {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
                Some((Ok(Frame::data(Bytes::from(format!("{i};")))), i + 1))
            });
            StreamBody::new(chunks).boxed_unsync()
        }
        "/echo" => match req.into_body().collect().await {
            Ok(b) => Full::new(Bytes::from(b.to_bytes().len().to_string())).boxed_unsync(),
            Err(_) => {
                let mut r = Response::new(Empty::new().boxed_unsync());
                *r.status_mut() = hyper::StatusCode::REQUEST_TIMEOUT;
                return Ok(r);
            }
        },
        _ => Full::new(Bytes::from_static(b"ok")).boxed_unsync(),
    };
    Ok(Response::new(body))
}

/// Serves `handle` the way the public listener does.
async fn server(t: Timeouts) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.expect("accept");
            let first_request_by = Instant::now() + t.read_header;
            tokio::spawn(async move {
                let activity = Activity::new();
                let svc = Tracked::new(
                    hyper::service::service_fn(handle),
                    activity.clone(),
                    t.read_body,
                );
                let builder = auto_builder(&t);
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), svc);
                let _ = serve_connection(conn, &activity, first_request_by, t.idle).await;
            });
        }
    });
    addr
}

/// Reads (and discards) until the peer closes; how long that took, or
/// `None` if the connection was still open after `limit`.
async fn closed_within<S: AsyncRead + Unpin>(s: &mut S, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(start + limit, s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn silent_connection_is_closed_after_read_header() {
    let t = timeouts();
    let addr = server(t).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let took = closed_within(&mut s, BEFORE_IDLE)
        .await
        .expect("silent client kept");
    assert!(took >= t.read_header / 2, "closed after {took:?}");
}

#[tokio::test]
async fn half_sent_head_is_closed_even_while_trickling() {
    let t = timeouts();
    let addr = server(t).await;

    // One byte that leaves even the HTTP/1-or-2 sniff undecided ("P" may
    // start "POST" or the HTTP/2 preface).
    let mut p = TcpStream::connect(addr).await.expect("connect");
    p.write_all(b"P").await.expect("write");
    closed_within(&mut p, BEFORE_IDLE)
        .await
        .expect("one-byte client kept");

    // A head trickled a byte every 100 ms: every byte is progress for a
    // per-read timer, but the head must be complete by the deadline.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let start = Instant::now();
    let head =
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for b in head {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = start.elapsed();
    assert!(
        took < head.len() as u32 * Duration::from_millis(100),
        "the trickled head was read to the end"
    );
    closed_within(&mut s, BEFORE_IDLE)
        .await
        .expect("slowloris kept");
}

#[tokio::test]
async fn idle_http1_keep_alive_is_closed_and_busy_one_kept() {
    let t = timeouts();
    let addr = server(t).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // Requests every 150 ms (half the header bound) keep the connection
    // for longer than that bound.
    for _ in 0..8 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut got = Vec::new();
        while !got.ends_with(b"ok") {
            let mut buf = [0u8; 1024];
            let n = tokio::time::timeout(LIMIT, s.read(&mut buf))
                .await
                .expect("answer in time")
                .expect("read");
            assert!(n > 0, "closed while requests were coming");
            got.extend_from_slice(&buf[..n]);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Between requests HTTP/1 gets `read_header`, far less than `idle`.
    closed_within(&mut s, BEFORE_IDLE)
        .await
        .expect("idle keep-alive kept");
}

/// An HTTP/2 client connection and the task driving it; the task ends when
/// the server closes the connection.
async fn h2(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    (
        send,
        tokio::spawn(async move {
            let _ = conn.await;
        }),
    )
}

fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::builder()
        .uri(format!("http://x{path}"))
        .body(Empty::new())
        .expect("request")
}

#[tokio::test]
async fn idle_http2_connection_is_closed() {
    let t = timeouts();
    let addr = server(t).await;

    // A preface and SETTINGS but never a request: closed by the
    // first-request deadline, not the idle timeout.
    let (_send, conn) = h2(addr).await;
    tokio::time::timeout(BEFORE_IDLE, conn)
        .await
        .expect("HTTP/2 connection without a request kept")
        .expect("join");

    let (mut send, conn) = h2(addr).await;
    let resp = send.send_request(get("/")).await.expect("request");
    assert_eq!(resp.status(), 200);
    let start = Instant::now();
    tokio::time::timeout(LIMIT, conn)
        .await
        .expect("idle HTTP/2 connection kept")
        .expect("join");
    assert!(
        start.elapsed() >= t.idle / 2,
        "closed after {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn open_stream_keeps_its_connection_past_the_idle_timeout() {
    let t = timeouts();
    let addr = server(t).await;
    let (mut send, conn) = h2(addr).await;
    // 30 chunks, 150 ms apart: 4.5 s, past the idle timeout and many PING
    // rounds (the client answers them).
    let resp = send.send_request(get("/stream?30")).await.expect("request");
    let body = tokio::time::timeout(LIMIT, resp.into_body().collect())
        .await
        .expect("stream in time")
        .expect("stream complete")
        .to_bytes();
    let expected: String = (0..30).map(|i| format!("{i};")).collect();
    assert_eq!(body, expected.as_bytes());
    assert!(!conn.is_finished(), "closed although a stream was open");
    // Once the stream is done the connection is idle like any other.
    tokio::time::timeout(LIMIT, conn)
        .await
        .expect("idle after the stream")
        .expect("join");
}

#[tokio::test]
async fn stream_to_a_peer_that_ignores_pings_is_closed() {
    let t = timeouts();
    let addr = server(t).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // Preface, empty SETTINGS, then HEADERS (END_STREAM|END_HEADERS) for
    // `GET /stream` from the HPACK static table plus a literal :path.
    let mut out = Vec::new();
    out.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    out.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let path = b"/stream";
    let mut block = vec![0x82, 0x86, 0x04, path.len() as u8];
    block.extend_from_slice(path);
    out.extend_from_slice(&[0, 0, block.len() as u8, 1, 0x05, 0, 0, 0, 1]);
    out.extend_from_slice(&block);
    s.write_all(&out).await.expect("write");
    // Reads everything (so the stream is not stalled by flow control) but
    // never writes again: no SETTINGS or PING acknowledgement.
    let took = closed_within(&mut s, LIMIT)
        .await
        .expect("a peer that ignores PINGs was kept");
    assert!(
        took >= t.keepalive_interval && took < BEFORE_IDLE,
        "closed after {took:?}, not by an unanswered PING"
    );
}

#[tokio::test]
async fn trickled_request_body_is_cut_after_read_body() {
    let t = timeouts();
    let addr = server(t).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .expect("write");
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    // A byte every 100 ms would take 9 s to finish the body.
    for _ in 0..90 {
        let _ = s.write_all(b"x").await;
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert!(start.elapsed() < BEFORE_IDLE, "took {:?}", start.elapsed());
    closed_within(&mut s, LIMIT)
        .await
        .expect("connection with a half-read body kept");
}

#[tokio::test]
async fn idle_clock_runs_only_while_nothing_is_in_flight() {
    let a = Activity::new();
    let idle = Duration::from_millis(300);
    let watcher = {
        let a = a.clone();
        // A first-request deadline far away: only the idle clock can end it.
        tokio::spawn(async move {
            a.until_idle(Instant::now() + Duration::from_secs(60), idle)
                .await;
            Instant::now()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let one = a.begin();
    let two = a.begin();
    assert_eq!(a.in_flight(), 2);
    tokio::time::sleep(idle * 3).await;
    drop(one);
    tokio::time::sleep(idle * 2).await;
    assert!(
        !watcher.is_finished(),
        "idle reported while a request was in flight"
    );
    let released = Instant::now();
    drop(two);
    assert_eq!(a.in_flight(), 0);
    let done = tokio::time::timeout(LIMIT, watcher)
        .await
        .expect("idle after the last request")
        .expect("join");
    let after = done - released;
    assert!(after >= idle / 2 && after < LIMIT, "idle after {after:?}");
}
