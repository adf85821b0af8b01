//! An OIDC login across replicas with a stock client and the OpenID-certified
//! `oidc-provider`: tailscale 1.96.4 logs in through haproxy and waits on
//! replica A; the person's browser opens the login on replica B, which
//! sends it to the provider; the provider sends it back to the balancer's
//! callback, which reaches A. A finishes the login B started (the login in
//! progress is shared through the database), and the client runs as that
//! person.

use std::time::Duration;

use super::{LB_PORT, haproxy, pair_with};
use crate::harness::{
    ClientVersion, KeyOptions, PgServer, Tailscaled, Topology, skip_real_clients, wait_for,
};
use crate::oidc::idp::{CLIENT_ID, CLIENT_SECRET, Idp};
use crate::oidc::{accounts, sign_in_from};

const IDP_PORT: u16 = 9443;

#[test]
fn an_oidc_login_started_on_one_replica_is_finished_on_the_other() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(1);
    let hub = topo.hub_ip();
    let pg = PgServer::start();
    let lb = format!("http://{hub}:{LB_PORT}");
    let (a, b) = pair_with(&topo, &pg, [8081, 8082], [901, 902], |_, cfg| {
        cfg.set("login_url", lb.clone());
        cfg.set("oidc.issuer", format!("http://{hub}:{IDP_PORT}"));
        cfg.set("oidc.client_id", CLIENT_ID);
        cfg.set("oidc.client_secret", CLIENT_SECRET);
        cfg.set("oidc.scope", ["openid", "email", "profile", "groups"]);
        cfg.set("oidc.pkce.enabled", true);
    });
    let _lb = haproxy(&topo, &[8081, 8082]);
    // One redirect URI for all replicas: the balancer's.
    let _idp = Idp::start(
        Some(topo.hub()),
        hub,
        IDP_PORT,
        &format!("{lb}/oidc/callback"),
        &accounts(&[]),
    );
    let laptop = Tailscaled::start(topo.host(0), "laptop", ClientVersion::V1_96_4);
    let mut up = crate::login::PendingUp::start_at(&laptop, &lb, "laptop", &[]);
    // haproxy's `balance first`: the client and its login wait on A.
    let id = up.auth_id_under(&lb);

    let on_b = format!("http://{}:{}/register/{id}", b.ip(), b.port());
    let done = sign_in_from(topo.hub(), on_b, "alice");
    if done.status != reqwest::StatusCode::OK {
        a.dump_log();
        b.dump_log();
        panic!(
            "alice's login failed: {} {} {}",
            done.status, done.url, done.body
        );
    }
    assert!(
        done.url.starts_with(&format!("{lb}/oidc/callback")),
        "the provider sent the browser back through the balancer: {}",
        done.url
    );
    assert!(done.body.contains("alice@example.com"), "{}", done.body);
    laptop.wait_state("Running", Duration::from_secs(30));
    let (status, out) = up.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "`tailscale up` failed:\n{out}");
    for server in [&a, &b] {
        wait_for(
            "both replicas to list alice's node once",
            Duration::from_secs(5),
            || {
                let nodes = server.nodes();
                let named: Vec<_> = nodes.iter().filter(|n| n.name() == "laptop").collect();
                match named.as_slice() {
                    [n] if n.raw["user"]["name"] == "alice" => Ok(()),
                    _ => Err(format!("{nodes:?}")),
                }
            },
        );
    }
    drop(laptop);
    drop((a, b)); // before their database server
}

const CHECK_POLICY: &str = r#"{
  "tagOwners": {"tag:server": ["alice@example.com"]},
  "acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:server:22"]}],
  "ssh": [{"action": "check", "src": ["alice@example.com"], "dst": ["tag:server"],
           "users": ["root"], "checkPeriod": "1h"}]
}"#;

/// alice's OpenSSH login to a tagged server (both 1.96.4) is held by a
/// `check` on replica A; she opens the check's page on replica B, which
/// starts her sign-in at the provider (before, B showed an operator's
/// approval page for a check held elsewhere); the provider sends her back
/// through the balancer, to A, and the login runs. (A callback reaching
/// the replica that does not hold the check is covered by
/// `auth::oidc::tests::replicas`.)
#[test]
fn an_ssh_check_held_on_one_replica_is_passed_by_signing_in_on_the_other() {
    if skip_real_clients() {
        return;
    }
    crate::ssh_check::assert_ssh_client();
    let topo = Topology::new(2);
    let hub = topo.hub_ip();
    let pg = PgServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.hujson");
    std::fs::write(&policy, CHECK_POLICY).expect("write policy");
    let lb = format!("http://{hub}:{LB_PORT}");
    let (a, b) = pair_with(&topo, &pg, [8081, 8082], [901, 902], |_, cfg| {
        cfg.set("policy.mode", "file")
            .set("policy.path", policy.to_string_lossy().to_string())
            .set("login_url", lb.clone());
        cfg.set("oidc.issuer", format!("http://{hub}:{IDP_PORT}"));
        cfg.set("oidc.client_id", CLIENT_ID);
        cfg.set("oidc.client_secret", CLIENT_SECRET);
        cfg.set("oidc.scope", ["openid", "email", "profile", "groups"]);
        cfg.set("oidc.pkce.enabled", true);
    });
    let _lb = haproxy(&topo, &[8081, 8082]);
    let _idp = Idp::start(
        Some(topo.hub()),
        hub,
        IDP_PORT,
        &format!("{lb}/oidc/callback"),
        &accounts(&[]),
    );
    // alice's laptop, enrolled by her login (which makes her user).
    let laptop = Tailscaled::start(topo.host(0), "laptop", ClientVersion::V1_96_4);
    let mut up = crate::login::PendingUp::start_at(&laptop, &lb, "laptop", &[]);
    let id = up.auth_id_under(&lb);
    let done = sign_in_from(topo.hub(), format!("{lb}/register/{id}"), "alice");
    assert_eq!(done.status, reqwest::StatusCode::OK, "{}", done.body);
    laptop.wait_state("Running", Duration::from_secs(30));
    let (status, out) = up.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "`tailscale up` failed:\n{out}");

    let key = a.create_preauthkey(
        "alice",
        &KeyOptions {
            tags: vec!["tag:server".into()],
            ..KeyOptions::default()
        },
    );
    let server = Tailscaled::start(topo.host(1), "srv", ClientVersion::V1_96_4);
    let out = server.up_with(&lb, &key, "srv", &["--ssh"]);
    assert!(out.success(), "tailscale up --ssh:\n{out}");
    let st = server.wait_state("Running", Duration::from_secs(90));
    let ip = st
        .self_node
        .and_then(|s| s.tailscale_ips.into_iter().find(|ip| ip.contains('.')))
        .expect("the server's IPv4 address");
    wait_for(
        "the laptop to see the server",
        Duration::from_secs(90),
        || {
            laptop
                .status()?
                .peer("srv")
                .map(|_| ())
                .ok_or_else(|| "not yet".to_owned())
        },
    );

    // Held on A (haproxy sends every connection there); signed in on B.
    let mut ssh = crate::ssh_check::Ssh::start(&laptop, &ip, "root", dir.path(), "oidc");
    let id = ssh.auth_id();
    let on_b = format!("http://{}:{}/register/{id}", b.ip(), b.port());
    let passed = sign_in_from(topo.hub(), on_b, "alice");
    if !(passed.status == reqwest::StatusCode::OK && passed.body.contains("SSH login approved")) {
        a.dump_log();
        b.dump_log();
        panic!("alice's sign-in on B: {} {}", passed.status, passed.body);
    }
    let (ok, out, err) = ssh.finish(crate::ssh_check::AFTER_VERDICT);
    assert!(
        ok && out.trim() == "ok",
        "checked login failed: {out:?} {err}"
    );
    drop((laptop, server));
    drop((a, b)); // before their database server
}
