//! `tailcfg.SSHPolicy` and friends: the Tailscale SSH rules a node enforces,
//! sent in `MapResponse.SSHPolicy`. JSON names follow Go's tags (lower camel).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshPolicy {
    /// Always present (possibly empty): `{"rules": []}` means "no SSH".
    pub rules: Vec<SshRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshRule {
    #[serde(
        rename = "ruleExpires",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rule_expires: Option<String>,
    pub principals: Vec<SshPrincipal>,
    /// Remote user → local user; `"*": "="` maps any user to itself, `""` denies.
    #[serde(rename = "sshUsers")]
    pub ssh_users: BTreeMap<String, String>,
    pub action: SshAction,
    #[serde(rename = "acceptEnv", default, skip_serializing_if = "Vec::is_empty")]
    pub accept_env: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshPrincipal {
    #[serde(rename = "nodeIP", default, skip_serializing_if = "String::is_empty")]
    pub node_ip: String,
    #[serde(
        rename = "userLogin",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub user_login: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub any: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshAction {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reject: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accept: bool,
    #[serde(rename = "sessionDuration", default, skip_serializing_if = "is_zero")]
    pub session_duration: i64,
    #[serde(
        rename = "allowAgentForwarding",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub allow_agent_forwarding: bool,
    #[serde(
        rename = "holdAndDelegate",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub hold_and_delegate: String,
    #[serde(
        rename = "allowLocalPortForwarding",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub allow_local_port_forwarding: bool,
    #[serde(
        rename = "allowRemotePortForwarding",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub allow_remote_port_forwarding: bool,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_rule_shape() {
        let r = SshRule {
            rule_expires: None,
            principals: vec![SshPrincipal {
                node_ip: "100.64.0.1".into(),
                ..Default::default()
            }],
            ssh_users: BTreeMap::from([("root".to_string(), "root".to_string())]),
            action: SshAction {
                accept: true,
                allow_agent_forwarding: true,
                allow_local_port_forwarding: true,
                allow_remote_port_forwarding: true,
                ..Default::default()
            },
            accept_env: vec![],
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"principals":[{"nodeIP":"100.64.0.1"}],"sshUsers":{"root":"root"},
              "action":{"accept":true,"allowAgentForwarding":true,"allowLocalPortForwarding":true,"allowRemotePortForwarding":true}})
        );
    }
}
