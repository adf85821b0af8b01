//! A Tailscale SSH check survives the loss of the replica that opened it,
//! with stock clients: haproxy (`balance first`) in front of two replicas
//! whose `login_url` is haproxy's;
//! alice's laptop logs in with OpenSSH to a tagged server running
//! `tailscale up --ssh` (both 1.96.4), whose check is opened on A; A is
//! killed with SIGKILL; the server's tailscaled retries its follow-up,
//! which reaches B and is taken over there; `clawscale auth approve` on B
//! lets the login run.

use std::time::{Duration, Instant};

use super::{LB_PORT, haproxy, kill_and_await_takeover, pair_with};
use crate::harness::{
    ClientVersion, KeyOptions, PgServer, Tailscaled, Topology, skip_real_clients, wait_for,
};
use crate::ssh_check::{AFTER_VERDICT, Ssh, assert_ssh_client};

const JOIN: Duration = Duration::from_secs(90);

pub(super) const POLICY: &str = r#"{
  "tagOwners": {"tag:server": ["alice@example.com"]},
  "acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:server:22"]}],
  "ssh": [{"action": "check", "src": ["alice@example.com"], "dst": ["tag:server"],
           "users": ["root"], "checkPeriod": "1h"}]
}"#;

#[test]
fn an_ssh_check_continues_on_the_other_replica_when_its_own_is_killed() {
    if skip_real_clients() {
        return;
    }
    assert_ssh_client();
    let topo = Topology::new(2);
    let pg = PgServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.hujson");
    std::fs::write(&policy, POLICY).expect("write policy");
    // Both replicas serve the same policy file, and send people to the
    // balancer (`login_url`). The check's own URL is `https://unused/…`, as
    // Tailscale's: with an http:// URL tailscaled's retries after the kill
    // went outside Noise to the balancer and got 404s (3 runs of 3).
    let url = format!("http://{}:{LB_PORT}", topo.hub_ip());
    let (mut a, b) = pair_with(&topo, &pg, [8081, 8082], [901, 902], |_, cfg| {
        cfg.set("policy.mode", "file")
            .set("policy.path", policy.to_string_lossy().to_string())
            .set("login_url", url.clone());
    });
    let _lb = haproxy(&topo, &[8081, 8082]);
    a.cli_ok(&["users", "create", "alice", "--email", "alice@example.com"]);
    let server_key = a.create_preauthkey(
        "alice",
        &KeyOptions {
            tags: vec!["tag:server".into()],
            ..KeyOptions::default()
        },
    );
    let laptop_key = a.create_preauthkey("alice", &KeyOptions::default());

    let laptop = Tailscaled::start(topo.host(0), "laptop", ClientVersion::V1_96_4);
    let server = Tailscaled::start(topo.host(1), "srv", ClientVersion::V1_96_4);
    laptop.up_ok(&url, &laptop_key, "laptop");
    let up = server.up_with(&url, &server_key, "srv", &["--ssh"]);
    assert!(up.success(), "tailscale up --ssh:\n{up}");
    let st = server.wait_state("Running", JOIN);
    let ip = st
        .self_node
        .and_then(|s| s.tailscale_ips.into_iter().find(|ip| ip.contains('.')))
        .expect("the server's IPv4 address");
    wait_for("the laptop to see the server", JOIN, || {
        laptop
            .status()?
            .peer("srv")
            .map(|_| ())
            .ok_or_else(|| "not yet".to_owned())
    });

    // Opened on A (every connection goes there while it is up).
    let mut ssh = Ssh::start(&laptop, &ip, "root", dir.path(), "failover");
    let id = ssh.auth_id();
    // The banner sends the person to the balancer, not to A.
    assert!(
        ssh.stderr()
            .contains(&format!("visit: {url}/register/{id}")),
        "{}",
        ssh.stderr()
    );
    let took = kill_and_await_takeover(&mut a, &b, "the server's follow-up to be taken over by B");
    eprintln!("SSH check taken over by B {took:?} after kill -9 of A");
    b.cli_ok(&["auth", "approve", "--auth-id", &id]);
    let decided = Instant::now();
    let (ok, out, err) = ssh.finish(AFTER_VERDICT);
    assert!(
        ok && out.trim() == "ok",
        "approved login failed: {out:?} {err}"
    );
    eprintln!("login ran {:?} after the approval on B", decided.elapsed());
    drop((laptop, server));
    drop((a, b)); // before their database server
}
