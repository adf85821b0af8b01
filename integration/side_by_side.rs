//! Side-by-side enrollment with stock clients (`benches/side-by-side.sh`):
//! N real `tailscaled` 1.96.4, each in its own namespace, run `tailscale
//! up` one after another against one control server in the hub namespace;
//! reported are each `up` time, the time until every client lists every
//! other (full mesh), and the server's CPU time and RSS.
//!
//! Ignored by default (it measures, it proves nothing new); run with
//! `SIDE_BY_SIDE_NODES=N` (default 20). The last line is machine-readable:
//! `bench side-by-side server=clawscale nodes=… up_p50_s=… …`.

use std::time::{Duration, Instant};

use crate::harness::{ClientVersion, KeyOptions, Server, Tailscaled, Topology, wait_for};

const MESH: Duration = Duration::from_secs(300);

/// `utime + stime` of `pid` in seconds (USER_HZ is 100 on Linux).
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

fn rss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "a bench: benches/side-by-side.sh runs it"]
fn side_by_side_enrollment() {
    let n: usize = std::env::var("SIDE_BY_SIDE_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let topo = Topology::new(n);
    let server = Server::start(&topo);
    let pid = server.pid().expect("server running");
    server.create_user("bench");
    let key = server.create_preauthkey(
        "bench",
        &KeyOptions {
            reusable: true,
            ..KeyOptions::default()
        },
    );
    let clients: Vec<Tailscaled> = (0..n)
        .map(|i| Tailscaled::start(topo.host(i), &format!("node{i}"), ClientVersion::V1_96_4))
        .collect();
    let cpu_before = cpu_s(pid);
    let started = Instant::now();
    let mut ups = Vec::with_capacity(n);
    for (i, c) in clients.iter().enumerate() {
        let t = Instant::now();
        c.up_ok(&server.url(), &key, &format!("node{i}"));
        ups.push(t.elapsed());
        eprintln!("tailscale up node{i}: {:.3} s", ups[i].as_secs_f64());
    }
    for (i, c) in clients.iter().enumerate() {
        wait_for(&format!("node{i} to list every peer"), MESH, || {
            let st = c.status()?;
            let seen = st.peers.len();
            (seen == n - 1)
                .then_some(())
                .ok_or_else(|| format!("{seen} of {} peers", n - 1))
        });
    }
    let mesh = started.elapsed();
    let cpu = cpu_s(pid) - cpu_before;
    let rss = rss_kib(pid);
    let mut sorted = ups.clone();
    sorted.sort();
    let pct = |p: usize| sorted[(n * p).div_ceil(100).saturating_sub(1)].as_secs_f64();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    println!(
        "bench side-by-side server=clawscale nodes={n} up_p50_s={:.3} up_max_s={:.3} \
         mesh_s={:.2} server_cpu_s={cpu:.2} server_rss_kib={rss} load={load}",
        pct(50),
        pct(100),
        mesh.as_secs_f64()
    );
}
