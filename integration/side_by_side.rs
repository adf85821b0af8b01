//! Side-by-side enrollment with stock clients (`benches/side-by-side.sh`):
//! for each server in turn (clawscale, then rscale), a fresh topology of N
//! real `tailscaled` 1.96.4, each in its own namespace, runs `tailscale up`
//! one after another against that server in the hub namespace; reported are
//! each `up` time, the time from the first `up` until every client lists
//! every other (full mesh), the server's CPU time and RSS, the CPU time of
//! its PostgreSQL backends, the CPU both spend in an idle window after the
//! mesh, and the path of one ping from the first client to the last.
//!
//! Ignored by default (it measures, it proves nothing new). Environment:
//! `SIDE_BY_SIDE_NODES` (default 20), `SIDE_BY_SIDE_SERVERS` (default
//! `clawscale,rscale`; `clawscale` runs on PostgreSQL like rscale,
//! `clawscale-sqlite` on SQLite), `SIDE_BY_SIDE_IDLE_SECS` (default 30),
//! `RSCALE_BIN` (required when rscale runs) and
//! `CLAWSCALE_TEST_POSTGRES_URL`. One machine-readable line per server:
//! `bench side-by-side server=… db=… nodes=… up_p50_s=… …`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// The enrollment bench's `/proc` readers.
#[allow(dead_code)]
#[path = "../benches/enroll/sys.rs"]
mod sys;

use crate::harness::postgres::admin_url;
use crate::harness::process::run;
use crate::harness::rscale::{self, Rscale};
use crate::harness::{ClientVersion, Db, KeyOptions, Server, Tailscaled, Topology, wait_for};

const MESH: Duration = Duration::from_secs(300);

/// A server the bench can measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contender {
    Clawscale(Db),
    Rscale,
}

impl Contender {
    fn parse(name: &str) -> Result<Contender, String> {
        match name.trim() {
            "clawscale" => Ok(Contender::Clawscale(Db::Postgres)),
            "clawscale-sqlite" => Ok(Contender::Clawscale(Db::Sqlite)),
            "rscale" => Ok(Contender::Rscale),
            other => Err(format!(
                "unknown server {other:?} in SIDE_BY_SIDE_SERVERS \
                 (clawscale, clawscale-sqlite, rscale)"
            )),
        }
    }

    fn parse_list(list: &str) -> Result<Vec<Contender>, String> {
        let servers = list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Contender::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err("SIDE_BY_SIDE_SERVERS names no server".into());
        }
        Ok(servers)
    }

    fn name(self) -> &'static str {
        match self {
            Contender::Clawscale(_) => "clawscale",
            Contender::Rscale => "rscale",
        }
    }

    fn db(self) -> &'static str {
        match self {
            Contender::Clawscale(Db::Sqlite) => "sqlite",
            Contender::Clawscale(Db::Postgres) | Contender::Rscale => "postgres",
        }
    }
}

/// A started server, whichever one it is.
enum Running {
    Clawscale(Server),
    Rscale(Rscale),
}

impl Running {
    fn start(who: Contender, topo: &Topology) -> Running {
        match who {
            Contender::Clawscale(db) => Running::Clawscale(Server::start_with(topo, db, |_| {})),
            Contender::Rscale => Running::Rscale(Rscale::start(topo)),
        }
    }

    /// A reusable pre-auth key for every client.
    fn key(&self) -> String {
        match self {
            Running::Clawscale(s) => {
                s.create_user("bench");
                let opts = KeyOptions {
                    reusable: true,
                    ..KeyOptions::default()
                };
                s.create_preauthkey("bench", &opts)
            }
            Running::Rscale(r) => r.create_reusable_key(),
        }
    }

    fn url(&self) -> String {
        match self {
            Running::Clawscale(s) => s.url(),
            Running::Rscale(r) => r.url(),
        }
    }

    fn pid(&self) -> String {
        match self {
            Running::Clawscale(s) => s.pid(),
            Running::Rscale(r) => r.pid(),
        }
        .expect("server running")
        .to_string()
    }

    /// The PostgreSQL database the server uses, if it uses one.
    fn database(&self) -> Option<String> {
        match self {
            Running::Clawscale(s) => {
                let text = std::fs::read_to_string(s.config_path()).expect("read server config");
                let cfg: serde_norway::Value = serde_norway::from_str(&text).expect("config YAML");
                cfg["database"]["postgres"]["name"]
                    .as_str()
                    .map(str::to_owned)
            }
            Running::Rscale(r) => Some(r.database().to_owned()),
        }
    }
}

/// CPU time per PostgreSQL backend serving one database, by backend PID.
/// The database does the server's storage work in other processes, so it
/// is counted apart; a backend that exits inside a window is not counted.
struct Backends {
    database: Option<String>,
}

impl Backends {
    fn snapshot(&self) -> BTreeMap<u32, Duration> {
        let Some(db) = &self.database else {
            return BTreeMap::new();
        };
        let url = admin_url().expect("CLAWSCALE_TEST_POSTGRES_URL is set for a PostgreSQL server");
        let sql = format!("SELECT pid FROM pg_stat_activity WHERE datname = '{db}'");
        let out = run(
            Command::new("psql")
                .args(["-X", "-q", "-A", "-t", "-d", &url, "-c", &sql])
                .env("PGCONNECT_TIMEOUT", "10"),
            Duration::from_secs(30),
        )
        .expect_success("listing the database's backends");
        out.stdout
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .map(|pid: u32| (pid, sys::cpu_time(&pid.to_string())))
            .collect()
    }

    /// Seconds of backend CPU since `before` (`None` without a database).
    fn since(&self, before: &BTreeMap<u32, Duration>) -> Option<f64> {
        self.database.as_ref()?;
        let now = self.snapshot();
        let spent = now
            .iter()
            .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or_default()))
            .sum::<Duration>();
        Some(spent.as_secs_f64())
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |s| format!("{s:.2}"))
}

/// Nearest-rank percentile of sorted durations, in seconds.
fn percentile(sorted: &[Duration], p: usize) -> f64 {
    sorted[(sorted.len() * p).div_ceil(100).saturating_sub(1)].as_secs_f64()
}

/// One server's run on its own fresh topology; returns the bench line.
fn measure(who: Contender, n: usize, idle: Duration) -> String {
    eprintln!(
        "=== side by side: {} ({}), {n} clients ===",
        who.name(),
        who.db()
    );
    let topo = Topology::new(n);
    let server = Running::start(who, &topo);
    let key = server.key();
    let url = server.url();
    let pid = server.pid();
    let backends = Backends {
        database: server.database(),
    };
    let clients: Vec<Tailscaled> = (0..n)
        .map(|i| Tailscaled::start(topo.host(i), &format!("node{i}"), ClientVersion::V1_96_4))
        .collect();

    let cpu_before = sys::cpu_time(&pid);
    let db_before = backends.snapshot();
    let started = Instant::now();
    let mut ups = Vec::with_capacity(n);
    for (i, c) in clients.iter().enumerate() {
        let t = Instant::now();
        c.up_ok(&url, &key, &format!("node{i}"));
        ups.push(t.elapsed());
        eprintln!(
            "{} tailscale up node{i}: {:.3} s",
            who.name(),
            ups[i].as_secs_f64()
        );
    }
    let last_up_done = Instant::now();
    for (i, c) in clients.iter().enumerate() {
        wait_for(&format!("node{i} to list every peer"), MESH, || {
            let seen = c.status()?.peers.len();
            (seen == n - 1)
                .then_some(())
                .ok_or_else(|| format!("{seen} of {} peers", n - 1))
        });
    }
    let mesh = started.elapsed();
    // The part of `mesh` after the last `up` returned: how long the last
    // join took to reach every stream (plus one status poll per client).
    let settle = mesh.saturating_sub(last_up_done.duration_since(started));
    let cpu = (sys::cpu_time(&pid) - cpu_before).as_secs_f64();
    let db_cpu = backends.since(&db_before);
    let rss = sys::rss(&pid).map_or(0, |r| r.current_kib);
    let load = sys::load();

    // Connected and idle: what keeping N streams costs, e.g. periodic map
    // rebuilds.
    let idle_cpu_before = sys::cpu_time(&pid);
    let idle_db_before = backends.snapshot();
    std::thread::sleep(idle);
    let idle_cpu = (sys::cpu_time(&pid) - idle_cpu_before).as_secs_f64();
    let idle_db_cpu = backends.since(&idle_db_before);

    // Listing peers is not a working mesh: the first client must reach the
    // last over the tailnet (any path: DERP through the server's relay, or
    // direct).
    let last = clients[n - 1].status().expect("last client's status");
    let last_ip = last.tailscale_ips.first().expect("last client has an IP");
    let pong = clients[0].wait_ping(last_ip, MESH, |_| true);

    let mut sorted = ups;
    sorted.sort();
    format!(
        "bench side-by-side server={} db={} nodes={n} up_p50_s={:.3} up_max_s={:.3} \
         mesh_s={:.2} settle_s={:.2} server_cpu_s={cpu:.2} db_cpu_s={} server_rss_kib={rss} \
         idle_s={} idle_server_cpu_s={idle_cpu:.2} idle_db_cpu_s={} ping={} load={load}",
        who.name(),
        who.db(),
        percentile(&sorted, 50),
        percentile(&sorted, 100),
        mesh.as_secs_f64(),
        settle.as_secs_f64(),
        secs(db_cpu),
        idle.as_secs(),
        secs(idle_db_cpu),
        if pong.is_derp() { "derp" } else { "direct" },
    )
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

#[test]
#[ignore = "a bench: benches/side-by-side.sh runs it"]
fn side_by_side_enrollment() {
    let n: usize = env_or("SIDE_BY_SIDE_NODES", 20);
    assert!(n >= 2, "a mesh needs at least two clients");
    let idle = Duration::from_secs(env_or("SIDE_BY_SIDE_IDLE_SECS", 30));
    let servers = Contender::parse_list(&env_or(
        "SIDE_BY_SIDE_SERVERS",
        "clawscale,rscale".to_owned(),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    // Before the first server runs, not after its measurement.
    if servers.contains(&Contender::Rscale) {
        rscale::binary();
    }
    for who in servers {
        println!("{}", measure(who, n, idle));
    }
}

#[test]
fn server_list_parses_and_rejects_unknown_names() {
    assert_eq!(
        Contender::parse_list("clawscale, rscale,clawscale-sqlite"),
        Ok(vec![
            Contender::Clawscale(Db::Postgres),
            Contender::Rscale,
            Contender::Clawscale(Db::Sqlite)
        ])
    );
    assert!(Contender::parse_list("headscale").is_err());
    assert!(Contender::parse_list(" , ").is_err());
    assert_eq!(Contender::Rscale.db(), "postgres");
}

#[test]
fn percentiles_use_the_nearest_rank() {
    let sorted: Vec<Duration> = (1..=20).map(Duration::from_secs).collect();
    assert_eq!(percentile(&sorted, 50), 10.0);
    assert_eq!(percentile(&sorted, 100), 20.0);
    assert_eq!(percentile(&sorted[..1], 50), 1.0);
}
