//! `node.expiry`, `node.require_approval` and
//! `tuning.register_cache_expiration` into [`Login`].

use super::super::login::{DEFAULT_REGISTER_TTL, Login};
use super::super::raw::RawConfig;
use super::parse;
use crate::config::Error;

pub(super) fn build(raw: &RawConfig) -> Result<Login, Error> {
    // Absent, empty or zero: no expiry, as in Headscale.
    let node_expiry = match raw
        .node
        .expiry
        .as_ref()
        .filter(|v| !v.text.trim().is_empty())
    {
        None => None,
        Some(v) => Some(parse::duration("node.expiry", v)?).filter(|d| !d.is_zero()),
    };
    let register_ttl = match &raw.tuning.register_cache_expiration {
        None => DEFAULT_REGISTER_TTL,
        Some(v) => {
            let d = parse::duration("tuning.register_cache_expiration", v)?;
            if d.is_zero() {
                return Err(Error::Invalid {
                    key: "tuning.register_cache_expiration".into(),
                    reason: "must be more than zero".into(),
                });
            }
            d
        }
    };
    Ok(Login {
        node_expiry,
        require_approval: raw.node.require_approval.unwrap_or(false),
        register_ttl,
    })
}
