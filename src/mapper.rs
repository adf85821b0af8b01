//! Turning Worlds into MapResponses and fanning changes out to map sessions.
//!
//! `build` derives one node's full map or delta from a World (pure);
//! `sessions` holds live streams and their mailboxes; `frame` encodes a
//! MapResponse for the wire (zstd + little-endian length).
//!
//! `view` is one node's share of the compiled policy.
//!
//! May depend on: `state` (World, Change), `policy` (output types), `tailcfg`,
//! `types`.

pub mod build;
pub mod frame;
pub mod sessions;
pub mod view;

pub use build::{SentState, build_delta, build_full};
