//! The peer book: the addresses this node dials and keeps dialling, with
//! when it last completed a reconciliation with each. Kept in the store's
//! `peers` tree, beside the library but not part of it: nothing in it is
//! replicated.

use serde::{Deserialize, Serialize};

use crate::error::{LibraryError, Result};
use crate::store::{Store, Tree};

/// A remembered peer address.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerEntry {
    /// The multiaddress.
    pub address: String,
    /// The PeerId last seen there.
    pub peer_id: Option<String>,
    /// When this node last completed a reconciliation with it (ms since the epoch).
    pub last_sync_ms: Option<u64>,
}

/// Every remembered address.
pub(crate) fn entries(store: &dyn Store) -> Result<Vec<PeerEntry>> {
    store
        .scan(Tree::Peers, b"")?
        .into_iter()
        .map(|(_, v)| {
            serde_json::from_slice(&v).map_err(|e| LibraryError::Corrupt(format!("peer book: {e}")))
        })
        .collect()
}

/// Remembers an address (a multiaddress, checked by the caller); false if
/// it was already there.
pub(crate) fn add(store: &dyn Store, address: &str) -> Result<bool> {
    if store.get(Tree::Peers, address.as_bytes())?.is_some() {
        return Ok(false);
    }
    put(
        store,
        &PeerEntry {
            address: address.to_string(),
            peer_id: None,
            last_sync_ms: None,
        },
    )?;
    Ok(true)
}

/// Forgets an address; false if it was not there.
pub(crate) fn remove(store: &dyn Store, address: &str) -> Result<bool> {
    let had = store.get(Tree::Peers, address.as_bytes())?.is_some();
    store.apply(vec![(Tree::Peers, address.as_bytes().to_vec(), None)])?;
    store.flush()?;
    Ok(had)
}

fn put(store: &dyn Store, entry: &PeerEntry) -> Result<()> {
    let bytes = serde_json::to_vec(entry).map_err(|e| LibraryError::Corrupt(e.to_string()))?;
    store.apply(vec![(
        Tree::Peers,
        entry.address.as_bytes().to_vec(),
        Some(bytes),
    )])?;
    store.flush()?;
    Ok(())
}

/// Records a completed reconciliation with a peer seen at `addresses`
/// (updating remembered addresses of that peer).
pub(crate) fn record_sync(
    store: &dyn Store,
    peer_id: &str,
    addresses: &[String],
    now_ms: u64,
) -> Result<()> {
    let mut entries = entries(store)?;
    let mut touched = false;
    for e in entries.iter_mut() {
        if e.peer_id.as_deref() == Some(peer_id) || addresses.contains(&e.address) {
            e.peer_id = Some(peer_id.to_string());
            e.last_sync_ms = Some(now_ms);
            touched = true;
        }
    }
    for e in entries.iter().filter(|_| touched) {
        put(store, e)?;
    }
    Ok(())
}
