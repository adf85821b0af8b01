//! Domain ↔ headscale.v1 protobuf conversions. Pure functions over what
//! the operations return.
//!
//! Field semantics follow Headscale v0.29.2 (`types.Node.Proto`,
//! `types.PreAuthKey.Proto`): `Node.name` is the client's hostname and
//! `given_name` the MagicDNS name; a tagged node is shown as owned by the
//! special "tagged-devices" user (tags are its identity); a pre-auth key in a
//! listing shows only its public prefix.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

use super::proto;
use crate::admin::{Error, NodeInfo, PreAuthKeyInfo};
use crate::mapper::build::TAGGED_DEVICES_USER_ID;
use crate::types::{ApiKey, NodeId, PreAuthKeyId, User, UserId};

/// Text form of a pre-auth key in listings: the public prefix only. Same
/// shape as `types::preauth_key`'s text form with the secret replaced.
pub(super) fn masked_key(prefix: &str) -> String {
    format!("cskey-auth-{prefix}-***")
}

pub(super) fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        // Always < 2e9, so it fits; a leap second's nanos are clamped.
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(999_999_999),
    }
}

/// A client-supplied timestamp; rejects out-of-range values instead of
/// wrapping them.
pub(super) fn from_timestamp(ts: &Timestamp) -> Result<DateTime<Utc>, Error> {
    u32::try_from(ts.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .and_then(|nanos| DateTime::from_timestamp(ts.seconds, nanos))
        .ok_or_else(|| Error::InvalidArgument("timestamp out of range".into()))
}

fn id_from_wire(id: u64, what: &str) -> Result<i64, Error> {
    // Ids are positive i64 in the database; anything larger cannot exist.
    i64::try_from(id).map_err(|_| Error::NotFound(format!("{what} not found")))
}

pub(super) fn user_id(id: u64) -> Result<UserId, Error> {
    id_from_wire(id, "user").map(UserId)
}

pub(super) fn node_id(id: u64) -> Result<NodeId, Error> {
    id_from_wire(id, "node").map(NodeId)
}

pub(super) fn key_id(id: u64) -> Result<PreAuthKeyId, Error> {
    id_from_wire(id, "pre-auth key").map(PreAuthKeyId)
}

pub(super) fn api_key(k: &ApiKey) -> proto::ApiKey {
    proto::ApiKey {
        id: id_to_wire(k.id),
        prefix: k.prefix.clone(),
        expiration: k.expiration.map(timestamp),
        created_at: Some(timestamp(k.created_at)),
        last_seen: k.last_seen.map(timestamp),
        scope: k.scope.to_string(),
    }
}

fn id_to_wire(id: i64) -> u64 {
    u64::try_from(id).unwrap_or(0)
}

pub(super) fn user(u: &User) -> proto::User {
    proto::User {
        id: id_to_wire(u.id.0),
        name: u.name.clone(),
        created_at: Some(timestamp(u.created_at)),
        display_name: u.display_name.clone(),
        email: u.email.clone(),
        provider_id: u.provider_id(),
        provider: u.provider().into(),
        profile_pic_url: u.profile_pic_url.clone(),
    }
}

/// The pseudo-user tagged nodes are shown under (same id and name as in the
/// map responses, `mapper::build`).
pub(super) fn tagged_devices_user() -> proto::User {
    proto::User {
        id: id_to_wire(TAGGED_DEVICES_USER_ID),
        name: "tagged-devices".into(),
        display_name: "Tagged Devices".into(),
        ..Default::default()
    }
}

/// A pre-auth key; `key` is the full secret right after creation and the
/// masked form everywhere else.
pub(super) fn preauth_key(i: &PreAuthKeyInfo, key: String) -> proto::PreAuthKey {
    let k = &i.key;
    proto::PreAuthKey {
        user: i.owner.as_deref().map(user),
        id: id_to_wire(k.id.0),
        key,
        reusable: k.reusable,
        ephemeral: k.ephemeral,
        used: k.used,
        expiration: k.expiration.map(timestamp),
        created_at: Some(timestamp(k.created_at)),
        acl_tags: k.tags.clone(),
    }
}

/// A node as the admin API shows it.
pub(super) fn node(i: &NodeInfo) -> proto::Node {
    let n = &i.node;
    let owner = i.owner.as_deref().map(user);
    let pre_auth_key = match (&i.auth_key, n.auth_key_id) {
        (Some(k), _) => Some(preauth_key(
            &PreAuthKeyInfo {
                key: k.clone(),
                owner: i.owner.clone(),
            },
            masked_key(&k.prefix),
        )),
        // The key was deleted since: what the node itself records.
        (None, Some(id)) => Some(proto::PreAuthKey {
            id: id_to_wire(id.0),
            user: owner.clone(),
            ephemeral: n.ephemeral,
            ..Default::default()
        }),
        (None, None) => None,
    };
    let shown_user = if n.is_tagged() {
        Some(tagged_devices_user())
    } else {
        owner
    };
    proto::Node {
        id: id_to_wire(n.id.0),
        machine_key: n.machine_key.to_string(),
        node_key: n.node_key.to_string(),
        disco_key: n.disco_key.to_string(),
        ip_addresses: n.addresses().iter().map(ToString::to_string).collect(),
        name: n.hostname.clone(),
        user: shown_user,
        last_seen: n.last_seen.map(timestamp),
        expiry: n.expiry.map(timestamp),
        pre_auth_key,
        created_at: Some(timestamp(n.created_at)),
        register_method: if n.auth_key_id.is_some() {
            proto::RegisterMethod::AuthKey
        } else {
            proto::RegisterMethod::Cli
        } as i32,
        given_name: n.given_name.to_string(),
        online: i.online,
        approved_routes: n.approved_routes.iter().map(ToString::to_string).collect(),
        available_routes: n.routable_ips().iter().map(ToString::to_string).collect(),
        subnet_routes: n.served_routes().iter().map(ToString::to_string).collect(),
        tags: n.tags.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use chrono::TimeZone;

    use std::sync::Arc;

    use super::*;
    use crate::types::{DiscoPublic, DnsLabel, MachinePublic, Node, NodePublic, PreAuthKey};

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().expect("valid")
    }

    fn alice() -> User {
        User {
            id: UserId(7),
            name: "alice".into(),
            display_name: "Alice A.".into(),
            email: "alice@example.com".into(),
            created_at: at(1_700_000_000),
            oidc: None,
            profile_pic_url: String::new(),
            groups: vec![],
        }
    }

    fn sample_node(tags: Vec<String>) -> Node {
        Node {
            id: NodeId(3),
            machine_key: MachinePublic([1; 32]),
            node_key: NodePublic([2; 32]),
            disco_key: DiscoPublic([3; 32]),
            hostname: "Alice's Laptop".into(),
            given_name: DnsLabel::parse("alices-laptop").expect("valid label"),
            user_id: UserId(7),
            tags,
            ipv4: Some(Ipv4Addr::new(100, 64, 0, 1)),
            ipv6: Some("fd7a:115c:a1e0::1".parse::<Ipv6Addr>().expect("valid")),
            endpoints: vec![],
            home_derp: 0,
            hostinfo: serde_json::json!({}).into(),
            expiry: Some(at(1_800_000_000)),
            ephemeral: true,
            auth_key_id: Some(PreAuthKeyId(11)),
            cap_version: 100,
            created_at: at(1_700_000_100),
            last_seen: None,
            approved_routes: vec![],
            authorized: true,
        }
    }

    fn info(node: Node) -> NodeInfo {
        NodeInfo {
            node: Arc::new(node),
            owner: Some(Arc::new(alice())),
            online: false,
            auth_key: None,
            certificates: vec![],
        }
    }

    fn info_with_key(node: Node, key: Option<PreAuthKey>) -> NodeInfo {
        NodeInfo {
            auth_key: key,
            ..info(node)
        }
    }

    #[test]
    fn user_fields() {
        let p = user(&alice());
        assert_eq!(p.id, 7);
        assert_eq!(p.name, "alice");
        assert_eq!(p.display_name, "Alice A.");
        assert_eq!(p.email, "alice@example.com");
        assert_eq!(p.created_at.map(|t| t.seconds), Some(1_700_000_000));
    }

    /// The key `sample_node` enrolled with.
    fn sample_key() -> PreAuthKey {
        PreAuthKey {
            id: PreAuthKeyId(11),
            prefix: "0123456789ab".into(),
            hash: [9; 32].into(),
            user_id: UserId(7),
            reusable: false,
            ephemeral: true,
            used: true,
            tags: vec!["tag:a".into()],
            expiration: Some(at(1_750_000_000)),
            created_at: at(1_699_000_000),
            description: String::new(),
            preauthorized: false,
        }
    }

    #[test]
    fn node_fields_follow_headscale() {
        let n = sample_node(vec![]);
        let p = node(&info_with_key(n.clone(), Some(sample_key())));
        assert_eq!(p.id, 3);
        assert_eq!(p.machine_key, format!("mkey:{}", "01".repeat(32)));
        assert_eq!(p.node_key, format!("nodekey:{}", "02".repeat(32)));
        assert_eq!(p.disco_key, format!("discokey:{}", "03".repeat(32)));
        assert_eq!(p.ip_addresses, vec!["100.64.0.1", "fd7a:115c:a1e0::1"]);
        assert_eq!(p.name, "Alice's Laptop");
        assert_eq!(p.given_name, "alices-laptop");
        assert_eq!(p.user.as_ref().map(|u| u.name.as_str()), Some("alice"));
        assert_eq!(p.expiry.map(|t| t.seconds), Some(1_800_000_000));
        assert_eq!(p.last_seen, None);
        assert_eq!(p.register_method, proto::RegisterMethod::AuthKey as i32);
        assert!(!p.online, "nobody is connected");
        // The real key, in its listing form (issue 11: defaults were shown).
        let key = p.pre_auth_key.expect("enrolled with a key");
        assert_eq!(key.id, 11);
        assert_eq!(key.key, "cskey-auth-0123456789ab-***");
        assert!(key.ephemeral && key.used && !key.reusable);
        assert_eq!(key.expiration.map(|t| t.seconds), Some(1_750_000_000));
        assert_eq!(key.created_at.map(|t| t.seconds), Some(1_699_000_000));
        assert_eq!(key.acl_tags, vec!["tag:a"]);
        assert_eq!(key.user.map(|u| u.name), Some("alice".into()));
        assert!(p.tags.is_empty());
    }

    #[test]
    fn node_whose_key_is_gone_keeps_a_summary() {
        let n = sample_node(vec![]);
        let p = node(&info(n.clone())).pre_auth_key.expect("summary");
        assert_eq!(p.id, 11);
        assert!(p.ephemeral);
        assert!(p.key.is_empty(), "no key text without the key");
        let mut keyless = n.clone();
        keyless.auth_key_id = None;
        assert!(node(&info(keyless)).pre_auth_key.is_none());
    }

    #[test]
    fn tagged_node_is_shown_under_tagged_devices() {
        let n = sample_node(vec!["tag:web".into()]);
        let p = node(&info(n.clone()));
        let u = p.user.expect("user");
        assert_eq!(u.id, 2_147_455_555);
        assert_eq!(u.name, "tagged-devices");
        assert_eq!(p.tags, vec!["tag:web"]);
        // The enrolling user is still visible on the key summary.
        assert_eq!(p.pre_auth_key.and_then(|k| k.user).map(|u| u.id), Some(7));
    }

    #[test]
    fn preauth_key_listing_form_hides_the_secret() {
        let k = PreAuthKey {
            id: PreAuthKeyId(5),
            prefix: "0123456789ab".into(),
            hash: [9; 32].into(),
            user_id: UserId(7),
            reusable: true,
            ephemeral: false,
            used: true,
            tags: vec!["tag:a".into()],
            expiration: None,
            created_at: at(1_700_000_000),
            description: String::new(),
            preauthorized: false,
        };
        let i = PreAuthKeyInfo {
            key: k.clone(),
            owner: Some(Arc::new(alice())),
        };
        let p = preauth_key(&i, masked_key(&k.prefix));
        assert_eq!(p.key, "cskey-auth-0123456789ab-***");
        assert_eq!(p.id, 5);
        assert!(p.reusable && p.used && !p.ephemeral);
        assert_eq!(p.acl_tags, vec!["tag:a"]);
        assert_eq!(p.expiration, None);
        assert_eq!(p.user.map(|u| u.id), Some(7));
    }

    #[test]
    fn timestamps_round_trip_and_reject_garbage() {
        let t = Utc
            .timestamp_opt(1_700_000_000, 123_456_789)
            .single()
            .expect("valid");
        assert_eq!(from_timestamp(&timestamp(t)).expect("valid"), t);
        let bad_nanos = Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert!(matches!(
            from_timestamp(&bad_nanos),
            Err(Error::InvalidArgument(_))
        ));
        let too_far = Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert!(matches!(
            from_timestamp(&too_far),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn ids_beyond_i64_are_not_found() {
        assert_eq!(node_id(42).expect("fits"), NodeId(42));
        assert!(matches!(node_id(u64::MAX), Err(Error::NotFound(_))));
        assert!(matches!(user_id(1 << 63), Err(Error::NotFound(_))));
        assert!(matches!(key_id(u64::MAX), Err(Error::NotFound(_))));
    }
}
