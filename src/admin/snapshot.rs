//! The audit log's view of each object (`before`/`after`): what an operator
//! needs to see what changed, and never a secret (keys appear by their
//! public prefix, never by secret or hash).

use serde_json::{Value, json};

use crate::types::{ApiKey, Node, PreAuthKey, User};

pub fn user(u: &User) -> Value {
    json!({
        "id": u.id.0,
        "name": u.name,
        "display_name": u.display_name,
        "email": u.email,
    })
}

pub fn node(n: &Node) -> Value {
    json!({
        "id": n.id.0,
        "given_name": n.given_name.as_str(),
        "hostname": n.hostname,
        "user_id": n.user_id.0,
        "tags": n.tags,
        "ipv4": n.ipv4,
        "ipv6": n.ipv6,
        "machine_key": n.machine_key.to_string(),
        "node_key": n.node_key.to_string(),
        "expiry": n.expiry,
        "ephemeral": n.ephemeral,
        "approved_routes": n.approved_routes,
        "authorized": n.authorized,
    })
}

pub fn preauth_key(k: &PreAuthKey) -> Value {
    json!({
        "id": k.id.0,
        "prefix": k.prefix,
        "user_id": k.user_id.0,
        "reusable": k.reusable,
        "ephemeral": k.ephemeral,
        "used": k.used,
        "tags": k.tags,
        "expiration": k.expiration,
        "description": k.description,
        "preauthorized": k.preauthorized,
    })
}

pub fn api_key(k: &ApiKey) -> Value {
    json!({
        "id": k.id,
        "prefix": k.prefix,
        "scope": k.scope.as_str(),
        "expiration": k.expiration,
    })
}

pub fn policy(revision: Option<&str>) -> Value {
    json!({ "revision": revision })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::types::{ApiSecret, PreAuthKeyId, PreAuthSecret, Scope, UserId};

    #[test]
    fn key_views_hold_no_secret_or_hash() {
        let s = PreAuthSecret::generate();
        let k = PreAuthKey {
            id: PreAuthKeyId(1),
            prefix: s.prefix.clone(),
            hash: s.hash().into(),
            user_id: UserId(1),
            reusable: false,
            ephemeral: false,
            used: false,
            tags: vec![],
            expiration: None,
            created_at: Utc::now(),
            description: String::new(),
            preauthorized: false,
        };
        let text = preauth_key(&k).to_string();
        let secret_half = s.reveal().rsplit('-').next().unwrap().to_string();
        assert!(!text.contains(&secret_half), "{text}");
        assert!(!text.contains(&hex::encode(s.hash())), "{text}");
        assert!(text.contains(&s.prefix));

        let a = ApiSecret::generate();
        let k = ApiKey {
            id: 1,
            prefix: a.prefix.clone(),
            hash: a.hash().into(),
            scope: Scope::Admin,
            expiration: None,
            last_seen: None,
            created_at: Utc::now(),
        };
        let text = api_key(&k).to_string();
        let secret_half = a.reveal().rsplit('-').next().unwrap().to_string();
        assert!(!text.contains(&secret_half), "{text}");
        assert!(!text.contains(&hex::encode(a.hash())), "{text}");
    }
}
