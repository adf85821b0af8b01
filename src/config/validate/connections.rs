//! `connections.*` → [`Connections`].

use std::time::Duration;

use super::super::raw::{RawConnections, Scalar};
use super::super::{Connections, Error};
use super::parse::{duration, invalid};

pub(in crate::config) fn build(raw: &RawConnections) -> Result<Connections, Error> {
    let d = Connections::default();
    let max_per_ip = raw.max_per_ip.unwrap_or(d.max_per_ip);
    if max_per_ip == 0 {
        return Err(invalid(
            "connections.max_per_ip",
            "must be at least 1 (every client needs a connection)",
        ));
    }
    Ok(Connections {
        max_per_ip,
        max_total: raw.max_total.filter(|&n| n > 0),
        read_header_timeout: positive(
            "connections.read_header_timeout",
            raw.read_header_timeout.as_ref(),
            d.read_header_timeout,
        )?,
        read_body_timeout: positive(
            "connections.read_body_timeout",
            raw.read_body_timeout.as_ref(),
            d.read_body_timeout,
        )?,
        idle_timeout: positive(
            "connections.idle_timeout",
            raw.idle_timeout.as_ref(),
            d.idle_timeout,
        )?,
        keepalive_interval: positive(
            "connections.keepalive_interval",
            raw.keepalive_interval.as_ref(),
            d.keepalive_interval,
        )?,
        keepalive_timeout: positive(
            "connections.keepalive_timeout",
            raw.keepalive_timeout.as_ref(),
            d.keepalive_timeout,
        )?,
    })
}

/// A duration that must be more than zero: a zero timeout would close
/// every connection at once.
fn positive(key: &str, value: Option<&Scalar>, default: Duration) -> Result<Duration, Error> {
    let Some(value) = value else {
        return Ok(default);
    };
    let d = duration(key, value)?;
    if d.is_zero() {
        return Err(invalid(key, "must be more than 0"));
    }
    Ok(d)
}
