//! Service-level tests: the operations on a temporary SQLite database,
//! served over a real admin socket (REST and gRPC) and driven with the
//! generated gRPC client.

use std::path::PathBuf;

use tonic::Code;
use tonic::transport::Channel;

use super::proto::*;
use super::{HeadscaleServiceClient, connect_unix};
use crate::state::{RegisterInput, RegisterOutcome, StateHandle};
use crate::types::{MachinePublic, NodePublic, PreAuthSecret};

/// Keep `dir` bound while the test runs: dropping it deletes the database.
pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub state: StateHandle,
    pub client: HeadscaleServiceClient<Channel>,
    pub socket: PathBuf,
}

/// A running admin socket on a fresh database (also used by the CLI tests).
pub(crate) async fn fixture() -> Fixture {
    let fx = crate::admin::testing::fixture().await;
    let path = fx.dir.path().join("admin.sock");
    let listener = crate::http::unix::bind(&path, 0o600).expect("bind");
    tokio::spawn(crate::api::socket::serve(
        listener,
        crate::api::v1::router(fx.admin.clone()),
        super::router(fx.admin.clone()),
        crate::limits::Timeouts::default(),
    ));
    let client = connect_unix(&path).await.expect("connect");
    Fixture {
        dir: fx.dir,
        state: fx.state,
        client,
        socket: path,
    }
}

fn code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    r.expect_err("expected an error status").code()
}

async fn create_user(c: &mut HeadscaleServiceClient<Channel>, name: &str) -> User {
    c.create_user(CreateUserRequest {
        name: name.into(),
        email: format!("{name}@example.com"),
        ..Default::default()
    })
    .await
    .expect("create user")
    .into_inner()
    .user
    .expect("user in response")
}

async fn create_key(
    c: &mut HeadscaleServiceClient<Channel>,
    user: u64,
    tags: &[&str],
) -> PreAuthKey {
    c.create_pre_auth_key(CreatePreAuthKeyRequest {
        user,
        reusable: true,
        acl_tags: tags.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    })
    .await
    .expect("create key")
    .into_inner()
    .pre_auth_key
    .expect("key in response")
}

/// Enrols a node the way `/machine/register` would, with an auth key.
async fn register(state: &StateHandle, key: &str, seed: u8, hostname: &str) -> u64 {
    let outcome = state
        .register(RegisterInput {
            machine_key: MachinePublic([seed; 32]),
            node_key: NodePublic([seed.wrapping_add(100); 32]),
            old_node_key: None,
            auth_key: Some(key.to_string()),
            expiry: None,
            hostinfo: serde_json::json!({ "Hostname": hostname }),
            ephemeral: false,
            version: 100,
        })
        .await
        .expect("register");
    match outcome {
        RegisterOutcome::Authorized { node, .. } => u64::try_from(node.id.0).expect("positive"),
        other => panic!("registration refused: {other:?}"),
    }
}

#[tokio::test]
async fn users_lifecycle() {
    let Fixture {
        dir: _dir,
        mut client,
        ..
    } = fixture().await;
    let c = &mut client;

    let alice = create_user(c, "alice").await;
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.email, "alice@example.com");
    assert!(alice.id > 0 && alice.created_at.is_some());
    let bob = create_user(c, "bob").await;

    let dup = c
        .create_user(CreateUserRequest {
            name: "alice".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(dup), Code::AlreadyExists);
    let bad = c
        .create_user(CreateUserRequest {
            name: "has space".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(bad), Code::InvalidArgument);

    let reader = c.clone();
    let list = |req: ListUsersRequest| {
        let mut c = reader.clone();
        async move {
            let users = c.list_users(req).await.expect("list").into_inner().users;
            users.into_iter().map(|u| u.name).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(ListUsersRequest::default()).await, ["alice", "bob"]);
    let by_name = ListUsersRequest {
        name: "bob".into(),
        ..Default::default()
    };
    assert_eq!(list(by_name).await, ["bob"]);
    let by_email = ListUsersRequest {
        email: "alice@example.com".into(),
        ..Default::default()
    };
    assert_eq!(list(by_email).await, ["alice"]);
    let by_id = ListUsersRequest {
        id: bob.id,
        ..Default::default()
    };
    assert_eq!(list(by_id).await, ["bob"]);
    let nobody = ListUsersRequest {
        name: "carol".into(),
        ..Default::default()
    };
    assert!(list(nobody).await.is_empty());

    let renamed = c
        .rename_user(RenameUserRequest {
            old_id: alice.id,
            new_name: "alicia".into(),
        })
        .await
        .expect("rename")
        .into_inner()
        .user
        .expect("user");
    assert_eq!((renamed.id, renamed.name.as_str()), (alice.id, "alicia"));
    let taken = c
        .rename_user(RenameUserRequest {
            old_id: alice.id,
            new_name: "bob".into(),
        })
        .await;
    assert_eq!(code(taken), Code::AlreadyExists);
    let missing = c
        .rename_user(RenameUserRequest {
            old_id: 999,
            new_name: "x".into(),
        })
        .await;
    assert_eq!(code(missing), Code::NotFound);

    c.delete_user(DeleteUserRequest { id: bob.id })
        .await
        .expect("delete");
    assert_eq!(list(ListUsersRequest::default()).await, ["alicia"]);
    let again = c.delete_user(DeleteUserRequest { id: bob.id }).await;
    assert_eq!(code(again), Code::NotFound);
}

#[tokio::test]
async fn preauth_keys_lifecycle_never_leaks_the_secret() {
    let Fixture {
        dir: _dir,
        mut client,
        ..
    } = fixture().await;
    let c = &mut client;
    let alice = create_user(c, "alice").await;

    let expiration = chrono::Utc::now() + chrono::Duration::hours(1);
    let created = c
        .create_pre_auth_key(CreatePreAuthKeyRequest {
            user: alice.id,
            reusable: true,
            ephemeral: true,
            expiration: Some(super::convert::timestamp(expiration)),
            acl_tags: vec!["tag:web".into(), "tag:db".into()],
        })
        .await
        .expect("create")
        .into_inner()
        .pre_auth_key
        .expect("key");
    let secret = PreAuthSecret::parse(&created.key).expect("full key text, once");
    assert!(created.reusable && created.ephemeral && !created.used);
    assert_eq!(created.acl_tags, ["tag:db", "tag:web"], "normalised");
    assert_eq!(
        created.expiration.map(|t| t.seconds),
        Some(expiration.timestamp())
    );
    assert_eq!(created.user.as_ref().map(|u| u.id), Some(alice.id));
    let plain = create_key(c, alice.id, &[]).await;
    assert!(plain.expiration.is_none(), "no expiration requested");

    let listed = c
        .list_pre_auth_keys(ListPreAuthKeysRequest {})
        .await
        .expect("list")
        .into_inner()
        .pre_auth_keys;
    assert_eq!(listed.len(), 2);
    let first = &listed[0];
    assert_eq!(first.id, created.id);
    assert_eq!(first.key, format!("cskey-auth-{}-***", secret.prefix));
    let secret_part = created.key.rsplit('-').next().expect("secret part");
    assert!(
        !format!("{listed:?}").contains(secret_part),
        "secret leaked"
    );
    assert!(first.ephemeral && first.reusable);
    assert_eq!(first.user.as_ref().map(|u| u.name.as_str()), Some("alice"));

    for (req, want) in [
        (
            CreatePreAuthKeyRequest {
                user: alice.id,
                acl_tags: vec!["web".into()],
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (CreatePreAuthKeyRequest::default(), Code::InvalidArgument),
        (
            CreatePreAuthKeyRequest {
                user: 999,
                ..Default::default()
            },
            Code::NotFound,
        ),
        (
            CreatePreAuthKeyRequest {
                user: alice.id,
                expiration: Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: 0,
                }),
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
    ] {
        assert_eq!(
            code(c.create_pre_auth_key(req.clone()).await),
            want,
            "{req:?}"
        );
    }

    c.expire_pre_auth_key(ExpirePreAuthKeyRequest { id: created.id })
        .await
        .expect("expire");
    let listed = c
        .list_pre_auth_keys(ListPreAuthKeysRequest {})
        .await
        .expect("list")
        .into_inner()
        .pre_auth_keys;
    let expired_at = listed[0].expiration.expect("now has an expiration");
    assert!(expired_at.seconds <= chrono::Utc::now().timestamp());

    c.delete_pre_auth_key(DeletePreAuthKeyRequest { id: created.id })
        .await
        .expect("delete");
    let ids: Vec<u64> = c
        .list_pre_auth_keys(ListPreAuthKeysRequest {})
        .await
        .expect("list")
        .into_inner()
        .pre_auth_keys
        .iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, [plain.id]);
    let gone = c
        .delete_pre_auth_key(DeletePreAuthKeyRequest { id: created.id })
        .await;
    assert_eq!(code(gone), Code::NotFound);
    let gone = c
        .expire_pre_auth_key(ExpirePreAuthKeyRequest { id: 999 })
        .await;
    assert_eq!(code(gone), Code::NotFound);
}

#[tokio::test]
async fn unknown_nodes_are_not_found() {
    let Fixture {
        dir: _dir,
        mut client,
        ..
    } = fixture().await;
    let c = &mut client;
    let nodes = c
        .list_nodes(ListNodesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .nodes;
    assert!(nodes.is_empty());
    assert_eq!(
        code(c.get_node(GetNodeRequest { node_id: 1 }).await),
        Code::NotFound
    );
    let rename = RenameNodeRequest {
        node_id: 1,
        new_name: "x".into(),
    };
    assert_eq!(code(c.rename_node(rename).await), Code::NotFound);
    let delete = DeleteNodeRequest { node_id: 1 };
    assert_eq!(code(c.delete_node(delete).await), Code::NotFound);
    let expire = ExpireNodeRequest {
        node_id: u64::MAX,
        ..Default::default()
    };
    assert_eq!(code(c.expire_node(expire).await), Code::NotFound);
    let by_user = ListNodesRequest {
        user: "ghost".into(),
    };
    assert_eq!(code(c.list_nodes(by_user).await), Code::NotFound);
}

#[tokio::test]
async fn nodes_lifecycle() {
    let Fixture {
        dir: _dir,
        mut client,
        state,
        ..
    } = fixture().await;
    let c = &mut client;
    let alice = create_user(c, "alice").await;
    let bob = create_user(c, "bob").await;
    let key = create_key(c, alice.id, &[]).await;
    let tagged_key = create_key(c, bob.id, &["tag:srv"]).await;
    let laptop = register(&state, &key.key, 1, "Alice Laptop").await;
    let server = register(&state, &tagged_key.key, 2, "srv").await;

    let nodes = c
        .list_nodes(ListNodesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .nodes;
    assert_eq!(
        nodes.iter().map(|n| n.id).collect::<Vec<_>>(),
        [laptop, server]
    );
    let n = &nodes[0];
    assert_eq!(
        (n.name.as_str(), n.given_name.as_str()),
        ("Alice Laptop", "alice-laptop")
    );
    assert_eq!(n.user.as_ref().map(|u| u.id), Some(alice.id));
    assert_eq!(n.ip_addresses.len(), 2);
    assert_eq!(n.machine_key, MachinePublic([1; 32]).to_string());
    assert!(!n.online && n.expiry.is_none() && n.tags.is_empty());
    assert_eq!(n.register_method, RegisterMethod::AuthKey as i32);
    let srv = &nodes[1];
    assert_eq!(srv.tags, ["tag:srv"]);
    assert_eq!(
        srv.user.as_ref().map(|u| u.name.as_str()),
        Some("tagged-devices")
    );

    for (user, want) in [("alice", vec![laptop]), ("bob", vec![server])] {
        let req = ListNodesRequest { user: user.into() };
        let got = c.list_nodes(req).await.expect("list").into_inner().nodes;
        assert_eq!(got.iter().map(|n| n.id).collect::<Vec<_>>(), want, "{user}");
    }
    let by_id = ListNodesRequest {
        user: alice.id.to_string(),
    };
    let got = c.list_nodes(by_id).await.expect("list").into_inner().nodes;
    assert_eq!(got.len(), 1);

    let renamed = c
        .rename_node(RenameNodeRequest {
            node_id: laptop,
            new_name: "work".into(),
        })
        .await
        .expect("rename")
        .into_inner()
        .node
        .expect("node");
    assert_eq!(renamed.given_name, "work");
    let bad = RenameNodeRequest {
        node_id: laptop,
        new_name: "Not Valid".into(),
    };
    assert_eq!(code(c.rename_node(bad).await), Code::InvalidArgument);
    let clash = RenameNodeRequest {
        node_id: server,
        new_name: "work".into(),
    };
    assert_eq!(code(c.rename_node(clash).await), Code::AlreadyExists);

    let disable = ExpireNodeRequest {
        node_id: laptop,
        disable_expiry: true,
        ..Default::default()
    };
    let never = c.expire_node(disable).await.expect("disable expiry");
    assert_eq!(never.into_inner().node.expect("node").expiry, None);
    let later = chrono::Utc::now() + chrono::Duration::days(7);
    let future = c
        .expire_node(ExpireNodeRequest {
            node_id: laptop,
            expiry: Some(super::convert::timestamp(later)),
            ..Default::default()
        })
        .await
        .expect("future expiry")
        .into_inner()
        .node
        .expect("node");
    assert_eq!(future.expiry.map(|t| t.seconds), Some(later.timestamp()));
    let expired = c
        .expire_node(ExpireNodeRequest {
            node_id: laptop,
            expiry: Some(super::convert::timestamp(chrono::Utc::now())),
            ..Default::default()
        })
        .await
        .expect("expire")
        .into_inner()
        .node
        .expect("node");
    let at = expired.expiry.expect("expiry set");
    assert!(at.seconds <= chrono::Utc::now().timestamp());
    let got = c
        .get_node(GetNodeRequest { node_id: laptop })
        .await
        .expect("get")
        .into_inner()
        .node
        .expect("node");
    assert_eq!(got.expiry, Some(at));

    let refused = c.delete_user(DeleteUserRequest { id: alice.id }).await;
    assert_eq!(code(refused), Code::FailedPrecondition);

    c.delete_node(DeleteNodeRequest { node_id: laptop })
        .await
        .expect("delete");
    let left = c
        .list_nodes(ListNodesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .nodes;
    assert_eq!(left.iter().map(|n| n.id).collect::<Vec<_>>(), [server]);
    c.delete_user(DeleteUserRequest { id: alice.id })
        .await
        .expect("no nodes left");
}

mod keys;
mod transport;
