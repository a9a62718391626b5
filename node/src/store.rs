//! Storage behind a small trait: a sled backend for nodes, an in-memory one
//! for tests and simulation.
//!
//! The store is a handful of named trees of byte keys and values. Envelopes
//! (by id) are the primary data; every other tree is derived and can be
//! rebuilt from them. [`Store::apply`] writes a batch atomically across
//! trees, and [`Store::flush`] returns only when what was written is on disk,
//! which is what lets a publish be acknowledged only once it is durable.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use thiserror::Error;

/// The trees of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tree {
    /// Envelope id → envelope bytes. Primary data.
    Envelopes,
    /// Certificate envelope ids (value empty).
    Certificates,
    /// `item id ‖ envelope id` for every change envelope of an item.
    ItemChanges,
    /// Change envelope id → signer ‖ owner ‖ item, to re-judge changes
    /// without decoding them.
    ChangeFacts,
    /// Item id → saved Automerge document of accepted changes (derived).
    ItemDocs,
    /// Item id (hex) → JSON of the item without its body (derived).
    Catalog,
    /// Envelope id → JSON judgement, for envelopes not accepted (derived).
    Judgements,
    /// Item ids whose derived state must be rebuilt (crash recovery).
    Dirty,
    /// Node configuration.
    Config,
    /// The peer book: multiaddress → JSON entry.
    Peers,
    /// Envelope id → signer, for envelopes of kinds this node does not
    /// read, to re-judge them.
    Unread,
    /// Post envelope id → signer ‖ voice (1: establishment ‖ its id; 2:
    /// the admins), to re-judge posts without decoding them.
    PostFacts,
    /// Envelope id → bytes of a bundle entry that could have no effect yet
    /// (a certificate whose signer another bundle admits). Not part of the
    /// library: never judged, exported or sent; offered again by every
    /// import, and bounded ([`crate::replica::MAX_HELD_BACK`]).
    HeldBack,
    /// Records (kind 4) by what they are about: `i` ‖ item id or `r` ‖
    /// establishment id (rules), then the envelope id; the value is the
    /// facts they are re-judged on.
    Records,
    /// `file hash ‖ item id` for every file an item version carries
    /// (derived; value empty): which items a file that arrives belongs to.
    BlobRefs,
    /// Ids of urgent envelopes held (value empty): withdrawals,
    /// supersessions, revocations, questions needing an answer within 48
    /// hours, sent first to a peer that lacks them.
    Urgent,
}

impl Tree {
    /// Every tree.
    pub const ALL: [Tree; 16] = [
        Tree::Envelopes,
        Tree::Certificates,
        Tree::ChangeFacts,
        Tree::ItemChanges,
        Tree::ItemDocs,
        Tree::Catalog,
        Tree::Judgements,
        Tree::Dirty,
        Tree::Config,
        Tree::Peers,
        Tree::Unread,
        Tree::PostFacts,
        Tree::HeldBack,
        Tree::Records,
        Tree::BlobRefs,
        Tree::Urgent,
    ];

    fn name(self) -> &'static str {
        match self {
            Tree::Envelopes => "envelopes",
            Tree::Certificates => "certificates",
            Tree::ChangeFacts => "change_facts",
            Tree::ItemChanges => "item_changes",
            Tree::ItemDocs => "item_docs",
            Tree::Catalog => "catalog",
            Tree::Judgements => "judgements",
            Tree::Dirty => "dirty",
            Tree::Config => "config",
            Tree::Peers => "peers",
            Tree::Unread => "unread",
            Tree::PostFacts => "post_facts",
            Tree::HeldBack => "held_back",
            Tree::Records => "records",
            Tree::BlobRefs => "blob-refs",
            Tree::Urgent => "urgent",
        }
    }
}

/// A storage failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The sled database failed (disk full, permissions, corruption).
    #[error("storage failed: {0}")]
    Sled(#[from] sled::Error),
    /// The disk is full.
    #[error(
        "the disk holding {0} is full: free some space and run the command again (nothing held was lost)"
    )]
    DiskFull(String),
    /// Another process holds the database.
    #[error(
        "the data directory {0} is in use by another gatehouse process (stop the node, or use the CLI through it)"
    )]
    Locked(String),
}

/// Key-value pairs returned by a scan, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

type Trees = BTreeMap<Tree, BTreeMap<Vec<u8>, Vec<u8>>>;

/// One write in a batch: `None` deletes.
pub type Write = (Tree, Vec<u8>, Option<Vec<u8>>);

/// Key-value storage in named trees.
pub trait Store: Send + Sync {
    /// The value under `key`.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan(&self, tree: Tree, prefix: &[u8]) -> Result<Entries, StoreError>;
    /// The keys of every entry whose key starts with `prefix`, in key
    /// order, without copying the values.
    fn keys(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Writes a batch atomically: all of it or none of it.
    fn apply(&self, batch: Vec<Write>) -> Result<(), StoreError>;
    /// Returns once everything written is durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// How many entries a tree holds.
    fn len(&self, tree: Tree) -> Result<usize, StoreError>;
    /// Removes every entry of a derived tree (for a rebuild).
    fn clear(&self, tree: Tree) -> Result<(), StoreError>;
    /// Bytes the store takes: on disk, or in memory for [`MemoryStore`].
    fn size_bytes(&self) -> Result<u64, StoreError>;
}

/// The sled backend.
pub struct SledStore {
    db: sled::Db,
    trees: BTreeMap<Tree, sled::Tree>,
    /// The directory's lock (`gatehouse.lock`), held while the store is
    /// open: taken before anything in the directory is touched.
    _lock: std::fs::File,
}

/// The file whose lock says a process has the store open.
const LOCK_FILE: &str = "gatehouse.lock";

/// zstd level of the store's log. Envelopes are mostly prose; with this
/// level a home takes less than half the disk. sled compresses each page
/// it writes on the writing thread, through `node/sled-zstd`, which keeps
/// a context per thread. Level 1 changed neither time nor disk over three
/// runs of the speed benchmark (when a context was made per page).
const COMPRESSION_LEVEL: i32 = 3;

/// Whether the store in `dir` is (or, new, will be) compressed. sled
/// records the choice in its `conf` file and refuses to reopen a store with
/// the other, so a store made before compression (`use_compression: false`)
/// stays plain.
///
/// sled's segment size is left at its default: a smaller one packs the log
/// tighter, but sends every tree node over a quarter of a segment to a file
/// of its own, which sled writes without syncing.
fn compressed_store(dir: &Path) -> bool {
    // The file is text followed by a checksum.
    let Ok(conf) = std::fs::read(dir.join("conf")) else {
        return true;
    };
    !String::from_utf8_lossy(&conf)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .any(|(k, v)| k.trim() == "use_compression" && v.trim() == "false")
}

/// Removes snapshot files sled left half-written (`snap.*.generating`), as
/// it does when the disk fills while it writes one: sled would otherwise
/// refuse to open the store ever after ("read corrupted data"), though
/// its log and older snapshot are whole.
fn remove_unfinished_snapshots(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(
                "removing an unfinished store snapshot {name} (the disk filled while it was written)"
            );
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!("cannot remove {name}: {e}");
            }
        }
    }
}

/// How long opening a store waits for another process to let go of it
/// (a CLI command that finishes, a node that is stopping) before saying
/// the directory is in use.
pub const LOCK_WAIT_MS: u64 = 5_000;

impl SledStore {
    /// Opens (or creates) the database in `dir`, waiting up to
    /// [`LOCK_WAIT_MS`] while another process holds it.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_waiting(dir, std::time::Duration::from_millis(LOCK_WAIT_MS))
    }

    /// Opens the database in `dir`, waiting up to `wait` while another
    /// process holds it.
    pub fn open_waiting(dir: &Path, wait: std::time::Duration) -> Result<Self, StoreError> {
        let started = std::time::Instant::now();
        loop {
            match Self::try_open(dir) {
                Err(StoreError::Locked(d)) if started.elapsed() < wait => {
                    tracing::debug!("{d} is in use; waiting");
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    fn try_open(dir: &Path) -> Result<Self, StoreError> {
        // Nothing in the directory is touched before its lock is held: a
        // process opening a store another is opening would otherwise
        // remove the snapshot that one is writing, and its open would fail.
        let in_use = || StoreError::Locked(dir.display().to_string());
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(in_use()),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Sled(sled::Error::Io(e)));
            }
        }
        remove_unfinished_snapshots(dir);
        let db = sled::Config::new()
            .path(dir)
            .use_compression(compressed_store(dir))
            .compression_factor(COMPRESSION_LEVEL)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(ref io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                    StoreError::Locked(dir.display().to_string())
                }
                sled::Error::Io(ref io) if io.to_string().contains("lock") => {
                    StoreError::Locked(dir.display().to_string())
                }
                sled::Error::Io(ref io) if io.kind() == std::io::ErrorKind::StorageFull => {
                    StoreError::DiskFull(dir.display().to_string())
                }
                e => StoreError::Sled(e),
            })?;
        let mut trees = BTreeMap::new();
        for t in Tree::ALL {
            trees.insert(t, db.open_tree(t.name())?);
        }
        Ok(Self {
            db,
            trees,
            _lock: lock,
        })
    }

    fn tree(&self, t: Tree) -> &sled::Tree {
        // Every variant is opened in `open`.
        &self.trees[&t]
    }
}

impl Store for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(tree).get(key)?.map(|v| v.to_vec()))
    }

    fn scan(&self, tree: Tree, prefix: &[u8]) -> Result<Entries, StoreError> {
        self.tree(tree)
            .scan_prefix(prefix)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(Into::into))
            .collect()
    }

    fn keys(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.tree(tree)
            .scan_prefix(prefix)
            .keys()
            .map(|r| r.map(|k| k.to_vec()).map_err(Into::into))
            .collect()
    }

    fn apply(&self, batch: Vec<Write>) -> Result<(), StoreError> {
        use sled::Transactional;
        // sled's multi-tree transaction needs at least one tree.
        if batch.is_empty() {
            return Ok(());
        }
        let mut per_tree: BTreeMap<Tree, sled::Batch> = BTreeMap::new();
        for (t, k, v) in batch {
            let b = per_tree.entry(t).or_default();
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        let trees: Vec<&sled::Tree> = per_tree.keys().map(|t| self.tree(*t)).collect();
        let batches: Vec<&sled::Batch> = per_tree.values().collect();
        trees
            .as_slice()
            .transaction(|tx| {
                for (tree, batch) in tx.iter().zip(&batches) {
                    tree.apply_batch(batch)?;
                }
                Ok(())
            })
            .map_err(|e: sled::transaction::TransactionError<()>| match e {
                sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
                sled::transaction::TransactionError::Abort(()) => {
                    StoreError::Sled(sled::Error::Unsupported("transaction aborted".into()))
                }
            })
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn len(&self, tree: Tree) -> Result<usize, StoreError> {
        Ok(self.tree(tree).len())
    }

    fn clear(&self, tree: Tree) -> Result<(), StoreError> {
        self.tree(tree).clear()?;
        Ok(())
    }

    fn size_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }
}

/// The in-memory backend.
#[derive(Default)]
pub struct MemoryStore {
    trees: Mutex<Trees>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Trees) -> R) -> R {
        // A poisoned lock only means another test thread panicked; the map
        // itself is always left whole by the operations below.
        let mut guard = self.trees.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

impl Store for MemoryStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(|t| t.get(&tree).and_then(|m| m.get(key).cloned())))
    }

    fn scan(&self, tree: Tree, prefix: &[u8]) -> Result<Entries, StoreError> {
        Ok(self.with(|t| {
            t.get(&tree)
                .map(|m| {
                    m.range(prefix.to_vec()..)
                        .take_while(|(k, _)| k.starts_with(prefix))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default()
        }))
    }

    fn keys(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self.with(|t| {
            t.get(&tree)
                .map(|m| {
                    m.range(prefix.to_vec()..)
                        .take_while(|(k, _)| k.starts_with(prefix))
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default()
        }))
    }

    fn apply(&self, batch: Vec<Write>) -> Result<(), StoreError> {
        self.with(|t| {
            for (tree, k, v) in batch {
                let m = t.entry(tree).or_default();
                match v {
                    Some(v) => m.insert(k, v),
                    None => m.remove(&k),
                };
            }
        });
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn len(&self, tree: Tree) -> Result<usize, StoreError> {
        Ok(self.with(|t| t.get(&tree).map_or(0, BTreeMap::len)))
    }

    fn clear(&self, tree: Tree) -> Result<(), StoreError> {
        self.with(|t| t.remove(&tree));
        Ok(())
    }

    fn size_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.with(|t| {
            t.values()
                .flat_map(BTreeMap::iter)
                .map(|(k, v)| (k.len() + v.len()) as u64)
                .sum()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(store: &dyn Store) {
        store
            .apply(vec![
                (Tree::Envelopes, b"a1".to_vec(), Some(b"x".to_vec())),
                (Tree::Envelopes, b"a2".to_vec(), Some(b"y".to_vec())),
                (Tree::Envelopes, b"b1".to_vec(), Some(b"z".to_vec())),
                (Tree::Config, b"k".to_vec(), Some(b"v".to_vec())),
            ])
            .expect("apply");
        store.flush().expect("flush");
        assert_eq!(
            store.get(Tree::Config, b"k").expect("get"),
            Some(b"v".to_vec())
        );
        let scanned = store.scan(Tree::Envelopes, b"a").expect("scan");
        assert_eq!(scanned.len(), 2);
        assert_eq!(store.len(Tree::Envelopes).expect("len"), 3);
        store
            .apply(vec![(Tree::Envelopes, b"a1".to_vec(), None)])
            .expect("delete");
        store.apply(Vec::new()).expect("an empty batch is a no-op");
        assert_eq!(store.get(Tree::Envelopes, b"a1").expect("get"), None);
        store.clear(Tree::Config).expect("clear");
        assert_eq!(store.len(Tree::Config).expect("len"), 0);
    }

    #[test]
    fn memory_backend() {
        exercise(&MemoryStore::new());
    }

    #[test]
    fn sled_backend_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = SledStore::open(dir.path()).expect("open");
            exercise(&s);
        }
        let s = SledStore::open(dir.path()).expect("reopen");
        assert_eq!(
            s.get(Tree::Envelopes, b"a2").expect("get"),
            Some(b"y".to_vec())
        );
        assert_eq!(s.len(Tree::Envelopes).expect("len"), 2);
    }

    /// A new store compresses its log; one made plain (before the store
    /// compressed) keeps opening, plain, with what it held.
    #[test]
    fn new_stores_compress_and_plain_ones_still_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(SledStore::open(dir.path()).expect("open"));
        let conf = std::fs::read(dir.path().join("conf")).expect("conf");
        let conf = String::from_utf8_lossy(&conf);
        assert!(conf.contains("use_compression: true"), "{conf}");

        let plain = tempfile::tempdir().expect("tempdir");
        {
            let db = sled::Config::new()
                .path(plain.path())
                .open()
                .expect("plain");
            db.open_tree(Tree::Envelopes.name())
                .expect("tree")
                .insert(b"old", b"envelope".as_slice())
                .expect("insert");
            db.flush().expect("flush");
        }
        let s = SledStore::open(plain.path()).expect("a plain store opens");
        assert_eq!(
            s.get(Tree::Envelopes, b"old").expect("get"),
            Some(b"envelope".to_vec())
        );
        s.apply(vec![(
            Tree::Envelopes,
            b"new".to_vec(),
            Some(b"more".to_vec()),
        )])
        .expect("write");
        s.flush().expect("flush");
        drop(s);
        let s = SledStore::open(plain.path()).expect("reopens");
        assert_eq!(s.len(Tree::Envelopes).expect("len"), 2);
        let conf = std::fs::read(plain.path().join("conf")).expect("conf");
        let conf = String::from_utf8_lossy(&conf);
        assert!(conf.contains("use_compression: false"), "{conf}");
    }

    /// A snapshot sled left unfinished when the disk filled (seen: an empty
    /// `snap.*.generating`, after which sled reported "read corrupted
    /// data" at every open) does not stop the store from opening whole.
    #[test]
    fn an_unfinished_snapshot_does_not_brick_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = SledStore::open(dir.path()).expect("open");
            exercise(&s);
        }
        let stray = dir.path().join("snap.00000000000FFFFF.generating");
        std::fs::write(&stray, b"").expect("write");
        let s = SledStore::open(dir.path()).expect("opens");
        assert_eq!(s.len(Tree::Envelopes).expect("len"), 2);
        assert!(!stray.exists());
    }

    /// A process opening a store another holds (a CLI command while a
    /// node starts) touches nothing in it: the snapshot the holder may be
    /// writing stays, and the newcomer is told the store is in use.
    #[test]
    fn opening_a_store_in_use_removes_nothing_of_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = SledStore::open(dir.path()).expect("open");
        let writing = dir.path().join("snap.0000000000000001.generating");
        std::fs::write(&writing, b"being written").expect("write");
        let second = SledStore::open_waiting(dir.path(), std::time::Duration::from_millis(100));
        assert!(matches!(second, Err(StoreError::Locked(_))));
        assert!(writing.exists(), "the holder's snapshot was removed");
        drop(held);
        std::fs::remove_file(&writing).expect("remove");
        SledStore::open(dir.path()).expect("opens once let go");
    }
}
