//! `gatehouse adopt ID [--edit]` and `gatehouse take-change ID [--check]
//! [--edit]`: taking up another establishment's item as this one's, and
//! keeping the copy in step with its source.

use std::io::Write;
use std::path::PathBuf;

use gatehouse_node::authoring::adopt::adoptable_copy;
use gatehouse_node::authoring::draft;
use gatehouse_node::home::Home;
use gatehouse_protocol::jiff::Zoned;

use crate::edit::{confirm, current_item, edit_until_it_reads, scratch_file};
use crate::ops::{self, Op, Outcome};
use crate::output;

/// Runs `adopt`: the copy is the source as it stands, without the source
/// site's approval and dates; with `edit`, the person changes it in their
/// editor first.
pub fn adopt(
    home: Home,
    out: &mut dyn Write,
    json: bool,
    id: &str,
    edit: bool,
    allowed: Vec<String>,
) -> anyhow::Result<()> {
    let content = if edit {
        let view = current_item(&home, id)?;
        let copy = adoptable_copy(&view.item.content, Zoned::now().date());
        let file = scratch_file(&home, &format!("adopt-{}", view.item.id.to_hex()))?;
        let Some(content) = edit_until_it_reads(&file, &draft::source(&copy), &allowed, true)?
        else {
            anyhow::bail!("nothing to adopt");
        };
        let _ = std::fs::remove_file(&file);
        Some(content)
    } else {
        None
    };
    let outcome = ops::dispatch(
        home,
        Op::Adopt {
            id: id.to_string(),
            content,
            allowed,
        },
    )?;
    output::render(&outcome, out, json)
}

/// Runs `take-change`: shows what the source changed since the version
/// this copy holds and what taking it gives; then (unless `check`) signs
/// it as a new version once the person says yes. Where both changed the
/// same lines, `edit` opens the merge with the places marked.
#[allow(clippy::too_many_arguments)]
pub fn take_change(
    home: Home,
    out: &mut dyn Write,
    json: bool,
    yes: bool,
    id: &str,
    check: bool,
    edit: bool,
    allowed: Vec<String>,
) -> anyhow::Result<()> {
    let shown = ops::dispatch(home.clone(), Op::SourceChange { id: id.to_string() })?;
    let Outcome::SourceChange(change) = &shown else {
        anyhow::bail!("the library did not return the change");
    };
    if check || !json {
        output::render(&shown, out, json)?;
    }
    if check {
        return Ok(());
    }
    let mine = change.mine.item.id.to_hex();
    let mut allowed = allowed;
    allowed.extend(change.mine.item.allowed_identifiers.iter().cloned());
    allowed.extend(change.source.item.allowed_identifiers.iter().cloned());
    let content = if edit {
        let file: PathBuf = scratch_file(&home, &format!("take-{mine}"))?;
        let Some(content) =
            edit_until_it_reads(&file, &draft::source(&change.merged), &allowed, true)?
        else {
            anyhow::bail!("nothing to take");
        };
        let _ = std::fs::remove_file(&file);
        content
    } else if change.conflicts > 0 {
        return Err(crate::usage(format!(
            "not taken: your copy and the source changed the same lines; run `gatehouse take-change {} --edit` to choose what to keep",
            &mine[..8]
        )));
    } else {
        change.merged.clone()
    };
    if !yes
        && !confirm(
            out,
            "Publish your copy with the source's change as a new version?",
        )?
    {
        writeln!(out, "Not taken; nothing was published.")?;
        return Ok(());
    }
    let outcome = ops::dispatch(
        home,
        Op::TakeChange {
            id: mine,
            content,
            allowed,
            source_version: change.source.item.version,
        },
    )?;
    output::render(&outcome, out, json)
}
