//! Adopting another establishment's item: a new item owned here, holding a
//! copy of the source's current version and, in its signed first change,
//! where it came from (source item, version, envelope). When the source is
//! revised, [`Library::source_change`] merges what changed there since the
//! version taken into this site's copy (the source's edits, this site's
//! own edits kept; both changing the same lines is a conflict to resolve by
//! hand), and [`Library::take_change`] signs the result as a new local
//! version that records the source's version now taken.

use gatehouse_protocol::id::ItemId;
use gatehouse_protocol::item::{self, Adoption, FieldError, ItemContent};
use gatehouse_protocol::jiff::ToSpan;
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::vocab::Status;
use serde::{Deserialize, Serialize};

use super::template::DEFAULT_REVIEW_YEARS;
use super::{Draft, check_identifiers};
use crate::error::{LibraryError, Result};
use crate::library::Library;
use crate::query::{ItemView, ReadView};

/// Conflict markers written into a merged body where the source and this
/// site changed the same lines; a body holding one is not signed.
pub const CONFLICT_MARKERS: [&str; 3] = ["<<<<<<< ", "=======", ">>>>>>> "];

/// What taking the source's change would make of this site's copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceChange {
    /// This site's copy as it stands.
    pub mine: ItemView,
    /// The source's version this site took last.
    pub taken: ItemView,
    /// The source as it stands.
    pub source: ItemView,
    /// The copy with the source's changes since `taken` merged in.
    pub merged: ItemContent,
    /// Places in the body where both changed the same lines (marked in
    /// `merged.body`); none means the merge can be signed as it is.
    pub conflicts: usize,
}

/// The copy an adopting site starts from: the source's content, without
/// the source site's approval and dates, published, for review
/// [`DEFAULT_REVIEW_YEARS`] from `today`.
pub fn adoptable_copy(source: &ItemContent, today: Date) -> ItemContent {
    let mut c = source.clone();
    c.approved_by = None;
    c.approved_on = None;
    c.effective_from = None;
    c.status = Status::Published;
    // The source site's committee, assessment and notes are its own.
    c.front_sheet.ratifying_committee = None;
    c.front_sheet.equality_impact = None;
    c.front_sheet.equality_impact_on = None;
    c.front_sheet.consultation = None;
    c.front_sheet.version_notes = None;
    c.review_due = today
        .checked_add(DEFAULT_REVIEW_YEARS.years())
        .unwrap_or(source.review_due);
    c
}

/// Merges the source's changes from `base` to `theirs` into `mine`: a
/// field the source changed takes the source's value, others keep this
/// site's; this site's approval, dates and status are its own. The body is
/// merged line by line; the count is of places both changed.
pub fn merge(base: &ItemContent, mine: &ItemContent, theirs: &ItemContent) -> (ItemContent, usize) {
    let mut out = mine.clone();
    macro_rules! take_if_changed {
        ($($field:ident),+) => {
            $(if base.$field != theirs.$field {
                out.$field = theirs.$field.clone();
            })+
        };
    }
    take_if_changed!(title, kind, summary, pathways, settings, nations, tags, qi);
    let (body, conflicts) = match diffy::merge(&base.body, &mine.body, &theirs.body) {
        Ok(body) => (body, 0),
        Err(marked) => {
            let n = marked
                .lines()
                .filter(|l| l.starts_with(CONFLICT_MARKERS[0]))
                .count();
            (marked, n.max(1))
        }
    };
    out.body = body;
    (out, conflicts)
}

impl Library {
    /// Adopts `source` (another establishment's item) for this
    /// establishment: a new item holding `content` (by default
    /// [`adoptable_copy`] of the source's current version) and where it
    /// came from. Returns the new item's id.
    pub fn adopt(
        &mut self,
        source: &ItemId,
        content: Option<&ItemContent>,
        allowed: &[String],
    ) -> Result<ItemId> {
        let key = self.signing_key()?;
        self.adopt_as(&key, source, content, allowed)
    }

    /// [`Library::adopt`] signed with `key`: a site lead's own, from the
    /// item's web page.
    pub fn adopt_as(
        &mut self,
        key: &gatehouse_protocol::key::SecretKey,
        source: &ItemId,
        content: Option<&ItemContent>,
        allowed: &[String],
    ) -> Result<ItemId> {
        let view = self.get(source, None)?;
        if view.item.owner == self.config.establishment {
            return Err(LibraryError::Adopt(format!(
                "item {source} is already this establishment's; revise it instead"
            )));
        }
        if matches!(
            view.item.content.status,
            Status::Superseded | Status::Withdrawn
        ) {
            let next = view
                .item
                .superseded_by
                .map(|n| format!("; adopt its replacement, {n}"))
                .unwrap_or_default();
            return Err(LibraryError::Adopt(format!(
                "item {source} is {}{next}",
                view.item.content.status
            )));
        }
        let adoption = self.adoption_of(&view)?;
        let today = self.today();
        let copy = adoptable_copy(&view.item.content, today);
        let content = content.unwrap_or(&copy);
        // What the source's author reviewed and allowed comes with the text.
        let mut allowed = allowed.to_vec();
        allowed.extend(view.item.allowed_identifiers.iter().cloned());
        let allowed = allowed.as_slice();
        content.validate()?;
        check_identifiers(content, allowed)?;
        let salt = self.ambient.random()?;
        self.publish_draft_as(
            key,
            Draft {
                content,
                allowed,
                adoption: Some(&adoption),
                attachments: &view.item.attachments,
            },
            salt,
            "adopt",
        )
    }

    /// See [`ReadView::source_change`].
    pub fn source_change(&self, mine: &ItemId) -> Result<SourceChange> {
        self.read_view().source_change(mine)
    }

    /// Signs `content` as a new version of `mine` that takes the source's
    /// version `source_version` (from [`Library::source_change`]: its
    /// `merged`, or that as the site lead edited it). Refused while the body
    /// holds conflict markers, or if the source has moved on since.
    /// Returns the new version number.
    pub fn take_change(
        &mut self,
        mine: &ItemId,
        content: &ItemContent,
        allowed: &[String],
        source_version: u64,
    ) -> Result<u64> {
        let view = self.get(mine, None)?;
        let Some(adoption) = view.item.adoption else {
            return Err(LibraryError::Adopt(format!(
                "item {mine} was not adopted from another site's item"
            )));
        };
        if let Some(line) = content
            .body
            .lines()
            .position(|l| CONFLICT_MARKERS.iter().any(|m| l.starts_with(m)))
        {
            return Err(LibraryError::Invalid(FieldError {
                field: "body",
                reason: format!(
                    "line {} of the body is a conflict marker; keep the lines you want and remove the markers",
                    line + 1
                ),
            }));
        }
        let source = self.get(&adoption.from, None)?;
        if source.item.version != source_version {
            return Err(LibraryError::Adopt(format!(
                "the source {} is now at version {}, not {source_version}; look at the change again",
                adoption.from, source.item.version
            )));
        }
        let taken = self.adoption_of(&source)?;
        self.revise_as(
            mine,
            content,
            allowed,
            None,
            Some(&taken),
            "take source change",
        )
    }

    /// The adoption record for taking `source` as it stands: its version
    /// and the envelope of its change that made that version.
    fn adoption_of(&self, source: &ItemView) -> Result<Adoption> {
        let envelope = self
            .history(&source.item.id)?
            .iter()
            .rev()
            .find(|e| e.version == source.item.version)
            .map(|e| e.envelope)
            .ok_or_else(|| LibraryError::UnknownItem(source.item.id.to_hex()))?;
        Ok(Adoption {
            from: source.item.id,
            version: source.item.version,
            envelope,
        })
    }
}

impl ReadView {
    /// What taking the source's change into `mine` (an item this site
    /// adopted) would give; an error when the source has not changed since
    /// the version taken.
    pub fn source_change(&self, mine: &ItemId) -> Result<SourceChange> {
        let mine = self.get(mine, None)?;
        let Some(adoption) = mine.item.adoption else {
            return Err(LibraryError::Adopt(format!(
                "item {} was not adopted from another site's item",
                mine.item.id
            )));
        };
        let source = self.get(&adoption.from, None)?;
        if source.item.version <= adoption.version {
            return Err(LibraryError::Adopt(format!(
                "item {} already holds version {} of its source, the latest",
                mine.item.id, adoption.version
            )));
        }
        let taken = self.get(&adoption.from, Some(adoption.version))?;
        let (merged, conflicts) = merge(
            &taken.item.content,
            &mine.item.content,
            &source.item.content,
        );
        Ok(SourceChange {
            mine,
            taken,
            source,
            merged,
            conflicts,
        })
    }
}

/// Writes the adoption into a document, for the authoring code.
pub(super) fn record(
    doc: &mut gatehouse_protocol::automerge::AutoCommit,
    adoption: Option<&Adoption>,
) -> Result<()> {
    if let Some(a) = adoption {
        item::write_adoption(doc, a)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_protocol::vocab::Nation;

    fn content(body: &str) -> ItemContent {
        let mut c = crate::sample::synthetic_content(1);
        c.body = body.to_string();
        c
    }

    #[test]
    fn the_sources_edits_are_merged_and_this_sites_kept() {
        let base = content("# Purpose\n\nOne.\n\nTwo.\n\nThree.\n");
        let mut mine = base.clone();
        mine.body = "# Purpose\n\nOne, as we do it here.\n\nTwo.\n\nThree.\n".into();
        mine.approved_by = Some("Our committee".into());
        let mut theirs = base.clone();
        theirs.body = "# Purpose\n\nOne.\n\nTwo.\n\nThree, revised.\n".into();
        theirs.title = "A new title".into();
        theirs.nations = vec![Nation::England, Nation::Wales];
        theirs.approved_by = Some("Their committee".into());
        let (merged, conflicts) = merge(&base, &mine, &theirs);
        assert_eq!(conflicts, 0);
        assert_eq!(
            merged.body,
            "# Purpose\n\nOne, as we do it here.\n\nTwo.\n\nThree, revised.\n"
        );
        assert_eq!(merged.title, "A new title");
        assert_eq!(merged.nations, theirs.nations);
        assert_eq!(merged.approved_by.as_deref(), Some("Our committee"));
        assert_eq!(merged.summary, mine.summary);
    }

    #[test]
    fn both_changing_a_line_is_a_marked_conflict() {
        let base = content("A.\n\nB.\n");
        let mine = content("A, ours.\n\nB.\n");
        let theirs = content("A, theirs.\n\nB.\n");
        let (merged, conflicts) = merge(&base, &mine, &theirs);
        assert_eq!(conflicts, 1);
        assert!(merged.body.contains("A, ours.") && merged.body.contains("A, theirs."));
        assert!(merged.body.lines().any(|l| l.starts_with("<<<<<<< ")));
    }
}
