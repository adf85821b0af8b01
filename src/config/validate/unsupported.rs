//! Warnings for Headscale settings that load but have no effect here.
//!
//! A key only warns when its value asks for behaviour we do not provide:
//! Headscale's own example file sets many of these keys to their inert
//! defaults (`logtail.enabled: false`, the GORM knobs, `acme_url`), and a
//! warning for each would bury the ones that matter.

use std::time::Duration;

use super::super::raw::{RawConfig, Scalar};
use super::parse;

pub(super) fn collect(raw: &RawConfig, warnings: &mut Vec<String>) {
    let mut warn = |key: &str, what: &str| {
        warnings.push(format!(
            "{key:?} is set but not supported yet ({what}); ignoring it"
        ));
    };

    if !raw.trusted_proxies.is_empty() {
        warn("trusted_proxies", "honouring proxy client-IP headers");
    }
    let ha = &raw.node.routes.ha;
    if ha
        .probe_interval
        .as_ref()
        .is_some_and(|v| !is_duration(v, Duration::from_secs(10)))
    {
        warn("node.routes.ha.probe_interval", "HA subnet router probing");
    }
    if ha
        .probe_timeout
        .as_ref()
        .is_some_and(|v| !is_duration(v, Duration::from_secs(5)))
    {
        warn("node.routes.ha.probe_timeout", "HA subnet router probing");
    }

    let db = &raw.database;
    if db.debug {
        warn("database.debug", "SQL debug logging");
    }
    let gorm = &db.gorm;
    for (key, inert) in [
        (
            "database.gorm.prepare_stmt",
            gorm.prepare_stmt.is_none_or(|v| v),
        ),
        (
            "database.gorm.parameterized_queries",
            gorm.parameterized_queries.is_none_or(|v| v),
        ),
        (
            "database.gorm.skip_err_record_not_found",
            gorm.skip_err_record_not_found.is_none_or(|v| v),
        ),
        (
            "database.gorm.slow_threshold",
            gorm.slow_threshold.is_none_or(|v| v == 1000),
        ),
    ] {
        if !inert {
            warn(key, "GORM tuning");
        }
    }
    if db.sqlite.wal_autocheckpoint.is_some_and(|v| v != 1000) {
        warn(
            "database.sqlite.wal_autocheckpoint",
            "a custom WAL checkpoint interval",
        );
    }
    if db.postgres.max_idle_conns.is_some_and(|v| v != 10) {
        warn(
            "database.postgres.max_idle_conns",
            "a custom idle pool size",
        );
    }
    if db
        .postgres
        .conn_max_idle_time_secs
        .is_some_and(|v| v != 3600)
    {
        warn(
            "database.postgres.conn_max_idle_time_secs",
            "a custom idle connection lifetime",
        );
    }

    // The other acme_*/tls_letsencrypt_* keys only matter with a hostname.
    if raw
        .tls_letsencrypt_hostname
        .as_deref()
        .is_some_and(|h| !h.trim().is_empty())
    {
        warn(
            "tls_letsencrypt_hostname",
            "ACME (Let's Encrypt) certificates",
        );
    }
    if raw.logtail.enabled == Some(true) {
        warn("logtail.enabled", "client log upload (logtail)");
    }
    if raw.taildrop.enabled == Some(false) {
        warn("taildrop.enabled", "switching Taildrop off");
    }
    if raw.auto_update.enabled == Some(true) {
        warn(
            "auto_update.enabled",
            "a default client auto-update setting",
        );
    }
    for key in raw
        .tuning
        .set_keys()
        .into_iter()
        .filter(|k| !["register_cache_expiration", "batch_change_delay"].contains(k))
    {
        warn(&format!("tuning.{key}"), "Headscale performance tuning");
    }
    if raw.cli.insecure == Some(true) {
        warn("cli.insecure", "skipping TLS verification in the CLI");
    }
}

/// True if `value` parses to exactly `expected`; unparsable values count as
/// "not the default" so they are reported rather than silently dropped.
fn is_duration(value: &Scalar, expected: Duration) -> bool {
    parse::duration("", value).is_ok_and(|d| d == expected)
}
