//! Signed bundles: envelopes in a file, for sites with poor or no internet
//! and for joining a network.
//!
//! ```text
//! magic     "GHBUNDLE"          8 bytes
//! version   u8 = 1
//! network   [u8; 32]
//! entries   u32 length (1..=MAX_ENVELOPE_BYTES), then that many envelope bytes; repeated
//! end       u32 0, u64 entry count, [u8; 32] blake3 of every byte before the end marker
//! ```
//!
//! A bundle adds no trust of its own: every envelope in it is verified and
//! judged on import exactly as if it had come from a peer. The end marker
//! lets an importer tell a complete file from a truncated one; a damaged
//! entry is refused on its own and the rest are still read, and a file that
//! breaks part-way stores the valid envelopes before the break and says
//! where it broke.

use std::collections::BTreeMap;

use gatehouse_protocol::envelope::{
    Envelope, MAX_ENVELOPE_BYTES, Verified, VerifyError, peek_created_ms,
};
use gatehouse_protocol::id::{EnvelopeId, NetworkId};
use gatehouse_protocol::trust::Judgement;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::library::{Library, LibraryError};
use crate::query::arrivals::{Arrival, Arrivals, arrivals};

/// The first bytes of every bundle.
pub const MAGIC: &[u8; 8] = b"GHBUNDLE";
/// The bundle format version.
pub const VERSION: u8 = 1;
/// Most entries read from one bundle.
pub const MAX_BUNDLE_ENTRIES: usize = 1_000_000;
/// Most refusals listed one by one in an import report (all are counted).
pub const MAX_LISTED_REFUSALS: usize = 100;

const HEADER_BYTES: usize = 8 + 1 + 32;

/// A bundle file that cannot be read at all.
#[derive(Debug, Error)]
pub enum BundleError {
    /// Not a bundle.
    #[error("not a gatehouse bundle (it does not start with {MAGIC:?})")]
    NotABundle,
    /// A format version this code does not read.
    #[error("bundle format version {0} is not supported (this gatehouse reads version {VERSION})")]
    Version(u8),
    /// The bundle belongs to another network.
    #[error("the bundle is for network {got}, but this node is in network {expected}")]
    WrongNetwork {
        /// This node's network.
        expected: NetworkId,
        /// The bundle's.
        got: NetworkId,
    },
    /// The library refused to store.
    #[error(transparent)]
    Library(Box<LibraryError>),
}

/// Largest bundle file read: a whole national library of 300 sites is well
/// under a gigabyte.
pub const MAX_BUNDLE_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Reads a bundle (or invitation) file: a regular file of at most
/// [`MAX_BUNDLE_BYTES`], checked before anything is read, so a device or a
/// runaway file is refused at once rather than read until memory runs out.
pub fn read_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_BUNDLE_BYTES {
        return Err(std::io::Error::other(format!(
            "{} bytes, over the bundle limit of {MAX_BUNDLE_BYTES}",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_BUNDLE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(std::io::Error::other("the file grew past the bundle limit"));
    }
    Ok(bytes)
}

impl From<LibraryError> for BundleError {
    fn from(e: LibraryError) -> Self {
        BundleError::Library(Box::new(e))
    }
}

/// Writes a bundle of `envelopes` for `network`.
pub fn write(network: &NetworkId, envelopes: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        HEADER_BYTES + envelopes.iter().map(|e| e.len() + 4).sum::<usize>() + 44,
    );
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(network.as_bytes());
    for e in envelopes {
        out.extend_from_slice(&u32::try_from(e.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(e);
    }
    let digest = blake3::hash(&out);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(envelopes.len() as u64).to_be_bytes());
    out.extend_from_slice(digest.as_bytes());
    out
}

/// One entry read from a bundle.
#[derive(Debug)]
pub struct Entry<'a> {
    /// 1-based position in the file.
    pub index: usize,
    /// Byte offset of its length prefix.
    pub offset: usize,
    /// The envelope bytes.
    pub bytes: &'a [u8],
}

/// What reading a bundle found.
#[derive(Debug)]
pub struct Read<'a> {
    /// The network named in the header.
    pub network: NetworkId,
    /// Entries read before the end or the break.
    pub entries: Vec<Entry<'a>>,
    /// Where and how the file broke, if it did.
    pub broken: Option<String>,
}

/// Reads a bundle's entries without verifying them.
pub fn read(bytes: &[u8]) -> Result<Read<'_>, BundleError> {
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(BundleError::NotABundle);
    }
    let version = *bytes.get(8).ok_or(BundleError::NotABundle)?;
    if version != VERSION {
        return Err(BundleError::Version(version));
    }
    let network = NetworkId(
        bytes
            .get(9..HEADER_BYTES)
            .and_then(|b| b.try_into().ok())
            .ok_or(BundleError::NotABundle)?,
    );
    let mut entries = Vec::new();
    let mut pos = HEADER_BYTES;
    let broken = loop {
        let index = entries.len() + 1;
        let Some(len_bytes) = bytes.get(pos..pos + 4) else {
            break Some(format!(
                "truncated at byte {pos}: the file ends after {} entries without its end marker",
                entries.len()
            ));
        };
        let len =
            u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        if len == 0 {
            // The end marker: count and checksum.
            let Some(trailer) = bytes.get(pos + 4..pos + 44) else {
                break Some(format!(
                    "truncated at byte {pos}: the end marker is cut short"
                ));
            };
            let count = u64::from_be_bytes(trailer[..8].try_into().unwrap_or([0; 8]));
            if count != entries.len() as u64 {
                break Some(format!(
                    "the end marker at byte {pos} says {count} entries, but {} were read",
                    entries.len()
                ));
            }
            if blake3::hash(&bytes[..pos]).as_bytes()[..] != trailer[8..40] {
                break Some(format!(
                    "the checksum at byte {pos} does not match: the file was changed or damaged"
                ));
            }
            if bytes.len() != pos + 44 {
                break Some(format!(
                    "{} unexpected bytes after the end marker at byte {}",
                    bytes.len() - pos - 44,
                    pos + 44
                ));
            }
            break None;
        }
        if len > MAX_ENVELOPE_BYTES {
            break Some(format!(
                "entry {index} at byte {pos} claims {len} bytes, over the envelope limit of {MAX_ENVELOPE_BYTES}: the file is damaged here"
            ));
        }
        let Some(body) = bytes.get(pos + 4..pos + 4 + len) else {
            break Some(format!(
                "truncated in entry {index} at byte {pos}: it needs {len} bytes, {} remain",
                bytes.len().saturating_sub(pos + 4)
            ));
        };
        if entries.len() >= MAX_BUNDLE_ENTRIES {
            break Some(format!(
                "more than {MAX_BUNDLE_ENTRIES} entries; the rest were not read"
            ));
        }
        entries.push(Entry {
            index,
            offset: pos,
            bytes: body,
        });
        pos += 4 + len;
    };
    Ok(Read {
        network,
        entries,
        broken,
    })
}

/// One envelope a bundle import refused or could not put in effect.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refusal {
    /// 1-based position in the file.
    pub index: usize,
    /// Byte offset in the file.
    pub offset: usize,
    /// Its id, when it decoded.
    pub id: Option<EnvelopeId>,
    /// Why.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportReport {
    /// What arrived and took effect, by content.
    pub arrived: Arrivals,
    /// Entries read.
    pub read: usize,
    /// Envelopes new to this node and in effect.
    pub new: usize,
    /// Envelopes this node already held.
    pub duplicate: usize,
    /// New envelopes stored but waiting for what they depend on, by reason.
    pub pending: BTreeMap<String, usize>,
    /// New envelopes stored but without effect, by reason.
    pub rejected: BTreeMap<String, usize>,
    /// Entries refused outright (bad signature, malformed), by reason.
    pub refused: BTreeMap<String, usize>,
    /// The first refusals, one by one.
    pub refusals: Vec<Refusal>,
    /// Where the file broke, if it did.
    pub broken: Option<String>,
}

/// Imports a bundle: verifies every entry, stores the valid ones, and
/// reports what happened to each.
pub fn import(lib: &mut Library, bytes: &[u8]) -> Result<ImportReport, BundleError> {
    let network = lib.config().network;
    let file = read(bytes)?;
    if file.network != network {
        return Err(BundleError::WrongNetwork {
            expected: network,
            got: file.network,
        });
    }
    let mut report = ImportReport {
        read: file.entries.len(),
        broken: file.broken,
        ..ImportReport::default()
    };
    let mut valid: Vec<(usize, usize, Verified)> = Vec::new();
    for entry in &file.entries {
        match Envelope::open(entry.bytes, &network) {
            Ok(env) => valid.push((entry.index, entry.offset, env)),
            Err(e) => {
                // An envelope that parsed has an id; one that did not is
                // named by its place in the file. Nothing is decoded twice.
                let id =
                    (!matches!(e, VerifyError::Malformed(_))).then(|| EnvelopeId::of(entry.bytes));
                refuse(&mut report, entry.index, entry.offset, id, e.to_string());
            }
        }
    }
    let mut fresh: Vec<(EnvelopeId, Arrival)> = Vec::new();
    // A certificate whose signer another entry admits may come first in the
    // file: what had no effect yet is tried again while the rest of the
    // bundle brings something new.
    let mut waiting = valid;
    loop {
        let mut later = Vec::new();
        let stored_before = fresh.len();
        for (index, offset, env) in waiting {
            let id = env.id();
            if lib.has_envelope(&id)? {
                report.duplicate += 1;
                continue;
            }
            let arrival = Arrival::of(&env);
            match lib.accept_outside(env.clone()) {
                Ok(_) => fresh.push((id, arrival)),
                Err(e @ LibraryError::NoEffect(_)) => later.push((index, offset, env, e)),
                Err(
                    e @ (LibraryError::PoolFull(_)
                    | LibraryError::SignerLimit(_)
                    | LibraryError::ContentRefused { .. }
                    | LibraryError::CertificateRefused { .. }
                    | LibraryError::PostRefused { .. }),
                ) => {
                    refuse(&mut report, index, offset, Some(id), e.to_string());
                }
                Err(e) => return Err(e.into()),
            }
        }
        if later.is_empty() || fresh.len() == stored_before {
            for (index, offset, env, e) in later {
                refuse(&mut report, index, offset, Some(env.id()), e.to_string());
            }
            break;
        }
        waiting = later
            .into_iter()
            .map(|(index, offset, env, _)| (index, offset, env))
            .collect();
    }
    lib.finish()?;
    // Judged after the whole bundle is in: order within the file does not matter.
    let mut in_effect = Vec::new();
    for (id, arrival) in fresh {
        match lib.judgement_of(&id)? {
            Judgement::Accepted => {
                report.new += 1;
                in_effect.push(arrival);
            }
            Judgement::Pending(r) => *report.pending.entry(r.to_string()).or_default() += 1,
            Judgement::Rejected(r) => *report.rejected.entry(r.to_string()).or_default() += 1,
        }
    }
    report.arrived = arrivals(&lib.read_view(), &in_effect);
    Ok(report)
}

fn refuse(
    report: &mut ImportReport,
    index: usize,
    offset: usize,
    id: Option<EnvelopeId>,
    reason: String,
) {
    *report.refused.entry(reason.clone()).or_default() += 1;
    if report.refusals.len() < MAX_LISTED_REFUSALS {
        report.refusals.push(Refusal {
            index,
            offset,
            id,
            reason,
        });
    }
}

/// The envelopes to put in a bundle: every certificate, and every other
/// envelope claimed at or after `since_ms` (all of them without it).
pub fn select(lib: &Library, since_ms: Option<u64>) -> Result<Vec<Vec<u8>>, LibraryError> {
    let certificates = lib.certificate_ids()?;
    Ok(lib
        .export()?
        .into_iter()
        .filter(|bytes| {
            since_ms.is_none_or(|since| {
                certificates.contains(&EnvelopeId::of(bytes))
                    || peek_created_ms(bytes).is_some_and(|t| t >= since)
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_wrote_and_finds_every_break() {
        let network = NetworkId([9; 32]);
        let entries = vec![vec![1u8; 10], vec![2u8; 20], vec![3u8; 5]];
        let bytes = write(&network, &entries);
        let back = read(&bytes).expect("reads");
        assert_eq!(back.network, network);
        assert!(back.broken.is_none(), "{:?}", back.broken);
        assert_eq!(
            back.entries
                .iter()
                .map(|e| e.bytes.to_vec())
                .collect::<Vec<_>>(),
            entries
        );
        // Truncated anywhere: what came before is read, and the break is named.
        for cut in HEADER_BYTES..bytes.len() {
            let r = read(&bytes[..cut]).expect("header intact");
            assert!(r.broken.is_some(), "cut at {cut} not noticed");
        }
        // A flipped byte in an entry body is caught by the checksum.
        let mut damaged = bytes.clone();
        damaged[HEADER_BYTES + 6] ^= 0xff;
        assert!(read(&damaged).expect("reads").broken.is_some());
        assert!(matches!(
            read(b"not a bundle"),
            Err(BundleError::NotABundle)
        ));
    }
}
