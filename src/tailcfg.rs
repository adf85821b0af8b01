//! Wire types of the Tailscale control protocol (tailscale `tailcfg`), JSON
//! only: no logic, no dependency on clawscale state.
//!
//! Field names are Go's exact names (`ID`, `DERPMap`, `HomeDERP`, …) because
//! requests from the client use them verbatim; responses use `omitempty`-like
//! skipping where an empty value would mean something different (see the traps
//! in `shared/protocol/README.md`, e.g. `"DiscoKey": ""` or `"Peers": []`).
//! Shapes follow capability version 133 (tailscale 1.96); the `CAPVER_*`
//! constants mark where an older client (back to 109, tailscale 1.78) reads
//! a field differently, and the mapper sends such viewers the older shape.

pub mod derp_map;
pub mod dns;
pub mod filter;
pub mod map;
pub mod node;
pub mod register;
pub mod set_dns;
pub mod ssh;

pub use derp_map::{CERT_PIN_PREFIX, DerpHomeParams, DerpMap, DerpNode, DerpRegion};
pub use dns::{DnsConfig, DnsRecord, Resolver};
pub use filter::{CapGrant, FilterRule, NetPortRange, PortRange};
pub use map::{MapRequest, MapResponse, PeerChange, UserProfile};
pub use node::{Node, Peer};
pub use register::{Login, RegisterRequest, RegisterResponse, User};
pub use set_dns::{SetDnsRequest, SetDnsResponse};
pub use ssh::{SshAction, SshPolicy, SshPrincipal, SshRule};

/// Capability version spoken by tailscale 1.96.
pub const CURRENT_CAPABILITY_VERSION: i32 = 133;
/// Oldest client capability version we serve (tailscale 1.78).
pub const MIN_CAPABILITY_VERSION: i32 = 109;

// Capability versions at which the meaning of something we send changed
// (the history above `CurrentCapabilityVersion` in tailscale's
// `tailcfg/tailcfg.go`); older viewers get the older shape.

/// From 111 (1.80) a peer's home region is read from `Node.HomeDERP`;
/// before, only from the legacy `DERP: "127.3.3.40:<region>"` string.
pub const CAPVER_HOME_DERP: i32 = 111;
/// From 112 (1.80) a nil `Node.AllowedIPs` means "same as `Addresses`";
/// before, nil routes nothing, so no traffic reaches the peer.
pub const CAPVER_NIL_ALLOWED_IPS: i32 = 112;
/// From 115 (1.82.0) the DERP client verifies `CertName: "sha256-raw:<hex>"`
/// by hash (before, it takes the text for a host name and the TLS
/// handshake fails: `derp/derphttp`, `net/tlsdial`), and honours
/// `DERPRegion.NoMeasureNoHome` (before, only `Avoid`).
pub const CAPVER_DERP_CERT_PIN: i32 = 115;

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}
fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
