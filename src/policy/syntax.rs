//! HuJSON text to the typed `Doc`, with every check Tailscale performs at
//! save time that needs no topology, worded as Tailscale words it where
//! known. One file per section (`acls`, `grants`, `ssh`, `services`,
//! `node_attrs`, `tests_block`, `auto_approvers`, and `targets` for the
//! `groups`, `hosts` and `tagOwners` the others refer to); an unknown
//! field anywhere is an error with its line and column. Depends on
//! `model` only.

pub mod acls;
pub mod auto_approvers;
pub mod fields;
pub mod grants;
pub mod hujson;
pub mod node_attrs;
pub mod selector;
pub mod services;
pub mod ssh;
pub mod targets;
pub mod tests_block;

use serde_json::Value;

use self::fields::{Ctx, NO_POSTURE, boolean, key_path, obj};
use crate::policy::model::{ALL_PORTS, Alias, Doc, Dst, PolicyError, Rule};

/// Parses and validates a policy text (no topology needed).
pub fn parse(src: &str) -> Result<Doc, PolicyError> {
    let (v, pos) = hujson::parse(src).map_err(|e| PolicyError::at(e.line, e.col, e.msg))?;
    let ctx = Ctx { pos: &pos };
    build(&ctx, &v)
}

const KNOWN_KEYS: &[&str] = &[
    "groups",
    "hosts",
    "tagOwners",
    "acls",
    "grants",
    "ssh",
    "nodeAttrs",
    "autoApprovers",
    "tests",
    "sshTests",
    "services",
    "derpMap",
    "disableIPv4",
    "randomizeClientPort",
    "OneCGNATRoute",
    "postures",
    "ipsets",
    "attrConfig",
    "settings",
    "etc",
    "$schema",
    "autogroups",
    "ipPool",
    "tailnetLock",
];

pub fn build(ctx: &Ctx, root: &Value) -> Result<Doc, PolicyError> {
    let top = obj(ctx, root, "")?;
    for k in top.keys() {
        if k == "defaultSrcPosture" {
            return Err(ctx.err(
                &key_path("", k),
                format!("{k:?} is not supported: {NO_POSTURE}"),
            ));
        }
        if !KNOWN_KEYS.contains(&k.as_str()) {
            return Err(ctx.err(&key_path("", k), format!("unknown top-level field {k:?}")));
        }
    }
    for k in ["randomizeClientPort", "disableIPv4", "OneCGNATRoute"] {
        boolean(ctx, top.get(k), &key_path("", k))?;
    }
    let mut doc = Doc {
        randomize_client_port: boolean(
            ctx,
            top.get("randomizeClientPort"),
            "/randomizeClientPort",
        )?,
        ..Doc::default()
    };
    targets::parse(ctx, &mut doc, top)?;
    if let Some(s) = top.get("services") {
        services::parse(ctx, &mut doc, s)?;
    }
    if let Some(a) = top.get("acls") {
        acls::parse_acls(ctx, &mut doc, a)?;
    }
    if let Some(g) = top.get("grants") {
        grants::parse_grants(ctx, &mut doc, g)?;
    }
    services::implied_grants(&mut doc);
    if !top.contains_key("acls") && !top.contains_key("grants") {
        // No access rules at all means "allow everything", as on Tailscale.
        doc.rules.push(Rule {
            deny: false,
            src: vec![Alias::Wildcard],
            dsts: vec![Dst::new(Alias::Wildcard, vec![ALL_PORTS], vec![])],
            app_dsts: vec![],
            app: None,
            via: vec![],
            origin: "default allow-all".into(),
        });
    }
    if let Some(a) = top.get("autoApprovers") {
        auto_approvers::parse_auto(ctx, &mut doc, a)?;
    }
    if let Some(n) = top.get("nodeAttrs") {
        node_attrs::parse(ctx, &mut doc, n)?;
    }
    if let Some(s) = top.get("ssh") {
        ssh::parse_rules(ctx, &mut doc, s)?;
    }
    if let Some(t) = top.get("tests") {
        tests_block::parse_tests(ctx, &mut doc, t)?;
    }
    if let Some(t) = top.get("sshTests") {
        tests_block::parse_ssh_tests(ctx, &mut doc, t)?;
    }
    Ok(doc)
}
