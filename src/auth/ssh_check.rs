//! Tailscale SSH check mode: a `check` rule makes the destination node hold
//! an SSH login and ask the control server, over its Noise channel, whether
//! the person at the source has proved who they are recently.
//!
//! The wire, as tailscaled (`ssh/tailssh`) drives it:
//! 1. The rule's `holdAndDelegate` URL, with `$SRC_NODE_ID`,
//!    `$DST_NODE_ID` and `$LOCAL_USER` filled in, is fetched with a GET
//!    (`control::ssh_action`). The answer is an `SSHAction`; its `message`
//!    is shown to the ssh user as an authentication banner.
//! 2. Unless the same login passed a check within the rule's
//!    `checkPeriod` (then: accept at once), the first answer names a
//!    pending request ([`AuthId`], in the same store as interactive
//!    logins), tells the person where to authenticate, and delegates to a
//!    follow-up URL carrying that id.
//! 3. The follow-up long-polls until the request is decided (approved or
//!    rejected with the audited `auth approve` / `auth reject` operations)
//!    or expires with the store's TTL, and answers accept or reject.
//!
//! tailscaled retries a non-200 answer for up to 30 minutes, so a login
//! that must fail gets a 200 `reject` with a reason; only requests that are
//! not from the destination node itself are refused outright.
//!
//! Who may pass a check: the person at the source, i.e. the source node's
//! user, or an operator (`auth approve`). With OIDC configured the banner's
//! link leads to the identity provider; the callback (`auth::oidc`) finds
//! the person's user, asks [`SshChecks::source_of`] which node the check is
//! for, and passes it only if [`may_vouch`]; the verdict names the user,
//! and [`SshChecks`] holds it against the source node once more.

#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::admin::registrations::{TTL, Verdict, WaitingClient};
use crate::admin::{Admin, AuthId, Error as AdminError};
use crate::policy::compile::ssh::CHECK_URL_BASE;
use crate::state::StateHandle;
use crate::tailcfg::SshAction;
use crate::types::{MachinePublic, Node, NodeId, OidcIdentity, User, UserId};

/// How long a decided check stays readable for the follow-up request that
/// is (or will be, after a network hiccup) waiting for it.
const KEEP_DECIDED: Duration = Duration::from_secs(60);

/// One request to the SSH action endpoint, as the URL gave it.
#[derive(Debug, Clone)]
pub struct Request {
    pub src: NodeId,
    pub dst: NodeId,
    pub local_user: String,
    /// Set on the follow-up request only.
    pub auth_id: Option<String>,
}

/// Requests refused outright (not answered with an `SSHAction`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// Only the destination node may ask about logins to it.
    #[error("this machine is not node {0}")]
    NotDestination(NodeId),
    /// A follow-up naming a check made for another connection.
    #[error("auth id {0} belongs to another SSH connection")]
    OtherConnection(String),
    /// The pending-request store is full (or the audit log failed).
    #[error("{0}")]
    Unavailable(String),
}

/// Why a person's login did not pass a check; shown to them. The check
/// stays pending (unless it is gone anyway).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotVouched {
    #[error("this SSH check is unknown, already decided or expired; connect again")]
    Gone,
    #[error(
        "no user of this tailnet signs in with this account; sign in as the owner \
         of the device the SSH login comes from"
    )]
    UnknownPerson,
    #[error(
        "the SSH login comes from a tagged device, which no person owns; \
         an administrator must approve it"
    )]
    Tagged,
    #[error(
        "the SSH login comes from a device of another user; only its owner \
         (or an administrator) can approve it"
    )]
    NotOwner,
    #[error("{0}")]
    Unavailable(String),
}

/// How a held check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Approved,
    Rejected(String),
    Expired,
}

/// Who passed a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approver {
    /// An operator, with `auth approve` (REST, gRPC or CLI).
    Operator,
    /// A person who logged in as this user (with the identity provider).
    User(UserId),
}

/// The outcome of a verdict on a check whose source node is `src`: an
/// approval counts only from someone who may vouch for its user.
fn judge(v: Verdict, src: &Node) -> Outcome {
    match v {
        Verdict::Approved(_) if may_vouch(src, &Approver::Operator) => Outcome::Approved,
        Verdict::Vouched(u) if may_vouch(src, &Approver::User(u)) => Outcome::Approved,
        Verdict::Approved(_) | Verdict::Vouched(_) => {
            Outcome::Rejected("approved by someone who may not vouch for this user".into())
        }
        Verdict::Rejected(why) => Outcome::Rejected(why),
    }
}

/// Whether `approver` may vouch for the person at node `src`: an operator
/// always may (they could grant the access anyway); a person only for a
/// node of their own, never for a tagged one (no person owns it).
pub fn may_vouch(src: &Node, approver: &Approver) -> bool {
    match approver {
        Approver::Operator => true,
        Approver::User(u) => !src.is_tagged() && src.user_id == *u,
    }
}

/// One login an SSH check is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Login {
    src: NodeId,
    dst: NodeId,
    local_user: String,
}

impl Login {
    fn describe(&self) -> Value {
        json!({"src": self.src.0, "dst": self.dst.0, "local_user": self.local_user})
    }
}

struct Held {
    login: Login,
    outcome: watch::Receiver<Option<Outcome>>,
}

/// A check's verdict to come, and how long to wait for it.
struct Awaited {
    verdict: oneshot::Receiver<Verdict>,
    within: Duration,
}

/// The SSH check service; cheap to clone.
#[derive(Clone)]
pub struct SshChecks(Arc<Inner>);

struct Inner {
    state: StateHandle,
    admin: Admin,
    /// How long a check waits for a verdict (the store's TTL).
    ttl: Duration,
    held: Mutex<HashMap<AuthId, Held>>,
    /// Logins that passed a check, until when that counts.
    passed: Mutex<HashMap<Login, Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SshChecks {
    pub fn new(state: StateHandle, admin: Admin) -> SshChecks {
        SshChecks::with_ttl(state, admin, TTL)
    }

    /// As `new`, with checks expiring after `ttl` (tests).
    pub fn with_ttl(state: StateHandle, admin: Admin, ttl: Duration) -> SshChecks {
        SshChecks(Arc::new(Inner {
            state,
            admin,
            ttl,
            held: Mutex::default(),
            passed: Mutex::default(),
        }))
    }

    /// The answer to `req` from the machine authenticated as `machine`.
    pub async fn action(&self, machine: MachinePublic, req: Request) -> Result<SshAction, Refusal> {
        let world = self.0.state.world();
        // An unknown destination is refused like a foreign one: the
        // endpoint does not tell strangers which node ids exist.
        if world.node(req.dst).is_none_or(|n| n.machine_key != machine) {
            return Err(Refusal::NotDestination(req.dst));
        }
        let Some(src) = world.node(req.src).cloned() else {
            return Ok(reject("the source node is not in this tailnet"));
        };
        let period =
            world.policy.compiled.as_ref().and_then(|c| {
                c.ssh_check_period(req.src.0 as u64, req.dst.0 as u64, &req.local_user)
            });
        let Some(period) = period else {
            return Ok(reject(&format!(
                "no SSH check rule lets this node log in as {:?} here",
                req.local_user
            )));
        };
        let login = Login {
            src: req.src,
            dst: req.dst,
            local_user: req.local_user,
        };
        if let Some(id) = &req.auth_id {
            return self.follow_up(id, login, period).await;
        }
        if let Some(left) = self.passed_for(&login) {
            self.0
                .admin
                .ssh_check_remembered(login.dst, login.describe())
                .await
                .map_err(|e| Refusal::Unavailable(e.to_string()))?;
            return Ok(accept(left));
        }
        // People open the page through the URL they log in with.
        let pages = match world.settings.login_url.as_str() {
            "" => CHECK_URL_BASE,
            url => url,
        };
        self.hold(pages, login, period, src).await
    }

    /// The source node of the SSH login check `id` is about, while the
    /// check is held (decided ones stay a minute for their follow-up);
    /// `None` for any other id, e.g. a machine's registration.
    pub fn source_of(&self, id: &AuthId) -> Option<NodeId> {
        lock(&self.0.held).get(id).map(|h| h.login.src)
    }

    /// Passes check `id` for the person the identity provider verified as
    /// `identity`, if their user (found by issuer and subject only, never
    /// created) [`may_vouch`] for the check's source node as it is now;
    /// otherwise nothing changes. Returns the user and the source node.
    pub async fn pass_as(
        &self,
        id: &AuthId,
        identity: &OidcIdentity,
    ) -> Result<(Arc<User>, Arc<Node>), NotVouched> {
        let src = match self.source_of(id) {
            Some(src) => src,
            None => self.source_elsewhere(id).await?,
        };
        let world = self.0.state.world();
        let src = world.node(src).cloned().ok_or(NotVouched::Gone)?;
        let user = world
            .users
            .values()
            .find(|u| u.oidc.as_ref() == Some(identity))
            .cloned()
            .ok_or(NotVouched::UnknownPerson)?;
        if !may_vouch(&src, &Approver::User(user.id)) {
            return Err(if src.is_tagged() {
                NotVouched::Tagged
            } else {
                NotVouched::NotOwner
            });
        }
        match self
            .0
            .admin
            .approve_ssh_check_oidc(id, identity, user.id, src.id)
            .await
        {
            Ok(()) => Ok((user, src)),
            Err(AdminError::NotFound(_)) => Err(NotVouched::Gone),
            Err(e) => Err(NotVouched::Unavailable(e.to_string())),
        }
    }

    /// With replicas: the source node of check `id` held on another
    /// replica, read from what it stored about the login.
    async fn source_elsewhere(&self, id: &AuthId) -> Result<NodeId, NotVouched> {
        let subject = self
            .0
            .admin
            .registrations()
            .subject_elsewhere(id)
            .await
            .map_err(|e| NotVouched::Unavailable(e.to_string()))?
            .ok_or(NotVouched::Gone)?;
        let what: Value = serde_json::from_str(&subject)
            .map_err(|e| NotVouched::Unavailable(format!("stored check unreadable: {e}")))?;
        what["src"]
            .as_i64()
            .map(NodeId)
            .ok_or_else(|| NotVouched::Unavailable("stored check names no source".into()))
    }

    /// How much longer an earlier passed check of `login` counts, if it
    /// still does.
    fn passed_for(&self, login: &Login) -> Option<Duration> {
        let until = *lock(&self.0.passed).get(login)?;
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    /// Opens a pending request for `login` and answers with where to
    /// authenticate (a page under `pages`) and where to wait.
    async fn hold(
        &self,
        pages: &str,
        login: Login,
        period: Duration,
        src: Arc<Node>,
    ) -> Result<SshAction, Refusal> {
        let id = AuthId::generate();
        let verdict = self
            .0
            .admin
            .ssh_check_hold(login.dst, &id, login.describe())
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        let (tx, rx) = watch::channel(None);
        // Fetched over Noise only as an https:// URL (see CHECK_URL_BASE).
        let follow = follow_url(CHECK_URL_BASE, &login, &id);
        lock(&self.0.held).insert(
            id.clone(),
            Held {
                login: login.clone(),
                outcome: rx,
            },
        );
        tokio::spawn(self.clone().decide(
            id.clone(),
            login,
            period,
            src,
            Awaited {
                verdict,
                within: self.0.ttl,
            },
            tx,
        ));
        Ok(SshAction {
            message: format!(
                "# clawscale: Tailscale SSH requires an additional check.\n\
                 # To authenticate, visit: {}\n",
                super::register_url(pages, &id)
            ),
            hold_and_delegate: follow,
            ..Default::default()
        })
    }

    /// Waits for the verdict on `id` (at most the TTL), remembers a pass,
    /// publishes the outcome and forgets the check a while later.
    async fn decide(
        self,
        id: AuthId,
        login: Login,
        period: Duration,
        src: Arc<Node>,
        verdict: Awaited,
        tx: watch::Sender<Option<Outcome>>,
    ) {
        let mut outcome = match tokio::time::timeout(verdict.within, verdict.verdict).await {
            Ok(Ok(v)) => judge(v, &src),
            // Timed out, or dropped by the store (its own TTL).
            Ok(Err(_)) | Err(_) => Outcome::Expired,
        };
        if outcome == Outcome::Expired {
            match self.0.admin.ssh_check_expire(&id, login.describe()).await {
                Ok(None) => {}
                // Decided on another replica just as the wait ran out.
                Ok(Some(v)) => outcome = judge(v, &src),
                Err(e) => {
                    tracing::warn!(auth_id = %id, error = %e, "could not record an expired SSH check");
                }
            }
        }
        if outcome == Outcome::Approved && !period.is_zero() {
            let now = Instant::now();
            let mut passed = lock(&self.0.passed);
            passed.retain(|_, until| *until > now);
            passed.insert(login.clone(), now + period);
        }
        tracing::info!(auth_id = %id, src = %login.src, dst = %login.dst,
            local_user = %login.local_user, outcome = ?outcome, "SSH check decided");
        let _ = tx.send(Some(outcome));
        tokio::time::sleep(KEEP_DECIDED).await;
        lock(&self.0.held).remove(&id);
    }

    /// With replicas: holds here check `id`, which another replica opened
    /// for `login` and whose follow-up reached this one, so that its
    /// verdict, given on any replica before or after, reaches the node.
    async fn take_over(
        &self,
        id: &AuthId,
        login: &Login,
        period: Duration,
    ) -> Option<watch::Receiver<Option<Outcome>>> {
        let subject = login.describe().to_string();
        let regs = self.0.admin.registrations();
        let (verdict, since) = regs.adopt(id, WaitingClient::Check(&subject)).await?;
        let Some(src) = self.0.state.world().node(login.src).cloned() else {
            regs.forget(id);
            return None;
        };
        let (tx, rx) = watch::channel(None);
        let held = Held {
            login: login.clone(),
            outcome: rx.clone(),
        };
        lock(&self.0.held).insert(id.clone(), held);
        let within = self.0.ttl.saturating_sub(since.elapsed());
        let awaited = Awaited { verdict, within };
        tokio::spawn(
            self.clone()
                .decide(id.clone(), login.clone(), period, src, awaited, tx),
        );
        Some(rx)
    }

    /// The follow-up request: the verdict on check `id`, once there is one.
    async fn follow_up(
        &self,
        id: &str,
        login: Login,
        period: Duration,
    ) -> Result<SshAction, Refusal> {
        const GONE: &str = "this SSH check is unknown, used or expired; connect again";
        let Ok(id) = AuthId::parse(id) else {
            return Ok(reject(GONE));
        };
        let here = {
            let held = lock(&self.0.held);
            match held.get(&id) {
                None => None,
                Some(h) if h.login != login => {
                    return Err(Refusal::OtherConnection(id.to_string()));
                }
                Some(h) => Some(h.outcome.clone()),
            }
        };
        let mut outcome = match here {
            Some(o) => o,
            // With replicas, a check another one opened continues here
            // (that replica is gone, or the node now talks to this one).
            None => match self.take_over(&id, &login, period).await {
                Some(o) => o,
                None => return Ok(reject(GONE)),
            },
        };
        // Dropped with the request when the client goes away; the check
        // stays for a retry of the same URL.
        let decided = outcome
            .wait_for(Option::is_some)
            .await
            .map(|o| o.clone())
            .ok()
            .flatten()
            .unwrap_or(Outcome::Expired);
        // Single use: a replay of this URL gets nothing.
        lock(&self.0.held).remove(&id);
        Ok(match decided {
            Outcome::Approved => accept(period),
            Outcome::Rejected(why) => reject(&format!("SSH check rejected: {why}")),
            Outcome::Expired => reject("SSH check expired: nobody approved it in time"),
        })
    }
}

/// The follow-up URL for check `id` of `login` (tailscaled expands `$`
/// placeholders again, so the local user goes in percent-encoded).
fn follow_url(base: &str, login: &Login, id: &AuthId) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("local_user", &login.local_user)
        .append_pair("auth_id", id.as_str())
        .finish();
    format!(
        "{}/machine/ssh/action/{}/to/{}?{query}",
        base.trim_end_matches('/'),
        login.src,
        login.dst
    )
}

/// Let the session in for `period` (zero: no limit, the rule checks on
/// every login anyway); forwarding as for an `accept` rule.
fn accept(period: Duration) -> SshAction {
    SshAction {
        accept: true,
        session_duration: i64::try_from(period.as_nanos()).unwrap_or(i64::MAX),
        allow_agent_forwarding: true,
        allow_local_port_forwarding: true,
        allow_remote_port_forwarding: true,
        ..Default::default()
    }
}

fn reject(why: &str) -> SshAction {
    SshAction {
        reject: true,
        message: format!("# clawscale: {why}\n"),
        ..Default::default()
    }
}
