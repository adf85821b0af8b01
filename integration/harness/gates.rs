//! The shipped MCP gates in a host namespace: nginx with njs
//! (`deploy/nginx/`) and HAProxy with Lua (`deploy/haproxy/`). Each
//! shipped config is used as it is, its placeholders filled in; the fixture
//! adds only what a distribution's own main config would (for nginx the njs
//! module, paths in a temp dir, the logs).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::netns::Netns;
use super::process::{OwnedChild, tail_file};
use super::try_wait_for;

/// Where Debian's `libnginx-mod-http-js` puts the module.
const NJS_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_js_module.so";

/// Which shipped gate.
#[derive(Debug, Clone, Copy)]
pub enum Gate {
    Nginx,
    Haproxy,
}

/// The values for the shipped files' placeholders.
pub struct GateConfig {
    /// `CLAWSCALE_URL`, e.g. `http://10.0.0.1:8080`.
    pub clawscale_url: String,
    /// `CLAWSCALE_API_KEY` (scope whois).
    pub api_key: String,
    /// `MCP_UPSTREAM`, e.g. `127.0.0.1:3001`.
    pub mcp_upstream: String,
    /// The port to listen on (the shipped files say 80).
    pub port: u16,
}

impl Gate {
    fn dir(self) -> PathBuf {
        let sub = match self {
            Gate::Nginx => "deploy/nginx",
            Gate::Haproxy => "deploy/haproxy",
        };
        Path::new(env!("CARGO_MANIFEST_DIR")).join(sub)
    }

    /// The shipped config file's name in [`Gate::dir`].
    fn config_name(self) -> &'static str {
        match self {
            Gate::Nginx => "mcp-gateway.conf",
            Gate::Haproxy => "mcp-gateway.cfg",
        }
    }

    /// The shipped config with its placeholders filled in.
    pub fn config(self, cfg: &GateConfig) -> String {
        let shipped = fs::read_to_string(self.dir().join(self.config_name()))
            .unwrap_or_else(|e| panic!("read the shipped {}: {e}", self.config_name()));
        let listen = match self {
            Gate::Nginx => ("listen 80;", format!("listen {};", cfg.port)),
            Gate::Haproxy => ("bind :80", format!("bind :{}", cfg.port)),
        };
        assert!(shipped.contains(listen.0), "{self:?}: no `{}`", listen.0);
        let conf = shipped
            .replace("GATE_DIR", &self.dir().display().to_string())
            .replace("CLAWSCALE_URL", &cfg.clawscale_url)
            .replace("CLAWSCALE_API_KEY", &cfg.api_key)
            .replace("MCP_UPSTREAM", &cfg.mcp_upstream)
            .replace(listen.0, &listen.1);
        // Outside comments, no placeholder may be left unfilled.
        for line in conf.lines().filter(|l| !l.trim_start().starts_with('#')) {
            for placeholder in ["GATE_DIR", "CLAWSCALE_", "MCP_UPSTREAM"] {
                assert!(
                    !line.contains(placeholder),
                    "placeholder {placeholder} left in: {line}"
                );
            }
        }
        conf
    }

    /// Starts the gate in `ns`, stopped (by PID) when the value is dropped.
    pub fn start(self, ns: &Netns, cfg: &GateConfig) -> RunningGate {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-gate-", ns.name()))
            .tempdir()
            .expect("create gate temp dir");
        let (check, mut cmd, log) = match self {
            Gate::Nginx => nginx(ns, &dir, self.config(cfg)),
            Gate::Haproxy => haproxy(ns, &dir, self.config(cfg)),
        };
        let out = ns.run(
            &check.iter().map(String::as_str).collect::<Vec<_>>(),
            Duration::from_secs(30),
        );
        assert!(out.success(), "{self:?} rejects its config:\n{out}");
        let log_file = fs::File::create(dir.path().join("stdout.log")).expect("gate log");
        cmd.stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup log fd"))
            .stderr(log_file);
        let child = OwnedChild::spawn(&mut cmd, &format!("{self:?} (MCP gate)"));
        let mut gate = RunningGate {
            kind: self,
            dir,
            log,
            child: Some(child),
        };
        // Listening once the port answers from inside the namespace.
        let ready = try_wait_for(Duration::from_secs(30), || {
            if let Some(status) = gate.child.as_mut().and_then(OwnedChild::exited) {
                return Err(format!("exited early with {status}"));
            }
            let probe = ns.run(
                &[
                    "bash",
                    "-c",
                    &format!("exec 3<>/dev/tcp/127.0.0.1/{}", cfg.port),
                ],
                Duration::from_secs(5),
            );
            if probe.success() {
                Ok(())
            } else {
                Err("not listening yet".into())
            }
        });
        if let Err(e) = ready {
            gate.dump_log();
            panic!("{self:?} did not start: {e}");
        }
        gate
    }
}

/// The config check, the command and the log to show for nginx.
fn nginx(ns: &Netns, dir: &TempDir, config: String) -> (Vec<String>, Command, PathBuf) {
    let found = Command::new("nginx").arg("-v").output();
    assert!(
        found.is_ok_and(|o| o.status.success()) && Path::new(NJS_MODULE).exists(),
        "nginx with njs is required (apt-get install nginx libnginx-mod-http-js; \
         .ci/run installs them)"
    );
    let d = dir.path().display();
    fs::write(dir.path().join("mcp-gateway.conf"), config).expect("write mcp-gateway.conf");
    // Workers as root: the script and temp dirs sit in root-only temp
    // directories.
    let main = format!(
        "load_module {NJS_MODULE};\nuser root;\nworker_processes 1;\n\
         pid {d}/nginx.pid;\nerror_log {d}/error.log info;\nevents {{}}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
         uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         include {d}/mcp-gateway.conf;\n}}\n"
    );
    let conf = dir.path().join("nginx.conf").display().to_string();
    fs::write(&conf, main).expect("write nginx.conf");
    let error_log = dir.path().join("error.log").display().to_string();
    let check = ["nginx", "-t", "-c", &conf, "-e", &error_log].map(String::from);
    let mut cmd = ns.command("nginx");
    // In the foreground, so the child we own is the master: SIGTERM to it
    // stops the worker too.
    cmd.args(["-c", &conf, "-e", &error_log, "-g", "daemon off;"]);
    (check.to_vec(), cmd, dir.path().join("error.log"))
}

/// The config check, the command and the log to show for HAProxy.
fn haproxy(ns: &Netns, dir: &TempDir, config: String) -> (Vec<String>, Command, PathBuf) {
    let found = Command::new("haproxy").arg("-v").output();
    assert!(
        found.is_ok_and(|o| o.status.success())
            && Path::new("/usr/lib/x86_64-linux-gnu/lua/5.3/cjson.so").exists(),
        "HAProxy with lua-cjson is required (apt-get install haproxy lua-cjson; \
         .ci/run installs them)"
    );
    let cfg = dir.path().join("mcp-gateway.cfg").display().to_string();
    fs::write(&cfg, config).expect("write mcp-gateway.cfg");
    let check = ["haproxy", "-c", "-f", &cfg].map(String::from);
    let mut cmd = ns.command("haproxy");
    // -db: in the foreground, logging to stderr.
    cmd.args(["-db", "-f", &cfg]);
    (check.to_vec(), cmd, dir.path().join("stdout.log"))
}

/// A started gate.
pub struct RunningGate {
    kind: Gate,
    dir: TempDir,
    log: PathBuf,
    child: Option<OwnedChild>,
}

impl RunningGate {
    pub fn dump_log(&self) {
        eprintln!(
            "===== {:?} gate log =====\n{}\n----- output -----\n{}\n===== end of gate =====",
            self.kind,
            tail_file(&self.log, 200),
            tail_file(&self.dir.path().join("stdout.log"), 100),
        );
    }
}

impl Drop for RunningGate {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_log();
        }
        if let Some(mut child) = self.child.take() {
            child.terminate(Duration::from_secs(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GateConfig {
        GateConfig {
            clawscale_url: "http://10.0.0.1:8080".into(),
            api_key: "hskey-api-x".into(),
            mcp_upstream: "127.0.0.1:3001".into(),
            port: 8081,
        }
    }

    #[test]
    fn the_shipped_nginx_config_is_filled_in_everywhere() {
        let conf = Gate::Nginx.config(&cfg());
        assert!(conf.contains("proxy_pass http://10.0.0.1:8080/api/v1/authorize;"));
        assert!(conf.contains("\"Bearer hskey-api-x\""));
        assert!(conf.contains("proxy_pass http://127.0.0.1:3001;"));
        assert!(conf.contains("listen 8081;"));
        assert!(conf.contains(&format!("js_path {};", Gate::Nginx.dir().display())));
    }

    #[test]
    fn the_shipped_haproxy_config_is_filled_in_everywhere() {
        let conf = Gate::Haproxy.config(&cfg());
        assert!(conf.contains("lua.mcp_gate http://10.0.0.1:8080 hskey-api-x"));
        assert!(conf.contains("server mcp 127.0.0.1:3001"));
        assert!(conf.contains("bind :8081"));
        let lua = format!("lua-load {}/mcp-gate.lua", Gate::Haproxy.dir().display());
        assert!(conf.contains(&lua), "{conf}");
    }
}
