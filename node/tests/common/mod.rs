//! What the node's integration tests share.

use std::sync::Arc;

use gatehouse_node::home::Home;
use gatehouse_node::library::{InitOptions, Library, LibraryError, NodeConfig};
use gatehouse_node::projection::search::SearchIndex;
use gatehouse_node::store::MemoryStore;
use gatehouse_protocol::id::EstablishmentId;
use gatehouse_protocol::key::SecretKey;
use gatehouse_protocol::vocab::{Nation, Setting};

/// A new node for HMP Northgate founding a network of its own, in a new
/// temporary directory (kept alive by the first value).
#[allow(dead_code)]
pub fn new_site() -> (tempfile::TempDir, Home, Library) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::new(dir.path().join("node"));
    let (lib, _) = Library::init(
        &home,
        &InitOptions {
            establishment: "HMP Northgate".into(),
            setting: Setting::LocalRemand,
            nation: Nation::England,
            network_name: "Test network".into(),
            member_name: "Healthcare manager".into(),
        },
    )
    .expect("init");
    (dir, home, lib)
}

/// A node of another establishment, in memory, on `lib`'s network, that
/// holds nothing yet.
#[allow(dead_code)]
pub fn other_node(lib: &Library) -> Library {
    Library::with_store(
        Arc::new(MemoryStore::new()),
        NodeConfig {
            network: lib.config().network,
            establishment: EstablishmentId([0x42; 16]),
            member: None,
            node: SecretKey::from_seed([50; 32]).public(),
            actor_suffix: "000102030405060708090a0b0c0d0e0f".into(),
        },
        SearchIndex::in_memory().expect("index"),
        None,
    )
    .expect("library")
}

/// Offers envelopes one at a time, as peers do, again while any has no
/// effect yet (a certificate before the one naming its signer, a change
/// before the one it builds on), as the next sync session would.
#[allow(dead_code)]
pub fn offer_until_stored(lib: &mut Library, envelopes: Vec<Vec<u8>>) {
    let mut offer = envelopes;
    for _ in 0..32 {
        let mut again = Vec::new();
        for bytes in offer {
            match lib.ingest(&bytes) {
                Ok(_) => {}
                Err(LibraryError::NoEffect(_)) => again.push(bytes),
                Err(e) => panic!("ingest: {e}"),
            }
        }
        if again.is_empty() {
            return;
        }
        offer = again;
    }
    panic!("envelopes were never stored");
}

/// `all` in an order fixed by `seed` (xorshift, Fisher-Yates), for
/// delivering envelopes in many orders reproducibly.
#[allow(dead_code)]
pub fn shuffled<T>(mut all: Vec<T>, seed: u64) -> Vec<T> {
    let mut state = seed | 1;
    for i in (1..all.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        all.swap(i, (state % (i as u64 + 1)) as usize);
    }
    all
}
