//! The files items carry, kept once each by their BLAKE3 hash, outside the
//! library's store (they can be large, and arrive in pieces).
//!
//! Layout, under `HOME/blobs/`:
//! - `<hex>`: a whole file, verified;
//! - `<hex>.obao`: its verified-streaming tree (bao outboard), made when
//!   the file is complete and rebuilt if it is missing;
//! - `partial/<hex>`: the verified first bytes of a file being fetched,
//!   and `partial/<hex>.at` the length made durable (the data is synced
//!   before the length is written, so a crash loses at most the piece in
//!   flight);
//! - `unchecked/<hex>`: a file whole and verified against its hash but not
//!   yet checked against the items that carry it (type, identifier scan);
//!   it is never served from here, and moves into place once it passes;
//! - `refused/<hex>`: why a file that arrived was refused (a patient
//!   identifier in its text, or not the type its change says); it is not
//!   fetched again;
//! - `text/<hex>`: the text extracted from it for search (derived).
//!
//! Every write goes to a temporary file that is synced and renamed, so
//! another process (the CLI putting a file in while the node runs) never
//! reads a file half written.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use gatehouse_protocol::attachment::{BlobHash, MAX_ATTACHMENT_BYTES};
use thiserror::Error;

/// What can go wrong with the file store.
#[derive(Debug, Error)]
pub enum BlobError {
    /// The disk refused.
    #[error("file store {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// A file too large to attach.
    #[error("{0} is larger than {max} MiB", max = MAX_ATTACHMENT_BYTES / (1024 * 1024))]
    TooLarge(String),
    /// Bytes from a peer did not verify against the file's hash.
    #[error("piece of file {hash} does not verify at byte {at}")]
    Corrupt {
        /// The file.
        hash: BlobHash,
        /// The first byte that did not verify (bytes before it were kept).
        at: u64,
    },
    /// A piece that does not start where the file held here stops.
    #[error("piece of file {hash} starts at {start}, but {held} bytes are held")]
    OutOfPlace {
        /// The file.
        hash: BlobHash,
        /// Where the piece starts.
        start: u64,
        /// What is held.
        held: u64,
    },
    /// The file is not held here.
    #[error("file {0} is not here")]
    Missing(BlobHash),
}

type Result<T> = std::result::Result<T, BlobError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where a file stands here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobState {
    /// Whole and verified.
    Here,
    /// Being fetched: this many first bytes are here.
    Partial(u64),
    /// Whole, waiting for its check against the items that carry it.
    Unchecked,
    /// Arrived and refused, with the reason.
    Refused(String),
    /// Not here.
    Absent,
}

/// What a piece from a peer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Kept; this many bytes of the file are now here.
    Partial(u64),
    /// The file is now whole.
    Complete,
}

/// Removes the temporary files (named by their writer's process id) of
/// processes that are gone: a node or command killed while it copied a
/// file in would otherwise leave the partial copy there for good. Files
/// of a process still running, or where processes cannot be looked up
/// (no `/proc`), are left.
fn remove_abandoned_temps(tmp: &Path) {
    let proc = Path::new("/proc");
    if !proc.is_dir() {
        return;
    }
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !proc.join(pid.to_string()).exists() {
            match fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(
                    "removed {}, a copy left unfinished by a process that stopped",
                    entry.path().display()
                ),
                Err(e) => tracing::warn!("cannot remove {}: {e}", entry.path().display()),
            }
        }
    }
}

/// The file store of one node. Cheap to clone: it is a directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    /// Opens (creating) the store in `dir`, owner-only.
    pub fn open(dir: &Path) -> Result<Self> {
        for sub in ["", "partial", "unchecked", "refused", "text", "tmp"] {
            let d = dir.join(sub);
            fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
        }
        remove_abandoned_temps(&dir.join("tmp"));
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a whole file is kept.
    pub fn path(&self, hash: &BlobHash) -> PathBuf {
        self.dir.join(hash.to_hex())
    }

    fn outboard_path(&self, hash: &BlobHash) -> PathBuf {
        self.dir.join(format!("{}.obao", hash.to_hex()))
    }

    fn partial_path(&self, hash: &BlobHash) -> PathBuf {
        self.dir.join("partial").join(hash.to_hex())
    }

    fn partial_len_path(&self, hash: &BlobHash) -> PathBuf {
        self.dir
            .join("partial")
            .join(format!("{}.at", hash.to_hex()))
    }

    fn unchecked_path(&self, hash: &BlobHash) -> PathBuf {
        self.dir.join("unchecked").join(hash.to_hex())
    }

    fn refused_path(&self, hash: &BlobHash) -> PathBuf {
        self.dir.join("refused").join(hash.to_hex())
    }

    /// Where the text extracted from a file is kept.
    pub fn text_path(&self, hash: &BlobHash) -> PathBuf {
        self.dir.join("text").join(hash.to_hex())
    }

    /// A fresh temporary file in the store (same file system, so a rename
    /// moves it into place).
    fn temp(&self) -> Result<(PathBuf, File)> {
        let name = format!(
            "{}-{}",
            std::process::id(),
            hex::encode(crate::home::random_bytes::<8>().map_err(|e| BlobError::Io {
                path: self.dir.display().to_string(),
                source: io::Error::other(e.to_string()),
            })?)
        );
        let path = self.dir.join("tmp").join(name);
        let file = File::create(&path).map_err(io_err(&path))?;
        Ok((path, file))
    }

    fn place(&self, tmp: &Path, file: &File, target: &Path) -> Result<()> {
        file.sync_all().map_err(io_err(tmp))?;
        fs::rename(tmp, target).map_err(io_err(target))?;
        if let Some(parent) = target.parent()
            && let Ok(d) = File::open(parent)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Moves a whole file from `tmp` into place, its tree first: a file is
    /// served as soon as it is in place, and its tree must be there by then.
    fn place_with_tree(&self, hash: &BlobHash, tmp: &Path, file: &File) -> Result<()> {
        let placed = self
            .write_outboard(hash, tmp)
            .and_then(|_| self.place(tmp, file, &self.path(hash)));
        if placed.is_err() {
            let _ = fs::remove_file(tmp);
        }
        placed
    }

    fn write_whole(&self, target: &Path, bytes: &[u8]) -> Result<()> {
        let (tmp, mut file) = self.temp()?;
        file.write_all(bytes).map_err(io_err(&tmp))?;
        self.place(&tmp, &file, target)
    }

    /// Where `hash` stands here.
    pub fn state(&self, hash: &BlobHash) -> BlobState {
        if let Ok(reason) = fs::read_to_string(self.refused_path(hash)) {
            return BlobState::Refused(reason);
        }
        if self.path(hash).is_file() {
            return BlobState::Here;
        }
        if self.unchecked_path(hash).is_file() {
            return BlobState::Unchecked;
        }
        match self.partial_len(hash) {
            0 => BlobState::Absent,
            n => BlobState::Partial(n),
        }
    }

    /// Whether the whole file is here.
    pub fn has(&self, hash: &BlobHash) -> bool {
        self.state(hash) == BlobState::Here
    }

    /// Copies the file at `from` into the store (a file a site lead
    /// attaches). Returns its hash and size.
    pub fn import_file(&self, from: &Path) -> Result<(BlobHash, u64)> {
        let mut src = File::open(from).map_err(io_err(from))?;
        let (tmp, mut file) = self.temp()?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        let copied = (|| -> Result<()> {
            loop {
                let n = src.read(&mut buf).map_err(io_err(from))?;
                if n == 0 {
                    return Ok(());
                }
                size += n as u64;
                if size > MAX_ATTACHMENT_BYTES {
                    return Err(BlobError::TooLarge(from.display().to_string()));
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).map_err(io_err(&tmp))?;
            }
        })();
        if let Err(e) = copied {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let hash = BlobHash(*hasher.finalize().as_bytes());
        self.place_with_tree(&hash, &tmp, &file)?;
        let _ = fs::remove_file(self.refused_path(&hash));
        Ok((hash, size))
    }

    /// Puts `bytes` in the store. Returns their hash.
    pub fn put(&self, bytes: &[u8]) -> Result<BlobHash> {
        if bytes.len() as u64 > MAX_ATTACHMENT_BYTES {
            return Err(BlobError::TooLarge(format!(
                "a file of {} bytes",
                bytes.len()
            )));
        }
        let hash = BlobHash::of(bytes);
        if !self.has(&hash) {
            let (tmp, mut file) = self.temp()?;
            file.write_all(bytes).map_err(io_err(&tmp))?;
            self.place_with_tree(&hash, &tmp, &file)?;
        }
        Ok(hash)
    }

    /// Reads a whole file, verified against its hash (bytes rotted on disk
    /// are found here, and the file is then treated as absent).
    pub fn read(&self, hash: &BlobHash) -> Result<Vec<u8>> {
        let path = self.path(hash);
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BlobError::Missing(*hash),
            _ => io_err(&path)(e),
        })?;
        if BlobHash::of(&bytes) != *hash {
            tracing::warn!("file {hash} changed on disk; removed so that it is fetched again");
            self.remove(hash);
            return Err(BlobError::Missing(*hash));
        }
        Ok(bytes)
    }

    /// The file's size, if whole here.
    pub fn size(&self, hash: &BlobHash) -> Option<u64> {
        fs::metadata(self.path(hash)).ok().map(|m| m.len())
    }

    /// Builds and keeps the tree of the file at `path`, which must hash to
    /// `hash`: a tree built from bytes changed on disk would make every
    /// piece served from it fail at the root.
    fn write_outboard(&self, hash: &BlobHash, path: &Path) -> Result<Vec<u8>> {
        let mut src = File::open(path).map_err(io_err(path))?;
        let mut outboard = io::Cursor::new(Vec::new());
        let mut encoder = bao::encode::Encoder::new_outboard(&mut outboard);
        io::copy(&mut src, &mut encoder).map_err(io_err(path))?;
        let root = encoder.finalize().map_err(io_err(path))?;
        if root.as_bytes() != &hash.0 {
            tracing::warn!("file {hash} changed on disk; removed so that it is fetched again");
            self.remove(hash);
            return Err(BlobError::Missing(*hash));
        }
        let bytes = outboard.into_inner();
        self.write_whole(&self.outboard_path(hash), &bytes)?;
        Ok(bytes)
    }

    fn outboard(&self, hash: &BlobHash) -> Result<Vec<u8>> {
        match fs::read(self.outboard_path(hash)) {
            Ok(b)
                if b.len() as u128 == bao::encode::outboard_size(self.size(hash).unwrap_or(0)) =>
            {
                Ok(b)
            }
            _ => self.write_outboard(hash, &self.path(hash)),
        }
    }

    /// The verified-streaming encoding of bytes `start..start + len` of a
    /// whole file: the bytes with the tree nodes a receiver checks each
    /// 1 KiB chunk against.
    pub fn slice(&self, hash: &BlobHash, start: u64, len: u64) -> Result<Vec<u8>> {
        if !self.has(hash) {
            return Err(BlobError::Missing(*hash));
        }
        let outboard = self.outboard(hash)?;
        let path = self.path(hash);
        let file = File::open(&path).map_err(io_err(&path))?;
        let mut extractor =
            bao::encode::SliceExtractor::new_outboard(file, io::Cursor::new(outboard), start, len);
        let mut out = Vec::new();
        extractor.read_to_end(&mut out).map_err(io_err(&path))?;
        Ok(out)
    }

    /// How many first bytes of a file being fetched are here.
    pub fn partial_len(&self, hash: &BlobHash) -> u64 {
        fs::read(self.partial_len_path(hash))
            .ok()
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_be_bytes)
    }

    /// Takes a piece from a peer: the encoding of bytes from `start` (which
    /// must be where the partial file stops) of the file `hash`, whose
    /// size its change gives. Every 1 KiB chunk is checked against the
    /// hash as it is read; the bytes before a chunk that does not verify
    /// are kept (so the next peer is asked from there) and the error names
    /// where it failed.
    pub fn receive(
        &self,
        hash: &BlobHash,
        size: u64,
        start: u64,
        piece: &[u8],
    ) -> Result<Received> {
        if matches!(self.state(hash), BlobState::Here | BlobState::Unchecked) {
            return Ok(Received::Complete);
        }
        let held = self.partial_len(hash);
        if start > held {
            return Err(BlobError::OutOfPlace {
                hash: *hash,
                start,
                held,
            });
        }
        let path = self.partial_path(hash);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        // Bytes past the durable length are from a piece a crash cut short.
        file.set_len(held).map_err(io_err(&path))?;
        file.seek(SeekFrom::Start(held)).map_err(io_err(&path))?;
        let want = size.saturating_sub(start);
        let root = blake3::Hash::from_bytes(hash.0);
        let mut decoder = bao::decode::SliceDecoder::new(piece, &root, start, want);
        let mut buf = vec![0u8; 16 * 1024];
        // A piece may start before what is held (a bundle's piece after
        // part of the file came from a peer): its bytes up to there are
        // verified and passed over.
        let mut skip = held - start;
        let mut got = 0u64;
        let outcome = loop {
            match decoder.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    let past = (skip as usize).min(n);
                    skip -= past as u64;
                    file.write_all(&buf[past..n]).map_err(io_err(&path))?;
                    got += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break Ok(()),
                Err(_) => {
                    break Err(BlobError::Corrupt {
                        hash: *hash,
                        at: start + got,
                    });
                }
            }
        };
        file.sync_all().map_err(io_err(&path))?;
        let now = (start + got).max(held);
        if now >= size {
            drop(file);
            // Whole and verified, but served only once checked
            // ([`BlobStore::promote`]).
            let waiting = self.unchecked_path(hash);
            fs::rename(&path, &waiting).map_err(io_err(&waiting))?;
            let _ = fs::remove_file(self.partial_len_path(hash));
            return outcome.map(|()| Received::Complete);
        }
        self.write_whole(&self.partial_len_path(hash), &now.to_be_bytes())?;
        outcome.map(|()| Received::Partial(now))
    }

    /// A file that arrived whole, before its check, verified against its
    /// hash.
    pub fn read_unchecked(&self, hash: &BlobHash) -> Result<Vec<u8>> {
        let path = self.unchecked_path(hash);
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BlobError::Missing(*hash),
            _ => io_err(&path)(e),
        })?;
        if BlobHash::of(&bytes) != *hash {
            let _ = fs::remove_file(&path);
            return Err(BlobError::Missing(*hash));
        }
        Ok(bytes)
    }

    /// Moves a file that passed its check into place, to be served.
    pub fn promote(&self, hash: &BlobHash) -> Result<()> {
        let from = self.unchecked_path(hash);
        if !from.is_file() {
            return Ok(());
        }
        self.write_outboard(hash, &from)?;
        fs::rename(&from, self.path(hash)).map_err(io_err(&from))?;
        Ok(())
    }

    /// Files whole and waiting for their check (a node stopped before it
    /// checked them checks them when it opens).
    pub fn unchecked(&self) -> Vec<BlobHash> {
        fs::read_dir(self.dir.join("unchecked"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Refuses a file: removes its bytes and records why, so it is not
    /// fetched again.
    pub fn refuse(&self, hash: &BlobHash, reason: &str) -> Result<()> {
        self.remove(hash);
        self.write_whole(&self.refused_path(hash), reason.as_bytes())
    }

    /// Removes a file and everything derived from it (not a refusal).
    pub fn remove(&self, hash: &BlobHash) {
        for p in [
            self.path(hash),
            self.outboard_path(hash),
            self.partial_path(hash),
            self.partial_len_path(hash),
            self.unchecked_path(hash),
            self.text_path(hash),
        ] {
            let _ = fs::remove_file(p);
        }
    }

    /// Every whole file here, with its size.
    pub fn list(&self) -> Vec<(BlobHash, u64)> {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<(BlobHash, u64)> = dir
            .filter_map(|e| {
                let e = e.ok()?;
                let hash: BlobHash = e.file_name().to_str()?.parse().ok()?;
                Some((hash, e.metadata().ok()?.len()))
            })
            .collect();
        out.sort();
        out
    }

    /// Removes temporary files left by a process that stopped while
    /// writing (called when a node starts).
    pub fn clear_temporary(&self) {
        if let Ok(dir) = fs::read_dir(self.dir.join("tmp")) {
            for e in dir.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// Two empty stores, each in a directory of its own (kept while the
    /// first value lives): one a file comes from, one it goes to.
    fn two_stores() -> ([tempfile::TempDir; 2], BlobStore, BlobStore) {
        let dirs = [0, 1].map(|_| tempfile::tempdir().expect("ok"));
        let from = BlobStore::open(dirs[0].path()).expect("ok");
        let to = BlobStore::open(dirs[1].path()).expect("ok");
        (dirs, from, to)
    }

    #[test]
    fn a_file_crosses_in_pieces_and_each_piece_is_verified() {
        let (_dirs, from, to) = two_stores();
        let bytes = content(300_000);
        let hash = from.put(&bytes).expect("ok");
        let mut at = 0;
        loop {
            let piece = from.slice(&hash, at, 64 * 1024).expect("ok");
            match to
                .receive(&hash, bytes.len() as u64, at, &piece)
                .expect("ok")
            {
                Received::Partial(n) => {
                    assert_eq!(to.state(&hash), BlobState::Partial(n));
                    at = n;
                }
                Received::Complete => break,
            }
        }
        // Whole, but not served until checked.
        assert_eq!(to.state(&hash), BlobState::Unchecked);
        assert!(to.slice(&hash, 0, 10).is_err());
        to.promote(&hash).expect("ok");
        assert_eq!(to.read(&hash).expect("ok"), bytes);
        assert_eq!(to.state(&hash), BlobState::Here);
        // The receiver serves it in turn.
        assert_eq!(
            to.slice(&hash, 0, 10).expect("ok"),
            from.slice(&hash, 0, 10).expect("ok")
        );
    }

    #[test]
    fn a_corrupt_chunk_is_refused_where_it_is_and_what_came_before_it_is_kept() {
        let (_dirs, from, to) = two_stores();
        let bytes = content(200_000);
        let hash = from.put(&bytes).expect("ok");
        let mut piece = from.slice(&hash, 0, 100_000).expect("ok");
        // Flip one byte deep in the piece: near content byte 50,000.
        let n = piece.len();
        piece[n / 2] ^= 1;
        let err = to
            .receive(&hash, bytes.len() as u64, 0, &piece)
            .expect_err("refused");
        let BlobError::Corrupt { at, .. } = err else {
            panic!("{err}")
        };
        assert!(at > 40_000 && at < 60_000, "refused at {at}");
        assert_eq!(at % 1024, 0, "refused at a chunk boundary");
        assert_eq!(to.partial_len(&hash), at);
        // Resumed from there with a good piece.
        let rest = from.slice(&hash, at, bytes.len() as u64).expect("ok");
        assert_eq!(
            to.receive(&hash, bytes.len() as u64, at, &rest)
                .expect("ok"),
            Received::Complete
        );
        assert_eq!(to.read_unchecked(&hash).expect("ok"), bytes);
    }

    #[test]
    fn bytes_past_the_durable_length_are_dropped_and_a_piece_out_of_place_is_refused() {
        let (_dirs, from, to) = two_stores();
        let bytes = content(50_000);
        let hash = from.put(&bytes).expect("ok");
        let piece = from.slice(&hash, 0, 20_480).expect("ok");
        assert_eq!(
            to.receive(&hash, 50_000, 0, &piece).expect("ok"),
            Received::Partial(20_480)
        );
        // A crash after writing more bytes but before their length.
        let mut f = OpenOptions::new()
            .append(true)
            .open(to.partial_path(&hash))
            .expect("ok");
        f.write_all(b"garbage").expect("ok");
        let later = from.slice(&hash, 40_960, 50_000).expect("ok");
        assert!(matches!(
            to.receive(&hash, 50_000, 40_960, &later),
            Err(BlobError::OutOfPlace { held: 20_480, .. })
        ));
        // A piece overlapping what is held is verified whole and adds what
        // follows.
        let overlap = from.slice(&hash, 10_240, 20_480).expect("ok");
        assert_eq!(
            to.receive(&hash, 50_000, 10_240, &overlap).expect("ok"),
            Received::Partial(30_720)
        );
        let rest = from.slice(&hash, 30_720, 50_000).expect("ok");
        to.receive(&hash, 50_000, 30_720, &rest).expect("ok");
        assert_eq!(to.read_unchecked(&hash).expect("ok"), bytes);
    }

    #[test]
    fn a_file_changed_on_disk_is_not_served_as_the_original() {
        let a = tempfile::tempdir().expect("ok");
        let store = BlobStore::open(a.path()).expect("ok");
        let hash = store.put(b"the flowchart").expect("ok");
        fs::write(store.path(&hash), b"the flowchurt").expect("ok");
        assert!(matches!(store.read(&hash), Err(BlobError::Missing(_))));
        assert_eq!(store.state(&hash), BlobState::Absent);
        store.refuse(&hash, "holds an NHS number").expect("ok");
        assert_eq!(
            store.state(&hash),
            BlobState::Refused("holds an NHS number".into())
        );
    }

    #[test]
    fn a_file_is_in_place_with_its_tree_and_no_tree_is_built_from_changed_bytes() {
        let (_dirs, from, to) = two_stores();
        let bytes = content(300_000);
        let hash = from.put(&bytes).expect("ok");
        assert!(from.outboard_path(&hash).is_file());
        let whole = from.slice(&hash, 0, 300_000).expect("ok");
        to.receive(&hash, 300_000, 0, &whole).expect("ok");
        to.promote(&hash).expect("ok");
        // Here means served, so the tree came first.
        assert_eq!(to.state(&hash), BlobState::Here);
        assert!(to.outboard_path(&hash).is_file());
        // A file that changed on disk after its tree was lost: a tree
        // built from it would fail every piece at the root, so none is
        // built and the file is fetched again.
        let mut changed = bytes.clone();
        changed[200_000] ^= 0x40;
        fs::write(to.path(&hash), &changed).expect("ok");
        fs::remove_file(to.outboard_path(&hash)).expect("ok");
        assert!(matches!(
            to.slice(&hash, 0, 1024),
            Err(BlobError::Missing(_))
        ));
        assert_eq!(to.state(&hash), BlobState::Absent);
    }

    #[test]
    fn copies_left_by_a_process_that_stopped_are_removed_at_open() {
        let a = tempfile::tempdir().expect("ok");
        BlobStore::open(a.path()).expect("ok");
        let tmp = a.path().join("tmp");
        // No process has this id (above any kernel's largest).
        let abandoned = tmp.join("999999999-0123456789abcdef");
        let ours = tmp.join(format!("{}-0123456789abcdef", std::process::id()));
        let other = tmp.join("not-a-copy");
        for p in [&abandoned, &ours, &other] {
            fs::write(p, b"half a flowchart").expect("ok");
        }
        BlobStore::open(a.path()).expect("ok");
        // Where processes can be looked up.
        assert_eq!(abandoned.exists(), !Path::new("/proc").is_dir());
        assert!(ours.exists());
        assert!(other.exists());
    }
}
