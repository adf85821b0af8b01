//! Hostile and broken input: garbage on `/ts2021`, truncated and corrupt
//! Noise frames, oversized bodies and malformed keys must each get a clean
//! error (or a closed connection), and afterwards the server must still be
//! healthy: `/healthz` answers 200 and a new node enrolls.
//!
//! Frame-level abuse needs a client that can write raw bytes under a real
//! Noise session, which `ts_control` cannot; it uses our own initiator,
//! `clawscale::noise::connect`, and writes to the socket beneath it.

use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use clawscale::noise::NoiseStream;
use clawscale::types::MachinePublic;
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use x25519_dalek::StaticSecret;

use crate::client::SimNode;
use crate::server::{Store, TestServer, raw_http};

/// How long the server may take to drop a connection it should refuse.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);
const VERSION: u16 = 130;

/// `/healthz` is 200 and a fresh node still enrolls through `ts_control`.
async fn assert_healthy(srv: &TestServer, key: &str) -> anyhow::Result<()> {
    assert_eq!(srv.healthz().await?, 200);
    let mut n = SimNode::new(&srv.url, &format!("probe{}", rand::random::<u16>()));
    n.enroll(key).await.context("enrolling after bad input")?;
    Ok(())
}

async fn setup() -> anyhow::Result<(tempfile::TempDir, TestServer, String)> {
    let dir = tempfile::tempdir()?;
    let srv = TestServer::start(dir.path(), &Store::Sqlite).await?;
    let user = srv.create_user("alice").await?;
    let key = srv.key(user, true).await?;
    Ok((dir, srv, key))
}

fn upgrade_request(handshake: Option<&str>) -> Vec<u8> {
    let mut r = String::from(
        "POST /ts2021 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: tailscale-control-protocol\r\n\
         Connection: upgrade\r\nContent-Length: 0\r\n",
    );
    if let Some(h) = handshake {
        r.push_str(&format!("X-Tailscale-Handshake: {h}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

#[tokio::test]
async fn garbage_on_ts2021_is_refused() -> anyhow::Result<()> {
    let (_dir, srv, key) = setup().await?;
    let mut random101 = [0u8; 101];
    rand::thread_rng().fill_bytes(&mut random101);
    let mut wrong_type = random101;
    wrong_type[0] = 0x09;
    let cases: Vec<(&str, Vec<u8>)> =
        vec![
        ("no handshake header", upgrade_request(None)),
        ("handshake not base64", upgrade_request(Some("!!!not-base64!!!"))),
        ("handshake too short", upgrade_request(Some(&STANDARD.encode([1u8; 10])))),
        ("handshake too long", upgrade_request(Some(&STANDARD.encode([1u8; 4000])))),
        ("random initiation", upgrade_request(Some(&STANDARD.encode(random101)))),
        ("wrong message type", upgrade_request(Some(&STANDARD.encode(wrong_type)))),
        (
            "wrong upgrade protocol",
            b"POST /ts2021 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
              Content-Length: 0\r\n\r\n"
                .to_vec(),
        ),
        (
            "no upgrade at all",
            b"POST /ts2021 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
    ];
    for (what, req) in cases {
        let (status, body) = raw_http(srv.addr, &req).await.context(what)?;
        assert!(
            (400..500).contains(&status),
            "{what}: want a 4xx, got {status} {:?}",
            String::from_utf8_lossy(&body)
        );
    }

    // Not HTTP at all: the server must drop the connection, not hang.
    let mut junk = vec![0u8; 64 * 1024];
    rand::thread_rng().fill_bytes(&mut junk);
    junk[0] = b'Z';
    let (status, _) = raw_http(srv.addr, &junk).await?;
    assert!(status == 0 || (400..500).contains(&status), "got {status}");

    assert_healthy(&srv, &key).await?;
    srv.stop().await;
    Ok(())
}

/// A completed Noise handshake with a fresh machine key; the raw socket is
/// reachable through `get_mut`.
async fn noise_session(srv: &TestServer) -> anyhow::Result<NoiseStream<TcpStream>> {
    let (status, body) = raw_http(
        srv.addr,
        b"GET /key?v=130 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await?;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    let server: MachinePublic = v["publicKey"]
        .as_str()
        .context("publicKey")?
        .parse()
        .map_err(|e| anyhow::anyhow!("server key: {e:?}"))?;
    let tcp = TcpStream::connect(srv.addr).await?;
    let machine = StaticSecret::random();
    let (stream, challenge) = tokio::time::timeout(
        CLOSE_WITHIN,
        clawscale::noise::connect(tcp, "127.0.0.1", *server.as_bytes(), &machine, VERSION),
    )
    .await
    .context("handshake timed out")??;
    assert!(challenge.is_some_and(|c| c.starts_with("chalpub:")));
    Ok(stream)
}

/// Reads from the raw socket until the server closes it.
async fn expect_closed(sock: &mut TcpStream, what: &str) -> anyhow::Result<()> {
    let mut sink = Vec::new();
    match tokio::time::timeout(CLOSE_WITHIN, sock.read_to_end(&mut sink)).await {
        Err(_) => anyhow::bail!("{what}: server kept the connection open"),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        Ok(Err(e)) => Err(anyhow::anyhow!("{what}: {e}")),
    }
}

#[tokio::test]
async fn truncated_and_corrupt_noise_frames_close_the_tunnel() -> anyhow::Result<()> {
    let (_dir, srv, key) = setup().await?;

    // A header promising 4000 bytes, 10 of them, then end of stream.
    let mut s = noise_session(&srv).await?;
    let sock = s.get_mut();
    sock.write_all(&[4, 0x0f, 0xa0]).await?;
    sock.write_all(&[0xab; 10]).await?;
    sock.shutdown().await?;
    expect_closed(sock, "truncated frame").await?;

    // Only two bytes of a frame header, then end of stream.
    let mut s = noise_session(&srv).await?;
    let sock = s.get_mut();
    sock.write_all(&[4, 0x00]).await?;
    sock.shutdown().await?;
    expect_closed(sock, "truncated header").await?;

    // Corrupt frames the server must reject without waiting for more.
    let mut corrupt = vec![4u8, 0x00, 0x40];
    corrupt.extend_from_slice(&[0x5a; 0x40]);
    let cases: [(&str, Vec<u8>); 4] = [
        ("ciphertext fails to authenticate", corrupt),
        ("unknown frame type", vec![0x63, 0x00, 0x20, 1, 2, 3]),
        ("frame longer than 4096 bytes", vec![4, 0xff, 0xff, 0, 0, 0]),
        (
            "ciphertext shorter than the tag",
            vec![4, 0x00, 0x05, 1, 2, 3, 4, 5],
        ),
    ];
    for (what, bytes) in cases {
        let mut s = noise_session(&srv).await?;
        let sock = s.get_mut();
        sock.write_all(&bytes).await?;
        expect_closed(sock, what).await?;
    }

    // Valid records whose plaintext is not HTTP/2.
    let mut s = noise_session(&srv).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: nope\r\n\r\n").await?;
    s.flush().await?;
    expect_closed(s.get_mut(), "non-HTTP/2 plaintext").await?;

    // A handshake and then silence from the client's side.
    let mut s = noise_session(&srv).await?;
    s.get_mut().shutdown().await?;
    expect_closed(s.get_mut(), "closed after handshake").await?;

    assert_healthy(&srv, &key).await?;
    srv.stop().await;
    Ok(())
}

#[tokio::test]
async fn oversized_bodies_are_refused() -> anyhow::Result<()> {
    let (_dir, srv, key) = setup().await?;
    let mut n = SimNode::new(&srv.url, "bulky");
    n.connect().await?;
    let big = Bytes::from(vec![b' '; (1 << 20) + 4096]);
    for path in ["machine/register", "machine/map"] {
        let (status, _) = n.post_bytes(path, big.clone()).await?;
        assert_eq!(status, 413, "{path}");
    }
    // The tunnel survives a refused request: the same connection registers.
    let r = n.register(Some(&key)).await?;
    assert!(r.authorized(), "{r:?}");
    assert_healthy(&srv, &key).await?;
    srv.stop().await;
    Ok(())
}

#[tokio::test]
async fn garbage_keys_get_clean_errors() -> anyhow::Result<()> {
    let (_dir, srv, key) = setup().await?;
    let mut owner = SimNode::new(&srv.url, "owner");
    owner.enroll(&key).await?;
    let owned = owner.keys.node_keys.public.to_string();

    let mut n = SimNode::new(&srv.url, "mallory");
    n.connect().await?;
    let zero = format!("nodekey:{}", "0".repeat(64));
    let bad_register = [
        ("not JSON", "{{{".to_string()),
        ("JSON but not an object", "[1,2,3]".to_string()),
        (
            "node key not hex",
            r#"{"Version":130,"NodeKey":"nodekey:zz"}"#.to_string(),
        ),
        (
            "node key wrong prefix",
            format!(r#"{{"Version":130,"NodeKey":"mkey:{}"}}"#, "ab".repeat(32)),
        ),
        (
            "node key short",
            r#"{"Version":130,"NodeKey":"nodekey:abcd"}"#.to_string(),
        ),
        (
            "node key zero",
            format!(r#"{{"Version":130,"NodeKey":"{zero}"}}"#),
        ),
        (
            "old node key garbage",
            format!(
                r#"{{"Version":130,"NodeKey":"nodekey:{}","OldNodeKey":"nodekey:xyz"}}"#,
                "cd".repeat(32)
            ),
        ),
        (
            "ancient client",
            format!(r#"{{"Version":1,"NodeKey":"nodekey:{}"}}"#, "cd".repeat(32)),
        ),
    ];
    for (what, body) in bad_register {
        let r = n.post_raw("machine/register", Bytes::from(body)).await?;
        assert_eq!(r.status, 400, "{what}: {r:?}");
        assert!(
            r.body.as_str().is_some_and(|t| !t.is_empty()),
            "{what} needs a message"
        );
    }

    // Another machine's node key: refused at register, 401 at map.
    let stolen = format!(
        r#"{{"Version":130,"NodeKey":"{owned}","Auth":{{"AuthKey":"{key}"}},"Hostinfo":{{}}}}"#
    );
    let r = n.post_raw("machine/register", Bytes::from(stolen)).await?;
    assert!(!r.authorized(), "{r:?}");
    assert_eq!(r.error(), "node key is registered to a different machine");
    let map = format!(r#"{{"Version":130,"NodeKey":"{owned}","OmitPeers":true}}"#);
    let r = n.post_raw("machine/map", Bytes::from(map)).await?;
    assert_eq!(r.status, 401, "{r:?}");

    // Map requests with a garbage or unknown node key.
    let unknown = format!(
        r#"{{"Version":130,"NodeKey":"nodekey:{}"}}"#,
        "ef".repeat(32)
    );
    for (what, body, want) in [
        ("map not JSON", "\u{0}\u{1}".to_string(), 400),
        (
            "map node key garbage",
            r#"{"Version":130,"NodeKey":"zz"}"#.to_string(),
            400,
        ),
        ("map unknown node", unknown, 401),
    ] {
        let r = n.post_raw("machine/map", Bytes::from(body)).await?;
        assert_eq!(r.status, want, "{what}: {r:?}");
    }
    // The rightful owner sending a garbage disco key.
    let bad_disco = format!(
        r#"{{"Version":130,"NodeKey":"{owned}","DiscoKey":"discokey:nothex","OmitPeers":true}}"#
    );
    let r = owner
        .post_raw("machine/map", Bytes::from(bad_disco))
        .await?;
    assert_eq!(r.status, 400, "bad disco key: {r:?}");

    // /key with a non-numeric version answers like an old client's.
    let (status, body) = raw_http(
        srv.addr,
        b"GET /key?v=abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await?;
    assert_eq!((status, body.len()), (200, 0));

    assert_healthy(&srv, &key).await?;
    assert_eq!(srv.state.world().nodes.len(), 2, "owner and the probe only");
    srv.stop().await;
    Ok(())
}
