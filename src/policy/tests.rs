//! Tests of the policy engine as a whole, beyond each module's own unit
//! tests: the public API (`api`), the HuJSON parser's properties
//! (`hujson`), incremental recompilation (`incr`) and the layering rule
//! (`layering`). `rng` is their deterministic generator.

mod api;
mod deny;
mod extensions;
mod hujson;
mod incr;
mod layering;
mod oidc_groups;
mod rng;
mod sources;
mod validation;
