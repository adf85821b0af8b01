//! `tailcfg.Node` as sent to clients (self and peers).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;

use super::{is_false, is_zero_i32, is_zero_i64};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: i64,
    #[serde(rename = "StableID")]
    pub stable_id: String,
    /// FQDN with trailing dot.
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "User")]
    pub user: i64,
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "KeyExpiry", skip_serializing_if = "Option::is_none")]
    pub key_expiry: Option<DateTime<Utc>>,
    #[serde(rename = "Machine", skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// Omitted (never `""`) while the node has not reported one.
    #[serde(rename = "DiscoKey", skip_serializing_if = "Option::is_none")]
    pub disco_key: Option<String>,
    #[serde(rename = "Addresses")]
    pub addresses: Vec<String>,
    /// `None` ⇒ same as `Addresses` (capver ≥ 112); `Some(vec![])` would mean
    /// "route nothing", so it is only sent deliberately.
    #[serde(rename = "AllowedIPs", skip_serializing_if = "Option::is_none")]
    pub allowed_ips: Option<Vec<String>>,
    #[serde(rename = "Endpoints", skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    #[serde(rename = "HomeDERP", skip_serializing_if = "is_zero_i32")]
    pub home_derp: i32,
    /// Pre-capver-111 clients (1.78 is 109) read the home region from this
    /// legacy string when `HomeDERP` is unknown to them.
    #[serde(rename = "DERP", skip_serializing_if = "String::is_empty")]
    pub legacy_derp: String,
    #[serde(rename = "Hostinfo", skip_serializing_if = "Option::is_none")]
    pub hostinfo: Option<Arc<serde_json::Value>>,
    #[serde(rename = "Created", skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    #[serde(rename = "Cap", skip_serializing_if = "is_zero_i32")]
    pub cap: i32,
    #[serde(rename = "Tags", skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(rename = "PrimaryRoutes", skip_serializing_if = "Vec::is_empty")]
    pub primary_routes: Vec<String>,
    #[serde(rename = "LastSeen", skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<DateTime<Utc>>,
    #[serde(rename = "Online", skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    #[serde(rename = "MachineAuthorized", skip_serializing_if = "is_false")]
    pub machine_authorized: bool,
    #[serde(rename = "CapMap", skip_serializing_if = "BTreeMap::is_empty")]
    pub cap_map: BTreeMap<String, Vec<serde_json::Value>>,
    #[serde(rename = "Expired", skip_serializing_if = "is_false")]
    pub expired: bool,
    #[serde(rename = "Sharer", skip_serializing_if = "is_zero_i64")]
    pub sharer: i64,
}

/// A peer as sent: its JSON, serialised once. The mapper shares one
/// `Peer` between every map and delta that lists the node unchanged
/// (`mapper::build::wire`), so a join fanned out to a thousand streams is
/// rendered once, not a thousand times. Only the JSON is kept (the node is
/// dropped once rendered): the render cache holds thousands of these, and
/// nothing outside the unit tests reads a sent peer's fields.
#[derive(Clone)]
pub struct Peer(Arc<PeerWire>);

struct PeerWire {
    json: Box<RawValue>,
    #[cfg(test)]
    node: Node,
}

impl Peer {
    pub fn new(node: Node) -> Peer {
        // Every field is a string, number, bool, list, string-keyed map
        // or JSON value: serialising cannot fail.
        let json = serde_json::value::to_raw_value(&node).expect("a Node always serialises");
        Peer(Arc::new(PeerWire {
            json,
            #[cfg(test)]
            node,
        }))
    }

    /// The same allocation (a shared render), not just equal content.
    pub fn ptr_eq(&self, other: &Peer) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The JSON as sent.
    pub fn json(&self) -> &str {
        self.0.json.get()
    }
}

/// Tests read what a map says about a peer field by field.
#[cfg(test)]
impl std::ops::Deref for Peer {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.0.node
    }
}

/// Equal JSON is an equal node: every map in a `Node` is ordered, so one
/// node always serialises to the same text.
impl PartialEq for Peer {
    fn eq(&self, other: &Peer) -> bool {
        self.json() == other.json()
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.json())
    }
}

impl Serialize for Peer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.json.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Peers compare by what is sent; a render is its node's own JSON.
    #[test]
    fn a_peer_is_its_json() {
        let node = |name: &str| Node {
            id: 7,
            name: name.into(),
            ..Node::default()
        };
        let a = Peer::new(node("a.example.ts.net."));
        assert_eq!(a, Peer::new(node("a.example.ts.net.")));
        assert!(!a.ptr_eq(&Peer::new(node("a.example.ts.net."))));
        assert_ne!(a, Peer::new(node("b.example.ts.net.")));
        assert_eq!(
            a.json(),
            serde_json::to_string(&node("a.example.ts.net.")).unwrap()
        );
        assert_eq!(serde_json::to_string(&a).unwrap(), a.json());
        assert_eq!(format!("{a:?}"), a.json());
    }
}
