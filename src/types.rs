//! Domain types: identifiers, keys, users, nodes, pre-auth keys, API keys
//! and OAuth clients.
//!
//! These are clawscale's own model. They never derive a wire format directly:
//! `tailcfg` (client protocol), `db` (rows) and `admin` (protobuf) convert from
//! them at their own edges. Depends on nothing else in the crate.

pub mod api_key;
pub mod dns_name;
pub mod ids;
pub mod keys;
pub mod node;
pub mod oauth_client;
pub mod preauth_key;
pub mod secret;
pub mod user;

pub use api_key::{ApiKey, ApiSecret, Scope};
pub use dns_name::DnsLabel;
pub use ids::{NodeId, PreAuthKeyId, UserId};
pub use keys::{DiscoPublic, KeyError, MachinePublic, NodePublic};
pub use node::{Node, Owner};
pub use oauth_client::{OAuthClient, OAuthScope, OAuthSecret, ScopeSet};
pub use preauth_key::{PreAuthKey, PreAuthSecret};
pub use secret::KeyHash;
pub use user::{OidcIdentity, User};
