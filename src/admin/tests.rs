//! The operations' rules that every transport inherits: grants, and exactly
//! one audit line per mutation (also refused or failed ones), with the
//! right actor, never a secret; control-protocol events and policy file
//! reloads in the same log.

use super::testing::{fixture, key_caller, local};
use super::*;
use crate::state::{RegisterInput, RegisterOutcome};
use crate::types::{MachinePublic, NodeId, NodePublic, Scope, UserId};

fn new_user(name: &str) -> NewUser {
    NewUser {
        name: name.into(),
        display_name: String::new(),
        email: format!("{name}@example.com"),
    }
}

fn register_input(seed: u8, key: &str, expiry: Option<DateTime<Utc>>) -> RegisterInput {
    RegisterInput {
        machine_key: MachinePublic([seed; 32]),
        node_key: NodePublic([seed.wrapping_add(100); 32]),
        old_node_key: None,
        auth_key: Some(key.to_string()),
        expiry,
        hostinfo: serde_json::json!({ "Hostname": format!("host{seed}") }),
        ephemeral: false,
        version: 100,
    }
}

#[tokio::test]
async fn each_mutation_writes_exactly_one_line_with_its_actor() {
    let fx = fixture().await;
    let admin = &fx.admin;
    let key = key_caller(Scope::Admin);
    let me = local();

    let alice = admin.create_user(&key, new_user("alice")).await.unwrap();
    admin.rename_user(&me, alice.id, "alicia").await.unwrap();
    let (k, secret) = admin
        .create_preauth_key(
            &key,
            NewPreAuthKey {
                user: Some(alice.id),
                reusable: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    admin.expire_preauth_key(&key, k.key.id).await.unwrap();
    admin.delete_preauth_key(&key, k.key.id).await.unwrap();
    let (api, api_secret) = admin
        .create_api_key(&key, Scope::Whois, None)
        .await
        .unwrap();
    admin
        .expire_api_key(&me, crate::state::ApiKeyRef::Id(api.id))
        .await
        .unwrap();
    admin
        .delete_api_key(&me, crate::state::ApiKeyRef::Prefix(api.prefix.clone()))
        .await
        .unwrap();
    let policy = r#"{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}"#;
    let installed = admin.set_policy(&key, policy.into()).await.unwrap();
    admin.delete_user(&key, alice.id).await.unwrap();
    // Reads are not mutations.
    admin.list_users(&key, &UserFilter::default()).unwrap();
    admin.get_policy(&key).unwrap();

    let lines = fx.audit();
    let got: Vec<(&str, &str, Option<&str>)> = lines
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.object.as_deref()))
        .collect();
    let user = format!("user:{}", alice.id);
    let pak = format!("preauthkey:{}", k.key.id.0);
    let ak = format!("apikey:{}", api.id);
    assert_eq!(
        got,
        [
            ("apikey:0123456789ab", "user.create", Some(user.as_str())),
            ("uid:0", "user.rename", Some(user.as_str())),
            (
                "apikey:0123456789ab",
                "preauthkey.create",
                Some(pak.as_str())
            ),
            (
                "apikey:0123456789ab",
                "preauthkey.expire",
                Some(pak.as_str())
            ),
            (
                "apikey:0123456789ab",
                "preauthkey.delete",
                Some(pak.as_str())
            ),
            ("apikey:0123456789ab", "apikey.create", Some(ak.as_str())),
            ("uid:0", "apikey.expire", Some(ak.as_str())),
            ("uid:0", "apikey.delete", Some(ak.as_str())),
            ("apikey:0123456789ab", "policy.set", Some("policy")),
            ("apikey:0123456789ab", "user.delete", Some(user.as_str())),
        ]
    );
    assert!(lines.iter().all(|e| e.result == "ok" && e.error.is_none()));
    // Before and after say what changed.
    assert_eq!(lines[1].before.as_ref().unwrap()["name"], "alice");
    assert_eq!(lines[1].after.as_ref().unwrap()["name"], "alicia");
    assert!(lines[3].before.as_ref().unwrap()["expiration"].is_null());
    assert!(lines[3].after.as_ref().unwrap()["expiration"].is_string());
    // A policy change names the new revision.
    assert_eq!(
        lines[8].policy_revision.as_deref(),
        Some(installed.revision.as_str())
    );
    assert_eq!(installed.revision, crate::state::policy::revision(policy));
    // Never a secret.
    let text = std::fs::read_to_string(&fx.audit_path).unwrap();
    for s in [&secret, &api_secret] {
        let secret_half = s.rsplit('-').next().unwrap();
        assert!(!text.contains(secret_half), "secret in the audit log");
    }
}

#[tokio::test]
async fn refused_and_failed_mutations_are_audited_with_the_error() {
    let fx = fixture().await;
    let admin = &fx.admin;
    let read_only = key_caller(Scope::AdminRead);
    let whois = key_caller(Scope::Whois);

    // admin:read reads but may not change anything.
    assert!(admin.list_users(&read_only, &UserFilter::default()).is_ok());
    let e = admin
        .create_user(&read_only, new_user("mallory"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PermissionDenied(_)), "{e}");
    // whois keys may not even read.
    let e = admin
        .list_users(&whois, &UserFilter::default())
        .unwrap_err();
    assert!(matches!(e, Error::PermissionDenied(_)));
    let e = admin.delete_node(&whois, NodeId(1)).await.unwrap_err();
    assert!(matches!(e, Error::PermissionDenied(_)));
    // A failing mutation.
    let e = admin
        .rename_user(&local(), UserId(42), "bob")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound(_)));
    assert!(fx.state.world().users.is_empty(), "nothing was created");

    let lines = fx.audit();
    assert_eq!(lines.len(), 3, "one per mutation attempt, none for reads");
    assert_eq!(lines[0].action, "user.create");
    assert_eq!(lines[0].actor, "apikey:0123456789ab");
    assert_eq!(lines[0].result, "error");
    assert!(lines[0].error.as_deref().unwrap().contains("admin:read"));
    assert_eq!(lines[1].action, "node.delete");
    assert_eq!(lines[1].object.as_deref(), Some("node:1"));
    assert_eq!(lines[2].actor, "uid:0");
    assert_eq!(lines[2].error.as_deref(), Some("user not found"));
}

#[tokio::test]
async fn control_protocol_events_are_audited_as_the_node_or_the_system() {
    let fx = fixture().await;
    let admin = &fx.admin;
    let alice = admin
        .create_user(&local(), new_user("alice"))
        .await
        .unwrap();
    let (_, key) = admin
        .create_preauth_key(
            &local(),
            NewPreAuthKey {
                user: Some(alice.id),
                reusable: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let RegisterOutcome::Authorized { node, .. } = fx
        .state
        .register(register_input(1, &key, None))
        .await
        .unwrap()
    else {
        panic!("registration refused");
    };
    // The same machine again without change: no event.
    fx.state
        .register(register_input(1, &key, None))
        .await
        .unwrap();
    // Logout (expiry in the past), then a login with the key again.
    let past = Utc::now() - chrono::Duration::seconds(5);
    fx.state
        .register(register_input(1, &key, Some(past)))
        .await
        .unwrap();
    fx.state
        .register(register_input(1, &key, None))
        .await
        .unwrap();
    let lines = fx.wait_audit(5).await;
    let events: Vec<(&str, &str)> = lines[2..]
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    let actor = format!("node:{}", node.id);
    assert_eq!(
        events,
        [
            (actor.as_str(), "node.register"),
            (actor.as_str(), "node.logout"),
            (actor.as_str(), "node.login"),
        ]
    );
    assert!(lines[2].before.is_none());
    assert_eq!(lines[2].after.as_ref().unwrap()["id"], node.id.0);
    assert_eq!(lines[2].transport, "control");
    assert!(lines[3].after.as_ref().unwrap()["expiry"].is_string());
}

#[tokio::test]
async fn policy_file_reloads_are_audited_as_the_policy_file() {
    let fx = fixture().await;
    let text = r#"{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}"#;
    let info = fx.admin.reload_policy_file(text.into()).await.unwrap();
    let bad = fx
        .admin
        .reload_policy_file("{\"acls\": [".into())
        .await
        .unwrap_err();
    assert!(matches!(bad, Error::InvalidArgument(_)));
    let lines = fx.audit();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].actor, "policy-file");
    assert_eq!(lines[0].action, "policy.reload");
    assert_eq!(
        lines[0].policy_revision.as_deref(),
        Some(info.revision.as_str())
    );
    assert_eq!(lines[1].result, "error");
    assert!(lines[1].policy_revision.is_none());
}

#[tokio::test]
async fn approving_and_unapproving_are_audited_and_take_effect() {
    let fx = fixture().await;
    let admin = &fx.admin;
    let u = admin.create_user(&local(), new_user("ada")).await.unwrap();
    let (_, secret) = admin
        .create_preauth_key(
            &local(),
            NewPreAuthKey {
                user: Some(u.id),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let RegisterOutcome::Authorized { node, .. } = fx
        .state
        .register(register_input(1, &secret, None))
        .await
        .unwrap()
    else {
        panic!("registered");
    };
    let key = key_caller(Scope::Admin);
    let i = admin.set_authorized(&key, node.id, true).await.unwrap();
    assert_eq!(i.node.id, node.id);
    assert!(i.node.authorized);
    let i = admin.set_authorized(&key, node.id, false).await.unwrap();
    assert!(!i.node.authorized);
    assert!(!fx.state.world().node(node.id).unwrap().authorized);
    assert!(matches!(
        admin.set_authorized(&key, NodeId(999), true).await,
        Err(Error::NotFound(_))
    ));
    let read = key_caller(Scope::AdminRead);
    assert!(matches!(
        admin.set_authorized(&read, node.id, true).await,
        Err(Error::PermissionDenied(_))
    ));
    let lines: Vec<_> = fx
        .wait_audit(0)
        .await
        .into_iter()
        .filter(|e| e.action == "node.approve" || e.action == "node.unapprove")
        .map(|e| format!("{} {}", e.action, e.result))
        .collect();
    assert_eq!(
        lines,
        [
            "node.approve ok",
            "node.unapprove ok",
            "node.approve error",
            "node.approve error"
        ]
    );
}

#[tokio::test]
async fn a_key_without_a_user_is_owned_by_its_tags() {
    let fx = fixture().await;
    let admin = &fx.admin;
    let (info, secret) = admin
        .create_preauth_key(
            &key_caller(Scope::Admin),
            NewPreAuthKey {
                tags: vec!["tag:ci".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let owner = info.owner.expect("stored under a user");
    assert_eq!(owner.name, TAGGED_OWNER);
    // The next one reuses that user.
    let (again, _) = admin
        .create_preauth_key(
            &local(),
            NewPreAuthKey {
                tags: vec!["tag:ci".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(again.owner.expect("owner").id, owner.id);
    // A node enrolling with it is tagged, owned by its tags.
    let RegisterOutcome::Authorized { node, .. } = fx
        .state
        .register(register_input(7, &secret, None))
        .await
        .unwrap()
    else {
        panic!("registered");
    };
    assert_eq!(node.tags, ["tag:ci"]);
    // Neither a user nor tags: refused.
    let e = admin
        .create_preauth_key(&local(), NewPreAuthKey::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
}
