//! Fault tier: no anonymous client can starve the server.
//!
//! Drives the real `clawscale serve` on loopback, started under `prlimit
//! --nofile=1024:1024` so raising the soft limit to the hard one cannot
//! help: 1,100 one-byte connections, 100 slowloris connections and a Noise
//! handshake flood come from 127.0.0.2 and up, while `/healthz` (probed
//! from 127.0.0.1), the admin CLI and a new client (tailscale-rs
//! `ts_control`) keep working and every attack connection is closed within
//! the configured timeouts. Also: the open-file limit log line, STUN
//! answering only Tailscale's requests (and still a real tailscaled), and
//! the CLI's permission error.

mod fixture;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fixture::{
    HealthProbe, LoopbackServer, Outcome, attack, connect_from, healthz, message, source,
};
use tokio::task::JoinSet;

use crate::harness::{
    ClientVersion, Db, KeyOptions, Server, Tailscaled, Topology, skip_real_clients, wait_for,
};

/// The test process opens some 1,300 sockets itself; a CI machine may
/// start it with 1,024 (even as the hard limit), and root may raise both.
fn raise_own_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    const WANT: u64 = 8192;
    let now = getrlimit(Resource::Nofile);
    if now.current.is_some_and(|c| c < WANT) {
        let raised = Rlimit {
            current: Some(WANT),
            maximum: now.maximum.map(|m| m.max(WANT)),
        };
        setrlimit(Resource::Nofile, raised).expect("raise the test's open-file limit (root)");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Outcomes grouped by source address.
fn by_source(outcomes: &[Outcome]) -> BTreeMap<std::net::Ipv4Addr, Vec<&Outcome>> {
    let mut m: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for o in outcomes {
        m.entry(o.src).or_default().push(o);
    }
    m
}

const READ_HEADER: Duration = Duration::from_secs(12);
/// Slack for a loaded machine on top of a timeout plus the 2 s close grace.
const SLACK: Duration = Duration::from_secs(6);

#[test]
fn one_byte_and_slowloris_floods_leave_healthz_and_admin_working() {
    raise_own_limit();
    let mut server = LoopbackServer::start(
        "1024:1024",
        "  max_per_ip: 50\n  read_header_timeout: 12s\n  idle_timeout: 30s\n",
    );
    let addr = server.addr;
    healthz(addr).expect("healthy before the flood");
    let probe = HealthProbe::start(addr);
    let rt = runtime();
    let give_up = READ_HEADER + SLACK;

    let (outcomes, cli_runs) = std::thread::scope(|scope| {
        // The admin CLI, three times while the connections are held.
        let cli = scope.spawn(|| {
            std::thread::sleep(Duration::from_secs(3));
            (0..3)
                .map(|_| {
                    let started = Instant::now();
                    let out = server.cli(&["users", "list", "-o", "json"]);
                    std::thread::sleep(Duration::from_secs(2));
                    (out, started.elapsed())
                })
                .collect::<Vec<_>>()
        });
        let outcomes: Vec<Outcome> = rt.block_on(async {
            let mut set = JoinSet::new();
            // 1,100 connections sending one byte: 100 from each of 11
            // sources, twice the per-source limit.
            for i in 0..1100u32 {
                let src = source(2 + (i / 100) as u8);
                set.spawn(attack(src, addr, b"G", None, give_up));
            }
            // 100 slowloris connections, one header byte every 5 s, from two
            // sources at the limit (so all are admitted).
            for i in 0..100u32 {
                let src = source(20 + (i / 50) as u8);
                let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaa";
                set.spawn(attack(
                    src,
                    addr,
                    head,
                    Some(Duration::from_secs(5)),
                    give_up,
                ));
            }
            set.join_all().await
        });
        (outcomes, cli.join().expect("CLI thread"))
    });
    for (out, took) in &cli_runs {
        assert!(out.success(), "admin CLI failed during the flood:\n{out}");
        assert!(*took < Duration::from_secs(12), "admin CLI took {took:?}");
    }

    let (probes, failures) = probe.finish();
    assert!(probes >= 40, "only {probes} health probes ran");
    assert!(
        failures.is_empty(),
        "/healthz failed during the flood: {failures:?}"
    );

    let (one_byte, slow): (Vec<_>, Vec<_>) =
        outcomes.into_iter().partition(|o| o.src.octets()[3] < 20);
    for (src, conns) in by_source(&one_byte) {
        let refused = conns
            .iter()
            .filter(|o| o.closed_after.is_some_and(|t| t < Duration::from_secs(3)))
            .count();
        let held = conns
            .iter()
            .filter(|o| o.closed_after.is_some_and(|t| t >= READ_HEADER / 2))
            .count();
        assert_eq!(
            (refused, held),
            (50, 50),
            "{src}: per-source limit 50 of 100: {refused} closed at once, {held} held"
        );
    }
    for o in one_byte.iter().chain(slow.iter()) {
        assert!(
            o.closed_after.is_some_and(|t| t <= READ_HEADER + SLACK),
            "{} kept open: {o:?}",
            o.src
        );
        assert!(
            !o.received.starts_with(b"HTTP/1.1 200"),
            "an attack was answered: {o:?}"
        );
    }
    for o in &slow {
        // Admitted (at the limit), fed three bytes, and closed by the head
        // deadline, not earlier and not by the trickle.
        let t = o.closed_after.expect("checked above");
        assert!(t >= READ_HEADER / 2, "slowloris closed after {t:?}: {o:?}");
    }

    // The refusals were logged, rate limited, and only for attack sources.
    let refusals: Vec<String> = server
        .log()
        .iter()
        .filter(|l| message(l).starts_with("connection limit reached"))
        .map(|l| message(l).to_string())
        .collect();
    assert!(
        (1..=3).contains(&refusals.len()),
        "550 refusals should log one to three lines: {refusals:#?}"
    );
    assert!(
        refusals
            .iter()
            .all(|r| r.contains("(connections.max_per_ip)") && !r.contains("127.0.0.1 ")),
        "{refusals:#?}"
    );
    healthz(addr).expect("healthy after the flood");
    assert!(server.alive(), "the server died");
}

/// A `POST /ts2021` whose handshake header is well-formed base64 of the
/// wrong size: rejected with 400 before any state is kept.
const GARBAGE_UPGRADE: &[u8] =
    b"POST /ts2021 HTTP/1.1\r\nHost: x\r\nUpgrade: tailscale-control-protocol\r\n\
Connection: upgrade\r\nX-Tailscale-Handshake: AAAAAAAAAAAA\r\nContent-Length: 0\r\n\r\n";

/// The server's Noise public key from `GET /key`.
fn noise_key(addr: std::net::SocketAddr) -> [u8; 32] {
    let out = std::process::Command::new("bash")
        .args(["-c", "exec 3<>/dev/tcp/127.0.0.1/$0; printf 'GET /key?v=133 HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"])
        .arg(addr.port().to_string())
        .output()
        .expect("GET /key");
    let text = String::from_utf8_lossy(&out.stdout);
    let body = text.split("\r\n\r\n").nth(1).expect("body");
    let json: serde_json::Value = serde_json::from_str(body).expect("json");
    let hex_key = json["publicKey"]
        .as_str()
        .expect("publicKey")
        .trim_start_matches("mkey:");
    hex::decode(hex_key)
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

/// Completes a valid handshake from `src`, then never sends a request;
/// returns how long the server kept the tunnel.
async fn abandoned_tunnel(
    src: std::net::Ipv4Addr,
    addr: std::net::SocketAddr,
    key: [u8; 32],
    give_up: Duration,
) -> Result<Duration, String> {
    use tokio::io::AsyncReadExt;
    let tcp = connect_from(src, addr).await.map_err(|e| e.to_string())?;
    let machine = x25519_dalek::StaticSecret::random();
    let (mut stream, _) = clawscale::noise::connect(tcp, "127.0.0.1", key, &machine, 133)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((start + give_up).into(), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Ok(start.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return Err("tunnel kept open".into()),
        }
    }
}

#[test]
fn noise_handshake_flood_leaves_room_for_a_real_client() {
    raise_own_limit();
    let mut server = LoopbackServer::start(
        "1024:1024",
        "  max_per_ip: 64\n  read_header_timeout: 3s\n  idle_timeout: 4s\n  \
         keepalive_interval: 2s\n  keepalive_timeout: 2s\n",
    );
    let addr = server.addr;
    assert!(server.cli(&["users", "create", "alice"]).success());
    let out = server.cli(&[
        "preauthkeys",
        "create",
        "--user",
        "alice",
        "--reusable",
        "-o",
        "json",
    ]);
    let auth: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let auth = auth["key"].as_str().expect("key").to_string();
    let key = noise_key(addr);
    let url = url::Url::parse(&server.url()).expect("url");
    let probe = HealthProbe::start(addr);
    let rt = runtime();

    rt.block_on(async {
        let mut garbage = JoinSet::new();
        // 600 garbage upgrades, 200 at once from each of three sources
        // (over the limit of 64).
        for i in 0..600u32 {
            let src = source(40 + (i % 3) as u8);
            garbage.spawn(attack(
                src,
                addr,
                GARBAGE_UPGRADE,
                None,
                Duration::from_secs(10),
            ));
        }
        // 100 valid handshakes that never send a request, from two sources.
        let mut abandoned = JoinSet::new();
        for i in 0..100u32 {
            abandoned.spawn(abandoned_tunnel(
                source(45 + (i % 2) as u8),
                addr,
                key,
                Duration::from_secs(20),
            ));
        }

        // Meanwhile a real client enrolls and opens its map long-poll.
        let mut alpha = crate::sim::SimNode::new(&url, "alpha");
        let mut stream = alpha
            .enroll(&auth)
            .await
            .expect("alpha enrolls during the flood");

        let garbage = garbage.join_all().await;
        let rejected = garbage
            .iter()
            .filter(|o| o.received.starts_with(b"HTTP/1.1 400"))
            .count();
        assert!(
            rejected >= 3 * 64,
            "only {rejected} garbage upgrades were answered 400"
        );
        assert!(
            garbage.iter().all(|o| o.closed_after.is_some()),
            "a garbage upgrade stayed open"
        );
        for r in abandoned.join_all().await {
            // Closed by the first-request deadline (3 s) plus the close grace.
            let t = r.expect("abandoned tunnel");
            assert!(
                t < Duration::from_secs(3) + SLACK,
                "abandoned tunnel kept {t:?}"
            );
        }

        // Past the idle timeout and several PING rounds, the long-poll is
        // still open: it sees the next node join.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let mut beta = crate::sim::SimNode::new(&url, "beta");
        let _beta_stream = beta.enroll(&auth).await.expect("beta enrolls");
        stream
            .wait_until(Duration::from_secs(30), |m| m.peer_named("beta").is_some())
            .await
            .expect("alpha's long-poll survived the idle timeout and saw beta");
    });

    let (probes, failures) = probe.finish();
    assert!(probes >= 20, "only {probes} health probes ran");
    assert!(
        failures.is_empty(),
        "/healthz failed during the flood: {failures:?}"
    );
    assert!(server.alive(), "the server died");
}

#[test]
fn open_file_limit_is_raised_to_the_hard_limit_and_logged() {
    let server = LoopbackServer::start("512:4096", "  max_per_ip: 8\n");
    let lines: Vec<String> = server
        .log()
        .iter()
        .map(|l| message(l).to_string())
        .collect();
    assert!(
        lines
            .iter()
            .any(|m| m == "raised the open-file limit from 512 to 4096 (the hard limit)"),
        "{lines:#?}"
    );
    // The derived total follows the raised limit: 4096 - 256.
    let limits = server
        .log()
        .into_iter()
        .find(|l| message(l) == "connection limits on the public port")
        .expect("limits line");
    assert_eq!(limits["fields"]["max_total"], 3840);
    assert_eq!(limits["fields"]["max_per_ip"], 8);
    drop(server);

    let at_hard = LoopbackServer::start("1024:1024", "  max_per_ip: 8\n");
    let lines: Vec<String> = at_hard
        .log()
        .iter()
        .map(|l| message(l).to_string())
        .collect();
    assert!(
        lines
            .iter()
            .any(|m| m == "open-file limit is 1024 (already the hard limit)"),
        "{lines:#?}"
    );
}

/// `app::avoid_huge_pages`: the kernel reports the process's own switch in
/// its status file (Linux 5.0+ prints the `THP_enabled` line).
#[test]
fn serve_turns_transparent_huge_pages_off() {
    let server = LoopbackServer::start("1024:1024", "  max_per_ip: 8\n");
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with("THP_enabled:"))
        .expect("THP_enabled in /proc/PID/status");
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}

/// `stun.Request` for transaction 01..0c: SOFTWARE "tailnode", FINGERPRINT.
const TAILSCALE_STUN: &str =
    "000100142112a4420102030405060708090a0b0c802200087461696c6e6f646580280004b32c370f";

#[test]
fn stun_answers_only_tailscale_requests() {
    let server = LoopbackServer::start("1024:1024", "  max_per_ip: 8\n");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    sock.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let mut buf = [0u8; 512];
    // A bare binding request (what a reflection attack would send, with
    // the victim's address as source) gets nothing back.
    let bare = hex::decode("000100002112a442aaaaaaaaaaaaaaaaaaaaaaaa").expect("hex");
    for _ in 0..3 {
        sock.send_to(&bare, server.stun).expect("send");
        assert!(
            sock.recv_from(&mut buf).is_err(),
            "bare STUN request answered"
        );
    }
    let req = hex::decode(TAILSCALE_STUN).expect("hex");
    sock.send_to(&req, server.stun).expect("send");
    let (n, from) = sock
        .recv_from(&mut buf)
        .expect("Tailscale's request is answered");
    assert_eq!(from, server.stun);
    assert_eq!(&buf[0..2], &[0x01, 0x01], "binding success");
    assert_eq!(&buf[8..20], &req[8..20], "same transaction");
    let port = u16::from_be_bytes([buf[26], buf[27]]) ^ 0x2112;
    assert_eq!(
        port,
        sock.local_addr().expect("addr").port(),
        "{:?}",
        &buf[..n]
    );
}

/// Regression: `/derp` used to be upgraded over plain HTTP too; clients
/// only ever reach it over TLS on the same port.
#[test]
fn derp_is_not_upgraded_over_plain_http() {
    let server = LoopbackServer::start("1024:1024", "  max_per_ip: 8\n");
    let rt = runtime();
    let o = rt.block_on(attack(
        source(2),
        server.addr,
        b"GET /derp HTTP/1.1\r\nHost: x\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n",
        None,
        Duration::from_secs(15),
    ));
    let text = String::from_utf8_lossy(&o.received);
    assert!(text.starts_with("HTTP/1.1 403"), "{text:?}");
    assert!(
        text.ends_with("DERP is served only over TLS on this port"),
        "{text:?}"
    );
}

/// Regression: a permission error on the admin socket was reported as a
/// bare "transport error". The CLI runs as `nobody` against a root-owned
/// socket of mode 0770.
#[test]
fn admin_cli_names_permission_denied_and_the_socket() {
    let server = LoopbackServer::start("1024:1024", "  max_per_ip: 8\n");
    let socket = server.dir().join("admin.sock");
    let out = server.cli_as(Some(65534), &["users", "list"]);
    assert!(!out.success(), "nobody reached the admin API:\n{out}");
    let err = out.stderr.to_lowercase();
    assert!(err.contains("permission denied"), "{out}");
    assert!(out.stderr.contains(&socket.display().to_string()), "{out}");
    assert!(!err.contains("transport error"), "{out}");
    // Root (the socket's owner) still gets in.
    assert!(server.cli(&["users", "list"]).success());
}

/// The STUN check must not lose real clients: a stock tailscaled's
/// netcheck learns its address from the embedded STUN server.
#[test]
fn real_tailscaled_netcheck_still_gets_stun_answers() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(1);
    let server = Server::start(&topo);
    server.create_user("alice");
    let key = server.create_preauthkey("alice", &Default::default());
    let node = Tailscaled::start(topo.host(0), "node0", ClientVersion::V1_96_4);
    node.up_ok(&server.url(), &key, "node0");
    let report = wait_for("a netcheck with STUN", Duration::from_secs(60), || {
        let out = node.cli(&["netcheck", "--format=json"], Duration::from_secs(30));
        if !out.success() {
            return Err(out.to_string());
        }
        let start = out.stdout.find('{').ok_or("no JSON")?;
        let v: serde_json::Value =
            serde_json::from_str(&out.stdout[start..]).map_err(|e| e.to_string())?;
        if v["UDP"] == true && v["GlobalV4"].as_str().is_some_and(|g| !g.is_empty()) {
            Ok(v)
        } else {
            Err(format!("no STUN answer: {v}"))
        }
    });
    let global = report["GlobalV4"].as_str().expect("GlobalV4");
    assert!(
        global.starts_with(&format!("{}:", topo.host_ip(0))),
        "{report}"
    );
}

/// Noise handshakes the server has completed (`/metrics`).
fn handshakes(topo: &Topology, server: &Server) -> u64 {
    let (code, body) = topo
        .hub()
        .http_get(
            server.ip(),
            crate::harness::server::CONTROL_PORT,
            "/metrics",
        )
        .expect("GET /metrics");
    assert_eq!(code, 200);
    body.lines()
        .find_map(|l| l.strip_prefix("clawscale_noise_handshakes_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no handshake counter in {body}"))
}

/// With idle and PING timeouts far shorter than a map keep-alive, stock
/// clients (1.96 and 1.78) keep their one tunnel: the long-poll is a request
/// in flight, and Go's HTTP/2 answers PINGs. No redial in 15 s, and a
/// change still reaches them over it.
#[test]
fn real_tailscaled_long_poll_survives_short_idle_and_keepalive() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(2);
    let server = Server::start_with(&topo, Db::Sqlite, |c| {
        c.set("connections.read_header_timeout", "3s")
            .set("connections.idle_timeout", "3s")
            .set("connections.keepalive_interval", "2s")
            .set("connections.keepalive_timeout", "2s");
    });
    server.create_user("alice");
    let reusable = KeyOptions {
        reusable: true,
        ..KeyOptions::default()
    };
    let key = server.create_preauthkey("alice", &reusable);
    let n0 = Tailscaled::start(topo.host(0), "node0", ClientVersion::V1_96_4);
    let n1 = Tailscaled::start(topo.host(1), "node1", ClientVersion::V1_78_1);
    n0.up_ok(&server.url(), &key, "node0");
    n1.up_ok(&server.url(), &key, "node1");
    wait_for("node0 to see node1", Duration::from_secs(60), || {
        let st = n0.status()?;
        st.peer("node1").map(|_| ()).ok_or_else(|| "not yet".into())
    });

    let before = handshakes(&topo, &server);
    std::thread::sleep(Duration::from_secs(15));
    assert_eq!(
        handshakes(&topo, &server),
        before,
        "a client had to dial a new tunnel"
    );
    let id = server
        .nodes()
        .iter()
        .find(|n| n.name() == "node1")
        .and_then(|n| n.id())
        .expect("node1 listed");
    server.cli_ok(&["nodes", "rename", "-i", &id.to_string(), "renamed"]);
    wait_for("the rename at node0", Duration::from_secs(20), || {
        let st = n0.status()?;
        match st.peer("node1") {
            Some(p) if p.dns_name.starts_with("renamed.") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(handshakes(&topo, &server), before, "a client redialled");
}
