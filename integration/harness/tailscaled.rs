//! The `Tailscaled` fixture: one stock `tailscaled` (userspace networking)
//! in a host namespace, driven through the stock `tailscale` CLI.
//!
//! Owns: starting/stopping/restarting the daemon on a fixed state directory,
//! `up`, `logout`, `status --json` (typed as `Status`) and `ping`. Depends on
//! `netns`, `process`, `bins`.
//!
//! Mirrors how an operator runs a client: `tailscaled --tun=userspace-networking
//! --no-logs-no-support --state=DIR/state --socket=DIR/sock --statedir=DIR
//! --port=0` with `TS_NO_LOGS_NO_SUPPORT=true`, then `tailscale --socket=DIR/sock
//! up --login-server=... --auth-key=...`. `--accept-dns=false` is the default
//! for `up` here: the namespaces share the host's `/etc`, and no test may
//! touch the host's resolver config.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use tempfile::TempDir;

use super::bins::{Bins, ClientVersion, client_bins};
use super::netns::{CLEAN_PATH, Netns};
use super::process::{CmdOutput, OwnedChild, run, tail_file};
use super::{try_wait_for, wait_for};

const CLI_TIMEOUT: Duration = Duration::from_secs(30);
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How to run a client.
#[derive(Clone, Debug)]
pub struct TailscaledOptions {
    pub version: ClientVersion,
    /// `TS_DEBUG_ALWAYS_USE_DERP=1`: magicsock sends nothing over UDP, so
    /// all peer traffic relays through DERP (knob read in
    /// `wgengine/magicsock` of both 1.78 and 1.96).
    pub always_derp: bool,
    /// Extra environment for `tailscaled`.
    pub env: Vec<(String, String)>,
    /// Extra `tailscaled` flags (e.g. `--socks5-server=...`).
    pub args: Vec<String>,
}

impl Default for TailscaledOptions {
    fn default() -> Self {
        TailscaledOptions {
            version: ClientVersion::V1_96_4,
            always_derp: false,
            env: Vec::new(),
            args: Vec::new(),
        }
    }
}

fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The parts of `tailscale status --json` the tests look at (Go field names).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Status {
    #[serde(rename = "BackendState", default, deserialize_with = "nullable")]
    pub backend_state: String,
    #[serde(rename = "Self", default)]
    pub self_node: Option<PeerStatus>,
    #[serde(rename = "Peer", default, deserialize_with = "nullable")]
    pub peers: BTreeMap<String, PeerStatus>,
    #[serde(rename = "TailscaleIPs", default, deserialize_with = "nullable")]
    pub tailscale_ips: Vec<String>,
    #[serde(rename = "MagicDNSSuffix", default, deserialize_with = "nullable")]
    pub magic_dns_suffix: String,
    #[serde(rename = "Health", default, deserialize_with = "nullable")]
    pub health: Vec<String>,
    #[serde(rename = "AuthURL", default, deserialize_with = "nullable")]
    pub auth_url: String,
    /// The whole document, for diagnostics and fields not typed here.
    #[serde(skip)]
    pub raw: Value,
}

/// One node as `status --json` shows it (`Self` or an entry of `Peer`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PeerStatus {
    #[serde(rename = "ID", default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(rename = "HostName", default, deserialize_with = "nullable")]
    pub host_name: String,
    #[serde(rename = "DNSName", default, deserialize_with = "nullable")]
    pub dns_name: String,
    #[serde(rename = "TailscaleIPs", default, deserialize_with = "nullable")]
    pub tailscale_ips: Vec<String>,
    #[serde(rename = "Online", default, deserialize_with = "nullable")]
    pub online: bool,
    #[serde(rename = "Relay", default, deserialize_with = "nullable")]
    pub relay: String,
    #[serde(rename = "CurAddr", default, deserialize_with = "nullable")]
    pub cur_addr: String,
}

impl Status {
    pub fn parse(raw: Value) -> Result<Status, String> {
        let mut st: Status =
            serde_json::from_value(raw.clone()).map_err(|e| format!("bad status JSON: {e}"))?;
        st.raw = raw;
        Ok(st)
    }

    /// The peer whose `HostName` is `host`, if listed.
    pub fn peer(&self, host: &str) -> Option<&PeerStatus> {
        self.peers.values().find(|p| p.host_name == host)
    }
}

/// One answer of `tailscale ping`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pong {
    /// Name the pinged node has in the netmap.
    pub from: String,
    /// Its tailnet IP.
    pub ip: String,
    /// `DERP(<region code>)` or the direct `ip:port`.
    pub via: String,
}

impl Pong {
    pub fn is_derp(&self) -> bool {
        self.via.starts_with("DERP(")
    }

    /// Parses `pong from <name> (<ip>[, <port>]) via <via> in <latency>`.
    pub fn parse_line(line: &str) -> Option<Pong> {
        let rest = line.trim().strip_prefix("pong from ")?;
        let (from, rest) = rest.split_once(" (")?;
        let (inside, rest) = rest.split_once(") via ")?;
        let (via, _) = rest.rsplit_once(" in ")?;
        let ip = inside.split(',').next()?.trim();
        Some(Pong {
            from: from.to_owned(),
            ip: ip.to_owned(),
            via: via.to_owned(),
        })
    }
}

/// A `tailscaled` in a host namespace, with its own state directory. The
/// daemon is stopped when this is dropped; the state directory goes with it.
pub struct Tailscaled {
    ns: Netns,
    name: String,
    bins: Bins,
    opts: TailscaledOptions,
    dir: TempDir,
    log_path: PathBuf,
    child: Option<OwnedChild>,
}

impl Tailscaled {
    /// Starts a client of `version` in `ns`; `name` labels it in logs.
    pub fn start(ns: &Netns, name: &str, version: ClientVersion) -> Tailscaled {
        Tailscaled::start_with(
            ns,
            name,
            TailscaledOptions {
                version,
                ..TailscaledOptions::default()
            },
        )
    }

    pub fn start_with(ns: &Netns, name: &str, opts: TailscaledOptions) -> Tailscaled {
        let bins = client_bins(opts.version);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-{name}-", ns.name()))
            .tempdir()
            .expect("create tailscaled temp dir");
        let log_path = dir.path().join("tailscaled.log");
        let mut ts = Tailscaled {
            ns: ns.clone(),
            name: name.to_owned(),
            bins,
            opts,
            dir,
            log_path,
            child: None,
        };
        ts.start_again();
        ts
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    pub fn version(&self) -> ClientVersion {
        self.opts.version
    }

    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(OwnedChild::pid)
    }

    /// (Re)starts the daemon on the existing state directory and waits until
    /// its LocalAPI answers.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        // The one hard safety rule: never run a client that could reach out.
        self.ns.assert_isolated();
        let dir = self.dir.path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open tailscaled log");
        let _ = writeln!(
            &log,
            "=== harness: starting tailscaled {} ===",
            self.opts.version.as_str()
        );
        let mut cmd = self.ns.command(&self.bins.tailscaled);
        self.clean_env(&mut cmd);
        // TS_LOGS_DIR keeps the log-policy file out of /var/lib/tailscale;
        // the rest are belt and braces (as in Tailscale's own integration
        // tests): panic rather than talk to Tailscale's control plane, no
        // UPnP/NAT-PMP probes, no rate-limited (lost) log lines.
        cmd.env("TS_NO_LOGS_NO_SUPPORT", "true")
            .env("TS_LOGS_DIR", dir)
            .env("TS_PANIC_IF_HIT_MAIN_CONTROL", "1")
            .env("TS_DISABLE_PORTMAPPER", "1")
            .env("TS_DEBUG_LOG_RATE", "all");
        if self.opts.always_derp {
            cmd.env("TS_DEBUG_ALWAYS_USE_DERP", "1");
        }
        cmd.envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .arg("--tun=userspace-networking")
            .arg("--no-logs-no-support")
            .arg(format!("--state={}", dir.join("state").display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--statedir={}", dir.display()))
            .arg("--port=0")
            .args(&self.opts.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log fd"))
            .stderr(log);
        self.child = Some(OwnedChild::spawn(
            &mut cmd,
            &format!("tailscaled {}", self.name),
        ));
        let ready = try_wait_for(START_TIMEOUT, || {
            if let Some(status) = self.child.as_mut().and_then(OwnedChild::exited) {
                return Err(format!("tailscaled exited early with {status}"));
            }
            self.status().map(|_| ())
        });
        if let Err(e) = ready {
            self.dump_log();
            panic!("tailscaled {} did not come up: {e}", self.name);
        }
    }

    /// Stops the daemon (SIGTERM lets it save state), keeping its state.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = child.terminate(Duration::from_secs(10));
            if let Ok(mut f) = OpenOptions::new().append(true).open(&self.log_path) {
                let _ = writeln!(f, "=== harness: tailscaled stopped: {status:?} ===");
            }
        }
    }

    /// Kills the daemon (SIGKILL, no goodbye to anyone), keeping its state:
    /// a crash or power loss as the control server and peers see it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = child.kill();
            if let Ok(mut f) = OpenOptions::new().append(true).open(&self.log_path) {
                let _ = writeln!(f, "=== harness: tailscaled killed: {status:?} ===");
            }
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn clean_env(&self, cmd: &mut Command) {
        cmd.env_clear()
            .env("PATH", CLEAN_PATH)
            .env("HOME", self.dir.path());
    }

    /// Runs `tailscale --socket=... <args>` inside the namespace.
    pub fn cli(&self, args: &[&str], timeout: Duration) -> CmdOutput {
        let mut cmd = self.ns.command(&self.bins.tailscale);
        self.clean_env(&mut cmd);
        cmd.arg(format!("--socket={}", self.socket().display()))
            .args(args);
        run(&mut cmd, timeout)
    }

    /// Starts `tailscale <args>` in the background with stdout and stderr
    /// going to `out` (for a command that waits, like an interactive
    /// `up`); the child is stopped when dropped.
    pub fn cli_background(&self, args: &[&str], out: &Path) -> OwnedChild {
        let file = fs::File::create(out).expect("create cli output file");
        let mut cmd = self.ns.command(&self.bins.tailscale);
        self.clean_env(&mut cmd);
        cmd.arg(format!("--socket={}", self.socket().display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup output fd"))
            .stderr(file);
        OwnedChild::spawn(
            &mut cmd,
            &format!("tailscale {} on {}", args.join(" "), self.name),
        )
    }

    /// As `cli`, with `input` on the command's stdin (e.g. `serve set-raw`).
    pub fn cli_with_stdin(&self, args: &[&str], input: &str, timeout: Duration) -> CmdOutput {
        let file = self.dir.path().join("cli-stdin");
        std::fs::write(&file, input).expect("write cli stdin");
        let mut cmd = self.ns.command("bash");
        self.clean_env(&mut cmd);
        cmd.arg("-c")
            .arg(r#"f="$1"; shift; exec "$@" < "$f""#)
            .arg("bash")
            .arg(&file)
            .arg(&self.bins.tailscale)
            .arg(format!("--socket={}", self.socket().display()))
            .args(args);
        run(&mut cmd, timeout)
    }

    /// `tailscale up` with a pre-auth key; returns the output, success or not.
    pub fn up(&self, login_server: &str, auth_key: &str, hostname: &str) -> CmdOutput {
        self.up_with(login_server, auth_key, hostname, &[])
    }

    /// `up` with extra flags (`extra` may override `--accept-dns`).
    pub fn up_with(
        &self,
        login_server: &str,
        auth_key: &str,
        hostname: &str,
        extra: &[&str],
    ) -> CmdOutput {
        let login = format!("--login-server={login_server}");
        let key = format!("--auth-key={auth_key}");
        let host = format!("--hostname={hostname}");
        let mut args = vec![
            "up",
            &login,
            &key,
            &host,
            "--accept-dns=false",
            "--timeout=60s",
        ];
        args.extend_from_slice(extra);
        self.cli(&args, Duration::from_secs(90))
    }

    /// `up`, panicking with the client log unless it succeeds.
    #[track_caller]
    pub fn up_ok(&self, login_server: &str, auth_key: &str, hostname: &str) {
        let out = self.up(login_server, auth_key, hostname);
        if !out.success() {
            self.dump_log();
            panic!("tailscale up on {} failed:\n{out}", self.name);
        }
    }

    pub fn logout(&self) -> CmdOutput {
        self.cli(&["logout"], CLI_TIMEOUT)
    }

    /// `tailscale status --json`, raw.
    pub fn status_json(&self) -> Result<Value, String> {
        let out = self.cli(&["status", "--json"], CLI_TIMEOUT);
        // `status` exits non-zero when logged out but still prints the JSON.
        serde_json::from_str(&out.stdout)
            .map_err(|e| format!("status --json unusable ({e}):\n{out}"))
    }

    pub fn status(&self) -> Result<Status, String> {
        Status::parse(self.status_json()?)
    }

    /// Panics if any peer has a direct path: everything went through a
    /// DERP relay.
    #[track_caller]
    pub fn assert_only_relayed(&self) {
        let st = self.status().expect("status");
        for p in st.peers.values() {
            assert!(
                p.cur_addr.is_empty(),
                "{} has a direct path: {p:?}",
                self.name
            );
        }
    }

    /// Waits until `BackendState` is `state` and returns that status.
    #[track_caller]
    pub fn wait_state(&self, state: &str, timeout: Duration) -> Status {
        let res = try_wait_for(timeout, || {
            let st = self.status()?;
            if st.backend_state == state {
                Ok(st)
            } else {
                Err(format!("BackendState is {:?}", st.backend_state))
            }
        });
        res.unwrap_or_else(|e| {
            self.dump_log();
            panic!(
                "{} never reached {state} within {timeout:?}: {e}",
                self.name
            )
        })
    }

    /// One `tailscale ping` (disco), any path. Err if no pong came back.
    pub fn ping(&self, target: &str) -> Result<Pong, String> {
        let out = self.cli(
            &[
                "ping",
                "--until-direct=false",
                "--c=1",
                "--timeout=5s",
                target,
            ],
            Duration::from_secs(20),
        );
        out.stdout
            .lines()
            .find_map(Pong::parse_line)
            .ok_or_else(|| format!("no pong from {target}:\n{out}"))
    }

    /// Pings `target` until a pong arrives that satisfies `accept`.
    #[track_caller]
    pub fn wait_ping(
        &self,
        target: &str,
        timeout: Duration,
        accept: impl Fn(&Pong) -> bool,
    ) -> Pong {
        wait_for(&format!("{} to ping {target}", self.name), timeout, || {
            let pong = self.ping(target)?;
            if accept(&pong) {
                Ok(pong)
            } else {
                Err(format!("unexpected path: {pong:?}"))
            }
        })
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Prints the tail of the daemon log (and its status, if it answers).
    pub fn dump_log(&self) {
        let status = if self.child.is_some() {
            match self.status_json() {
                Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
                Err(e) => e,
            }
        } else {
            "<not running>".to_owned()
        };
        eprintln!(
            "===== tailscaled {} ({}, netns {}) log {} =====\n{}\n----- status --json -----\n{status}\n===== end of tailscaled {} =====",
            self.name,
            self.opts.version.as_str(),
            self.ns.name(),
            self.log_path.display(),
            tail_file(&self.log_path, 300),
            self.name
        );
    }
}

impl Drop for Tailscaled {
    fn drop(&mut self) {
        // Only a daemon that actually started has a log worth showing.
        if std::thread::panicking() && self.log_path.exists() {
            self.dump_log();
        }
        self.stop();
        if std::env::var_os("CLAWSCALE_KEEP_TEST_DIRS").is_some() {
            let dir = std::mem::replace(&mut self.dir, TempDir::new().expect("temp dir"));
            eprintln!(
                "harness: keeping {} dir {}",
                self.name,
                dir.keep().display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pong_lines() {
        let p = Pong::parse_line("pong from node1 (100.64.0.2) via DERP(clawscale) in 12ms")
            .expect("derp pong");
        assert_eq!(p.from, "node1");
        assert_eq!(p.ip, "100.64.0.2");
        assert!(p.is_derp());
        let p = Pong::parse_line("pong from n2 (100.64.0.3, 41641) via 10.213.5.11:41641 in 1ms")
            .expect("direct pong");
        assert_eq!(p.ip, "100.64.0.3");
        assert_eq!(p.via, "10.213.5.11:41641");
        assert!(!p.is_derp());
        assert!(Pong::parse_line("ping \"100.64.0.3\" timed out").is_none());
    }

    #[test]
    fn status_tolerates_nulls_and_finds_peers() {
        let raw: Value = serde_json::from_str(
            r#"{"BackendState":"Running","TailscaleIPs":null,"Self":{"HostName":"a","DNSName":"a.clawql.local.","TailscaleIPs":["100.64.0.1"],"Online":true},
                "Peer":{"nodekey:01":{"HostName":"b","DNSName":"b.clawql.local.","TailscaleIPs":["100.64.0.2"],"Online":false,"Relay":"x"}},"Health":null}"#,
        )
        .expect("json");
        let st = Status::parse(raw).expect("status");
        assert_eq!(st.backend_state, "Running");
        assert!(st.tailscale_ips.is_empty());
        assert_eq!(
            st.self_node.as_ref().map(|s| s.dns_name.as_str()),
            Some("a.clawql.local.")
        );
        let b = st.peer("b").expect("peer b");
        assert_eq!(b.tailscale_ips, vec!["100.64.0.2"]);
        assert!(!b.online);
        assert!(st.peer("c").is_none());
    }
}
