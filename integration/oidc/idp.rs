//! The OpenID provider the OIDC tests sign in with: `oidc-provider` (npm,
//! OpenID Certified) run by node with `idp.mjs`, on 127.0.0.1 or inside a
//! test namespace, stopped by PID when dropped. Its people come from a JSON file the test may rewrite
//! between logins.

use std::fs::{self, OpenOptions};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::harness::netns::CLEAN_PATH;
use crate::harness::process::{run, tail_file};
use crate::harness::{Netns, OwnedChild, try_wait_for};

pub const CLIENT_ID: &str = "clawscale";
pub const CLIENT_SECRET: &str = "integration-test-client-secret";

pub struct Idp {
    dir: TempDir,
    log: PathBuf,
    _child: OwnedChild,
}

/// Where `.ci/fetch-oidc-provider.sh` installs the package (running it
/// first: it is idempotent and quick once installed).
fn provider_dir() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cache = std::env::var_os("OIDC_PROVIDER_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target/oidc-provider"));
    let out = run(
        Command::new(repo.join(".ci/fetch-oidc-provider.sh"))
            .env("OIDC_PROVIDER_CACHE_DIR", &cache),
        Duration::from_secs(600),
    )
    .expect_success("providing oidc-provider (.ci/fetch-oidc-provider.sh)");
    PathBuf::from(out.stdout.trim())
}

impl Idp {
    /// Starts the provider on `host`:`port` (in `ns`, else the root
    /// namespace's loopback) for a client whose callback is
    /// `redirect_uri`, with `accounts` as its people.
    pub fn start(
        ns: Option<&Netns>,
        host: Ipv4Addr,
        port: u16,
        redirect_uri: &str,
        accounts: &Value,
    ) -> Idp {
        let pkg = provider_dir();
        let dir = tempfile::Builder::new()
            .prefix("oidc-idp-")
            .tempdir()
            .expect("idp temp dir");
        let log = dir.path().join("idp.log");
        let idp = Idp {
            log: log.clone(),
            _child: {
                fs::write(dir.path().join("accounts.json"), accounts.to_string())
                    .expect("write accounts");
                let out = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .expect("idp log");
                let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/oidc/idp.mjs");
                let mut cmd = match ns {
                    Some(ns) => ns.command("node"),
                    None => Command::new("node"),
                };
                cmd.env_clear()
                    .env("PATH", CLEAN_PATH)
                    .env("HOME", dir.path())
                    .env("OIDC_PROVIDER_DIR", &pkg)
                    .env("ISSUER", format!("http://{host}:{port}"))
                    .env("HOST", host.to_string())
                    .env("PORT", port.to_string())
                    .env("CLIENT_ID", CLIENT_ID)
                    .env("CLIENT_SECRET", CLIENT_SECRET)
                    .env("REDIRECT_URI", redirect_uri)
                    .env("ACCOUNTS_FILE", dir.path().join("accounts.json"))
                    .arg(script)
                    .stdin(Stdio::null())
                    .stdout(out.try_clone().expect("dup log"))
                    .stderr(out);
                OwnedChild::spawn(&mut cmd, "oidc-provider")
            },
            dir,
        };
        let up = try_wait_for(Duration::from_secs(30), || match ns {
            None => TcpStream::connect((host, port))
                .map(drop)
                .map_err(|e| e.to_string()),
            Some(ns) => {
                let out = ns.run(&["ss", "-ltnH"], Duration::from_secs(5));
                if out.stdout.contains(&format!("{host}:{port} ")) {
                    Ok(())
                } else {
                    Err(format!("nothing listens on {host}:{port} yet"))
                }
            }
        });
        if let Err(e) = up {
            panic!(
                "oidc-provider did not start: {e}\n{}",
                tail_file(&idp.log, 50)
            );
        }
        idp
    }

    /// Replaces the people (read again at every login).
    pub fn set_accounts(&self, accounts: &Value) {
        let path = self.dir.path().join("accounts.json");
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, accounts.to_string()).expect("write accounts");
        fs::rename(&tmp, &path).expect("replace accounts");
    }

    pub fn log(&self) -> String {
        tail_file(&self.log, 80)
    }
}
