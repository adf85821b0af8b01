//! `/machine/set-dns` over Noise (issue 17): a node publishes its own ACME
//! DNS-01 challenge and the authoritative DNS server answers it the moment
//! the request returns; every other record, another machine's node key,
//! and anything but a DNS-01 TXT value are refused with a clear error, and
//! `/metrics` counts both.

use std::net::SocketAddr;

use bytes::Bytes;
use serde_json::json;

use crate::client::SimNode;
use crate::server::{Store, TestServer, config};

const VALUE: &str = "Lt8Ztp1PPmi7oJ0ETa2ByYUYVnFJPJQvXnd1dqh9x4c";

fn request(node: &SimNode, name: &str, kind: &str, value: &str) -> Bytes {
    let body = json!({
        "Version": 133,
        "NodeKey": node.keys.node_keys.public,
        "Name": name,
        "Type": kind,
        "Value": value,
    });
    Bytes::from(body.to_string())
}

/// `dig +short` TXT answers (quoted strings) and the status line.
async fn dig_txt(dns: SocketAddr, name: &str, tcp: bool) -> (String, Vec<String>) {
    let out = tokio::process::Command::new("dig")
        .arg(format!("@{}", dns.ip()))
        .args(["-p", &dns.port().to_string(), "+time=2", "+tries=1"])
        .arg(if tcp { "+tcp" } else { "+notcp" })
        .args([name, "TXT"])
        .output()
        .await
        .expect("dig is required (bind9-dnsutils)");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = raw
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO-RESPONSE")
        .to_string();
    let answers = raw
        .lines()
        .skip_while(|l| *l != ";; ANSWER SECTION:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .collect();
    (status, answers)
}

#[tokio::test]
async fn set_dns_publishes_only_the_nodes_own_challenge() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cfg = config(dir.path(), &Store::Sqlite);
    cfg.dns.server.enabled = true;
    cfg.dns.server.listen_addr = "127.0.0.1:0".parse()?;
    cfg.dns.certs.enabled = true;
    let srv = TestServer::start_with(cfg).await?;
    let dns = srv.dns.expect("dns server enabled").udp;
    let user = srv.create_user("alice").await?;
    let key = srv.key(user, true).await?;
    let mut alpha = SimNode::new(&srv.url, "alpha");
    let _alpha_map = alpha.enroll(&key).await?;
    let mut bravo = SimNode::new(&srv.url, "bravo");
    let _bravo_map = bravo.enroll(&key).await?;

    let own = "_acme-challenge.alpha.clawql.local";
    let reply = alpha
        .post_raw("machine/set-dns", request(&alpha, own, "TXT", VALUE))
        .await?;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body, json!({}));
    // Answered at once, over UDP and TCP.
    for tcp in [false, true] {
        let (status, answers) = dig_txt(dns, own, tcp).await;
        assert_eq!(status, "NOERROR");
        assert_eq!(answers, vec![format!("\"{VALUE}\"")], "tcp={tcp}");
    }

    // Another node's name, the apex, a non-challenge name: 403, nothing set.
    for name in [
        "_acme-challenge.bravo.clawql.local",
        "_acme-challenge.clawql.local",
        "alpha.clawql.local",
        "_acme-challenge.alpha.example.com",
    ] {
        let reply = alpha
            .post_raw("machine/set-dns", request(&alpha, name, "TXT", VALUE))
            .await?;
        assert_eq!(reply.status, 403, "{name}: {:?}", reply.body);
        let text = reply.body.as_str().unwrap_or_default();
        assert!(
            text.contains("not an ACME challenge for this node"),
            "{text}"
        );
        assert!(
            text.contains(own),
            "the error names what is allowed: {text}"
        );
    }
    let (status, answers) = dig_txt(dns, "_acme-challenge.bravo.clawql.local", false).await;
    assert_eq!((status.as_str(), answers.len()), ("NXDOMAIN", 0));

    // Wrong type or value: 400.
    let reply = alpha
        .post_raw("machine/set-dns", request(&alpha, own, "A", "100.64.0.9"))
        .await?;
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    let reply = alpha
        .post_raw("machine/set-dns", request(&alpha, own, "TXT", "hello"))
        .await?;
    assert_eq!(reply.status, 400, "{:?}", reply.body);

    // Bravo's node key through alpha's tunnel: the machine key does not own it.
    let reply = alpha
        .post_raw(
            "machine/set-dns",
            request(&bravo, "_acme-challenge.bravo.clawql.local", "TXT", VALUE),
        )
        .await?;
    assert_eq!(reply.status, 401, "{:?}", reply.body);
    // A node key that names no node, and one that does not parse: refused
    // and counted like the rest.
    let named = |key: &str| {
        let body =
            json!({"Version": 133, "NodeKey": key, "Name": own, "Type": "TXT", "Value": VALUE});
        Bytes::from(body.to_string())
    };
    let nobody = format!("nodekey:{}", "11".repeat(32));
    let reply = alpha.post_raw("machine/set-dns", named(&nobody)).await?;
    assert_eq!(reply.status, 401, "{:?}", reply.body);
    let reply = alpha
        .post_raw("machine/set-dns", named("nodekey:zz"))
        .await?;
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    let reply = alpha
        .post_raw("machine/set-dns", Bytes::from_static(b"{not json"))
        .await?;
    assert_eq!(reply.status, 400, "{:?}", reply.body);

    let text = srv.metrics().await?;
    assert!(
        text.contains("clawscale_acme_challenges_total{result=\"accepted\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("clawscale_acme_challenges_total{result=\"refused\"} 9"),
        "{text}"
    );
    assert!(
        text.contains("clawscale_acme_challenges_served_total 2"),
        "{text}"
    );
    srv.stop().await;
    Ok(())
}

#[tokio::test]
async fn set_dns_without_dns_certs_is_not_implemented() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let srv = TestServer::start(dir.path(), &Store::Sqlite).await?;
    let user = srv.create_user("alice").await?;
    let key = srv.key(user, true).await?;
    let mut alpha = SimNode::new(&srv.url, "alpha");
    let map = alpha.enroll(&key).await?;
    let reply = alpha
        .post_raw(
            "machine/set-dns",
            request(&alpha, "_acme-challenge.alpha.clawql.local", "TXT", VALUE),
        )
        .await?;
    assert_eq!(reply.status, 501, "{:?}", reply.body);
    let text = reply.body.as_str().unwrap_or_default();
    assert!(text.contains("dns.certs.enabled"), "{text}");
    drop(map);
    srv.stop().await;
    Ok(())
}
