//! Enrollment and the netmap: several nodes join and see each other, joins
//! and disconnects reach open streams as deltas, re-registration and a
//! server restart keep node identity and addresses. The scenarios take a
//! [`Store`] so `postgres.rs` runs them against PostgreSQL too.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::{Ipv4Net, Ipv6Net};
use ts_control::NodeStatus;

use crate::client::{Arrival, MapStream, SimNode};
use crate::server::{Store, TestServer};
use crate::{BASE_DOMAIN, WAIT};

const HOSTS: [&str; 3] = ["alpha", "bravo", "charlie"];

fn is_online(status: &NodeStatus) -> bool {
    matches!(status, NodeStatus::Online)
}

fn tailnet_v4() -> Ipv4Net {
    "100.64.0.0/10".parse().expect("literal prefix")
}

fn tailnet_v6() -> Ipv6Net {
    "fd7a:115c:a1e0::/48".parse().expect("literal prefix")
}

/// Three nodes enroll; each one's stream lists the other two, Online, with
/// `<host>.clawql.local.` names and addresses from the tailnet prefixes.
pub async fn nodes_see_each_other(store: Store) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let srv = TestServer::start(dir.path(), &store).await?;
    let user = srv.create_user("alice").await?;
    let key = srv.key(user, true).await?;

    let mut nodes = Vec::new();
    let mut streams: Vec<MapStream> = Vec::new();
    for host in HOSTS {
        let mut n = SimNode::new(&srv.url, host);
        streams.push(n.enroll(&key).await?);
        nodes.push(n);
    }

    for (i, s) in streams.iter_mut().enumerate() {
        let others: Vec<&str> = HOSTS.iter().copied().filter(|h| *h != HOSTS[i]).collect();
        s.wait_until(WAIT, |m| {
            others
                .iter()
                .all(|h| m.peer_named(h).is_some_and(|p| is_online(&p.status)))
        })
        .await?;
        let me = s.netmap.me.as_ref().expect("first map had Node");
        assert_eq!(me.hostname, HOSTS[i]);
        assert_eq!(
            s.netmap.peers.len(),
            2,
            "exactly the two others: {:?}",
            s.netmap.peers
        );
        for p in s.netmap.peers.values().chain([me]) {
            assert_eq!(p.tailnet.as_deref(), Some(BASE_DOMAIN), "{p:?}");
            assert!(
                tailnet_v4().contains(&p.tailnet_address.ipv4.addr()),
                "{p:?}"
            );
            assert!(
                tailnet_v6().contains(&p.tailnet_address.ipv6.addr()),
                "{p:?}"
            );
            assert_eq!(p.tailnet_address.ipv4.prefix_len(), 32);
            assert_eq!(p.tailnet_address.ipv6.prefix_len(), 128);
        }
    }

    // Every node has its own addresses, agreed on by all views.
    let mut v4: Vec<IpAddr> = Vec::new();
    for s in &streams {
        let me = s.netmap.me.as_ref().expect("self");
        v4.push(me.tailnet_address.ipv4.addr().into());
        v4.push(me.tailnet_address.ipv6.addr().into());
        for other in &streams {
            if let Some(seen) = other.netmap.peer_named(&me.hostname) {
                assert_eq!(seen.tailnet_address, me.tailnet_address);
                assert_eq!(seen.node_key, me.node_key);
            }
        }
    }
    let before = v4.len();
    v4.sort();
    v4.dedup();
    assert_eq!(v4.len(), before, "addresses are unique");

    // The wire form ts_control normalises away: FQDN with a trailing dot.
    let raw = nodes[0].fetch_map().await?;
    assert_eq!(raw["Node"]["Name"], format!("alpha.{BASE_DOMAIN}."));
    let names: Vec<&str> = raw["Peers"]
        .as_array()
        .expect("Peers list")
        .iter()
        .filter_map(|p| p["Name"].as_str())
        .collect();
    assert_eq!(names.len(), 2);
    for h in ["bravo", "charlie"] {
        assert!(
            names.contains(&format!("{h}.{BASE_DOMAIN}.").as_str()),
            "{names:?}"
        );
    }
    assert!(
        raw["Peers"]
            .as_array()
            .expect("list")
            .iter()
            .all(|p| p["Online"] == true)
    );

    assert_eq!(srv.state.world().nodes.len(), 3);
    srv.stop().await;
    Ok(())
}

#[tokio::test]
async fn nodes_see_each_other_sqlite() -> anyhow::Result<()> {
    nodes_see_each_other(Store::Sqlite).await
}

/// A node that joins later reaches already-open streams as a delta
/// (`PeersChanged`), not as a new full map.
#[tokio::test]
async fn join_reaches_existing_streams_as_delta() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let srv = TestServer::start(dir.path(), &Store::Sqlite).await?;
    let user = srv.create_user("alice").await?;
    let key = srv.key(user, true).await?;
    let mut a = SimNode::new(&srv.url, "alpha");
    let mut sa = a.enroll(&key).await?;
    let mut b = SimNode::new(&srv.url, "bravo");
    let mut sb = b.enroll(&key).await?;
    sa.wait_until(WAIT, |m| m.peer_named("bravo").is_some())
        .await?;
    sb.wait_until(WAIT, |m| m.peer_named("alpha").is_some())
        .await?;

    // The first map's `Peers` is omitted while it would be empty, so
    // alpha may have had no full peer list at all; none may come now.
    let fulls_before = [sa.fulls, sb.fulls];
    let mut c = SimNode::new(&srv.url, "charlie");
    let _sc = c.enroll(&key).await?;
    for (s, before) in [&mut sa, &mut sb].into_iter().zip(fulls_before) {
        let how = s
            .wait_until(WAIT, |m| m.peer_named("charlie").is_some())
            .await?;
        assert_eq!(how, Arrival::Delta, "the join must arrive as a delta");
        assert_eq!(s.fulls, before, "no new full peer list");
        s.wait_until(WAIT, |m| {
            m.peer_named("charlie")
                .is_some_and(|p| is_online(&p.status))
        })
        .await?;
    }
    srv.stop().await;
    Ok(())
}

/// Dropping a node's connection tells its peers it went offline.
#[tokio::test]
async fn disconnect_reaches_peers_as_offline() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let srv = TestServer::start(dir.path(), &Store::Sqlite).await?;
    let user = srv.create_user("alice").await?;
    let key = srv.key(user, true).await?;
    let mut a = SimNode::new(&srv.url, "alpha");
    let mut sa = a.enroll(&key).await?;
    let mut b = SimNode::new(&srv.url, "bravo");
    let sb = b.enroll(&key).await?;
    sa.wait_until(WAIT, |m| {
        m.peer_named("bravo").is_some_and(|p| is_online(&p.status))
    })
    .await?;

    drop(sb);
    b.disconnect();
    let how = sa
        .wait_until(WAIT, |m| {
            m.peer_named("bravo")
                .is_some_and(|p| matches!(p.status, NodeStatus::Offline(_)))
        })
        .await?;
    assert_eq!(how, Arrival::Delta);
    assert_eq!(
        sa.netmap.peers.len(),
        1,
        "an offline peer stays in the netmap"
    );
    srv.stop().await;
    Ok(())
}

/// One reusable key enrolls five nodes with distinct addresses.
#[tokio::test]
async fn reusable_key_enrolls_five() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let srv = TestServer::start(dir.path(), &Store::Sqlite).await?;
    let user = srv.create_user("alice").await?;
    let key = srv.key(user, true).await?;
    let mut addrs = Vec::new();
    for i in 0..5 {
        let mut n = SimNode::new(&srv.url, &format!("node{i}"));
        n.connect().await?;
        let r = n.register(Some(&key)).await?;
        assert!(r.authorized(), "node{i}: {r:?}");
        let map = n.fetch_map().await?;
        addrs.push(map["Node"]["Addresses"].to_string());
    }
    let mut unique = addrs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "{addrs:?}");
    assert_eq!(srv.state.world().nodes.len(), 5);

    // The writer's batches are served: five registrations at least, in
    // no more batches than jobs, and time spent on them.
    let text = srv.metrics().await?;
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let jobs = value("clawscale_writer_jobs_total");
    let batches = value("clawscale_writer_batches_total");
    assert!(jobs >= 5.0 && batches >= 1.0 && batches <= jobs, "{text}");
    assert!(value("clawscale_writer_busy_seconds_total") > 0.0, "{text}");
    srv.stop().await;
    Ok(())
}

/// Registering again keeps the node and its addresses: with the same keys
/// and no auth key, and from the same machine with a new node key and a
/// new auth key.
#[tokio::test]
async fn reregistration_keeps_ips() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let srv = TestServer::start(dir.path(), &Store::Sqlite).await?;
    let user = srv.create_user("alice").await?;
    let mut n = SimNode::new(&srv.url, "alpha");
    n.connect().await?;
    assert!(
        n.register(Some(&srv.key(user, false).await?))
            .await?
            .authorized()
    );
    let first = n.fetch_map().await?["Node"].clone();

    n.disconnect();
    n.connect().await?;
    let again = n.register(None).await?;
    assert!(
        again.authorized(),
        "known node key needs no auth key: {again:?}"
    );
    let second = n.fetch_map().await?["Node"].clone();
    assert_eq!(second["ID"], first["ID"]);
    assert_eq!(second["Addresses"], first["Addresses"]);

    // Same machine, fresh node key (e.g. state wiped): a new key re-enrolls
    // the same node.
    let mut keys = n.keys.clone();
    keys.node_keys = ts_keys::NodeKeyPair::random();
    let mut m = SimNode::with_keys(&srv.url, "alpha", keys);
    m.connect().await?;
    let r = m.register(Some(&srv.key(user, false).await?)).await?;
    assert!(r.authorized(), "{r:?}");
    let third = m.fetch_map().await?["Node"].clone();
    assert_eq!(third["ID"], first["ID"]);
    assert_eq!(third["Addresses"], first["Addresses"]);
    assert_ne!(third["Key"], first["Key"]);
    assert_eq!(srv.state.world().nodes.len(), 1);
    srv.stop().await;
    Ok(())
}

/// Stopping the server and starting a new one on the same data directory
/// keeps nodes, ids and addresses; clients log back in without a key.
pub async fn restart_keeps_nodes(store: Store) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let srv = TestServer::start(dir.path(), &store).await?;
    let user = srv.create_user("alice").await?;
    let key = srv.key(user, true).await?;
    let mut a = SimNode::new(&srv.url, "alpha");
    let sa = a.enroll(&key).await?;
    let mut b = SimNode::new(&srv.url, "bravo");
    let sb = b.enroll(&key).await?;
    let before = srv.state.world();
    drop((sa, sb));
    a.disconnect();
    b.disconnect();
    srv.stop().await;

    let srv = TestServer::start(dir.path(), &store).await?;
    let after = srv.state.world();
    assert_eq!(after.nodes.len(), 2);
    for (id, n) in &before.nodes {
        let m = after.node(*id).expect("node survives the restart");
        assert_eq!((m.ipv4, m.ipv6), (n.ipv4, n.ipv6));
        assert_eq!(m.node_key, n.node_key);
        assert_eq!(m.given_name, n.given_name);
    }

    let mut a = SimNode::with_keys(&srv.url, "alpha", a.keys.clone());
    a.connect().await?;
    assert!(a.register(None).await?.authorized());
    let mut sa = a.stream().await?;
    sa.wait_until(WAIT, |m| m.me.is_some() && m.peer_named("bravo").is_some())
        .await?;
    let me = sa.netmap.me.as_ref().expect("self");
    let old = before
        .node_by_node_key(&node_public(&a))
        .expect("alpha existed");
    assert_eq!(me.id, old.id.0);
    assert_eq!(Some(me.tailnet_address.ipv4.addr()), old.ipv4);
    assert_eq!(Some(me.tailnet_address.ipv6.addr()), old.ipv6);
    srv.stop().await;
    Ok(())
}

fn node_public(n: &SimNode) -> clawscale::types::NodePublic {
    n.keys
        .node_keys
        .public
        .to_string()
        .parse()
        .expect("ts_keys and clawscale agree on the nodekey: form")
}

#[tokio::test]
async fn restart_keeps_nodes_sqlite() -> anyhow::Result<()> {
    restart_keeps_nodes(Store::Sqlite).await
}

/// A server whose `batch_change_delay` is `gap`: a reusable key of alice's,
/// and her node alpha enrolled with its stream open (keep the node: it
/// holds the connection).
async fn with_gap(
    gap: Duration,
) -> anyhow::Result<(tempfile::TempDir, TestServer, String, SimNode, MapStream)> {
    let dir = tempfile::tempdir()?;
    let mut cfg = crate::server::config(dir.path(), &Store::Sqlite);
    cfg.batch_change_delay = gap;
    let srv = TestServer::start_with(cfg).await?;
    let user = srv.create_user("alice").await?;
    let key = srv.key(user, true).await?;
    let mut a = SimNode::new(&srv.url, "alpha");
    let sa = a.enroll(&key).await?;
    Ok((dir, srv, key, a, sa))
}

/// `tuning.batch_change_delay`: a burst of joins reaches an open stream
/// merged into at most two frames per gap, and the first change after a
/// quiet spell is sent after the short settle time (50 ms), not held for
/// the gap.
#[tokio::test]
async fn a_burst_of_joins_is_merged_and_a_lone_change_is_not_held() -> anyhow::Result<()> {
    const GAP: Duration = Duration::from_secs(3);
    const JOINS: usize = 8;
    let (_dir, srv, key, _a, mut sa) = with_gap(GAP).await?;

    // Each join is a registration, a map request and a presence change:
    // three changes per node, sent one by one that would be many frames.
    let started = Instant::now();
    let mut others = Vec::new();
    for i in 0..JOINS {
        let mut n = SimNode::new(&srv.url, &format!("n{i}"));
        let s = n.enroll(&key).await?;
        others.push((n, s));
    }
    let enrolled = started.elapsed();
    sa.wait_until(WAIT, |m| {
        m.peers.len() == JOINS && m.peers.values().all(|p| is_online(&p.status))
    })
    .await?;
    // The first frame waits out the gap after the full map; whatever came
    // in while it was sent makes at most one more per gap.
    let bound = 1 + enrolled.as_millis().div_ceil(GAP.as_millis()) as usize;
    assert!(
        sa.deltas <= bound,
        "{} delta frames for {JOINS} joins within {enrolled:?} (at most {bound})",
        sa.deltas
    );

    // Quiet for longer than the gap: a deletion waits only the settle time.
    tokio::time::sleep(GAP + Duration::from_millis(500)).await;
    let gone = others[0]
        .1
        .netmap
        .me
        .as_ref()
        .map(|m| m.id)
        .expect("own node");
    let t0 = Instant::now();
    srv.state
        .delete_node(clawscale::types::NodeId(gone))
        .await?;
    sa.wait_until(WAIT, |m| !m.peers.contains_key(&gone))
        .await?;
    let took = t0.elapsed();
    assert!(took < GAP / 2, "a lone change waited {took:?}");
    srv.stop().await;
    Ok(())
}

/// After a frame, a change that only says a peer went offline waits the
/// presence gap (ten times `batch_change_delay`, at most 1 s), while a
/// node removal waits only `batch_change_delay` and takes the pending
/// presence with it.
#[tokio::test]
async fn presence_alone_waits_longer_than_other_changes() -> anyhow::Result<()> {
    const GAP: Duration = Duration::from_millis(100);
    const PRESENCE_GAP: Duration = Duration::from_secs(1);
    let (_dir, srv, key, _a, mut sa) = with_gap(GAP).await?;
    let mut others = Vec::new();
    for name in ["bravo", "charlie", "delta", "echo"] {
        let mut n = SimNode::new(&srv.url, name);
        let s = n.enroll(&key).await?;
        others.push((n, s));
    }
    let id = |i: usize| {
        others[i]
            .1
            .netmap
            .me
            .as_ref()
            .map(|m| m.id)
            .expect("own id")
    };
    let (bravo, charlie, delta, echo) = (id(0), id(1), id(2), id(3));
    sa.wait_until(WAIT, |m| {
        m.peers.len() == 4 && m.peers.values().all(|p| is_online(&p.status))
    })
    .await?;
    tokio::time::sleep(PRESENCE_GAP * 2).await;

    // A removal after a quiet spell waits only the settle time; then
    // bravo's stream ends, which is presence alone: held until the
    // presence gap.
    srv.state
        .delete_node(clawscale::types::NodeId(delta))
        .await?;
    sa.wait_until(WAIT, |m| !m.peers.contains_key(&delta))
        .await?;
    let sent = Instant::now();
    drop(others.remove(0));
    sa.wait_until(WAIT, |m| {
        m.peers.get(&bravo).is_some_and(|p| !is_online(&p.status))
    })
    .await?;
    let held = sent.elapsed();
    assert!(
        held >= PRESENCE_GAP - Duration::from_millis(100),
        "presence alone went out after {held:?}, before the {PRESENCE_GAP:?} gap"
    );

    // Right after that frame: charlie goes offline, then echo is removed.
    // Both go out together after the short gap, not the presence gap.
    let sent = Instant::now();
    drop(others.remove(0));
    let deadline = Instant::now() + WAIT;
    while srv
        .state
        .world()
        .is_online(clawscale::types::NodeId(charlie))
    {
        anyhow::ensure!(Instant::now() < deadline, "charlie never went offline");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    srv.state
        .delete_node(clawscale::types::NodeId(echo))
        .await?;
    sa.wait_until(WAIT, |m| {
        !m.peers.contains_key(&echo) && m.peers.get(&charlie).is_some_and(|p| !is_online(&p.status))
    })
    .await?;
    let took = sent.elapsed();
    assert!(
        took < PRESENCE_GAP - Duration::from_millis(200),
        "a removal with presence pending took {took:?}"
    );
    srv.stop().await;
    Ok(())
}
