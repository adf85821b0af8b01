//! Interactive logins across replicas with stock clients: tailscale 1.96.4
//! logs in through replica A (its URL names A) and waits there; the
//! operator's `clawscale auth register` runs against replica B. The client
//! is Running within 3 s of the command, both replicas list the node once,
//! and a login rejected on B fails on A's client. And a login survives the
//! loss of its replica: started through haproxy on A (the URL names
//! haproxy, the replicas' `login_url`), A killed, the client follows it up
//! on B, where it is shown and registered.

use std::time::{Duration, Instant};

use super::{LB_PORT, haproxy, kill_and_await_takeover, pair, pair_with, user_key};
use crate::harness::{ClientVersion, PgServer, Tailscaled, Topology, skip_real_clients, wait_for};
use crate::login::login_decided_on;

const USER: &str = "alice";

#[test]
fn a_login_waiting_on_one_replica_is_decided_on_the_other() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(2);
    let pg = PgServer::start();
    let (a, b) = pair(&topo, &pg, [8081, 8082], [901, 902]);
    let _ = user_key(&a, USER);
    let laptop = Tailscaled::start(topo.host(0), "laptop", ClientVersion::V1_96_4);
    let register = ["auth", "register", "--auth-id", "{}", "--user", USER];
    let ips = login_decided_on(&a, &b, &laptop, "laptop", &[], &register);
    assert!(!ips.is_empty());
    for server in [&a, &b] {
        wait_for(
            "both replicas to list the node once",
            Duration::from_secs(5),
            || {
                let nodes = server.nodes();
                let named: Vec<_> = nodes.iter().filter(|n| n.name() == "laptop").collect();
                match named.as_slice() {
                    [n] if {
                        let mut got = n.ip_addresses();
                        got.sort();
                        got == ips
                    } =>
                    {
                        Ok(())
                    }
                    _ => Err(format!("{nodes:?}")),
                }
            },
        );
    }

    // Rejected on B: A's client fails, and no node appears.
    let other = Tailscaled::start(topo.host(1), "other", ClientVersion::V1_96_4);
    let mut up = crate::login::PendingUp::start(&other, &a, "other", &[]);
    let id = up.auth_id(&a);
    b.cli_ok(&["auth", "reject", "--auth-id", &id]);
    let (status, out) = up.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "a rejected login succeeded:\n{out}");
    assert!(out.contains("rejected"), "{out}");
    assert!(a.nodes().iter().all(|n| n.name() != "other"));
    drop((laptop, other));
    drop((a, b)); // before their database server
}

#[test]
fn a_login_continues_on_the_other_replica_when_its_own_is_killed() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(1);
    let pg = PgServer::start();
    let url = format!("http://{}:{LB_PORT}", topo.hub_ip());
    let (mut a, b) = pair_with(&topo, &pg, [8081, 8082], [901, 902], |_, cfg| {
        cfg.set("login_url", url.clone());
    });
    let _lb = haproxy(&topo, &[8081, 8082]);
    let _ = user_key(&a, USER);
    let laptop = Tailscaled::start(topo.host(0), "laptop", ClientVersion::V1_96_4);
    let mut up = crate::login::PendingUp::start_at(&laptop, &url, "laptop", &[]);
    // haproxy's `balance first`: the login starts on A; its URL names the
    // balancer (`login_url`).
    let id = up.auth_id_under(&url);

    // B shows the page of a login waiting on A.
    let (code, page) = laptop
        .netns()
        .http_get(b.ip(), b.port(), &format!("/register/{id}"))
        .expect("register page on B");
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains(&format!("auth register --auth-id {id}")),
        "{page}"
    );

    let took = kill_and_await_takeover(&mut a, &b, "the client to follow its login up on B");
    eprintln!("login followed up on B {took:?} after kill -9 of A");
    b.cli_ok(&["auth", "register", "--auth-id", &id, "--user", USER]);
    let decided = Instant::now();
    // Registered within about 0.25 s; Running takes about 3 s more, as the
    // client's netcheck gives up on the dead replica's relay region.
    laptop.wait_state("Running", Duration::from_secs(10));
    eprintln!("Running {:?} after the decision on B", decided.elapsed());
    let (status, out) = up.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "`tailscale up` failed:\n{out}");
    let nodes = b.nodes();
    let named: Vec<_> = nodes.iter().filter(|n| n.name() == "laptop").collect();
    assert_eq!(named.len(), 1, "{nodes:?}");
    drop(laptop);
    drop((a, b)); // before their database server
}
