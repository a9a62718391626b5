//! Drafts: items being written, kept on this node only.
//!
//! A draft is the author's file, as they wrote it, in `HOME/drafts/NAME.md`
//! (the directory 0700, each file 0600). It is never signed, never stored
//! in the library and never sent to a peer or put in a bundle: the network
//! sees an item only once it is published. A draft need not be complete;
//! the list says whether each one is ready to publish, and if not, what
//! the checks found first.
//!
//! Each save is written whole or not at all (a temporary file, synced,
//! renamed), so a crash leaves either the old draft or the new one.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::authoring::draft::{self, MAX_DRAFT_BYTES};
use crate::home::Home;

/// The longest draft name.
pub const MAX_NAME_CHARS: usize = 60;

/// A problem with a draft.
#[derive(Debug, Error)]
pub enum DraftsError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path at fault.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A name that is not lower-case letters, digits and dashes.
    #[error(
        "{0:?} is not a draft name: use lower-case letters, digits and dashes, at most {MAX_NAME_CHARS}"
    )]
    BadName(String),
    /// No draft of that name.
    #[error("there is no draft called {0:?} on this node (gatehouse draft list)")]
    Unknown(String),
    /// Over the size of an item file.
    #[error("the draft is {0} bytes, over the limit of {MAX_DRAFT_BYTES}")]
    TooLarge(usize),
}

/// One draft, as `draft list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DraftEntry {
    /// Its name (the file is `NAME.md`).
    pub name: String,
    /// Its title, once it has one that parses.
    pub title: Option<String>,
    /// When it was last saved (ms since the epoch).
    pub saved_ms: u64,
    /// The first problem the checks find; `None`: ready to publish.
    pub problem: Option<String>,
}

/// The drafts of one data directory.
#[derive(Debug, Clone)]
pub struct Drafts {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DraftsError + '_ {
    move |source| DraftsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A draft name made from `text` (a title or a file name): lower case,
/// words joined by dashes, at most [`MAX_NAME_CHARS`].
pub fn name_from(text: &str) -> String {
    let mut name = String::new();
    for word in text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_ascii_lowercase();
        if name.len() + 1 + word.len() > MAX_NAME_CHARS {
            break;
        }
        if !name.is_empty() {
            name.push('-');
        }
        name.push_str(&word);
    }
    if name.is_empty() {
        "draft".to_string()
    } else {
        name
    }
}

/// The name a draft gets when none is given: from its title (read from the
/// `title:` line, so a draft that does not parse yet still has one), else
/// from `stem`, its file's name.
pub fn name_for(text: &str, stem: &str) -> String {
    let title = text
        .lines()
        .skip_while(|l| l.trim() == "---")
        .take_while(|l| l.trim() != "---")
        .find_map(|l| l.strip_prefix("title:"))
        .map(|t| t.trim().trim_matches(['"', '\'']))
        .filter(|t| !t.is_empty());
    name_from(title.unwrap_or(stem))
}

fn check_name(name: &str) -> Result<(), DraftsError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(DraftsError::BadName(name.to_string()))
    }
}

impl Drafts {
    /// The drafts kept in `home`.
    pub fn of(home: &Home) -> Self {
        Self {
            dir: home.root().join("drafts"),
        }
    }

    /// Where the draft `name` is kept.
    pub fn path(&self, name: &str) -> Result<PathBuf, DraftsError> {
        check_name(name)?;
        Ok(self.dir.join(format!("{name}.md")))
    }

    /// Keeps `text` as the draft `name`, replacing an earlier save of it.
    pub fn save(&self, name: &str, text: &str) -> Result<PathBuf, DraftsError> {
        let path = self.path(name)?;
        if text.len() > MAX_DRAFT_BYTES {
            return Err(DraftsError::TooLarge(text.len()));
        }
        fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
                .map_err(io(&self.dir))?;
        }
        let tmp = self.dir.join(format!(".{name}.partial"));
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io(&tmp))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok(path)
    }

    /// The text of the draft `name`.
    pub fn read(&self, name: &str) -> Result<String, DraftsError> {
        let path = self.path(name)?;
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(DraftsError::Unknown(name.to_string()))
            }
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Removes the draft `name`.
    pub fn remove(&self, name: &str) -> Result<(), DraftsError> {
        let path = self.path(name)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(DraftsError::Unknown(name.to_string()))
            }
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Every draft, by name, each checked as a publish would check it.
    pub fn list(&self) -> Result<Vec<DraftEntry>, DraftsError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let file = entry.file_name();
            let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".md")) else {
                continue;
            };
            if check_name(name).is_err() {
                continue;
            }
            let saved_ms = entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let (title, problem) = match self.read(name) {
                Ok(text) => match draft::parse(&text, &[]) {
                    Ok(content) => (Some(content.title), None),
                    Err(e) => (None, Some(e.to_string())),
                },
                Err(e) => (None, Some(e.to_string())),
            };
            out.push(DraftEntry {
                name: name.to_string(),
                title,
                saved_ms,
                problem,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_from_titles_and_checked() {
        assert_eq!(
            name_from("Take-home naloxone on release"),
            "take-home-naloxone-on-release"
        );
        assert_eq!(name_from("wound-care.md"), "wound-care-md");
        assert_eq!(name_from("!!!"), "draft");
        assert_eq!(
            name_for("---\ntitle: \"Wound care\"\nkind: x\n---\n", "w"),
            "wound-care"
        );
        assert_eq!(name_for("---\ntitle:\n---\n", "wound"), "wound");
        assert!(name_from(&"word ".repeat(40)).len() <= MAX_NAME_CHARS);
        for bad in ["", "../keys/admin", "Upper", "-x", "a/b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_draft_is_saved_whole_listed_with_its_state_and_removed() {
        let dir = tempfile::tempdir().expect("dir");
        let drafts = Drafts::of(&Home::new(dir.path()));
        assert!(drafts.list().expect("list").is_empty());
        drafts.save("wound-care", "---\ntitle: x\n").expect("save");
        let listed = drafts.list().expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "wound-care");
        assert!(listed[0].problem.is_some(), "incomplete: {listed:?}");
        drafts.save("wound-care", "second").expect("save again");
        assert_eq!(drafts.read("wound-care").expect("read"), "second");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&dir.path().join("drafts")), 0o700);
            assert_eq!(mode(&drafts.path("wound-care").expect("path")), 0o600);
        }
        drafts.remove("wound-care").expect("remove");
        assert!(matches!(
            drafts.read("wound-care"),
            Err(DraftsError::Unknown(_))
        ));
    }
}
