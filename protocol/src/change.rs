//! The payload of a `Change` envelope: one Automerge change to one item.
//!
//! The payload names the item and its owning establishment, and carries the
//! salt the item id was derived from, so anyone can check the owner claim
//! without other state. The Automerge actor id of the change must be the
//! signer's public key followed by a per-node suffix: the key that signs is
//! the key named as author inside the document, and two nodes of one person
//! never share an actor id.

use crate::columns::{Columns, Leb, spec};
use crate::encoding::{DecodeError, Reader, Writer};
use crate::envelope::VerifyError;
use crate::id::{EstablishmentId, ItemId};
use crate::key::PublicKey;

/// Bytes of the per-node suffix of an actor id.
pub const ACTOR_SUFFIX_BYTES: usize = 16;
/// Largest Automerge change carried, in bytes.
pub const MAX_CHANGE_BYTES: usize = 500 * 1024;
/// Most operations one change may hold. Automerge reads a change op by
/// op, and its run-length columns let a few bytes claim any number of
/// them: a 111-byte change chunk claiming 2^40 identical ops would hold a node in
/// Automerge's parser while it walked them all. By the item limits, an
/// item's largest legitimate change (its whole body of at most 256 KiB
/// deleted and written again, one op per character, with every other
/// field) comes to under 600,000.
pub const MAX_CHANGE_OPS: u64 = 1 << 20;
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
        // Counted from the action column's runs before Automerge reads a
        // single op.
        match scan_actions(raw) {
            Some(scan) if scan.ops <= MAX_CHANGE_OPS => {}
            Some(_) => {
                return Err(DecodeError::Invalid {
                    field: "change",
                    reason: "an Automerge change of more operations than a change may hold",
                });
            }
            None => {
                return Err(DecodeError::Invalid {
                    field: "change",
                    reason: "not an Automerge change",
                });
            }
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
    ///
    /// Every op was read when the change was parsed (`Change::from_bytes`
    /// refuses ops that do not); marks are found from the change's action
    /// column alone, without expanding its ops (a 2 KB body is two thousand
    /// ops, and expanding them cost twelve times the signature check).
    pub fn check_ops(&self) -> Result<(), DecodeError> {
        let refused = |reason| DecodeError::Invalid {
            field: "change",
            reason,
        };
        match scan_actions(self.change.raw_bytes()) {
            Some(Actions { marks: false, .. }) => Ok(()),
            Some(Actions { marks: true, .. }) => Err(refused(
                "an Automerge change with rich-text marks, which items do not use",
            )),
            None => Err(refused("an Automerge change whose ops do not read")),
        }
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

/// The action both rich-text mark ops (begin and end) carry in a change's
/// action column.
const MARK_ACTION: u64 = 7;

/// What a change's action column says, read run by run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Actions {
    /// How many operations the change holds: one per value of the column.
    ops: u64,
    /// Whether any is a rich-text mark.
    marks: bool,
}

/// Reads a change chunk's action column (Automerge's binary format) run by
/// run, never value by value, so that a run claiming a billion operations
/// costs no more to count than one claiming two; `None` when the bytes do
/// not read as an uncompressed change chunk.
fn scan_actions(chunk: &[u8]) -> Option<Actions> {
    let columns = Columns::of_change(chunk)?;
    let mut scan = Actions {
        ops: 0,
        marks: false,
    };
    let Some(column) = columns.get(spec::ACTION) else {
        return Some(scan);
    };
    let mut col = Leb(column);
    // Run-length encoded: a positive count then the value repeated, a
    // negative count then that many values, zero then a count of nulls.
    while !col.0.is_empty() {
        let count = col.sleb()?;
        let run = if count > 0 {
            scan.marks |= col.uleb()? == MARK_ACTION;
            count.unsigned_abs()
        } else if count < 0 {
            for _ in 0..count.unsigned_abs() {
                scan.marks |= col.uleb()? == MARK_ACTION;
            }
            count.unsigned_abs()
        } else {
            col.uleb()?
        };
        scan.ops = scan.ops.saturating_add(run);
    }
    Some(scan)
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

    /// What Automerge's own expansion of the ops says: whether any is a
    /// mark.
    fn marks_by_expansion(change: &automerge::Change) -> bool {
        change.decode().operations.iter().any(|op| {
            matches!(
                op.action,
                automerge::legacy::OpType::MarkBegin(_) | automerge::legacy::OpType::MarkEnd(_)
            )
        })
    }

    fn payload(change: automerge::Change) -> ChangePayload {
        let owner = EstablishmentId([3; 16]);
        let salt = [4; 16];
        ChangePayload {
            item: ItemId::derive(&owner, &salt),
            owner,
            salt,
            change,
        }
    }

    #[test]
    fn a_change_with_rich_text_marks_is_refused_and_one_without_is_not() {
        use automerge::marks::{ExpandMark, Mark};
        let mut doc = automerge::AutoCommit::new();
        let text = doc
            .put_object(automerge::ROOT, "body", automerge::ObjType::Text)
            .expect("text");
        doc.splice_text(&text, 0, 0, "Naloxone on release")
            .expect("splice");
        doc.put(automerge::ROOT, "title", "T").expect("put");
        doc.commit();
        let plain = payload(doc.get_last_local_change().expect("change"));
        assert!(plain.check_ops().is_ok());
        doc.mark(
            &text,
            Mark::new("bold".into(), true, 0, 8),
            ExpandMark::After,
        )
        .expect("mark");
        doc.commit();
        let marked = payload(doc.get_last_local_change().expect("change"));
        assert!(marks_by_expansion(&marked.change));
        let err = marked.check_ops().expect_err("marks refused");
        assert!(err.to_string().contains("rich-text marks"), "{err}");
    }

    proptest::proptest! {
        /// The action column, read alone, finds a mark exactly when
        /// Automerge's expansion of the ops does, over changes of map
        /// puts, counters, text of any length and marks.
        #[test]
        fn the_action_column_finds_marks_as_expansion_does(
            texts in proptest::collection::vec("[a-z é]{0,300}", 1..4),
            puts in 0usize..5,
            mark in proptest::option::of((0usize..5, 1usize..5)),
            counter in proptest::bool::ANY,
        ) {
            use automerge::marks::{ExpandMark, Mark};
            let mut doc = automerge::AutoCommit::new();
            let text = doc.put_object(automerge::ROOT, "body", automerge::ObjType::Text).expect("text");
            let mut len = 0;
            for t in &texts {
                doc.splice_text(&text, len, 0, t).expect("splice");
                len += t.chars().count();
            }
            for i in 0..puts {
                doc.put(automerge::ROOT, format!("k{i}"), i as i64).expect("put");
            }
            if counter {
                doc.put(automerge::ROOT, "version", automerge::ScalarValue::counter(0)).expect("counter");
                doc.increment(automerge::ROOT, "version", 1).expect("increment");
            }
            if let Some((start, n)) = mark && start + n <= len {
                doc.mark(&text, Mark::new("em".into(), true, start, start + n), ExpandMark::None).expect("mark");
            }
            doc.commit();
            let change = doc.get_last_local_change().expect("change");
            proptest::prop_assert_eq!(
                scan_actions(change.raw_bytes()),
                Some(Actions {
                    ops: change.len() as u64,
                    marks: marks_by_expansion(&change),
                })
            );
        }
    }

    fn uleb(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn sleb(out: &mut Vec<u8>, mut v: i64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if (v == 0 && byte & 0x40 == 0) || (v == -1 && byte & 0x40 != 0) {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    /// A change chunk written by hand: `ops` puts of null at the root's key
    /// "k", every column one run, with a valid checksum.
    fn runs_of_puts(ops: i64) -> Vec<u8> {
        let run = |value: &[u8]| {
            let mut col = Vec::new();
            sleb(&mut col, ops);
            col.extend_from_slice(value);
            col
        };
        let mut insert = Vec::new();
        uleb(&mut insert, ops.unsigned_abs());
        let columns = [
            (spec::KEY_STR, run(&[1, b'k'])),
            (spec::INSERT, insert),
            (spec::ACTION, run(&[1])),
            (spec::VAL_META, run(&[0])),
            (spec::PRED_GROUP, run(&[0])),
        ];
        let mut body = Vec::new();
        uleb(&mut body, 0); // deps
        uleb(&mut body, 48);
        body.extend_from_slice(&[7; 48]); // actor
        uleb(&mut body, 1); // seq
        uleb(&mut body, 1); // start op
        sleb(&mut body, 0); // time
        uleb(&mut body, 0); // message
        uleb(&mut body, 0); // other actors
        uleb(&mut body, columns.len() as u64);
        for (spec, data) in &columns {
            uleb(&mut body, *spec);
            uleb(&mut body, data.len() as u64);
        }
        for (_, data) in &columns {
            body.extend_from_slice(data);
        }
        let mut hashed = vec![CHANGE_CHUNK];
        uleb(&mut hashed, body.len() as u64);
        hashed.extend_from_slice(&body);
        use sha2::Digest;
        let hash = sha2::Sha256::digest(&hashed);
        let mut chunk = vec![0x85, 0x6f, 0x4a, 0x83];
        chunk.extend_from_slice(&hash[..4]);
        chunk.extend_from_slice(&hashed);
        chunk
    }

    #[test]
    fn a_change_claiming_more_ops_than_a_change_may_hold_is_refused_unread() {
        let owner = EstablishmentId([3; 16]);
        let salt = [4; 16];
        let payload = |chunk: &[u8]| {
            let mut w = crate::encoding::Writer::new();
            w.fixed(ItemId::derive(&owner, &salt).as_bytes())
                .fixed(owner.as_bytes())
                .fixed(&salt)
                .bytes(chunk);
            w.into_bytes()
        };
        // The hand-made chunk is one Automerge reads.
        let three = ChangePayload::decode(&payload(&runs_of_puts(3))).expect("three puts read");
        assert_eq!(three.change.len(), 3);
        // At the bound it is still read; one past it, and a trillion, are
        // refused before Automerge sees them (a trillion would take it
        // hours to walk).
        let at_bound = i64::try_from(MAX_CHANGE_OPS).expect("fits");
        assert!(ChangePayload::decode(&payload(&runs_of_puts(at_bound))).is_ok());
        for ops in [at_bound + 1, 1 << 40] {
            let refused = ChangePayload::decode(&payload(&runs_of_puts(ops)));
            assert!(
                matches!(
                    refused,
                    Err(DecodeError::Invalid {
                        field: "change",
                        reason: "an Automerge change of more operations than a change may hold",
                    })
                ),
                "{ops} ops: {refused:?}"
            );
        }
    }

    #[test]
    fn truncated_chunks_do_not_read() {
        let mut doc = automerge::AutoCommit::new();
        doc.put(automerge::ROOT, "title", "a title").expect("put");
        doc.commit();
        let change = doc.get_last_local_change().expect("change");
        let raw = change.raw_bytes();
        for n in 0..raw.len() {
            // Never a panic; a cut before the columns' end never reads.
            let _ = scan_actions(&raw[..n]);
        }
        assert_eq!(
            scan_actions(raw),
            Some(Actions {
                ops: 1,
                marks: false
            })
        );
    }

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
