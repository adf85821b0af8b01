//! whois/authorize load bench: a server (in this process) with N nodes
//! (default 10,000, `CLAWSCALE_BENCH_NODES` or the first argument), a
//! policy granting `clawql.dev/cap/mcp` towards a gateway node, and `wrk`
//! (Debian package `wrk`) as the load generator in another process,
//! hitting the whois TCP listener with a random node address per request.
//!
//! Usage (release build):
//!   cargo bench --bench whois -- [N] [--duration 10s] [--connections 16,32]
//!     [--threads 1] [--workers K] [--no-pin] [--rates 50000] [--rate-connections 32]
//!   (`CLAWSCALE_BENCH_VERBOSE=1` also prints wrk's own report)
//!
//! The load generator shares the machine, so by default the two are kept
//! apart: this process (the server, with one runtime worker) on CPU 0, wrk
//! on CPU 1. The figures are then the server's capacity on one core, not
//! disturbed by wrk's scheduling. `--no-pin` runs both unconfined, the
//! server with a worker per core.
//!
//! First each CPU is probed idle for 5 s (`whois/stalls.rs`): the time the
//! machine itself takes from a spinning process, in gaps of 0.5 ms or more.
//! That is the floor under any latency figure below.
//!
//! Before measuring, the whois answers of all N nodes are built once (cold
//! cost per answer reported), then a first wrk pass runs with empty
//! answer caches (reported as `whois (cold)`). A cache hit's own cost
//! (lookup and validation, random order over all nodes) is reported too.
//! Reported per endpoint and connection count: requests/s, wrk's latency
//! p50/p99/p99.9/max, and the
//! count of non-2xx answers (must be 0: every address is a node, every
//! node may call `search_*`).
//!
//! Then the same at a fixed offered rate (`--rates`, default 50,000/s)
//! with this bench's own open-loop generator (`whois/load.rs`, run as a
//! child process): latency counts from when each request was due, so
//! server stalls are not hidden. A third row sends the same load to a path
//! no route serves, which measures the floor set by the machine, the
//! generator and the HTTP stack alone.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

#[path = "whois/load.rs"]
mod load;
#[path = "whois/stalls.rs"]
mod stalls;
use chrono::Utc;
use clawscale::config::{Config, PolicyMode};
use clawscale::state::{RegisterInput, RegisterOutcome, StateHandle};
use clawscale::types::{MachinePublic, NodePublic, Scope};
use clawscale::whois::answer::Query;
use rand::RngCore;

struct Args {
    /// CPUs this bench may use (read before it pins itself).
    cpus: usize,
    nodes: usize,
    duration: String,
    connections: Vec<usize>,
    threads: usize,
    pin: bool,
    /// Offered rates of the fixed-rate runs (requests/s).
    rates: Vec<u64>,
    /// Keep-alive connections of the fixed-rate generator.
    rate_connections: usize,
    /// Server runtime worker threads (default: 1 pinned, else one per core).
    workers: Option<usize>,
    /// CPU of the server (every thread of this process), when pinned.
    server_cpu: Option<usize>,
    /// CPU of wrk, when pinned.
    wrk_cpu: Option<usize>,
}

/// A comma-separated list of numbers (`16,32`).
fn list<T: std::str::FromStr>(v: Option<String>) -> anyhow::Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(v.context("value")?
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?)
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        cpus: 1,
        nodes: std::env::var("CLAWSCALE_BENCH_NODES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000),
        duration: "10s".into(),
        connections: vec![16, 32],
        threads: 1,
        pin: true,
        rates: vec![50_000],
        rate_connections: 32,
        workers: None,
        server_cpu: None,
        wrk_cpu: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => {}
            "--duration" => a.duration = it.next().context("--duration value")?,
            "--connections" => a.connections = list(it.next())?,
            "--no-pin" => a.pin = false,
            "--rates" => a.rates = list(it.next())?,
            "--rate-connections" => a.rate_connections = it.next().context("value")?.parse()?,
            "--threads" => a.threads = it.next().context("value")?.parse()?,
            "--workers" => a.workers = Some(it.next().context("value")?.parse()?),
            "--server-cpu" => a.server_cpu = Some(it.next().context("value")?.parse()?),
            "--wrk-cpu" => a.wrk_cpu = Some(it.next().context("value")?.parse()?),
            n if n.parse::<usize>().is_ok() => a.nodes = n.parse()?,
            other => bail!("unknown argument {other:?}"),
        }
    }
    a.cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if a.pin && a.cpus >= 2 {
        a.workers.get_or_insert(1);
        a.server_cpu.get_or_insert(0);
        a.wrk_cpu.get_or_insert(1);
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

/// A load generator command, on the load CPU when pinned.
fn load_command(a: &Args, program: &std::ffi::OsStr) -> Command {
    match a.wrk_cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu.to_string()]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

struct WrkResult {
    rps: f64,
    p50: String,
    p99: String,
    p999: String,
    max: String,
    non_2xx: u64,
}

fn run_wrk(
    a: &Args,
    addr: SocketAddr,
    script: &str,
    connections: usize,
    duration: &str,
) -> anyhow::Result<WrkResult> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.lua");
    std::fs::write(&path, script)?;
    let out = load_command(a, "wrk".as_ref())
        .args([
            "-t",
            &a.threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            duration,
            "--latency",
            "-s",
        ])
        .arg(&path)
        .arg(format!("http://{addr}/"))
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if std::env::var_os("CLAWSCALE_BENCH_VERBOSE").is_some() {
        eprintln!("{text}");
    }
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
        p999: field("P99.9:").map(|us| us_text(&us)).unwrap_or_default(),
        max: field("Max:").map(|us| us_text(&us)).unwrap_or_default(),
        non_2xx: field("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    })
}

/// Microseconds (as the Lua `done` hook prints them) in wrk's style.
fn us_text(us: &str) -> String {
    match us.parse::<f64>() {
        Ok(v) if v >= 1000.0 => format!("{:.2}ms", v / 1000.0),
        Ok(v) => format!("{v:.2}us"),
        Err(_) => us.to_string(),
    }
}

/// The wrk script: every request is formatted once in `init` and one is
/// picked at random per request, so wrk spends its CPU on the socket, not
/// on building requests (it shares the machine with the server).
fn lua(ips: &[std::net::IpAddr], key: &str, authorize: bool) -> String {
    let mut s = String::from("local ips = {");
    for ip in ips {
        let _ = write!(s, "\"{ip}\",");
    }
    s.push_str("}\nlocal reqs = {}\nmath.randomseed(7)\ninit = function(args)\n  for i, ip in ipairs(ips) do\n");
    if authorize {
        let _ = writeln!(
            s,
            "    reqs[i] = wrk.format(\"GET\", \"/api/v1/authorize\", {{[\"Authorization\"] = \"Bearer {key}\", \
             [\"X-Forwarded-For\"] = ip, [\"X-MCP-Tool\"] = \"search_web\"}})"
        );
    } else {
        let _ = writeln!(
            s,
            "    reqs[i] = wrk.format(\"GET\", \"/api/v1/whois?addr=\" .. ip .. \":41234\", \
             {{[\"Authorization\"] = \"Bearer {key}\"}})"
        );
    }
    s.push_str("  end\nend\nrequest = function()\n  return reqs[math.random(#reqs)]\nend\n");
    s.push_str(
        "done = function(summary, latency, requests)\n  \
         io.write(string.format(\"P99.9: %d\\nMax: %d\\n\", latency:percentile(99.9), latency.max))\nend\n",
    );
    s
}

/// What the fixed-rate generator asks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ask {
    Whois,
    Authorize,
    /// A path no route serves (404): the same server, listener and HTTP
    /// stack without any whois work, i.e. the floor this machine and the
    /// generator set.
    Unrouted,
}

/// Raw HTTP/1.1 requests, one per address in a shuffled order (seeded),
/// for the fixed-rate generator.
fn http_requests(ips: &[std::net::IpAddr], key: &str, ask: Ask) -> Vec<u8> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let mut order: Vec<_> = ips.to_vec();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(7));
    let mut out = Vec::new();
    for ip in order {
        let req = match ask {
            Ask::Authorize => format!(
                "GET /api/v1/authorize HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n\
                 X-Forwarded-For: {ip}\r\nX-MCP-Tool: search_web\r\n\r\n"
            ),
            Ask::Whois => format!(
                "GET /api/v1/whois?addr={ip}:41234 HTTP/1.1\r\nHost: bench\r\n\
                 Authorization: Bearer {key}\r\n\r\n"
            ),
            Ask::Unrouted => format!(
                "GET /unrouted?addr={ip} HTTP/1.1\r\nHost: bench\r\n\
                 Authorization: Bearer {key}\r\n\r\n"
            ),
        };
        out.extend_from_slice(req.as_bytes());
        out.push(0);
    }
    out
}

/// Runs the fixed-rate generator as a child process (this binary again),
/// on the load CPU when pinned.
fn run_fixed(
    a: &Args,
    addr: SocketAddr,
    requests: &[u8],
    rate: u64,
) -> anyhow::Result<load::Report> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("requests");
    std::fs::write(&file, requests)?;
    let exe = std::env::current_exe()?;
    let secs = a.duration.trim_end_matches('s');
    let out = load_command(a, exe.as_os_str())
        .arg("--load-client")
        .args([
            addr.to_string(),
            rate.to_string(),
            a.rate_connections.to_string(),
            secs.to_string(),
        ])
        .arg(&file)
        .output()
        .context("running the load generator")?;
    if !out.status.success() {
        bail!(
            "load generator failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    load::parse_report(&String::from_utf8_lossy(&out.stdout))
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    match argv.get(1).map(String::as_str) {
        Some("--load-client") => return load::child_main(&argv[2..]),
        Some("--stall-probe") => return stalls::child_main(&argv[2..]),
        _ => {}
    }
    let a = parse_args()?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = a.workers {
        rt.worker_threads(n);
    }
    let rt = rt.enable_all().build()?;
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
    let (addr, ips, key, state) = rt.block_on(async {
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
        anyhow::Ok((addr, ips, key, state))
    })?;
    if let Some(cpu) = a.server_cpu {
        // Every thread of this process, the runtime's included.
        let pid = std::process::id().to_string();
        let st = Command::new("taskset")
            .args(["-a", "-p", "-c", &cpu.to_string(), &pid])
            .stdout(std::process::Stdio::null())
            .status()
            .context("taskset")?;
        if !st.success() {
            bail!("taskset failed: {st}");
        }
    }
    let placement = match (a.server_cpu, a.wrk_cpu) {
        (Some(s), Some(w)) => format!("server on CPU {s}, wrk on CPU {w}"),
        _ => "unpinned".into(),
    };
    println!(
        "\nwhois bench: {} nodes; server runtime workers: {}; wrk -t{} -d{}; {placement}",
        ips.len(),
        a.workers.map_or("one per core".into(), |n| n.to_string()),
        a.threads,
        a.duration,
    );
    for (cpu, st) in stalls::probe(&(0..a.cpus).collect::<Vec<_>>(), 5.0)? {
        println!(
            "machine stalls, CPU {cpu} idle {:.0}s: {} gaps >= 0.5 ms ({} >= 1 ms), {:.1} ms lost ({:.2}%), longest {:.2} ms",
            st.seconds,
            st.count,
            st.over_1ms,
            st.lost.as_secs_f64() * 1e3,
            st.lost_percent(),
            st.max.as_secs_f64() * 1e3,
        );
    }

    // What a cache miss costs: every node's answer built and encoded once.
    let world = state.world();
    let gw = clawscale::whois::answer::resolve_node(&world, "gw").map(|n| n.id);
    let caps = clawscale::whois::answer::CapCache::default();
    let t0 = Instant::now();
    let mut bytes = 0;
    for ip in &ips {
        let w = clawscale::whois::answer::whois_with(
            &world,
            Query::Ip(*ip),
            gw,
            Utc::now(),
            Some(&caps),
        )
        .context("answer")?;
        bytes += clawscale::whois::answer::to_body(&w).len();
    }
    let per = t0.elapsed().as_secs_f64() * 1e6 / ips.len() as f64;
    println!(
        "cold answer (build + encode, one thread): {per:.1} us each, {} bytes on average",
        bytes / ips.len().max(1)
    );
    // What a hit costs: the lookup and validation a request pays before
    // HTTP, over every node in a random order (so memory, not the CPU's
    // caches, serves most of it, as under load).
    let cache = clawscale::whois::cache::AnswerCache::default();
    for ip in &ips {
        cache.get(&world, Query::Ip(*ip), gw, Utc::now(), &caps);
    }
    let order: Vec<usize> = {
        use rand::seq::SliceRandom;
        let mut o: Vec<usize> = (0..ips.len()).collect();
        o.shuffle(&mut rand::thread_rng());
        o
    };
    let rounds = 100;
    let t0 = Instant::now();
    let mut hits = 0usize;
    for _ in 0..rounds {
        for &i in &order {
            let now = Utc::now();
            hits += usize::from(
                cache
                    .get(&world, Query::Ip(ips[i]), gw, now, &caps)
                    .is_some(),
            );
        }
    }
    let per = t0.elapsed().as_secs_f64() * 1e9 / (rounds * ips.len()) as f64;
    anyhow::ensure!(hits == rounds * ips.len(), "cache lost answers");
    println!("cached answer (lookup + validation, one thread, random order): {per:.0} ns each");

    println!(
        "{:<16} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "endpoint", "conns", "req/s", "p50", "p99", "p99.9", "max", "non-2xx"
    );
    let row = |name: &str, c: usize, r: &WrkResult| {
        println!(
            "{name:<16} {c:>5} {:>9.0} {:>9} {:>9} {:>9} {:>9} {:>8}",
            r.rps, r.p50, r.p99, r.p999, r.max, r.non_2xx
        );
    };
    // First pass: the server's answer cache is empty.
    let c0 = a.connections[0];
    row(
        "whois (cold)",
        c0,
        &run_wrk(&a, addr, &lua(&ips, &key, false), c0, "2s")?,
    );
    for (name, authz) in [("whois", false), ("authorize", true)] {
        for &c in &a.connections {
            let r = run_wrk(&a, addr, &lua(&ips, &key, authz), c, &a.duration)?;
            row(name, c, &r);
        }
    }
    println!(
        "\nfixed rate (open loop, latency from when each request was due; {} connections, {})",
        a.rate_connections, a.duration
    );
    println!(
        "{:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "endpoint", "offered/s", "done/s", "p50", "p99", "p99.9", "max", "wrong"
    );
    for (name, ask) in [
        ("whois", Ask::Whois),
        ("authorize", Ask::Authorize),
        ("floor (404)", Ask::Unrouted),
    ] {
        let reqs = http_requests(&ips, &key, ask);
        for &rate in &a.rates {
            let r = run_fixed(&a, addr, &reqs, rate)?;
            let us = |v: u64| us_text(&v.to_string());
            println!(
                "{name:<16} {:>9.0} {:>9.0} {:>9} {:>9} {:>9} {:>9} {:>8}",
                r.offered,
                r.throughput,
                us(r.p50),
                us(r.p99),
                us(r.p999),
                us(r.max),
                // Answers of the wrong kind: non-2xx, or 2xx for the floor.
                if ask == Ask::Unrouted {
                    r.completed - r.non_2xx
                } else {
                    r.non_2xx
                }
            );
        }
    }
    rt.shutdown_background();
    Ok(())
}
