//! API keys and the policy over gRPC.

use tonic::Code;

use super::super::proto::*;
use super::{Fixture, code, fixture};

#[tokio::test]
async fn api_keys_lifecycle_with_scopes() {
    let Fixture {
        dir: _dir,
        mut client,
        ..
    } = fixture().await;
    // Headscale clients send no scope: admin.
    let hs = client
        .create_api_key(CreateApiKeyRequest::default())
        .await
        .expect("create")
        .into_inner()
        .api_key;
    let whois = client
        .create_api_key(CreateApiKeyRequest {
            scope: "whois".into(),
            ..Default::default()
        })
        .await
        .expect("create whois")
        .into_inner()
        .api_key;
    assert!(hs.starts_with("cskey-api-") && whois.starts_with("cskey-api-"));
    let bad = client
        .create_api_key(CreateApiKeyRequest {
            scope: "root".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(bad), Code::InvalidArgument);
    let past = client
        .create_api_key(CreateApiKeyRequest {
            expiration: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await;
    assert_eq!(code(past), Code::InvalidArgument);

    let list = client
        .list_api_keys(ListApiKeysRequest {})
        .await
        .expect("list")
        .into_inner()
        .api_keys;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].scope, "admin");
    assert_eq!(list[1].scope, "whois");
    assert_eq!(&hs["cskey-api-".len()..][..12], list[0].prefix);
    assert!(
        list.iter()
            .all(|k| k.expiration.is_none() && k.created_at.is_some())
    );
    // The secret never appears in a listing.
    let listed = format!("{list:?}");
    assert!(!listed.contains(&hs[23..]), "{listed}");

    client
        .expire_api_key(ExpireApiKeyRequest {
            prefix: list[1].prefix.clone(),
            id: 0,
        })
        .await
        .expect("expire by prefix");
    let both = client
        .expire_api_key(ExpireApiKeyRequest {
            prefix: list[1].prefix.clone(),
            id: 1,
        })
        .await;
    assert_eq!(code(both), Code::InvalidArgument);
    client
        .delete_api_key(DeleteApiKeyRequest {
            prefix: String::new(),
            id: list[0].id,
        })
        .await
        .expect("delete by id");
    let gone = client
        .delete_api_key(DeleteApiKeyRequest {
            prefix: String::new(),
            id: list[0].id,
        })
        .await;
    assert_eq!(code(gone), Code::NotFound);
    let list = client
        .list_api_keys(ListApiKeysRequest {})
        .await
        .expect("list")
        .into_inner()
        .api_keys;
    assert_eq!(list.len(), 1);
    assert!(list[0].expiration.is_some(), "expired key keeps its row");
}

#[tokio::test]
async fn policy_is_set_checked_and_read_back_in_database_mode() {
    let Fixture {
        dir: _dir,
        mut client,
        ..
    } = fixture().await;
    let none = client.get_policy(GetPolicyRequest {}).await;
    assert_eq!(code(none), Code::NotFound, "no policy yet");

    let good = "// ops may reach everything\n{\"acls\": [{\"action\": \"accept\", \
                \"src\": [\"*\"], \"dst\": [\"*:*\"]}],}";
    let set = client
        .set_policy(SetPolicyRequest {
            policy: good.into(),
        })
        .await
        .expect("valid policy")
        .into_inner();
    assert_eq!(set.policy, good);
    assert!(set.updated_at.is_some());
    let got = client
        .get_policy(GetPolicyRequest {})
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.policy, good, "comments and layout are kept");

    let bad = "{\n  \"acls\": [\n    {\"action\": \"allow\", \"src\": [\"*\"], \"dst\": [\"*:*\"]}\n  ]\n}";
    let err = client
        .set_policy(SetPolicyRequest { policy: bad.into() })
        .await
        .expect_err("invalid action");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("line 3"), "{}", err.message());
    let check = client
        .check_policy(CheckPolicyRequest { policy: bad.into() })
        .await;
    assert_eq!(code(check), Code::InvalidArgument);
    client
        .check_policy(CheckPolicyRequest {
            policy: good.into(),
        })
        .await
        .expect("check good");
    let still = client.get_policy(GetPolicyRequest {}).await.expect("get");
    assert_eq!(
        still.into_inner().policy,
        good,
        "the rejected policy changed nothing"
    );
}
