//! The `Nginx` fixture: Debian's nginx with njs running the shipped MCP
//! gateway (`deploy/nginx/mcp-gateway.conf` and `mcp-gate.js`) in a host
//! namespace. The shipped file is used as it is, its placeholders filled
//! in; the fixture only adds what a distribution's own nginx.conf would
//! (the njs module, paths in a temp dir, the log).

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

/// The values for the shipped file's placeholders.
pub struct NginxGateway {
    /// `CLAWSCALE_URL`, e.g. `http://10.0.0.1:8080`.
    pub clawscale_url: String,
    /// `CLAWSCALE_API_KEY` (scope whois).
    pub api_key: String,
    /// `MCP_UPSTREAM`, e.g. `127.0.0.1:3001`.
    pub mcp_upstream: String,
    /// The port to listen on (the shipped file says 80).
    pub port: u16,
}

/// The shipped config with its placeholders filled in.
pub fn gateway_conf(cfg: &NginxGateway) -> String {
    let shipped = fs::read_to_string(deploy_dir().join("mcp-gateway.conf"))
        .expect("read deploy/nginx/mcp-gateway.conf");
    let conf = shipped
        .replace("GATE_DIR;", &format!("{};", deploy_dir().display()))
        .replace("CLAWSCALE_URL/", &format!("{}/", cfg.clawscale_url))
        .replace(
            "Bearer CLAWSCALE_API_KEY",
            &format!("Bearer {}", cfg.api_key),
        )
        .replace(
            "http://MCP_UPSTREAM;",
            &format!("http://{};", cfg.mcp_upstream),
        )
        .replace("listen 80;", &format!("listen {};", cfg.port));
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

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx")
}

/// nginx (master and one worker) in a host namespace, stopped on drop.
pub struct Nginx {
    dir: TempDir,
    child: Option<OwnedChild>,
}

impl Nginx {
    pub fn start(ns: &Netns, cfg: &NginxGateway) -> Nginx {
        let found = Command::new("nginx").arg("-v").output();
        assert!(
            found.is_ok_and(|o| o.status.success()) && Path::new(NJS_MODULE).exists(),
            "nginx with njs is required (apt-get install nginx libnginx-mod-http-js; \
             .ci/run installs them)"
        );
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-nginx-", ns.name()))
            .tempdir()
            .expect("create nginx temp dir");
        let d = dir.path().display();
        fs::write(dir.path().join("mcp-gateway.conf"), gateway_conf(cfg))
            .expect("write mcp-gateway.conf");
        // Workers as root: the script and temp dirs sit in root-only
        // temp directories.
        let main = format!(
            "load_module {NJS_MODULE};\nuser root;\nworker_processes 1;\n\
             pid {d}/nginx.pid;\nerror_log {d}/error.log info;\nevents {{}}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             include {d}/mcp-gateway.conf;\n}}\n"
        );
        let conf = dir.path().join("nginx.conf");
        fs::write(&conf, main).expect("write nginx.conf");
        let error_log = dir.path().join("error.log");
        let conf_arg = conf.to_string_lossy().into_owned();
        let log_arg = error_log.to_string_lossy().into_owned();
        let check = ns.run(
            &["nginx", "-t", "-c", &conf_arg, "-e", &log_arg],
            Duration::from_secs(30),
        );
        assert!(check.success(), "nginx rejects its config:\n{check}");
        let mut cmd = ns.command("nginx");
        // In the foreground, so the child we own is the master: SIGTERM
        // to it stops the worker too.
        cmd.args(["-c", &conf_arg, "-e", &log_arg, "-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = OwnedChild::spawn(&mut cmd, "nginx (MCP gateway)");
        let mut nginx = Nginx {
            dir,
            child: Some(child),
        };
        let ready = try_wait_for(Duration::from_secs(30), || {
            if let Some(status) = nginx.child.as_mut().and_then(OwnedChild::exited) {
                return Err(format!("nginx exited early with {status}"));
            }
            if nginx.error_log().contains("start worker process") {
                Ok(())
            } else {
                Err("no worker yet".into())
            }
        });
        if let Err(e) = ready {
            nginx.dump_log();
            panic!("nginx did not start: {e}");
        }
        nginx
    }

    fn error_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn dump_log(&self) {
        eprintln!(
            "===== nginx error log =====\n{}\n===== nginx access log =====\n{}\n===== end of nginx =====",
            tail_file(&self.dir.path().join("error.log"), 200),
            tail_file(&self.dir.path().join("access.log"), 100),
        );
    }
}

impl Drop for Nginx {
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

    #[test]
    fn the_shipped_config_is_filled_in_everywhere() {
        let conf = gateway_conf(&NginxGateway {
            clawscale_url: "http://10.0.0.1:8080".into(),
            api_key: "hskey-api-x".into(),
            mcp_upstream: "127.0.0.1:3001".into(),
            port: 8081,
        });
        assert!(conf.contains("proxy_pass http://10.0.0.1:8080/api/v1/authorize;"));
        assert!(conf.contains("\"Bearer hskey-api-x\""));
        assert!(conf.contains("proxy_pass http://127.0.0.1:3001;"));
        assert!(conf.contains("listen 8081;"));
        assert!(conf.contains(&format!("js_path {};", deploy_dir().display())));
    }
}
