//! The rows kept in the upgrade dumps (`migrations/upgrade-dumps/`), as the
//! current model must read them back after migrating, and the writer that
//! stores them into a database migrated only up to an older level. A column
//! a level does not have yet is not written; the fixture then holds the
//! value its later migration gives old rows (the column's default).

use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::{Db, DnsOverrides, on_pool};
use crate::types::{
    ApiKey, DiscoPublic, DnsLabel, MachinePublic, Node, NodeId, NodePublic, OAuthClient,
    OidcIdentity, PreAuthKey, PreAuthKeyId, Scope, ScopeSet, User, UserId,
};

/// What the current model lists after migrating a dump of `level`.
#[derive(Debug, PartialEq)]
pub(crate) struct Fixture {
    pub users: Vec<User>,
    pub keys: Vec<PreAuthKey>,
    pub nodes: Vec<Node>,
    pub api_keys: Vec<ApiKey>,
    pub policy: Option<String>,
    pub oauth_clients: Vec<OAuthClient>,
    pub dns: DnsOverrides,
}

/// The migration that introduced each table or column the fixture writes.
const POLICY_ROUTES: i64 = 2;
const API_KEY_SCOPE: i64 = 3;
const WRITE_PROBE: i64 = 4;
const API_V2: i64 = 6;
const LOGIN: i64 = 7;
const OIDC_USERS: i64 = 8;

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 5, day, hour, 7, 9)
        .single()
        .expect("valid time")
}

fn user(id: i64, name: &str, display: &str, email: &str, day: u32) -> User {
    User {
        id: UserId(id),
        name: name.into(),
        display_name: display.into(),
        email: email.into(),
        created_at: at(day, 9),
        oidc: None,
        profile_pic_url: String::new(),
        groups: vec![],
    }
}

fn key(id: i64, user: i64, level: i64) -> PreAuthKey {
    PreAuthKey {
        id: PreAuthKeyId(id),
        prefix: format!("upgr{id:04}"),
        hash: [0x40 + id as u8; 32].into(),
        user_id: UserId(user),
        reusable: id == 1,
        ephemeral: id == 2,
        used: id == 2,
        tags: if id == 1 {
            vec!["tag:ci".into()]
        } else {
            vec![]
        },
        expiration: (id == 1).then(|| at(30, 0)),
        created_at: at(2, 10 + id as u32),
        description: if level >= API_V2 && id == 1 {
            "CI runners".into()
        } else {
            String::new()
        },
        preauthorized: level >= API_V2 && id == 1,
    }
}

fn node(id: i64, user: i64, level: i64) -> Node {
    let i = id as u8;
    let routes: Vec<ipnet::IpNet> = if id == 1 {
        vec!["10.20.0.0/16".parse().expect("route")]
    } else {
        vec![]
    };
    Node {
        id: NodeId(id),
        machine_key: MachinePublic([0x10 + i; 32]),
        node_key: NodePublic([0x20 + i; 32]),
        disco_key: if id == 3 {
            DiscoPublic::default()
        } else {
            DiscoPublic([0x30 + i; 32])
        },
        hostname: format!("Host-{id}.local"),
        given_name: DnsLabel::parse(&format!("host-{id}")).expect("label"),
        user_id: UserId(user),
        tags: if id == 2 {
            vec!["tag:server".into()]
        } else {
            vec![]
        },
        ipv4: Some(Ipv4Addr::new(100, 64, 0, i)),
        ipv6: (id != 3).then(|| Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, u16::from(i))),
        approved_routes: if level >= POLICY_ROUTES {
            routes.clone()
        } else {
            vec![]
        },
        endpoints: vec![format!("192.0.2.{i}:41641"), "[2001:db8::1]:41641".into()],
        home_derp: 900 + i as i32,
        hostinfo: json!({
            "IPNVersion": "1.78.1",
            "OS": "linux",
            "Hostname": format!("Host-{id}.local"),
            "RoutableIPs": routes.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            "Services": [{"Proto": "tcp", "Port": 22}],
        })
        .into(),
        expiry: (id == 1).then(|| at(28, 12)),
        ephemeral: id == 3,
        auth_key_id: (id != 3).then_some(PreAuthKeyId(1)),
        cap_version: 106,
        created_at: at(3, 8 + id as u32),
        last_seen: (id != 2).then(|| at(4, id as u32)),
        authorized: !(level >= LOGIN && id == 3),
    }
}

fn api_key(id: i64, level: i64) -> ApiKey {
    ApiKey {
        id,
        prefix: format!("apik{id:04}"),
        hash: [0x60 + id as u8; 32].into(),
        scope: if level >= API_KEY_SCOPE && id == 2 {
            Scope::Whois
        } else {
            Scope::Admin
        },
        expiration: (id == 2).then(|| at(31, 0)),
        last_seen: (id == 1).then(|| at(5, 5)),
        created_at: at(1, 6 + id as u32),
    }
}

const POLICY_OLD: &str = r#"{"acls": []}"#;
const POLICY: &str = r#"{
  // the policy as an operator wrote it, comments and all
  "groups": {"group:ops": ["alice@"]},
  "tagOwners": {"tag:server": ["group:ops"], "tag:ci": ["group:ops"]},
  "acls": [{"action": "accept", "src": ["group:ops"], "dst": ["*:*"]}],
  "autoApprovers": {"routes": {"10.20.0.0/16": ["alice@"]}},
}"#;

/// The rows a dump of `level` holds. User 3 was deleted before the dump, so
/// ids continue after the gap.
pub(crate) fn fixture(level: i64) -> Fixture {
    let mut alice = user(1, "alice", "Alice Liddell", "alice@example.com", 1);
    if level >= OIDC_USERS {
        // A user who logs in through an identity provider.
        alice.oidc = Some(OidcIdentity {
            issuer: "https://sso.example.com/realms/corp".into(),
            subject: "3f2a9c1e-alice".into(),
        });
        alice.profile_pic_url = "https://sso.example.com/avatars/alice.png".into();
        alice.groups = vec!["ops".into(), "mcp-admins".into()];
    }
    Fixture {
        users: vec![
            alice,
            user(2, "bob", "", "", 1),
            user(4, "dave", "Dave", "dave@example.org", 2),
        ],
        keys: vec![key(1, 1, level), key(2, 2, level)],
        nodes: vec![node(1, 1, level), node(2, 4, level), node(3, 2, level)],
        api_keys: vec![api_key(1, level), api_key(2, level)],
        policy: (level >= POLICY_ROUTES).then(|| POLICY.to_string()),
        oauth_clients: if level >= API_V2 {
            vec![OAuthClient {
                id: 1,
                client_id: "kUPGRADE1CNTRL".into(),
                hash: [0x77; 32],
                scopes: ScopeSet::parse(["devices:core", "auth_keys"]).expect("scopes"),
                tags: vec!["tag:ci".into()],
                description: "provisioning".into(),
                created_at: at(6, 6),
            }]
        } else {
            vec![]
        },
        dns: if level >= API_V2 {
            DnsOverrides {
                nameservers: Some(vec!["1.1.1.1".into(), "2606:4700:4700::1111".into()]),
                search_paths: None,
                magic_dns: Some(false),
            }
        } else {
            DnsOverrides::default()
        },
    }
}

/// Writes `fixture(level)` into `db`, migrated exactly to `level`, with the
/// columns that level has.
pub(crate) async fn seed(db: &Db, level: i64) {
    let f = fixture(level);
    let text = |v: &[String]| serde_json::to_string(v).expect("json");
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await.expect("begin");
        // Ids come from each table's sequence, as in a running server.
        let carol = user(3, "carol", "", "", 2);
        let users = [&f.users[0], &f.users[1], &carol, &f.users[2]];
        for u in users {
            let oidc = level >= OIDC_USERS;
            let sql = format!(
                "INSERT INTO users (name, display_name, email, created_at{}) \
                 VALUES ($1, $2, $3, $4{})",
                if oidc {
                    ", oidc_issuer, oidc_subject, profile_pic_url, oidc_groups"
                } else {
                    ""
                },
                if oidc { ", $5, $6, $7, $8" } else { "" },
            );
            let q = sqlx::query(&sql)
                .bind(&u.name)
                .bind(&u.display_name)
                .bind(&u.email)
                .bind(u.created_at);
            let q = if oidc {
                q.bind(u.oidc.as_ref().map(|o| o.issuer.clone()))
                    .bind(u.oidc.as_ref().map(|o| o.subject.clone()))
                    .bind(&u.profile_pic_url)
                    .bind(text(&u.groups))
            } else {
                q
            };
            q.execute(&mut *tx).await.expect("insert user");
        }
        for k in &f.keys {
            let extra = level >= API_V2;
            let sql = format!(
                "INSERT INTO pre_auth_keys (prefix, hash, user_id, reusable, ephemeral, \
                 used, tags, expiration, created_at{}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
                 $9{})",
                if extra {
                    ", description, preauthorized"
                } else {
                    ""
                },
                if extra { ", $10, $11" } else { "" },
            );
            let q = sqlx::query(&sql)
                .bind(&k.prefix)
                .bind(k.hash.stored())
                .bind(k.user_id.0)
                .bind(k.reusable)
                .bind(k.ephemeral)
                .bind(k.used)
                .bind(text(&k.tags))
                .bind(k.expiration)
                .bind(k.created_at);
            let q = if extra {
                q.bind(&k.description).bind(k.preauthorized)
            } else {
                q
            };
            q.execute(&mut *tx).await.expect("insert key");
        }
        for n in &f.nodes {
            let mut cols = String::new();
            let mut args = String::new();
            if level >= POLICY_ROUTES {
                cols.push_str(", approved_routes");
                args.push_str(", $19");
            }
            if level >= LOGIN {
                cols.push_str(", authorized");
                args.push_str(if level >= POLICY_ROUTES {
                    ", $20"
                } else {
                    ", $19"
                });
            }
            let sql = format!(
                "INSERT INTO nodes (machine_key, node_key, disco_key, hostname, given_name, \
                 user_id, tags, ipv4, ipv6, endpoints, home_derp, hostinfo, expiry, ephemeral, \
                 auth_key_id, cap_version, created_at, last_seen{cols}) VALUES ($1, $2, $3, $4, \
                 $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18{args})"
            );
            let routes: Vec<String> = n.approved_routes.iter().map(|r| r.to_string()).collect();
            let q = sqlx::query(&sql)
                .bind(n.machine_key.to_string())
                .bind(n.node_key.to_string())
                .bind(if n.disco_key.is_zero() {
                    String::new()
                } else {
                    n.disco_key.to_string()
                })
                .bind(&n.hostname)
                .bind(n.given_name.as_str())
                .bind(n.user_id.0)
                .bind(text(&n.tags))
                .bind(n.ipv4.map(|a| a.to_string()))
                .bind(n.ipv6.map(|a| a.to_string()))
                .bind(text(&n.endpoints))
                .bind(n.home_derp)
                .bind(n.hostinfo.to_string())
                .bind(n.expiry)
                .bind(n.ephemeral)
                .bind(n.auth_key_id.map(|k| k.0))
                .bind(n.cap_version)
                .bind(n.created_at)
                .bind(n.last_seen);
            let q = if level >= POLICY_ROUTES {
                q.bind(text(&routes))
            } else {
                q
            };
            let q = if level >= LOGIN {
                q.bind(n.authorized)
            } else {
                q
            };
            q.execute(&mut *tx).await.expect("insert node");
        }
        for k in &f.api_keys {
            let scoped = level >= API_KEY_SCOPE;
            let sql = format!(
                "INSERT INTO api_keys (prefix, hash, expiration, last_seen, created_at{}) \
                 VALUES ($1, $2, $3, $4, $5{})",
                if scoped { ", scope" } else { "" },
                if scoped { ", $6" } else { "" },
            );
            let q = sqlx::query(&sql)
                .bind(&k.prefix)
                .bind(k.hash.stored())
                .bind(k.expiration)
                .bind(k.last_seen)
                .bind(k.created_at);
            let q = if scoped { q.bind(k.scope.as_str()) } else { q };
            q.execute(&mut *tx).await.expect("insert api key");
        }
        if level >= POLICY_ROUTES {
            for (i, data) in [POLICY_OLD, POLICY].into_iter().enumerate() {
                sqlx::query("INSERT INTO policies (data, created_at) VALUES ($1, $2)")
                    .bind(data)
                    .bind(at(7, i as u32))
                    .execute(&mut *tx)
                    .await
                    .expect("insert policy");
            }
        }
        if level >= WRITE_PROBE {
            sqlx::query("INSERT INTO write_probe (id, checked_at) VALUES (1, $1)")
                .bind(at(8, 8))
                .execute(&mut *tx)
                .await
                .expect("insert probe");
        }
        for c in &f.oauth_clients {
            let scopes: Vec<String> = c.scopes.iter().map(|s| s.as_str().to_string()).collect();
            sqlx::query(
                "INSERT INTO oauth_clients (client_id, hash, scopes, tags, description, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&c.client_id)
            .bind(&c.hash[..])
            .bind(text(&scopes))
            .bind(text(&c.tags))
            .bind(&c.description)
            .bind(c.created_at)
            .execute(&mut *tx)
            .await
            .expect("insert oauth client");
        }
        if !f.dns.is_empty() {
            sqlx::query(
                "INSERT INTO dns_settings (id, nameservers, search_paths, magic_dns, updated_at) \
                 VALUES (1, $1, $2, $3, $4)",
            )
            .bind(f.dns.nameservers.as_deref().map(text))
            .bind(f.dns.search_paths.as_deref().map(text))
            .bind(f.dns.magic_dns)
            .bind(at(9, 9))
            .execute(&mut *tx)
            .await
            .expect("insert dns settings");
        }
        sqlx::query("DELETE FROM users WHERE id = 3")
            .execute(&mut *tx)
            .await
            .expect("delete user");
        tx.commit().await.expect("commit");
    });
}
