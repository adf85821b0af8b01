//! Self-tests of the harness: the namespaces really are isolated, a stock
//! `tailscaled` really runs inside them, and everything is cleaned up, also
//! when a test panics. None of this needs a working server.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::harness::postgres::{self, PgDatabase};
use crate::harness::process::OwnedChild;
use crate::harness::{ClientVersion, Netns, Tailscaled, Topology, skip_real_clients, wait_for};

fn proc_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn ns_names(topo: &Topology) -> Vec<String> {
    std::iter::once(topo.hub())
        .chain(topo.hosts())
        .map(|ns| ns.name().to_owned())
        .collect()
}

#[test]
fn topology_is_isolated_connected_and_removed_on_drop() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(2);
    let names = ns_names(&topo);
    let listed = Netns::list();
    for name in &names {
        assert!(listed.contains(name), "{name} missing from `ip netns list`");
    }
    for ns in std::iter::once(topo.hub()).chain(topo.hosts()) {
        ns.assert_isolated();
    }
    for i in 0..2 {
        let addrs = topo
            .host(i)
            .ip(&["-4", "-o", "addr", "show", "dev", "eth0"])
            .stdout;
        assert!(
            addrs.contains(&format!("{}/24", topo.host_ip(i))),
            "host {i} lacks its address: {addrs}"
        );
    }

    // A tiny web server in the hub, reached from a host over the bridge.
    let www = tempfile::tempdir().expect("tempdir");
    fs::write(www.path().join("hello.txt"), "hello from the hub").expect("write");
    let mut cmd = topo.hub().command("python3");
    cmd.args([
        "-m",
        "http.server",
        "--bind",
        &topo.hub_ip().to_string(),
        "8000",
    ])
    .arg("--directory")
    .arg(www.path())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    let web = OwnedChild::spawn(&mut cmd, "python3 http.server");
    let (code, body) = wait_for("the hub web server", Duration::from_secs(20), || {
        topo.host(1).http_get(topo.hub_ip(), 8000, "/hello.txt")
    });
    assert_eq!((code, body.as_str()), (200, "hello from the hub"));
    drop(web);

    // Anything beyond the subnet goes to the dummy gateway, which nobody
    // answers: the attempt fails (TEST-NET-1 address, never routable anyway).
    let started = Instant::now();
    let outside = topo
        .host(0)
        .http_get("192.0.2.1".parse().expect("ip"), 80, "/");
    assert!(
        outside.is_err(),
        "reached 192.0.2.1 from a test namespace: {outside:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));

    drop(topo);
    let listed = Netns::list();
    for name in &names {
        assert!(!listed.contains(name), "{name} still exists after drop");
    }
}

#[test]
fn tailscaled_runs_inside_its_namespace_and_needs_login() {
    if skip_real_clients() {
        return;
    }
    for version in [ClientVersion::V1_96_4, ClientVersion::V1_78_1] {
        let topo = Topology::new(1);
        let names = ns_names(&topo);
        let mut ts = Tailscaled::start(topo.host(0), "selftest", version);
        let pid = ts.pid().expect("running");

        let st = ts.status().expect("status --json");
        assert_eq!(
            st.backend_state,
            "NeedsLogin",
            "{}: {:#}",
            version.as_str(),
            st.raw
        );
        let reported = ts.cli(&["version"], Duration::from_secs(20)).stdout;
        assert_eq!(reported.lines().next(), Some(version.as_str()));

        // The PID we hold is tailscaled itself, and it lives in the host netns.
        let exe = fs::read_link(format!("/proc/{pid}/exe")).expect("exe link");
        assert!(
            exe.ends_with("tailscaled"),
            "pid {pid} is {}",
            exe.display()
        );
        assert_eq!(Netns::identify(pid), topo.host(0).name());
        // Userspace networking adds no routes or interfaces.
        topo.host(0).assert_isolated();

        // Restart on the same state directory.
        ts.restart();
        let pid2 = ts.pid().expect("running again");
        assert_ne!(pid, pid2);
        assert!(!proc_alive(pid), "old tailscaled {pid} survived restart");
        assert_eq!(ts.status().expect("status").backend_state, "NeedsLogin");

        drop(ts);
        assert!(!proc_alive(pid2), "tailscaled {pid2} survived drop");
        drop(topo);
        let listed = Netns::list();
        assert!(
            names.iter().all(|n| !listed.contains(n)),
            "namespaces left: {listed:?}"
        );
    }
}

#[test]
fn a_panicking_test_leaves_no_process_or_namespace() {
    if skip_real_clients() {
        return;
    }
    let seen: Mutex<(Vec<String>, Option<u32>)> = Mutex::new((Vec::new(), None));
    let result = catch_unwind(AssertUnwindSafe(|| {
        let topo = Topology::new(1);
        let ts = Tailscaled::start(topo.host(0), "doomed", ClientVersion::V1_96_4);
        *seen.lock().expect("lock") = (ns_names(&topo), ts.pid());
        panic!("deliberate panic inside a test");
    }));
    assert!(result.is_err());
    let (names, pid) = seen.into_inner().expect("lock");
    let pid = pid.expect("tailscaled had started");
    assert!(!proc_alive(pid), "tailscaled {pid} survived the panic");
    let listed = Netns::list();
    assert!(
        names.iter().all(|n| !listed.contains(n)),
        "namespaces left: {listed:?}"
    );
}

#[test]
fn tailscaled_refuses_a_namespace_that_is_not_isolated() {
    if skip_real_clients() {
        return;
    }
    // A namespace not built by Topology is never trusted.
    let bare = Netns::create(&format!("csit{}n9999bare", std::process::id()));
    let err = catch_unwind(AssertUnwindSafe(|| {
        Tailscaled::start(&bare, "bare", ClientVersion::V1_96_4)
    }))
    .err()
    .expect("start must refuse");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("not built by Topology"), "{msg}");
    assert!(bare.pids().is_empty());

    // A topology host that gained a route out is refused too.
    let topo = Topology::new(1);
    let gw = topo.gateway().to_string();
    topo.host(0)
        .ip(&["route", "add", "198.51.100.0/24", "via", &gw]);
    let err = catch_unwind(AssertUnwindSafe(|| {
        Tailscaled::start(topo.host(0), "leaky", ClientVersion::V1_96_4)
    }))
    .err()
    .expect("start must refuse");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("198.51.100.0/24"), "{msg}");
    assert!(topo.host(0).pids().is_empty());
}

#[test]
fn an_ipv6_host_is_isolated_until_it_gains_an_ipv6_route_out() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(2);
    topo.enable_ipv6();
    // On-link IPv6 routes only: accepted.
    topo.host(0).assert_isolated();

    let mut gw = topo.subnet6().network().segments();
    gw[7] = 0xfe;
    let gw = std::net::Ipv6Addr::from(gw).to_string();
    topo.host(1)
        .ip(&["-6", "route", "add", "default", "via", &gw]);
    let err = catch_unwind(AssertUnwindSafe(|| topo.host(1).assert_isolated()))
        .expect_err("a default IPv6 route must be refused");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("default"), "{msg}");
}

#[test]
fn postgres_is_reachable_from_the_hub_over_its_socket() {
    if skip_real_clients() {
        return;
    }
    let Some(url) = postgres::admin_url() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} must be set in CI",
            postgres::URL_ENV
        );
        eprintln!("skipping: {} is not set", postgres::URL_ENV);
        return;
    };
    let topo = Topology::new(0);
    let db = PgDatabase::create(topo.tag());
    let name = db.params().dbname.clone();
    // Connect exactly as the server will: from the isolated hub, via socket.
    let p = db.params();
    let hub_url = format!(
        "postgres://{}:{}@localhost/{}?host={}&port={}",
        p.user, p.pass, p.dbname, p.host, p.port
    );
    let out = topo
        .hub()
        .run(
            &[
                "psql",
                "-X",
                "-d",
                &hub_url,
                "-tAc",
                "SELECT current_database()",
            ],
            Duration::from_secs(30),
        )
        .expect_success("psql from the hub namespace");
    assert_eq!(out.stdout.trim(), name);

    drop(db);
    let out = crate::harness::process::run(
        std::process::Command::new("psql").args([
            "-X",
            "-d",
            &url,
            "-tAc",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
        ]),
        Duration::from_secs(30),
    )
    .expect_success("psql");
    assert_eq!(
        out.stdout.trim(),
        "0",
        "test database {name} was not dropped"
    );
}
