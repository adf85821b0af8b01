//! Tailscale SSH check mode with stock clients: alice's laptop logs in
//! with OpenSSH (through `tailscale nc`) to a tagged server running
//! `tailscale up --ssh`, whose policy says `check`. The server's tailscaled
//! holds the login and asks clawscale; the ssh client shows the banner
//! with the auth URL and waits; the test takes the auth id from that
//! banner and approves it over REST (`POST /api/v1/auth/approve` with an
//! API key), and the command runs. A second login within `checkPeriod`
//! (OpenSSH again, then `tailscale ssh`) goes through without a prompt; a rejected check makes ssh fail. The
//! destination runs 1.96.4, and 1.78.1 for the approve path. The server is
//! HTTPS with a test CA the clients trust, so 1.78.1 can use the relay.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::bins::client_bins;
use crate::harness::netns::CLEAN_PATH;
use crate::harness::process::{OwnedChild, run};
use crate::harness::{
    CONTROL_PORT, ClientVersion, Db, KeyOptions, Netns, Server, Tailscaled, TailscaledOptions,
    TestCa, Topology, skip_real_clients, try_wait_for, wait_for,
};

const JOIN: Duration = Duration::from_secs(90);
/// From approval to the command's output (a long poll answered at once,
/// then a shell started on the destination).
pub(crate) const AFTER_VERDICT: Duration = Duration::from_secs(20);

const POLICY: &str = r#"{
  "tagOwners": {"tag:server": ["alice@example.com"]},
  "acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:server:22"]}],
  "ssh": [{"action": "check", "src": ["alice@example.com"], "dst": ["tag:server"],
           "users": ["root", "nobody"], "checkPeriod": "1h"}]
}"#;

/// One `ssh` run in the background, its output going to files (also used
/// by `oidc::clients` for a check passed by signing in).
pub(crate) struct Ssh {
    child: OwnedChild,
    out: PathBuf,
    err: PathBuf,
}

impl Ssh {
    /// `ssh user@ip echo ok` from `from`'s namespace, through its
    /// `tailscale nc` (the clients run in userspace-networking mode).
    pub(crate) fn start(from: &Tailscaled, ip: &str, user: &str, dir: &Path, label: &str) -> Ssh {
        let tailscale = client_bins(from.version()).tailscale;
        let socket = from.state_dir().join("sock");
        let proxy = format!(
            "ProxyCommand={} --socket={} nc %h %p",
            tailscale.display(),
            socket.display()
        );
        let (out, err) = (
            dir.join(format!("{label}.out")),
            dir.join(format!("{label}.err")),
        );
        let file = |p: &Path| Stdio::from(std::fs::File::create(p).expect("ssh output file"));
        let mut cmd: Command = from.netns().command("ssh");
        cmd.env_clear()
            .env("PATH", CLEAN_PATH)
            .env("HOME", dir)
            .args(["-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "BatchMode=yes"])
            .args(["-o", "ConnectTimeout=30"])
            .args(["-o", &proxy])
            .arg(format!("{user}@{ip}"))
            .args(["echo", "ok"])
            .stdin(Stdio::null())
            .stdout(file(&out))
            .stderr(file(&err));
        Ssh {
            child: OwnedChild::spawn(&mut cmd, &format!("ssh {label}")),
            out,
            err,
        }
    }

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The auth id in the check's banner, once ssh shows it; ssh must
    /// still be waiting then.
    pub(crate) fn auth_id(&mut self) -> String {
        let id = wait_for("the SSH check banner", JOIN, || {
            let err = self.stderr();
            if let Some(status) = self.child.exited() {
                // Not worth waiting for: the check did not hold the login.
                panic!("ssh exited ({status}) while the check should hold it: {err}");
            }
            let at = err
                .find("/register/cskey-authreq-")
                .ok_or_else(|| format!("no auth URL yet: {err:?}"))?;
            let id = &err[at + "/register/".len()..];
            Ok(id[..id.find(char::is_whitespace).unwrap_or(id.len())].to_owned())
        });
        assert_eq!(id.len(), "cskey-authreq-".len() + 24, "{id}");
        assert!(self.child.exited().is_none(), "ssh must wait for the check");
        id
    }

    /// Waits for ssh to exit: (success, stdout, stderr).
    pub(crate) fn finish(&mut self, within: Duration) -> (bool, String, String) {
        let status = try_wait_for(within, || self.child.exited().ok_or("running".to_owned()));
        let status = status.unwrap_or_else(|_| {
            panic!(
                "ssh still running after {within:?}; stderr: {}",
                self.stderr()
            )
        });
        (status.success(), self.stdout(), self.stderr())
    }
}

/// `POST /api/v1/auth/{verb}` for `id` with an API key, by curl from `ns`
/// (trusting the test CA `ca`).
fn decide(ns: &Netns, url: &str, ca: &Path, key: &str, verb: &str, id: &str) {
    let mut cmd = ns.command("curl");
    cmd.args(["-sS", "-w", "\n%{http_code}", "-X", "POST"])
        .arg("--cacert")
        .arg(ca)
        .arg(format!("{url}/api/v1/auth/{verb}"))
        .args(["-H", &format!("Authorization: Bearer {key}")])
        .args(["-H", "Content-Type: application/json"])
        .args(["--data-binary", &format!(r#"{{"authId":"{id}"}}"#)]);
    let out = run(&mut cmd, Duration::from_secs(30));
    assert!(
        out.success() && out.stdout.trim_end().ends_with("200"),
        "auth {verb}:\n{out}"
    );
}

fn v4(node: &Tailscaled) -> String {
    let st = node.wait_state("Running", JOIN);
    st.self_node
        .and_then(|s| s.tailscale_ips.into_iter().find(|ip| ip.contains('.')))
        .expect("an IPv4 tailnet address")
}

/// The OpenSSH client drives the logins; say what is missing rather than
/// fail on a spawn error.
pub(crate) fn assert_ssh_client() {
    let found = std::process::Command::new("ssh")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "the OpenSSH client is required (apt-get install openssh-client; .ci/run installs it)"
    );
}

#[test]
fn ssh_check_holds_the_login_until_approved_and_remembers_it() {
    if skip_real_clients() {
        return;
    }
    assert_ssh_client();
    let topo = Topology::new(4);
    let dir = tempfile::tempdir().expect("temp dir");
    let policy_path = dir.path().join("policy.hujson");
    std::fs::write(&policy_path, POLICY).expect("write policy");
    // HTTPS with a certificate the clients trust: 1.78.1 checks the relay's
    // certificate against its trust store, so only then may it relay. Without
    // a relay the laptop's only path to it was direct UDP, which under a
    // loaded full run once failed to form within ssh's 30 s.
    let ca = TestCa::issue(dir.path(), topo.hub_ip().into());
    let server = Server::start_with(&topo, Db::Sqlite, |cfg| {
        cfg.set("policy.mode", "file")
            .set("policy.path", policy_path.to_string_lossy().to_string())
            .set(
                "server_url",
                format!("https://{}:{CONTROL_PORT}", topo.hub_ip()),
            )
            .set("tls_cert_path", ca.cert_pem.to_string_lossy())
            .set("tls_key_path", ca.key_pem.to_string_lossy());
    });
    server.cli_ok(&["users", "create", "alice", "--email", "alice@example.com"]);
    let out = server.cli_ok(&["apikeys", "create", "--scope", "admin", "-o", "json"]);
    let created: Value = serde_json::from_str(out.stdout.trim()).expect("json");
    let api_key = created["api_key"].as_str().expect("api_key").to_owned();
    let tagged = KeyOptions {
        tags: vec!["tag:server".into()],
        reusable: true,
        ..KeyOptions::default()
    };
    let server_key = server.create_preauthkey("alice", &tagged);
    let laptop_key = server.create_preauthkey("alice", &KeyOptions::default());

    let url = server.url();
    let trusting = |version| TailscaledOptions {
        version,
        env: vec![(
            "SSL_CERT_FILE".to_owned(),
            ca.ca_pem.to_string_lossy().into_owned(),
        )],
        ..TailscaledOptions::default()
    };
    let laptop = Tailscaled::start_with(topo.host(0), "laptop", trusting(ClientVersion::V1_96_4));
    let new = Tailscaled::start_with(topo.host(1), "srv-new", trusting(ClientVersion::V1_96_4));
    let old = Tailscaled::start_with(topo.host(2), "srv-old", trusting(ClientVersion::V1_78_1));
    std::thread::scope(|s| {
        s.spawn(|| laptop.up_ok(&url, &laptop_key, "laptop"));
        for (n, name) in [(&new, "srv-new"), (&old, "srv-old")] {
            let (url, key) = (&url, &server_key);
            s.spawn(move || {
                let out = n.up_with(url, key, name, &["--ssh"]);
                assert!(out.success(), "tailscale up --ssh on {name}:\n{out}");
            });
        }
    });
    let (new_ip, old_ip) = (v4(&new), v4(&old));
    wait_for("the laptop to see both servers", JOIN, || {
        let st = laptop.status()?;
        match (st.peer("srv-new"), st.peer("srv-old")) {
            (Some(_), Some(_)) => Ok(()),
            _ => Err("not yet".to_owned()),
        }
    });
    let admin_ns = topo.host(3);

    // 1. The login waits on the check until it is approved over REST.
    let t0 = Instant::now();
    let mut ssh = Ssh::start(&laptop, &new_ip, "root", dir.path(), "approve");
    let id = ssh.auth_id();
    let prompt = t0.elapsed();
    assert!(
        ssh.stderr()
            .contains(&format!("To authenticate, visit: {url}/register/{id}")),
        "{}",
        ssh.stderr()
    );
    let t1 = Instant::now();
    decide(admin_ns, &url, &ca.ca_pem, &api_key, "approve", &id);
    let (ok, out, err) = ssh.finish(AFTER_VERDICT);
    assert!(
        ok && out.trim() == "ok",
        "approved login failed: {out:?} {err}"
    );
    eprintln!(
        "ssh check: banner after {prompt:?}, command done {:?} after approval",
        t1.elapsed()
    );

    // 2. Within checkPeriod the same login goes through without a prompt.
    let t2 = Instant::now();
    let mut again = Ssh::start(&laptop, &new_ip, "root", dir.path(), "again");
    let (ok, out, err) = again.finish(AFTER_VERDICT);
    assert!(
        ok && out.trim() == "ok",
        "remembered login failed: {out:?} {err}"
    );
    assert!(!err.contains("To authenticate"), "prompted again: {err}");
    eprintln!("ssh check: remembered login took {:?}", t2.elapsed());
    // `tailscale ssh` (OpenSSH with the host keys from the netmap) too.
    let out = laptop.cli(
        &["ssh", &format!("root@{new_ip}"), "echo", "ok"],
        AFTER_VERDICT,
    );
    assert!(
        out.success() && out.stdout.trim() == "ok" && !out.stderr.contains("To authenticate"),
        "tailscale ssh within the period:\n{out}"
    );

    // 3. A rejected check (another local user: not covered by the pass)
    // makes ssh fail.
    let mut refused = Ssh::start(&laptop, &new_ip, "nobody", dir.path(), "reject");
    let id = refused.auth_id();
    decide(admin_ns, &url, &ca.ca_pem, &api_key, "reject", &id);
    let (ok, out, err) = refused.finish(AFTER_VERDICT);
    assert!(
        !ok && !out.contains("ok"),
        "rejected login ran: {out:?} {err}"
    );
    assert!(err.contains("SSH check rejected"), "{err}");

    // 4. A 1.78.1 destination follows the same flow.
    let mut old_ssh = Ssh::start(&laptop, &old_ip, "root", dir.path(), "old");
    let id = old_ssh.auth_id();
    decide(admin_ns, &url, &ca.ca_pem, &api_key, "approve", &id);
    let (ok, out, err) = old_ssh.finish(AFTER_VERDICT);
    assert!(
        ok && out.trim() == "ok",
        "1.78.1 destination: {out:?} {err}"
    );
    // It reached the relay (its fallback path), which is why the server
    // has a certificate it trusts.
    let log = old.log();
    assert!(
        log.contains("derp-999 connected"),
        "1.78.1 never reached the relay"
    );
    assert!(
        !log.contains("x509"),
        "1.78.1 refused the relay's certificate"
    );

    // Every verdict is in the audit trail.
    let audit = server.cli_ok(&["audit", "list", "-o", "json"]);
    for action in [
        "ssh_check.hold",
        "auth.approve",
        "ssh_check.remembered",
        "auth.reject",
    ] {
        assert!(
            audit.stdout.contains(action),
            "no {action} in the audit log"
        );
    }
}
