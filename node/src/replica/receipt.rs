//! Receipts: what a site holds, so that another can send it by bundle only
//! what it lacks.
//!
//! A site on a poor line or none runs `gatehouse bundle receipt` and sends
//! the file (by email, on a stick) to a site that will write it bundles;
//! that site imports it and from then on `gatehouse bundle export --for
//! SITE` writes only what the receipt does not list. A receipt is signed
//! by the node key of the site that made it and checked against the
//! network's trust before it is kept: a receipt cannot be forged to make a
//! site send another's library elsewhere (bundles carry nothing a site
//! could not fetch anyway, but what a site holds is its own business).
//!
//! ```text
//! magic        "GHRECEPT"   8 bytes
//! version      u8 = 1
//! network      [u8; 32]
//! establishment [u8; 16]
//! node key     [u8; 32]
//! created_ms   u64
//! envelopes    u32 count, then 16-byte id prefixes, sorted
//! files        u32 count, then 32-byte file hashes, sorted
//! signature    [u8; 64]   by the node key, over "gatehouse/v1/receipt\0" and every byte before it
//! ```
//!
//! Ids are cut to 16 bytes: a receipt of 100,000 envelopes is 1.6 MB, and
//! two different envelopes sharing a 128-bit prefix is not a chance worth
//! counting.

use std::collections::BTreeSet;

use gatehouse_protocol::attachment::BlobHash;
use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, NetworkId};
use gatehouse_protocol::key::{PublicKey, SecretKey};
use thiserror::Error;

use crate::library::Library;
use crate::store::Tree;

/// The first bytes of every receipt.
pub const RECEIPT_MAGIC: &[u8; 8] = b"GHRECEPT";
const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"gatehouse/v1/receipt\0";
/// Most envelopes a receipt may list.
pub const MAX_RECEIPT_ENVELOPES: usize = 4_000_000;
/// Most files a receipt may list.
pub const MAX_RECEIPT_FILES: usize = 1_000_000;

/// Why a receipt was not taken.
#[derive(Debug, Error)]
pub enum ReceiptError {
    /// Not a receipt, or a damaged one.
    #[error("not a gatehouse receipt, or a damaged one: {0}")]
    Malformed(String),
    /// Another network's.
    #[error("the receipt is from network {0}, not this one")]
    WrongNetwork(NetworkId),
    /// The signature does not verify.
    #[error("the receipt's signature does not verify: it was changed after it was made")]
    BadSignature,
    /// Signed by a key that is not a node of the establishment it names.
    #[error("the receipt is signed by a key that is not a node of the establishment it names")]
    NotTheSite,
}

/// A site's receipt, read and checked.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The site it describes.
    pub establishment: EstablishmentId,
    /// Its node's key, which signed it.
    pub node: PublicKey,
    /// When it was made (the site's clock).
    pub created_ms: u64,
    /// Prefixes of the ids of every envelope it held.
    pub envelopes: BTreeSet<[u8; 16]>,
    /// Every file it held whole.
    pub files: BTreeSet<BlobHash>,
}

fn prefix(id: &EnvelopeId) -> [u8; 16] {
    let mut p = [0u8; 16];
    p.copy_from_slice(&id.as_bytes()[..16]);
    p
}

impl Receipt {
    /// Whether the site held `id` when it made the receipt.
    pub fn holds(&self, id: &EnvelopeId) -> bool {
        self.envelopes.contains(&prefix(id))
    }

    /// The receipt's bytes, signed with `node_key`.
    pub fn write(
        network: &NetworkId,
        establishment: &EstablishmentId,
        node_key: &SecretKey,
        created_ms: u64,
        envelopes: &[EnvelopeId],
        files: &[BlobHash],
    ) -> Vec<u8> {
        let prefixes: BTreeSet<[u8; 16]> = envelopes.iter().map(prefix).collect();
        let files: BTreeSet<BlobHash> = files.iter().copied().collect();
        let mut out = Vec::with_capacity(8 + 1 + 32 + 16 + 32 + 8 + 8 + prefixes.len() * 16);
        out.extend_from_slice(RECEIPT_MAGIC);
        out.push(VERSION);
        out.extend_from_slice(network.as_bytes());
        out.extend_from_slice(establishment.as_bytes());
        out.extend_from_slice(node_key.public().as_bytes());
        out.extend_from_slice(&created_ms.to_be_bytes());
        out.extend_from_slice(&(prefixes.len() as u32).to_be_bytes());
        for p in &prefixes {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(&(files.len() as u32).to_be_bytes());
        for f in &files {
            out.extend_from_slice(f.as_bytes());
        }
        let signature = node_key.sign(&[DOMAIN, out.as_slice()].concat());
        out.extend_from_slice(&signature);
        out
    }

    /// Reads a receipt and checks its signature and network (not yet who
    /// signed it: see [`Library::take_receipt`]).
    pub fn read(bytes: &[u8], network: &NetworkId) -> Result<Self, ReceiptError> {
        let bad = |why: &str| ReceiptError::Malformed(why.to_string());
        if bytes.len() < 8 + 1 + 32 + 16 + 32 + 8 + 4 + 4 + 64 || &bytes[..8] != RECEIPT_MAGIC {
            return Err(bad("it does not start as a receipt does"));
        }
        if bytes[8] != VERSION {
            return Err(bad(&format!(
                "receipt version {} is not read here",
                bytes[8]
            )));
        }
        let (body, sig) = bytes.split_at(bytes.len() - 64);
        let mut at = 9;
        let mut take = |n: usize| -> Result<&[u8], ReceiptError> {
            let s = body.get(at..at + n).ok_or_else(|| bad("it is cut short"))?;
            at += n;
            Ok(s)
        };
        let mut net = [0u8; 32];
        net.copy_from_slice(take(32)?);
        if NetworkId(net) != *network {
            return Err(ReceiptError::WrongNetwork(NetworkId(net)));
        }
        let mut est = [0u8; 16];
        est.copy_from_slice(take(16)?);
        let mut key = [0u8; 32];
        key.copy_from_slice(take(32)?);
        let node = PublicKey::from_bytes_strong(key).map_err(|_| bad("its key is not a key"))?;
        let mut word = [0u8; 8];
        word.copy_from_slice(take(8)?);
        let created_ms = u64::from_be_bytes(word);
        let count = |t: &[u8]| u32::from_be_bytes([t[0], t[1], t[2], t[3]]) as usize;
        let n = count(take(4)?);
        if n > MAX_RECEIPT_ENVELOPES {
            return Err(bad("it lists too many envelopes"));
        }
        let mut envelopes = BTreeSet::new();
        for _ in 0..n {
            let mut p = [0u8; 16];
            p.copy_from_slice(take(16)?);
            envelopes.insert(p);
        }
        let n = count(take(4)?);
        if n > MAX_RECEIPT_FILES {
            return Err(bad("it lists too many files"));
        }
        let mut files = BTreeSet::new();
        for _ in 0..n {
            let mut h = [0u8; 32];
            h.copy_from_slice(take(32)?);
            files.insert(BlobHash(h));
        }
        if at != body.len() {
            return Err(bad("bytes follow its lists"));
        }
        let signature: [u8; 64] = sig.try_into().map_err(|_| ReceiptError::BadSignature)?;
        if !node.verify(&[DOMAIN, body].concat(), &signature) {
            return Err(ReceiptError::BadSignature);
        }
        Ok(Self {
            establishment: EstablishmentId(est),
            node,
            created_ms,
            envelopes,
            files,
        })
    }
}

/// Where a site's latest receipt is kept, in the config tree.
fn receipt_key(establishment: &EstablishmentId) -> Vec<u8> {
    [b"receipt/".as_slice(), establishment.as_bytes()].concat()
}

impl Library {
    /// This node's receipt: every envelope and whole file it holds, signed
    /// with its node key.
    pub fn receipt(&mut self, node_key: &SecretKey) -> crate::error::Result<Vec<u8>> {
        let ids = self.replica.sorted_ids()?;
        let files: Vec<BlobHash> = self
            .blobs
            .as_ref()
            .map(|b| b.list().into_iter().map(|(h, _)| h).collect())
            .unwrap_or_default();
        Ok(Receipt::write(
            &self.config.network,
            &self.config.establishment,
            node_key,
            self.now(),
            &ids,
            &files,
        ))
    }

    /// Checks another site's receipt (signed by a node of the
    /// establishment it names) and keeps it, replacing an older one.
    pub fn take_receipt(&mut self, bytes: &[u8]) -> Result<Receipt, ReceiptError> {
        let receipt = Receipt::read(bytes, &self.config.network)?;
        let trust = self.replica.trust();
        let is_node = trust.members.values().any(|m| {
            m.key == receipt.node
                && m.establishment == receipt.establishment
                && m.role == gatehouse_protocol::certificate::MemberRole::Device
        });
        if !is_node {
            return Err(ReceiptError::NotTheSite);
        }
        if let Some(kept) = self.kept_receipt(&receipt.establishment)
            && kept.created_ms > receipt.created_ms
        {
            // An older receipt arriving late changes nothing.
            return Ok(kept);
        }
        self.store
            .apply(vec![(
                Tree::Config,
                receipt_key(&receipt.establishment),
                Some(bytes.to_vec()),
            )])
            .and_then(|()| self.store.flush())
            .map_err(|e| ReceiptError::Malformed(e.to_string()))?;
        Ok(receipt)
    }

    /// The latest receipt kept from `establishment`.
    pub fn kept_receipt(&self, establishment: &EstablishmentId) -> Option<Receipt> {
        let bytes = self
            .store
            .get(Tree::Config, &receipt_key(establishment))
            .ok()??;
        Receipt::read(&bytes, &self.config.network).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_reads_back_and_a_changed_one_is_refused() {
        let key = SecretKey::from_seed([3; 32]);
        let network = NetworkId([1; 32]);
        let ids = [EnvelopeId([5; 32]), EnvelopeId([2; 32])];
        let files = [BlobHash([9; 32])];
        let bytes = Receipt::write(&network, &EstablishmentId([4; 16]), &key, 77, &ids, &files);
        let r = Receipt::read(&bytes, &network).expect("reads");
        assert_eq!(
            (r.establishment, r.node, r.created_ms),
            (EstablishmentId([4; 16]), key.public(), 77)
        );
        assert!(r.holds(&EnvelopeId([5; 32])) && !r.holds(&EnvelopeId([6; 32])));
        assert!(r.files.contains(&BlobHash([9; 32])));
        let mut changed = bytes.clone();
        changed[60] ^= 1;
        assert!(Receipt::read(&changed, &network).is_err());
        assert!(matches!(
            Receipt::read(&bytes, &NetworkId([2; 32])),
            Err(ReceiptError::WrongNetwork(_))
        ));
    }
}
