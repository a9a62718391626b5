//! Public keys, signing keys and signatures (ed25519).
//!
//! Every node, establishment, person and admin is an ed25519 key. This module
//! wraps ed25519-dalek so that the rest of the protocol speaks of
//! [`PublicKey`] and [`SecretKey`] and never of a library's types, and so that
//! verification is always the strict variant (no malleable signatures).

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::Signer;
use thiserror::Error;

/// A public key in text form that is not 64 hex characters of a valid point.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// Not 64 hex characters.
    #[error("a public key is 64 hex characters, got {0:?}")]
    BadHex(String),
    /// The bytes are not a point on the curve.
    #[error("not a valid ed25519 public key: {0}")]
    NotAPoint(String),
}

/// An ed25519 public key, 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Wraps 32 bytes, checking they are a valid point.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, KeyError> {
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| KeyError::NotAPoint(hex::encode(bytes)))?;
        Ok(Self(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex characters, for tables.
    pub fn short(&self) -> String {
        let mut s = self.to_hex();
        s.truncate(8);
        s
    }

    /// Strict ed25519 verification of `sig` over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(sig);
        vk.verify_strict(msg, &sig).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.short())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out).map_err(|_| KeyError::BadHex(s.to_string()))?;
        Self::from_bytes(out)
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An ed25519 signing key. Its bytes never leave this type except through
/// [`SecretKey::to_seed`], which the node uses to write the key file.
pub struct SecretKey(ed25519_dalek::SigningKey);

impl SecretKey {
    /// The key whose seed is these 32 bytes (which must be uniformly random).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The 32-byte seed, for storing the key.
    pub fn to_seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public: {})", self.public().short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let k = SecretKey::from_seed([7; 32]);
        let sig = k.sign(b"m");
        assert!(k.public().verify(b"m", &sig));
        assert!(!k.public().verify(b"n", &sig));
        let p: PublicKey = k.public().to_hex().parse().expect("hex round trip");
        assert_eq!(p, k.public());
        assert!("00".parse::<PublicKey>().is_err());
    }
}
