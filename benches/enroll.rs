//! Enrollment load bench: N simulated nodes (tailscale-rs `ts_control`)
//! enroll and keep their map streams open; then one more node enrolls and
//! we measure how long every open stream takes to receive it.
//!
//! Usage (release build):
//!   cargo bench --bench enroll -- [N] [--parallel P]
//!   cargo bench --bench enroll -- [N] --url http://host:port --key KEY [--server-pid PID]
//! N defaults to `CLAWSCALE_BENCH_NODES` or 100.
//!
//! Without `--url` the server runs in this process (temp SQLite, 127.0.0.1
//! port 0) and the clients run in a child process (this binary again, with
//! `--clients`), so the RSS reported is the server's alone. With `--url`
//! the clients run here against a running server; its RSS is read from
//! `/proc/PID/status` when `--server-pid` is given.
//!
//! Reported: enrollment wall time (connect, register, open stream, first
//! map, P at a time), the further wait until every stream lists all N-1
//! others, join propagation p50/p99/max (from the newcomer's register
//! request to each stream decoding it), server RSS (with the streams open,
//! peak) and the CPU time of server and clients (they share the machine).

#[allow(dead_code)]
#[path = "../integration/inproc/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../integration/inproc/server.rs"]
mod server;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use tokio::sync::{Semaphore, mpsc, oneshot};
use ts_control::PeerUpdate;
use ts_keys::{NodePublicKey, NodeState};
use url::Url;

use client::{SimNode, Updates};

/// Everything after the node streams are up must finish within this.
const PHASE_TIMEOUT: Duration = Duration::from_secs(600);
/// Marks the process as already re-executed with a raised fd limit.
const REEXEC_ENV: &str = "CLAWSCALE_BENCH_FD_RAISED";

#[derive(Debug, Default)]
struct Args {
    nodes: usize,
    parallel: usize,
    url: Option<String>,
    key: Option<String>,
    server_pid: Option<u32>,
    clients: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        nodes: std::env::var("CLAWSCALE_BENCH_NODES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100),
        parallel: 32,
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            // `cargo bench` passes `--bench` to harness-less targets.
            "--bench" => {}
            "--parallel" => a.parallel = value()?.parse()?,
            "--url" => a.url = Some(value()?),
            "--key" => a.key = Some(value()?),
            "--server-pid" => a.server_pid = Some(value()?.parse()?),
            "--clients" => a.clients = true,
            n if n.parse::<usize>().is_ok() => a.nodes = n.parse()?,
            other => bail!("unknown argument {other:?}"),
        }
    }
    if a.nodes == 0 || a.parallel == 0 {
        bail!("N and --parallel must be positive");
    }
    Ok(a)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    // Each node holds one connection, and in-process the server one more.
    raise_fd_limit(2 * args.nodes as u64 + 512)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match (&args.url, args.clients) {
        (Some(url), true) => {
            let key = args.key.as_deref().context("--clients needs --key")?;
            let r = rt.block_on(run_clients(url, key, args.nodes, args.parallel, true))?;
            println!("result {}", r.to_json());
            Ok(())
        }
        (Some(url), false) => {
            let key = args.key.as_deref().context("--url needs --key")?;
            let r = rt.block_on(run_clients(url, key, args.nodes, args.parallel, false))?;
            let rss = args.server_pid.map(|p| rss(&format!("/proc/{p}/status")));
            report(&args, &r, rss.transpose()?.map(|r| (r, r, Duration::ZERO)));
            Ok(())
        }
        (None, _) => rt.block_on(in_process(&args)),
    }
}

/// Starts the server here and the clients in a child process.
async fn in_process(args: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let srv = server::TestServer::start(dir.path(), &server::Store::Sqlite).await?;
    let user = srv.create_user("bench").await?;
    let key = srv.key(user, true).await?;
    let baseline = rss("/proc/self/status")?;
    let cpu_before = cpu_time();
    eprintln!(
        "server up at {} (RSS {} KiB)",
        srv.url, baseline.current_kib
    );

    let mut child = Command::new(std::env::current_exe()?)
        .args(["--clients", "--url", srv.url.as_str(), "--key", &key])
        .args([
            args.nodes.to_string(),
            "--parallel".into(),
            args.parallel.to_string(),
        ])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .context("starting the client process")?;
    let stdout = child.stdout.take().context("child stdout")?;
    // The child reports phases line by line; sample RSS as they come.
    let lines = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut at_enrolled = None;
        let mut result = None;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if line.starts_with("enrolled") {
                at_enrolled = Some(rss("/proc/self/status")?);
            } else if let Some(json) = line.strip_prefix("result ") {
                result = Some(Results::from_json(json)?);
            }
        }
        Ok((at_enrolled, result))
    });
    let (at_enrolled, result) = tokio::time::timeout(PHASE_TIMEOUT * 2, lines)
        .await
        .context("client process did not finish")???;
    let status = child.wait()?;
    if !status.success() {
        bail!("client process failed: {status}");
    }
    let result = result.context("client process printed no result")?;
    let end = rss("/proc/self/status")?;
    let nodes = srv.state.world().nodes.len();
    if nodes != args.nodes + 1 {
        bail!("server has {nodes} nodes, expected {}", args.nodes + 1);
    }
    let at = at_enrolled.unwrap_or(end);
    report(args, &result, Some((at, end, cpu_time() - cpu_before)));
    eprintln!(
        "server RSS baseline {} KiB; per node ≈ {:.1} KiB",
        baseline.current_kib,
        (at.current_kib.saturating_sub(baseline.current_kib)) as f64 / args.nodes as f64
    );
    srv.stop().await;
    Ok(())
}

/// What the client side measured.
#[derive(Debug, Clone, Copy)]
struct Results {
    enroll: Duration,
    converge: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
    client_peak_kib: u64,
    client_cpu: Duration,
}

impl Results {
    fn to_json(self) -> String {
        serde_json::json!({
            "enroll_ms": self.enroll.as_secs_f64() * 1e3,
            "converge_ms": self.converge.as_secs_f64() * 1e3,
            "p50_ms": self.p50.as_secs_f64() * 1e3,
            "p99_ms": self.p99.as_secs_f64() * 1e3,
            "max_ms": self.max.as_secs_f64() * 1e3,
            "client_peak_kib": self.client_peak_kib,
            "client_cpu_ms": self.client_cpu.as_secs_f64() * 1e3,
        })
        .to_string()
    }

    fn from_json(s: &str) -> anyhow::Result<Results> {
        let v: serde_json::Value = serde_json::from_str(s)?;
        let ms = |k: &str| -> anyhow::Result<Duration> {
            let f = v[k].as_f64().with_context(|| format!("{k} missing"))?;
            Ok(Duration::from_secs_f64(f / 1e3))
        };
        Ok(Results {
            enroll: ms("enroll_ms")?,
            converge: ms("converge_ms")?,
            p50: ms("p50_ms")?,
            p99: ms("p99_ms")?,
            max: ms("max_ms")?,
            client_peak_kib: v["client_peak_kib"].as_u64().unwrap_or(0),
            client_cpu: ms("client_cpu_ms")?,
        })
    }
}

fn report(args: &Args, r: &Results, server: Option<(Rss, Rss, Duration)>) {
    println!("enroll bench: N={} parallel={}", args.nodes, args.parallel);
    println!(
        "  enrollment wall time   {:>10.1} ms  ({:.0} nodes/s)",
        r.enroll.as_secs_f64() * 1e3,
        args.nodes as f64 / r.enroll.as_secs_f64()
    );
    println!(
        "  full mesh after that   {:>10.1} ms",
        r.converge.as_secs_f64() * 1e3
    );
    println!(
        "  join propagation       p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} streams)",
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        r.max.as_secs_f64() * 1e3,
        args.nodes
    );
    match server {
        Some((at, end, cpu)) => {
            println!(
                "  server RSS             {} KiB with {} streams open, {} KiB at end, peak {} KiB",
                at.current_kib, args.nodes, end.current_kib, end.peak_kib
            );
            if !cpu.is_zero() {
                println!("  server CPU             {:.1} s", cpu.as_secs_f64());
            }
        }
        None => println!("  server RSS             unknown (pass --server-pid)"),
    }
    println!(
        "  client process         peak RSS {} KiB, CPU {:.1} s",
        r.client_peak_kib,
        r.client_cpu.as_secs_f64()
    );
}

/// Enrolls `n` nodes `parallel` at a time, waits for the mesh, then times
/// one more join across all streams. `progress` prints phase lines for a
/// parent process.
async fn run_clients(
    url: &str,
    key: &str,
    n: usize,
    parallel: usize,
    progress: bool,
) -> anyhow::Result<Results> {
    let url: Url = url.parse()?;
    let newcomer = NodeState::generate();
    let target = newcomer.node_keys.public;
    let (converged_tx, mut converged_rx) = mpsc::unbounded_channel::<()>();
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Instant>();

    let sem = Arc::new(Semaphore::new(parallel));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await?;
        let (url, key) = (url.clone(), key.to_string());
        let (converged_tx, seen_tx) = (converged_tx.clone(), seen_tx.clone());
        tasks.push(tokio::spawn(async move {
            let mut node = SimNode::new(&url, &format!("bench{i}"));
            node.connect().await?;
            node.register_ts(&key).await?;
            let updates = node.updates().await?;
            let (first_tx, first_rx) = oneshot::channel();
            tokio::spawn(watch(
                updates,
                n - 1,
                target,
                first_tx,
                converged_tx,
                seen_tx,
            ));
            tokio::time::timeout(client::STEP_TIMEOUT, first_rx)
                .await
                .context("first map timed out")?
                .context("stream ended before the first map")?;
            drop(permit);
            anyhow::Ok(node)
        }));
    }
    let mut nodes = Vec::with_capacity(n);
    for t in tasks {
        nodes.push(t.await??);
    }
    let enroll = started.elapsed();
    if progress {
        println!("enrolled {n} in {:.3}s", enroll.as_secs_f64());
    }
    eprintln!("enrolled {n} nodes in {enroll:?}; waiting for the full mesh");

    let converge_start = Instant::now();
    tokio::time::timeout(PHASE_TIMEOUT, async {
        for _ in 0..n {
            converged_rx.recv().await.context("a watcher ended early")?;
        }
        anyhow::Ok(())
    })
    .await
    .context("mesh did not converge")??;
    let converge = converge_start.elapsed();

    let mut joiner = SimNode::with_keys(&url, "newcomer", newcomer);
    joiner.connect().await?;
    let t0 = Instant::now();
    joiner.register_ts(key).await?;
    let mut lat = Vec::with_capacity(n);
    tokio::time::timeout(PHASE_TIMEOUT, async {
        while lat.len() < n {
            let at = seen_rx.recv().await.context("a watcher ended early")?;
            lat.push(at.saturating_duration_since(t0));
        }
        anyhow::Ok(())
    })
    .await
    .context("join did not reach every stream")??;
    lat.sort();
    let pct = |p: usize| lat[(lat.len() * p).div_ceil(100).saturating_sub(1)];
    let peak = rss("/proc/self/status")?.peak_kib;
    drop(nodes);
    Ok(Results {
        enroll,
        converge,
        p50: pct(50),
        p99: pct(99),
        max: *lat.last().context("no samples")?,
        client_peak_kib: peak,
        client_cpu: cpu_time(),
    })
}

/// Follows one stream: signals its first map, when it lists `mesh` peers,
/// and when `target` first appears. Keeps only peer ids, not whole nodes.
async fn watch(
    mut updates: Updates,
    mesh: usize,
    target: NodePublicKey,
    first: oneshot::Sender<()>,
    converged: mpsc::UnboundedSender<()>,
    seen: mpsc::UnboundedSender<Instant>,
) {
    let mut first = Some(first);
    let mut peers: HashSet<i64> = HashSet::new();
    let mut converged = Some(converged);
    let mut seen = Some(seen);
    while let Some(u) = updates.next().await {
        let now = Instant::now();
        if u.node.is_some()
            && let Some(f) = first.take()
        {
            let _ = f.send(());
        }
        let fresh = match u.peer_update {
            Some(PeerUpdate::Full(list)) => {
                peers = list.iter().map(|p| p.id).collect();
                list
            }
            Some(PeerUpdate::Delta { upsert, remove, .. }) => {
                for id in remove {
                    peers.remove(&id);
                }
                peers.extend(upsert.iter().map(|p| p.id));
                upsert
            }
            None => Vec::new(),
        };
        if fresh.iter().any(|p| p.node_key == target)
            && let Some(s) = seen.take()
        {
            let _ = s.send(now);
        }
        if peers.len() >= mesh
            && let Some(c) = converged.take()
        {
            let _ = c.send(());
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Rss {
    current_kib: u64,
    peak_kib: u64,
}

/// User plus system CPU time of this process so far. `/proc` reports it in
/// USER_HZ ticks, which Linux fixes at 100 per second for userspace.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime, stime are 14, 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// VmRSS and VmHWM from a `/proc/*/status` file.
fn rss(path: &str) -> anyhow::Result<Rss> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Rss {
        current_kib: field("VmRSS:"),
        peak_kib: field("VmHWM:"),
    })
}

/// Makes sure `want` file descriptors can be opened. `unsafe` is forbidden
/// in this crate, so instead of `setrlimit` the process re-executes itself
/// once through `sh -c 'ulimit -n …'` when the soft limit is too low.
fn raise_fd_limit(want: u64) -> anyhow::Result<()> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let Some((soft, hard)) = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| {
            let mut v = l.split_whitespace().skip(3);
            Some((
                v.next()?.parse::<u64>().ok()?,
                v.next()?.parse::<u64>().unwrap_or(u64::MAX),
            ))
        })
    else {
        return Ok(());
    };
    if soft >= want || std::env::var_os(REEXEC_ENV).is_some() {
        if soft < want {
            eprintln!("warning: only {soft} file descriptors available, want {want}");
        }
        return Ok(());
    }
    let target = want.min(hard);
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"ulimit -n "$1" && shift && exec "$@""#)
        .arg("sh")
        .arg(target.to_string())
        .arg(std::env::current_exe()?)
        .args(std::env::args_os().skip(1))
        .env(REEXEC_ENV, "1")
        .status()
        .context("re-executing with a raised fd limit")?;
    std::process::exit(status.code().unwrap_or(1));
}
