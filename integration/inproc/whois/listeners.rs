//! The server most whois tests start: every listener on, one policy, two
//! nodes and a whois API key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clawscale::config::{Config, PolicyMode};
use clawscale::types::{Scope, UserId};

use super::{POLICY, join};
use crate::server::{Store, TestServer, config};

/// A server with all three whois listeners on, `POLICY`, alice's node
/// `alpha` and the gateway `gw`, and a whois API key; 127.0.0.2 is the
/// trusted proxy, requests from 127.0.0.1 are not.
pub(super) struct Listeners {
    pub(super) srv: TestServer,
    pub(super) sock: PathBuf,
    pub(super) tcp: SocketAddr,
    pub(super) alice: UserId,
    pub(super) alpha: IpAddr,
    pub(super) key: String,
    pub(super) dir: tempfile::TempDir,
}

impl Listeners {
    pub(super) async fn start() -> anyhow::Result<Listeners> {
        Self::start_with(|_, _| {}).await
    }

    /// `customize` gets the config and the server's data directory.
    pub(super) async fn start_with(
        customize: impl FnOnce(&mut Config, &Path),
    ) -> anyhow::Result<Listeners> {
        let dir = tempfile::tempdir()?;
        let sock = dir.path().join("whois.sock");
        let mut cfg = config(dir.path(), &Store::Sqlite);
        cfg.policy.mode = PolicyMode::Database;
        cfg.whois.unix_socket = Some(sock.clone());
        cfg.whois.listen_addr = Some("127.0.0.1:0".parse()?);
        cfg.whois.gateway = Some("gw".into());
        cfg.whois.trusted_proxies = vec!["127.0.0.2/32".parse()?];
        customize(&mut cfg, dir.path());
        let srv = TestServer::start_with(cfg).await?;
        let tcp = srv.whois.tcp.context("whois TCP listener bound")?;
        srv.state.set_policy(POLICY.into()).await?;
        let alice = srv.create_user("alice").await?;
        let alpha = join(&srv, "alpha", alice, &[]).await?;
        join(&srv, "gw", alice, &["tag:gw"]).await?;
        let (_, key) = srv.state.create_api_key(Scope::Whois, None).await?;
        Ok(Listeners {
            srv,
            sock,
            tcp,
            alice,
            alpha,
            key,
            dir,
        })
    }

    pub(super) fn bearer(&self) -> String {
        format!("Bearer {}", self.key)
    }
}
