//! OIDC with stock clients: `tailscale up` without a key prints a login
//! URL; a browser (a cookie-holding HTTP client on a thread moved into the
//! hub namespace, where server and provider run) signs in at the provider
//! and the client reaches Running as that person. A policy rule on the
//! identity provider's group `mcp-admins` (`oidc:mcp-admins`) lets alice,
//! who is in it, reach `svc:mcp` over TCP through the tailnet, and not bob;
//! removed from the group at the provider, alice loses the access at her
//! next login, keeping her node and addresses. The same group may SSH to
//! the server under a `check` rule: alice's OpenSSH login waits on the
//! check until she signs in at the provider through the banner's link.

use std::fs;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
use serde_json::Value;

use super::idp::{CLIENT_ID, CLIENT_SECRET, Idp};
use super::{Answer, accounts, browser, sign_in};
use crate::harness::{
    ClientVersion, Db, KeyOptions, Listener, Netns, Server, Tailscaled, Topology,
    skip_real_clients, wait_for,
};
use crate::ssh_check::{AFTER_VERDICT, Ssh, assert_ssh_client};

const JOIN: Duration = Duration::from_secs(90);
const CONVERGE: Duration = Duration::from_secs(60);
const IDP_PORT: u16 = 9443;
const MCP_PORT: u16 = 443;

const POLICY: &str = r#"// svc:mcp for the identity provider's mcp-admins group
{
  "groups": {"group:mcp-admins": ["oidc:mcp-admins"]},
  "tagOwners": {"tag:mcp-server": ["ops@example.com"]},
  "services": {"svc:mcp": {"hosts": ["tag:mcp-server"], "ports": ["tcp:443"]}},
  "acls": [
    {"action": "accept", "src": ["group:mcp-admins"], "dst": ["svc:mcp:443"]},
    {"action": "accept", "src": ["group:mcp-admins"], "dst": ["tag:mcp-server:22"]},
  ],
  "ssh": [
    {"action": "check", "src": ["group:mcp-admins"], "dst": ["tag:mcp-server"],
     "users": ["root"], "checkPeriod": "1h"},
  ],
}
"#;

/// Signs in as `who` from a browser inside `ns` (its own thread, moved
/// into the namespace, with its own runtime and cookie jar).
pub(crate) fn sign_in_from(ns: &Netns, url: String, who: &'static str) -> Answer {
    let path = format!("/var/run/netns/{}", ns.name());
    std::thread::spawn(move || {
        let f = fs::File::open(&path).expect("open namespace");
        move_into_link_name_space(f.as_fd(), Some(LinkNameSpaceType::Network))
            .expect("enter the hub namespace");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async move { sign_in(&browser(), &url, who).await })
    })
    .join()
    .expect("browser thread")
}

/// The login URL `tailscale up` printed (or its status shows).
fn login_url(node: &Tailscaled, printed: &str) -> Option<String> {
    let from_cli = printed
        .split_whitespace()
        .find(|w| w.contains("/register/cskey-authreq-"))
        .map(str::to_string);
    from_cli.or_else(|| {
        let st: Value = node.status_json().ok()?;
        st["AuthURL"]
            .as_str()
            .filter(|u| !u.is_empty())
            .map(str::to_string)
    })
}

/// `tailscale up` without a key, then the person signs in at the URL it
/// prints; returns once the client runs.
fn interactive_login(server: &Server, hub: &Netns, node: &Tailscaled, who: &'static str) {
    let url = server.url();
    let host = node.name().to_string();
    // The CLI gives up waiting after a few seconds; tailscaled keeps the
    // login going, and its status carries the URL.
    let out = node.cli(
        &[
            "up",
            &format!("--login-server={url}"),
            &format!("--hostname={host}"),
            "--accept-dns=false",
            "--timeout=3s",
        ],
        Duration::from_secs(30),
    );
    let link = wait_for("the client's login URL", Duration::from_secs(20), || {
        login_url(node, &out.combined()).ok_or_else(|| format!("no login URL yet:\n{out}"))
    });
    assert!(link.starts_with(&url), "{link}");
    let done = sign_in_from(hub, link, who);
    if done.status != reqwest::StatusCode::OK {
        server.dump_log();
        panic!("{who}'s login failed: {} {}", done.status, done.body);
    }
    node.wait_state("Running", JOIN);
}

fn sees(node: &Tailscaled, peer: &str) -> bool {
    node.status().is_ok_and(|s| s.peer(peer).is_some())
}

fn v4(node: &Tailscaled) -> String {
    let st = node.wait_state("Running", JOIN);
    st.self_node
        .and_then(|s| s.tailscale_ips.into_iter().find(|ip| ip.contains('.')))
        .expect("an IPv4 tailnet address")
}

#[test]
fn an_oidc_group_grants_svc_mcp_to_real_clients_and_follows_logins() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(3);
    let hub_ip = topo.hub_ip();
    let dir = tempfile::tempdir().expect("policy dir");
    let policy = dir.path().join("policy.hujson");
    fs::write(&policy, POLICY).expect("policy");
    let server = Server::start_with(&topo, Db::Sqlite, |cfg| {
        cfg.set("policy.mode", "file");
        cfg.set("policy.path", policy.to_string_lossy().to_string());
        cfg.set("oidc.issuer", format!("http://{hub_ip}:{IDP_PORT}"));
        cfg.set("oidc.client_id", CLIENT_ID);
        cfg.set("oidc.client_secret", CLIENT_SECRET);
        cfg.set("oidc.scope", ["openid", "email", "profile", "groups"]);
        cfg.set("oidc.pkce.enabled", true);
    });
    let idp = Idp::start(
        Some(topo.hub()),
        hub_ip,
        IDP_PORT,
        &format!("{}/oidc/callback", server.url()),
        &accounts(&["mcp-admins"]),
    );
    server.cli_ok(&["users", "create", "ops", "--email", "ops@example.com"]);
    let key = server.create_preauthkey(
        "ops",
        &KeyOptions {
            tags: vec!["tag:mcp-server".into()],
            ..KeyOptions::default()
        },
    );
    let mcp = Tailscaled::start(topo.host(0), "mcp", ClientVersion::V1_96_4);
    let out = mcp.up_with(&server.url(), &key, "mcp", &["--ssh"]);
    assert!(out.success(), "tailscale up --ssh on mcp:\n{out}");
    let alice = Tailscaled::start(topo.host(1), "alice-laptop", ClientVersion::V1_96_4);
    let bob = Tailscaled::start(topo.host(2), "bob-laptop", ClientVersion::V1_78_1);
    interactive_login(&server, topo.hub(), &alice, "alice");
    interactive_login(&server, topo.hub(), &bob, "bob");
    let owners: Value = serde_json::from_str(
        server
            .cli_ok(&["nodes", "list", "-o", "json"])
            .stdout
            .trim(),
    )
    .expect("json");
    let owner = |name: &str| {
        owners
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["given_name"] == name || n["name"] == name)
            .map(|n| n["user"]["name"].clone())
    };
    assert_eq!(owner("alice-laptop"), Some("alice".into()), "{owners}");
    assert_eq!(owner("bob-laptop"), Some("bob".into()), "{owners}");

    let mcp_ip = v4(&mcp);
    let alice_ip = v4(&alice);
    let service = Listener::start(mcp.netns(), MCP_PORT);
    wait_for("alice to reach svc:mcp", CONVERGE, || {
        service.reached_from(&alice, &mcp_ip, MCP_PORT)
    });
    // alice's SSH login is held by the check until she signs in again at
    // the provider through the banner's link.
    let t0 = Instant::now();
    assert_ssh_client();
    let mut ssh = Ssh::start(&alice, &mcp_ip, "root", dir.path(), "check");
    let id = ssh.auth_id();
    let passed = sign_in_from(
        topo.hub(),
        format!("{}/register/{id}", server.url()),
        "alice",
    );
    assert!(
        passed.status == reqwest::StatusCode::OK && passed.body.contains("SSH login approved"),
        "alice's sign-in for the SSH check: {} {}",
        passed.status,
        passed.body
    );
    let (ok, out, err) = ssh.finish(AFTER_VERDICT);
    assert!(
        ok && out.trim() == "ok",
        "checked login failed: {out:?} {err}"
    );
    eprintln!("ssh check passed by signing in: {:?} in all", t0.elapsed());
    let audit = server.cli_ok(&["audit", "list", "-o", "json"]);
    assert!(
        audit.stdout.contains("ssh_check.approve_oidc"),
        "not audited"
    );

    assert!(!sees(&bob, "mcp"), "bob is not in mcp-admins");
    assert!(
        service.reached_from(&bob, &mcp_ip, MCP_PORT).is_err(),
        "bob must not reach svc:mcp"
    );

    // alice leaves mcp-admins at the provider; her next login drops her
    // access and keeps her node and addresses.
    idp.set_accounts(&accounts(&[]));
    let out = alice.logout();
    assert!(out.success(), "{out}");
    interactive_login(&server, topo.hub(), &alice, "alice");
    assert_eq!(v4(&alice), alice_ip, "re-login keeps the address");
    wait_for("alice to lose svc:mcp", CONVERGE, || {
        if sees(&alice, "mcp") || sees(&mcp, "alice-laptop") {
            Err("alice and mcp still see each other".to_string())
        } else {
            Ok(())
        }
    });
    assert!(
        service.reached_from(&alice, &mcp_ip, MCP_PORT).is_err(),
        "alice must have lost svc:mcp"
    );
}
