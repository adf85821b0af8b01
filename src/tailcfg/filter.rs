//! `tailcfg.FilterRule` (control.md §4.9). `SrcBits` and `DstPorts[].Bits`
//! are deliberately absent: the 1.96 parser rejects a filter that has them.
//! `CapGrant` carries app capabilities granted to the sources (grants `app`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterRule {
    /// Shared: every member of a team gets the same `autogroup:self`
    /// sources, a few hundred strings each, and a copy per node was most
    /// of its filter's memory.
    #[serde(rename = "SrcIPs")]
    pub src_ips: Arc<Vec<String>>,
    #[serde(rename = "DstPorts", default, skip_serializing_if = "Vec::is_empty")]
    pub dst_ports: Vec<NetPortRange>,
    #[serde(rename = "IPProto", default, skip_serializing_if = "Vec::is_empty")]
    pub ip_proto: Vec<i32>,
    #[serde(rename = "CapGrant", default, skip_serializing_if = "Vec::is_empty")]
    pub cap_grant: Vec<CapGrant>,
}

/// `tailcfg.CapGrant`: capabilities the rule's sources get on `Dsts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapGrant {
    /// Destination prefixes (`100.64.0.1/32`).
    #[serde(rename = "Dsts")]
    pub dsts: Vec<String>,
    #[serde(rename = "CapMap")]
    pub cap_map: BTreeMap<String, Vec<serde_json::Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetPortRange {
    #[serde(rename = "IP")]
    pub ip: String,
    #[serde(rename = "Ports")]
    pub ports: PortRange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    #[serde(rename = "First")]
    pub first: u16,
    #[serde(rename = "Last")]
    pub last: u16,
}

impl FilterRule {
    /// Everything from everyone: what a tailnet without a policy gets.
    pub fn allow_all() -> Self {
        FilterRule {
            src_ips: Arc::new(vec!["*".into()]),
            dst_ports: vec![NetPortRange {
                ip: "*".into(),
                ports: PortRange {
                    first: 0,
                    last: 65535,
                },
            }],
            ip_proto: vec![],
            cap_grant: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_all_has_no_bits_fields() {
        let j = serde_json::to_string(&FilterRule::allow_all()).unwrap();
        assert_eq!(
            j,
            r#"{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}"#
        );
        assert!(!j.contains("Bits"));
    }

    #[test]
    fn cap_grant_shape() {
        let mut cm = BTreeMap::new();
        cm.insert("example.com/cap/x".to_string(), vec![serde_json::json!({})]);
        let r = FilterRule {
            src_ips: Arc::new(vec!["100.64.0.1".into()]),
            dst_ports: vec![],
            ip_proto: vec![],
            cap_grant: vec![CapGrant {
                dsts: vec!["100.64.0.2/32".into()],
                cap_map: cm,
            }],
        };
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            r#"{"SrcIPs":["100.64.0.1"],"CapGrant":[{"Dsts":["100.64.0.2/32"],"CapMap":{"example.com/cap/x":[{}]}}]}"#
        );
        let back: FilterRule = serde_json::from_str(&j).unwrap();
        assert_eq!(back, r);
    }
}
