//! Files for `publish` and `revise`: `--attach FILE` puts a file into this
//! node's file store (on the CLI's side, so a running node never reads a
//! person's home directory), and a Word document given as the item file
//! is converted to Markdown for the body, its front matter taken from
//! `--meta FILE` or asked for on the terminal, and the original attached.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use gatehouse_node::authoring::attach::attachment_from_file;
use gatehouse_node::authoring::template::DEFAULT_REVIEW_YEARS;
use gatehouse_node::blobs::BlobStore;
use gatehouse_node::docx;
use gatehouse_node::extract::find_identifier;
use gatehouse_node::home::Home;
use gatehouse_protocol::attachment::Attachment;
use gatehouse_protocol::item::ItemContent;
use gatehouse_protocol::jiff::ToSpan;
use gatehouse_protocol::vocab::{Kind, Nation, Pathway, Setting};

use crate::usage;

/// The files named by `--attach`, put into the home's file store.
pub fn import(home: &Home, paths: &[PathBuf]) -> anyhow::Result<Vec<Attachment>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let blobs = BlobStore::open(&home.blob_dir())?;
    paths
        .iter()
        .map(|p| attachment_from_file(&blobs, p).map_err(anyhow::Error::from))
        .collect()
}

/// Whether an item file is a Word document (read by [`read_word`]).
pub fn is_word(file: &Path) -> bool {
    file.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("docx"))
}

/// A Word document as an item: its body converted, its front matter from
/// `meta` (YAML, as a Markdown item's front matter, no body) or asked for.
/// Refused, naming where, if any of its text (the body, tables, headers,
/// notes) holds a patient identifier not `allowed`.
pub fn read_word(
    file: &Path,
    meta: Option<&Path>,
    allowed: &[String],
) -> anyhow::Result<ItemContent> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let converted = docx::convert(&bytes).map_err(|e| usage(format!("{}: {e}", file.display())))?;
    if let Some((location, m)) = find_identifier(&converted.parts, allowed) {
        anyhow::bail!(
            "{}: {location} holds what looks like {} ({:?}); patient identifiers never enter the library. Remove it in Word, or, if this is a reviewed false positive, pass --allow-identifier {:?}",
            file.display(),
            m.kind.with_article(),
            m.text,
            m.text
        );
    }
    let front = match meta {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
        None => ask_front_matter(converted.title.as_deref())?,
    };
    let mut front = front.trim().to_string();
    if !front.lines().any(|l| l.trim_start().starts_with("title:"))
        && let Some(title) = &converted.title
    {
        front = format!("title: {}\n{front}", yaml_string(title));
    }
    // The first heading is the title: the body starts after it.
    let body = match &converted.title {
        Some(t) => converted
            .markdown
            .strip_prefix(&format!("# {}\n", t.trim()))
            .map_or(converted.markdown.as_str(), str::trim_start)
            .to_string(),
        None => converted.markdown.clone(),
    };
    let text = format!("---\n{front}\n---\n{body}");
    let label = meta.unwrap_or(file).display().to_string();
    gatehouse_node::authoring::draft::parse(&text, allowed).with_context(|| label)
}

fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn prompt(question: &str, default: Option<&str>) -> anyhow::Result<String> {
    match default {
        Some(d) if !d.is_empty() => eprint!("{question} [{d}]: "),
        _ => eprint!("{question}: "),
    }
    io::stderr().flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    let answer = answer.trim();
    Ok(if answer.is_empty() {
        default.unwrap_or_default().to_string()
    } else {
        answer.to_string()
    })
}

fn slugs(all: impl Iterator<Item = &'static str>) -> String {
    all.collect::<Vec<_>>().join(", ")
}

/// Asks on the terminal for what a Word document does not say.
fn ask_front_matter(title: Option<&str>) -> anyhow::Result<String> {
    if !io::stdin().is_terminal() {
        return Err(usage(
            "a Word document needs its front matter: give it with --meta FILE (YAML: title, kind, summary, pathways, settings, nation, review_due, as at the top of `gatehouse new policy`), or run on a terminal to be asked",
        ));
    }
    eprintln!("The document's details (press Enter to take the suggestion in brackets):");
    let title = prompt("Title", title)?;
    let kind = prompt(
        &format!("Kind ({})", slugs(Kind::ALL.iter().map(|k| k.slug()))),
        Some("policy"),
    )?;
    let summary = prompt("Summary (one or two sentences)", None)?;
    let pathways = prompt(
        &format!(
            "Care pathways, separated by commas ({})",
            slugs(Pathway::ALL.iter().map(|p| p.slug()))
        ),
        None,
    )?;
    let settings = prompt(
        &format!(
            "Settings, separated by commas ({})",
            slugs(Setting::ALL.iter().map(|s| s.slug()))
        ),
        None,
    )?;
    let nation = prompt(
        &format!(
            "Nation ({}, or uk)",
            slugs(Nation::ALL.iter().map(|n| n.slug()))
        ),
        Some("england"),
    )?;
    let today = gatehouse_protocol::jiff::Zoned::now().date();
    let review = today
        .checked_add(DEFAULT_REVIEW_YEARS.years())
        .unwrap_or(today)
        .to_string();
    let review = prompt("Review by (YYYY-MM-DD)", Some(&review))?;
    let list = |s: &str| {
        format!(
            "[{}]",
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Ok(format!(
        "title: {}\nkind: {kind}\nsummary: {}\npathways: {}\nsettings: {}\nnation: {nation}\nreview_due: {review}\nstatus: published\n",
        yaml_string(&title),
        yaml_string(&summary),
        list(&pathways),
        list(&settings),
    ))
}
