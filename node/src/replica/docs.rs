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

/// Most documents kept decoded.
pub const MAX_CACHED_DOCS: usize = 128;

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

/// Documents by item, at most [`MAX_CACHED_DOCS`], the longest unused
/// leaving first.
#[derive(Default)]
pub struct DocCache {
    docs: HashMap<ItemId, CachedDoc>,
    /// Items in the order they were last put (may name one twice, or one
    /// gone; tidied when it grows past four times the bound).
    order: VecDeque<ItemId>,
}

impl DocCache {
    /// The document of `item`, if kept.
    pub fn get(&self, item: &ItemId) -> Option<&CachedDoc> {
        self.docs.get(item)
    }

    /// Takes the document of `item` out, if kept.
    pub fn take(&mut self, item: &ItemId) -> Option<CachedDoc> {
        self.docs.remove(item)
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
            self.docs.remove(&old);
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

    /// Forgets the document of `item`.
    pub fn remove(&mut self, item: &ItemId) {
        self.docs.remove(item);
    }

    /// Forgets every document.
    pub fn clear(&mut self) {
        self.docs.clear();
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
        assert!(cache.get(&items[0]).is_some());
        assert!(cache.get(&items[1]).is_none());
        for _ in 0..10 {
            for item in &items {
                cache.put(*item, doc());
            }
        }
        assert_eq!(cache.docs.len(), MAX_CACHED_DOCS);
        assert!(cache.order.len() <= 4 * MAX_CACHED_DOCS + 1);
    }
}
