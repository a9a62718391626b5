//! Text from attached files, with where each piece is: for search, and
//! for the patient-identifier scan that every file passes before it is
//! published and again when it arrives from a peer.
//!
//! PDFs are read page by page (`pdf-extract`), Word documents paragraph
//! by paragraph and cell by cell ([`crate::docx`]), workbooks cell by cell
//! (`calamine`). Images carry no text that can be read without OCR, which
//! this node does not do. The parsers run on files from other sites, so
//! a panic inside one is caught and reported as an unreadable file.

use std::io::Cursor;

use gatehouse_protocol::attachment::MediaType;
use gatehouse_protocol::identifier::{IdentifierMatch, find_identifiers_allowing};

pub use crate::docx::TextPart;
use crate::docx::{self, Archive};

/// The most text kept from one file for the index.
pub const MAX_INDEXED_TEXT_BYTES: usize = 1024 * 1024;

/// Checks that `bytes` are a file of type `media`: its first bytes, and
/// for Word and Excel what the archive holds.
pub fn check_type(media: MediaType, bytes: &[u8]) -> Result<(), String> {
    if !media.matches_head(bytes) {
        return Err(format!("it is not a {}", media.label()));
    }
    let needs = match media {
        MediaType::Docx => "word/document.xml",
        MediaType::Xlsx => "xl/workbook.xml",
        MediaType::Pdf | MediaType::Png | MediaType::Jpeg => return Ok(()),
    };
    let archive = Archive::open(bytes).map_err(|e| e.to_string())?;
    if archive.names().iter().any(|n| n == needs) {
        Ok(())
    } else {
        Err(format!("it is not a {} (no {needs} inside)", media.label()))
    }
}

/// The stack a parser runs on: far more than the few kilobytes a sane
/// file needs, so that deep nesting in a file from another site (arrays
/// within arrays of a PDF) is refused by the parser or runs out of memory
/// it can report, before it runs out of stack.
pub const PARSER_STACK_BYTES: usize = 256 * 1024 * 1024;

/// Runs a parser on a thread of its own with a large stack, a panic in it
/// caught and reported as an unreadable file.
fn guarded<T: Send>(f: impl FnOnce() -> Result<T, String> + Send) -> Result<T, String> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("gatehouse-extract".into())
            .stack_size(PARSER_STACK_BYTES)
            .spawn_scoped(scope, || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            });
        match worker.map(|w| w.join()) {
            Ok(Ok(Ok(r))) => r,
            Ok(_) => Err("the file could not be read".into()),
            Err(e) => Err(format!("no thread to read the file on: {e}")),
        }
    })
}

/// The text of a file of type `media`, piece by piece.
pub fn extract(media: MediaType, bytes: &[u8]) -> Result<Vec<TextPart>, String> {
    match media {
        MediaType::Pdf => guarded(|| {
            let pages =
                pdf_extract::extract_text_from_mem_by_pages(bytes).map_err(|e| e.to_string())?;
            Ok(pages
                .into_iter()
                .enumerate()
                .filter(|(_, t)| !t.trim().is_empty())
                .map(|(n, text)| TextPart {
                    location: format!("page {}", n + 1),
                    text,
                })
                .collect())
        }),
        MediaType::Docx => guarded(|| {
            docx::convert(bytes)
                .map(|c| c.parts)
                .map_err(|e| e.to_string())
        }),
        MediaType::Xlsx => guarded(|| workbook(bytes)),
        MediaType::Png | MediaType::Jpeg => Ok(Vec::new()),
    }
}

/// A column number as a spreadsheet names it (0 → A, 26 → AA).
fn column_name(mut col: u32) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn workbook(bytes: &[u8]) -> Result<Vec<TextPart>, String> {
    use calamine::{Data, Reader, Xlsx};
    let mut book: Xlsx<_> =
        Xlsx::new(Cursor::new(bytes.to_vec())).map_err(|e| format!("not a workbook: {e}"))?;
    let mut out = Vec::new();
    for name in book.sheet_names() {
        let range = book
            .worksheet_range(&name)
            .map_err(|e| format!("sheet {name}: {e}"))?;
        let (row0, col0) = range.start().unwrap_or((0, 0));
        for (r, row) in range.rows().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                let text = match cell {
                    Data::Empty | Data::Error(_) => continue,
                    Data::String(s) => s.clone(),
                    Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
                    other => other.to_string(),
                };
                if text.trim().is_empty() {
                    continue;
                }
                out.push(TextPart {
                    location: format!(
                        "sheet {name}, cell {}{}",
                        column_name(col0 + c as u32),
                        row0 as usize + r + 1
                    ),
                    text,
                });
            }
        }
    }
    Ok(out)
}

/// The first patient identifier in the pieces, other than the `allowed`
/// ones, with where it is.
pub fn find_identifier<'a>(
    parts: &'a [TextPart],
    allowed: &[String],
) -> Option<(&'a str, IdentifierMatch)> {
    parts.iter().find_map(|p| {
        find_identifiers_allowing(&p.text, allowed)
            .into_iter()
            .next()
            .map(|m| (p.location.as_str(), m))
    })
}

/// The pieces as one text for the index, bounded.
pub fn index_text(parts: &[TextPart]) -> String {
    let mut out = String::new();
    for p in parts {
        if out.len() + p.text.len() + 1 > MAX_INDEXED_TEXT_BYTES {
            break;
        }
        out.push_str(&p.text);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_named_as_spreadsheets_name_them() {
        assert_eq!(column_name(0), "A");
        assert_eq!(column_name(25), "Z");
        assert_eq!(column_name(26), "AA");
        assert_eq!(column_name(27), "AB");
        assert_eq!(column_name(701), "ZZ");
        assert_eq!(column_name(702), "AAA");
    }

    #[test]
    fn a_file_not_of_its_type_is_named_as_such() {
        assert!(check_type(MediaType::Pdf, b"%PDF-1.4 ...").is_ok());
        let e = check_type(MediaType::Pdf, b"MZ\x90\x00").expect_err("refused");
        assert!(e.contains("not a PDF"), "{e}");
        let e = check_type(MediaType::Docx, b"PK\x03\x04garbage").expect_err("refused");
        assert!(e.contains("not a Word document"), "{e}");
    }
}
