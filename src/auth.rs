//! Login flows for people: a client registering without a key gets a URL,
//! and a person proves who they are there. Each flow has a room of its own
//! and completes pending registrations through `admin` (audited), which
//! calls `state`.
//!
//! - [`oidc`]: OpenID Connect (authorization code flow with PKCE).

pub mod oidc;
