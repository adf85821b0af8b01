//! OAuth clients and access tokens: creation rules, secrets shown once and
//! never again, the token grant (wrong, forged, unknown secrets; narrowed
//! and widened scopes), what a token may do, the tags bound, revocation by
//! deleting the client, and what floods of bad secrets cost.

use super::*;
use crate::admin::testing::{fixture, local};
use crate::admin::{Access, NewPreAuthKey, TAGGED_OWNER};
use crate::types::OAuthScope;

fn scopes(s: &str) -> ScopeSet {
    ScopeSet::parse([s]).expect("scopes")
}

fn client(s: &str, tags: &[&str]) -> NewOAuthClient {
    NewOAuthClient {
        scopes: scopes(s),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        description: "k8s".into(),
    }
}

#[tokio::test]
async fn clients_are_checked_and_their_secret_is_shown_once() {
    let fx = fixture().await;
    let a = &fx.admin;
    let e = a
        .create_oauth_client(&local(), client("auth_keys", &[]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("needs tags"), "{e}");
    let e = a
        .create_oauth_client(&local(), client("", &["tag:k8s"]))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    // Read-only DNS needs no tags.
    a.create_oauth_client(&local(), client("dns:read", &[]))
        .await
        .unwrap();

    let (c, secret) = a
        .create_oauth_client(&local(), client("auth_keys devices:core", &["tag:k8s"]))
        .await
        .unwrap();
    assert!(secret.starts_with(&format!("tskey-client-{}-", c.client_id)));
    let listed = a.list_oauth_clients(&local()).await.unwrap();
    assert_eq!(listed.len(), 2);
    let half = &secret[secret.len() - 64..];
    assert!(!format!("{listed:?}").contains(half));
    let audit = std::fs::read_to_string(&fx.audit_path).unwrap();
    assert!(audit.contains(&c.client_id), "{audit}");
    assert!(!audit.contains(half), "no secret in the audit log");
    assert!(!audit.contains(&hex::encode(c.hash)), "no hash either");

    // Only clawscale's own administrators manage clients.
    let (token, _) = (a.issue_token(&secret, None).await.unwrap(), ());
    let caller = a.authenticate_token(&token.token).await.unwrap();
    assert!(matches!(
        a.create_oauth_client(&caller, client("all", &["tag:k8s"]))
            .await,
        Err(Error::PermissionDenied(_))
    ));
    assert!(a.list_oauth_clients(&caller).await.is_err());
}

#[tokio::test]
async fn tokens_carry_at_most_the_clients_scopes_and_die_with_it() {
    let fx = fixture().await;
    let a = &fx.admin;
    let (c, secret) = a
        .create_oauth_client(&local(), client("auth_keys devices:core", &["tag:k8s"]))
        .await
        .unwrap();

    let t = a.issue_token(&secret, None).await.unwrap();
    assert_eq!(t.expires_in, 3600);
    assert_eq!(t.scopes, scopes("auth_keys devices:core"));
    let caller = a.authenticate_token(&t.token).await.unwrap();
    assert_eq!(caller.actor.to_string(), format!("oauth:{}", c.client_id));
    assert_eq!(
        caller.grants.tag_bound(),
        Some(&["tag:k8s".to_string()][..])
    );

    // Narrowed on request; never widened.
    let narrow = a
        .issue_token(&secret, Some(scopes("auth_keys")))
        .await
        .unwrap();
    let nc = a.authenticate_token(&narrow.token).await.unwrap();
    assert!(nc.require(Resource::PreAuthKeys, Access::Write).is_ok());
    assert!(nc.require(Resource::Nodes, Access::Read).is_err());
    assert!(matches!(
        a.issue_token(&secret, Some(scopes("dns"))).await,
        Err(TokenError::InvalidScope(_))
    ));

    // Wrong, forged and unknown secrets.
    let wrong = format!("tskey-client-{}-{}", c.client_id, "0".repeat(64));
    assert_eq!(
        a.issue_token(&wrong, None).await.unwrap_err(),
        TokenError::InvalidClient
    );
    let unknown = OAuthSecret::generate().reveal();
    assert_eq!(
        a.issue_token(&unknown, None).await.unwrap_err(),
        TokenError::InvalidClient
    );
    assert_eq!(
        a.issue_token("tskey-client-nope", None).await.unwrap_err(),
        TokenError::InvalidClient
    );
    // A token signed with another key.
    let forged = token::issue(
        &token::TokenKey::random(),
        &c.client_id,
        ScopeSet::new(OAuthScope::ALL),
        a.now() + token::LIFETIME,
    );
    assert_eq!(
        a.authenticate_token(&forged).await.unwrap_err(),
        AuthError::Invalid
    );
    // An expired one of ours.
    let old = token::issue(
        &a.0.token_key,
        &c.client_id,
        c.scopes,
        a.now() - chrono::Duration::seconds(1),
    );
    assert_eq!(
        a.authenticate_token(&old).await.unwrap_err(),
        AuthError::Expired
    );

    a.delete_oauth_client(&local(), &c.client_id).await.unwrap();
    assert_eq!(
        a.authenticate_token(&t.token).await.unwrap_err(),
        AuthError::Invalid,
        "a deleted client's token is refused at once"
    );
    assert_eq!(
        a.issue_token(&secret, None).await.unwrap_err(),
        TokenError::InvalidClient
    );
}

#[tokio::test]
async fn oauth_keys_and_tags_stay_within_the_clients_tags() {
    let fx = fixture().await;
    let a = &fx.admin;
    let (_, secret) = a
        .create_oauth_client(&local(), client("auth_keys devices:core", &["tag:k8s"]))
        .await
        .unwrap();
    let t = a.issue_token(&secret, None).await.unwrap();
    let c = a.authenticate_token(&t.token).await.unwrap();
    let key = |tags: &[&str]| NewPreAuthKey {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        reusable: true,
        ..Default::default()
    };
    let e = a.create_preauth_key(&c, key(&[])).await.unwrap_err();
    assert!(e.to_string().contains("must carry tags"), "{e}");
    let e = a
        .create_preauth_key(&c, key(&["tag:k8s", "tag:prod"]))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PermissionDenied(_)), "{e}");
    let (info, _) = a.create_preauth_key(&c, key(&["tag:k8s"])).await.unwrap();
    assert_eq!(info.key.tags, ["tag:k8s"]);
    // Owned by its tags, stored under the service user.
    assert_eq!(
        info.owner.as_ref().map(|u| u.name.as_str()),
        Some(TAGGED_OWNER)
    );
    let alice = a
        .create_user(
            &local(),
            crate::admin::NewUser {
                name: "alice".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let e = a
        .create_preauth_key(
            &c,
            NewPreAuthKey {
                user: Some(alice.id),
                ..key(&["tag:k8s"])
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    // Without a user or tags, nobody may create a key.
    assert!(a.create_preauth_key(&local(), key(&[])).await.is_err());
    // Refusals are audited with the client as actor.
    let audit = fx.audit();
    let refused: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "preauthkey.create" && e.result == "error")
        .collect();
    assert_eq!(refused.len(), 4);
    assert!(refused[0].actor.starts_with("oauth:"));
}

#[tokio::test]
async fn bad_secret_floods_cost_at_most_a_read_a_second() {
    let fx = fixture().await;
    let a = &fx.admin;
    let (c, _) = a
        .create_oauth_client(&local(), client("dns:read", &[]))
        .await
        .unwrap();
    let before = a.oauth_clients().database_reads();
    let start = std::time::Instant::now();
    for i in 0..2000u32 {
        let forged = format!("tskey-client-{}-{:064x}", c.client_id, i);
        assert!(a.issue_token(&forged, None).await.is_err());
        let unknown = OAuthSecret::generate().reveal();
        assert!(a.issue_token(&unknown, None).await.is_err());
        assert!(a.authenticate_token(&format!("cstoken-{i}")).await.is_err());
    }
    let secs = start.elapsed().as_secs() + 1;
    let reads = a.oauth_clients().database_reads() - before;
    assert!(reads <= secs + 1, "{reads} reads in {secs} s");
}
