//! The election on its own (`Primaries`), then through a real writer:
//! presence and approvals move it, and peers' maps follow.

use std::collections::BTreeSet;

use super::*;

fn net(s: &str) -> IpNet {
    s.parse().expect("prefix")
}

fn n(i: i64) -> NodeId {
    NodeId(i)
}

/// An election over fixed servers with presence the test flips.
struct Lab {
    p: Primaries,
    online: BTreeSet<NodeId>,
    unusable: BTreeSet<NodeId>,
}

impl Lab {
    fn new(servers: &[(i64, &[&str])]) -> Lab {
        let mut lab = Lab {
            p: Primaries::default(),
            online: BTreeSet::new(),
            unusable: BTreeSet::new(),
        };
        for (id, routes) in servers {
            let routes: Vec<IpNet> = routes.iter().map(|r| net(r)).collect();
            lab.serve(*id, &routes);
        }
        lab
    }

    fn run(&mut self, prefixes: BTreeSet<IpNet>) -> BTreeSet<NodeId> {
        let (online, unusable) = (&self.online, &self.unusable);
        self.p.elect(
            prefixes,
            |id| online.contains(&id),
            |id| !unusable.contains(&id),
        )
    }

    fn serve(&mut self, id: i64, routes: &[IpNet]) -> BTreeSet<NodeId> {
        let mut prefixes: BTreeSet<IpNet> = self.p.served(n(id)).iter().copied().collect();
        prefixes.extend(self.p.set_served(n(id), routes));
        self.run(prefixes)
    }

    /// What the writer does on a presence change.
    fn presence(&mut self, id: i64, up: bool) -> BTreeSet<NodeId> {
        if up {
            self.online.insert(n(id));
        } else {
            self.online.remove(&n(id));
        }
        let prefixes = self.p.served(n(id)).iter().copied().collect();
        self.run(prefixes)
    }

    fn primary(&self, r: &str) -> Option<i64> {
        self.p.primary(&net(r)).map(|id| id.0)
    }
}

fn ids(v: &[i64]) -> BTreeSet<NodeId> {
    v.iter().map(|i| n(*i)).collect()
}

const LAN: &str = "10.214.0.0/24";

#[test]
fn failover_to_an_online_standby_and_no_steal_back() {
    let mut lab = Lab::new(&[(1, &[LAN]), (2, &[LAN])]);
    assert_eq!(lab.primary(LAN), None, "nobody online: nobody primary");
    assert_eq!(lab.presence(1, true), ids(&[1]));
    assert_eq!(
        lab.presence(2, true),
        ids(&[]),
        "a standby arriving moves nothing"
    );
    assert_eq!(lab.primary(LAN), Some(1));
    assert_eq!(lab.p.of(n(1)), vec![net(LAN)]);
    assert!(lab.p.of(n(2)).is_empty());

    assert_eq!(
        lab.presence(1, false),
        ids(&[1, 2]),
        "both nodes' routes move"
    );
    assert_eq!(lab.primary(LAN), Some(2));
    assert_eq!(lab.p.of(n(2)), vec![net(LAN)]);
    assert!(lab.p.of(n(1)).is_empty());

    assert_eq!(
        lab.presence(1, true),
        ids(&[]),
        "the old primary does not steal back"
    );
    assert_eq!(lab.primary(LAN), Some(2));
}

#[test]
fn revoking_the_primarys_approval_moves_the_route() {
    let mut lab = Lab::new(&[(1, &[LAN, "10.9.0.0/16"]), (2, &[LAN])]);
    lab.presence(1, true);
    lab.presence(2, true);
    assert_eq!(lab.primary(LAN), Some(1));
    // Node 1 keeps its other route: only LAN is handed over.
    assert_eq!(lab.serve(1, &[net("10.9.0.0/16")]), ids(&[1, 2]));
    assert_eq!(lab.primary(LAN), Some(2));
    assert_eq!(lab.primary("10.9.0.0/16"), Some(1));
    // The last server of a prefix going away leaves it without a primary.
    assert_eq!(lab.serve(2, &[]), ids(&[2]));
    assert_eq!(lab.primary(LAN), None);
}

#[test]
fn an_unusable_primary_hands_over_even_while_online() {
    let mut lab = Lab::new(&[(1, &[LAN]), (2, &[LAN])]);
    lab.presence(1, true);
    lab.presence(2, true);
    lab.unusable.insert(n(1)); // key expired or approval withdrawn
    let prefixes = [net(LAN)].into();
    assert_eq!(lab.run(prefixes), ids(&[1, 2]));
    assert_eq!(lab.primary(LAN), Some(2));
}

#[test]
fn ties_go_to_the_lowest_id_whatever_the_arrival_order() {
    // Both online before the first election (one writer batch).
    let mut lab = Lab::new(&[(7, &[LAN]), (3, &[LAN]), (5, &[LAN])]);
    lab.online.extend(ids(&[7, 3, 5]));
    assert_eq!(lab.run([net(LAN)].into()), ids(&[3]));
    // On failover the lowest online id takes over, not the next arrival.
    assert_eq!(lab.presence(3, false), ids(&[3, 5]));
    assert_eq!(lab.primary(LAN), Some(5));
}

#[test]
fn after_a_restart_the_first_server_to_connect_is_primary() {
    // A fresh election (as at boot): nobody online, nobody primary, even
    // for the lowest id.
    let mut lab = Lab::new(&[(1, &[LAN]), (2, &[LAN])]);
    assert_eq!(lab.primary(LAN), None);
    assert_eq!(lab.presence(2, true), ids(&[2]));
    assert_eq!(lab.presence(1, true), ids(&[]));
    assert_eq!(lab.primary(LAN), Some(2));
}

#[test]
fn a_lone_offline_primary_keeps_its_route_until_a_standby_is_online() {
    let mut lab = Lab::new(&[(1, &[LAN]), (2, &[LAN])]);
    lab.presence(1, true);
    assert_eq!(lab.presence(1, false), ids(&[]), "no one to hand over to");
    assert_eq!(lab.primary(LAN), Some(1));
    assert_eq!(lab.presence(2, true), ids(&[1, 2]));
    assert_eq!(lab.primary(LAN), Some(2));
}

#[test]
fn exit_routes_are_not_elected_and_non_servers_cost_nothing() {
    let mut lab = Lab::new(&[(1, &["0.0.0.0/0", "::/0", LAN]), (2, &["0.0.0.0/0"])]);
    lab.presence(1, true);
    lab.presence(2, true);
    assert_eq!(lab.p.served(n(1)), &[net(LAN)]);
    assert!(lab.p.served(n(2)).is_empty());
    assert_eq!(lab.primary("0.0.0.0/0"), None);
    // A node serving nothing: no prefix to re-elect.
    assert!(lab.p.served(n(42)).is_empty());
    assert_eq!(lab.presence(42, true), ids(&[]));
}

mod writer;
