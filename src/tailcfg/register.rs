//! `/machine/register` request and response (tailcfg `RegisterRequest`,
//! `RegisterResponse`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::types::{NodePublic, keys::KeyError};

/// What the client sends. Unknown fields are ignored; every field tolerates
/// `null`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RegisterRequest {
    #[serde(rename = "Version")]
    pub version: i32,
    #[serde(rename = "NodeKey")]
    pub node_key: Option<String>,
    #[serde(rename = "OldNodeKey")]
    pub old_node_key: Option<String>,
    #[serde(rename = "Auth")]
    pub auth: Option<RegisterAuth>,
    /// Zero time (`0001-01-01T00:00:00Z`) = no request; past = logout.
    #[serde(rename = "Expiry")]
    pub expiry: Option<DateTime<Utc>>,
    #[serde(rename = "Followup")]
    pub followup: Option<String>,
    #[serde(rename = "Hostinfo")]
    pub hostinfo: Option<serde_json::Value>,
    #[serde(rename = "Ephemeral")]
    pub ephemeral: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RegisterAuth {
    #[serde(rename = "AuthKey")]
    pub auth_key: Option<String>,
}

impl RegisterRequest {
    pub fn node_key(&self) -> Result<NodePublic, KeyError> {
        self.node_key.as_deref().unwrap_or("").parse()
    }

    /// The old node key, `None` when absent or all-zero.
    pub fn old_node_key(&self) -> Result<Option<NodePublic>, KeyError> {
        match self.old_node_key.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => s.parse::<NodePublic>().map(|k| (!k.is_zero()).then_some(k)),
        }
    }

    pub fn auth_key(&self) -> Option<&str> {
        self.auth
            .as_ref()
            .and_then(|a| a.auth_key.as_deref())
            .filter(|k| !k.is_empty())
    }

    /// The requested expiry if it is a real time (Go's zero time maps to
    /// `None`).
    pub fn expiry(&self) -> Option<DateTime<Utc>> {
        self.expiry.filter(|t| t.timestamp() > 0)
    }
}

/// What we answer. Success is `Error` empty, `AuthURL` empty,
/// `NodeKeyExpired` false and no `NodeKeySignature` (control.md §3.3).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RegisterResponse {
    #[serde(rename = "User")]
    pub user: User,
    #[serde(rename = "Login")]
    pub login: Login,
    #[serde(rename = "NodeKeyExpired")]
    pub node_key_expired: bool,
    #[serde(rename = "MachineAuthorized")]
    pub machine_authorized: bool,
    #[serde(rename = "AuthURL")]
    pub auth_url: String,
    /// Always present, like Go's field (no `omitempty`): some clients
    /// (tailscale-rs) require it.
    #[serde(rename = "Error")]
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct User {
    #[serde(rename = "ID")]
    pub id: i64,
    #[serde(rename = "DisplayName")]
    pub display_name: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Login {
    #[serde(rename = "ID")]
    pub id: i64,
    #[serde(rename = "Provider")]
    pub provider: String,
    #[serde(rename = "LoginName")]
    pub login_name: String,
    #[serde(rename = "DisplayName")]
    pub display_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_196_register_request() {
        let zero = format!("nodekey:{}", "0".repeat(64));
        let nk = format!("nodekey:{}", "1a".repeat(32));
        let body = format!(
            r#"{{"Version":133,"NodeKey":"{nk}","OldNodeKey":"{zero}","NLKey":"nlpub:{}",
            "Auth":{{"Provider":"","LoginName":"","AuthKey":"cskey-auth-x"}},
            "Expiry":"0001-01-01T00:00:00Z","Followup":"","Hostinfo":{{"Hostname":"a"}},
            "NodeKeySignature":null,"Unknown":1}}"#,
            "0".repeat(64)
        );
        let r: RegisterRequest = serde_json::from_str(&body).unwrap();
        assert_eq!(r.version, 133);
        assert_eq!(r.node_key().unwrap().to_string(), nk);
        assert_eq!(r.old_node_key().unwrap(), None);
        assert_eq!(r.auth_key(), Some("cskey-auth-x"));
        assert_eq!(r.expiry(), None);
    }

    #[test]
    fn logout_expiry_is_in_the_past() {
        let r: RegisterRequest =
            serde_json::from_str(r#"{"Expiry":"1970-01-01T00:02:03Z"}"#).unwrap();
        assert_eq!(r.expiry().unwrap().timestamp(), 123);
        let r: RegisterRequest =
            serde_json::from_str(r#"{"Expiry":"2030-01-01T00:00:00+02:00"}"#).unwrap();
        assert_eq!(
            r.expiry().unwrap().to_rfc3339(),
            "2029-12-31T22:00:00+00:00"
        );
    }

    #[test]
    fn error_field_is_always_sent() {
        let ok = serde_json::to_value(RegisterResponse::default()).unwrap();
        assert_eq!(ok["Error"], "");
        assert_eq!(ok["AuthURL"], "");
        let err = RegisterResponse {
            error: "bad key".into(),
            ..Default::default()
        };
        assert_eq!(serde_json::to_value(err).unwrap()["Error"], "bad key");
    }
}
