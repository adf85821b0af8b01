//! An OIDC login across replicas with a stock client and the OpenID-certified
//! `oidc-provider`: tailscale 1.96.4 logs in through haproxy and waits on
//! replica A; the person's browser opens the login on replica B, which
//! sends it to the provider; the provider sends it back to the balancer's
//! callback, which reaches A. A finishes the login B started (the login in
//! progress is shared through the database), and the client runs as that
//! person.

use std::time::Duration;

use super::{LB_PORT, haproxy, pair_with};
use crate::harness::{ClientVersion, PgServer, Tailscaled, Topology, skip_real_clients, wait_for};
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
