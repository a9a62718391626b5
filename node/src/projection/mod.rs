//! Projections: what a person reads, derived from the envelopes the
//! replica holds. Each item's Automerge document (`ItemDocs`), its catalog
//! entry (`Catalog`, the item without its body, with when it was last
//! updated) and its search index entry are rebuilt from the item's
//! accepted changes whenever they move.
//!
//! Everything here can be rebuilt from the envelopes, so a failure is
//! repaired, never returned to the user: an index write that fails marks
//! the index broken and it is rebuilt at the end of the batch, in a fresh
//! directory or in memory when the disk cannot hold it.

mod facets;
pub mod forum;
pub mod markdown;
pub mod search;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gatehouse_protocol::automerge::{self, AutoCommit, ChangeHash};
use gatehouse_protocol::change::guarded;
use gatehouse_protocol::envelope::{Body, Envelope, Verified};
use gatehouse_protocol::first::FirstChange;
use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, ItemId};
use gatehouse_protocol::item::{self, Item, ItemContent};
use gatehouse_protocol::key::PublicKey;
use serde::{Deserialize, Serialize};

use crate::blobs::BlobStore;
use crate::error::{LibraryError, Result};
use crate::replica::Replica;
use crate::replica::docs::CachedDoc;
use crate::store::{Store, Tree};
use forum::{Fact, Forum};
use gatehouse_protocol::trust::Judgement;
use search::{SearchError, SearchIndex, SearchReader};

/// Change chunks an item's stored document grows by before it is saved
/// whole again (a load reads the chunks after the document).
pub const MAX_DOC_CHUNKS: u32 = 16;

/// The projections of one library.
pub(crate) struct Projections {
    store: Arc<dyn Store>,
    index: SearchIndex,
    /// Where the index lives on disk (`None`: in memory).
    index_dir: Option<PathBuf>,
    /// An index write failed: the index is rebuilt at the end of the batch.
    index_broken: bool,
    /// A search failed: the index is rebuilt at the next write. Shared
    /// with the read views, which set it.
    index_suspect: Arc<AtomicBool>,
    /// The forum of the posts in effect, shared with the read views.
    forum: Arc<Forum>,
    /// Where the text of items' files is found for the index.
    blobs: Option<BlobStore>,
}

impl Projections {
    /// Projections over `store` with `index` (kept at `index_dir`, or in
    /// memory when `None`).
    pub(crate) fn new(
        store: Arc<dyn Store>,
        index: SearchIndex,
        index_dir: Option<PathBuf>,
    ) -> Self {
        Self {
            store,
            index,
            index_dir,
            index_broken: false,
            index_suspect: Arc::new(AtomicBool::new(false)),
            forum: Arc::new(Forum::default()),
            blobs: None,
        }
    }

    /// Indexes the text of items' files from `blobs`.
    pub(crate) fn set_blobs(&mut self, blobs: BlobStore) {
        self.blobs = Some(blobs);
    }

    /// The text of an item's files that are here and were read.
    fn attachments_text(&self, item: &Item) -> String {
        let Some(blobs) = &self.blobs else {
            return String::new();
        };
        item.attachments
            .iter()
            .filter_map(|a| std::fs::read_to_string(blobs.text_path(&a.hash)).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The index opened in `dir`, checked against its checksums; a fresh
    /// one (rebuilt at the end of the first batch) if it cannot be used.
    pub(crate) fn open_index(store: Arc<dyn Store>, dir: PathBuf) -> Self {
        let (index, verified) = match SearchIndex::open(&dir).and_then(|i| i.verify().map(|()| i)) {
            Ok(index) => (index, true),
            Err(e) => {
                tracing::warn!("search index unusable ({e}); rebuilding it from the library");
                (fresh_index(&dir), false)
            }
        };
        let mut p = Self::new(store, index, Some(dir));
        p.index_broken = !verified;
        p
    }

    /// Marks the index for a rebuild at the end of the batch.
    pub(crate) fn mark_index_broken(&mut self) {
        self.index_broken = true;
    }

    /// Items indexed.
    pub(crate) fn indexed(&self) -> usize {
        self.index.len()
    }

    /// A reader of the index and the flag a failed search sets.
    pub(crate) fn search_handle(&self) -> (SearchReader, Arc<AtomicBool>) {
        (self.index.reader(), self.index_suspect.clone())
    }

    /// Runs a write on the search index. A failure (a full disk, files left
    /// by a killed commit) is logged and the index rebuilt at the end of the
    /// batch; it never fails the operation.
    fn index_write(&mut self, f: impl FnOnce(&mut SearchIndex) -> Result<(), SearchError>) {
        if self.index_broken {
            return;
        }
        if let Err(e) = f(&mut self.index) {
            tracing::warn!("search index write failed ({e}); it will be rebuilt");
            self.index_broken = true;
        }
    }

    /// Brings the projections up to date with what the replica stored in
    /// this batch: trust (when a certificate arrived), the judgement of
    /// every envelope, the items that changed and the search index; then
    /// clears the dirty marks. The caller flushes the store.
    pub(crate) fn catch_up(&mut self, replica: &mut Replica, now_ms: u64) -> Result<()> {
        replica.settle_trust()?;
        let dirty: Vec<ItemId> = replica.dirty().iter().copied().collect();
        for item in dirty {
            self.materialise(replica, item, now_ms)?;
        }
        self.index_write(SearchIndex::commit);
        if self.index_broken || self.index_suspect.load(Ordering::Relaxed) {
            tracing::warn!("rebuilding the search index from the library");
            self.reindex_all()?;
        }
        self.catch_up_forum(replica)?;
        // The dirty marks go only once the index holds what they covered.
        replica.end_batch()
    }

    /// Brings the forum in line with the posts in effect: the posts newly
    /// stored are added, or, when judgements may have moved (trust was
    /// rebuilt), the forum is built again from every post in effect.
    fn catch_up_forum(&mut self, replica: &mut Replica) -> Result<()> {
        let (fresh, stale) = replica.take_fresh_posts();
        let trust = replica.shared_trust();
        let fact = |env: &Verified| match env.body() {
            Body::Post(p) => Some(Fact::of(env.id(), env.signer(), env.created_ms(), p)),
            _ => None,
        };
        if stale {
            let facts: Vec<Fact> = replica.accepted_posts()?.iter().filter_map(fact).collect();
            self.forum = Arc::new(Forum::build(facts, &trust));
            return Ok(());
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let forum = Arc::make_mut(&mut self.forum);
        for env in &fresh {
            if replica.judgement_of(&env.id())? == Judgement::Accepted
                && let Some(f) = fact(env)
            {
                forum.insert(f, &trust);
            }
        }
        Ok(())
    }

    /// The forum as of the last batch.
    pub(crate) fn forum(&self) -> Arc<Forum> {
        self.forum.clone()
    }

    /// Takes `item` out of the index, the catalog and the documents.
    fn leave_out(&mut self, item: &ItemId) -> Result<()> {
        self.index_write(|i| i.remove(item));
        self.store.apply(vec![
            (Tree::ItemDocs, item.as_bytes().to_vec(), None),
            (Tree::Catalog, item.to_hex().into_bytes(), None),
        ])?;
        Ok(())
    }

    /// Brings an item's document, catalog entry and index entry in line
    /// with its accepted changes: grown by the batch's new ones when its
    /// document is kept, else rebuilt from them all.
    fn materialise(&mut self, replica: &mut Replica, item: ItemId, now_ms: u64) -> Result<()> {
        if !replica.needs_rebuild(&item) && self.grow(replica, item, now_ms)? {
            return Ok(());
        }
        self.rebuild(replica, item, now_ms)
    }

    /// Brings `item` up to date from its kept (or stored) document: read
    /// as its last change of the batch prepared when it was judged, or
    /// with the batch's changes applied; the new changes stored after the
    /// stored document, saved whole once it has grown by
    /// [`MAX_DOC_CHUNKS`] chunks, so the cost of a revision does not grow
    /// with the versions before it. False when no document holds exactly
    /// the item's accepted changes, or a change of the batch is not in
    /// effect: the caller rebuilds.
    fn grow(&mut self, replica: &mut Replica, item: ItemId, now_ms: u64) -> Result<bool> {
        let fresh = replica.fresh_accepted(&item)?;
        if fresh.len() != replica.fresh_count(&item) {
            return Ok(false);
        }
        if fresh.is_empty() {
            return Ok(true);
        }
        let stored = item_doc(&*self.store, &item)?;
        // What the item's last change of the batch prepared, when its
        // document is the one kept: nothing to apply or read again.
        let mut prepared = replica
            .docs()
            .take_prepared(&item)
            .filter(|p| p.count == fresh.len());
        // A new item's document kept saved is stored as it was saved.
        if stored.is_none()
            && let Some(p) = prepared.take()
        {
            match replica.docs().take_saved_new(&item, &p.heads) {
                Some((bytes, entry)) => {
                    let claimed_ms = fresh
                        .iter()
                        .map(Verified::created_ms)
                        .fold(entry.claimed_ms, u64::max);
                    let doc = doc_value(&fresh, &p.heads, || bytes);
                    self.store_item(item, p.item, claimed_ms, now_ms, doc)?;
                    return Ok(true);
                }
                None => prepared = Some(p),
            }
        }
        let mut entry = match replica.docs().take(&item).filter(|e| e.exact) {
            Some(e) => e,
            None => {
                let Some(claimed_ms) = claimed_ms(&*self.store, &item)? else {
                    return Ok(false);
                };
                let Some(Ok(mut doc)) = stored.as_deref().map(AutoCommit::load) else {
                    return Ok(false);
                };
                let saved = doc.get_heads();
                let chunks = stored
                    .as_deref()
                    .and_then(crate::replica::docs::chunks_after_first)
                    .unwrap_or(MAX_DOC_CHUNKS);
                CachedDoc {
                    doc,
                    exact: true,
                    chunks,
                    claimed_ms,
                    saved,
                }
            }
        };
        // A document never stored is that of a new item.
        if stored.is_none() != entry.saved.is_empty() {
            return Ok(false);
        }
        let claimed_ms = fresh
            .iter()
            .map(Verified::created_ms)
            .fold(entry.claimed_ms, u64::max);
        let doc = &mut entry.doc;
        let read = match prepared {
            Some(p) if doc.get_heads() == p.heads => p.item,
            _ => {
                let changes: Vec<automerge::Change> = fresh
                    .iter()
                    .filter_map(|e| match e.body() {
                        Body::Change(c) => Some(c.change.clone()),
                        _ => None,
                    })
                    .collect();
                if !matches!(guarded(|| doc.apply_changes(changes)), Ok(Ok(()))) {
                    return Ok(false);
                }
                match item::read_item(doc) {
                    Ok(i) if i.id == item => i,
                    _ => return Ok(false),
                }
            }
        };
        let bytes = match stored {
            Some(mut bytes) if entry.chunks < MAX_DOC_CHUNKS => {
                entry.chunks += 1;
                bytes.extend(doc.save_after(&entry.saved));
                bytes
            }
            Some(_) => {
                entry.chunks = 0;
                doc.save()
            }
            None => {
                entry.chunks = 0;
                doc_value(&fresh, &doc.get_heads(), || doc.save())
            }
        };
        entry.saved = doc.get_heads();
        entry.claimed_ms = claimed_ms;
        self.store_item(item, read, claimed_ms, now_ms, bytes)?;
        replica.docs().put(item, entry);
        Ok(true)
    }

    /// Rebuilds an item's document, catalog entry and index entry from its
    /// accepted changes, and keeps the document for the next batch.
    fn rebuild(&mut self, replica: &mut Replica, item: ItemId, now_ms: u64) -> Result<()> {
        replica.docs().remove(&item);
        let accepted = replica.accepted_changes(&item)?;
        let claimed_ms = accepted.iter().map(Verified::created_ms).max().unwrap_or(0);
        let changes: Vec<automerge::Change> = accepted
            .iter()
            .filter_map(|e| match e.body() {
                Body::Change(c) => Some(c.change.clone()),
                Body::Certificate(_) | Body::Post(_) | Body::Record(_) | Body::Unread { .. } => {
                    None
                }
            })
            .collect();
        let key_hex = item.to_hex();
        if changes.is_empty() {
            return self.leave_out(&item);
        }
        let mut doc = AutoCommit::new();
        // Receipt applies every change before storing it, so this fails
        // only on changes stored by older code: the item is left out of the
        // catalog and the index, and the rest of the library is built.
        let applied = guarded(|| doc.apply_changes(changes));
        if let Some(e) = match applied {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        } {
            tracing::warn!("item {item}: its accepted changes do not apply ({e}); not shown");
            return self.leave_out(&item);
        }
        let read = match item::read_item(&doc) {
            Ok(i) if i.id == item => i,
            // Changes whose first (creating) change has not arrived yet.
            _ => {
                self.index_write(|i| i.remove(&item));
                self.store.apply(vec![
                    (Tree::ItemDocs, item.as_bytes().to_vec(), Some(doc.save())),
                    (Tree::Catalog, key_hex.into_bytes(), None),
                ])?;
                return Ok(());
            }
        };
        let bytes = doc_value(&accepted, &doc.get_heads(), || doc.save());
        self.store_item(item, read, claimed_ms, now_ms, bytes)?;
        let saved = doc.get_heads();
        replica.docs().put(
            item,
            CachedDoc {
                doc,
                exact: true,
                chunks: 0,
                claimed_ms,
                saved,
            },
        );
        Ok(())
    }

    /// Writes an item's index entry, catalog entry, file references and
    /// stored document. Signers' clocks are their own: a time claimed in
    /// the future is not allowed to pin an item to the top of "recently
    /// updated", so the time shown is capped at `now_ms`.
    fn store_item(
        &mut self,
        item: ItemId,
        mut read: Item,
        claimed_ms: u64,
        now_ms: u64,
        doc_bytes: Vec<u8>,
    ) -> Result<()> {
        let updated_ms = claimed_ms.min(now_ms);
        let text = self.attachments_text(&read);
        self.index_write(|i| i.upsert(&read, updated_ms, &text));
        let mut writes: Vec<crate::store::Write> = read
            .attachments
            .iter()
            .map(|a| {
                let key = [a.hash.as_bytes().as_slice(), item.as_bytes()].concat();
                (Tree::BlobRefs, key, Some(Vec::new()))
            })
            .collect();
        read.content.body.clear();
        let catalog = serde_json::to_vec(&CatalogRecord {
            item: &read,
            updated_ms,
            claimed_ms,
        })
        .map_err(|e| LibraryError::Corrupt(e.to_string()))?;
        writes.extend([
            (Tree::ItemDocs, item.as_bytes().to_vec(), Some(doc_bytes)),
            (Tree::Catalog, item.to_hex().into_bytes(), Some(catalog)),
        ]);
        self.store.apply(writes)?;
        Ok(())
    }

    /// Rebuilds the search index from the item documents, in a new index
    /// directory. If the disk cannot hold it, the index is kept in memory
    /// for this run (and rebuilt on disk at the next open).
    pub(crate) fn reindex_all(&mut self) -> Result<()> {
        let old = std::mem::replace(&mut self.index, in_memory_index()?);
        drop(old);
        if let Some(dir) = &self.index_dir {
            self.index = fresh_index(dir);
        }
        self.index_broken = false;
        self.index_suspect.store(false, Ordering::Relaxed);
        if let Err(e) = self.fill_index() {
            tracing::warn!("cannot rebuild the search index on disk ({e}); keeping it in memory");
            self.index = in_memory_index()?;
            self.fill_index()?;
        }
        Ok(())
    }

    fn fill_index(&mut self) -> Result<()> {
        for (k, _) in self.store.scan(Tree::Catalog, b"")? {
            let Some(id) = std::str::from_utf8(&k)
                .ok()
                .and_then(|s| s.parse::<ItemId>().ok())
            else {
                continue;
            };
            if let Some((item, updated_ms)) = load_item(&*self.store, &id)? {
                let text = self.attachments_text(&item);
                self.index.upsert(&item, updated_ms, &text)?;
            }
        }
        self.index.commit()?;
        Ok(())
    }
}

/// Items some change is held for.
pub(crate) fn items_with_changes(store: &dyn Store) -> Result<BTreeSet<ItemId>> {
    let mut out = BTreeSet::new();
    for (k, _) in store.scan(Tree::ItemChanges, b"")? {
        if let Ok(bytes) = <[u8; 16]>::try_from(&k[..16.min(k.len())]) {
            out.insert(ItemId(bytes));
        }
    }
    Ok(out)
}

/// What `item_docs` holds for an item whose document is one change kept in
/// an envelope (a new item's first change): this tag, then the envelope's
/// id. Automerge's bytes start with its magic number, never with a zero.
const DOC_IN_ENVELOPE: &[u8; 4] = b"\0env";

/// What `item_docs` keeps for a document with `heads`, made of the changes
/// of `envelopes`: when that is one change, the envelope holding it (not a
/// second copy of it); else the document's bytes, from `save`.
fn doc_value(
    envelopes: &[Verified],
    heads: &[ChangeHash],
    save: impl FnOnce() -> Vec<u8>,
) -> Vec<u8> {
    match envelopes {
        [only] if matches!(only.body(), Body::Change(c) if heads == [c.change.hash()]) => {
            [DOC_IN_ENVELOPE.as_slice(), only.id().as_bytes()].concat()
        }
        _ => save(),
    }
}

/// The stored document of an item.
pub(crate) enum StoredDoc {
    /// One change, kept as the envelope holding it.
    Change(Box<automerge::Change>),
    /// The document as saved, with the change chunks appended since.
    Saved(Vec<u8>),
}

impl StoredDoc {
    /// Bytes [`AutoCommit::load`] reads.
    fn bytes(&self) -> &[u8] {
        match self {
            StoredDoc::Change(c) => c.raw_bytes(),
            StoredDoc::Saved(b) => b,
        }
    }

    /// Bytes [`AutoCommit::load`] reads, taken.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        match self {
            StoredDoc::Change(c) => c.raw_bytes().to_vec(),
            StoredDoc::Saved(b) => b,
        }
    }

    /// The item the document reads as. An item of one change of the shape
    /// a first change has is read from the change's columns
    /// ([`FirstChange`]), as when it arrived, without Automerge applying
    /// it; any other document is loaded.
    pub(crate) fn read(&self) -> Result<Item> {
        if let StoredDoc::Change(c) = self
            && let Some(item) = guarded(|| FirstChange::read(c).map(|f| item::read_item(&f)))
                .map_err(|e| LibraryError::Corrupt(e.to_string()))?
        {
            return Ok(item?);
        }
        Ok(item::read_item(&AutoCommit::load(self.bytes())?)?)
    }
}

/// The stored document of `item`: what `item_docs` holds, or the change of
/// the envelope it names.
pub(crate) fn stored_doc(store: &dyn Store, item: &ItemId) -> Result<Option<StoredDoc>> {
    let Some(bytes) = store.get(Tree::ItemDocs, item.as_bytes())? else {
        return Ok(None);
    };
    let Some(named) = bytes.strip_prefix(DOC_IN_ENVELOPE.as_slice()) else {
        return Ok(Some(StoredDoc::Saved(bytes)));
    };
    let id = EnvelopeId(<[u8; 32]>::try_from(named).map_err(|_| {
        LibraryError::Corrupt(format!("item {item}: its document names no envelope"))
    })?);
    let damaged = || LibraryError::DamagedEnvelopes { ids: vec![id] };
    let bytes = store
        .get(Tree::Envelopes, id.as_bytes())?
        .ok_or_else(|| LibraryError::Corrupt(format!("item {item}: envelope {id} is missing")))?;
    let network = Envelope::network_of(&bytes).map_err(|_| damaged())?;
    let env = Envelope::reopen(&bytes, &id, &network).map_err(|_| damaged())?;
    match env.into_body() {
        Body::Change(c) => Ok(Some(StoredDoc::Change(Box::new(c.change)))),
        _ => Err(LibraryError::Corrupt(format!(
            "item {item}: envelope {id} holds no change"
        ))),
    }
}

/// The stored document of `item`, as bytes [`AutoCommit::load`] reads.
pub(crate) fn item_doc(store: &dyn Store, item: &ItemId) -> Result<Option<Vec<u8>>> {
    Ok(stored_doc(store, item)?.map(StoredDoc::into_bytes))
}

/// An item with its body, and when it was last updated.
pub(crate) fn load_item(store: &dyn Store, id: &ItemId) -> Result<Option<(Item, u64)>> {
    let Some(entry) = store.get(Tree::Catalog, id.to_hex().as_bytes())? else {
        return Ok(None);
    };
    let updated_ms = catalog_entry(id, &entry)?.updated_ms;
    let Some(doc) = stored_doc(store, id)? else {
        return Ok(None);
    };
    Ok(Some((doc.read()?, updated_ms)))
}

/// The latest time the changes of a catalogued item claim (for entries
/// written before it was kept: when it was last updated).
pub(crate) fn claimed_ms(store: &dyn Store, id: &ItemId) -> Result<Option<u64>> {
    let Some(bytes) = store.get(Tree::Catalog, id.to_hex().as_bytes())? else {
        return Ok(None);
    };
    let entry = catalog_entry(id, &bytes)?;
    Ok(Some(entry.claimed_ms.unwrap_or(entry.updated_ms)))
}

/// Every item (without bodies), with when it was last updated.
pub(crate) fn catalog(store: &dyn Store) -> Result<Vec<(Item, u64)>> {
    let mut out = Vec::new();
    for (k, v) in store.scan(Tree::Catalog, b"")? {
        let entry = serde_json::from_slice::<CatalogEntry>(&v).map_err(|e| {
            LibraryError::Corrupt(format!(
                "catalog entry {}: {e}",
                String::from_utf8_lossy(&k)
            ))
        })?;
        let updated_ms = entry.updated_ms;
        out.push((entry.into_item(), updated_ms));
    }
    Ok(out)
}

/// One catalog entry: the item without its body, and when it was last
/// updated.
pub(crate) fn catalog_item(store: &dyn Store, id: &ItemId) -> Result<Option<(Item, u64)>> {
    let Some(bytes) = store.get(Tree::Catalog, id.to_hex().as_bytes())? else {
        return Ok(None);
    };
    let entry = catalog_entry(id, &bytes)?;
    let updated_ms = entry.updated_ms;
    Ok(Some((entry.into_item(), updated_ms)))
}

/// The catalog stores [`Item`] as JSON without its body, with when it was
/// last updated.
#[derive(Serialize)]
struct CatalogRecord<'a> {
    #[serde(flatten)]
    item: &'a Item,
    updated_ms: u64,
    /// The latest time its changes claim, not capped by the clock.
    claimed_ms: u64,
}

/// An empty index in `dir`, removing whatever was there; in memory if the
/// directory cannot be used (the node keeps working; the next open retries).
pub(crate) fn fresh_index(dir: &Path) -> SearchIndex {
    let on_disk = match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SearchError::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
    .and_then(|()| SearchIndex::open(dir));
    match on_disk {
        Ok(index) => index,
        Err(e) => {
            tracing::warn!(
                "cannot make a search index in {} ({e}); keeping it in memory",
                dir.display()
            );
            match SearchIndex::in_memory() {
                Ok(index) => index,
                // tantivy's RAM directory does not fail to create.
                Err(e) => panic!("cannot create an in-memory search index: {e}"),
            }
        }
    }
}

fn in_memory_index() -> Result<SearchIndex> {
    Ok(SearchIndex::in_memory()?)
}

/// A catalog entry read back.
#[derive(Deserialize)]
struct CatalogEntry {
    #[serde(default)]
    updated_ms: u64,
    #[serde(default)]
    claimed_ms: Option<u64>,
    id: ItemId,
    owner: EstablishmentId,
    version: u64,
    #[serde(flatten)]
    content: ItemContent,
    #[serde(deserialize_with = "derived_keys")]
    authors: Vec<PublicKey>,
    supersedes: Vec<ItemId>,
    superseded_by: Option<ItemId>,
    withdrawn_reason: Option<String>,
    adopted_from: Option<ItemId>,
    #[serde(default)]
    adoption: Option<item::Adoption>,
    #[serde(default)]
    allowed_identifiers: Vec<String>,
    #[serde(default)]
    measures: Vec<item::Measure>,
    #[serde(default)]
    progress: Option<item::Progress>,
    #[serde(default)]
    attachments: Vec<gatehouse_protocol::attachment::Attachment>,
}

/// Keys as this node wrote them into its catalog: hex, checked when their
/// envelopes arrived, so not checked again on every read.
fn derived_keys<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<PublicKey>, D::Error> {
    let hexes = Vec::<String>::deserialize(d)?;
    hexes
        .iter()
        .map(|h| {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(h, &mut bytes)
                .map(|()| PublicKey::from_derived(bytes))
                .map_err(|_| serde::de::Error::custom(format!("{h:?} is not a key")))
        })
        .collect()
}

fn catalog_entry(id: &ItemId, bytes: &[u8]) -> Result<CatalogEntry> {
    serde_json::from_slice(bytes)
        .map_err(|e| LibraryError::Corrupt(format!("catalog entry {id}: {e}")))
}

impl CatalogEntry {
    fn into_item(self) -> Item {
        Item {
            id: self.id,
            owner: self.owner,
            version: self.version,
            content: self.content,
            authors: self.authors,
            supersedes: self.supersedes,
            superseded_by: self.superseded_by,
            withdrawn_reason: self.withdrawn_reason,
            adopted_from: self.adopted_from,
            adoption: self.adoption,
            allowed_identifiers: self.allowed_identifiers,
            measures: self.measures,
            progress: self.progress,
            attachments: self.attachments,
        }
    }
}
