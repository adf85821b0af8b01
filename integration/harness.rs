//! Harness for the real-client tier: stock `tailscaled` binaries against a
//! live `clawscale serve`, each in its own network namespace.
//!
//! Owns: the test fixtures (`Topology`, `Server`, `Tailscaled`, and for the
//! fault tests `Tmpfs` and `PgServer`), binary provisioning and bounded
//! polling. Depends on the `clawscale` binary built
//! by Cargo (`CARGO_BIN_EXE_clawscale`), iproute2, util-linux, bash, root, and
//! `.ci/fetch-tailscale.sh` for the clients. It uses nothing from the crate's
//! library: the server is exercised only through its CLI and the network,
//! exactly as an operator and a Tailscale client would.
//!
//! Safety: `tailscaled` is started only inside namespaces built by
//! `Topology`, after `Netns::assert_isolated` has checked that no route
//! leaves the test subnet. Every process is owned by the fixture that spawned
//! it and is stopped by PID on drop (also during a panic); namespaces are
//! deleted when their last user is dropped. Fixtures dump their logs to
//! stderr when dropped during a panic, so a failing test shows the server log
//! and every client log.

// A toolkit for many scenario modules: not every helper is used by each.
#![allow(dead_code, unused_imports)]

pub mod bins;
pub mod certs;
pub mod gates;
pub mod gateway;
pub mod listener;
pub mod loopback;
pub mod mcp;
pub mod netns;
pub mod pebble;
pub mod pg_server;
pub mod postgres;
pub mod process;
pub mod rscale;
pub mod server;
pub mod tailscaled;
pub mod tmpfs;

use std::thread;
use std::time::{Duration, Instant};

pub use bins::ClientVersion;
pub use certs::TestCa;
pub use listener::Listener;
pub use netns::{Lan, Netns, Topology};
pub use pg_server::PgServer;
pub use process::{CmdOutput, OwnedChild};
pub use server::{CONTROL_PORT, Db, KeyOptions, NodeRecord, Server, ServerConfig};
pub use tailscaled::{PeerStatus, Pong, Status, Tailscaled, TailscaledOptions};
pub use tmpfs::Tmpfs;

/// The MagicDNS base domain the test server is configured with.
pub const BASE_DOMAIN: &str = "clawql.local";

/// Polls `check` every 250 ms until it returns `Ok`, for at most `timeout`.
/// Returns the last error on timeout.
pub fn try_wait_for<T>(
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// Like `try_wait_for`, but panics with `what` and the last error on timeout.
#[track_caller]
pub fn wait_for<T>(what: &str, timeout: Duration, check: impl FnMut() -> Result<T, String>) -> T {
    match try_wait_for(timeout, check) {
        Ok(v) => v,
        Err(e) => panic!("timed out after {timeout:?} waiting for {what}; last error: {e}"),
    }
}

/// Asserts that `check` keeps returning `Ok` for the whole of `period`.
#[track_caller]
pub fn assert_stays(what: &str, period: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + period;
    while Instant::now() < deadline {
        if let Err(e) = check() {
            panic!("{what} stopped holding: {e}");
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// True when the real-client tier should be skipped: only when the user asks
/// for it (`CLAWSCALE_SKIP_REAL_CLIENT=1`), and never in CI.
pub fn skip_real_clients() -> bool {
    let asked = std::env::var("CLAWSCALE_SKIP_REAL_CLIENT").is_ok_and(|v| v == "1");
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    if asked && !ci {
        eprintln!("harness: CLAWSCALE_SKIP_REAL_CLIENT=1, skipping a real-client test");
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_returns_once_the_check_passes() {
        let mut calls = 0;
        let v = wait_for("counter", Duration::from_secs(5), || {
            calls += 1;
            if calls >= 3 {
                Ok(calls)
            } else {
                Err(format!("only {calls}"))
            }
        });
        assert_eq!(v, 3);
    }

    #[test]
    fn try_wait_for_gives_up_with_the_last_error() {
        let started = Instant::now();
        let r: Result<(), String> = try_wait_for(Duration::from_millis(300), || Err("nope".into()));
        assert_eq!(r, Err("nope".to_owned()));
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
