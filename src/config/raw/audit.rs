//! The `audit` section (clawscale's own): the admin audit trail.

use std::path::PathBuf;

use serde::Deserialize;

use super::Scalar;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawAudit {
    /// JSON-lines file; absent: `<data_dir>/audit.jsonl`; `""`: off.
    pub path: Option<PathBuf>,
    /// Rotate when the file would grow past this (`100MiB`, `10MB`, bytes).
    pub max_size: Option<Scalar>,
    /// Rotated files kept (`<path>.1` … `<path>.N`).
    pub max_files: Option<u32>,
}
