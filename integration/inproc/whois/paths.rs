//! Envoy's HTTP ext_authz (Istio, Envoy Gateway and other gateways built on
//! it) sends its check to `path_prefix` followed by the original request's
//! path, so with `path_prefix: /api/v1/authorize` an MCP call to `/mcp`
//! arrives as `/api/v1/authorize/mcp`. It gets the authorize answer on
//! every listener; a path that merely starts with the same letters does not.

use std::path::PathBuf;

use anyhow::Context;
use clawscale::config::PolicyMode;
use clawscale::types::Scope;
use tokio::net::UnixStream;

use super::{POLICY, exchange_with_body, join};
use crate::server::{Store, TestServer, config};

#[tokio::test]
async fn authorize_answers_below_its_path_as_envoy_asks() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let sock: PathBuf = dir.path().join("whois.sock");
    let mut cfg = config(dir.path(), &Store::Sqlite);
    cfg.policy.mode = PolicyMode::Database;
    cfg.whois.unix_socket = Some(sock.clone());
    cfg.whois.listen_addr = Some("127.0.0.1:0".parse()?);
    cfg.whois.gateway = Some("gw".into());
    cfg.whois.trusted_proxies = vec!["127.0.0.2/32".parse()?];
    let srv = TestServer::start_with(cfg).await?;
    let tcp_addr = srv.whois.tcp.context("whois TCP listener bound")?;
    srv.state.set_policy(POLICY.into()).await?;
    let alice = srv.create_user("alice").await?;
    let alpha = join(&srv, "alpha", alice, &[]).await?.to_string();
    let _gw = join(&srv, "gw", alice, &["tag:gw"]).await?;
    let (_, key) = srv.state.create_api_key(Scope::Whois, None).await?;
    let bearer = format!("Bearer {key}");

    // One request to `path` on each listener; the public port and the
    // whois TCP listener are reached from the trusted proxy's address.
    let ask = |path: String, tool: &'static str| {
        let (sock, bearer, alpha) = (sock.clone(), bearer.clone(), alpha.clone());
        async move {
            let headers = [
                ("Authorization", bearer.as_str()),
                ("X-Forwarded-For", alpha.as_str()),
                ("X-MCP-Tool", tool),
            ];
            let from_proxy = || async {
                let s = tokio::net::TcpSocket::new_v4()?;
                s.bind("127.0.0.2:0".parse()?)?;
                anyhow::Ok(s)
            };
            let unix = exchange_with_body(
                UnixStream::connect(&sock).await?,
                "POST",
                &path,
                &headers,
                "",
            )
            .await?;
            let tcp = exchange_with_body(
                from_proxy().await?.connect(tcp_addr).await?,
                "POST",
                &path,
                &headers,
                "",
            )
            .await?;
            let public = exchange_with_body(
                from_proxy().await?.connect(srv.addr).await?,
                "POST",
                &path,
                &headers,
                "",
            )
            .await?;
            anyhow::Ok([("unix", unix), ("whois tcp", tcp), ("public", public)])
        }
    };

    for path in [
        "/api/v1/authorize",
        "/api/v1/authorize/",
        "/api/v1/authorize/mcp",
        "/api/v1/authorize/mcp/v2/tools?session=1",
    ] {
        for (listener, r) in ask(path.to_owned(), "search_web").await? {
            assert_eq!(r.status, 200, "{path} on {listener}: {}", r.text());
            assert_eq!(r.headers["tailscale-user-login"], "alice@example.com");
        }
        for (listener, r) in ask(path.to_owned(), "delete_all").await? {
            assert_eq!(r.status, 403, "{path} on {listener}: {}", r.text());
        }
    }
    for path in ["/api/v1/authorized", "/api/v1/authorizemcp"] {
        for (listener, r) in ask(path.to_owned(), "search_web").await? {
            assert_eq!(r.status, 404, "{path} on {listener}: {}", r.text());
        }
    }
    Ok(())
}
