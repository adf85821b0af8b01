//! An OIDC login across replicas with a stock client and the OpenID-certified
//! `oidc-provider`: tailscale 1.96.4 logs in through haproxy and waits on
//! replica A; the person's browser opens the login on replica B, which
//! sends it to the provider; the provider sends it back to the balancer's
//! callback, which reaches A. A finishes the login B started (the login in
//! progress is shared through the database), and the client runs as that
//! person.

use std::time::Duration;

use super::{Haproxy, LB_PORT, haproxy, pair_with};
use crate::harness::{
    ClientVersion, KeyOptions, PgServer, Server, ServerConfig, Tailscaled, Topology,
    skip_real_clients, wait_for,
};
use crate::oidc::idp::{CLIENT_ID, CLIENT_SECRET, Idp};
use crate::oidc::{Answer, accounts, sign_in_from};

const IDP_PORT: u16 = 9443;

/// Two replicas logging people in at `oidc-provider`, behind haproxy
/// (`balance first`: clients stream from A), with `login_url` and the one
/// redirect URI the provider knows naming haproxy.
struct OidcReplicas {
    a: Server,
    b: Server,
    /// The balancer's URL.
    lb: String,
    _proxy: Haproxy,
    _idp: Idp,
}

impl OidcReplicas {
    fn start(topo: &Topology, pg: &PgServer, customize: impl Fn(&mut ServerConfig)) -> Self {
        let hub = topo.hub_ip();
        let lb = format!("http://{hub}:{LB_PORT}");
        let (a, b) = pair_with(topo, pg, [8081, 8082], [901, 902], |_, cfg| {
            cfg.set("login_url", lb.clone());
            cfg.set("oidc.issuer", format!("http://{hub}:{IDP_PORT}"));
            cfg.set("oidc.client_id", CLIENT_ID);
            cfg.set("oidc.client_secret", CLIENT_SECRET);
            cfg.set("oidc.scope", ["openid", "email", "profile", "groups"]);
            cfg.set("oidc.pkce.enabled", true);
            customize(cfg);
        });
        let proxy = haproxy(topo, &[8081, 8082]);
        let idp = Idp::start(
            Some(topo.hub()),
            hub,
            IDP_PORT,
            &format!("{lb}/oidc/callback"),
            &accounts(&[]),
        );
        OidcReplicas {
            a,
            b,
            lb,
            _proxy: proxy,
            _idp: idp,
        }
    }

    /// `tailscale up` on `node` through the balancer (its login waits on
    /// A); alice signs in from the page under `page_base`, and the client
    /// runs. Returns the browser's last answer.
    fn log_in(&self, topo: &Topology, node: &Tailscaled, page_base: &str) -> Answer {
        let mut up = crate::login::PendingUp::start_at(node, &self.lb, node.name(), &[]);
        let id = up.auth_id_under(&self.lb);
        let done = sign_in_from(topo.hub(), format!("{page_base}/register/{id}"), "alice");
        if done.status != reqwest::StatusCode::OK {
            self.a.dump_log();
            self.b.dump_log();
            panic!(
                "alice's login failed: {} {} {}",
                done.status, done.url, done.body
            );
        }
        node.wait_state("Running", Duration::from_secs(30));
        let (status, out) = up.wait_exit(Duration::from_secs(30));
        assert!(status.success(), "`tailscale up` failed:\n{out}");
        done
    }

    /// Replica B's own URL (not through the balancer).
    fn b_url(&self) -> String {
        format!("http://{}:{}", self.b.ip(), self.b.port())
    }
}

#[test]
fn an_oidc_login_started_on_one_replica_is_finished_on_the_other() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(1);
    let pg = PgServer::start();
    let r = OidcReplicas::start(&topo, &pg, |_| {});
    let laptop = Tailscaled::start(topo.host(0), "laptop", ClientVersion::V1_96_4);
    // The client's login waits on A; the browser opens it on B.
    let done = r.log_in(&topo, &laptop, &r.b_url());
    assert!(
        done.url.starts_with(&format!("{}/oidc/callback", r.lb)),
        "the provider sent the browser back through the balancer: {}",
        done.url
    );
    assert!(done.body.contains("alice@example.com"), "{}", done.body);
    for server in [&r.a, &r.b] {
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
    drop(r); // before their database server
}

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
    let pg = PgServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.hujson");
    // alice may SSH to tag:server as root after a check.
    std::fs::write(&policy, super::ssh_check::POLICY).expect("write policy");
    let r = OidcReplicas::start(&topo, &pg, |cfg| {
        cfg.set("policy.mode", "file")
            .set("policy.path", policy.to_string_lossy().to_string());
    });
    // alice's laptop, enrolled by her login (which makes her user).
    let laptop = Tailscaled::start(topo.host(0), "laptop", ClientVersion::V1_96_4);
    r.log_in(&topo, &laptop, &r.lb);

    let key = r.a.create_preauthkey(
        "alice",
        &KeyOptions {
            tags: vec!["tag:server".into()],
            ..KeyOptions::default()
        },
    );
    let server = Tailscaled::start(topo.host(1), "srv", ClientVersion::V1_96_4);
    let out = server.up_with(&r.lb, &key, "srv", &["--ssh"]);
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
    let passed = sign_in_from(topo.hub(), format!("{}/register/{id}", r.b_url()), "alice");
    if !(passed.status == reqwest::StatusCode::OK && passed.body.contains("SSH login approved")) {
        r.a.dump_log();
        r.b.dump_log();
        panic!("alice's sign-in on B: {} {}", passed.status, passed.body);
    }
    let (ok, out, err) = ssh.finish(crate::ssh_check::AFTER_VERDICT);
    assert!(
        ok && out.trim() == "ok",
        "checked login failed: {out:?} {err}"
    );
    drop((laptop, server));
    drop(r); // before their database server
}
