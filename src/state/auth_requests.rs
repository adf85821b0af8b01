//! Pending interactive requests shared between replicas (PostgreSQL): the
//! database side of `admin::registrations`. A request is stored when it
//! starts, claimed once by whichever replica decides it, and its verdict is
//! announced to the replica whose client waits. Without replicas every
//! call is a no-op and the in-memory store is the whole truth.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;

use super::{Error, RegisterInput, Result, StateHandle};
pub use crate::db::auth_requests::Expiry;
use crate::db::auth_requests::StoredVerdict;
use crate::types::{NodeId, UserId};

/// A decision as another replica reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedVerdict {
    /// Approved; for a registration, the node it created.
    Approved(Option<NodeId>),
    /// A person proved to be this user (an SSH check).
    Vouched(UserId),
    Rejected(String),
}

/// A request another replica stored, as [`StateHandle::find_request`]
/// finds it.
#[derive(Debug, Clone)]
pub struct SharedRequest {
    /// What it registers (`None`: it only needs a verdict).
    pub registration: Option<RegisterInput>,
    /// What a verdict-only request is about (an SSH check's login).
    pub subject: Option<String>,
    /// How long until it expires.
    pub left: Duration,
}

/// `RegisterInput` as stored. An interactive registration has no auth key
/// (a client with one is not asked to log in), so none is kept.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredInput {
    machine_key: String,
    node_key: String,
    old_node_key: Option<String>,
    expiry: Option<DateTime<Utc>>,
    hostinfo: serde_json::Value,
    ephemeral: bool,
    version: i32,
}

fn encode(r: &RegisterInput) -> Result<String> {
    let s = StoredInput {
        machine_key: r.machine_key.to_string(),
        node_key: r.node_key.to_string(),
        old_node_key: r.old_node_key.map(|k| k.to_string()),
        expiry: r.expiry,
        hostinfo: r.hostinfo.clone(),
        ephemeral: r.ephemeral,
        version: r.version,
    };
    serde_json::to_string(&s).map_err(|e| Error::Internal(format!("encoding a request: {e}")))
}

fn decode(text: &str) -> Result<RegisterInput> {
    fn bad(e: impl std::fmt::Display) -> Error {
        Error::Internal(format!("stored request unreadable: {e}"))
    }
    let s: StoredInput = serde_json::from_str(text).map_err(bad)?;
    Ok(RegisterInput {
        machine_key: s.machine_key.parse().map_err(bad)?,
        node_key: s.node_key.parse().map_err(bad)?,
        old_node_key: s.old_node_key.map(|k| k.parse()).transpose().map_err(bad)?,
        auth_key: None,
        expiry: s.expiry,
        hostinfo: s.hostinfo,
        ephemeral: s.ephemeral,
        version: s.version,
    })
}

impl StateHandle {
    /// Stores a pending request (`id_hash`: SHA-256 hex of its auth id)
    /// for `ttl`; `subject` says what a request that registers nothing is
    /// about.
    pub async fn share_request(
        &self,
        id_hash: &str,
        registration: Option<&RegisterInput>,
        subject: Option<&str>,
        ttl: Duration,
    ) -> Result<()> {
        let Some(db) = &self.shared else {
            return Ok(());
        };
        let text = registration.map(encode).transpose()?;
        Ok(db
            .put_auth_request(id_hash, text.as_deref(), subject, ttl)
            .await?)
    }

    /// Claims a pending request for a decision: what it registers
    /// (`Some(None)`: nothing), or `None` when it is not pending (unknown,
    /// expired, or claimed already). Without replicas: `Some(None)`, the
    /// in-memory store decides alone.
    pub async fn claim_request(&self, id_hash: &str) -> Result<Option<Option<RegisterInput>>> {
        let Some(db) = &self.shared else {
            return Ok(Some(None));
        };
        match db.claim_auth_request(id_hash).await? {
            Some(Some(text)) => Ok(Some(Some(decode(&text)?))),
            Some(None) => Ok(Some(None)),
            None => Ok(None),
        }
    }

    /// Takes a request whose wait ran out, for recording its expiry: what
    /// it found ([`Expiry`]). Without replicas: `Expired`, the one waiter
    /// is here.
    pub async fn expire_request(&self, id_hash: &str) -> Result<Expiry> {
        match &self.shared {
            Some(db) => Ok(db.expire_auth_request(id_hash).await?),
            None => Ok(Expiry::Expired),
        }
    }

    /// What a pending, unclaimed request registers (`Some(None)`:
    /// nothing), or `None` when it is not pending; `None` without replicas.
    pub async fn peek_request(&self, id_hash: &str) -> Result<Option<Option<RegisterInput>>> {
        let Some(db) = &self.shared else {
            return Ok(None);
        };
        match db.peek_auth_request(id_hash).await? {
            Some(Some(text)) => Ok(Some(Some(decode(&text)?))),
            Some(None) => Ok(Some(None)),
            None => Ok(None),
        }
    }

    /// An unexpired request in any state, pending or decided; `None` when
    /// unknown or expired, and without replicas.
    pub async fn find_request(&self, id_hash: &str) -> Result<Option<SharedRequest>> {
        let Some(db) = &self.shared else {
            return Ok(None);
        };
        let Some(found) = db.find_auth_request(id_hash).await? else {
            return Ok(None);
        };
        Ok(Some(SharedRequest {
            registration: found.registration.as_deref().map(decode).transpose()?,
            subject: found.subject,
            left: found.left,
        }))
    }

    /// Stores the verdict on a claimed request and tells the replicas.
    pub async fn decide_request(&self, id_hash: &str, verdict: &SharedVerdict) -> Result<()> {
        let Some(db) = &self.shared else {
            return Ok(());
        };
        let mut v = StoredVerdict {
            id_hash: id_hash.to_string(),
            state: String::new(),
            node_id: None,
            user_id: None,
            reason: None,
        };
        match verdict {
            SharedVerdict::Approved(node) => {
                v.state = "approved".into();
                v.node_id = node.map(|n| n.0);
            }
            SharedVerdict::Vouched(user) => {
                v.state = "vouched".into();
                v.user_id = Some(user.0);
            }
            SharedVerdict::Rejected(reason) => {
                v.state = "rejected".into();
                v.reason = Some(reason.clone());
            }
        }
        Ok(db.decide_auth_request(&v).await?)
    }

    /// The verdicts stored for any of `hashes`, by hash.
    pub async fn request_verdicts(
        &self,
        hashes: &[String],
    ) -> Result<Vec<(String, SharedVerdict)>> {
        let Some(db) = &self.shared else {
            return Ok(Vec::new());
        };
        let stored = db.auth_verdicts(hashes).await?;
        Ok(stored
            .into_iter()
            .map(|v| {
                let verdict = match v.state.as_str() {
                    "approved" => SharedVerdict::Approved(v.node_id.map(NodeId)),
                    "vouched" => SharedVerdict::Vouched(UserId(v.user_id.unwrap_or_default())),
                    _ => SharedVerdict::Rejected(v.reason.unwrap_or_default()),
                };
                (v.id_hash, verdict)
            })
            .collect())
    }

    /// A listener for verdicts (payload: the request's hash); `None`
    /// without replicas.
    pub async fn listen_verdicts(&self) -> Result<Option<PgListener>> {
        match &self.shared {
            Some(db) => Ok(Some(db.listen_auth().await?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_registration_reads_back_without_its_auth_key() {
        let input = RegisterInput {
            machine_key: crate::types::MachinePublic([1; 32]),
            node_key: crate::types::NodePublic([2; 32]),
            old_node_key: Some(crate::types::NodePublic([3; 32])),
            auth_key: Some("secret".into()),
            expiry: Some(Utc::now()),
            hostinfo: serde_json::json!({"Hostname": "laptop"}),
            ephemeral: true,
            version: 130,
        };
        let text = encode(&input).unwrap();
        assert!(!text.contains("secret"), "{text}");
        let back = decode(&text).unwrap();
        assert_eq!(back.machine_key, input.machine_key);
        assert_eq!(back.node_key, input.node_key);
        assert_eq!(back.old_node_key, input.old_node_key);
        assert_eq!(back.auth_key, None);
        assert_eq!(back.expiry, input.expiry);
        assert_eq!(back.hostinfo, input.hostinfo);
        assert!(back.ephemeral);
        assert_eq!(back.version, 130);
        assert!(decode(r#"{"machine_key":"x"}"#).is_err());
    }
}
