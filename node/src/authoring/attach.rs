//! Files carried by item versions: what a site lead attaches is checked
//! before it is signed, and a file from a peer is checked the same way
//! when its last byte arrives (its type, then the patient-identifier scan
//! of its text, allowing only what the item's author allowed). A file
//! that fails is refused: removed, never served or indexed, and not
//! fetched again.

use std::path::Path;

use gatehouse_protocol::attachment::{
    Attachment, BlobHash, MAX_ATTACHMENT_BYTES, MediaType, check_name,
};
use gatehouse_protocol::id::ItemId;
use gatehouse_protocol::vocab::Status;

use crate::blobs::{BlobState, BlobStore};
use crate::error::{LibraryError, Result};
use crate::extract::{self, TextPart};
use crate::library::Library;
use crate::query::ReadView;
use crate::store::Tree;

/// Whether two sets of files are the same set.
pub(crate) fn attachments_equal(a: &[Attachment], b: &[Attachment]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(|x, y| x.name.cmp(&y.name));
    b.sort_by(|x, y| x.name.cmp(&y.name));
    a == b
}

/// The files a revision carries: `current` without those named in
/// `detach` (each must be there), with `attach` added (one of the same
/// name replacing the one there).
pub fn file_set(
    current: &[Attachment],
    attach: &[Attachment],
    detach: &[String],
) -> Result<Vec<Attachment>> {
    let mut out = current.to_vec();
    for name in detach {
        let before = out.len();
        out.retain(|a| !a.name.eq_ignore_ascii_case(name));
        if out.len() == before {
            return Err(LibraryError::Attachment(format!(
                "the item carries no file named {name:?}; it carries {}",
                if current.is_empty() {
                    "none".to_string()
                } else {
                    current
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )));
        }
    }
    for a in attach {
        out.retain(|b| !b.name.eq_ignore_ascii_case(&a.name));
        out.push(a.clone());
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Puts the file at `path` into `blobs` and describes it as an attachment
/// named as the file is (its type from the name's ending, checked against
/// its first bytes).
pub fn attachment_from_file(blobs: &BlobStore, path: &Path) -> Result<Attachment> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| LibraryError::Attachment(format!("{}: not a file name", path.display())))?
        .to_string();
    check_name(&name)?;
    let media_type = MediaType::from_name(&name).ok_or_else(|| {
        LibraryError::Attachment(format!(
            "{name}: files of this kind cannot be attached; attach {}",
            MediaType::accepted()
        ))
    })?;
    let meta = std::fs::metadata(path)
        .map_err(|e| LibraryError::Attachment(format!("{}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(LibraryError::Attachment(format!(
            "{}: not a regular file",
            path.display()
        )));
    }
    if meta.len() > MAX_ATTACHMENT_BYTES {
        return Err(LibraryError::Attachment(format!(
            "{name} is {:.1} MiB; a file may be at most {} MiB",
            meta.len() as f64 / (1024.0 * 1024.0),
            MAX_ATTACHMENT_BYTES / (1024 * 1024)
        )));
    }
    let (hash, size) = blobs.import_file(path)?;
    Ok(Attachment {
        name,
        media_type,
        size,
        hash,
    })
}

/// Checks a whole file against what its change says of it: its size, its
/// type, and that its text (read piece by piece) holds no patient
/// identifier other than the `allowed` ones. Returns the text.
pub fn inspect(a: &Attachment, bytes: &[u8], allowed: &[String]) -> Result<Vec<TextPart>> {
    if bytes.len() as u64 != a.size {
        return Err(LibraryError::Attachment(format!(
            "{}: {} bytes, where its change says {}",
            a.name,
            bytes.len(),
            a.size
        )));
    }
    extract::check_type(a.media_type, bytes)
        .map_err(|reason| LibraryError::Attachment(format!("{}: {reason}", a.name)))?;
    let parts = extract::extract(a.media_type, bytes).map_err(|reason| {
        LibraryError::Attachment(format!(
            "{}: its text cannot be read to check it for patient identifiers ({reason})",
            a.name
        ))
    })?;
    if let Some((location, m)) = extract::find_identifier(&parts, allowed) {
        return Err(LibraryError::IdentifierInAttachment {
            name: a.name.clone(),
            location: location.to_string(),
            kind: m.kind,
            text: m.text,
        });
    }
    Ok(parts)
}

/// A file some item here carries that is not here yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedBlob {
    /// The file as the item names it.
    pub attachment: Attachment,
    /// An item that carries it.
    pub item: ItemId,
    /// How many of its first bytes are here.
    pub have: u64,
}

/// What became of a file whose last byte arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobCheck {
    /// Kept, indexed with its items.
    Kept,
    /// Refused, with why.
    Refused(String),
    /// No item here carries it.
    Unknown,
}

impl Library {
    /// This node's file store (`None` for a library kept in memory).
    pub fn blobs(&self) -> Option<&BlobStore> {
        self.blobs.as_ref()
    }

    /// Keeps items' files in `blobs` (a library opened from a home does).
    pub fn use_blobs(&mut self, blobs: BlobStore) {
        self.projections.set_blobs(blobs.clone());
        self.blobs = Some(blobs);
        self.reads.replace(self.read_view());
    }

    fn blob_store(&self) -> Result<&BlobStore> {
        self.blobs
            .as_ref()
            .ok_or_else(|| LibraryError::Attachment("this library keeps no files".into()))
    }

    /// Checks the files a local publish or revision carries: each in this
    /// node's store, of its type, with no patient identifier; their text
    /// is kept for the index.
    pub(crate) fn check_attachments(&self, files: &[Attachment], allowed: &[String]) -> Result<()> {
        gatehouse_protocol::attachment::validate_all(files)?;
        if files.is_empty() {
            return Ok(());
        }
        let blobs = self.blob_store()?;
        for a in files {
            let bytes = blobs.read(&a.hash).map_err(|_| {
                LibraryError::Attachment(format!(
                    "{}: not in this node's file store; attach the file again",
                    a.name
                ))
            })?;
            let parts = inspect(a, &bytes, allowed)?;
            keep_text(blobs, &a.hash, &parts);
        }
        Ok(())
    }

    /// Checks a file whose last byte arrived from a peer, as a local
    /// publish checks it, against each item that carries it. A file that
    /// fails is refused; one that passes is indexed with its items.
    pub fn blob_arrived(&mut self, hash: &BlobHash) -> Result<BlobCheck> {
        let blobs = self.blob_store()?.clone();
        let (check, carriers) = check_blob(&self.read_view(), &blobs, hash)?;
        self.blob_checked(&carriers)?;
        Ok(check)
    }

    /// Checks files a stopped node left whole but unchecked. A failure is
    /// logged: the file waits for the next open.
    pub(crate) fn check_unchecked_files(&mut self) {
        let Some(blobs) = self.blobs.clone() else {
            return;
        };
        for hash in blobs.unchecked() {
            if let Err(e) = self.blob_arrived(&hash) {
                tracing::warn!("cannot check file {hash}: {e}");
            }
        }
    }

    /// Indexes the items that carry a file just kept ([`check_blob`]).
    pub fn blob_checked(&mut self, carriers: &[ItemId]) -> Result<()> {
        if carriers.is_empty() {
            return Ok(());
        }
        self.replica.mark_dirty(carriers.iter().copied());
        self.finish()
    }

    /// The files items here carry that are not here (neither whole nor
    /// refused): the current versions of items not withdrawn, smallest
    /// first.
    pub fn wanted_blobs(&self) -> Result<Vec<WantedBlob>> {
        let Some(blobs) = self.blobs.as_ref() else {
            return Ok(Vec::new());
        };
        let mut out: Vec<WantedBlob> = Vec::new();
        let mut last: Option<BlobHash> = None;
        for (k, _) in self.store.scan(Tree::BlobRefs, b"")? {
            let Some(hash) = k
                .get(..32)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .map(BlobHash)
            else {
                continue;
            };
            if last == Some(hash) {
                continue;
            }
            let have = match blobs.state(&hash) {
                BlobState::Here | BlobState::Refused(_) | BlobState::Unchecked => continue,
                BlobState::Partial(n) => n,
                BlobState::Absent => 0,
            };
            let view = self.read_view();
            let carried = items_carrying(&view, &hash)?
                .into_iter()
                .find(|(id, _, _)| {
                    view.get(id, None)
                        .is_ok_and(|v| v.item.content.status != Status::Withdrawn)
                });
            if let Some((item, attachment, _)) = carried {
                last = Some(hash);
                out.push(WantedBlob {
                    attachment,
                    item,
                    have,
                });
            }
        }
        out.sort_by_key(|w| (w.attachment.size, w.attachment.hash));
        Ok(out)
    }
}

/// The items that carry the file `hash`, with how each names it and what
/// its author allowed.
fn items_carrying(
    view: &ReadView,
    hash: &BlobHash,
) -> Result<Vec<(ItemId, Attachment, Vec<String>)>> {
    let mut out = Vec::new();
    for (k, _) in view.store().scan(Tree::BlobRefs, hash.as_bytes())? {
        let Some(id) = k
            .get(32..48)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .map(ItemId)
        else {
            continue;
        };
        let Ok(item) = view.get(&id, None) else {
            continue;
        };
        if let Some(a) = item.item.attachments.iter().find(|a| a.hash == *hash) {
            out.push((id, a.clone(), item.item.allowed_identifiers.clone()));
        }
    }
    Ok(out)
}

/// Checks a file whose last byte arrived (from a peer or a bundle) against
/// each item that carries it, as a local publish checks it, reading only
/// `view` (no lock on the library, so a large file's parsing holds up
/// nothing else). A file that fails is refused in `blobs`; one that
/// passes has its text kept. Returns what became of it and the items to
/// index again ([`Library::blob_checked`]).
pub fn check_blob(
    view: &ReadView,
    blobs: &BlobStore,
    hash: &BlobHash,
) -> Result<(BlobCheck, Vec<ItemId>)> {
    let carriers = items_carrying(view, hash)?;
    if carriers.is_empty() {
        return Ok((BlobCheck::Unknown, Vec::new()));
    }
    let Ok(bytes) = blobs.read_unchecked(hash) else {
        return Ok((BlobCheck::Unknown, Vec::new()));
    };
    let mut kept = None;
    for (_, a, allowed) in &carriers {
        match inspect(a, &bytes, allowed) {
            Ok(parts) => kept = Some(parts),
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!("file {hash} refused: {reason}");
                blobs.refuse(hash, &reason)?;
                return Ok((BlobCheck::Refused(reason), Vec::new()));
            }
        }
    }
    if let Some(parts) = kept {
        keep_text(blobs, hash, &parts);
    }
    blobs.promote(hash)?;
    Ok((
        BlobCheck::Kept,
        carriers.into_iter().map(|(id, _, _)| id).collect(),
    ))
}

/// Keeps a file's text for the index (derived: lost, it is read again
/// when the file next arrives or is attached).
fn keep_text(blobs: &BlobStore, hash: &BlobHash, parts: &[TextPart]) {
    let text = extract::index_text(parts);
    if let Err(e) = std::fs::write(blobs.text_path(hash), text) {
        tracing::warn!("cannot keep the text of file {hash} for search: {e}");
    }
}
