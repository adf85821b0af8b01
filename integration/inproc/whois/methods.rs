//! Any method gets the whois and authorize answers, as from tailscaled's
//! LocalAPI whois.

use tokio::net::{TcpStream, UnixStream};

use super::{Listeners, exchange_with_body};

/// As tailscaled's LocalAPI whois, any method gets the same answer and a
/// body is ignored: agentgateway's extAuthz forwards the client's own method
/// (an MCP call is a POST) to the whois call.
#[tokio::test]
async fn every_method_gets_the_answer() -> anyhow::Result<()> {
    let l = Listeners::start().await?;
    let (srv, sock, tcp_addr, alpha) = (&l.srv, &l.sock, l.tcp, l.alpha);
    let bearer = l.bearer();
    let auth = [("Authorization", bearer.as_str())];
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_web"}}"#;
    let localapi = format!("/localapi/v0/whois?addr={alpha}:41234");
    let api = format!("/api/v1/whois?addr={alpha}");

    for method in ["POST", "PUT", "DELETE", "GET"] {
        let r = exchange_with_body(
            UnixStream::connect(&sock).await?,
            method,
            &localapi,
            &[],
            body,
        )
        .await?;
        assert_eq!(r.status, 200, "{method} on the unix socket: {}", r.text());
        assert_eq!(r.json()["Node"]["Name"], "alpha.clawql.local.", "{method}");
        assert_eq!(r.json()["UserProfile"]["LoginName"], "alice@example.com");

        let r = exchange_with_body(
            TcpStream::connect(tcp_addr).await?,
            method,
            &localapi,
            &auth,
            body,
        )
        .await?;
        assert_eq!(r.status, 200, "{method} on whois.listen_addr: {}", r.text());
        assert_eq!(r.json()["Node"]["Name"], "alpha.clawql.local.", "{method}");

        let r = exchange_with_body(
            TcpStream::connect(srv.addr).await?,
            method,
            &api,
            &auth,
            body,
        )
        .await?;
        assert_eq!(r.status, 200, "{method} on the public port: {}", r.text());
        assert_eq!(r.json()["Node"]["Name"], "alpha.clawql.local.", "{method}");

        // The key is still checked whatever the method.
        let r = exchange_with_body(TcpStream::connect(srv.addr).await?, method, &api, &[], body)
            .await?;
        assert_eq!(r.status, 401, "{method} without a key");

        let r = exchange_with_body(
            UnixStream::connect(&sock).await?,
            method,
            "/api/v1/authorize",
            &[
                ("X-Forwarded-For", &alpha.to_string()),
                ("X-MCP-Tool", "search_web"),
            ],
            body,
        )
        .await?;
        assert_eq!(r.status, 200, "{method} authorize: {}", r.text());
        assert_eq!(r.headers["tailscale-user-login"], "alice@example.com");
        let r = exchange_with_body(
            UnixStream::connect(&sock).await?,
            method,
            "/api/v1/authorize",
            &[
                ("X-Forwarded-For", &alpha.to_string()),
                ("X-MCP-Tool", "delete_all"),
            ],
            body,
        )
        .await?;
        assert_eq!(r.status, 403, "{method} authorize of a denied tool");
    }
    Ok(())
}
