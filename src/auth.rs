//! People proving who they are to the control server, as opposed to
//! machines (which the Noise handshake and keys authenticate).
//!
//! `ssh_check`: Tailscale SSH `check` rules, where a destination node holds
//! an SSH login until the control server vouches for the person.
//!
//! May depend on: `admin` (the pending-request store and the audit trail),
//! `state`, `policy` (via `state`), `tailcfg`, `types`.

pub mod ssh_check;
