//! Item documents kept decoded between batches, so that the next change to
//! an item is applied to its document as it stands rather than to one
//! rebuilt from every earlier change, and judged against it the same way.
//!
//! An entry holds some of the item's stored changes, always with every
//! change they depend on. That is all judging a new change needs: the item
//! as it stands at the change is the document forked at it. When `exact`,
//! it holds exactly the item's accepted changes as of the last batch that
//! caught up (what `item_docs` stores), and projections grow it by the
//! batch's new changes in effect. Anything that could make that untrue
//! (trust moving a change's judgement, a change not stored after its check,
//! a rebuild) drops the entry or clears `exact`; a miss costs one rebuild.

use std::collections::{HashMap, VecDeque};

use gatehouse_protocol::automerge::{AutoCommit, ChangeHash};
use gatehouse_protocol::id::ItemId;
use gatehouse_protocol::item::Item;

/// Most documents kept decoded (an Automerge document of a few kilobytes
/// of text takes a few hundred kilobytes in memory).
pub const MAX_CACHED_DOCS: usize = 32;

/// Most bytes of documents kept saved during a batch.
pub const MAX_SPILLED_BYTES: usize = 64 * 1024 * 1024;

/// An item's document with what its stored form needs to grow it.
#[derive(Clone)]
pub struct CachedDoc {
    /// A document of some of the item's changes, closed under their
    /// dependencies.
    pub doc: AutoCommit,
    /// It holds exactly the item's accepted changes as of the last batch
    /// that caught up, and perhaps some changes stored in this batch.
    pub exact: bool,
    /// Change chunks appended to the stored document since it was last
    /// saved whole.
    pub chunks: u32,
    /// The latest time any of its changes claims (not capped by the clock).
    pub claimed_ms: u64,
    /// The heads of the document as stored.
    pub saved: Vec<ChangeHash>,
}

/// What projections store for an item at the end of the batch, worked out
/// when its last change of the batch was judged: the item read from its
/// kept document, whose heads it names. It holds when every change of the
/// batch to the item was judged into it and is in effect, and the kept
/// document still has those heads.
pub struct Prepared {
    /// The item as its document reads.
    pub item: Item,
    /// The document's heads.
    pub heads: Vec<ChangeHash>,
    /// How many changes of the batch it holds.
    pub count: usize,
}

/// How many change chunks follow the first chunk of a stored document
/// (Automerge's chunks: a magic number, a checksum, a type byte, a LEB128
/// length, then that many bytes); `None` when the bytes are not chunks.
pub fn chunks_after_first(bytes: &[u8]) -> Option<u32> {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    let mut at = 0usize;
    let mut count = 0u32;
    while at < bytes.len() {
        if bytes.get(at..at + 4)? != MAGIC {
            return None;
        }
        at += 9;
        let mut len = 0u64;
        let mut shift = 0;
        loop {
            let b = *bytes.get(at)?;
            at += 1;
            len |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
        at = at.checked_add(usize::try_from(len).ok()?)?;
        count += 1;
    }
    (at == bytes.len() && count > 0).then(|| count - 1)
}

/// A document kept saved during a batch, in a form [`AutoCommit::load`]
/// reads (as [`AutoCommit::save`] writes it, or a new item's first change
/// as its raw chunk), with its heads.
struct Spilled {
    bytes: Vec<u8>,
    heads: Vec<ChangeHash>,
    entry: CachedDoc,
}

/// Documents by item, at most [`MAX_CACHED_DOCS`], the longest unused
/// leaving first; and what is prepared for projections in this batch.
#[derive(Default)]
pub struct DocCache {
    docs: HashMap<ItemId, CachedDoc>,
    /// Documents that left `docs` during the batch, saved: loading one
    /// costs a pass over the document, where rebuilding it would apply
    /// every change again (a batch that brings many items' histories
    /// interleaved would otherwise rebuild each item once per change); and
    /// a new item's document that was never decoded here is stored as it
    /// was saved, without loading it at all.
    spilled: HashMap<ItemId, Spilled>,
    /// Bytes in `spilled`.
    spilled_bytes: usize,
    prepared: HashMap<ItemId, Prepared>,
    /// Items in the order they were last put (may name one twice, or one
    /// gone; tidied when it grows past four times the bound).
    order: VecDeque<ItemId>,
}

impl DocCache {
    /// Takes the document of `item` out, if kept.
    pub fn take(&mut self, item: &ItemId) -> Option<CachedDoc> {
        if let Some(doc) = self.docs.remove(item) {
            return Some(doc);
        }
        let Spilled {
            bytes, mut entry, ..
        } = self.spilled.remove(item)?;
        self.spilled_bytes -= bytes.len();
        entry.doc = AutoCommit::load(&bytes).ok()?;
        Some(entry)
    }

    /// Takes the saved document of a new item out, without loading it,
    /// when it is kept saved, exactly its accepted changes, with `heads`.
    pub fn take_saved_new(
        &mut self,
        item: &ItemId,
        heads: &[ChangeHash],
    ) -> Option<(Vec<u8>, CachedDoc)> {
        let s = self.spilled.get(item)?;
        if !(s.entry.exact && s.entry.saved.is_empty() && s.heads == heads) {
            return None;
        }
        let s = self.spilled.remove(item)?;
        self.spilled_bytes -= s.bytes.len();
        Some((s.bytes, s.entry))
    }

    /// Keeps, saved, the document of `item` that holds exactly one change
    /// (`head`), for a new item whose document was built and saved
    /// elsewhere; `entry.doc` is left empty.
    pub fn put_saved(&mut self, item: ItemId, bytes: Vec<u8>, head: ChangeHash, entry: CachedDoc) {
        self.docs.remove(&item);
        if let Some(old) = self.spilled.remove(&item) {
            self.spilled_bytes -= old.bytes.len();
        }
        if self.spilled_bytes + bytes.len() <= MAX_SPILLED_BYTES {
            self.spilled_bytes += bytes.len();
            self.spilled.insert(
                item,
                Spilled {
                    bytes,
                    heads: vec![head],
                    entry,
                },
            );
        }
    }

    /// Whether a document of `item` is kept, decoded or saved.
    pub fn contains(&self, item: &ItemId) -> bool {
        self.docs.contains_key(item) || self.spilled.contains_key(item)
    }

    /// Keeps `doc` as the document of `item`.
    pub fn put(&mut self, item: ItemId, doc: CachedDoc) {
        self.docs.insert(item, doc);
        self.order.push_back(item);
        while self.docs.len() > MAX_CACHED_DOCS {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            // An item put again since is kept: its later place counts.
            if self.order.contains(&old) {
                continue;
            }
            if let Some(mut gone) = self.docs.remove(&old) {
                let bytes = gone.doc.save();
                if self.spilled_bytes + bytes.len() <= MAX_SPILLED_BYTES {
                    let heads = gone.doc.get_heads();
                    gone.doc = AutoCommit::new();
                    self.spilled_bytes += bytes.len();
                    self.spilled.insert(
                        old,
                        Spilled {
                            bytes,
                            heads,
                            entry: gone,
                        },
                    );
                }
            }
        }
        if self.order.len() > 4 * MAX_CACHED_DOCS {
            let mut seen = std::collections::HashSet::new();
            let mut kept: VecDeque<ItemId> = self
                .order
                .iter()
                .rev()
                .filter(|i| self.docs.contains_key(i) && seen.insert(**i))
                .copied()
                .collect();
            kept.make_contiguous().reverse();
            self.order = kept;
        }
    }

    /// Forgets the document of `item` and what was prepared for it.
    pub fn remove(&mut self, item: &ItemId) {
        self.docs.remove(item);
        self.prepared.remove(item);
        if let Some(s) = self.spilled.remove(item) {
            self.spilled_bytes -= s.bytes.len();
        }
    }

    /// Keeps what projections store for `item` at the end of the batch.
    pub fn prepare(&mut self, item: ItemId, prepared: Prepared) {
        self.prepared.insert(item, prepared);
    }

    /// Takes what was prepared for `item` in this batch.
    pub fn take_prepared(&mut self, item: &ItemId) -> Option<Prepared> {
        self.prepared.remove(item)
    }

    /// Forgets what was prepared and spilled in the batch.
    pub fn end_batch(&mut self) {
        self.prepared.clear();
        self.spilled.clear();
        self.spilled_bytes = 0;
    }

    /// Forgets every document.
    pub fn clear(&mut self) {
        self.docs.clear();
        self.end_batch();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> CachedDoc {
        CachedDoc {
            doc: AutoCommit::new(),
            exact: true,
            chunks: 0,
            claimed_ms: 0,
            saved: Vec::new(),
        }
    }

    #[test]
    fn chunks_after_a_whole_save_are_counted() {
        use gatehouse_protocol::automerge::{ROOT, transaction::Transactable};
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "title", "one").expect("put");
        let mut bytes = doc.save();
        assert_eq!(chunks_after_first(&bytes), Some(0));
        for n in 0..3 {
            let heads = doc.get_heads();
            doc.put(ROOT, "title", format!("v{n}")).expect("put");
            bytes.extend(doc.save_after(&heads));
        }
        assert_eq!(chunks_after_first(&bytes), Some(3));
        let mut loaded = AutoCommit::load(&bytes).expect("loads");
        assert_eq!(loaded.get_heads(), doc.get_heads());
        bytes.push(0);
        assert_eq!(chunks_after_first(&bytes), None);
        assert_eq!(chunks_after_first(b"not a document"), None);
    }

    #[test]
    fn the_longest_unused_leave_first_and_the_bound_holds() {
        let mut cache = DocCache::default();
        let items: Vec<ItemId> = (0..=MAX_CACHED_DOCS as u16 + 10)
            .map(|n| {
                let mut id = [0u8; 16];
                id[..2].copy_from_slice(&n.to_be_bytes());
                ItemId(id)
            })
            .collect();
        for item in &items[..MAX_CACHED_DOCS] {
            cache.put(*item, doc());
        }
        // The first is used again, so the second is the longest unused.
        cache.put(items[0], doc());
        cache.put(items[MAX_CACHED_DOCS], doc());
        assert!(cache.docs.contains_key(&items[0]));
        assert!(!cache.docs.contains_key(&items[1]));
        for _ in 0..10 {
            for item in &items {
                cache.put(*item, doc());
            }
        }
        assert_eq!(cache.docs.len(), MAX_CACHED_DOCS);
        assert!(cache.order.len() <= 4 * MAX_CACHED_DOCS + 1);
    }
}
