//! Replicas (issue 15 item 3): several `clawscale serve` processes on one
//! PostgreSQL database, and the refusal to share a SQLite file.

mod certs;
mod failover;
mod login;
mod oidc;
mod postgres;
mod relay;
mod sqlite;
mod ssh_check;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::{Db, KeyOptions, OwnedChild, PgServer, Server, ServerConfig, Topology};

/// The port haproxy listens on, in the hub namespace: the one login
/// server URL in front of the replicas.
const LB_PORT: u16 = 8080;

/// Two replicas on `ports` with relay regions `regions`; the second uses
/// the first's Noise key, so clients know both as one server.
fn pair(topo: &Topology, pg: &PgServer, ports: [u16; 2], regions: [u32; 2]) -> (Server, Server) {
    pair_with(topo, pg, ports, regions, |_, _| {})
}

/// As `pair`, with `customize(i, config)` applied to replica i's config.
fn pair_with(
    topo: &Topology,
    pg: &PgServer,
    ports: [u16; 2],
    regions: [u32; 2],
    customize: impl Fn(usize, &mut ServerConfig),
) -> (Server, Server) {
    let a = replica(topo, pg, ports[0], regions[0], None, |c| customize(0, c));
    let noise = a.dir().join("data/noise_private.key");
    let b = replica(topo, pg, ports[1], regions[1], Some(&noise), |c| {
        customize(1, c)
    });
    (a, b)
}

/// Kills replica `a` and waits until `b` has taken over a request its
/// client follows up (`what` says whose); returns how long after the kill.
fn kill_and_await_takeover(a: &mut Server, b: &Server, what: &str) -> Duration {
    a.kill();
    let killed = std::time::Instant::now();
    let marker = "a request started on another replica is followed up here";
    crate::harness::wait_for(what, Duration::from_secs(60), || {
        if b.log().contains(marker) {
            Ok(())
        } else {
            Err("not yet".to_owned())
        }
    });
    killed.elapsed()
}

/// Creates `user` through `server` and a reusable pre-auth key for it.
fn user_key(server: &Server, user: &str) -> String {
    server.create_user(user);
    server.create_preauthkey(
        user,
        &KeyOptions {
            reusable: true,
            ..KeyOptions::default()
        },
    )
}

/// A replica in the hub namespace on `port`, with relay region `region`
/// (STUN on `port + 100`); `noise` is the first replica's key file
/// (clients know the server by it).
fn replica(
    topo: &Topology,
    pg: &PgServer,
    port: u16,
    region: u32,
    noise: Option<&Path>,
    customize: impl FnOnce(&mut ServerConfig),
) -> Server {
    Server::start_with(topo, Db::Sqlite, |cfg| {
        pg.configure(cfg);
        let hub = topo.hub_ip();
        cfg.set("listen_addr", format!("{hub}:{port}"))
            .set("server_url", format!("http://{hub}:{port}"))
            .set(
                "derp.server.stun_listen_addr",
                format!("{hub}:{}", port + 100),
            )
            .set("derp.server.region_id", region)
            .set("derp.server.region_code", format!("r{region}"))
            .set("derp.server.region_name", format!("replica {region}"));
        if let Some(k) = noise {
            cfg.set("noise.private_key_path", k.to_string_lossy());
        }
        customize(cfg);
    })
}

/// haproxy in the hub namespace, killed (by PID) on drop.
pub(crate) struct Haproxy {
    _child: OwnedChild,
    _dir: tempfile::TempDir,
}

/// haproxy (TCP mode, `balance first`) on [`LB_PORT`] in front of the
/// replicas on `backends`: every client goes to the first healthy one.
pub(crate) fn haproxy(topo: &Topology, backends: &[u16]) -> Haproxy {
    let found = std::process::Command::new("haproxy").arg("-v").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "haproxy is missing: install Debian's `haproxy` (.ci/run does)"
    );
    let hub = topo.hub_ip();
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, port)| format!("    server r{i} {hub}:{port} check\n"))
        .collect();
    // TCP mode: the control protocol's HTTP upgrade to Noise passes through
    // untouched. A replica is taken out when /healthz is not 200; its
    // sessions are cut so clients reconnect to the next one.
    let cfg = format!(
        "global\n    maxconn 1000\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 1h\n    \
         timeout server 1h\n    timeout check 1s\n    retries 3\n    option redispatch\n\
         frontend control\n    bind {hub}:{LB_PORT}\n    default_backend replicas\n\
         backend replicas\n    balance first\n    option httpchk GET /healthz\n    \
         default-server inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions\n{servers}"
    );
    let dir = tempfile::Builder::new()
        .prefix(&format!("{}-haproxy-", topo.tag()))
        .tempdir()
        .expect("haproxy dir");
    let path = dir.path().join("haproxy.cfg");
    fs::write(&path, cfg).expect("write haproxy.cfg");
    let check = topo.hub().run(
        &["haproxy", "-c", "-f", &path.to_string_lossy()],
        Duration::from_secs(30),
    );
    assert!(check.success(), "haproxy rejects its config:\n{check}");
    let log = fs::File::create(dir.path().join("haproxy.log")).expect("log");
    let mut cmd = topo.hub().command("haproxy");
    cmd.arg("-db")
        .arg("-f")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log);
    let child = OwnedChild::spawn(&mut cmd, "haproxy");
    Haproxy {
        _child: child,
        _dir: dir,
    }
}
