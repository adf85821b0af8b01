use super::*;

#[test]
fn zero_time_is_gos() {
    assert_eq!(
        serde_json::to_value(zero_time()).unwrap(),
        "0001-01-01T00:00:00Z"
    );
}

#[test]
fn requests_read_null_as_absent_and_refuse_unknown_fields() {
    // What hsapi-client sends for a key without expiration or flags.
    let r: CreatePreAuthKeyRequest = serde_json::from_str(
        r#"{"user":"1","reusable":true,"ephemeral":null,"expiration":null,"aclTags":[]}"#,
    )
    .unwrap();
    assert_eq!(r.user.as_deref(), Some("1"));
    assert_eq!(r.reusable, Some(true));
    assert_eq!(r.ephemeral, None);
    assert_eq!(r.expiration, None);
    let e =
        serde_json::from_str::<CreatePreAuthKeyRequest>(r#"{"user":"1","key":"x"}"#).unwrap_err();
    assert!(e.to_string().contains("unknown field `key`"), "{e}");
    // snake_case is not the contract.
    assert!(serde_json::from_str::<CreatePreAuthKeyRequest>(r#"{"acl_tags":[]}"#).is_err());
    let r: ExpireNodeRequest =
        serde_json::from_str(r#"{"expiry":"2030-01-02T03:04:05Z"}"#).unwrap();
    assert_eq!(r.expiry.map(|t| t.timestamp()), Some(1_893_553_445));
}

#[test]
fn enums_use_proto_names() {
    assert_eq!(
        serde_json::to_value(RegisterMethod::AuthKey).unwrap(),
        "REGISTER_METHOD_AUTH_KEY"
    );
    assert_eq!(
        serde_json::to_value(RegisterMethod::Unspecified).unwrap(),
        "REGISTER_METHOD_UNSPECIFIED"
    );
}

#[test]
fn tagged_devices_user_matches_headscale() {
    let u = serde_json::to_value(User::tagged_devices()).unwrap();
    assert_eq!(u["id"], "2147455555");
    assert_eq!(u["name"], "tagged-devices");
    assert_eq!(u["displayName"], "Tagged Devices");
    assert_eq!(u["createdAt"], "0001-01-01T00:00:00Z");
    assert_eq!(u["profilePicUrl"], "");
}
