//! DNS server benchmark: 10,000 node names on loopback, load from `dnsperf` (Debian package
//! `dnsperf`). Prints the index build time, the saturated query rate, and latency percentiles
//! at a fixed offered rate.
//!
//! Run: `cargo bench --bench dns` (env: `DNS_BENCH_SECS`, default 10 per phase;
//! `DNS_BENCH_QPS`, the fixed rate of the latency phase, default 50000).
//! Exits non-zero when dnsperf is missing.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Instant;

use clawscale::dns::{self, NodeName, RecordIndex, ServerConfig, ZoneData};

const NAMES: u32 = 10_000;
const QUERIES_IN_FILE: u32 = 100_000;

fn main() -> ExitCode {
    if Command::new("dnsperf").arg("-h").output().is_err() {
        eprintln!("dnsperf not found: install it (apt-get install dnsperf) to run this benchmark");
        return ExitCode::FAILURE;
    }
    let secs = env_u32("DNS_BENCH_SECS", 10);
    let fixed_qps = env_u32("DNS_BENCH_QPS", 50_000);

    let zone = zone();
    let start = Instant::now();
    let index = match RecordIndex::build(&zone) {
        Ok(index) => index,
        Err(e) => {
            eprintln!("index build failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "index: {} names built in {:?}",
        index.len(),
        start.elapsed()
    );

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(index));
    let cfg = ServerConfig {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        // Limiter on (so its cost is measured) but far above the offered load.
        rate_limit_qps: 100_000_000,
        burst: 100_000_000,
        ..ServerConfig::default()
    };
    let handle = match runtime.block_on(dns::serve(
        cfg,
        rx,
        dns::Hooks::default(),
        std::future::pending(),
    )) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("dns server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = handle.udp_addr();

    let file = std::env::temp_dir().join(format!("clawscale-dns-bench-{}.txt", std::process::id()));
    if let Err(e) = write_queries(&file) {
        eprintln!("query file: {e}");
        return ExitCode::FAILURE;
    }
    println!(
        "load: dnsperf, {QUERIES_IN_FILE} queries cycled (40% A, 40% AAAA, 10% PTR, 10% NXDOMAIN)"
    );

    let cpu0 = cpu_seconds();
    let saturated = run_dnsperf(addr, &file, secs, &["-c", "4", "-q", "64"]);
    let cpu1 = cpu_seconds();
    let fixed = run_dnsperf(
        addr,
        &file,
        secs,
        &["-c", "4", "-q", "256", "-Q", &fixed_qps.to_string()],
    );
    let cpu2 = cpu_seconds();
    let _ = std::fs::remove_file(&file);
    let (Some(saturated), Some(fixed)) = (saturated, fixed) else {
        return ExitCode::FAILURE;
    };
    report("saturated (64 outstanding)", &saturated, cpu1 - cpu0);
    report(&format!("fixed rate {fixed_qps} qps"), &fixed, cpu2 - cpu1);
    if saturated.lost > 0 || fixed.lost > 0 {
        eprintln!(
            "warning: lost queries (saturated {}, fixed {})",
            saturated.lost, fixed.lost
        );
    }
    ExitCode::SUCCESS
}

struct Run {
    qps: f64,
    completed: u64,
    lost: u64,
    /// Per-query latencies in microseconds, sorted.
    latencies_us: Vec<u64>,
}

fn report(label: &str, run: &Run, server_cpu: f64) {
    let pct = |p: f64| {
        let l = &run.latencies_us;
        if l.is_empty() {
            return 0.0;
        }
        let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
        l[i] as f64 / 1000.0
    };
    println!(
        "{label}: {:.0} qps, {} completed, {} lost, server CPU {:.1} us/query, latency ms p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
        run.qps,
        run.completed,
        run.lost,
        server_cpu * 1e6 / run.completed.max(1) as f64,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    );
}

/// Runs dnsperf in verbose mode (one line per answered query, latency last) and parses it.
fn run_dnsperf(addr: SocketAddr, file: &Path, secs: u32, extra: &[&str]) -> Option<Run> {
    // Verbose output goes to a file, not a pipe: reading a pipe here would bill this (the
    // server's) process for the load generator's output.
    let log = file.with_extension("out");
    let out = std::fs::File::create(&log).and_then(|stdout| {
        Command::new("dnsperf")
            .args(["-s", &addr.ip().to_string(), "-p", &addr.port().to_string()])
            .arg("-d")
            .arg(file)
            .args(["-l", &secs.to_string(), "-t", "2", "-v"])
            .args(extra)
            .stdout(stdout)
            .output()
    });
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!("dnsperf failed: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Err(e) => {
            eprintln!("dnsperf: {e}");
            return None;
        }
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let mut latencies_us: Vec<u64> = text
        .lines()
        // "> RCODE name type latency"; timeouts ("> T") and interruptions ("> I") are lost.
        .filter(|l| l.starts_with("> ") && !l.starts_with("> T ") && !l.starts_with("> I "))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|s| (s * 1e6) as u64)
        .collect();
    latencies_us.sort_unstable();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let run = Run {
        qps: field("Queries per second:"),
        completed: field("Queries completed:") as u64,
        lost: field("Queries lost:") as u64,
        latencies_us,
    };
    if run.latencies_us.is_empty() {
        eprintln!("dnsperf printed no per-query latencies:\n{text}");
        return None;
    }
    Some(run)
}

fn zone() -> ZoneData {
    let nodes = (0..NAMES)
        .map(|i| NodeName {
            id: u64::from(i),
            label: format!("node-{i}"),
            ipv4: Some(Ipv4Addr::from(0x6440_0000 + i)),
            ipv6: Some(Ipv6Addr::from(
                (0xfd7a_115c_a1e0_u128 << 80) | u128::from(i),
            )),
        })
        .collect();
    ZoneData {
        base_domain: "ts.example.com".into(),
        serial: 1,
        ttl: 30,
        nodes,
        ..ZoneData::default()
    }
}

fn write_queries(path: &Path) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    // xorshift: deterministic, no extra dependency.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..QUERIES_IN_FILE {
        let r = next();
        let node = (r >> 8) as u32 % NAMES;
        match r % 10 {
            0..=3 => writeln!(out, "node-{node}.ts.example.com A")?,
            4..=7 => writeln!(out, "node-{node}.ts.example.com AAAA")?,
            8 => {
                let ip = Ipv4Addr::from(0x6440_0000 + node).octets();
                writeln!(
                    out,
                    "{}.{}.{}.{}.in-addr.arpa PTR",
                    ip[3], ip[2], ip[1], ip[0]
                )?
            }
            _ => writeln!(out, "missing-{node}.ts.example.com A")?,
        }
    }
    out.flush()
}

/// CPU time (user + system) of this process, which runs only the server; from /proc on Linux,
/// 0 elsewhere.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on every Linux configuration Rust targets.
    (ticks(11) + ticks(12)) / 100.0
}

fn env_u32(key: &str, default: u32) -> u32 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
