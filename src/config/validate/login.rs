//! `node.expiry`, `node.require_approval` and
//! `tuning.register_cache_expiration` into [`Login`]; also
//! `tuning.batch_change_delay`, the other tuning key clawscale reads.

use std::time::Duration;

use super::super::DEFAULT_BATCH_CHANGE_DELAY;
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

/// Headscale's key, read as the least gap between two delta frames on one
/// map stream. Zero sends every change at once; more than the map
/// keep-alive would starve a stream, so it is capped at 10 s.
pub(super) fn batch_change_delay(raw: &RawConfig) -> Result<Duration, Error> {
    const KEY: &str = "tuning.batch_change_delay";
    let Some(v) = &raw.tuning.batch_change_delay else {
        return Ok(DEFAULT_BATCH_CHANGE_DELAY);
    };
    let d = parse::duration(KEY, v)?;
    if d > Duration::from_secs(10) {
        return Err(Error::Invalid {
            key: KEY.into(),
            reason: "at most 10s (it delays every change a map stream sends)".into(),
        });
    }
    Ok(d)
}
