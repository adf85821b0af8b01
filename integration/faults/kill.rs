//! SIGKILL of the server while nodes register, in a loop: after each
//! restart every node is whole (its address pair, its consumed key) and no
//! address is held twice; every registration the client saw authorized is
//! still there. Registrations are driven by the in-process control client
//! (tailscale-rs `ts_control`, as in `integration/inproc`): fast, and exact
//! about which registrations were acknowledged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::Duration;

use url::Url;

use crate::harness::{Db, KeyOptions, Server};
use crate::sim::SimNode;

const ROUNDS: usize = 10;
const NODES_PER_ROUND: usize = 8;

#[test]
fn sigkill_during_registrations_leaves_no_half_node_and_no_shared_address() {
    let mut server = Server::start_local(Db::Sqlite, |_| {});
    server.create_user("base");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut acked = BTreeSet::new();
    let mut interrupted = 0;
    for round in 0..ROUNDS {
        let keys: Vec<String> = (0..NODES_PER_ROUND)
            .map(|_| server.create_preauthkey("base", &KeyOptions::default()))
            .collect();
        let url: Url = server.url().parse().expect("url");
        let (done_tx, done_rx) = mpsc::channel();
        let tasks: Vec<_> = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| {
                let (url, done) = (url.clone(), done_tx.clone());
                let host = format!("r{round}n{i}");
                rt.spawn(async move {
                    let authorized = register(&url, &host, &key).await.unwrap_or(false);
                    if authorized {
                        let _ = done.send(());
                    }
                    (host, authorized)
                })
            })
            .collect();
        // Kill after 0..=4 acknowledged registrations, so that the rest are
        // in flight (some inside their transaction) when the server dies.
        for _ in 0..round % 5 {
            if done_rx.recv_timeout(Duration::from_secs(30)).is_err() {
                break;
            }
        }
        server.kill();
        let mut round_acked = 0;
        for t in tasks {
            let (host, authorized) = rt.block_on(t).expect("registration task");
            if authorized {
                acked.insert(host);
                round_acked += 1;
            }
        }
        if round_acked < NODES_PER_ROUND {
            interrupted += 1;
        }
        server.start_again();
        check_nodes(&server, &acked);
    }
    eprintln!(
        "{} registrations acknowledged; {interrupted} of {ROUNDS} rounds interrupted",
        acked.len()
    );
    assert!(!acked.is_empty(), "no registration ever completed");
    assert!(
        interrupted > 0,
        "the server was never killed during registrations"
    );
}

/// Connects and registers; true when the server authorized the node.
async fn register(url: &Url, host: &str, key: &str) -> anyhow::Result<bool> {
    let mut node = SimNode::new(url, host);
    node.connect().await?;
    Ok(node.register(Some(key)).await?.authorized())
}

/// Every node whole, addresses unique, keys consumed exactly by their nodes,
/// acknowledged nodes present; nodes show their real pre-auth key.
#[track_caller]
fn check_nodes(server: &Server, acked: &BTreeSet<String>) {
    let keys: BTreeMap<u64, serde_json::Value> = super::json_list(server, &["preauthkeys", "list"])
        .into_iter()
        .map(|k| (k["id"].as_u64().expect("key id"), k))
        .collect();
    let mut addresses = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut key_ids = BTreeSet::new();
    for n in server.nodes() {
        let ips = n.ip_addresses();
        let v4 = ips.iter().filter(|ip| ip.contains('.')).count();
        assert!(
            v4 == 1 && ips.len() == 2,
            "node without its address pair: {}",
            n.raw
        );
        for ip in ips {
            assert!(addresses.insert(ip.clone()), "address {ip} held twice");
        }
        let pre = &n.raw["pre_auth_key"];
        let id = pre["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("node without its key: {}", n.raw));
        let key = keys
            .get(&id)
            .unwrap_or_else(|| panic!("node's key {id} does not exist: {}", n.raw));
        assert_eq!(
            key["used"], true,
            "node's single-use key not consumed: {key}"
        );
        assert_eq!(pre["key"], key["key"], "node shows another key than {key}");
        assert_eq!(pre["used"], true, "node shows its key unused: {}", n.raw);
        assert!(key_ids.insert(id), "single-use key {id} enrolled two nodes");
        names.insert(n.name().to_owned());
    }
    let used: BTreeSet<u64> = keys
        .iter()
        .filter(|(_, k)| k["used"] == true)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(used, key_ids, "keys consumed without a node");
    let missing: Vec<_> = acked.difference(&names).collect();
    assert!(
        missing.is_empty(),
        "acknowledged registrations lost: {missing:?}"
    );
}
