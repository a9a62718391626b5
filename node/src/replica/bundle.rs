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

use gatehouse_protocol::envelope::{Envelope, MAX_ENVELOPE_BYTES, VerifyError, peek_created_ms};
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
    /// The file could not be read.
    #[error("cannot read the bundle: {0}")]
    Io(std::io::Error),
}

/// Largest bundle file read: a whole national library of 300 sites is well
/// under a gigabyte.
pub const MAX_BUNDLE_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Opens a bundle (or invitation) file for reading: a regular file of at
/// most [`MAX_BUNDLE_BYTES`], checked before anything is read, so a device
/// or a runaway file is refused at once rather than read until memory runs
/// out.
pub fn open_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
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
    Ok(file)
}

/// Reads a whole bundle (or invitation) file into memory, under the checks
/// of [`open_file`]. Imports read from the file as they go
/// ([`import_file`]); this is for invitations, which are small.
pub fn read_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    open_file(path)?
        .take(MAX_BUNDLE_BYTES + 1)
        .read_to_end(&mut bytes)?;
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
pub struct Entry {
    /// 1-based position in the file.
    pub index: usize,
    /// Byte offset of its length prefix.
    pub offset: u64,
    /// The envelope bytes.
    pub bytes: Vec<u8>,
}

/// What reading a bundle found.
#[derive(Debug)]
pub struct Read {
    /// The network named in the header.
    pub network: NetworkId,
    /// Entries read before the end or the break.
    pub entries: Vec<Entry>,
    /// Where and how the file broke, if it did.
    pub broken: Option<String>,
}

/// Reads a bundle held in memory, every entry, without verifying them.
pub fn read(bytes: &[u8]) -> Result<Read, BundleError> {
    let mut reader = Reader::new(bytes)?;
    let mut entries = Vec::new();
    while let Some(entry) = reader.next_entry() {
        entries.push(entry);
    }
    Ok(Read {
        network: reader.network,
        broken: reader.broken,
        entries,
    })
}

/// Reads a bundle's entries one at a time from `R`, holding one entry in
/// memory at once, and checks the end marker (count and checksum) when it
/// comes to it.
pub struct Reader<R> {
    inner: R,
    /// The network named in the header.
    pub network: NetworkId,
    /// Bytes read so far.
    pos: u64,
    /// Entries read so far.
    count: usize,
    /// The checksum of every byte before the end marker, so far.
    hasher: blake3::Hasher,
    /// Where and how the file broke, once it has.
    pub broken: Option<String>,
    done: bool,
}

/// Reads into `buf` until it is full or the source ends: how many bytes
/// were read.
fn fill(inner: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match inner.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl<R: std::io::Read> Reader<R> {
    /// Reads the header: magic, version, network.
    pub fn new(mut inner: R) -> Result<Self, BundleError> {
        let mut header = [0u8; HEADER_BYTES];
        let got = fill(&mut inner, &mut header).map_err(BundleError::Io)?;
        if got < 9 || &header[..8] != MAGIC {
            return Err(BundleError::NotABundle);
        }
        if header[8] != VERSION {
            return Err(BundleError::Version(header[8]));
        }
        if got < HEADER_BYTES {
            return Err(BundleError::NotABundle);
        }
        let mut network = [0u8; 32];
        network.copy_from_slice(&header[9..HEADER_BYTES]);
        let mut hasher = blake3::Hasher::new();
        hasher.update(&header);
        Ok(Self {
            inner,
            network: NetworkId(network),
            pos: HEADER_BYTES as u64,
            count: 0,
            hasher,
            broken: None,
            done: false,
        })
    }

    fn stop(&mut self, why: String) -> Option<Entry> {
        self.broken = Some(why);
        self.done = true;
        None
    }

    /// The next entry, or `None` at the end marker or where the file
    /// breaks (then [`Reader::broken`] says where and how).
    pub fn next_entry(&mut self) -> Option<Entry> {
        if self.done {
            return None;
        }
        let pos = self.pos;
        let index = self.count + 1;
        let mut len_bytes = [0u8; 4];
        match fill(&mut self.inner, &mut len_bytes) {
            Ok(4) => {}
            Ok(_) => {
                return self.stop(format!(
                    "truncated at byte {pos}: the file ends after {} entries without its end marker",
                    self.count
                ));
            }
            Err(e) => return self.stop(format!("cannot read at byte {pos}: {e}")),
        }
        let len = u32::from_be_bytes(len_bytes) as usize;
        if len == 0 {
            self.done = true;
            self.end_marker(pos);
            return None;
        }
        if len > MAX_ENVELOPE_BYTES {
            return self.stop(format!(
                "entry {index} at byte {pos} claims {len} bytes, over the envelope limit of {MAX_ENVELOPE_BYTES}: the file is damaged here"
            ));
        }
        if self.count >= MAX_BUNDLE_ENTRIES {
            return self.stop(format!(
                "more than {MAX_BUNDLE_ENTRIES} entries; the rest were not read"
            ));
        }
        let mut bytes = vec![0u8; len];
        match fill(&mut self.inner, &mut bytes) {
            Ok(n) if n == len => {}
            Ok(n) => {
                return self.stop(format!(
                    "truncated in entry {index} at byte {pos}: it needs {len} bytes, {n} remain"
                ));
            }
            Err(e) => return self.stop(format!("cannot read at byte {}: {e}", pos + 4)),
        }
        self.hasher.update(&len_bytes);
        self.hasher.update(&bytes);
        self.pos += 4 + len as u64;
        self.count += 1;
        Some(Entry {
            index,
            offset: pos,
            bytes,
        })
    }

    /// Checks the end marker at `pos` (its zero length already read): the
    /// count, the checksum, and that nothing follows.
    fn end_marker(&mut self, pos: u64) {
        let mut trailer = [0u8; 40];
        match fill(&mut self.inner, &mut trailer) {
            Ok(40) => {}
            Ok(_) => {
                self.broken = Some(format!(
                    "truncated at byte {pos}: the end marker is cut short"
                ));
                return;
            }
            Err(e) => {
                self.broken = Some(format!("cannot read at byte {pos}: {e}"));
                return;
            }
        }
        let count = u64::from_be_bytes(trailer[..8].try_into().unwrap_or([0; 8]));
        if count != self.count as u64 {
            self.broken = Some(format!(
                "the end marker at byte {pos} says {count} entries, but {} were read",
                self.count
            ));
            return;
        }
        if self.hasher.finalize().as_bytes()[..] != trailer[8..40] {
            self.broken = Some(format!(
                "the checksum at byte {pos} does not match: the file was changed or damaged"
            ));
            return;
        }
        match std::io::copy(&mut self.inner, &mut std::io::sink()) {
            Ok(0) => {}
            Ok(extra) => {
                self.broken = Some(format!(
                    "{extra} unexpected bytes after the end marker at byte {}",
                    pos + 44
                ));
            }
            Err(e) => self.broken = Some(format!("cannot read at byte {}: {e}", pos + 44)),
        }
    }
}

/// One envelope a bundle import refused or could not put in effect.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refusal {
    /// 1-based position in the file.
    pub index: usize,
    /// Byte offset in the file.
    pub offset: u64,
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
    /// Entries that can have no effect yet (a certificate whose signer no
    /// envelope held admits), by reason: not stored, but held back and
    /// offered again by the next import.
    #[serde(default)]
    pub held_back: BTreeMap<String, usize>,
    /// Entries held back by earlier imports that this one put in place.
    #[serde(default)]
    pub released: usize,
    /// The first refusals, one by one.
    pub refusals: Vec<Refusal>,
    /// Where the file broke, if it did.
    pub broken: Option<String>,
}

/// Most bytes of new envelopes an import holds before it ends a batch:
/// the changes of a batch stay in memory until it ends, so a national
/// library's bundle is imported in steps of this size, each durable, and
/// what the import holds stays bounded however large the file.
pub const IMPORT_BATCH_BYTES: usize = 32 * 1024 * 1024;

/// Imports a bundle held in memory (an invitation, a test's bundle).
pub fn import(lib: &mut Library, bytes: &[u8]) -> Result<ImportReport, BundleError> {
    import_from(lib, std::io::Cursor::new(bytes))
}

/// Imports a bundle file, reading it as it goes ([`import_from`]) under the
/// checks of [`open_file`].
pub fn import_file(lib: &mut Library, path: &std::path::Path) -> Result<ImportReport, BundleError> {
    let file = open_file(path).map_err(BundleError::Io)?;
    import_from(lib, std::io::BufReader::new(file))
}

/// Imports a bundle: verifies every entry, stores the valid ones, and
/// reports what happened to each. One entry is held in memory at a time.
/// An entry that can have no effect yet (a certificate whose signer a later
/// entry admits) is remembered by its place and read again once the rest of
/// the file is in, so order within the file does not matter; one that still
/// has none is held back ([`Library::hold_back`]) and offered again by the
/// next import, with those held back by earlier ones, so order between
/// files does not matter either.
pub fn import_from<R: std::io::Read + std::io::Seek>(
    lib: &mut Library,
    source: R,
) -> Result<ImportReport, BundleError> {
    let network = lib.config().network;
    let mut reader = Reader::new(source)?;
    if reader.network != network {
        return Err(BundleError::WrongNetwork {
            expected: network,
            got: reader.network,
        });
    }
    let mut import = Import {
        report: ImportReport::default(),
        fresh: Vec::new(),
        batch_bytes: 0,
    };
    // Entries with no effect yet: place, length, id, why.
    let mut later: Vec<(usize, u64, usize, EnvelopeId, String)> = Vec::new();
    while let Some(entry) = reader.next_entry() {
        import.report.read += 1;
        match import.offer(lib, &entry.bytes)? {
            Offered::Stored | Offered::Duplicate => {}
            Offered::NotYet(id, reason) => {
                later.push((entry.index, entry.offset, entry.bytes.len(), id, reason));
            }
            Offered::Refused(id, reason) => {
                refuse(&mut import.report, entry.index, entry.offset, id, reason);
            }
        }
    }
    import.report.broken = reader.broken.take();
    let mut source = reader.inner;
    let mut held = lib.held_back_ids()?;
    let held_before = held.len();
    // What has no effect yet is offered again while the rest brings
    // something new.
    loop {
        let stored_before = import.fresh.len();
        let mut still_held = Vec::new();
        for id in held {
            let Some(bytes) = lib.held_back(&id)? else {
                continue;
            };
            // Not this file's entry: only what it puts in place is reported.
            let duplicates = import.report.duplicate;
            let offered = import.offer(lib, &bytes)?;
            import.report.duplicate = duplicates;
            match offered {
                Offered::NotYet(..) => still_held.push(id),
                _ => lib.release(&id)?,
            }
        }
        held = still_held;
        let mut left = Vec::new();
        for (index, offset, len, id, reason) in later {
            let bytes = read_entry_at(&mut source, offset, len).map_err(BundleError::Io)?;
            match import.offer(lib, &bytes)? {
                Offered::Stored | Offered::Duplicate => {}
                Offered::NotYet(..) => left.push((index, offset, len, id, reason)),
                Offered::Refused(id, reason) => {
                    refuse(&mut import.report, index, offset, id, reason);
                }
            }
        }
        later = left;
        if (later.is_empty() && held.is_empty()) || import.fresh.len() == stored_before {
            break;
        }
    }
    for (_, offset, len, id, reason) in later {
        let bytes = read_entry_at(&mut source, offset, len).map_err(BundleError::Io)?;
        lib.hold_back(&id, &bytes)?;
        *import.report.held_back.entry(reason).or_default() += 1;
    }
    import.report.released = held_before - held.len();
    lib.finish()?;
    // Judged after the whole bundle is in: order within the file does not matter.
    let mut in_effect = Vec::new();
    let mut report = import.report;
    for (id, arrival) in import.fresh {
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

/// The bytes of the entry whose length prefix is at `offset`.
fn read_entry_at(
    source: &mut (impl std::io::Read + std::io::Seek),
    offset: u64,
    len: usize,
) -> std::io::Result<Vec<u8>> {
    source.seek(std::io::SeekFrom::Start(offset + 4))?;
    let mut bytes = vec![0u8; len];
    source.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// An import under way.
struct Import {
    report: ImportReport,
    /// New envelopes stored, with what each brings.
    fresh: Vec<(EnvelopeId, Arrival)>,
    /// Bytes of new envelopes since the batch began.
    batch_bytes: usize,
}

/// What offering one entry did.
enum Offered {
    /// Stored (in effect or not).
    Stored,
    /// Already held.
    Duplicate,
    /// It can have no effect yet: not stored.
    NotYet(EnvelopeId, String),
    /// Refused: malformed, forged, or against the rules.
    Refused(Option<EnvelopeId>, String),
}

impl Import {
    /// Verifies one entry and offers it to the library.
    fn offer(&mut self, lib: &mut Library, bytes: &[u8]) -> Result<Offered, BundleError> {
        let network = lib.config().network;
        let env = match Envelope::open(bytes, &network) {
            Ok(env) => env,
            Err(e) => {
                // An envelope that parsed has an id; one that did not is
                // named by its place in the file. Nothing is decoded twice.
                let id = (!matches!(e, VerifyError::Malformed(_))).then(|| EnvelopeId::of(bytes));
                return Ok(Offered::Refused(id, e.to_string()));
            }
        };
        let id = env.id();
        if lib.has_envelope(&id)? {
            self.report.duplicate += 1;
            return Ok(Offered::Duplicate);
        }
        let arrival = Arrival::of(&env);
        match lib.accept_outside(env) {
            Ok(_) => {
                self.fresh.push((id, arrival));
                self.batch_bytes += bytes.len();
                if self.batch_bytes >= IMPORT_BATCH_BYTES {
                    lib.finish()?;
                    self.batch_bytes = 0;
                }
                Ok(Offered::Stored)
            }
            Err(e @ LibraryError::NoEffect(_)) => Ok(Offered::NotYet(id, e.to_string())),
            Err(
                e @ (LibraryError::PoolFull(_)
                | LibraryError::SignerLimit(_)
                | LibraryError::ContentRefused { .. }
                | LibraryError::CertificateRefused { .. }
                | LibraryError::PostRefused { .. }),
            ) => Ok(Offered::Refused(Some(id), e.to_string())),
            Err(e) => Err(e.into()),
        }
    }
}

fn refuse(
    report: &mut ImportReport,
    index: usize,
    offset: u64,
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
