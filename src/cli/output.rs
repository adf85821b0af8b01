//! Output: machine formats (`json`, `json-line`, `yaml`) of serde views of
//! the API's answers, and plain-text tables for people.
//!
//! The views use the proto field names (as Headscale v0.29's `-o json`
//! does) with numeric ids and timestamps as RFC 3339 strings (unset, or
//! Go's zero instant, as `null`); a freshly created pre-auth key carries
//! its secret in `key`.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Error, Result};
use crate::api::v1::model::{self as v1, zero_time};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Indented JSON.
    Json,
    /// JSON on one line.
    JsonLine,
    Yaml,
}

/// Writes `value` in `format`, or `human()` when no format was asked for.
pub(super) fn emit<T: Serialize>(
    out: &mut dyn Write,
    format: Option<Format>,
    value: &T,
    human: impl FnOnce() -> String,
) -> Result<()> {
    let text = match format {
        None => human(),
        Some(Format::Json) => {
            serde_json::to_string_pretty(value).map_err(|e| Error::Encode(e.to_string()))?
        }
        Some(Format::JsonLine) => {
            serde_json::to_string(value).map_err(|e| Error::Encode(e.to_string()))?
        }
        Some(Format::Yaml) => {
            serde_norway::to_string(value).map_err(|e| Error::Encode(e.to_string()))?
        }
    };
    writeln!(out, "{}", text.trim_end_matches('\n'))?;
    Ok(())
}

/// A left-aligned text table with a header row.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(cell);
            s.extend(std::iter::repeat_n(
                ' ',
                w.saturating_sub(cell.chars().count()),
            ));
        }
        s.trim_end().to_string()
    };
    let mut text = line(&mut header.iter().copied());
    for row in rows {
        text.push('\n');
        text.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    text
}

/// A time as shown: `None` for unset or Go's zero instant.
fn shown(t: Option<&DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t.copied().filter(|t| *t != zero_time())
}

fn rfc3339(t: Option<&DateTime<Utc>>) -> Option<String> {
    shown(t).map(|t| t.to_rfc3339())
}

/// `2006-01-02 15:04:05` in UTC, Headscale's table format; `-` if unset.
pub(super) fn cell_time(t: Option<&DateTime<Utc>>) -> String {
    shown(t)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Whether `t` is set and not in the future.
pub(super) fn is_past(t: Option<&DateTime<Utc>>) -> bool {
    shown(t).is_some_and(|t| t <= Utc::now())
}

/// A wire id (decimal string) as a number; 0 if it is not one.
pub(super) fn num(id: &str) -> u64 {
    id.parse().unwrap_or(0)
}

#[derive(Debug, Serialize)]
pub(super) struct UserView {
    pub id: u64,
    pub name: String,
    pub display_name: String,
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// `oidc` for users of an identity provider (Headscale's field).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub provider: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub provider_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub profile_pic_url: String,
}

impl From<&v1::User> for UserView {
    fn from(u: &v1::User) -> Self {
        UserView {
            id: num(&u.id),
            name: u.name.clone(),
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            created_at: rfc3339(Some(&u.created_at)),
            provider: u.provider.clone(),
            provider_id: u.provider_id.clone(),
            profile_pic_url: u.profile_pic_url.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct KeyView {
    pub id: u64,
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserView>,
    pub reusable: bool,
    pub ephemeral: bool,
    pub used: bool,
    pub expiration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    pub acl_tags: Vec<String>,
}

impl From<&v1::PreAuthKey> for KeyView {
    fn from(k: &v1::PreAuthKey) -> Self {
        KeyView {
            id: num(&k.id),
            key: k.key.clone(),
            user: k.user.as_ref().map(UserView::from),
            reusable: k.reusable,
            ephemeral: k.ephemeral,
            used: k.used,
            expiration: rfc3339(Some(&k.expiration)),
            created_at: rfc3339(Some(&k.created_at)),
            acl_tags: k.acl_tags.clone(),
        }
    }
}

impl From<&v1::NodePreAuthKey> for KeyView {
    fn from(k: &v1::NodePreAuthKey) -> Self {
        KeyView {
            id: num(&k.id),
            key: k.key.clone(),
            user: k.user.as_ref().map(UserView::from),
            reusable: k.reusable,
            ephemeral: k.ephemeral,
            used: k.used,
            expiration: rfc3339(k.expiration.as_ref()),
            created_at: rfc3339(k.created_at.as_ref()),
            acl_tags: k.acl_tags.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct NodeView {
    pub id: u64,
    pub machine_key: String,
    pub node_key: String,
    pub disco_key: String,
    pub ip_addresses: Vec<String>,
    pub name: String,
    pub given_name: String,
    pub user: Option<UserView>,
    pub tags: Vec<String>,
    pub online: bool,
    pub last_seen: Option<String>,
    pub expiry: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_auth_key: Option<KeyView>,
    pub register_method: String,
    pub approved_routes: Vec<String>,
    pub available_routes: Vec<String>,
    pub subnet_routes: Vec<String>,
}

impl From<&v1::Node> for NodeView {
    fn from(n: &v1::Node) -> Self {
        let register_method = serde_json::to_value(n.register_method)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        NodeView {
            id: num(&n.id),
            machine_key: n.machine_key.clone(),
            node_key: n.node_key.clone(),
            disco_key: n.disco_key.clone(),
            ip_addresses: n.ip_addresses.clone(),
            name: n.name.clone(),
            given_name: n.given_name.clone(),
            user: n.user.as_ref().map(UserView::from),
            tags: n.tags.clone(),
            online: n.online,
            last_seen: rfc3339(n.last_seen.as_ref()),
            expiry: rfc3339(n.expiry.as_ref()),
            created_at: rfc3339(Some(&n.created_at)),
            pre_auth_key: n.pre_auth_key.as_ref().map(KeyView::from),
            register_method,
            approved_routes: n.approved_routes.clone(),
            available_routes: n.available_routes.clone(),
            subnet_routes: n.subnet_routes.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["ID", "Name"],
            &[
                vec!["1".into(), "alice".into()],
                vec!["10".into(), "b".into()],
            ],
        );
        assert_eq!(t, "ID  Name\n1   alice\n10  b");
    }

    #[test]
    fn formats_render_the_same_value() {
        let value = serde_json::json!({ "id": 1, "key": "k" });
        let render = |f| {
            let mut buf = Vec::new();
            emit(&mut buf, f, &value, || "human".into()).expect("emit");
            String::from_utf8(buf).expect("utf-8")
        };
        assert_eq!(render(None), "human\n");
        assert_eq!(render(Some(Format::JsonLine)), "{\"id\":1,\"key\":\"k\"}\n");
        let pretty: serde_json::Value =
            serde_json::from_str(&render(Some(Format::Json))).expect("json");
        assert_eq!(pretty, value);
        let yaml = render(Some(Format::Yaml));
        assert!(yaml.contains("id: 1") && yaml.contains("key: k"), "{yaml}");
    }

    #[test]
    fn node_view_names_the_register_method_and_times() {
        let epoch = DateTime::from_timestamp(0, 0).expect("epoch");
        let node = v1::Node {
            id: "4".into(),
            machine_key: String::new(),
            node_key: String::new(),
            disco_key: String::new(),
            ip_addresses: vec![],
            name: String::new(),
            user: None,
            last_seen: None,
            expiry: Some(epoch),
            pre_auth_key: None,
            created_at: zero_time(),
            register_method: v1::RegisterMethod::AuthKey,
            given_name: String::new(),
            online: false,
            approved_routes: vec![],
            available_routes: vec![],
            subnet_routes: vec![],
            tags: vec![],
            certificates: vec![],
        };
        let v = NodeView::from(&node);
        assert_eq!(v.id, 4);
        assert_eq!(v.register_method, "REGISTER_METHOD_AUTH_KEY");
        assert_eq!(v.expiry.as_deref(), Some("1970-01-01T00:00:00+00:00"));
        assert_eq!(v.last_seen, None);
        assert_eq!(v.created_at, None, "the zero instant is unset");
        assert_eq!(cell_time(node.expiry.as_ref()), "1970-01-01 00:00:00");
        assert!(is_past(node.expiry.as_ref()));
        assert_eq!(cell_time(None), "-");
        assert_eq!(cell_time(Some(&zero_time())), "-");
    }
}
