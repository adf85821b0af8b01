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

/// The enrollment bench's `/proc` readers.
#[allow(dead_code)]
#[path = "../benches/enroll/sys.rs"]
mod sys;

use crate::harness::{ClientVersion, KeyOptions, Server, Tailscaled, Topology, wait_for};

const MESH: Duration = Duration::from_secs(300);

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
    let pid = pid.to_string();
    let cpu_before = sys::cpu_time(&pid);
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
    let cpu = (sys::cpu_time(&pid) - cpu_before).as_secs_f64();
    let rss = sys::rss(&pid).map_or(0, |r| r.current_kib);
    let mut sorted = ups.clone();
    sorted.sort();
    let pct = |p: usize| sorted[(n * p).div_ceil(100).saturating_sub(1)].as_secs_f64();
    let load = sys::load();
    println!(
        "bench side-by-side server=clawscale nodes={n} up_p50_s={:.3} up_max_s={:.3} \
         mesh_s={:.2} server_cpu_s={cpu:.2} server_rss_kib={rss} load={load}",
        pct(50),
        pct(100),
        mesh.as_secs_f64()
    );
}
