//! Public key newtypes with Tailscale's text forms (`nodekey:`, `mkey:`,
//! `discokey:` + 64 hex digits), as in tailscale `types/key/`.
//!
//! The parser accepts upper- or lower-case hex and nothing else; formatting is
//! lower-case. An all-zero key parses (the client sends `nodekey:000…` for an
//! absent `OldNodeKey`) and `is_zero` tells it apart.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a key string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key {0:?} lacks the {1:?} prefix")]
    Prefix(String, &'static str),
    #[error("key must be 64 hex digits after the prefix, got {0}")]
    Length(usize),
    #[error("key contains a non-hex character")]
    Hex,
}

/// A key's 64 lower-case hex digits.
struct HexDigits([u8; 64]);

impl HexDigits {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}

macro_rules! public_key {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// Text prefix used on the wire.
            pub const PREFIX: &'static str = $prefix;

            /// True for the all-zero key, which the client uses for "absent".
            pub fn is_zero(&self) -> bool {
                self.0 == [0u8; 32]
            }

            /// Raw key bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The key as bare lower-case hex, without prefix (DERP headers, logs).
            pub fn hex(&self) -> String {
                self.hex_digits().as_str().to_string()
            }

            /// The 64 hex digits, on the stack: a map names three keys for
            /// every peer it sends, and `hex::encode` builds its string one
            /// `char` at a time.
            fn hex_digits(&self) -> HexDigits {
                let mut digits = [0u8; 64];
                hex::encode_to_slice(self.0, &mut digits).expect("64 digits for 32 bytes");
                HexDigits(digits)
            }

            /// A short, log-friendly form (first 8 hex digits).
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($prefix)?;
                f.write_str(self.hex_digits().as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}…", $prefix, self.short())
            }
        }

        impl FromStr for $name {
            type Err = KeyError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex_key(s, $prefix).map($name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

public_key!(
    /// A node's WireGuard public key; also its DERP address.
    NodePublic,
    "nodekey:"
);
public_key!(
    /// A machine key: the client's Noise static key, its only authenticated
    /// identity on the control connection.
    MachinePublic,
    "mkey:"
);
public_key!(
    /// A disco (NAT traversal) key, regenerated at every tailscaled start.
    DiscoPublic,
    "discokey:"
);

fn parse_hex_key(s: &str, prefix: &'static str) -> Result<[u8; 32], KeyError> {
    let rest = s
        .strip_prefix(prefix)
        .ok_or_else(|| KeyError::Prefix(s.chars().take(16).collect(), prefix))?;
    if rest.len() != 64 {
        return Err(KeyError::Length(rest.len()));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(rest, &mut out).map_err(|_| KeyError::Hex)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_lowercase() {
        let k = NodePublic([0xab; 32]);
        let s = k.to_string();
        assert_eq!(s, format!("nodekey:{}", "ab".repeat(32)));
        assert_eq!(s.parse::<NodePublic>().unwrap(), k);
        let upper = format!("nodekey:{}", "AB".repeat(32));
        assert_eq!(upper.parse::<NodePublic>().unwrap(), k);
    }

    #[test]
    fn rejects_bad_forms() {
        assert!(matches!(
            "".parse::<NodePublic>(),
            Err(KeyError::Prefix(..))
        ));
        let m = format!("mkey:{}", "00".repeat(32));
        assert!(matches!(m.parse::<NodePublic>(), Err(KeyError::Prefix(..))));
        assert_eq!(
            "nodekey:abcd".parse::<NodePublic>(),
            Err(KeyError::Length(4))
        );
        let bad = format!("nodekey:{}zz", "00".repeat(31));
        assert_eq!(bad.parse::<NodePublic>(), Err(KeyError::Hex));
        let long = format!("discokey:{}", "00".repeat(33));
        assert_eq!(long.parse::<DiscoPublic>(), Err(KeyError::Length(66)));
    }

    #[test]
    fn zero_key_means_absent() {
        let z: NodePublic = format!("nodekey:{}", "0".repeat(64)).parse().unwrap();
        assert!(z.is_zero());
        assert!(!NodePublic([1; 32]).is_zero());
    }

    #[test]
    fn serde_uses_text_form() {
        let k = DiscoPublic([7; 32]);
        let j = serde_json::to_string(&k).unwrap();
        assert_eq!(j, format!("\"discokey:{}\"", "07".repeat(32)));
        assert_eq!(serde_json::from_str::<DiscoPublic>(&j).unwrap(), k);
        assert!(serde_json::from_str::<DiscoPublic>("\"\"").is_err());
    }
}
