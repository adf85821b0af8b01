//! Sections and keys Headscale has and clawscale only accepts: they are
//! parsed (so Headscale files load, and typos in them are still caught) and
//! looked at only to decide whether to warn that they are ignored.

use serde::Deserialize;

use super::Scalar;

/// Go ORM tuning; meaningless here, accepted so Headscale files load.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawGorm {
    pub prepare_stmt: Option<bool>,
    pub parameterized_queries: Option<bool>,
    pub skip_err_record_not_found: Option<bool>,
    pub slow_threshold: Option<u64>,
}

/// `logtail`, `taildrop`, `auto_update`: a section with one `enabled` flag.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawToggle {
    pub enabled: Option<bool>,
}

/// Headscale's performance knobs; accepted, ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawTuning {
    pub notifier_send_timeout: Option<Scalar>,
    pub batch_change_delay: Option<Scalar>,
    pub node_mapsession_buffered_chan_size: Option<Scalar>,
    pub batcher_workers: Option<Scalar>,
    pub register_cache_expiration: Option<Scalar>,
    pub register_cache_max_entries: Option<Scalar>,
    pub node_store_batch_size: Option<Scalar>,
    pub node_store_batch_timeout: Option<Scalar>,
}

impl RawTuning {
    pub fn set_keys(&self) -> Vec<&'static str> {
        [
            ("notifier_send_timeout", &self.notifier_send_timeout),
            ("batch_change_delay", &self.batch_change_delay),
            (
                "node_mapsession_buffered_chan_size",
                &self.node_mapsession_buffered_chan_size,
            ),
            ("batcher_workers", &self.batcher_workers),
            ("register_cache_expiration", &self.register_cache_expiration),
            (
                "register_cache_max_entries",
                &self.register_cache_max_entries,
            ),
            ("node_store_batch_size", &self.node_store_batch_size),
            ("node_store_batch_timeout", &self.node_store_batch_timeout),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_ref().map(|_| name))
        .collect()
    }
}

/// Settings of the CLI client (Headscale's `cli.*`): where a remote server
/// is and the API key to use; the server itself ignores them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawCli {
    pub address: Option<String>,
    pub api_key: Option<String>,
    pub timeout: Option<Scalar>,
    pub insecure: Option<bool>,
}
