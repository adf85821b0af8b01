//! Login settings: node key expiry, device approval and how long an
//! interactive registration waits (`node.expiry`, `node.require_approval`,
//! `tuning.register_cache_expiration`).

use std::time::Duration;

/// Headscale's default `tuning.register_cache_expiration`.
pub const DEFAULT_REGISTER_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// Key lifetime given to nodes of users at (re-)registration; `None`:
    /// keys do not expire (Headscale's default). Tagged nodes never expire.
    pub node_expiry: Option<Duration>,
    /// New nodes start unauthorized until an operator approves them.
    pub require_approval: bool,
    /// How long an interactive registration waits for its verdict.
    pub register_ttl: Duration,
}

impl Default for Login {
    fn default() -> Self {
        Login {
            node_expiry: None,
            require_approval: false,
            register_ttl: DEFAULT_REGISTER_TTL,
        }
    }
}
