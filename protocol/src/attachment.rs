//! Files attached to an item version: a PDF flowchart, the Word original,
//! a form. The signed change names each file by its BLAKE3 hash (which is
//! also the root of its verified-streaming tree), its size and its type;
//! the bytes travel separately and are checked against the hash as they
//! arrive.
//!
//! In the item document, `attachments` is a map from file name to a map of
//! `hash` (hex), `size` and `type` (a [`MediaType`] slug). A revision
//! writes the whole set: files left out are removed.

use std::fmt;
use std::str::FromStr;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use serde::{Deserialize, Serialize};

use crate::item::{DocError, FieldError, ItemRead};

/// The largest file an item may carry.
pub const MAX_ATTACHMENT_BYTES: u64 = 50 * 1024 * 1024;
/// The most files one item version may carry.
pub const MAX_ATTACHMENTS: usize = 16;
/// The longest file name, in characters.
pub const MAX_ATTACHMENT_NAME_CHARS: usize = 120;

/// The kinds of file an item may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaType {
    /// A PDF document.
    Pdf,
    /// A Word document (Office Open XML).
    Docx,
    /// An Excel workbook (Office Open XML).
    Xlsx,
    /// A PNG image.
    Png,
    /// A JPEG image.
    Jpeg,
}

impl MediaType {
    /// Every type, in the order they are listed to people.
    pub const ALL: [MediaType; 5] = [
        MediaType::Pdf,
        MediaType::Docx,
        MediaType::Xlsx,
        MediaType::Png,
        MediaType::Jpeg,
    ];

    /// The name kept in the document.
    pub fn slug(self) -> &'static str {
        match self {
            MediaType::Pdf => "pdf",
            MediaType::Docx => "docx",
            MediaType::Xlsx => "xlsx",
            MediaType::Png => "png",
            MediaType::Jpeg => "jpeg",
        }
    }

    /// The MIME type a download is served with.
    pub fn mime(self) -> &'static str {
        match self {
            MediaType::Pdf => "application/pdf",
            MediaType::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            MediaType::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            MediaType::Png => "image/png",
            MediaType::Jpeg => "image/jpeg",
        }
    }

    /// What people call it.
    pub fn label(self) -> &'static str {
        match self {
            MediaType::Pdf => "PDF",
            MediaType::Docx => "Word document",
            MediaType::Xlsx => "Excel workbook",
            MediaType::Png => "PNG image",
            MediaType::Jpeg => "JPEG image",
        }
    }

    /// The file-name endings of this type.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            MediaType::Pdf => &["pdf"],
            MediaType::Docx => &["docx"],
            MediaType::Xlsx => &["xlsx"],
            MediaType::Png => &["png"],
            MediaType::Jpeg => &["jpg", "jpeg"],
        }
    }

    /// An image, which a page may show inline.
    pub fn is_image(self) -> bool {
        matches!(self, MediaType::Png | MediaType::Jpeg)
    }

    /// The type a file name's ending says.
    pub fn from_name(name: &str) -> Option<MediaType> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|t| t.extensions().contains(&ext.as_str()))
    }

    /// Whether a file starting with `head` can be of this type, from its
    /// first bytes (Word and Excel files are both ZIP archives; which one
    /// is told by what they hold, checked where the whole file is read).
    pub fn matches_head(self, head: &[u8]) -> bool {
        match self {
            MediaType::Pdf => head.starts_with(b"%PDF-"),
            MediaType::Docx | MediaType::Xlsx => head.starts_with(b"PK\x03\x04"),
            MediaType::Png => head.starts_with(b"\x89PNG\r\n\x1a\n"),
            MediaType::Jpeg => head.starts_with(&[0xFF, 0xD8, 0xFF]),
        }
    }

    /// Every accepted ending, for messages.
    pub fn accepted() -> String {
        Self::ALL
            .iter()
            .flat_map(|t| t.extensions().iter().map(|e| format!(".{e}")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl FromStr for MediaType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.slug() == s)
            .ok_or_else(|| format!("unknown file type {s:?}"))
    }
}

/// A file's BLAKE3 hash: its name in every store, and the root its bytes
/// are verified against as they arrive.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", &self.to_hex()[..12])
    }
}

impl FromStr for BlobHash {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| format!("{s:?} is not a file hash (64 hex digits)"))?;
        Ok(Self(out))
    }
}

impl Serialize for BlobHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for BlobHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One file of an item version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The file name shown and downloaded as (no folders).
    pub name: String,
    /// What kind of file it is.
    #[serde(rename = "type")]
    pub media_type: MediaType,
    /// Its size in bytes.
    pub size: u64,
    /// Its BLAKE3 hash.
    pub hash: BlobHash,
}

fn invalid(reason: String) -> FieldError {
    FieldError {
        field: "attachments",
        reason,
    }
}

/// Whether `name` may name an attached file: a plain file name a person
/// can read and every system can store.
pub fn check_name(name: &str) -> Result<(), FieldError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_ATTACHMENT_NAME_CHARS {
        return Err(invalid(format!(
            "a file name must have 1 to {MAX_ATTACHMENT_NAME_CHARS} characters"
        )));
    }
    if name.trim() != name || name.starts_with('.') {
        return Err(invalid(format!(
            "{name:?} starts or ends with a space or starts with a dot"
        )));
    }
    if let Some(c) = name.chars().find(|c| {
        c.is_control() || matches!(c, '/' | '\\' | ':' | '"' | '<' | '>' | '|' | '?' | '*')
    }) {
        return Err(invalid(format!(
            "{name:?} holds {c:?}, which a file name may not"
        )));
    }
    Ok(())
}

impl Attachment {
    /// The rules every attached file meets, wherever it was signed.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_name(&self.name)?;
        if MediaType::from_name(&self.name) != Some(self.media_type) {
            return Err(invalid(format!(
                "{:?} does not end as a {} does ({})",
                self.name,
                self.media_type.label(),
                self.media_type
                    .extensions()
                    .iter()
                    .map(|e| format!(".{e}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
        if self.size == 0 || self.size > MAX_ATTACHMENT_BYTES {
            return Err(invalid(format!(
                "{:?} is {} bytes; a file must have 1 byte to {} MiB",
                self.name,
                self.size,
                MAX_ATTACHMENT_BYTES / (1024 * 1024)
            )));
        }
        Ok(())
    }
}

/// Checks a version's files: each valid, at most [`MAX_ATTACHMENTS`], no
/// name given twice (names are compared ignoring case, as file systems
/// that people download to do).
pub fn validate_all(attachments: &[Attachment]) -> Result<(), FieldError> {
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(invalid(format!(
            "{} files; an item may carry at most {MAX_ATTACHMENTS}",
            attachments.len()
        )));
    }
    let mut names = std::collections::BTreeSet::new();
    for a in attachments {
        a.validate()?;
        if !names.insert(a.name.to_lowercase()) {
            return Err(invalid(format!("two files are named {:?}", a.name)));
        }
    }
    Ok(())
}

/// Writes the version's files: the map is made to hold exactly
/// `attachments`. The caller commits.
pub fn write_attachments(doc: &mut AutoCommit, attachments: &[Attachment]) -> Result<(), DocError> {
    let map = match doc.get(ROOT, "attachments")? {
        Some((Value::Object(ObjType::Map), obj)) => obj,
        _ if attachments.is_empty() => return Ok(()),
        _ => doc.put_object(ROOT, "attachments", ObjType::Map)?,
    };
    let held: Vec<String> = doc.keys(&map).collect();
    for name in held {
        if !attachments.iter().any(|a| a.name == name) {
            doc.delete(&map, name.as_str())?;
        }
    }
    let current = read_attachments(doc).unwrap_or_default();
    for a in attachments {
        if current.contains(a) {
            continue;
        }
        let obj = doc.put_object(&map, a.name.as_str(), ObjType::Map)?;
        doc.put(&obj, "hash", a.hash.to_hex())?;
        doc.put(&obj, "size", ScalarValue::Uint(a.size))?;
        doc.put(&obj, "type", a.media_type.slug())?;
    }
    Ok(())
}

fn unreadable(reason: String) -> DocError {
    DocError::Field {
        field: "attachments",
        reason,
    }
}

/// Reads the version's files, sorted by name. A file whose entry cannot
/// be read is an error naming it: a change must not carry a file no node
/// can check.
pub fn read_attachments(doc: &impl ItemRead) -> Result<Vec<Attachment>, DocError> {
    let map = match doc.value(&ROOT, "attachments")? {
        Some((Value::Object(ObjType::Map), obj)) => obj,
        Some(_) => return Err(unreadable("is not a map".into())),
        None => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    for name in doc.map_keys(&map) {
        let obj = match doc.value(&map, name.as_str())? {
            Some((Value::Object(ObjType::Map), obj)) => obj,
            _ => return Err(unreadable(format!("{name:?} is not a map"))),
        };
        let text = |key: &str| -> Result<String, DocError> {
            match doc.value(&obj, key)? {
                Some((Value::Scalar(v), _)) => match v.as_ref() {
                    ScalarValue::Str(s) => Ok(s.to_string()),
                    _ => Err(unreadable(format!("{name:?}: {key} is not text"))),
                },
                _ => Err(unreadable(format!("{name:?}: no {key}"))),
            }
        };
        let hash = text("hash")?
            .parse()
            .map_err(|e: String| unreadable(format!("{name:?}: {e}")))?;
        let media_type = text("type")?
            .parse()
            .map_err(|e: String| unreadable(format!("{name:?}: {e}")))?;
        let size = match doc.value(&obj, "size")? {
            Some((Value::Scalar(v), _)) => match v.as_ref() {
                ScalarValue::Uint(n) => *n,
                ScalarValue::Int(n) if *n >= 0 => n.unsigned_abs(),
                _ => return Err(unreadable(format!("{name:?}: size is not a number"))),
            },
            _ => return Err(unreadable(format!("{name:?}: no size"))),
        };
        out.push(Attachment {
            name,
            media_type,
            size,
            hash,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, t: MediaType) -> Attachment {
        Attachment {
            name: name.into(),
            media_type: t,
            size: 10,
            hash: BlobHash::of(name.as_bytes()),
        }
    }

    #[test]
    fn the_set_written_is_the_set_read_and_a_revision_removes_what_it_leaves_out() {
        let mut doc = AutoCommit::new();
        let a = file("flowchart.pdf", MediaType::Pdf);
        let b = file("form.docx", MediaType::Docx);
        write_attachments(&mut doc, &[b.clone(), a.clone()]).expect("ok");
        assert_eq!(
            read_attachments(&doc).expect("ok"),
            vec![a.clone(), b.clone()]
        );
        let mut b2 = b.clone();
        b2.size = 99;
        b2.hash = BlobHash::of(b"new");
        write_attachments(&mut doc, &[b2.clone()]).expect("ok");
        assert_eq!(read_attachments(&doc).expect("ok"), vec![b2]);
        write_attachments(&mut doc, &[]).expect("ok");
        assert!(read_attachments(&doc).expect("ok").is_empty());
    }

    #[test]
    fn names_types_and_sizes_are_checked() {
        assert!(file("flowchart.pdf", MediaType::Pdf).validate().is_ok());
        assert!(file("photo.JPG", MediaType::Jpeg).validate().is_ok());
        for bad in [
            "../etc/passwd.pdf",
            "a\\b.pdf",
            ".hidden.pdf",
            " x.pdf",
            "x\n.pdf",
            "",
        ] {
            assert!(
                file(bad, MediaType::Pdf).validate().is_err(),
                "{bad:?} accepted"
            );
        }
        let e = file("flowchart.docx", MediaType::Pdf)
            .validate()
            .expect_err("refused");
        assert!(e.reason.contains("does not end as a PDF"), "{}", e.reason);
        let mut big = file("big.pdf", MediaType::Pdf);
        big.size = MAX_ATTACHMENT_BYTES + 1;
        assert!(big.validate().is_err());
        let e = validate_all(&[file("A.pdf", MediaType::Pdf), file("a.pdf", MediaType::Pdf)])
            .expect_err("refused");
        assert!(e.reason.contains("two files"), "{}", e.reason);
    }

    #[test]
    fn first_bytes_tell_the_type() {
        assert!(MediaType::Pdf.matches_head(b"%PDF-1.7\n"));
        assert!(!MediaType::Pdf.matches_head(b"PK\x03\x04"));
        assert!(MediaType::Docx.matches_head(b"PK\x03\x04rest"));
        assert!(MediaType::Png.matches_head(b"\x89PNG\r\n\x1a\nIHDR"));
        assert!(MediaType::Jpeg.matches_head(&[0xFF, 0xD8, 0xFF, 0xE0]));
        assert_eq!(MediaType::from_name("x.Docx"), Some(MediaType::Docx));
        assert_eq!(MediaType::from_name("x.exe"), None);
    }
}
