//! The DERP map from `derp.urls`: fetched from a local HTTP server at start,
//! merged with the embedded region, refreshed every `update_frequency`, and
//! a changed map reaching an open map stream; and a deleted node's stream
//! ending with its key expired.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use chrono::Utc;
use clawscale::config::PolicyMode;

use crate::client::SimNode;
use crate::server::{Store, TestServer, config};

const REMOTE_REGION: u32 = 901;

fn remote_map(code: &str) -> String {
    format!(
        r#"{{"Regions":{{"{REMOTE_REGION}":{{"RegionID":{REMOTE_REGION},"RegionCode":"{code}",
        "RegionName":"remote","Nodes":[{{"Name":"901a","RegionID":{REMOTE_REGION},
        "HostName":"derp.example.net","IPv4":"192.0.2.1","IPv6":"none"}}]}}}}}}"#
    )
}

fn region_code(map: &ts_control::DerpMap, id: u32) -> Option<String> {
    map.iter()
        .find(|(rid, _)| rid.0.get() == id)
        .map(|(_, r)| r.info.code.clone())
}

#[tokio::test]
async fn remote_derp_map_is_merged_and_refreshes_reach_open_streams() -> anyhow::Result<()> {
    let body = Arc::new(Mutex::new(remote_map("remote-a")));
    let served = body.clone();
    let app = Router::new().route(
        "/derpmap/default",
        get(move || {
            let b = served.clone();
            async move { b.lock().unwrap().clone() }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/derpmap/default", l.local_addr()?);
    tokio::spawn(async move { axum::serve(l, app).await });

    let dir = tempfile::tempdir()?;
    let mut cfg = config(dir.path(), &Store::Sqlite);
    cfg.policy.mode = PolicyMode::Database;
    cfg.derp.urls = vec![url];
    cfg.derp.auto_update_enabled = true;
    cfg.derp.update_frequency = Duration::from_millis(300);
    let embedded = cfg.derp.server.as_ref().expect("embedded DERP").region_id;
    let srv = TestServer::start_with(cfg).await?;
    let alice = srv.create_user("alice").await?;
    let key = srv.key(alice, true).await?;
    let mut node = SimNode::new(&srv.url, "alpha");
    let mut stream = node.enroll(&key).await?;
    stream
        .wait_until(Duration::from_secs(5), |m| {
            m.derp.as_ref().is_some_and(|d| {
                region_code(d, REMOTE_REGION).as_deref() == Some("remote-a")
                    && region_code(d, embedded).is_some()
            })
        })
        .await?;

    *body.lock().unwrap() = remote_map("remote-b");
    stream
        .wait_until(Duration::from_secs(5), |m| {
            m.derp.as_ref().is_some_and(|d| {
                region_code(d, REMOTE_REGION).as_deref() == Some("remote-b")
                    && region_code(d, embedded).is_some()
            })
        })
        .await?;
    srv.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_deleted_node_is_told_its_key_expired_before_its_stream_ends() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let srv = TestServer::start(dir.path(), &Store::Sqlite).await?;
    let alice = srv.create_user("alice").await?;
    let key = srv.key(alice, true).await?;
    let mut alpha = SimNode::new(&srv.url, "alpha");
    let mut stream = alpha.enroll(&key).await?;
    let mut beta = SimNode::new(&srv.url, "beta");
    let _beta_stream = beta.enroll(&key).await?;
    stream
        .wait_until(Duration::from_secs(5), |m| m.peer_named("beta").is_some())
        .await?;
    let id = srv.state.world().node_by_name("alpha").expect("alpha").id;
    srv.state.delete_node(id).await?;
    stream
        .wait_until(Duration::from_secs(5), |m| {
            m.peers.is_empty()
                && m.me
                    .as_ref()
                    .and_then(|me| me.node_key_expiry)
                    .is_some_and(|t| t < Utc::now())
        })
        .await?;
    // Then the server ends the stream.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while stream.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stream of a deleted node stays open");
    srv.stop().await;
    Ok(())
}
