//! Headscale's rows (`read`) → clawscale's model (`db::ImportSet`). Ids are
//! kept. What cannot be carried is skipped with its reason; what is carried
//! with a change (a renamed duplicate, a revoked key turned expired) is
//! noted. Nothing here touches a database.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::read::{HsApiKey, HsData, HsNode, HsPreAuthKey, HsUser};
use super::summary::Report;
use crate::admin::TAGGED_OWNER;
use crate::db::ImportSet;
use crate::policy::{Claimant, Policy};
use crate::types::secret::{is_base64_url, is_bcrypt};
use crate::types::{
    ApiKey, DiscoPublic, DnsLabel, KeyHash, MachinePublic, Node, NodeId, NodePublic, OidcIdentity,
    PreAuthKey, PreAuthKeyId, Scope, User, UserId,
};

/// Maps everything; `policy` (already parsed) decides which of a pre-0.28
/// node's requested tags it keeps, as Headscale 0.28's own migration does.
pub(super) fn map(
    hs: &HsData,
    policy: Option<&Policy>,
    now: DateTime<Utc>,
    report: &mut Report,
) -> ImportSet {
    let mut m = Mapper {
        now,
        report,
        users: BTreeMap::new(),
        set: ImportSet::default(),
        tagged_owner: None,
    };
    for u in &hs.users {
        m.user(u);
    }
    let key_ephemeral: BTreeMap<i64, bool> = hs
        .preauth_keys
        .iter()
        .map(|k| (k.id, k.ephemeral))
        .collect();
    let mut prefixes = HashSet::new();
    for k in &hs.preauth_keys {
        let Some(key) = m.preauth_key(k) else {
            continue;
        };
        if !prefixes.insert(key.prefix.clone()) {
            m.report.skip(
                format!("pre-auth key {}", k.id),
                "its prefix collides with another key's",
            );
            continue;
        }
        m.set.preauth_keys.push(key);
    }
    let mut taken = Taken::default();
    for n in &hs.nodes {
        let ephemeral = n
            .auth_key_id
            .and_then(|id| key_ephemeral.get(&id))
            .copied()
            .unwrap_or(false);
        if let Some(node) = m.node(n, hs.legacy_tags, policy, ephemeral, &mut taken) {
            m.set.nodes.push(node);
        }
    }
    for k in &hs.api_keys {
        if let Some(key) = m.api_key(k) {
            m.set.api_keys.push(key);
        }
    }
    if hs.oauth_clients > 0 {
        m.report.skip(
            format!("{} OAuth client(s)", hs.oauth_clients),
            "Headscale's API v2 credentials are not carried; create new ones with \
             `clawscale oauth-clients create`",
        );
    }
    m.set
}

struct Mapper<'a> {
    now: DateTime<Utc>,
    report: &'a mut Report,
    /// Headscale user id → the user as imported.
    users: BTreeMap<i64, User>,
    set: ImportSet,
    /// The owner of user-less tagged keys and nodes, once needed.
    tagged_owner: Option<UserId>,
}

/// Names, keys and addresses already given to an imported node.
#[derive(Default)]
struct Taken {
    names: HashSet<String>,
    keys: HashSet<String>,
    ips: HashSet<String>,
}

impl Mapper<'_> {
    fn user(&mut self, u: &HsUser) {
        let label = format!("user {} ({})", u.id, u.name);
        if u.deleted {
            return self.report.skip(label, "deleted in Headscale");
        }
        if u.name.trim().is_empty() {
            return self.report.skip(label, "it has no name");
        }
        let mut name = u.name.clone();
        if self.set.users.iter().any(|x| x.name == name) {
            // Headscale lets an OIDC user share a local user's name.
            name = format!("{}-{}", u.name, u.id);
            self.report
                .note(format!("{label}: renamed to {name:?} (name taken)"));
        }
        let oidc = match (&u.provider_identifier, u.provider.as_str()) {
            (Some(id), "oidc") => match split_provider_identifier(id) {
                Some(identity) => Some(identity),
                None => {
                    self.report.note(format!(
                        "{label}: OIDC identifier {id:?} names no issuer; imported as a local user"
                    ));
                    None
                }
            },
            _ => None,
        };
        let user = User {
            id: UserId(u.id),
            name,
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            created_at: u.created_at.unwrap_or(self.now),
            oidc,
            profile_pic_url: u.profile_pic_url.clone(),
            groups: vec![],
        };
        self.users.insert(u.id, user.clone());
        self.set.users.push(user);
    }

    /// The `tagged-devices` user that owns what Headscale ≥ 0.28 keeps
    /// without a user (as clawscale's own API does).
    fn tagged_owner(&mut self) -> UserId {
        if let Some(id) = self.tagged_owner {
            return id;
        }
        let id = match self.set.users.iter().find(|u| u.name == TAGGED_OWNER) {
            Some(u) => u.id,
            None => {
                let next = self.set.users.iter().map(|u| u.id.0).max().unwrap_or(0) + 1;
                self.set.users.push(User {
                    id: UserId(next),
                    name: TAGGED_OWNER.into(),
                    display_name: "Tagged Devices".into(),
                    email: String::new(),
                    created_at: self.now,
                    oidc: None,
                    profile_pic_url: String::new(),
                    groups: vec![],
                });
                self.report.note(format!(
                    "created user {TAGGED_OWNER:?} (id {next}) to own the user-less tagged keys \
                     and nodes"
                ));
                UserId(next)
            }
        };
        self.tagged_owner = Some(id);
        id
    }

    /// The owner of a key or node: its user, or for a tagged one without
    /// a user the tagged owner; `Err(reason)` when neither.
    fn owner(&mut self, user_id: Option<i64>, tags: &[String]) -> Result<UserId, &'static str> {
        match user_id {
            Some(u) if self.users.contains_key(&u) => Ok(UserId(u)),
            Some(_) if !tags.is_empty() => Ok(self.tagged_owner()),
            Some(_) => Err("its user was not carried"),
            None if !tags.is_empty() => Ok(self.tagged_owner()),
            None => Err("it has neither a user nor tags"),
        }
    }

    fn preauth_key(&mut self, k: &HsPreAuthKey) -> Option<PreAuthKey> {
        let label = format!("pre-auth key {}", k.id);
        let stored = match (&k.prefix, &k.hash, &k.key) {
            (Some(prefix), Some(hash), _) => {
                if !is_bcrypt(hash) {
                    self.report
                        .skip(label, "its hash is of an unknown kind (not bcrypt)");
                    return None;
                }
                if prefix.len() != 12 || !is_base64_url(prefix) {
                    self.report.skip(label, "its prefix is not Headscale's");
                    return None;
                }
                (prefix.clone(), KeyHash::Bcrypt(hash.clone()))
            }
            (_, _, Some(key)) => {
                let Some((prefix, secret)) = crate::types::preauth_key::split_legacy_headscale(key)
                else {
                    self.report
                        .skip(label, "its clear-text key is not 48 hex digits");
                    return None;
                };
                let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
                (prefix, KeyHash::Sha256(digest))
            }
            _ => {
                self.report.skip(label, "it has neither a key nor a hash");
                return None;
            }
        };
        let tags = match tag_list(&k.tags) {
            Ok(t) => t,
            Err(bad) => {
                self.report
                    .skip(label, format!("tag {bad:?} does not start with \"tag:\""));
                return None;
            }
        };
        let user_id = match self.owner(k.user_id, &tags) {
            Ok(u) => u,
            Err(reason) => {
                self.report.skip(label, reason);
                return None;
            }
        };
        let expiration = match (k.expiration, k.revoked) {
            (e, Some(r)) => {
                self.report
                    .note(format!("{label}: revoked, imported as expired"));
                Some(e.map_or(r, |e| e.min(r)))
            }
            (e, None) => e,
        };
        Some(PreAuthKey {
            id: PreAuthKeyId(k.id),
            prefix: stored.0,
            hash: stored.1,
            user_id,
            reusable: k.reusable,
            ephemeral: k.ephemeral,
            used: k.used,
            tags,
            expiration,
            created_at: k.created_at.unwrap_or(self.now),
            description: k.description.clone(),
            preauthorized: false,
        })
    }

    fn api_key(&mut self, k: &HsApiKey) -> Option<ApiKey> {
        let label = format!("API key {} ({})", k.id, k.prefix);
        if !is_bcrypt(&k.hash) {
            self.report
                .skip(label, "its hash is of an unknown kind (not bcrypt)");
            return None;
        }
        if !matches!(k.prefix.len(), 7 | 12) || !is_base64_url(&k.prefix) {
            self.report.skip(label, "its prefix is not Headscale's");
            return None;
        }
        Some(ApiKey {
            id: k.id,
            prefix: k.prefix.clone(),
            hash: KeyHash::Bcrypt(k.hash.clone()),
            // Headscale's keys may do everything.
            scope: Scope::Admin,
            expiration: k.expiration,
            last_seen: k.last_seen,
            created_at: k.created_at.unwrap_or(self.now),
        })
    }

    fn node(
        &mut self,
        n: &HsNode,
        legacy_tags: bool,
        policy: Option<&Policy>,
        ephemeral: bool,
        taken: &mut Taken,
    ) -> Option<Node> {
        let shown = if n.given_name.is_empty() {
            &n.hostname
        } else {
            &n.given_name
        };
        let label = format!("node {} ({shown})", n.id);
        match self.node_checked(n, legacy_tags, policy, ephemeral, taken, &label) {
            Ok(node) => Some(node),
            Err(reason) => {
                self.report.skip(label, reason);
                None
            }
        }
    }

    fn node_checked(
        &mut self,
        n: &HsNode,
        legacy_tags: bool,
        policy: Option<&Policy>,
        ephemeral: bool,
        taken: &mut Taken,
        label: &str,
    ) -> Result<Node, String> {
        let machine_key: MachinePublic = n
            .machine_key
            .parse()
            .map_err(|e| format!("machine key: {e}"))?;
        let node_key: NodePublic = n.node_key.parse().map_err(|e| format!("node key: {e}"))?;
        let disco_key: DiscoPublic = n.disco_key.parse().unwrap_or_default();
        let ipv4 = n
            .ipv4
            .as_deref()
            .map(|a| {
                a.parse::<Ipv4Addr>()
                    .map_err(|_| format!("IPv4 {a:?} does not parse"))
            })
            .transpose()?;
        let ipv6 = n
            .ipv6
            .as_deref()
            .map(|a| {
                a.parse::<Ipv6Addr>()
                    .map_err(|_| format!("IPv6 {a:?} does not parse"))
            })
            .transpose()?;
        if ipv4.is_none() && ipv6.is_none() {
            return Err("it has no IPv4 or IPv6 address".into());
        }
        let given = if n.given_name.is_empty() {
            &n.hostname
        } else {
            &n.given_name
        };
        let mut given_name = DnsLabel::parse(given)
            .map_err(|e| format!("name {given:?} is not a DNS label: {e}"))?;
        if taken.names.contains(given_name.as_str()) {
            let renamed = format!("{}-{}", given_name.as_str(), n.id);
            given_name = DnsLabel::parse(&renamed).map_err(|e| format!("name {renamed:?}: {e}"))?;
            self.report
                .note(format!("{label}: renamed to {renamed:?} (name taken)"));
        }
        for k in [machine_key.to_string(), node_key.to_string()] {
            if !taken.keys.insert(k) {
                return Err("its machine or node key is another node's".into());
            }
        }
        for ip in ipv4
            .map(|a| a.to_string())
            .into_iter()
            .chain(ipv6.map(|a| a.to_string()))
        {
            if !taken.ips.insert(ip.clone()) {
                return Err(format!("address {ip} is another node's"));
            }
        }
        taken.names.insert(given_name.as_str().to_string());
        let mut tags = tag_list(&n.tags).map_err(|bad| format!("tag {bad:?} is not a tag"))?;
        let user = match n.user_id {
            Some(u) => self.users.get(&u).cloned(),
            None => None,
        };
        if legacy_tags {
            tags = self.requested_tags(n, user.as_ref(), policy, tags, label);
        }
        let user_id = self.owner(n.user_id, &tags).map_err(str::to_string)?;
        let mut hostinfo = match &n.hostinfo {
            Value::Object(_) => n.hostinfo.clone(),
            _ => json!({}),
        };
        merge_announced(&mut hostinfo, &n.announced_routes);
        let home_derp = hostinfo
            .pointer("/NetInfo/PreferredDERP")
            .and_then(Value::as_i64)
            .unwrap_or(0) as i32;
        let mut approved_routes = Vec::new();
        for r in &n.approved_routes {
            match r.parse::<IpNet>() {
                Ok(net) => approved_routes.push(net.trunc()),
                Err(_) => self.report.note(format!(
                    "{label}: approved route {r:?} does not parse, dropped"
                )),
            }
        }
        approved_routes.sort();
        approved_routes.dedup();
        let auth_key_id = n
            .auth_key_id
            .filter(|id| self.set.preauth_keys.iter().any(|k| k.id.0 == *id))
            .map(PreAuthKeyId);
        Ok(Node {
            id: NodeId(n.id),
            machine_key,
            node_key,
            disco_key,
            hostname: if n.hostname.is_empty() {
                given.clone()
            } else {
                n.hostname.clone()
            },
            given_name,
            user_id,
            tags,
            ipv4,
            ipv6,
            approved_routes,
            endpoints: n.endpoints.clone(),
            home_derp,
            hostinfo: hostinfo.into(),
            expiry: n.expiry,
            ephemeral,
            auth_key_id,
            cap_version: 0,
            created_at: n.created_at.unwrap_or(self.now),
            last_seen: n.last_seen,
            authorized: true,
        })
    }

    /// Before 0.28, tags a client asked for (`--advertise-tags`) lived only
    /// in `host_info.RequestTags` and were checked against `tagOwners` at
    /// run time; they join the node's tags when the policy lets its user
    /// own them (Headscale 0.28's migration 202601121700 does the same).
    fn requested_tags(
        &mut self,
        n: &HsNode,
        user: Option<&User>,
        policy: Option<&Policy>,
        mut tags: Vec<String>,
        label: &str,
    ) -> Vec<String> {
        let requested: Vec<String> = n
            .hostinfo
            .get("RequestTags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if requested.is_empty() {
            return tags;
        }
        let (Some(policy), Some(user)) = (policy, user) else {
            self.report.note(format!(
                "{label}: requested tags {requested:?} not carried (no policy to check them \
                 against); the client asks again when it next logs in"
            ));
            return tags;
        };
        let claimant = Claimant::User {
            login: user.login_name(),
        };
        for t in requested {
            if tags.contains(&t) {
                continue;
            }
            if policy
                .check_tags(&claimant, std::slice::from_ref(&t))
                .is_ok()
            {
                tags.push(t);
            } else {
                self.report.note(format!(
                    "{label}: requested tag {t:?} not carried (the policy does not let its user \
                     own it)"
                ));
            }
        }
        tags.sort();
        tags.dedup();
        tags
    }
}

/// Headscale's `provider_identifier` is `<issuer>/<subject>` with the
/// issuer's trailing `/` removed (`types.OIDCClaims.Identifier`): split at
/// the last `/`, since subjects are opaque ids without one in practice.
fn split_provider_identifier(id: &str) -> Option<OidcIdentity> {
    let (issuer, subject) = id.rsplit_once('/')?;
    let scheme_only = issuer.ends_with(':') || issuer.ends_with(":/");
    (!issuer.is_empty() && !subject.is_empty() && !scheme_only).then(|| OidcIdentity {
        issuer: issuer.to_string(),
        subject: subject.to_string(),
    })
}

/// Sorted, deduplicated `tag:` names; `Err` names the first that is not one.
fn tag_list(tags: &[String]) -> Result<Vec<String>, String> {
    let set: BTreeSet<String> = tags.iter().map(|t| t.trim().to_string()).collect();
    if let Some(bad) = set.iter().find(|t| !t.starts_with("tag:") || t.len() <= 4) {
        return Err(bad.clone());
    }
    Ok(set.into_iter().collect())
}

/// Routes the routes table says a node announced (before 0.26) but its
/// stored hostinfo lacks: added to `RoutableIPs`, so approved routes are
/// served before the client's next hostinfo arrives.
fn merge_announced(hostinfo: &mut Value, announced: &[String]) {
    if announced.is_empty() {
        return;
    }
    let Some(obj) = hostinfo.as_object_mut() else {
        return;
    };
    let list = obj
        .entry("RoutableIPs")
        .or_insert_with(|| Value::Array(vec![]));
    if !list.is_array() {
        *list = Value::Array(vec![]);
    }
    let Some(arr) = list.as_array_mut() else {
        return;
    };
    for r in announced {
        if !arr.iter().any(|v| v.as_str() == Some(r)) {
            arr.push(Value::String(r.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_identifiers_split_at_the_last_slash() {
        let id = split_provider_identifier("https://sso.example.com/realms/corp/0c9f-11").unwrap();
        assert_eq!(id.issuer, "https://sso.example.com/realms/corp");
        assert_eq!(id.subject, "0c9f-11");
        assert!(split_provider_identifier("local-only").is_none());
        assert!(split_provider_identifier("https://").is_none());
    }

    #[test]
    fn tags_are_sorted_and_checked() {
        let t = vec!["tag:b".to_string(), "tag:a".into(), "tag:b".into()];
        assert_eq!(tag_list(&t).unwrap(), vec!["tag:a", "tag:b"]);
        assert_eq!(tag_list(&["server".into()]), Err("server".to_string()));
    }

    #[test]
    fn announced_routes_join_routable_ips_once() {
        let mut h = json!({"RoutableIPs": ["10.0.0.0/24"]});
        merge_announced(&mut h, &["10.0.0.0/24".into(), "0.0.0.0/0".into()]);
        assert_eq!(h["RoutableIPs"], json!(["10.0.0.0/24", "0.0.0.0/0"]));
        let mut empty = json!({});
        merge_announced(&mut empty, &["192.168.1.0/24".into()]);
        assert_eq!(empty["RoutableIPs"], json!(["192.168.1.0/24"]));
    }
}
