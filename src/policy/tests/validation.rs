//! Save-time validation as strict as Tailscale's, one rule per test: an
//! unknown field anywhere, selectors where Tailscale does not take them,
//! capability names, protocols, SSH pairings and `checkPeriod`, the shapes
//! of `tests` and `sshTests`, and the domains `user:*@` / `localpart:*@`
//! may name.

use crate::policy::{Policy, PolicyError, TopoNode, TopoUser, Topology};

const HEAD: &str = r#"
  "groups": {"group:ops": ["ops@example.com"]},
  "tagOwners": {"tag:server": ["group:ops"], "tag:client": ["group:ops"]},
  "hosts": {"db": "100.64.0.9", "lan": "10.0.0.0/8"},
"#;

fn parse(body: &str) -> Result<Policy, PolicyError> {
    Policy::parse(&format!("{{{HEAD}{body}}}"))
}

/// The message of the error `body` must be rejected with.
fn rejected(body: &str) -> String {
    match parse(body) {
        Ok(_) => panic!("accepted, but must be rejected:\n{body}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_fields_are_errors_with_their_position() {
    for (body, field) in [
        (
            r#""acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"], "comment": "x"}]"#,
            "comment",
        ),
        (
            r#""grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"], "ips": ["22"]}]"#,
            "ips",
        ),
        (
            r#""ssh": [{"action": "accept", "src": ["group:ops"], "dst": ["tag:server"], "users": ["root"], "user": "x"}]"#,
            "user",
        ),
        (
            r#""nodeAttrs": [{"target": ["*"], "attrs": ["funnel"]}]"#,
            "attrs",
        ),
        (
            r#""tests": [{"src": "ops@example.com", "accept": ["db:22"], "allow": []}]"#,
            "allow",
        ),
        (
            r#""sshTests": [{"src": "ops@example.com", "dst": ["tag:server"], "acept": ["root"]}]"#,
            "acept",
        ),
        (r#""autoApprovers": {"route": {}}"#, "route"),
        (
            r#""services": {"svc:a": {"hosts": ["tag:server"], "ports": ["tcp:1"], "port": 2}}"#,
            "mixes",
        ),
        (
            r#""services": {"svc:a": {"hosts": ["tag:server"], "ports": ["tcp:1"], "description": "x"}}"#,
            "description",
        ),
    ] {
        let e = parse(body).expect_err(body);
        assert!(e.message.contains(field), "{body}: {e}");
        assert!(e.position.is_some(), "{body}: {e} has no line:column");
    }
    // The position is the unknown field's.
    let e = Policy::parse("{\n  \"acls\": [\n    {\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:*\"],\n     \"comment\": \"x\"}]}")
        .expect_err("unknown field");
    assert_eq!(e.position, Some((4, 17)), "{e}");
}

#[test]
fn posture_conditions_are_refused_not_ignored() {
    let e = rejected(
        r#""grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"], "srcPosture": ["posture:latest"]}]"#,
    );
    assert!(
        e.contains("srcPosture") && e.contains("not supported"),
        "{e}"
    );
    let e = Policy::parse(r#"{"defaultSrcPosture": ["posture:x"]}"#).unwrap_err();
    assert!(e.message.contains("not supported"), "{e}");
}

#[test]
fn legacy_users_and_ports_fields_are_src_and_dst() {
    let p = parse(
        r#""acls": [{"action": "accept", "users": ["group:ops"], "ports": ["tag:server:22"]}]"#,
    )
    .expect("legacy field names");
    assert_eq!(p.doc.rules[0].src.len(), 1);
    assert_eq!(p.doc.rules[0].dsts.len(), 1);
    let e =
        rejected(r#""acls": [{"action": "accept", "src": ["*"], "users": ["*"], "dst": ["*:*"]}]"#);
    assert!(e.contains("cannot both be set"), "{e}");
}

#[test]
fn autogroup_internet_only_as_an_acl_or_grant_destination() {
    const MSG: &str = "autogroup:internet can only be used in ACL destinations";
    assert!(
        parse(r#""acls": [{"action": "accept", "src": ["*"], "dst": ["autogroup:internet:*"]}]"#)
            .is_ok()
    );
    assert!(
        parse(r#""grants": [{"src": ["*"], "dst": ["autogroup:internet"], "ip": ["*"]}]"#).is_ok()
    );
    for body in [
        r#""acls": [{"action": "accept", "src": ["autogroup:internet"], "dst": ["*:*"]}]"#,
        r#""grants": [{"src": ["autogroup:internet"], "dst": ["*"], "ip": ["*"]}]"#,
        r#""ssh": [{"action": "accept", "src": ["group:ops"], "dst": ["autogroup:internet"], "users": ["root"]}]"#,
        r#""nodeAttrs": [{"target": ["autogroup:internet"], "attr": ["funnel"]}]"#,
        r#""autoApprovers": {"exitNode": ["autogroup:internet"]}"#,
    ] {
        assert!(rejected(body).contains(MSG), "{body}");
    }
    let e =
        rejected(r#""tests": [{"src": "ops@example.com", "accept": ["autogroup:internet:443"]}]"#);
    assert!(e.contains("not valid as a test destination"), "{e}");
    let e = rejected(
        r#""sshTests": [{"src": "ops@example.com", "dst": ["autogroup:internet"], "accept": ["root"]}]"#,
    );
    assert!(
        e.contains("SSH tests dst contains disallowed element \"autogroup:internet\""),
        "{e}"
    );
    let e = rejected(
        r#""grants": [{"src": ["*"], "dst": ["autogroup:internet"], "app": {"example.com/cap/x": [{}]}}]"#,
    );
    assert!(
        e.contains("cannot use app grants with autogroup:internet"),
        "{e}"
    );
}

#[test]
fn node_attrs_target_nodes_only() {
    for ok in [
        "*",
        "group:ops",
        "tag:server",
        "ops@example.com",
        "autogroup:member",
        "autogroup:tagged",
        "autogroup:admin",
        "db",
        "100.64.0.0/10",
    ] {
        assert!(
            parse(&format!(
                r#""nodeAttrs": [{{"target": ["{ok}"], "attr": ["x"]}}]"#
            ))
            .is_ok(),
            "{ok}"
        );
    }
    for bad in ["autogroup:self", "autogroup:danger-all"] {
        let e = rejected(&format!(
            r#""nodeAttrs": [{{"target": ["{bad}"], "attr": ["x"]}}]"#
        ));
        assert!(
            e.contains("nodeAttrs target does not support this autogroup"),
            "{e}"
        );
    }
    let e = rejected(r#""nodeAttrs": [{"target": ["*"], "ipPool": ["10.0.0.0/8"]}]"#);
    assert!(e.contains("100.64.0.0/10"), "{e}");
}

#[test]
fn tag_owners_and_auto_approvers_are_identities() {
    let e = Policy::parse(r#"{"tagOwners": {"tag:x": ["*"]}}"#).unwrap_err();
    assert!(e.message.contains("cannot own tags"), "{e}");
    let e = rejected(r#""autoApprovers": {"routes": {"10.0.0.0/8": ["10.1.2.3"]}}"#);
    assert!(e.contains("invalid auto approver"), "{e}");
    let e = Policy::parse(r#"{"groups": {"group:a": ["autogroup:member"]}}"#).unwrap_err();
    assert!(e.message.contains("username must contain @"), "{e}");
}

#[test]
fn grant_capability_names_and_protocols() {
    let cap = |name: &str| {
        parse(&format!(
            r#""grants": [{{"src": ["*"], "dst": ["tag:server"], "app": {{"{name}": [{{}}]}}}}]"#
        ))
    };
    assert!(cap("example.com/cap/mcp").is_ok());
    assert!(cap("tailscale.com/cap/golink").is_ok());
    assert!(
        cap("https://example.com/cap/mcp")
            .unwrap_err()
            .message
            .contains("{domain}/{path}")
    );
    assert!(
        cap("tailscale.com/cap/drive-sharer")
            .unwrap_err()
            .message
            .contains("tailscale.com domain")
    );
    let e = rejected(
        r#""acls": [{"action": "accept", "src": ["*"], "proto": "icmp", "dst": ["*:22"]}]"#,
    );
    assert!(
        e.contains("protocol does not support specific ports"),
        "{e}"
    );
    assert!(
        parse(r#""acls": [{"action": "accept", "src": ["*"], "proto": "icmp", "dst": ["*:*"]}]"#)
            .is_ok()
    );
    let e =
        rejected(r#""acls": [{"action": "accept", "src": ["*"], "proto": "06", "dst": ["*:*"]}]"#);
    assert!(e.contains("leading 0"), "{e}");
}

#[test]
fn unapplied_tailscale_sections_are_accepted_but_ipset_selectors_are_not() {
    // Accepted and not applied (clawscale's configuration decides).
    assert!(
        Policy::parse(r#"{"derpMap": {}, "disableIPv4": false, "ipsets": {"ipset:x": []}}"#)
            .is_ok()
    );
    let e = rejected(r#""acls": [{"action": "accept", "src": ["ipset:x"], "dst": ["*:*"]}]"#);
    assert!(e.contains("ipset:x"), "{e}");
    let e = Policy::parse(r#"{"disableIPv4": "yes"}"#).unwrap_err();
    assert!(e.message.contains("true or false"), "{e}");
}

#[test]
fn bracketed_ipv6_destinations() {
    let p =
        parse(r#""acls": [{"action": "accept", "src": ["*"], "dst": ["[fd7a:115c:a1e0::9]:22"]}]"#)
            .expect("bracketed IPv6");
    assert_eq!(p.doc.rules[0].dsts[0].alias.text(), "fd7a:115c:a1e0::9/128");
    assert!(
        rejected(r#""acls": [{"action": "accept", "src": ["*"], "dst": ["[100.64.0.1]:22"]}]"#)
            .contains("IPv6")
    );
}

#[test]
fn tests_name_one_host_one_port_over_tcp_udp_or_sctp() {
    let t = |entry: &str| {
        parse(&format!(
            r#""acls": [{{"action": "accept", "src": ["*"], "dst": ["*:*"]}}], "tests": [{entry}]"#
        ))
    };
    assert!(t(r#"{"src": "ops@example.com", "proto": "udp", "accept": ["db:53"]}"#).is_ok());
    assert!(
        t(r#"{"src": "ops@example.com", "proto": "6", "accept": ["[fd7a:115c:a1e0::9]:22"]}"#)
            .is_ok()
    );
    for (entry, why) in [
        (
            r#"{"src": "ops@example.com", "accept": ["db:*"]}"#,
            "single port",
        ),
        (
            r#"{"src": "ops@example.com", "accept": ["db:22,80"]}"#,
            "single port",
        ),
        (
            r#"{"src": "ops@example.com", "deny": ["db:20-25"]}"#,
            "single port",
        ),
        (
            r#"{"src": "ops@example.com", "accept": ["100.64.0.0/24:22"]}"#,
            "not a CIDR range",
        ),
        (
            r#"{"src": "ops@example.com", "deny": ["lan:22"]}"#,
            "not a CIDR range",
        ),
        (
            r#"{"src": "ops@example.com", "proto": "icmp", "accept": ["db:22"]}"#,
            "tcp, udp, sctp",
        ),
        (r#"{"src": "ops@example.com"}"#, "at least one"),
        (
            r#"{"src": "autogroup:internet", "accept": ["db:22"]}"#,
            "ACL destinations",
        ),
    ] {
        let e = t(entry).expect_err(entry);
        assert!(e.message.starts_with("test(s) failed"), "{entry}: {e}");
        assert!(e.message.contains(why), "{entry}: {e}");
    }
}

#[test]
fn ssh_tests_name_single_hosts() {
    let t = |dst: &str| {
        parse(&format!(
            r#""sshTests": [{{"src": "ops@example.com", "dst": ["{dst}"], "deny": ["root"]}}]"#
        ))
    };
    assert!(t("tag:server").is_ok());
    assert!(t("fd7a:115c:a1e0::9").is_ok());
    assert!(
        t("tag:server:22")
            .unwrap_err()
            .message
            .contains("unknown tag")
    );
    assert!(
        t("10.0.0.0/8")
            .unwrap_err()
            .message
            .contains("disallowed element")
    );
    assert!(t("lan").unwrap_err().message.contains("disallowed element"));
}

fn topo() -> Topology {
    Topology::new(
        vec![TopoUser {
            id: 1,
            name: "ops".into(),
            login: "ops@example.com".into(),
            groups: vec![],
        }],
        vec![TopoNode {
            id: 1,
            name: "laptop".into(),
            user: Some(1),
            ipv4: Some("100.64.0.1".parse().expect("ip")),
            ..Default::default()
        }],
    )
}

#[test]
fn ssh_domains_must_belong_to_the_tailnet() {
    let ssh = |src: &str, users: &str| {
        parse(&format!(
            r#""ssh": [{{"action": "accept", "src": ["{src}"], "dst": ["tag:server"], "users": [{users}]}}]"#
        ))
        .expect("parses")
        .check(&topo())
    };
    assert!(ssh("user:*@example.com", r#""root""#).is_ok());
    assert!(ssh("autogroup:member", r#""localpart:*@example.com""#).is_ok());
    for (src, users) in [
        ("user:*@other.org", r#""root""#),
        ("autogroup:member", r#""localpart:*@other.org""#),
        // Domains compare as written.
        ("autogroup:member", r#""localpart:*@EXAMPLE.COM""#),
    ] {
        let e = ssh(src, users).expect_err(src);
        assert!(
            e.message.contains("is not associated with this Tailnet"),
            "{e}"
        );
        assert!(e.position.is_some(), "{e}");
    }
}
