//! The payload of a `Change` envelope: one Automerge change to one item.
//!
//! The payload names the item and its owning establishment, and carries the
//! salt the item id was derived from, so anyone can check the owner claim
//! without other state. The Automerge actor id of the change must be the
//! signer's public key followed by a per-node suffix: the key that signs is
//! the key named as author inside the document, and two nodes of one person
//! never share an actor id.

use crate::encoding::{DecodeError, Reader, Writer};
use crate::envelope::VerifyError;
use crate::id::{EstablishmentId, ItemId};
use crate::key::PublicKey;

/// Bytes of the per-node suffix of an actor id.
pub const ACTOR_SUFFIX_BYTES: usize = 16;
/// Largest Automerge change carried, in bytes.
pub const MAX_CHANGE_BYTES: usize = 500 * 1024;
/// The chunk type of an uncompressed Automerge change.
const CHANGE_CHUNK: u8 = 1;

/// One Automerge change to one item.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePayload {
    /// The item changed.
    pub item: ItemId,
    /// The establishment that owns the item.
    pub owner: EstablishmentId,
    /// The salt the item id was derived from.
    pub salt: [u8; 16],
    /// The change, as Automerge encodes it.
    pub change: automerge::Change,
}

/// The Automerge actor id for `signer` writing from the node with `suffix`.
pub fn actor_id(signer: &PublicKey, suffix: &[u8; ACTOR_SUFFIX_BYTES]) -> automerge::ActorId {
    let mut bytes = Vec::with_capacity(32 + ACTOR_SUFFIX_BYTES);
    bytes.extend_from_slice(signer.as_bytes());
    bytes.extend_from_slice(suffix);
    automerge::ActorId::from(bytes)
}

impl ChangePayload {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.fixed(self.item.as_bytes())
            .fixed(self.owner.as_bytes())
            .fixed(&self.salt)
            .bytes(self.change.raw_bytes());
        w.into_bytes()
    }

    /// Parses a payload; the Automerge change must itself decode.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let item = ItemId(r.fixed()?);
        let owner = EstablishmentId(r.fixed()?);
        let salt = r.fixed()?;
        let raw = r.bytes("change", MAX_CHANGE_BYTES)?;
        r.finish()?;
        // An Automerge chunk is magic (4 bytes), checksum (4), type (1).
        // Only plain change chunks are taken: a compressed one (type 2)
        // would be inflated without bound before anything else is checked.
        if raw.get(8) != Some(&CHANGE_CHUNK) {
            return Err(DecodeError::Invalid {
                field: "change",
                reason: "not an uncompressed Automerge change chunk",
            });
        }
        if ItemId::derive(&owner, &salt) != item {
            return Err(DecodeError::Invalid {
                field: "item",
                reason: "item id is not derived from its owner and salt",
            });
        }
        let change = decode_change(raw.to_vec())?;
        Ok(Self {
            item,
            owner,
            salt,
            change,
        })
    }

    /// Refuses a change whose ops do not all read (an actor index past the
    /// change's actors, an unknown action), or that carries rich-text
    /// marks, which no item field uses. Automerge's `apply_changes` trusts
    /// both: on a mark naming an actor out of range it panics, and a debug
    /// build then panics again while unwinding, which no guard can catch.
    /// Checked on every change from outside ([`crate::envelope::Envelope::open`]),
    /// not on bytes read back from the store.
    pub fn check_ops(&self) -> Result<(), DecodeError> {
        use automerge::legacy::OpType;
        let refused = |reason| DecodeError::Invalid {
            field: "change",
            reason,
        };
        let expanded = guarded(|| self.change.decode())
            .map_err(|_| refused("an Automerge change whose ops do not read"))?;
        if expanded
            .operations
            .iter()
            .any(|op| matches!(op.action, OpType::MarkBegin(_) | OpType::MarkEnd(_)))
        {
            return Err(refused(
                "an Automerge change with rich-text marks, which items do not use",
            ));
        }
        Ok(())
    }

    /// The change's actor id must be `signer ‖ 16-byte suffix`.
    pub(crate) fn check_bound_to(&self, signer: &PublicKey) -> Result<(), VerifyError> {
        let actor = self.change.actor_id().to_bytes();
        if actor.len() != 32 + ACTOR_SUFFIX_BYTES || &actor[..32] != signer.as_bytes() {
            return Err(VerifyError::Unbound(
                "the change's actor id does not begin with the signer's key",
            ));
        }
        Ok(())
    }
}

/// Runs Automerge on changes from outside. Automerge 0.12 panics on some
/// malformed input instead of returning an error: its change parser on an
/// op counter or actor index past `u32`, and `apply_changes` on an op that
/// names an actor the change does not list (both found by the fuzz
/// targets). The panic is caught and returned as [`Malformed`], so a peer
/// cannot stop a node with one envelope. What `work` was changing when it
/// panicked is in no known state: callers drop it.
pub fn guarded<T>(work: impl FnOnce() -> T) -> Result<T, Malformed> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|_| Malformed)
}

/// Automerge could not read or apply a change (see [`guarded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Automerge could not read or apply the change")]
pub struct Malformed;

/// Parses an Automerge change chunk, a panic in the parser included.
fn decode_change(raw: Vec<u8>) -> Result<automerge::Change, DecodeError> {
    match guarded(move || automerge::Change::from_bytes(raw)) {
        Ok(Ok(change)) => Ok(change),
        Ok(Err(_)) | Err(Malformed) => Err(DecodeError::Invalid {
            field: "change",
            reason: "not an Automerge change",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    #[test]
    fn only_uncompressed_change_chunks_are_read() {
        let owner = EstablishmentId([3; 16]);
        let salt = [4; 16];
        let mut doc = automerge::AutoCommit::new();
        doc.put(automerge::ROOT, "body", "a".repeat(100_000))
            .expect("put");
        let mut change = doc.get_last_local_change().expect("a change");
        let plain = ChangePayload {
            item: ItemId::derive(&owner, &salt),
            owner,
            salt,
            change: change.clone(),
        };
        assert!(ChangePayload::decode(&plain.encode()).is_ok());
        let compressed = change.bytes().into_owned();
        assert!(
            compressed.len() < change.raw_bytes().len() / 10,
            "it compressed"
        );
        let mut w = crate::encoding::Writer::new();
        w.fixed(plain.item.as_bytes())
            .fixed(owner.as_bytes())
            .fixed(&salt)
            .bytes(&compressed);
        assert!(matches!(
            ChangePayload::decode(&w.into_bytes()),
            Err(DecodeError::Invalid {
                field: "change",
                ..
            })
        ));
    }
}
