//! Real-client integration tests: stock `tailscaled` releases (fetched by
//! `.ci/fetch-tailscale.sh`) against a live `clawscale serve`, each in its
//! own network namespace with no route out. Needs root and iproute2.
//!
//! `harness` holds the fixtures; `selftest` proves the harness itself
//! (isolation, cleanup) without needing a working server; the other modules
//! are end-to-end scenarios. `faults` breaks the server's database under it
//! (full disk, stopped PostgreSQL, SIGKILL); its servers run on loopback
//! with no real client.

mod compat;
mod dns;
mod enroll;
mod faults;
mod gateway;
mod harness;
mod policy;
mod selftest;
