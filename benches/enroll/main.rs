//! Enrollment load bench: N simulated nodes (tailscale-rs `ts_control`)
//! enroll and keep their map streams open; one more node then joins and we
//! measure how long every stream that must see it takes to receive it;
//! optionally the server is killed and restarted under all those streams.
//!
//! Usage (release build):
//!   cargo bench --bench enroll -- [N] [--policy allow-all|team]
//!       [--compress zstd|none] [--decode full|ids] [--parallel P] [--restart]
//!       [--host-first]
//! N defaults to `CLAWSCALE_BENCH_NODES` or 100.
//! `CLAWSCALE_BENCH_SERVER_WRAP="heaptrack -o /tmp/ht"` runs the server
//! under a profiler (its RSS and CPU figures then include the profiler's).
//!
//! The server runs in a child process (this binary with `--serve`, SQLite
//! in a temp directory, a fixed 127.0.0.1 port) and the clients here, so
//! RSS and CPU are the server's own and the server can be SIGKILLed and
//! started again on the same file and port (`--restart`).
//!
//! Policies: `allow-all` (no policy: every node sees every other) and
//! `team` ([`serve::TEAM_POLICY`]: 100 nodes per user, each sees its team
//! and the shared `svc:mcp` host, which enrolls last unless `--host-first`:
//! then every join also changes the filter of a host already streaming,
//! as when an MCP server is up before its users join). Maps are asked for zstd-compressed, as
//! real clients do, unless `--compress none`. Clients decode every map
//! with `ts_control` unless `--decode ids` (see [`decode`]).
//!
//! Reported: enrollment wall time (connect, register, open stream, first
//! map, P at a time), the further wait until every stream lists all the
//! peers it should, join propagation p50/p99/max (from the newcomer's
//! register request to each stream that must see it decoding it), server
//! RSS per idle connected node (and again once all are back after a
//! restart, from the same empty-server baseline), restart time (SIGKILL
//! to every stream streaming its full map again, each node with its id
//! and peer count as before; streams redial with tailscaled's backoff),
//! CPU of server and clients in all and per phase (the sum over the cores
//! bounds a phase's wall time when both share them), the bytes the server
//! wrote by the end of enrollment (`wchar`: maps and database) and what
//! its `/metrics` counted by then (map frames, the state writer's batches,
//! jobs and busy seconds), the load average and the CPU model
//! (`sys::cpu`); the last line is machine-readable (`bench enroll nodes=…
//! policy=… …`).

#[allow(dead_code)]
#[path = "../../integration/inproc/client.rs"]
mod client;
mod clients;
mod decode;
mod serve;
#[allow(dead_code)]
#[path = "../../integration/inproc/server.rs"]
mod server;
mod sys;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::{Semaphore, mpsc};
use ts_keys::NodeState;
use url::Url;

use clients::{Node, Tally};
use decode::Decode;

/// The server binary's allocator (see `src/main.rs`), so the server child
/// measures what `clawscale serve` would.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs the server child under this command (see [`ServerProc::start`]).
const WRAP_ENV: &str = "CLAWSCALE_BENCH_SERVER_WRAP";

/// Bound on each phase (enrollment, mesh, join, restart).
const PHASE_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    AllowAll,
    Team,
}

#[derive(Debug)]
struct Args {
    nodes: usize,
    parallel: usize,
    policy: Policy,
    zstd: bool,
    decode: Decode,
    restart: bool,
    host_first: bool,
    /// `--serve DIR --port P --teams T`: be the server child.
    serve: Option<PathBuf>,
    port: u16,
    teams: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        nodes: std::env::var("CLAWSCALE_BENCH_NODES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100),
        parallel: 32,
        policy: Policy::AllowAll,
        zstd: true,
        decode: Decode::Full,
        restart: false,
        host_first: false,
        serve: None,
        port: 0,
        teams: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            // `cargo bench` passes `--bench` to harness-less targets.
            "--bench" => {}
            "--parallel" => a.parallel = value()?.parse()?,
            "--policy" => {
                a.policy = match value()?.as_str() {
                    "allow-all" => Policy::AllowAll,
                    "team" => Policy::Team,
                    other => bail!("unknown policy {other:?} (allow-all, team)"),
                }
            }
            "--compress" => {
                a.zstd = match value()?.as_str() {
                    "zstd" => true,
                    "none" => false,
                    other => bail!("unknown compression {other:?} (zstd, none)"),
                }
            }
            "--decode" => {
                a.decode = match value()?.as_str() {
                    "full" => Decode::Full,
                    "ids" => Decode::Ids,
                    other => bail!("unknown decoding {other:?} (full, ids)"),
                }
            }
            "--restart" => a.restart = true,
            "--host-first" => a.host_first = true,
            "--serve" => a.serve = Some(value()?.into()),
            "--port" => a.port = value()?.parse()?,
            "--teams" => a.teams = value()?.parse()?,
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
    // Clients and server each hold one connection per node.
    sys::raise_fd_limit(2 * args.nodes as u64 + 1024)?;
    // As `clawscale serve` does; the clients too, as they share the two
    // cores with the server and allocate the same way.
    clawscale::app::avoid_huge_pages();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match &args.serve {
        Some(dir) => rt.block_on(serve::serve(dir, args.port, args.teams)),
        None => rt.block_on(run(&args)),
    }
}

/// The server child process.
struct ServerProc {
    child: Child,
    ready: serve::Ready,
}

impl ServerProc {
    fn start(dir: &Path, port: u16, teams: usize) -> anyhow::Result<ServerProc> {
        // A diagnostic wrapper such as `heaptrack -o /tmp/ht` (split on
        // whitespace): the server runs under it, and is still found, measured
        // and killed by its own pid.
        let wrap = std::env::var(WRAP_ENV).unwrap_or_default();
        let mut argv: Vec<String> = wrap.split_whitespace().map(String::from).collect();
        argv.push(std::env::current_exe()?.display().to_string());
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .arg("--serve")
            .arg(dir)
            .args(["--port", &port.to_string(), "--teams", &teams.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the server process")?;
        let mut lines = BufReader::new(child.stdout.take().context("server stdout")?).lines();
        let ready = loop {
            let line = lines
                .next()
                .context("server exited before it was ready")??;
            if let Some(json) = line.strip_prefix("ready ") {
                break serde_json::from_str(json)?;
            }
        };
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(ServerProc { child, ready })
    }

    fn pid(&self) -> String {
        self.ready.pid.to_string()
    }

    /// SIGKILL, as a crash or `kill -9` would.
    fn kill(mut self) -> anyhow::Result<()> {
        let pid = rustix::process::Pid::from_raw(self.ready.pid as i32).context("server pid")?;
        rustix::process::kill_process(pid, rustix::process::Signal::KILL)?;
        self.child.wait()?;
        Ok(())
    }

    /// Closes its stdin: it shuts down cleanly.
    fn stop(mut self) -> anyhow::Result<()> {
        drop(self.child.stdin.take());
        self.child.wait()?;
        Ok(())
    }
}

/// A port that was free a moment ago, for the server's restarts to reuse.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// What one run measured.
#[derive(Debug, Default)]
struct Figures {
    enroll: Duration,
    converge: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
    viewers: usize,
    restart: Option<Duration>,
    baseline_kib: u64,
    idle_kib: u64,
    /// Idle again after the restart, every stream back: a fleet that
    /// reconnected at once, measured from the same empty-server baseline.
    restart_idle_kib: Option<u64>,
    server_cpu: Duration,
    /// CPU (server, clients) spent in one phase: with both on the same
    /// cores, their sum over the core count bounds how fast it can be.
    enroll_cpu: (Duration, Duration),
    restart_cpu: Option<(Duration, Duration)>,
    /// Bytes the server passed to write-like syscalls by the end of
    /// enrollment: its maps on the wire, plus its database writes.
    enroll_wchar: u64,
    enroll_counts: serve::Counters,
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let n = args.nodes;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let teams = match args.policy {
        Policy::AllowAll => 0,
        Policy::Team => n.div_ceil(serve::TEAM_SIZE),
    };
    let server = ServerProc::start(dir.path(), port, teams)?;
    let pid = server.pid();
    let url: Url = format!("http://127.0.0.1:{port}/").parse()?;
    let mut f = Figures {
        baseline_kib: server.ready.rss_kib,
        ..Figures::default()
    };
    eprintln!("server up at {url} (pid {pid}, RSS {} KiB)", f.baseline_kib);

    // Team `t` holds the nodes with index ≡ t (mod teams).
    let team_size = |t: usize| n / teams + usize::from(t < n % teams);
    let expect = |idx: usize| match args.policy {
        Policy::AllowAll => n - 1,
        Policy::Team if idx == n => n, // the svc:mcp host sees everyone
        Policy::Team => team_size(idx % teams), // its team (less itself) + the host
    };
    let streams = n + usize::from(args.policy == Policy::Team);
    let newcomer = NodeState::generate();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sem = Arc::new(Semaphore::new(args.parallel));
    let keys = &server.ready.keys;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(streams);
    // The `svc:mcp` host is node `n`.
    let order: Vec<usize> = if args.host_first && args.policy == Policy::Team {
        std::iter::once(n).chain(0..n).collect()
    } else {
        (0..streams).collect()
    };
    for idx in order {
        let key = match server.ready.mcp_key.as_ref().filter(|_| idx == n) {
            Some(k) => k.clone(),
            None => keys[idx % keys.len()].clone(),
        };
        let node = Node {
            idx,
            url: url.clone(),
            key,
            expect: expect(idx),
            newcomer: newcomer.node_keys.public,
            zstd: args.zstd,
            decode: args.decode,
            stop: stop.clone(),
        };
        let permit = sem.clone().acquire_owned().await?;
        tasks.push(tokio::spawn(node.run(permit, tx.clone())));
    }
    let mut tally = Tally::default();
    tally
        .until(&mut rx, PHASE_TIMEOUT, "first maps", |t| t.first == streams)
        .await?;
    f.enroll = started.elapsed();
    f.enroll_cpu = (sys::cpu_time(&pid), sys::cpu_time("self"));
    f.enroll_wchar = sys::written(&pid);
    f.enroll_counts = serve::counters(([127, 0, 0, 1], port).into()).await?;
    eprintln!("enrolled {streams} streams in {:?}", f.enroll);
    let t = Instant::now();
    tally
        .until(&mut rx, PHASE_TIMEOUT, "full mesh", |t| {
            t.converged == streams
        })
        .await?;
    f.converge = t.elapsed();

    let mut joiner = client::SimNode::with_keys(&url, "newcomer", newcomer);
    joiner.connect().await?;
    f.viewers = match args.policy {
        Policy::AllowAll => n,
        Policy::Team => team_size(0) + 1,
    };
    let t0 = Instant::now();
    joiner.register_ts(&keys[0]).await?;
    tally
        .until(&mut rx, PHASE_TIMEOUT, "join", |t| {
            t.seen.len() >= f.viewers
        })
        .await?;
    let mut lat: Vec<Duration> = tally.seen.iter().map(|at| at.duration_since(t0)).collect();
    lat.sort();
    let pct = |p: usize| lat[(lat.len() * p).div_ceil(100).saturating_sub(1)];
    (f.p50, f.p99, f.max) = (pct(50), pct(99), *lat.last().context("no samples")?);

    f.idle_kib = idle_kib(&pid).await?;
    f.server_cpu = sys::cpu_time(&pid);

    let server = if args.restart {
        let total = streams + 1; // and the newcomer, which has no stream
        let killed = Instant::now();
        let clients_before = sys::cpu_time("self");
        server.kill()?;
        let again = ServerProc::start(dir.path(), port, teams)?;
        if again.ready.nodes != total {
            bail!(
                "after the restart the server has {} nodes, expected {total}",
                again.ready.nodes
            );
        }
        tally
            .until(&mut rx, PHASE_TIMEOUT, "restart", |t| {
                t.back.len() == streams
            })
            .await?;
        f.restart = Some(killed.elapsed());
        f.restart_cpu = Some((
            sys::cpu_time(&again.pid()),
            sys::cpu_time("self").saturating_sub(clients_before),
        ));
        let differ = (0..streams)
            .filter(|i| tally.down.get(i) != tally.back.get(i))
            .count();
        if differ > 0 {
            bail!("{differ} nodes came back with another id or peer count");
        }
        f.server_cpu += sys::cpu_time(&again.pid());
        f.restart_idle_kib = Some(idle_kib(&again.pid()).await?);
        again
    } else {
        server
    };
    stop.store(true, Ordering::Relaxed);
    let client_cpu = sys::cpu_time("self");
    server.stop()?;
    for t in tasks {
        t.abort();
    }
    report(args, &f, streams, client_cpu);
    Ok(())
}

/// The server's RSS once every stream is open and nothing has happened
/// for a while.
async fn idle_kib(pid: &str) -> anyhow::Result<u64> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(sys::rss(pid)?.current_kib)
}

fn report(args: &Args, f: &Figures, streams: usize, client_cpu: Duration) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let policy = match args.policy {
        Policy::AllowAll => "allow-all",
        Policy::Team => "team",
    };
    let compress = if args.zstd { "zstd" } else { "none" };
    let host = match args.policy {
        Policy::AllowAll => "-",
        Policy::Team if args.host_first => "first",
        Policy::Team => "last",
    };
    let kib_per_node = |idle: u64| idle.saturating_sub(f.baseline_kib) as f64 / streams as f64;
    let per_node = kib_per_node(f.idle_kib);
    let restart_per_node = f
        .restart_idle_kib
        .map_or("-".to_string(), |k| format!("{:.1}", kib_per_node(k)));
    let load = sys::load();
    println!(
        "enroll bench: N={} policy={policy} compress={compress} decode={} parallel={}",
        args.nodes,
        args.decode.name(),
        args.parallel
    );
    println!(
        "  enrollment wall time   {:>10.1} ms  ({:.0} nodes/s, {streams} streams)",
        ms(f.enroll),
        streams as f64 / f.enroll.as_secs_f64()
    );
    println!("  full mesh after that   {:>10.1} ms", ms(f.converge));
    println!(
        "  join propagation       p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} streams)",
        ms(f.p50),
        ms(f.p99),
        ms(f.max),
        f.viewers
    );
    if let Some(r) = f.restart {
        println!("  restart, all back      {:>10.1} ms", ms(r));
    }
    println!(
        "  server RSS             {} KiB idle, {} KiB at start: {per_node:.1} KiB per node",
        f.idle_kib, f.baseline_kib
    );
    println!(
        "  CPU                    server {:.1} s, clients {:.1} s; load {load}",
        f.server_cpu.as_secs_f64(),
        client_cpu.as_secs_f64()
    );
    let phase = |(server, clients): (Duration, Duration)| {
        format!(
            "server {:.1} s, clients {:.1} s",
            server.as_secs_f64(),
            clients.as_secs_f64()
        )
    };
    println!("  CPU in enrollment      {}", phase(f.enroll_cpu));
    let wchar_mib = f.enroll_wchar as f64 / (1024.0 * 1024.0);
    println!("  server wrote by then   {wchar_mib:.1} MiB (sockets and files)");
    let counts = f.enroll_counts;
    println!(
        "  map frames by then     {} full, {} deltas",
        counts.full_frames, counts.delta_frames
    );
    println!(
        "  state writer by then   {} batches, {} jobs, busy {:.1} s",
        counts.writer_batches, counts.writer_jobs, counts.writer_busy_s
    );
    if let Some(c) = f.restart_cpu {
        println!("  CPU in restart         {}", phase(c));
    }
    if let Some(k) = f.restart_idle_kib {
        println!("  server RSS, restarted  {k} KiB idle: {restart_per_node} KiB per node");
    }
    let secs =
        |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.1}", d.as_secs_f64()));
    let restart = f
        .restart
        .map_or("-".to_string(), |r| format!("{:.2}", r.as_secs_f64()));
    println!(
        "bench enroll nodes={} policy={policy} host={host} compress={compress} decode={} parallel={} \
         enroll_s={:.2} mesh_s={:.2} \
         join_p50_ms={:.1} join_p99_ms={:.1} join_max_ms={:.1} restart_s={restart} \
         rss_kib_per_node={per_node:.1} server_cpu_s={:.1} client_cpu_s={:.1} \
         enroll_server_cpu_s={:.1} enroll_client_cpu_s={:.1} \
         enroll_server_wchar_mib={wchar_mib:.1} enroll_full_frames={} enroll_delta_frames={} \
         enroll_writer_batches={} enroll_writer_jobs={} enroll_writer_busy_s={:.1} \
         restart_server_cpu_s={} \
         restart_client_cpu_s={} restart_rss_kib_per_node={restart_per_node} load={load} cpu={}",
        args.nodes,
        args.decode.name(),
        args.parallel,
        f.enroll.as_secs_f64(),
        f.converge.as_secs_f64(),
        ms(f.p50),
        ms(f.p99),
        ms(f.max),
        f.server_cpu.as_secs_f64(),
        client_cpu.as_secs_f64(),
        f.enroll_cpu.0.as_secs_f64(),
        f.enroll_cpu.1.as_secs_f64(),
        counts.full_frames,
        counts.delta_frames,
        counts.writer_batches,
        counts.writer_jobs,
        counts.writer_busy_s,
        secs(f.restart_cpu.map(|c| c.0)),
        secs(f.restart_cpu.map(|c| c.1)),
        sys::cpu(),
    );
}
