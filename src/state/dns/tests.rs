//! DNS settings changed over API v2: combined with the file's, published to
//! sessions, stored so a restart keeps them.

use std::time::Duration;

use super::*;
use crate::state::testing;

fn base() -> DnsBase {
    DnsBase {
        magic_dns: true,
        base_domain: "clawql.local".into(),
        override_local_dns: true,
        nameservers: vec!["1.1.1.1".into()],
        split: BTreeMap::from([("corp.example".into(), vec!["10.0.0.53".into()])]),
        search_domains: vec!["file.example".into()],
        reverse_zones: vec!["64.100.in-addr.arpa.".into()],
    }
}

#[test]
fn overrides_replace_each_setting_whole_and_keep_the_rest() {
    let b = base();
    let file = b.build(&DnsOverrides::default());
    assert!(file.proxied);
    assert_eq!(file.resolvers, resolvers(&["1.1.1.1".into()]));
    assert_eq!(file.domains, ["clawql.local", "file.example"]);
    assert!(file.routes.contains_key("64.100.in-addr.arpa."));

    let o = DnsOverrides {
        nameservers: Some(vec!["9.9.9.9".into(), "149.112.112.112".into()]),
        search_paths: Some(vec![]),
        magic_dns: Some(false),
    };
    let c = b.build(&o);
    assert!(!c.proxied);
    assert_eq!(c.resolvers.len(), 2);
    assert_eq!(c.resolvers[0].addr, "9.9.9.9");
    assert!(c.domains.is_empty(), "{:?}", c.domains);
    // Split DNS is the file's; MagicDNS off drops the reverse zones.
    assert_eq!(c.routes.keys().collect::<Vec<_>>(), ["corp.example"]);
    assert_eq!(
        b.view(&o),
        DnsView {
            nameservers: vec!["9.9.9.9".into(), "149.112.112.112".into()],
            search_paths: vec![],
            magic_dns: false,
        }
    );
    // Without a base domain MagicDNS cannot be turned on.
    let bare = DnsBase::default();
    let on = DnsOverrides {
        magic_dns: Some(true),
        ..Default::default()
    };
    assert!(matches!(bare.check(&on), Err(Error::FailedPrecondition(_))));
}

#[tokio::test]
async fn changes_reach_sessions_and_survive_a_restart() {
    let (dir, db, state) = testing::temp_state_with_db(Duration::from_secs(60)).await;
    let session = state.sessions().open(crate::types::NodeId(1));
    let before = state.world().generation;
    // One config per settings and policy version, shared by every stream.
    let first = state.world().dns_config();
    assert!(std::sync::Arc::ptr_eq(&first, &state.world().dns_config()));
    assert!(first.fallback_resolvers.is_empty(), "{first:?}");
    let view = state
        .update_dns(|o| o.nameservers = Some(vec!["9.9.9.9".into()]))
        .await
        .expect("update");
    assert_eq!(view.nameservers, ["9.9.9.9"]);
    let w = state.world();
    assert!(w.generation > before);
    assert_eq!(w.dns_config().fallback_resolvers[0].addr, "9.9.9.9");
    assert!(session.take().settings, "sessions are told");
    // The same value again publishes nothing.
    state
        .update_dns(|o| o.nameservers = Some(vec!["9.9.9.9".into()]))
        .await
        .expect("update");
    assert_eq!(state.world().generation, w.generation);

    assert_eq!(
        db.dns_overrides().await.expect("read").nameservers,
        Some(vec!["9.9.9.9".to_string()])
    );
    // A new policy version with the same DNS content keeps the same
    // config, so streams see it unchanged by its pointer.
    let w = state.world();
    let cfg = w.dns_config();
    state
        .set_policy(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#.into())
        .await
        .expect("policy");
    let after = state.world();
    assert!(!std::ptr::eq(after.policy.as_ref(), w.policy.as_ref()));
    assert!(std::sync::Arc::ptr_eq(&cfg, &after.dns_config()));
    drop(state);
    let again = testing::restart(&dir, db).await;
    assert_eq!(
        again.world().dns_config().fallback_resolvers[0].addr,
        "9.9.9.9"
    );
    assert_eq!(
        again.dns_settings().await.expect("read").nameservers,
        ["9.9.9.9"]
    );
}
