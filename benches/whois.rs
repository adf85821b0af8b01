//! whois/authorize load bench: a server (in this process) with N nodes
//! (default 10,000, `CLAWSCALE_BENCH_NODES` or the first argument), a
//! policy granting `clawql.dev/cap/mcp` towards a gateway node, and `wrk`
//! (Debian package `wrk`) as the load generator in another process,
//! hitting the whois TCP listener with a random node address per request.
//!
//! Usage (release build):
//!   cargo bench --bench whois -- [N] [--duration 10s] [--connections 32] [--threads 1]
//!
//! Reported per endpoint: requests/s, latency p50/p99 (wrk's), and the
//! count of non-2xx answers (must be 0: every address is a node, every
//! node may call `search_*`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clawscale::config::{Config, PolicyMode};
use clawscale::state::{RegisterInput, RegisterOutcome, StateHandle};
use clawscale::types::{MachinePublic, NodePublic, Scope};
use rand::RngCore;

struct Args {
    nodes: usize,
    duration: String,
    connections: usize,
    threads: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        nodes: std::env::var("CLAWSCALE_BENCH_NODES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000),
        duration: "10s".into(),
        connections: 32,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => {}
            "--duration" => a.duration = it.next().context("--duration value")?,
            "--connections" => a.connections = it.next().context("value")?.parse()?,
            "--threads" => a.threads = it.next().context("value")?.parse()?,
            n if n.parse::<usize>().is_ok() => a.nodes = n.parse()?,
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(a)
}

const POLICY: &str = r#"{
  "tagOwners": {"tag:gw": ["bench0@example.com"]},
  "grants": [
    {"src": ["autogroup:member"], "dst": ["tag:gw"], "ip": ["tcp:443"],
     "app": {"clawql.dev/cap/mcp": [{"tools": ["search_*"]}]}}
  ]
}"#;

fn key32() -> [u8; 32] {
    let mut k = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut k);
    k
}

async fn register(
    state: &StateHandle,
    key: &str,
    host: String,
) -> anyhow::Result<std::net::IpAddr> {
    let out = state
        .register(RegisterInput {
            machine_key: MachinePublic(key32()),
            node_key: NodePublic(key32()),
            old_node_key: None,
            auth_key: Some(key.to_string()),
            expiry: None,
            hostinfo: serde_json::json!({"Hostname": host, "OS": "linux"}),
            ephemeral: false,
            version: 133,
        })
        .await?;
    match out {
        RegisterOutcome::Authorized { node, .. } => {
            node.ipv4.map(Into::into).context("node without IPv4")
        }
        other => bail!("registration refused: {other:?}"),
    }
}

struct WrkResult {
    rps: f64,
    p50: String,
    p99: String,
    non_2xx: u64,
}

fn run_wrk(a: &Args, addr: SocketAddr, script: &str) -> anyhow::Result<WrkResult> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.lua");
    std::fs::write(&path, script)?;
    let out = Command::new("wrk")
        .args([
            "-t",
            &a.threads.to_string(),
            "-c",
            &a.connections.to_string(),
            "-d",
            &a.duration,
            "--latency",
            "-s",
        ])
        .arg(&path)
        .arg(format!("http://{addr}/"))
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_string())
    };
    Ok(WrkResult {
        rps: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        p50: field("50%").unwrap_or_default(),
        p99: field("99%").unwrap_or_default(),
        non_2xx: field("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    })
}

fn lua(ips: &[std::net::IpAddr], key: &str, authorize: bool) -> String {
    let mut s = String::from("local ips = {");
    for ip in ips {
        let _ = write!(s, "\"{ip}\",");
    }
    s.push_str("}\nmath.randomseed(7)\n");
    if authorize {
        let _ = write!(
            s,
            "request = function()\n  local ip = ips[math.random(#ips)]\n  \
             return wrk.format(\"GET\", \"/api/v1/authorize\", {{[\"Authorization\"] = \"Bearer {key}\", \
             [\"X-Forwarded-For\"] = ip, [\"X-MCP-Tool\"] = \"search_web\"}})\nend\n"
        );
    } else {
        let _ = write!(
            s,
            "request = function()\n  local ip = ips[math.random(#ips)]\n  \
             return wrk.format(\"GET\", \"/api/v1/whois?addr=\" .. ip .. \":41234\", \
             {{[\"Authorization\"] = \"Bearer {key}\"}})\nend\n"
        );
    }
    s
}

fn main() -> anyhow::Result<()> {
    let a = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let mut cfg = Config::embedded(dir.path());
    cfg.listen_addr = "127.0.0.1:0".parse()?;
    cfg.server_url = "http://127.0.0.1:0".into();
    cfg.metrics_listen_addr = None;
    cfg.grpc_listen_addr = None;
    cfg.unix_socket = dir.path().join("admin.sock");
    if let Some(d) = cfg.derp.server.as_mut() {
        d.stun_listen_addr = Some("127.0.0.1:0".parse()?);
    }
    cfg.policy.mode = PolicyMode::Database;
    cfg.whois.listen_addr = Some("127.0.0.1:0".parse()?);
    cfg.whois.gateway = Some("gw".into());
    cfg.whois.trusted_proxies = vec!["127.0.0.0/8".parse()?];
    let (addr, ips, key) = rt.block_on(async {
        let running = clawscale::app::start(cfg).await?;
        let state = running.state.clone();
        let t0 = Instant::now();
        let users = 100.min(a.nodes.max(1));
        let mut keys = Vec::new();
        for u in 0..users {
            let user = state
                .create_user(&format!("bench{u}"), "", &format!("bench{u}@example.com"))
                .await?;
            keys.push(
                state
                    .create_preauth_key(user.id, true, false, None, vec![])
                    .await?
                    .1,
            );
        }
        // The policy goes in after the nodes: registering into a tailnet
        // without one skips per-join recompilation (without a policy the
        // operator's key tags are trusted), which keeps setup linear.
        let owner = state.world().user_by_name("bench0").context("user")?.id;
        let (_, gw_key) = state
            .create_preauth_key(owner, false, false, None, vec!["tag:gw".into()])
            .await?;
        register(&state, &gw_key, "gw".into()).await?;
        let mut ips = Vec::with_capacity(a.nodes);
        let mut set = tokio::task::JoinSet::new();
        for i in 0..a.nodes {
            let (state, key) = (state.clone(), keys[i % users].clone());
            set.spawn(async move { register(&state, &key, format!("node-{i}")).await });
            if set.len() >= 64
                && let Some(r) = set.join_next().await
            {
                ips.push(r??);
            }
        }
        while let Some(r) = set.join_next().await {
            ips.push(r??);
        }
        state.set_policy(POLICY.into()).await?;
        eprintln!(
            "{} nodes registered and policy set in {:.1}s",
            state.world().nodes.len(),
            t0.elapsed().as_secs_f64()
        );
        let (_, key) = state.create_api_key(Scope::Whois, None).await?;
        let addr = running.whois.tcp.context("whois listener")?;
        anyhow::Ok((addr, ips, key))
    })?;
    println!(
        "\nwhois bench: {} nodes, wrk -t{} -c{} -d{}",
        ips.len(),
        a.threads,
        a.connections,
        a.duration
    );
    println!(
        "{:<11} {:>10} {:>9} {:>9} {:>8}",
        "endpoint", "req/s", "p50", "p99", "non-2xx"
    );
    for (name, authz) in [("whois", false), ("authorize", true)] {
        let r = run_wrk(&a, addr, &lua(&ips, &key, authz))?;
        println!(
            "{name:<11} {:>10.0} {:>9} {:>9} {:>8}",
            r.rps, r.p50, r.p99, r.non_2xx
        );
    }
    rt.shutdown_background();
    Ok(())
}
