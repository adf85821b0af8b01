//! `node.expiry`, `node.require_approval`, `tuning.register_cache_expiration`,
//! `tuning.batch_change_delay`, `login_url`.

use super::*;
use crate::config::login::Login;

#[test]
fn defaults_when_absent() {
    assert_eq!(load_str("").unwrap().login, Login::default());
    let d = Login::default();
    assert_eq!(d.node_expiry, None);
    assert!(!d.require_approval);
    assert_eq!(d.register_ttl, Duration::from_secs(900));
}

#[test]
fn every_key_is_read() {
    let c = load_str(
        "node:\n  expiry: 10s\n  require_approval: true\ntuning:\n  register_cache_expiration: 3s\n",
    )
    .unwrap();
    assert_eq!(
        c.login,
        Login {
            node_expiry: Some(Duration::from_secs(10)),
            require_approval: true,
            register_ttl: Duration::from_secs(3),
        }
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // Zero is Headscale's "no expiry".
    assert_eq!(
        load_str("node:\n  expiry: 0\n").unwrap().login.node_expiry,
        None
    );
    // The Headscale example's 180d.
    let full = load_str(HEADSCALE_FULL).unwrap().login;
    assert_eq!(full.node_expiry, Some(Duration::from_secs(180 * 86400)));
}

#[test]
fn bad_values_name_their_key() {
    assert!(error_of("node:\n  expiry: soon\n").contains("node.expiry"));
    assert!(
        error_of("tuning:\n  register_cache_expiration: 0\n")
            .contains("tuning.register_cache_expiration")
    );
    assert!(error_of("node:\n  require_approval: maybe\n").contains("require_approval"));
    assert!(error_of("node:\n  requires_approval: true\n").contains("requires_approval"));
}

#[test]
fn batch_change_delay_is_read_bounded_and_defaulted() {
    assert_eq!(
        load_str("").unwrap().batch_change_delay,
        crate::config::DEFAULT_BATCH_CHANGE_DELAY
    );
    let c = load_str("tuning:\n  batch_change_delay: 200ms\n").unwrap();
    assert_eq!(c.batch_change_delay, Duration::from_millis(200));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(
        load_str("tuning:\n  batch_change_delay: 0s\n")
            .unwrap()
            .batch_change_delay,
        Duration::ZERO
    );
    // Headscale's example sets 1s.
    assert_eq!(
        load_str(HEADSCALE_FULL).unwrap().batch_change_delay,
        Duration::from_secs(1)
    );
    for bad in ["11s", "soon"] {
        let e = load_str(&format!("tuning:\n  batch_change_delay: {bad}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tuning.batch_change_delay"), "{bad}: {e}");
    }
}

#[test]
fn login_url_is_optional_and_must_be_a_url() {
    let c = load_str("server_url: https://r1.example\n").unwrap();
    assert_eq!(c.login_url, None);
    let c = load_str("server_url: https://r1.example\nlogin_url: https://lb.example/\n").unwrap();
    assert_eq!(c.login_url.as_deref(), Some("https://lb.example"));
    let e = error_of("login_url: lb.example\n");
    assert!(e.contains("login_url") && e.contains("http://"), "{e}");
}
