//! Policy operations: read, replace (database mode), check, and the policy
//! file's reloads (actor `policy-file`). Every change is audited with the
//! new policy's revision (`state::policy::revision`).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Actor, Admin, Caller, Done, Error, Mutation, Resource, Result, snapshot};
pub use crate::state::policy::Expect;
use crate::state::policy::revision;

/// The policy in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    /// As written, comments and all.
    pub text: Arc<str>,
    /// When it was installed by this server (unknown for a policy loaded at
    /// boot).
    pub updated_at: Option<DateTime<Utc>>,
    pub revision: String,
}

impl PolicyInfo {
    /// The policy as plain JSON (comments and trailing commas dropped), for
    /// API v2's `Accept: application/json`.
    pub fn json(&self) -> Result<serde_json::Value> {
        crate::policy::hujson::parse(&self.text)
            .map(|(v, _)| v)
            .map_err(|e| Error::Internal(format!("installed policy does not parse: {}", e.msg)))
    }
}

impl Admin {
    fn policy_info(&self) -> Option<PolicyInfo> {
        let world = self.state().world();
        let text = world.policy.text.clone()?;
        Some(PolicyInfo {
            revision: revision(&text),
            updated_at: world.policy.updated_at,
            text,
        })
    }

    pub fn get_policy(&self, caller: &Caller) -> Result<PolicyInfo> {
        self.read(caller, Resource::Policy)?;
        self.policy_info()
            .ok_or_else(|| Error::NotFound("no policy is set".into()))
    }

    /// Replaces the policy (database mode only); refused unless it parses,
    /// validates and passes its own tests.
    pub async fn set_policy(&self, caller: &Caller, text: String) -> Result<PolicyInfo> {
        self.set_policy_if(caller, text, Expect::Any).await
    }

    /// [`Admin::set_policy`] only if the policy in force is as `expect`
    /// says (API v2's `If-Match`); `Error::Stale` otherwise.
    pub async fn set_policy_if(
        &self,
        caller: &Caller,
        text: String,
        expect: Expect,
    ) -> Result<PolicyInfo> {
        let before = self
            .policy_info()
            .map(|p| snapshot::policy(Some(&p.revision)));
        let m = Mutation::new(Resource::Policy, "policy.set")
            .on("policy".into())
            .before(before);
        self.mutate(caller, m, async {
            self.state().set_policy_if(text, expect).await?;
            self.policy_done()
        })
        .await
    }

    fn policy_done(&self) -> Result<Done<PolicyInfo>> {
        let info = self
            .policy_info()
            .ok_or_else(|| Error::Internal("installed policy vanished".into()))?;
        let rev = info.revision.clone();
        Ok(Done::new(info)
            .after(snapshot::policy(Some(&rev)))
            .revision(Some(rev)))
    }

    /// Validates `text` against the current users and nodes without
    /// installing it.
    pub fn check_policy(&self, caller: &Caller, text: &str) -> Result<()> {
        self.read(caller, Resource::Policy)?;
        Ok(self.state().check_policy(text)?)
    }

    /// Installs the policy file's new text (file mode), as actor
    /// `policy-file`.
    pub async fn reload_policy_file(&self, text: String) -> Result<PolicyInfo> {
        let caller = Caller::internal(Actor::PolicyFile);
        let before = self
            .policy_info()
            .map(|p| snapshot::policy(Some(&p.revision)));
        let m = Mutation::new(Resource::Policy, "policy.reload")
            .on("policy".into())
            .before(before);
        self.mutate(&caller, m, async {
            self.state().reload_policy_file(text).await?;
            self.policy_done()
        })
        .await
    }
}
