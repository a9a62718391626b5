//! A QI initiative's measures over time: each defined (name, definition,
//! unit, which way is better), its values added as aggregates by date, notes
//! at dates (PDSA cycles), and the initiative's IHI progress score and
//! stage. Each is a signed change to the item by its owning site that makes
//! no new version; the item's history shows them. Values are aggregates
//! (counts, rates, percentages), never a patient's: every text (key, name,
//! definition, unit, note) passes the identifier scan, here and on receipt.

use gatehouse_protocol::id::ItemId;
use gatehouse_protocol::item::{
    self, DataPoint, Item, MeasureDefinition, Note, Progress, validate_measures,
};
use gatehouse_protocol::vocab::{Kind, Status};

use super::refuse_identifiers;
use crate::error::{LibraryError, Result};
use crate::library::Library;

/// The rules an item's measures meet, on a local change and on receipt:
/// only a QI initiative carries them, definitions and values within
/// bounds, no patient identifier in any of their texts.
pub(crate) fn check(item: &Item) -> Result<()> {
    if (!item.measures.is_empty() || item.progress.is_some())
        && item.content.kind != Kind::QiInitiative
    {
        return Err(LibraryError::Lifecycle(
            "measures and a progress score are for QI initiatives only".into(),
        ));
    }
    validate_measures(&item.measures)?;
    let allowed = &item.allowed_identifiers;
    for m in &item.measures {
        let d = &m.definition;
        refuse_identifiers("measure", &d.key, allowed)?;
        refuse_identifiers("name", &d.name, allowed)?;
        refuse_identifiers("definition", &d.definition, allowed)?;
        refuse_identifiers("unit", &d.unit, allowed)?;
        for n in &m.notes {
            refuse_identifiers("notes", &n.text, allowed)?;
        }
    }
    Ok(())
}

impl Library {
    /// Makes one change to a QI initiative's measures with `write`, checks
    /// the item it leaves as a peer would, and signs it as `action`.
    fn change_measures(
        &mut self,
        id: &ItemId,
        action: &str,
        write: impl FnOnce(&mut gatehouse_protocol::automerge::AutoCommit) -> Result<()>,
    ) -> Result<()> {
        let (mut doc, current, salt) = self.doc_for_change(id)?;
        if current.content.kind != Kind::QiInitiative {
            return Err(LibraryError::Lifecycle(format!(
                "{} is a {}; measures and a progress score are for QI initiatives",
                current.content.title,
                current.content.kind.label().to_lowercase()
            )));
        }
        if matches!(
            current.content.status,
            Status::Superseded | Status::Withdrawn
        ) {
            return Err(LibraryError::Closed {
                id: *id,
                status: current.content.status,
            });
        }
        write(&mut doc)?;
        let after = item::read_item(&doc)?;
        check(&after)?;
        if after == current {
            return Err(LibraryError::NoChange(*id));
        }
        self.commit_change(*id, current.owner, salt, &mut doc, action)?;
        Ok(())
    }

    /// Defines a measure of a QI initiative, or changes its name,
    /// definition, unit or direction (its values stay).
    pub fn define_measure(&mut self, id: &ItemId, def: &MeasureDefinition) -> Result<()> {
        item::validate_measure(def)?;
        self.change_measures(id, "measure defined", |doc| {
            Ok(item::write_measure(doc, def)?)
        })
    }

    /// Adds values of a measure, one per date (a date given again takes
    /// the new value). Returns how many were given.
    pub fn record_points(&mut self, id: &ItemId, key: &str, points: &[DataPoint]) -> Result<usize> {
        if let Some(p) = points.iter().find(|p| !p.value.is_finite()) {
            return Err(LibraryError::Lifecycle(format!(
                "the value for {} is not a finite number",
                p.date
            )));
        }
        self.change_measures(id, "data added", |doc| {
            Ok(item::write_points(doc, key, points)?)
        })?;
        Ok(points.len())
    }

    /// Removes the value of a measure at `date`.
    pub fn remove_point(
        &mut self,
        id: &ItemId,
        key: &str,
        date: gatehouse_protocol::jiff::civil::Date,
    ) -> Result<()> {
        self.change_measures(id, "data removed", |doc| {
            if item::remove_point(doc, key, date)? {
                Ok(())
            } else {
                Err(LibraryError::Lifecycle(format!(
                    "{key} has no value for {date}"
                )))
            }
        })
    }

    /// Notes something on a measure's chart at a date (a PDSA cycle).
    pub fn note_measure(&mut self, id: &ItemId, key: &str, note: &Note) -> Result<()> {
        self.change_measures(id, "note added", |doc| {
            Ok(item::write_note(doc, key, note)?)
        })
    }

    /// Sets a QI initiative's IHI progress score and stage.
    pub fn set_progress(&mut self, id: &ItemId, progress: Progress) -> Result<()> {
        if !progress.score.is_valid() {
            return Err(LibraryError::Lifecycle(
                "the IHI progress score goes from 0.5 to 5.0 in steps of 0.5".into(),
            ));
        }
        self.change_measures(id, "progress", |doc| {
            Ok(item::write_progress(doc, &progress)?)
        })
    }
}
