//! Envoy's HTTP ext_authz (Istio, Envoy Gateway and other gateways built on
//! it) sends its check to `path_prefix` followed by the original request's
//! path, so with `path_prefix: /api/v1/authorize` an MCP call to `/mcp`
//! arrives as `/api/v1/authorize/mcp`. It gets the authorize answer on
//! every listener; a path that merely starts with the same letters does not.

use super::{Listeners, tcp, unix};

#[tokio::test]
async fn authorize_answers_below_its_path_as_envoy_asks() -> anyhow::Result<()> {
    let l = Listeners::start().await?;
    let (alpha, bearer) = (l.alpha.to_string(), l.bearer());
    // One request to `path` on each listener; the public port and the
    // whois TCP listener are asked from the trusted proxy's address.
    let ask = async |path: &str, tool: &str| {
        let h = [
            ("Authorization", bearer.as_str()),
            ("X-Forwarded-For", alpha.as_str()),
            ("X-MCP-Tool", tool),
        ];
        anyhow::Ok([
            ("unix", unix(&l.sock, path, &h).await?),
            ("whois tcp", tcp(l.tcp, "127.0.0.2", path, &h).await?),
            ("public", tcp(l.srv.addr, "127.0.0.2", path, &h).await?),
        ])
    };

    for path in [
        "/api/v1/authorize",
        "/api/v1/authorize/",
        "/api/v1/authorize/mcp",
        "/api/v1/authorize/mcp/v2/tools?session=1",
    ] {
        for (listener, r) in ask(path, "search_web").await? {
            assert_eq!(r.status, 200, "{path} on {listener}: {}", r.text());
            assert_eq!(r.headers["tailscale-user-login"], "alice@example.com");
        }
        for (listener, r) in ask(path, "delete_all").await? {
            assert_eq!(r.status, 403, "{path} on {listener}: {}", r.text());
        }
    }
    for path in ["/api/v1/authorized", "/api/v1/authorizemcp"] {
        for (listener, r) in ask(path, "search_web").await? {
            assert_eq!(r.status, 404, "{path} on {listener}: {}", r.text());
        }
    }
    Ok(())
}
