//! Word documents (`.docx`, Office Open XML) read as a site lead wrote
//! them: the body converted to Markdown (headings, nested lists, tables,
//! bold and italic, links), and every piece of text (each paragraph, each
//! table cell, headers, footers, notes and comments) with where it is, for
//! the identifier scan to point at.
//!
//! Headings come from the paragraph's style (its name `heading N` or
//! `Title`, or its outline level), as Word and LibreOffice both write
//! them whatever the document's language; lists from the paragraph's or
//! its style's numbering, bullet or numbered by the level's format in
//! `numbering.xml`.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use roxmltree::{Document, Node};
use thiserror::Error;

/// The most a part of the archive may hold once inflated.
pub const MAX_PART_BYTES: u64 = 64 * 1024 * 1024;
/// How deep content controls, insertions and links may nest before what
/// is inside them is left out (a file from another site could nest them
/// deep enough to exhaust the stack).
pub const MAX_NESTING: usize = 32;

const W: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";
const R: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";

/// Why a file could not be read as a Word document.
#[derive(Debug, Error)]
pub enum DocxError {
    /// Not a ZIP archive, or a damaged one.
    #[error("not a Word document (.docx): {0}")]
    NotZip(String),
    /// A ZIP archive without a Word body.
    #[error("not a Word document (.docx): it holds no word/document.xml")]
    NoBody,
    /// A part that does not parse.
    #[error("{part} is not well-formed XML: {reason}")]
    Xml {
        /// The part.
        part: String,
        /// The parser's words.
        reason: String,
    },
    /// A part too large once inflated.
    #[error("{0} is larger than {max} MiB once inflated", max = MAX_PART_BYTES / (1024 * 1024))]
    TooLarge(String),
}

/// A piece of text and where it is in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPart {
    /// Where it is, in words ("paragraph 4", "table 1, row 3, column 2",
    /// "page 2", "sheet Doses, cell B7").
    pub location: String,
    /// The text.
    pub text: String,
}

/// A Word document read.
#[derive(Debug, Clone, Default)]
pub struct Converted {
    /// The body as Markdown.
    pub markdown: String,
    /// The first heading's text (a title for the item, if none is given).
    pub title: Option<String>,
    /// Every piece of text with where it is.
    pub parts: Vec<TextPart>,
}

/// The parts of an Office Open XML archive, read with a bound on each.
pub(crate) struct Archive {
    zip: zip::ZipArchive<Cursor<Vec<u8>>>,
}

impl Archive {
    pub(crate) fn open(bytes: &[u8]) -> Result<Self, DocxError> {
        zip::ZipArchive::new(Cursor::new(bytes.to_vec()))
            .map(|zip| Self { zip })
            .map_err(|e| DocxError::NotZip(e.to_string()))
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.zip
            .file_names()
            .filter_map(|n| n.ok().map(|n| n.to_string()))
            .collect()
    }

    pub(crate) fn part(&mut self, name: &str) -> Result<Option<String>, DocxError> {
        let file = match self.zip.by_name(name) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(DocxError::NotZip(e.to_string())),
        };
        let mut out = Vec::new();
        file.take(MAX_PART_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| DocxError::NotZip(format!("{name}: {e}")))?;
        if out.len() as u64 > MAX_PART_BYTES {
            return Err(DocxError::TooLarge(name.to_string()));
        }
        String::from_utf8(out)
            .map(Some)
            .map_err(|_| DocxError::Xml {
                part: name.to_string(),
                reason: "not UTF-8".into(),
            })
    }
}

/// The deepest elements may nest in a part: the XML parser recurses per
/// level, so a file from another site nested thousands deep would exhaust
/// the stack. Word nests a few dozen at most.
pub const MAX_XML_DEPTH: usize = 256;

/// How deep elements nest in `xml`, read without parsing it (comments,
/// CDATA and processing instructions passed over; a `>` inside a quoted
/// attribute value is not an end).
fn nesting_depth(xml: &str) -> usize {
    let b = xml.as_bytes();
    let (mut i, mut depth, mut deepest) = (0, 0usize, 0usize);
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &xml[i..];
        let skip_to = |end: &str| rest.find(end).map_or(b.len(), |at| i + at + end.len());
        if rest.starts_with("<!--") {
            i = skip_to("-->");
        } else if rest.starts_with("<![CDATA[") {
            i = skip_to("]]>");
        } else if rest.starts_with("<?") {
            i = skip_to("?>");
        } else if rest.starts_with("<!") {
            i = skip_to(">");
        } else if rest.starts_with("</") {
            depth = depth.saturating_sub(1);
            i = skip_to(">");
        } else {
            // An opening tag: find its end outside quotes.
            let mut j = i + 1;
            let mut quote = None;
            while j < b.len() {
                match (quote, b[j]) {
                    (None, b'"' | b'\'') => quote = Some(b[j]),
                    (Some(q), c) if c == q => quote = None,
                    (None, b'>') => break,
                    _ => {}
                }
                j += 1;
            }
            if j > 0 && j < b.len() && b[j - 1] != b'/' {
                depth += 1;
                deepest = deepest.max(depth);
            }
            i = j + 1;
        }
    }
    deepest
}

fn parse<'a>(part: &str, text: &'a str) -> Result<Document<'a>, DocxError> {
    if nesting_depth(text) > MAX_XML_DEPTH {
        return Err(DocxError::Xml {
            part: part.to_string(),
            reason: format!("elements nest more than {MAX_XML_DEPTH} deep"),
        });
    }
    Document::parse_with_options(
        text,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            ..roxmltree::ParsingOptions::default()
        },
    )
    .map_err(|e| DocxError::Xml {
        part: part.to_string(),
        reason: e.to_string(),
    })
}

fn is_w(node: &Node<'_, '_>, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(W)
}

fn w_val<'a>(node: &Node<'a, '_>) -> Option<&'a str> {
    node.attribute((W, "val"))
}

fn child<'a, 'i>(node: &Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| is_w(c, name))
}

/// A toggle property (`<w:b/>`, `<w:b w:val="false"/>`).
fn toggle(rpr: Option<Node<'_, '_>>, name: &str) -> bool {
    rpr.and_then(|r| child(&r, name))
        .is_some_and(|b| !matches!(w_val(&b), Some("0" | "false" | "off" | "none")))
}

/// What the document's styles say of a paragraph style.
#[derive(Debug, Clone, Default)]
struct StyleInfo {
    heading: Option<usize>,
    numbering: Option<(String, usize)>,
    /// How far in the style's name puts its list.
    depth: usize,
}

fn styles(xml: Option<&str>) -> Result<HashMap<String, StyleInfo>, DocxError> {
    let mut out = HashMap::new();
    let Some(xml) = xml else { return Ok(out) };
    let doc = parse("word/styles.xml", xml)?;
    for style in doc.descendants().filter(|n| is_w(n, "style")) {
        let Some(id) = style.attribute((W, "styleId")) else {
            continue;
        };
        let name = child(&style, "name")
            .and_then(|n| w_val(&n))
            .unwrap_or_default()
            .to_ascii_lowercase();
        let ppr = child(&style, "pPr");
        let heading = if name == "title" {
            Some(1)
        } else if let Some(n) = name.strip_prefix("heading ") {
            n.trim().parse::<usize>().ok()
        } else {
            ppr.and_then(|p| child(&p, "outlineLvl"))
                .and_then(|o| w_val(&o)?.parse::<usize>().ok())
                .filter(|l| *l < 9)
                .map(|l| l + 1)
        };
        // Word's "List Bullet 2", "List Number 3": a list one or two
        // levels in, written as a list of its own at level 0.
        let depth = ["list bullet ", "list number ", "list continue "]
            .iter()
            .find_map(|p| name.strip_prefix(p)?.trim().parse::<usize>().ok())
            .map_or(0, |n| n.saturating_sub(1));
        let numbering = ppr
            .and_then(|p| numbering_of(&p))
            .map(|(id, level)| (id, level.max(depth)));
        out.insert(
            id.to_string(),
            StyleInfo {
                heading,
                numbering,
                depth,
            },
        );
    }
    Ok(out)
}

fn numbering_of(ppr: &Node<'_, '_>) -> Option<(String, usize)> {
    let num = child(ppr, "numPr")?;
    let id = child(&num, "numId").and_then(|n| w_val(&n))?.to_string();
    if id == "0" {
        return None;
    }
    let level = child(&num, "ilvl")
        .and_then(|n| w_val(&n)?.parse().ok())
        .unwrap_or(0);
    Some((id, level))
}

/// Which (list, level) pairs are numbered rather than bulleted.
fn numbering(xml: Option<&str>) -> Result<HashMap<(String, usize), bool>, DocxError> {
    let mut out = HashMap::new();
    let Some(xml) = xml else { return Ok(out) };
    let doc = parse("word/numbering.xml", xml)?;
    let mut abstracts: HashMap<String, HashMap<usize, bool>> = HashMap::new();
    for a in doc.descendants().filter(|n| is_w(n, "abstractNum")) {
        let Some(id) = a.attribute((W, "abstractNumId")) else {
            continue;
        };
        let levels = a
            .children()
            .filter(|n| is_w(n, "lvl"))
            .filter_map(|l| {
                let level = l.attribute((W, "ilvl"))?.parse().ok()?;
                let format = child(&l, "numFmt")
                    .and_then(|f| w_val(&f))
                    .unwrap_or("bullet");
                Some((level, !matches!(format, "bullet" | "none")))
            })
            .collect();
        abstracts.insert(id.to_string(), levels);
    }
    for num in doc.descendants().filter(|n| is_w(n, "num")) {
        let (Some(id), Some(abs)) = (
            num.attribute((W, "numId")),
            child(&num, "abstractNumId").and_then(|a| w_val(&a)),
        ) else {
            continue;
        };
        if let Some(levels) = abstracts.get(abs) {
            for (level, ordered) in levels {
                out.insert((id.to_string(), *level), *ordered);
            }
        }
    }
    Ok(out)
}

fn relationships(xml: Option<&str>) -> Result<HashMap<String, String>, DocxError> {
    let mut out = HashMap::new();
    let Some(xml) = xml else { return Ok(out) };
    let doc = parse("word/_rels/document.xml.rels", xml)?;
    for rel in doc
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "Relationship")
    {
        if let (Some(id), Some(target)) = (rel.attribute("Id"), rel.attribute("Target")) {
            out.insert(id.to_string(), target.to_string());
        }
    }
    Ok(out)
}

/// A run of text with its emphasis.
#[derive(Debug, Clone, PartialEq)]
struct Span {
    text: String,
    bold: bool,
    italic: bool,
    link: Option<String>,
}

/// Escapes what Markdown would read as markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A line that would start a list or a block if left as written.
fn guard_line_start(line: &str) -> String {
    let trimmed = line.trim_start();
    let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
    let list_marker = matches!(trimmed.chars().next(), Some('-' | '+' | '='))
        || (digits > 0 && matches!(trimmed[digits..].chars().next(), Some('.' | ')')));
    if list_marker {
        let at = line.len() - trimmed.len();
        if digits > 0 {
            return format!(
                "{}{}\\{}",
                &line[..at],
                &trimmed[..digits],
                &trimmed[digits..]
            );
        }
        return format!("{}\\{}", &line[..at], trimmed);
    }
    line.to_string()
}

fn emphasis(text: &str, bold: bool, italic: bool) -> String {
    let marks = match (bold, italic) {
        (true, true) => "***",
        (true, false) => "**",
        (false, true) => "*",
        (false, false) => "",
    };
    let core = text.trim();
    if marks.is_empty() || core.is_empty() {
        return text.to_string();
    }
    // Markdown's emphasis may not start or end with a space: keep the
    // spaces outside the marks.
    let lead = &text[..text.len() - text.trim_start().len()];
    let trail = &text[text.trim_end().len()..];
    format!("{lead}{marks}{core}{marks}{trail}")
}

fn render_spans(spans: &[Span]) -> String {
    // Runs with the same look are joined first, so a word Word split over
    // runs is one emphasis.
    let mut merged: Vec<Span> = Vec::new();
    for s in spans {
        match merged.last_mut() {
            Some(last) if last.bold == s.bold && last.italic == s.italic && last.link == s.link => {
                last.text.push_str(&s.text);
            }
            _ => merged.push(s.clone()),
        }
    }
    let mut out = String::new();
    for s in merged {
        let text = emphasis(&escape(&s.text), s.bold, s.italic);
        match &s.link {
            Some(url) if !s.text.trim().is_empty() => {
                out.push_str(&format!(
                    "[{text}](<{}>)",
                    url.replace(['<', '>', '\n'], "")
                ));
            }
            _ => out.push_str(&text),
        }
    }
    out
}

struct Reader<'r> {
    styles: &'r HashMap<String, StyleInfo>,
    ordered: &'r HashMap<(String, usize), bool>,
    rels: &'r HashMap<String, String>,
}

/// One block of the body.
enum Block {
    Paragraph {
        heading: Option<usize>,
        list: Option<(String, usize)>,
        spans: Vec<Span>,
    },
    Table(Vec<Vec<String>>),
}

impl Reader<'_> {
    /// The runs of a paragraph (or of a hyperlink, insertion, field or
    /// content control inside one), in order.
    fn spans(&self, node: Node<'_, '_>, link: Option<&str>, out: &mut Vec<Span>, depth: usize) {
        if depth > MAX_NESTING {
            return;
        }
        for c in node.children().filter(Node::is_element) {
            if c.tag_name().namespace() != Some(W) {
                continue;
            }
            match c.tag_name().name() {
                "r" => {
                    let rpr = child(&c, "rPr");
                    let bold = toggle(rpr, "b");
                    let italic = toggle(rpr, "i");
                    let mut text = String::new();
                    for t in c.children().filter(Node::is_element) {
                        match t.tag_name().name() {
                            "t" => text.push_str(t.text().unwrap_or_default()),
                            "tab" => text.push(' '),
                            "br" | "cr" => text.push('\n'),
                            "noBreakHyphen" => text.push('-'),
                            _ => {}
                        }
                    }
                    if !text.is_empty() {
                        out.push(Span {
                            text,
                            bold,
                            italic,
                            link: link.map(str::to_string),
                        });
                    }
                }
                "hyperlink" => {
                    let target = c
                        .attribute((R, "id"))
                        .and_then(|id| self.rels.get(id))
                        .filter(|t| {
                            let t = t.to_ascii_lowercase();
                            t.starts_with("https://")
                                || t.starts_with("http://")
                                || t.starts_with("mailto:")
                        });
                    self.spans(c, target.map(String::as_str).or(link), out, depth + 1);
                }
                "ins" | "smartTag" | "fldSimple" | "customXml" | "sdtContent" | "sdt" => {
                    self.spans(c, link, out, depth + 1);
                }
                _ => {}
            }
        }
    }

    fn paragraph(&self, p: Node<'_, '_>) -> Block {
        let ppr = child(&p, "pPr");
        let style = ppr
            .and_then(|pp| child(&pp, "pStyle"))
            .and_then(|s| w_val(&s))
            .and_then(|id| self.styles.get(id));
        let heading = ppr
            .and_then(|pp| child(&pp, "outlineLvl"))
            .and_then(|o| w_val(&o)?.parse::<usize>().ok())
            .filter(|l| *l < 9)
            .map(|l| l + 1)
            .or(style.and_then(|s| s.heading));
        let list = ppr
            .and_then(|pp| numbering_of(&pp))
            .map(|(id, level)| (id, level.max(style.map_or(0, |s| s.depth))))
            .or(style.and_then(|s| s.numbering.clone()));
        let mut spans = Vec::new();
        self.spans(p, None, &mut spans, 0);
        Block::Paragraph {
            heading,
            list,
            spans,
        }
    }

    /// The text of a table cell: its paragraphs (and any table inside it)
    /// as one line.
    fn cell_text(&self, cell: Node<'_, '_>) -> String {
        let mut lines = Vec::new();
        for c in cell.descendants().filter(|n| is_w(n, "p")) {
            let mut spans = Vec::new();
            self.spans(c, None, &mut spans, 0);
            let text = render_spans(&spans).replace('\n', " ");
            if !text.trim().is_empty() {
                lines.push(text.trim().to_string());
            }
        }
        lines.join(" ")
    }

    fn table(&self, tbl: Node<'_, '_>) -> Vec<Vec<String>> {
        tbl.children()
            .filter(|n| is_w(n, "tr"))
            .map(|row| {
                let mut cells = Vec::new();
                for cell in row.children().filter(|n| is_w(n, "tc")) {
                    cells.push(self.cell_text(cell));
                    let span = child(&cell, "tcPr")
                        .and_then(|p| child(&p, "gridSpan"))
                        .and_then(|g| w_val(&g)?.parse::<usize>().ok())
                        .unwrap_or(1)
                        .clamp(1, 64);
                    cells.extend(std::iter::repeat_n(String::new(), span - 1));
                }
                cells
            })
            .collect()
    }

    fn blocks(&self, node: Node<'_, '_>, out: &mut Vec<Block>, depth: usize) {
        if depth > MAX_NESTING {
            return;
        }
        for c in node.children().filter(Node::is_element) {
            if is_w(&c, "p") {
                out.push(self.paragraph(c));
            } else if is_w(&c, "tbl") {
                out.push(Block::Table(self.table(c)));
            } else if is_w(&c, "sdt") || is_w(&c, "sdtContent") || is_w(&c, "customXml") {
                self.blocks(c, out, depth + 1);
            }
        }
    }
}

fn plain(spans: &[Span]) -> String {
    spans.iter().map(|s| s.text.as_str()).collect()
}

/// Every paragraph's text in a part that is not the body (a header,
/// footnotes), for the scan.
fn other_part(name: &str, xml: &str, parts: &mut Vec<TextPart>) -> Result<(), DocxError> {
    let doc = parse(name, xml)?;
    let label = name
        .trim_start_matches("word/")
        .trim_end_matches(".xml")
        .to_string();
    for (n, p) in doc.descendants().filter(|n| is_w(n, "p")).enumerate() {
        let text: String = p
            .descendants()
            .filter(|t| is_w(t, "t"))
            .filter_map(|t| t.text())
            .collect();
        if !text.trim().is_empty() {
            parts.push(TextPart {
                location: format!("{label}, paragraph {}", n + 1),
                text,
            });
        }
    }
    Ok(())
}

/// Reads a Word document.
pub fn convert(bytes: &[u8]) -> Result<Converted, DocxError> {
    let mut archive = Archive::open(bytes)?;
    let body_xml = archive
        .part("word/document.xml")?
        .ok_or(DocxError::NoBody)?;
    let styles = styles(archive.part("word/styles.xml")?.as_deref())?;
    let ordered = numbering(archive.part("word/numbering.xml")?.as_deref())?;
    let rels = relationships(archive.part("word/_rels/document.xml.rels")?.as_deref())?;
    let doc = parse("word/document.xml", &body_xml)?;
    let body = doc
        .descendants()
        .find(|n| is_w(n, "body"))
        .ok_or(DocxError::NoBody)?;
    let reader = Reader {
        styles: &styles,
        ordered: &ordered,
        rels: &rels,
    };
    let mut blocks = Vec::new();
    reader.blocks(body, &mut blocks, 0);

    let mut out = Converted::default();
    let mut md: Vec<String> = Vec::new();
    // Numbers of numbered list items, by list and level.
    let mut counters: HashMap<(String, usize), usize> = HashMap::new();
    let mut in_list = false;
    let (mut paragraph_no, mut table_no) = (0, 0);
    for block in blocks {
        match block {
            Block::Paragraph {
                heading,
                list,
                spans,
            } => {
                let text = plain(&spans);
                if text.trim().is_empty() {
                    continue;
                }
                paragraph_no += 1;
                out.parts.push(TextPart {
                    location: format!("paragraph {paragraph_no}"),
                    text: text.clone(),
                });
                let rendered = render_spans(&spans);
                if let Some(level) = heading {
                    if out.title.is_none() {
                        out.title = Some(text.trim().to_string());
                    }
                    if in_list {
                        md.push(String::new());
                        in_list = false;
                    }
                    let hashes = "#".repeat(level.clamp(1, 6));
                    md.push(format!("{hashes} {}", rendered.replace('\n', " ").trim()));
                    md.push(String::new());
                    continue;
                }
                if let Some((id, level)) = list {
                    let level = level.min(8);
                    counters.retain(|(lid, l), _| lid != &id || *l <= level);
                    let indent = "    ".repeat(level);
                    let marker = if reader.ordered.get(&(id.clone(), level)) == Some(&true) {
                        let n = counters.entry((id, level)).or_insert(0);
                        *n += 1;
                        format!("{n}.")
                    } else {
                        "-".to_string()
                    };
                    let item = rendered.trim().replace('\n', " ");
                    md.push(format!("{indent}{marker} {item}"));
                    in_list = true;
                    continue;
                }
                if in_list {
                    md.push(String::new());
                    in_list = false;
                }
                let lines: Vec<String> = rendered
                    .trim()
                    .split('\n')
                    .map(|l| guard_line_start(l.trim_end()))
                    .collect();
                md.push(lines.join("\\\n"));
                md.push(String::new());
            }
            Block::Table(rows) => {
                let rows: Vec<Vec<String>> = rows
                    .into_iter()
                    .filter(|r| r.iter().any(|c| !c.trim().is_empty()))
                    .collect();
                if rows.is_empty() {
                    continue;
                }
                table_no += 1;
                for (r, row) in rows.iter().enumerate() {
                    for (c, cell) in row.iter().enumerate() {
                        if !cell.trim().is_empty() {
                            out.parts.push(TextPart {
                                location: format!(
                                    "table {table_no}, row {}, column {}",
                                    r + 1,
                                    c + 1
                                ),
                                text: cell.replace('\\', ""),
                            });
                        }
                    }
                }
                if in_list {
                    md.push(String::new());
                    in_list = false;
                }
                let width = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
                let line = |cells: &[String]| {
                    let mut padded: Vec<&str> = cells.iter().map(String::as_str).collect();
                    padded.resize(width, "");
                    format!("| {} |", padded.join(" | "))
                };
                md.push(line(&rows[0]));
                md.push(format!("|{}", " --- |".repeat(width)));
                for row in &rows[1..] {
                    md.push(line(row));
                }
                md.push(String::new());
            }
        }
    }
    out.markdown = md.join("\n").trim().to_string();
    out.markdown.push('\n');

    let mut others: Vec<String> = archive
        .names()
        .into_iter()
        .filter(|n| {
            let n = n.as_str();
            n.starts_with("word/")
                && n.ends_with(".xml")
                && ["header", "footer", "footnotes", "endnotes", "comments"]
                    .iter()
                    .any(|p| n["word/".len()..].starts_with(p))
        })
        .collect();
    others.sort();
    for name in others {
        if let Some(xml) = archive.part(&name)? {
            other_part(&name, &xml, &mut out.parts)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn docx_with_body(body: &str) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut out);
            zip.start_file(
                "word/document.xml",
                zip::write::SimpleFileOptions::default(),
            )
            .expect("start");
            write!(
                zip,
                r#"<?xml version="1.0"?><w:document xmlns:w="{W}"><w:body>{body}</w:body></w:document>"#
            )
            .expect("write");
            zip.finish().expect("finish");
        }
        out.into_inner()
    }

    #[test]
    fn nesting_past_the_limit_is_left_out_not_a_crash() {
        let depth = 20_000;
        let body = format!(
            "<w:p><w:r><w:t>Kept</w:t></w:r>{}<w:r><w:t>deep</w:t></w:r>{}</w:p>",
            "<w:ins>".repeat(depth),
            "</w:ins>".repeat(depth)
        );
        let e = convert(&docx_with_body(&body)).expect_err("refused");
        assert!(e.to_string().contains("nest more than"), "{e}");
        // Within the XML limit, past the converter's: what is deeper is
        // left out.
        let depth = 100;
        let body = format!(
            "<w:p><w:r><w:t>Kept</w:t></w:r>{}<w:r><w:t>deep</w:t></w:r>{}</w:p>",
            "<w:ins>".repeat(depth),
            "</w:ins>".repeat(depth)
        );
        let c = convert(&docx_with_body(&body)).expect("converts");
        assert!(
            c.markdown.contains("Kept") && !c.markdown.contains("deep"),
            "{}",
            c.markdown
        );
        let blocks = format!(
            "{}<w:p><w:r><w:t>deep</w:t></w:r></w:p>{}",
            "<w:sdt><w:sdtContent>".repeat(depth / 2),
            "</w:sdtContent></w:sdt>".repeat(depth / 2)
        );
        let c = convert(&docx_with_body(&blocks)).expect("converts");
        assert!(!c.markdown.contains("deep"), "{}", c.markdown);
    }

    #[test]
    fn depth_is_read_past_comments_quotes_and_empty_elements() {
        assert_eq!(nesting_depth("<a><b/><c x=\"1>2\"><d></d></c></a>"), 3);
        assert_eq!(
            nesting_depth("<?xml?><!-- <x><y> --><a><![CDATA[<z>]]></a>"),
            1
        );
    }
}
