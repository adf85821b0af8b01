//! Wire types of the Tailscale control protocol (tailscale `tailcfg`), JSON
//! only: no logic, no dependency on clawscale state.
//!
//! Field names are Go's exact names (`ID`, `DERPMap`, `HomeDERP`, …) because
//! requests from the client use them verbatim; responses use `omitempty`-like
//! skipping where an empty value would mean something different (see the traps
//! in `shared/protocol/README.md`, e.g. `"DiscoKey": ""` or `"Peers": []`).
//! Shapes follow capability version 133 (tailscale 1.96) and are accepted by
//! clients back to 109 (1.78).

pub mod derp_map;
pub mod dns;
pub mod filter;
pub mod map;
pub mod node;
pub mod register;
pub mod ssh;

pub use derp_map::{DerpMap, DerpNode, DerpRegion};
pub use dns::{DnsConfig, DnsRecord, Resolver};
pub use filter::{CapGrant, FilterRule, NetPortRange, PortRange};
pub use map::{MapRequest, MapResponse, PeerChange, UserProfile};
pub use node::Node;
pub use register::{Login, RegisterRequest, RegisterResponse, User};
pub use ssh::{SshAction, SshPolicy, SshPrincipal, SshRule};

/// Capability version spoken by tailscale 1.96.
pub const CURRENT_CAPABILITY_VERSION: i32 = 133;
/// Oldest client capability version we serve (tailscale 1.78).
pub const MIN_CAPABILITY_VERSION: i32 = 109;

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}
fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
