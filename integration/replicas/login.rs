//! Interactive logins across replicas with stock clients: tailscale 1.96.4
//! logs in through replica A (its URL names A) and waits there; the
//! operator's `clawscale auth register` runs against replica B. The client
//! is Running within 3 s of the command, both replicas list the node once,
//! and a login rejected on B fails on A's client.

use std::time::Duration;

use super::{pair, user_key};
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
