//! OpenID Connect login against a real provider (`oidc-provider`, see
//! `oidc/idp.rs`): a browser with a cookie jar signs in through the
//! provider's form and the pending registration becomes a node of the
//! person's user; then the attacks a browser can mount with a real
//! provider (replayed callback, replayed code under a fresh state, forged
//! state, a disallowed domain, another subject with a taken e-mail), each
//! registering nothing. Server and provider run on 127.0.0.1; `clients`
//! does the same with stock Tailscale clients in namespaces. The
//! forged-token attacks (other key, wrong
//! `aud`/`iss`, expired, nonce) are in `src/auth/oidc/tests.rs`.

mod clients;
pub(crate) mod idp;

pub(crate) use clients::sign_in_from;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::loopback::free_port;
use crate::harness::{Db, Server, skip_real_clients};
use idp::{CLIENT_ID, CLIENT_SECRET, Idp};

pub(crate) fn accounts(alice_groups: &[&str]) -> Value {
    json!({
        "alice": {"email": "alice@example.com", "name": "Alice", "groups": alice_groups},
        "bob": {"email": "bob@example.com", "groups": []},
        "eve": {"email": "eve@evil.example", "groups": ["mcp-admins"]},
        // Another subject claiming alice's address.
        "mallory": {"email": "alice@example.com", "groups": ["mcp-admins"]},
    })
}

/// A browser: cookies kept, redirects followed.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client")
}

/// The value of `attr="…"` in the first tag of `html` that has it.
fn attr<'a>(html: &'a str, attr: &str) -> Option<&'a str> {
    let start = html.find(&format!("{attr}=\""))? + attr.len() + 2;
    let len = html[start..].find('"')?;
    Some(&html[start..start + len])
}

pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) url: String,
    pub(crate) body: String,
}

async fn answer(r: reqwest::Response) -> Answer {
    Answer {
        status: r.status(),
        url: r.url().to_string(),
        body: r.text().await.expect("body"),
    }
}

/// Opens `start` and signs in as `who` through the provider's forms (the
/// login form only when the provider has no session for this browser).
async fn sign_in(b: &reqwest::Client, start: &str, who: &str) -> Answer {
    let mut a = answer(b.get(start).send().await.expect("start")).await;
    for _ in 0..4 {
        let form: Vec<(&str, &str)> = if a.body.contains("name=\"login\"") {
            vec![("prompt", "login"), ("login", who), ("password", "any")]
        } else if a.body.contains("value=\"consent\"") {
            vec![("prompt", "consent")]
        } else {
            return a;
        };
        let action = attr(&a.body, "action").expect("form action").to_string();
        let base = reqwest::Url::parse(&a.url).expect("url");
        let target = base.join(&action).expect("action url");
        a = answer(b.post(target).form(&form).send().await.expect("submit")).await;
    }
    a
}

struct Tailnet {
    server: Server,
    api_key: String,
    http: reqwest::Client,
}

impl Tailnet {
    /// A made-up machine waiting for a login (`/api/v1/debug/node`), as a
    /// client that ran `tailscale up` without a key would be.
    async fn pending(&self, name: &str) -> String {
        let id = format!("cskey-authreq-{:024x}", rand_u96());
        let r = self
            .http
            .post(format!("{}/api/v1/debug/node", self.server.url()))
            .bearer_auth(&self.api_key)
            .json(&json!({"user": "staging", "key": id, "name": name}))
            .send()
            .await
            .expect("debug/node");
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        id
    }

    fn start_url(&self, id: &str) -> String {
        format!("{}/oidc/start/{id}", self.server.url())
    }

    fn nodes(&self) -> Vec<Value> {
        let out = self.server.cli_ok(&["nodes", "list", "-o", "json"]);
        serde_json::from_str(out.stdout.trim()).expect("nodes json")
    }

    fn users(&self) -> Vec<Value> {
        let out = self.server.cli_ok(&["users", "list", "-o", "json"]);
        serde_json::from_str(out.stdout.trim()).expect("users json")
    }

    fn owner_of(&self, node: &str) -> Option<String> {
        self.nodes()
            .iter()
            .find(|n| n["name"] == node || n["given_name"] == node)
            .and_then(|n| n["user"]["name"].as_str().map(str::to_string))
    }
}

fn rand_u96() -> u128 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    (t ^ (u128::from(std::process::id()) << 64)) & ((1u128 << 96) - 1)
}

#[track_caller]
fn assert_refused(a: &Answer, status: StatusCode, says: &str) {
    assert_eq!(a.status, status, "{} {}", a.url, a.body);
    assert!(a.body.contains("Login failed"), "{}", a.body);
    assert!(a.body.contains(says), "expected {says:?} in:\n{}", a.body);
}

#[test]
fn oidc_login_with_a_real_provider_and_the_browser_attacks() {
    if skip_real_clients() {
        return;
    }
    let idp_port = free_port();
    let secret_dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_dir.path().join("client_secret");
    fs::write(&secret, CLIENT_SECRET).expect("secret");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod");
    let server = Server::start_local(Db::Sqlite, |cfg| {
        cfg.set("oidc.issuer", format!("http://127.0.0.1:{idp_port}"));
        cfg.set("oidc.client_id", CLIENT_ID);
        cfg.set(
            "oidc.client_secret_path",
            secret.to_string_lossy().to_string(),
        );
        cfg.set("oidc.scope", ["openid", "email", "profile", "groups"]);
        cfg.set("oidc.allowed_domains", ["example.com"]);
        cfg.set("oidc.pkce.enabled", true);
        cfg.set("oidc.pkce.method", "S256");
    });
    let idp = Idp::start(
        None,
        std::net::Ipv4Addr::LOCALHOST,
        idp_port,
        &format!("{}/oidc/callback", server.url()),
        &accounts(&["mcp-admins"]),
    );
    server.cli_ok(&["users", "create", "staging"]);
    let key = server.cli_ok(&["apikeys", "create", "--scope", "admin", "-o", "json"]);
    let key: Value = serde_json::from_str(key.stdout.trim()).expect("json");
    let net = Tailnet {
        api_key: key["api_key"].as_str().expect("api_key").to_string(),
        server,
        http: reqwest::Client::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // alice signs in: her machine becomes her node, her user is made.
        let alice = browser();
        let id = net.pending("alice-laptop").await;
        let ok = sign_in(&alice, &net.start_url(&id), "alice").await;
        if ok.status != StatusCode::OK {
            net.server.dump_log();
            panic!(
                "alice's login failed: {} {}\n{}",
                ok.status,
                ok.body,
                idp.log()
            );
        }
        assert!(ok.body.contains("Login successful"), "{}", ok.body);
        assert!(ok.url.contains("/oidc/callback?"), "{}", ok.url);
        assert_eq!(net.owner_of("alice-laptop").as_deref(), Some("alice"));
        let users = net.users();
        let alice_user = users.iter().find(|u| u["name"] == "alice").expect("alice");
        assert_eq!(alice_user["email"], "alice@example.com");
        assert_eq!(alice_user["display_name"], "Alice");
        assert_eq!(alice_user["provider"], "oidc");
        assert_eq!(
            alice_user["provider_id"],
            format!("http://127.0.0.1:{idp_port}/alice")
        );
        assert_eq!(
            alice_user["profile_pic_url"],
            "https://example.com/alice.png"
        );
        let nodes = net.nodes().len();

        // The same callback again (state and code replayed): refused.
        let replay = answer(alice.get(&ok.url).send().await.expect("replay")).await;
        assert_refused(&replay, StatusCode::BAD_REQUEST, "already used");

        // alice's used code under a fresh state of her own browser: the
        // provider refuses the code, nothing is registered.
        let id2 = net.pending("replay-target").await;
        let no_follow = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = no_follow.get(net.start_url(&id2)).send().await.unwrap();
        assert!(r.status().is_redirection());
        let to_idp = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        let fresh_state: String = to_idp
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .expect("state");
        let old = reqwest::Url::parse(&ok.url).unwrap();
        let old_code: String = old
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("code");
        let mut cb = reqwest::Url::parse(&format!("{}/oidc/callback", net.server.url())).unwrap();
        cb.query_pairs_mut()
            .append_pair("code", &old_code)
            .append_pair("state", &fresh_state);
        let replayed_code = answer(no_follow.get(cb).send().await.unwrap()).await;
        assert_refused(
            &replayed_code,
            StatusCode::FORBIDDEN,
            "did not accept the login code",
        );

        // A state this server never issued.
        let forged = answer(
            browser()
                .get(format!(
                    "{}/oidc/callback?code=abc&state=forged",
                    net.server.url()
                ))
                .header("cookie", "clawscale_oidc_state=forged")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_refused(&forged, StatusCode::BAD_REQUEST, "unknown");

        // eve's domain is not allowed.
        let id3 = net.pending("eve-laptop").await;
        let eve = sign_in(&browser(), &net.start_url(&id3), "eve").await;
        assert_refused(&eve, StatusCode::FORBIDDEN, "not allowed");

        // mallory (another subject) claims alice's address: refused, and
        // alice's user is untouched.
        let mallory = sign_in(&browser(), &net.start_url(&id3), "mallory").await;
        assert_refused(&mallory, StatusCode::CONFLICT, "another user");
        assert_eq!(net.nodes().len(), nodes, "an attack registered a node");
        assert_eq!(net.users(), users, "an attack changed the users");

        // bob signs in as himself; alice, removed from mcp-admins at the
        // provider, signs in again and stays the same user.
        let bob = sign_in(&browser(), &net.start_url(&id3), "bob").await;
        assert_eq!(bob.status, StatusCode::OK, "{}", bob.body);
        assert_eq!(net.owner_of("eve-laptop").as_deref(), Some("bob"));
        idp.set_accounts(&accounts(&[]));
        let id4 = net.pending("alice-desktop").await;
        let again = sign_in(&alice, &net.start_url(&id4), "alice").await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.body);
        assert_eq!(net.owner_of("alice-desktop").as_deref(), Some("alice"));
        let after = net.users();
        assert_eq!(after.len(), users.len() + 1, "only bob is new: {after:?}");
        let alice_after = after.iter().find(|u| u["name"] == "alice").unwrap();
        assert_eq!(alice_after["id"], alice_user["id"]);
    });
    let log = net.server.log();
    assert!(!log.contains(CLIENT_SECRET), "the client secret was logged");
}
