//! Selectors to node sets and address sets against a `Topology`: `alias`
//! (what one selector selects), `index` (bitsets over nodes, memoised per
//! selector, so compilation scales), `ipset` (address sets printed the way
//! Tailscale prints them). Depends on `model` only.

pub mod alias;
pub mod index;
pub mod ipset;
