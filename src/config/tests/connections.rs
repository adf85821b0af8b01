//! The `connections` section: defaults, every key, and bad values.

use super::*;

#[test]
fn defaults_when_absent() {
    let c = load_str("").unwrap().connections;
    assert_eq!(
        c,
        Connections {
            max_per_ip: 1024,
            max_total: None,
            read_header_timeout: Duration::from_secs(10),
            read_body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
        }
    );
}

#[test]
fn every_key_is_read() {
    let c = load_str(
        "connections:\n  max_per_ip: 50\n  max_total: 900\n  read_header_timeout: 3s\n  \
         read_body_timeout: 4s\n  idle_timeout: 1m30s\n  keepalive_interval: 25s\n  \
         keepalive_timeout: 5s\n",
    )
    .unwrap()
    .connections;
    assert_eq!(
        c,
        Connections {
            max_per_ip: 50,
            max_total: Some(900),
            read_header_timeout: Duration::from_secs(3),
            read_body_timeout: Duration::from_secs(4),
            idle_timeout: Duration::from_secs(90),
            keepalive_interval: Duration::from_secs(25),
            keepalive_timeout: Duration::from_secs(5),
        }
    );
    // 0 asks for the derived total, like an absent key.
    let c = load_str("connections: {max_total: 0}\n").unwrap();
    assert_eq!(c.connections.max_total, None);
}

#[test]
fn bad_values_name_their_key() {
    for (yaml, key) in [
        ("connections: {max_per_ip: 0}\n", "connections.max_per_ip"),
        (
            "connections: {read_header_timeout: 0s}\n",
            "connections.read_header_timeout",
        ),
        (
            "connections: {read_body_timeout: \"0\"}\n",
            "connections.read_body_timeout",
        ),
        (
            "connections: {idle_timeout: soon}\n",
            "connections.idle_timeout",
        ),
        (
            "connections: {keepalive_interval: 0ms}\n",
            "connections.keepalive_interval",
        ),
        (
            "connections: {keepalive_timeout: 0s}\n",
            "connections.keepalive_timeout",
        ),
    ] {
        let err = error_of(yaml);
        assert!(
            err.starts_with(&format!("invalid {key}:")),
            "{yaml:?}: {err}"
        );
    }
    // Wrong types and unknown keys are caught by the parser, with the path.
    assert!(error_of("connections: {max_per_ip: -1}\n").contains("max_per_ip"));
    let err = error_of("connections: {max_per_source: 5}\n");
    assert!(err.contains("connections.max_per_source"), "{err}");
}
