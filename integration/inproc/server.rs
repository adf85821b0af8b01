//! The in-process server fixture: `clawscale::app::start` on a runtime of
//! its own, bound to 127.0.0.1 port 0, with its data in a temp directory.
//!
//! Owns: building the embedded config, starting and stopping the server
//! (stopping = shutting its runtime down, which drops every task, listener
//! and database handle, as a process exit would), users and pre-auth keys
//! through `StateHandle`, and a raw HTTP/1.1 helper for `/healthz` and
//! malformed requests. Depends on `clawscale::{app, config, state}`.
//!
//! A separate runtime keeps the server's tasks apart from the clients', so
//! a restart really ends every server task while the test goes on.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clawscale::config::{Config, Database};
use clawscale::state::StateHandle;
use clawscale::types::UserId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use url::Url;

/// Which database the server uses.
#[derive(Debug, Clone)]
pub enum Store {
    /// SQLite in the data directory (the embedded default).
    Sqlite,
    /// A PostgreSQL URL (a per-run database, see `postgres.rs`).
    Postgres(String),
}

/// A running server and the runtime that owns its tasks.
pub struct TestServer {
    pub url: Url,
    pub addr: SocketAddr,
    pub state: StateHandle,
    /// Where the whois listeners are bound (if configured).
    pub whois: clawscale::whois::Bound,
    /// Where the DNS server listens (if `dns.server.enabled`).
    pub dns: Option<clawscale::app::DnsAddrs>,
    /// The admin operations (OAuth clients, …).
    pub admin: clawscale::admin::Admin,
    runtime: Option<Runtime>,
}

/// The config every in-process server uses.
pub fn config(data_dir: &Path, store: &Store) -> Config {
    let mut c = Config::embedded(data_dir);
    c.listen_addr = "127.0.0.1:0".parse().expect("literal address");
    c.server_url = "http://127.0.0.1:0".into();
    c.metrics_listen_addr = None;
    c.grpc_listen_addr = None;
    c.unix_socket = data_dir.join("admin.sock");
    if let Some(d) = c.derp.server.as_mut() {
        d.stun_listen_addr = Some("127.0.0.1:0".parse().expect("literal address"));
    }
    if let Store::Postgres(url) = store {
        c.database = Database::Postgres {
            url: url.clone(),
            max_open_conns: 8,
        };
    }
    c
}

impl TestServer {
    /// Starts a server on `data_dir` (created if missing).
    pub async fn start(data_dir: &Path, store: &Store) -> anyhow::Result<TestServer> {
        TestServer::start_with(config(data_dir, store)).await
    }

    pub async fn start_with(config: Config) -> anyhow::Result<TestServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("server")
            .enable_all()
            .build()?;
        let running = runtime
            .spawn(clawscale::app::start(config))
            .await
            .context("server start task")??;
        let url: Url = format!("{}/", running.server_url).parse()?;
        Ok(TestServer {
            url,
            addr: running.addr,
            state: running.state,
            whois: running.whois,
            dns: running.dns,
            admin: running.admin,
            runtime: Some(runtime),
        })
    }

    /// Ends every server task (listeners, map sessions, the state writer,
    /// the database pool) and waits for the runtime's threads.
    pub async fn stop(mut self) {
        if let Some(rt) = self.runtime.take() {
            // Shutting a runtime down blocks; do it off the test's runtime.
            let _ =
                tokio::task::spawn_blocking(move || rt.shutdown_timeout(Duration::from_secs(10)))
                    .await;
        }
    }

    pub async fn create_user(&self, name: &str) -> anyhow::Result<UserId> {
        let u = self
            .state
            .create_user(name, name, &format!("{name}@example.com"))
            .await?;
        Ok(u.id)
    }

    /// A pre-auth key for `user`; returns its secret text.
    pub async fn key(&self, user: UserId, reusable: bool) -> anyhow::Result<String> {
        let (_, secret) = self
            .state
            .create_preauth_key(user, reusable, false, None, vec![])
            .await?;
        Ok(secret)
    }

    /// `GET /healthz` status code.
    pub async fn healthz(&self) -> anyhow::Result<u16> {
        Ok(self.get("/healthz").await?.0)
    }

    /// `GET /metrics` body.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let (_, body) = self.get("/metrics").await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    async fn get(&self, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        http_get(self.addr, path).await
    }
}

/// `GET path` from the server at `addr` over a fresh HTTP/1.1 connection:
/// status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    raw_http(addr, req.as_bytes()).await
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A test that failed before `stop`: drop the runtime without
        // blocking the (async) caller.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Sends `request` as-is on a fresh connection and reads one reply (head
/// plus `Content-Length` body, or until the server closes); returns the
/// status code (0 if the server answered no HTTP) and the body.
pub async fn raw_http(addr: SocketAddr, request: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(request).await?;
    tokio::time::timeout(Duration::from_secs(15), read_reply(&mut s))
        .await
        .context("server neither answered nor closed the connection")?
}

/// Reads one HTTP/1.1 reply from `s`.
pub async fn read_reply(s: &mut TcpStream) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let want = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if want.is_some_and(|w| buf.len() >= end + 4 + w) {
                return Ok(parse_reply(&buf));
            }
        }
        let n = match s.read(&mut chunk).await {
            Ok(n) => n,
            // A reset after a refusal is as good as a close.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(parse_reply(&buf));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Status code and body of an HTTP/1.1 reply (0 and everything when it is
/// not one).
pub fn parse_reply(buf: &[u8]) -> (u16, Vec<u8>) {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, buf.to_vec());
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, buf[end + 4..].to_vec())
}
