//! The whois API against a running server with a policy: the LocalAPI path
//! on the unix socket (no key), `/api/v1/whois` and `/api/v1/authorize` on
//! the whois TCP listener and the public port (API key required), forged
//! `X-Forwarded-For` from an untrusted peer, joins, tag changes, policy
//! reloads, deletions and key expiry showing within a second, and idle
//! connections being closed; `methods`: any method gets the answer;
//! `paths`: authorize below its path, as Envoy asks.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clawscale::state::ApiKeyRef;
use clawscale::types::{NodeId, Scope, UserId};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, UnixStream};

use crate::client::SimNode;
use crate::server::{Store, TestServer, config};

const POLICY: &str = r#"{
  "tagOwners": {"tag:gw": ["alice@example.com"], "tag:bot": ["alice@example.com"]},
  "grants": [
    {"src": ["*"], "dst": ["*"], "ip": ["*"]},
    {"src": ["alice@example.com"], "dst": ["tag:gw"],
     "app": {"clawql.dev/cap/mcp": [{"tools": ["search_*"]}]}},
    {"src": ["tag:bot"], "dst": ["tag:gw"],
     "app": {"clawql.dev/cap/mcp": [{"tools": ["fetch"]}]}}
  ]
}"#;

/// As `POLICY` without alice's mcp grant.
const POLICY_NO_ALICE: &str = r#"{
  "tagOwners": {"tag:gw": ["alice@example.com"], "tag:bot": ["alice@example.com"]},
  "grants": [
    {"src": ["*"], "dst": ["*"], "ip": ["*"]},
    {"src": ["tag:bot"], "dst": ["tag:gw"],
     "app": {"clawql.dev/cap/mcp": [{"tools": ["fetch"]}]}}
  ]
}"#;

/// The bound: changes must be visible this fast.
const PROMPT: Duration = Duration::from_secs(1);

struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<Reply> {
    exchange_with_body(s, method, path, headers, "").await
}

async fn exchange_with_body<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<Reply> {
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: local-tailscaled.sock\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .context("no reply")??;
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP head")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("status")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: buf[end + 4..].to_vec(),
    })
}

/// GET over TCP from source address `from` (any 127/8 address works on
/// Linux loopback).
async fn tcp(to: SocketAddr, from: &str, path: &str, h: &[(&str, &str)]) -> anyhow::Result<Reply> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(format!("{from}:0").parse()?)?;
    let s = sock.connect(to).await?;
    exchange(s, "GET", path, h).await
}

async fn unix(path: &Path, p: &str, h: &[(&str, &str)]) -> anyhow::Result<Reply> {
    exchange(UnixStream::connect(path).await?, "GET", p, h).await
}

async fn join(srv: &TestServer, name: &str, user: UserId, tags: &[&str]) -> anyhow::Result<IpAddr> {
    let (_, key) = srv
        .state
        .create_preauth_key(
            user,
            false,
            false,
            None,
            tags.iter().map(|t| t.to_string()).collect(),
        )
        .await?;
    let mut n = SimNode::new(&srv.url, name);
    n.connect().await?;
    let r = n.register(Some(&key)).await?;
    anyhow::ensure!(r.authorized(), "{name} not authorized: {}", r.error());
    let w = srv.state.world();
    let node = w.node_by_name(name).context("joined node in World")?;
    node.ipv4.map(IpAddr::V4).context("an IPv4 address")
}

fn node_id(srv: &TestServer, ip: IpAddr) -> NodeId {
    srv.state.world().node_by_ip(&ip).expect("node").id
}

/// Polls `f` until it holds, failing after `PROMPT`.
async fn within<F, Fut>(what: &str, mut f: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let t0 = Instant::now();
    loop {
        if f().await? {
            return Ok(t0.elapsed());
        }
        anyhow::ensure!(
            t0.elapsed() < PROMPT,
            "{what}: not visible within {PROMPT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn whois_and_authorize_end_to_end() -> anyhow::Result<()> {
    let l = Listeners::start_with(|cfg, dir| {
        cfg.whois.audit_log = Some(dir.join("audit/authorize.jsonl"));
    })
    .await?;
    let audit = l.dir.path().join("audit/authorize.jsonl");
    let (srv, sock, tcp_addr, alpha) = (&l.srv, &l.sock, l.tcp, l.alpha);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(sock)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o660, "whois socket mode");
    }
    let bot = join(srv, "bot", l.alice, &["tag:bot"]).await?;

    // LocalAPI path on the unix socket: no key, tailscaled's shape.
    let r = unix(sock, &format!("/localapi/v0/whois?addr={alpha}:41234"), &[]).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.headers["content-type"], "application/json");
    let v = r.json();
    assert_eq!(v["Node"]["Name"], "alpha.clawql.local.");
    assert_eq!(v["Node"]["StableID"], format!("n{}", node_id(srv, alpha).0));
    assert_eq!(v["UserProfile"]["LoginName"], "alice@example.com");
    assert_eq!(v["CapMap"]["clawql.dev/cap/mcp"][0]["tools"][0], "search_*");
    // Tagged caller: tagged-devices profile, identity in Tags.
    let v = unix(sock, &format!("/localapi/v0/whois?addr={bot}"), &[])
        .await?
        .json();
    assert_eq!(v["UserProfile"]["LoginName"], "tagged-devices");
    assert_eq!(v["Node"]["Tags"], serde_json::json!(["tag:bot"]));
    // Per destination: towards alpha nobody has caps.
    let v = unix(
        sock,
        &format!("/localapi/v0/whois?addr={bot}&dst=alpha"),
        &[],
    )
    .await?
    .json();
    assert!(v.get("CapMap").is_none(), "{v}");
    let r = unix(sock, "/localapi/v0/whois?addr=100.64.99.99:1", &[]).await?;
    assert_eq!((r.status, r.text().trim()), (404, "no match for IP:port"));
    let r = unix(sock, "/localapi/v0/whois", &[]).await?;
    assert_eq!(
        (r.status, r.text().trim()),
        (400, "missing 'addr' parameter")
    );
    // Parameters are percent-decoded; of a repeated one the first counts
    // (Go's url.Values.Get). Other paths are not found; every method gets
    // the answer (see `every_method_gets_the_answer`).
    let r = unix(
        sock,
        &format!("/localapi/v0/whois?x=1&addr={alpha}%3A41234&addr=100.64.99.99"),
        &[],
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Node"]["Name"], "alpha.clawql.local.");
    assert_eq!(unix(sock, "/localapi/v0/status", &[]).await?.status, 404);
    let path = format!("/localapi/v0/whois?addr={alpha}");
    let r = exchange(UnixStream::connect(&sock).await?, "HEAD", &path, &[]).await?;
    assert_eq!((r.status, r.body.len()), (200, 0));

    // TCP listener and public port need a key of scope whois (or admin).
    let key = &l.key;
    let bearer = l.bearer();
    let auth = [("Authorization", bearer.as_str())];
    let path = format!("/localapi/v0/whois?addr={alpha}");
    assert_eq!(tcp(tcp_addr, "127.0.0.1", &path, &[]).await?.status, 401);
    let bad = [(
        "Authorization",
        "Bearer cskey-api-000000000000-0000000000000000000000000000000000000000000000000000000000000000",
    )];
    assert_eq!(tcp(tcp_addr, "127.0.0.1", &path, &bad).await?.status, 401);
    let r = tcp(tcp_addr, "127.0.0.1", &path, &auth).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Node"]["Name"], "alpha.clawql.local.");
    let api = format!("/api/v1/whois?addr={alpha}");
    assert_eq!(tcp(srv.addr, "127.0.0.1", &api, &[]).await?.status, 401);
    let r = tcp(srv.addr, "127.0.0.1", &api, &auth).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["UserProfile"]["LoginName"], "alice@example.com");
    // The LocalAPI path is not on the public port.
    assert_eq!(tcp(srv.addr, "127.0.0.1", &path, &auth).await?.status, 404);

    // Authorize: the proxy (127.0.0.2) forwards alpha's address.
    let xff = alpha.to_string();
    let ok = tcp(
        srv.addr,
        "127.0.0.2",
        "/api/v1/authorize",
        &[
            auth[0],
            ("X-Forwarded-For", &xff),
            ("X-MCP-Tool", "search_web"),
        ],
    )
    .await?;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.headers["tailscale-user-login"], "alice@example.com");
    assert_eq!(ok.headers["tailscale-node"], "alpha.clawql.local");
    assert_eq!(ok.headers["tailscale-tags"], "");
    assert_eq!(
        ok.headers["tailscale-caps"],
        r#"{"clawql.dev/cap/mcp":[{"tools":["search_*"]}]}"#
    );
    let no = tcp(
        srv.addr,
        "127.0.0.2",
        "/api/v1/authorize",
        &[
            auth[0],
            ("X-Forwarded-For", &xff),
            ("X-MCP-Tool", "delete_all"),
        ],
    )
    .await?;
    assert_eq!(no.status, 403);
    assert!(no.text().contains("delete_all"), "{}", no.text());
    // Forged X-Forwarded-For from an untrusted peer: identity stays the
    // peer's own (127.0.0.1, no node), whatever the header says.
    let forged = tcp(
        srv.addr,
        "127.0.0.1",
        "/api/v1/authorize",
        &[
            auth[0],
            ("X-Forwarded-For", &xff),
            ("X-MCP-Tool", "search_web"),
        ],
    )
    .await?;
    assert_eq!(forged.status, 403, "{}", forged.text());
    assert!(!forged.headers.contains_key("tailscale-user-login"));
    assert!(forged.text().contains("not a node"), "{}", forged.text());
    // Unix socket clients are trusted proxies and need no key.
    let r = unix(
        sock,
        "/api/v1/authorize",
        &[
            ("X-Forwarded-For", &bot.to_string()),
            ("X-MCP-Tool", "fetch"),
        ],
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.headers["tailscale-tags"], "tag:bot");
    assert_eq!(r.headers["tailscale-user-login"], "tagged-devices");

    // Changes show within a second. A policy reload takes alice's grant:
    srv.state.set_policy(POLICY_NO_ALICE.into()).await?;
    let (s, x): (&Path, &str) = (sock, &xff);
    within("policy reload", move || async move {
        let h = [("X-Forwarded-For", x), ("X-MCP-Tool", "search_web")];
        Ok(unix(s, "/api/v1/authorize", &h).await?.status == 403)
    })
    .await?;
    // A tag change:
    srv.state
        .set_tags(node_id(srv, alpha), vec!["tag:bot".into()])
        .await?;
    within("tag change", move || async move {
        let v = unix(s, &format!("/localapi/v0/whois?addr={alpha}"), &[])
            .await?
            .json();
        Ok(v["Node"]["Tags"] == serde_json::json!(["tag:bot"])
            && v["UserProfile"]["LoginName"] == "tagged-devices")
    })
    .await?;
    // A join:
    let late = join(srv, "late", l.alice, &[]).await?;
    within("join", move || async move {
        Ok(unix(s, &format!("/localapi/v0/whois?addr={late}"), &[])
            .await?
            .status
            == 200)
    })
    .await?;
    // A deletion:
    srv.state.delete_node(node_id(srv, alpha)).await?;
    within("deletion", move || async move {
        Ok(unix(s, &format!("/localapi/v0/whois?addr={alpha}"), &[])
            .await?
            .status
            == 404)
    })
    .await?;
    // Key expiry (requests use a snapshot at most two seconds old):
    srv.state
        .expire_api_key(ApiKeyRef::Prefix(
            key["cskey-api-".len().."cskey-api-".len() + 12].to_string(),
        ))
        .await?;
    let t0 = Instant::now();
    loop {
        let s = tcp(srv.addr, "127.0.0.1", &api, &auth).await?.status;
        if s == 401 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_millis(2500),
            "expired key still accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A key created now is accepted within a second, although the snapshot
    // in use (just re-read) does not have it yet.
    let (_, fresh) = srv.state.create_api_key(Scope::Whois, None).await?;
    let bearer = format!("Bearer {fresh}");
    let auth = [("Authorization", bearer.as_str())];
    let t0 = Instant::now();
    loop {
        // alpha is deleted by now: an accepted key gets 404.
        match tcp(srv.addr, "127.0.0.1", &api, &auth).await?.status {
            401 => assert!(
                t0.elapsed() < Duration::from_millis(1500),
                "new key not accepted"
            ),
            s => {
                assert_eq!(s, 404);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The audit log has every decision, allow and deny.
    let t0 = Instant::now();
    let lines: Vec<Value> = loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if lines.len() >= 5 || t0.elapsed() > Duration::from_secs(5) {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(lines.len() >= 5, "{lines:?}");
    let first = &lines[0];
    assert_eq!(first["decision"], "allow");
    assert_eq!(first["src"], xff);
    assert_eq!(first["node"], "alpha.clawql.local");
    assert_eq!(first["user"], "alice@example.com");
    assert_eq!(first["tool"], "search_web");
    assert_eq!(first["rule"], "clawql.dev/cap/mcp[0] tools:\"search_*\"");
    assert!(first["time"].is_string());
    assert_eq!(lines[1]["decision"], "deny");
    assert_eq!(
        lines[2]["src"], "127.0.0.1",
        "forged header not logged as identity"
    );
    l.srv.stop().await;
    Ok(())
}

#[tokio::test]
async fn whois_is_off_unless_configured_and_keys_are_scoped() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let srv = TestServer::start(dir.path(), &Store::Sqlite).await?;
    assert!(srv.whois.tcp.is_none() && srv.whois.unix.is_none());
    let alice = srv.create_user("alice").await?;
    let alpha = join(&srv, "alpha", alice, &[]).await?;
    let (_, admin) = srv.state.create_api_key(Scope::Admin, None).await?;
    let bearer = format!("Bearer {admin}");
    let r = tcp(
        srv.addr,
        "127.0.0.1",
        &format!("/api/v1/whois?addr={alpha}"),
        &[("Authorization", &bearer)],
    )
    .await?;
    assert_eq!(r.status, 200, "admin scope includes whois: {}", r.text());
    // No gateway configured: identity, but no tool can be allowed.
    let r = tcp(
        srv.addr,
        "127.0.0.1",
        "/api/v1/authorize",
        &[("Authorization", &bearer)],
    )
    .await?;
    assert_eq!(r.status, 403);
    let keys = srv.state.list_api_keys().await?;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].scope, Scope::Admin);
    srv.state.delete_api_key(ApiKeyRef::Id(keys[0].id)).await?;
    assert!(srv.state.list_api_keys().await?.is_empty());
    srv.stop().await;
    Ok(())
}

/// Reads from `s` until the peer closes; how long that took, or `None` if
/// it stayed open for `limit`.
async fn closed_within<S: AsyncRead + Unpin>(s: &mut S, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + limit).into(), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

/// `whois.idle_timeout` closes connections that send no request head: one
/// that sends nothing, one stuck halfway through a head, and a keep-alive
/// connection after its answer. A connection that keeps asking stays up.
#[tokio::test]
async fn idle_whois_connections_are_closed() -> anyhow::Result<()> {
    let idle = Duration::from_millis(400);
    let dir = tempfile::tempdir()?;
    let sock: PathBuf = dir.path().join("whois.sock");
    let mut cfg = config(dir.path(), &Store::Sqlite);
    cfg.whois.unix_socket = Some(sock.clone());
    cfg.whois.listen_addr = Some("127.0.0.1:0".parse()?);
    cfg.whois.idle_timeout = idle;
    let srv = TestServer::start_with(cfg).await?;
    let tcp_addr = srv.whois.tcp.context("whois TCP listener bound")?;
    let alice = srv.create_user("alice").await?;
    let alpha = join(&srv, "alpha", alice, &[]).await?;
    let limit = Duration::from_secs(10);

    let mut silent = UnixStream::connect(&sock).await?;
    let t = closed_within(&mut silent, limit)
        .await
        .context("silent unix connection kept")?;
    assert!(t >= idle / 2, "closed after {t:?}");
    let mut silent = tokio::net::TcpStream::connect(tcp_addr).await?;
    closed_within(&mut silent, limit)
        .await
        .context("silent TCP connection kept")?;
    let mut half = UnixStream::connect(&sock).await?;
    half.write_all(b"GET /localapi/v0/whois?addr=").await?;
    closed_within(&mut half, limit)
        .await
        .context("half a request head kept")?;

    // Keep-alive: answers as long as requests come, closed once they stop.
    let mut s = UnixStream::connect(&sock).await?;
    let req = format!("GET /localapi/v0/whois?addr={alpha} HTTP/1.1\r\nHost: x\r\n\r\n");
    for _ in 0..4 {
        s.write_all(req.as_bytes()).await?;
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        // One answer: its head, then Content-Length bytes.
        loop {
            let n = tokio::time::timeout(limit, s.read(&mut buf)).await??;
            anyhow::ensure!(n > 0, "closed while requests were coming");
            got.extend_from_slice(&buf[..n]);
            let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .context("content-length")?
                .trim()
                .parse()?;
            if got.len() >= end + 4 + len {
                break;
            }
        }
        tokio::time::sleep(idle / 4).await;
    }
    closed_within(&mut s, limit)
        .await
        .context("idle keep-alive connection kept")?;
    srv.stop().await;
    Ok(())
}

mod listeners;
mod methods;
mod paths;

use listeners::Listeners;
