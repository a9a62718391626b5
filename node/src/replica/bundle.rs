//! Signed bundles: envelopes in a file, for sites with poor or no internet
//! and for joining a network.
//!
//! ```text
//! magic     "GHBUNDLE"          8 bytes
//! version   u8 = 1 (envelopes only) or 2 (envelopes and files)
//! network   [u8; 32]
//! entries   u32 length, then that many bytes; repeated
//!           version 1: the envelope (1..=MAX_ENVELOPE_BYTES)
//!           version 2: u8 1 then the envelope, or u8 2 then a piece of a
//!           file: hash [32], size u64, start u64, then the bytes from
//!           start in their verified-streaming encoding (every 1 KiB chunk
//!           checked against the hash as it is read)
//! end       u32 0, u64 entry count, [u8; 32] blake3 of every byte before the end marker
//! ```
//!
//! A bundle too large for a stick or an email is written in parts, each a
//! whole bundle that imports on its own; a file's pieces run in order
//! across the parts, so the parts are imported in order (a piece that
//! comes before its file's earlier pieces is named and skipped).
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
/// The bundle format version of envelopes alone.
pub const VERSION: u8 = 1;
/// The bundle format version that also carries files.
pub const VERSION_FILES: u8 = 2;
/// The most bytes of a file one entry carries.
pub const FILE_PIECE_BYTES: u64 = 1024 * 1024;
/// The longest entry of a version 2 bundle.
pub const MAX_ENTRY_BYTES_V2: usize = 2 * 1024 * 1024;
/// The smallest part a bundle is split into.
pub const MIN_PART_BYTES: u64 = 2 * 1024 * 1024;
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
    #[error(
        "bundle format version {0} is not supported (this gatehouse reads versions {VERSION} and {VERSION_FILES})"
    )]
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

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// An envelope.
    Envelope,
    /// A piece of a file.
    FilePiece,
}

/// One entry read from a bundle.
#[derive(Debug)]
pub struct Entry {
    /// 1-based position in the file.
    pub index: usize,
    /// Byte offset of its length prefix.
    pub offset: u64,
    /// Byte offset of `bytes` in the file.
    pub data_offset: u64,
    /// What it holds.
    pub kind: EntryKind,
    /// The envelope's bytes, or the file piece's.
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
    /// The format version.
    pub version: u8,
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
        if header[8] != VERSION && header[8] != VERSION_FILES {
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
            version: header[8],
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
        let max = if self.version == VERSION_FILES {
            MAX_ENTRY_BYTES_V2
        } else {
            MAX_ENVELOPE_BYTES
        };
        if len > max {
            return self.stop(format!(
                "entry {index} at byte {pos} claims {len} bytes, over the limit of {max}: the file is damaged here"
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
        if self.version == VERSION_FILES {
            let kind = match bytes.first() {
                Some(1) => EntryKind::Envelope,
                Some(2) => EntryKind::FilePiece,
                _ => {
                    return self.stop(format!(
                        "entry {index} at byte {pos} is of no kind this gatehouse reads"
                    ));
                }
            };
            bytes.remove(0);
            return Some(Entry {
                index,
                offset: pos,
                data_offset: pos + 5,
                kind,
                bytes,
            });
        }
        Some(Entry {
            index,
            offset: pos,
            data_offset: pos + 4,
            kind: EntryKind::Envelope,
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
    /// Files the bundle made whole here, checked and kept.
    #[serde(default)]
    pub files: usize,
    /// Files the bundle carried that were not kept, by reason.
    #[serde(default)]
    pub files_refused: BTreeMap<String, usize>,
}

/// Most bytes of new envelopes an import holds before it ends a batch:
/// the changes of a batch stay in memory until it ends, so a national
/// library's bundle is imported in steps of this size, each durable, and
/// what the import holds stays bounded however large the file.
pub const IMPORT_BATCH_BYTES: usize = 32 * 1024 * 1024;

/// Entries read ahead of the one being stored, so that their envelopes
/// are opened together on the machine's cores.
const OPEN_AHEAD: usize = 256;
/// Most bytes of entries read ahead.
const OPEN_AHEAD_BYTES: usize = 8 * 1024 * 1024;

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

/// [`import_file`], calling `progress(read, total)` in bytes as the file
/// is read.
pub fn import_file_with(
    lib: &mut Library,
    path: &std::path::Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ImportReport, BundleError> {
    let file = open_file(path).map_err(BundleError::Io)?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    import_from(
        lib,
        Counting {
            inner: std::io::BufReader::new(file),
            read: 0,
            total,
            progress,
        },
    )
}

/// A reader that says how far it has read.
struct Counting<'a, R> {
    inner: R,
    read: u64,
    total: u64,
    progress: &'a mut dyn FnMut(u64, u64),
}

impl<R: std::io::Read> std::io::Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let before = self.read;
        self.read += n as u64;
        // Told every 256 KiB, and at the end.
        if self.read / (256 * 1024) != before / (256 * 1024) || self.read >= self.total {
            (self.progress)(self.read.min(self.total), self.total);
        }
        Ok(n)
    }
}

impl<R: std::io::Seek> std::io::Seek for Counting<'_, R> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Imports a bundle: verifies every entry, stores the valid ones, and
/// reports what happened to each. Two stretches of entries are held in
/// memory at a time (the one being stored and the one being opened), each
/// at most [`OPEN_AHEAD`] entries or [`OPEN_AHEAD_BYTES`].
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
        completed: Vec::new(),
    };
    // Entries with no effect yet: place, length, id, why.
    let mut later: Vec<(usize, u64, usize, EnvelopeId, String)> = Vec::new();
    // The file is read in stretches. The envelopes of the next stretch are
    // opened (signatures, payloads, new items' documents) on other threads
    // while this thread stores the stretch before it: storing is one
    // thread's work, and opening would otherwise leave a core idle.
    let judges = lib.replica.judges_content();
    let mut current = Stretch::read(&mut reader, lib)?;
    let mut opened = current.open(&network, judges);
    while !current.entries.is_empty() {
        let next = Stretch::read(&mut reader, lib)?;
        let (stored, next_opened) = std::thread::scope(|scope| {
            let opening = scope.spawn(|| next.open(&network, judges));
            let stored = import.store_stretch(lib, current, opened, &mut later);
            (stored, opening.join())
        });
        stored?;
        opened = next_opened.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        current = next;
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
    // Files whole now are checked as files from a peer are, against the
    // items that carry them (in this bundle or held already).
    for hash in std::mem::take(&mut import.completed) {
        match lib.blob_arrived(&hash)? {
            crate::authoring::attach::BlobCheck::Kept => import.report.files += 1,
            crate::authoring::attach::BlobCheck::Refused(reason) => {
                *import.report.files_refused.entry(reason).or_default() += 1;
            }
            crate::authoring::attach::BlobCheck::Unknown => {
                if let Some(b) = lib.blobs() {
                    b.remove(&hash);
                }
                *import
                    .report
                    .files_refused
                    .entry("no item here carries it".into())
                    .or_default() += 1;
            }
        }
    }
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

/// The `len` bytes of an entry at `offset`.
fn read_entry_at(
    source: &mut (impl std::io::Read + std::io::Seek),
    offset: u64,
    len: usize,
) -> std::io::Result<Vec<u8>> {
    source.seek(std::io::SeekFrom::Start(offset))?;
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
    /// Files made whole by this import.
    completed: Vec<gatehouse_protocol::attachment::BlobHash>,
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

/// Entries read ahead of the ones being stored, so that their envelopes
/// are opened together on the machine's cores; each marked whether it is
/// to be opened (an envelope not held when read).
struct Stretch {
    entries: Vec<Entry>,
    wanted: Vec<bool>,
}

/// A stretch's envelopes opened, in the order of the wanted entries, and
/// the documents of the new items among them.
type Opened = (
    Vec<Result<Verified, VerifyError>>,
    Vec<crate::replica::open::Prebuilt>,
);

impl Stretch {
    /// The next [`OPEN_AHEAD`] entries (or [`OPEN_AHEAD_BYTES`]); none at
    /// the end of the file.
    fn read<R: std::io::Read + std::io::Seek>(
        reader: &mut Reader<R>,
        lib: &Library,
    ) -> Result<Self, BundleError> {
        let mut entries = Vec::new();
        let mut bytes = 0;
        while entries.len() < OPEN_AHEAD && bytes < OPEN_AHEAD_BYTES {
            let Some(entry) = reader.next_entry() else {
                break;
            };
            bytes += entry.bytes.len();
            entries.push(entry);
        }
        let mut wanted = Vec::with_capacity(entries.len());
        for e in &entries {
            wanted.push(
                e.kind != EntryKind::FilePiece && !lib.has_envelope(&EnvelopeId::of(&e.bytes))?,
            );
        }
        Ok(Self { entries, wanted })
    }

    fn open(&self, network: &NetworkId, build: bool) -> Opened {
        let to_open: Vec<&[u8]> = self
            .entries
            .iter()
            .zip(&self.wanted)
            .filter(|(_, w)| **w)
            .map(|(e, _)| e.bytes.as_slice())
            .collect();
        crate::replica::open::open_all_building(&to_open, network, build)
    }
}

impl Import {
    /// Stores a stretch's entries in file order, given its envelopes as
    /// opened; what can have no effect yet goes to `later`.
    fn store_stretch(
        &mut self,
        lib: &mut Library,
        stretch: Stretch,
        (opened, built): Opened,
        later: &mut Vec<(usize, u64, usize, EnvelopeId, String)>,
    ) -> Result<(), BundleError> {
        lib.replica.offer_prebuilt(built);
        let mut opened = opened.into_iter();
        for (entry, wanted) in stretch.entries.into_iter().zip(stretch.wanted) {
            self.report.read += 1;
            if entry.kind == EntryKind::FilePiece {
                self.piece(lib, &entry);
                continue;
            }
            let offered = match if wanted { opened.next() } else { None } {
                Some(result) => self.offer_opened(lib, &entry.bytes, result)?,
                // Held already when read ahead (the set only grows).
                None => {
                    self.report.duplicate += 1;
                    Offered::Duplicate
                }
            };
            match offered {
                Offered::Stored | Offered::Duplicate => {}
                Offered::NotYet(id, reason) => {
                    later.push((
                        entry.index,
                        entry.data_offset,
                        entry.bytes.len(),
                        id,
                        reason,
                    ));
                }
                Offered::Refused(id, reason) => {
                    refuse(&mut self.report, entry.index, entry.offset, id, reason);
                }
            }
        }
        Ok(())
    }

    /// Takes a piece of a file into the file store, every chunk checked
    /// against the file's hash.
    fn piece(&mut self, lib: &Library, entry: &Entry) {
        let b = &entry.bytes;
        if b.len() < 48 {
            refuse(
                &mut self.report,
                entry.index,
                entry.offset,
                None,
                "a file piece cut short".into(),
            );
            return;
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[..32]);
        let hash = gatehouse_protocol::attachment::BlobHash(hash);
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            u64::from_be_bytes(w)
        };
        let (size, start) = (word(32), word(40));
        let Some(store) = lib.blobs() else {
            refuse(
                &mut self.report,
                entry.index,
                entry.offset,
                None,
                "this node keeps no files".into(),
            );
            return;
        };
        if size > gatehouse_protocol::attachment::MAX_ATTACHMENT_BYTES {
            refuse(
                &mut self.report,
                entry.index,
                entry.offset,
                None,
                format!("file {hash} is larger than a file may be"),
            );
            return;
        }
        if matches!(
            store.state(&hash),
            crate::blobs::BlobState::Refused(_) | crate::blobs::BlobState::Here
        ) {
            return;
        }
        match store.receive(&hash, size, start, &b[48..]) {
            Ok(crate::blobs::Received::Complete) => {
                if !self.completed.contains(&hash) {
                    self.completed.push(hash);
                }
            }
            Ok(crate::blobs::Received::Partial(_)) => {}
            Err(e) => refuse(
                &mut self.report,
                entry.index,
                entry.offset,
                None,
                e.to_string(),
            ),
        }
    }

    /// Verifies one entry and offers it to the library.
    fn offer(&mut self, lib: &mut Library, bytes: &[u8]) -> Result<Offered, BundleError> {
        let opened = Envelope::open(bytes, &lib.config().network);
        self.offer_opened(lib, bytes, opened)
    }

    /// [`Import::offer`] of an entry already opened.
    fn offer_opened(
        &mut self,
        lib: &mut Library,
        bytes: &[u8],
        opened: Result<Verified, VerifyError>,
    ) -> Result<Offered, BundleError> {
        let env = match opened {
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

/// What `bundle export` puts in a bundle, and how.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Only envelopes made on or after this time (certificates always).
    pub since_ms: Option<u64>,
    /// Only what this site's latest receipt does not list.
    pub for_site: Option<gatehouse_protocol::id::EstablishmentId>,
    /// Carry the files items carry, as well as envelopes.
    pub files: bool,
    /// Split into parts of at most this many bytes.
    pub max_part_bytes: Option<u64>,
}

/// What `bundle export` wrote.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExportReport {
    /// The files written: one, or the parts in the order to import them.
    pub parts: Vec<std::path::PathBuf>,
    /// Envelopes written.
    pub envelopes: usize,
    /// Files carried.
    pub files: usize,
    /// Bytes written in all.
    pub bytes: u64,
    /// When the receipt the bundle was cut to was made, if it was.
    pub receipt_ms: Option<u64>,
}

/// Writes bundle parts beside their target, each a whole bundle.
struct PartWriter {
    dir: std::path::PathBuf,
    stem: String,
    network: NetworkId,
    version: u8,
    max: u64,
    /// Finished parts (temporary paths).
    done: Vec<std::path::PathBuf>,
    current: Option<Part>,
    written: u64,
}

struct Part {
    path: std::path::PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    hasher: blake3::Hasher,
    count: u64,
    bytes: u64,
}

/// End marker: zero length, count, checksum.
const END_BYTES: u64 = 4 + 8 + 32;

impl PartWriter {
    fn open_part(&mut self) -> std::io::Result<Part> {
        use std::io::Write;
        let path = self
            .dir
            .join(format!(".{}.part-{}.tmp", self.stem, self.done.len() + 1));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut header = Vec::with_capacity(HEADER_BYTES);
        header.extend_from_slice(MAGIC);
        header.push(self.version);
        header.extend_from_slice(self.network.as_bytes());
        file.write_all(&header)?;
        let mut hasher = blake3::Hasher::new();
        hasher.update(&header);
        Ok(Part {
            path,
            file,
            hasher,
            count: 0,
            bytes: HEADER_BYTES as u64,
        })
    }

    fn close_part(&mut self, mut part: Part) -> std::io::Result<()> {
        use std::io::Write;
        let digest = part.hasher.finalize();
        part.file.write_all(&0u32.to_be_bytes())?;
        part.file.write_all(&part.count.to_be_bytes())?;
        part.file.write_all(digest.as_bytes())?;
        let file = part.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        self.written += part.bytes + END_BYTES;
        self.done.push(part.path);
        Ok(())
    }

    /// Writes one entry (its kind byte, in version 2, then `body`).
    fn entry(&mut self, kind: u8, body: &[&[u8]]) -> std::io::Result<()> {
        use std::io::Write;
        let tag = (self.version == VERSION_FILES).then_some([kind]);
        let len: usize = tag.map_or(0, |_| 1) + body.iter().map(|b| b.len()).sum::<usize>();
        let need = 4 + len as u64;
        let full = self
            .current
            .as_ref()
            .is_some_and(|p| p.count > 0 && p.bytes + need + END_BYTES > self.max);
        if full && let Some(p) = self.current.take() {
            self.close_part(p)?;
        }
        let mut part = match self.current.take() {
            Some(p) => p,
            None => self.open_part()?,
        };
        let len_bytes = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
        part.file.write_all(&len_bytes)?;
        part.hasher.update(&len_bytes);
        if let Some(t) = &tag {
            part.file.write_all(t)?;
            part.hasher.update(t);
        }
        for b in body {
            part.file.write_all(b)?;
            part.hasher.update(b);
        }
        part.count += 1;
        part.bytes += need;
        self.current = Some(part);
        Ok(())
    }

    /// Closes the last part and moves every part into place: `target`
    /// itself when there is one, `STEM-1.EXT`, `STEM-2.EXT`... when there
    /// are more.
    fn finish(
        mut self,
        target: &std::path::Path,
    ) -> std::io::Result<(Vec<std::path::PathBuf>, u64)> {
        let last = match self.current.take() {
            Some(p) => p,
            None => self.open_part()?,
        };
        self.close_part(last)?;
        let names: Vec<std::path::PathBuf> = if self.done.len() == 1 {
            vec![target.to_path_buf()]
        } else {
            let ext = target
                .extension()
                .and_then(|e| e.to_str())
                .map(|e| format!(".{e}"))
                .unwrap_or_default();
            let stem = target
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("bundle");
            (1..=self.done.len())
                .map(|i| self.dir.join(format!("{stem}-{i}{ext}")))
                .collect()
        };
        for (from, to) in self.done.iter().zip(&names) {
            std::fs::rename(from, to)?;
        }
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok((names, self.written))
    }
}

/// Writes a bundle to `target` as `opts` says (cut to a site's receipt,
/// with files, in parts), calling `progress(done, total)` in bytes as it
/// goes. Parts are written beside `target` and renamed into place once
/// all are whole.
pub fn export_to(
    lib: &Library,
    target: &std::path::Path,
    opts: &ExportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ExportReport, BundleError> {
    let receipt = match &opts.for_site {
        Some(site) => Some(lib.kept_receipt(site).ok_or_else(|| {
            BundleError::Library(Box::new(LibraryError::Invalid(
                gatehouse_protocol::item::FieldError {
                    field: "for",
                    reason: format!(
                        "no receipt from {} is kept here: ask them to run `gatehouse bundle receipt --out FILE` and send you the file, then `gatehouse bundle import FILE` here",
                        lib.read_view().establishment_name(site)
                    ),
                },
            )))
        })?),
        None => None,
    };
    let envelopes: Vec<Vec<u8>> = select(lib, opts.since_ms)?
        .into_iter()
        .filter(|b| {
            receipt
                .as_ref()
                .is_none_or(|r| !r.holds(&EnvelopeId::of(b)))
        })
        .collect();
    let files: Vec<(gatehouse_protocol::attachment::BlobHash, u64)> =
        match (opts.files, lib.blobs()) {
            (true, Some(store)) => store
                .list()
                .into_iter()
                .filter(|(h, _)| receipt.as_ref().is_none_or(|r| !r.files.contains(h)))
                .collect(),
            _ => Vec::new(),
        };
    let total: u64 = envelopes.iter().map(|e| e.len() as u64 + 5).sum::<u64>()
        + files.iter().map(|(_, n)| n + n / 16).sum::<u64>();
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let mut w = PartWriter {
        dir,
        stem: target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("bundle")
            .to_string(),
        network: lib.config().network,
        version: if files.is_empty() {
            VERSION
        } else {
            VERSION_FILES
        },
        max: opts
            .max_part_bytes
            .unwrap_or(MAX_BUNDLE_BYTES)
            .max(MIN_PART_BYTES),
        done: Vec::new(),
        current: None,
        written: 0,
    };
    let written = (|| -> std::io::Result<(Vec<std::path::PathBuf>, u64)> {
        let mut done = 0u64;
        for e in &envelopes {
            w.entry(1, &[e])?;
            done += e.len() as u64 + 5;
            progress(done, total);
        }
        if let Some(store) = lib.blobs() {
            for (hash, size) in &files {
                let mut start = 0;
                while start < *size {
                    let piece = store
                        .slice(hash, start, FILE_PIECE_BYTES)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    w.entry(
                        2,
                        &[
                            hash.as_bytes(),
                            &size.to_be_bytes(),
                            &start.to_be_bytes(),
                            &piece,
                        ],
                    )?;
                    start += FILE_PIECE_BYTES;
                    done += piece.len() as u64;
                    progress(done.min(total), total);
                }
            }
        }
        w.finish(target)
    })();
    let (parts, bytes) = match written {
        Ok(w) => w,
        Err(e) => {
            // Nothing half written is left behind.
            let prefix = format!(
                ".{}.part-",
                target
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("bundle")
            );
            if let Ok(entries) =
                std::fs::read_dir(target.parent().unwrap_or(std::path::Path::new(".")))
            {
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    if name.starts_with(&prefix) && name.ends_with(".tmp") {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
            return Err(BundleError::Io(e));
        }
    };
    Ok(ExportReport {
        parts,
        envelopes: envelopes.len(),
        files: files.len(),
        bytes,
        receipt_ms: receipt.map(|r| r.created_ms),
    })
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
