//! A TCP listener inside a client's namespace that records the
//! connections it accepts: proof that the destination's packet filter let
//! a connection through.

use std::fs;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::{Netns, OwnedChild, Tailscaled, try_wait_for, wait_for};

/// A TCP listener on 127.0.0.1:`port` inside `ns` that records every
/// connection it accepts; stopped by PID when dropped. (The namespaces
/// have IPv6 disabled: connections go to the tailnet IPv4 addresses.)
///
/// Whether a connection got through is read from that record, not from the
/// client: `tailscale nc` with no stdin may exit before the greeting
/// arrives, but it has completed the TCP handshake by then, and the
/// destination's tailscaled only completes a handshake (and dials this
/// listener) after its packet filter admitted the SYN.
pub struct Listener {
    child: OwnedChild,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Listener {
    pub fn start(ns: &Netns, port: u16) -> Listener {
        let dir = tempfile::tempdir().expect("listener dir");
        let log = dir.path().join("accepts");
        let script = format!(
            "import socket\n\
             s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('127.0.0.1', {port})); s.listen(16)\n\
             while True:\n    c, _ = s.accept()\n    \
             f = open({log:?}, 'a'); f.write('x\\n'); f.close()\n    \
             c.sendall(b'hello-from-{port}\\n'); c.close()\n"
        );
        let mut cmd = ns.command("python3");
        cmd.args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = OwnedChild::spawn(&mut cmd, "tcp listener");
        let l = Listener {
            child,
            log,
            _dir: dir,
        };
        wait_for("listener to bind", Duration::from_secs(10), || {
            let out = ns.run(&["ss", "-ltn"], Duration::from_secs(5));
            if out.stdout.contains(&format!("127.0.0.1:{port}")) {
                Ok(())
            } else {
                Err(out.stdout)
            }
        });
        l
    }

    pub fn accepted(&self) -> usize {
        fs::read_to_string(&self.log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// Whether `from` opens a TCP connection to this listener through
    /// `ip:port` on the tailnet.
    pub fn reached_from(&self, from: &Tailscaled, ip: &str, port: u16) -> Result<(), String> {
        let before = self.accepted();
        let out = from.cli(&["nc", ip, &port.to_string()], Duration::from_secs(6));
        try_wait_for(Duration::from_secs(2), || {
            if self.accepted() > before {
                Ok(())
            } else {
                Err(format!(
                    "no connection from {} to {ip}:{port}: {out}",
                    from.name()
                ))
            }
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.child.terminate(Duration::from_secs(2));
    }
}
