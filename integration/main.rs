//! Real-client integration tests: stock `tailscaled` releases (fetched by
//! `.ci/fetch-tailscale.sh`) against a live `clawscale serve`, each in its
//! own network namespace with no route out. Needs root and iproute2.
//!
//! `harness` holds the fixtures; `selftest` proves the harness itself
//! (isolation, cleanup) without needing a working server; `limits` and
//! `faults` are the fault tier (floods against a server on loopback; the
//! database broken under it: full disk, stopped PostgreSQL, SIGKILL); the
//! other modules are end-to-end scenarios.

mod apiv2;
mod backup;
mod certs;
mod compat;
mod deploy;
mod dns;
mod enroll;
mod faults;
mod gates;
mod gateway;
mod harness;
mod haroutes;
mod import;
mod limits;
mod login;
mod oidc;
mod policy;
mod replicas;
mod restapi;
mod selftest;
mod side_by_side;
/// The in-process control client (tailscale-rs `ts_control`), shared by
/// the fault tests that drive registrations without a real client.
#[allow(dead_code)]
#[path = "inproc/client.rs"]
mod sim;
mod ssh_check;
