//! Pending registrations over gRPC, and the TCP listener's keys and TLS.

use tonic::Code;

use super::super::HeadscaleServiceClient;
use super::super::proto::*;
use super::{Fixture, code, create_user, fixture};

#[tokio::test]
async fn health_and_pending_registrations() {
    let Fixture {
        dir: _dir,
        mut client,
        ..
    } = fixture().await;
    let health = client.health(HealthRequest {}).await.expect("health");
    assert!(health.into_inner().database_connectivity);

    let reg = client.register_node(RegisterNodeRequest::default()).await;
    assert_eq!(code(reg), Code::InvalidArgument, "no auth id");
    let unknown = crate::admin::AuthId::generate().to_string();
    create_user(&mut client, "alice").await;
    let reg = client
        .register_node(RegisterNodeRequest {
            user: "alice".into(),
            key: unknown.clone(),
        })
        .await;
    assert_eq!(code(reg), Code::NotFound, "nothing pending");
    let approve = client
        .auth_approve(AuthApproveRequest { auth_id: unknown })
        .await;
    assert_eq!(code(approve), Code::NotFound);

    // DebugCreateNode makes a pending registration; RegisterNode enrols it.
    let id = crate::admin::AuthId::generate().to_string();
    let echo = client
        .debug_create_node(DebugCreateNodeRequest {
            user: "alice".into(),
            key: id.clone(),
            name: "dbg".into(),
            routes: vec!["10.9.0.0/24".into()],
        })
        .await
        .expect("debug create")
        .into_inner()
        .node
        .expect("node");
    assert_eq!((echo.id, echo.name.as_str()), (0, "dbg"));
    let node = client
        .register_node(RegisterNodeRequest {
            user: "alice".into(),
            key: id.clone(),
        })
        .await
        .expect("register")
        .into_inner()
        .node
        .expect("node");
    assert!(node.id > 0);
    assert_eq!(node.given_name, "dbg");
    assert_eq!(node.register_method, RegisterMethod::Cli as i32);
    assert_eq!(node.available_routes, ["10.9.0.0/24"]);
    let again = client
        .register_node(RegisterNodeRequest {
            user: "alice".into(),
            key: id,
        })
        .await;
    assert_eq!(code(again), Code::NotFound, "a registration is used once");

    let tags = client.set_tags(SetTagsRequest::default()).await;
    assert_eq!(code(tags), Code::InvalidArgument, "no tags");
    let tags = client
        .set_tags(SetTagsRequest {
            node_id: 999,
            tags: vec!["tag:x".into()],
        })
        .await;
    assert_eq!(code(tags), Code::NotFound);
    let backfill = client
        .backfill_node_i_ps(BackfillNodeIPsRequest { confirmed: false })
        .await;
    assert_eq!(code(backfill), Code::InvalidArgument);
    let backfill = client
        .backfill_node_i_ps(BackfillNodeIPsRequest { confirmed: true })
        .await
        .expect("backfill");
    assert!(
        backfill.into_inner().changes.is_empty(),
        "every node has both"
    );
}

/// `grpc_listen_addr`: gRPC over TCP needs an API key in the
/// `authorization` metadata, and its scope is enforced like REST's.
#[tokio::test]
async fn tcp_listener_requires_api_keys() {
    use tonic::metadata::MetadataValue;

    let fx = crate::admin::testing::fixture().await;
    let listener = super::super::bind("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(super::super::serve_tcp(
        listener,
        fx.admin.clone(),
        None,
        crate::limits::Timeouts::default(),
    ));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let local = crate::admin::testing::local();
    let admin_key = fx
        .admin
        .create_api_key(&local, crate::types::Scope::Admin, None)
        .await
        .unwrap()
        .1;
    let whois_key = fx
        .admin
        .create_api_key(&local, crate::types::Scope::Whois, None)
        .await
        .unwrap()
        .1;
    let with = |key: Option<String>| {
        let mut req = tonic::Request::new(ListUsersRequest::default());
        if let Some(k) = key {
            let v: MetadataValue<_> = format!("Bearer {k}").parse().unwrap();
            req.metadata_mut().insert("authorization", v);
        }
        req
    };
    let mut c = HeadscaleServiceClient::new(channel);
    let none = c.list_users(with(None)).await;
    assert_eq!(code(none), Code::Unauthenticated);
    let bad = c
        .list_users(with(Some("cskey-api-000000000000-0".into())))
        .await;
    assert_eq!(code(bad), Code::Unauthenticated);
    let denied = c.list_users(with(Some(whois_key))).await;
    assert_eq!(code(denied), Code::PermissionDenied);
    c.list_users(with(Some(admin_key.clone())))
        .await
        .expect("an admin key lists users");
    let mut create = tonic::Request::new(CreateUserRequest {
        name: "alice".into(),
        ..Default::default()
    });
    create.metadata_mut().insert(
        "authorization",
        format!("Bearer {admin_key}").parse().unwrap(),
    );
    c.create_user(create).await.expect("create");
    let lines = fx.audit();
    let prefix = &admin_key["cskey-api-".len()..][..12];
    assert_eq!(lines.last().unwrap().actor, format!("apikey:{prefix}"));
    assert_eq!(lines.last().unwrap().transport, "grpc");
}

#[test]
fn tls_for_grpc_speaks_http2() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    assert!(
        super::super::tls_config(&cert, &key).is_err(),
        "missing files"
    );
    crate::derp::tls::load_or_generate(&cert, &key, &["localhost".into()]).unwrap();
    let config = super::super::tls_config(&cert, &key).unwrap();
    assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
}
