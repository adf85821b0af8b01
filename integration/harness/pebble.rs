//! Pebble, Let's Encrypt's ACME test CA (Debian `pebble`), in a test
//! namespace, validating DNS-01 challenges against clawscale's DNS server.
//!
//! Owns: pebble's config and TLS certificate (a throwaway [`TestCa`] for
//! its listen address; Debian ships no test certificates), the process
//! (stopped by PID on drop), and fetching the root that signs what it
//! issues (management API `/roots/0`, a fresh root per start).
//!
//! `PEBBLE_VA_NOSLEEP=1` makes it validate at once instead of after up to
//! 15 s, and `PEBBLE_WFE_NONCEREJECT=0` stops it from rejecting 5% of
//! valid nonces (its default, to exercise client retries): both only make
//! the test fast and deterministic. `-dnsserver` sends every validation
//! query straight to the given server, so the test zone needs no public
//! delegation.

use std::fs::{self, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::process::{OwnedChild, tail_file};
use super::{Netns, TestCa, try_wait_for};

const PEBBLE: &str = "/usr/bin/pebble";
pub const ACME_PORT: u16 = 14000;
pub const MANAGEMENT_PORT: u16 = 15000;

pub struct Pebble {
    ns: Netns,
    ip: Ipv4Addr,
    dir: tempfile::TempDir,
    tls: TestCa,
    log_path: PathBuf,
    child: Option<OwnedChild>,
}

impl Pebble {
    /// Starts pebble on `ip` inside `ns`, resolving through `dns`.
    pub fn start(ns: &Netns, ip: Ipv4Addr, dns: SocketAddr) -> Pebble {
        assert!(
            Path::new(PEBBLE).exists(),
            "pebble is required (apt-get install pebble; .ci/run installs it)"
        );
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-pebble-", ns.name()))
            .tempdir()
            .expect("create pebble temp dir");
        let tls = TestCa::issue(dir.path(), ip.into());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("{ip}:{ACME_PORT}"),
                "managementListenAddress": format!("{ip}:{MANAGEMENT_PORT}"),
                "certificate": tls.cert_pem,
                "privateKey": tls.key_pem,
                // HTTP-01 and TLS-ALPN-01 targets: unused, nothing listens.
                "httpPort": 5002,
                "tlsPort": 5001,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        let config_path = dir.path().join("pebble-config.json");
        fs::write(&config_path, config.to_string()).expect("write pebble config");
        let log_path = dir.path().join("pebble.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open pebble log");
        let mut cmd = ns.command(PEBBLE);
        cmd.env_clear()
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .arg("-config")
            .arg(&config_path)
            .arg("-dnsserver")
            .arg(dns.to_string())
            .arg("-strict=false")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log fd"))
            .stderr(log);
        let child = OwnedChild::spawn(&mut cmd, "pebble");
        let mut pebble = Pebble {
            ns: ns.clone(),
            ip,
            dir,
            tls,
            log_path,
            child: Some(child),
        };
        let ready = try_wait_for(Duration::from_secs(30), || {
            if let Some(status) = pebble.child.as_mut().and_then(OwnedChild::exited) {
                return Err(format!("pebble exited early with {status}"));
            }
            pebble.get(ACME_PORT, "/dir").map(|_| ())
        });
        if let Err(e) = ready {
            pebble.dump_log();
            panic!("pebble did not start: {e}");
        }
        pebble
    }

    /// The ACME directory URL (`TS_DEBUG_ACME_DIRECTORY_URL`).
    pub fn directory_url(&self) -> String {
        format!("https://{}:{ACME_PORT}/dir", self.ip)
    }

    /// The CA of pebble's own TLS certificate: what an ACME client must
    /// trust (`SSL_CERT_FILE`) to talk to it.
    pub fn tls_ca(&self) -> &Path {
        &self.tls.ca_pem
    }

    /// Writes the root that signs the certificates pebble issues (fetched
    /// from its management API) to a file and returns its path.
    pub fn root_pem(&self) -> PathBuf {
        let pem = self
            .get(MANAGEMENT_PORT, "/roots/0")
            .unwrap_or_else(|e| panic!("fetching pebble's root: {e}"));
        assert!(pem.contains("BEGIN CERTIFICATE"), "not a PEM root: {pem}");
        let path = self.dir.path().join("issuer-root.pem");
        fs::write(&path, pem).expect("write pebble root");
        path
    }

    fn get(&self, port: u16, path: &str) -> Result<String, String> {
        let url = format!("https://{}:{port}{path}", self.ip);
        let ca = self.tls.ca_pem.to_string_lossy().into_owned();
        let out = self.ns.run(
            &[
                "curl",
                "-sS",
                "--fail",
                "--max-time",
                "5",
                "--cacert",
                &ca,
                &url,
            ],
            Duration::from_secs(10),
        );
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(out.combined())
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn dump_log(&self) {
        eprintln!(
            "===== pebble log ({}) =====\n{}",
            self.log_path.display(),
            tail_file(&self.log_path, 200)
        );
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_log();
        }
        if let Some(mut child) = self.child.take() {
            child.terminate(Duration::from_secs(5));
        }
    }
}
