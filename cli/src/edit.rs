//! `gatehouse edit ID`: the current version's source opened in the
//! person's editor, checked when they save (the editor opens again with
//! the problem written at the top until it reads), the change shown, and a
//! question before the revision is published. No file of the item is
//! needed: the source comes from the library.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use gatehouse_node::authoring::adopt::CONFLICT_MARKERS;
use gatehouse_node::authoring::draft::{self, DraftError};
use gatehouse_node::home::Home;

use crate::ops::{self, Op, Outcome, ReadOp};
use crate::{output, usage};

/// Saves that still do not read before `edit` gives up (the text is kept).
const MAX_TRIES: usize = 10;

/// Marks the lines `edit` writes into the file to say what is wrong; they
/// are taken out again when it reads the file back.
const NOTE: &str = "# gatehouse: ";

/// Runs `edit`: see the module documentation.
pub fn edit(
    home: Home,
    out: &mut dyn Write,
    json: bool,
    id: &str,
    yes: bool,
) -> anyhow::Result<()> {
    let view = current_item(&home, id)?;
    let id = view.item.id.to_hex();
    let allowed = view.item.allowed_identifiers.clone();
    // Refused now if it could not be revised (another site's, or closed),
    // before any typing.
    ops::dispatch(
        home.clone(),
        Op::Check {
            file: PathBuf::from(&id),
            content: view.item.content.clone(),
            revise: Some(id.clone()),
        },
    )?;
    let original = draft::source(&view.item.content);
    let file = scratch_file(&home, &id)?;
    let Some(content) = edit_until_it_reads(&file, &original, &allowed, false)? else {
        writeln!(out, "No change made; nothing was published.")?;
        return Ok(());
    };
    let check = ops::dispatch(
        home.clone(),
        Op::Check {
            file: file.clone(),
            content: content.clone(),
            revise: Some(id.clone()),
        },
    )?;
    if let (false, ops::Outcome::Checked(report)) = (json, &check) {
        output::write_check(out, report, false)?;
    }
    if !yes && !confirm(out, "Publish this version to the network?")? {
        writeln!(
            out,
            "Not published. Your text is kept in {}; publish it with: gatehouse revise {} {}",
            file.display(),
            &id[..8],
            file.display()
        )?;
        return Ok(());
    }
    let revised = ops::dispatch(
        home,
        Op::Revise {
            id,
            file: file.clone(),
            content,
            allowed,
            significant: None,
            attach: Vec::new(),
            detach: Vec::new(),
        },
    )?;
    let _ = std::fs::remove_file(&file);
    output::render(&revised, out, json)
}

/// The current version of item `id` (or prefix).
pub fn current_item(home: &Home, id: &str) -> anyhow::Result<Box<gatehouse_node::query::ItemView>> {
    let Outcome::Item { view, .. } = ops::dispatch(
        home.clone(),
        Op::Read(ReadOp::Show {
            id: id.to_string(),
            version: None,
        }),
    )?
    else {
        anyhow::bail!("the library did not return the item");
    };
    Ok(view)
}

/// Opens `original` in the person's editor in `file` until what they save
/// reads as an item (each problem written at the top of the file) and its
/// body holds no conflict marker. `None` when they saved it unchanged and
/// `unchanged_is_done` is false.
pub fn edit_until_it_reads(
    file: &Path,
    original: &str,
    allowed: &[String],
    unchanged_is_done: bool,
) -> anyhow::Result<Option<gatehouse_protocol::item::ItemContent>> {
    let mut text = original.to_string();
    let mut problem: Option<DraftError> = None;
    for _ in 0..MAX_TRIES {
        write_private(file, &with_note(&text, problem.as_ref()))?;
        run_editor(file)?;
        let saved = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        text = without_note(&saved);
        if text == original && !unchanged_is_done && !has_marker(&text) {
            let _ = std::fs::remove_file(file);
            return Ok(None);
        }
        match draft::parse(&text, allowed) {
            Ok(content) if has_marker(&content.body) => {
                let at = text
                    .lines()
                    .position(|l| CONFLICT_MARKERS.iter().any(|m| l.starts_with(m)))
                    .map_or(0, |i| i + 1);
                let e = DraftError::Field {
                    field: "body".into(),
                    line: at,
                    message:
                        "a conflict marker is left; keep the lines you want and remove the markers"
                            .into(),
                };
                eprintln!("{}: {e}", file.display());
                problem = Some(e);
            }
            Ok(content) => return Ok(Some(content)),
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                problem = Some(e);
            }
        }
    }
    Err(usage(format!(
        "the file still does not read after {MAX_TRIES} saves; nothing was published. Your text is kept in {}",
        file.display()
    )))
}

fn has_marker(text: &str) -> bool {
    text.lines()
        .any(|l| CONFLICT_MARKERS.iter().any(|m| l.starts_with(m)))
}

/// `<home>/tmp/edit-<id>.md`, in a directory only this user reads.
pub fn scratch_file(home: &Home, id: &str) -> anyhow::Result<PathBuf> {
    let dir = home.root().join("tmp");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot make {}", dir.display()))?;
    set_mode(&dir, 0o700)?;
    Ok(dir.join(format!("edit-{}.md", &id[..16])))
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    set_mode(path, 0o600)
}

/// `$VISUAL`, else `$EDITOR`, else `vi`, on `file`, through the shell so
/// an editor given with its options (`code --wait`) works.
fn run_editor(file: &Path) -> anyhow::Result<()> {
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .or_else(|| {
            std::env::var("EDITOR")
                .ok()
                .filter(|e| !e.trim().is_empty())
        })
        .unwrap_or_else(|| "vi".into());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file)
        .status()
        .with_context(|| format!("cannot start the editor ({editor})"))?;
    if !status.success() {
        anyhow::bail!(
            "the editor ({editor}) ended with {status}; nothing was published. Your text is kept in {}",
            file.display()
        );
    }
    Ok(())
}

/// `text` with the problem written as comment lines just inside the
/// front matter; the problem's line number is shifted to match.
fn with_note(text: &str, problem: Option<&DraftError>) -> String {
    let Some(problem) = problem else {
        return text.to_string();
    };
    let Some(rest) = text.strip_prefix("---\n") else {
        // No front matter to write into: say it above everything.
        return format!("{NOTE}{problem}\n{text}");
    };
    let lines = [
        format!("{}", shifted(problem, 2)),
        "fix it and save again; these two lines are taken out".to_string(),
    ];
    let mut out = String::from("---\n");
    for l in lines {
        out.push_str(NOTE);
        out.push_str(&l.replace('\n', " "));
        out.push('\n');
    }
    out.push_str(rest);
    out
}

/// `text` without the lines [`with_note`] added.
fn without_note(text: &str) -> String {
    text.split_inclusive('\n')
        .filter(|l| !l.starts_with(NOTE))
        .collect()
}

/// The same problem, its line moved down by `by` (for a line after the
/// first, where the note lines go).
fn shifted(problem: &DraftError, by: usize) -> DraftError {
    let move_line = |line: usize| if line >= 2 { line + by } else { line };
    match problem.clone() {
        DraftError::Yaml {
            line,
            column,
            message,
        } => DraftError::Yaml {
            line: move_line(line),
            column,
            message,
        },
        DraftError::Field {
            field,
            line,
            message,
        } => DraftError::Field {
            field,
            line: if line == 0 { 0 } else { move_line(line) },
            message,
        },
        DraftError::Identifier {
            kind,
            text,
            line,
            column,
        } => DraftError::Identifier {
            kind,
            text,
            line: move_line(line),
            column,
        },
        other => other,
    }
}

/// Asks `question` on the terminal; without one, refuses (scripts pass
/// `--yes`).
pub(crate) fn confirm(out: &mut dyn Write, question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(usage(
            "not published: there is no terminal to confirm on; pass --yes to publish without asking",
        ));
    }
    write!(out, "{question} [y/N] ")?;
    out.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_taken_out_again_and_its_line_matches_the_file_shown() {
        let text = "---\ntitle: A\nkind: nonsense\nsummary: S\npathways: [primary-care]\nsettings: [local-remand]\nnation: england\nreview_due: 2030-01-01\n---\nBody\n";
        let problem = draft::parse(text, &[]).expect_err("a bad kind");
        let shown = with_note(text, Some(&problem));
        assert_eq!(without_note(&shown), text);
        // The bad key is on line 5 of the file as shown.
        assert_eq!(shown.lines().nth(4), Some("kind: nonsense"));
        assert!(shown.contains("line 5"), "{shown}");
    }
}
