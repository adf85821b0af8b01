//! Numeric identifiers. Kept as distinct newtypes so a node id can never be
//! passed where a user id is expected.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A node (device) id. Also the `tailcfg.Node.ID` on the wire, so it stays
    /// positive and below 2^53 (JSON numbers).
    NodeId
);
id_type!(
    /// A user id, also `tailcfg.User`/`UserProfile.ID`.
    UserId
);
id_type!(
    /// A pre-auth key id.
    PreAuthKeyId
);
