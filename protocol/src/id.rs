//! Identifiers: of envelopes, library items and networks.
//!
//! Each is a fixed number of bytes shown as lowercase hex. They are derived
//! by hashing (blake3) so that nobody can choose one to collide with another.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A hex string that is not an identifier of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{what} must be {len} hex characters, got {got:?}")]
pub struct ParseIdError {
    /// The kind of identifier expected.
    pub what: &'static str,
    /// The expected length in hex characters.
    pub len: usize,
    /// What was given.
    pub got: String,
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 8 hex characters, for people reading logs and tables.
            pub fn short(&self) -> String {
                let mut s = self.to_hex();
                s.truncate(8);
                s
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = || ParseIdError { what: $what, len: $len * 2, got: s.to_string() };
                let s = s.trim();
                if s.len() != $len * 2 {
                    return Err(err());
                }
                let mut out = [0u8; $len];
                hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
                Ok(Self(out))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_id!(
    /// The id of an envelope: the blake3 hash of its exact bytes.
    EnvelopeId, 32, "envelope id"
);
hex_id!(
    /// The id of a library item, derived from its owning establishment and a
    /// random salt chosen at creation (see [`ItemId::derive`]).
    ItemId, 16, "item id"
);
hex_id!(
    /// The id of a network: the hash of its genesis certificate's body.
    NetworkId, 32, "network id"
);
hex_id!(
    /// The stable id of an establishment, chosen when it is first admitted.
    /// Its keys may change (rotation, staff turnover); its id and the items
    /// it owns do not.
    EstablishmentId, 16, "establishment id"
);

impl EnvelopeId {
    /// The id of the envelope with these exact bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

impl ItemId {
    /// An item id binds its owner: anyone can check that a change's claimed
    /// owner is the one the id was made for.
    pub fn derive(owner: &EstablishmentId, salt: &[u8; 16]) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(b"gatehouse/v1/item-id\0");
        h.update(owner.as_bytes());
        h.update(salt);
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
        Self(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let id = EnvelopeId::of(b"hello");
        assert_eq!(id.to_hex().parse::<EnvelopeId>(), Ok(id));
        assert!("abc".parse::<ItemId>().is_err());
        assert!("zz".repeat(16).parse::<ItemId>().is_err());
    }
}
