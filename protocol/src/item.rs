//! Library items: their schema, how it is laid out in an Automerge document,
//! and the checks every version must pass.
//!
//! One Automerge document per item. [`ItemContent`] is what a site lead writes
//! (a front-matter file's worth); [`Item`] is the materialised state read back
//! from the document, including what only the history decides (version,
//! authors, status). Reading never fails on a document someone else wrote: a
//! missing or mistyped field reads as empty, because a peer's document is
//! input, not a promise.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, AutomergeError, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::id::{EnvelopeId, EstablishmentId, ItemId};
use crate::key::PublicKey;
use crate::vocab::{Kind, Nation, Pathway, Setting, Status};

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest summary, in characters.
pub const MAX_SUMMARY_CHARS: usize = 2_000;
/// Largest Markdown body, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Most tags on one item.
pub const MAX_TAGS: usize = 32;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 48;
/// Longest short text field (approver, aim, one measure, one PDSA cycle), in characters.
pub const MAX_FIELD_CHARS: usize = 4_000;
/// Most entries in a list field (measures, PDSA cycles).
pub const MAX_LIST_ENTRIES: usize = 64;

/// The part of a quality-improvement initiative other kinds do not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct QiDetails {
    /// What the initiative set out to achieve, by when.
    pub aim: String,
    /// Outcome, process and balancing measures.
    pub measures: Vec<String>,
    /// The Plan-Do-Study-Act cycles run.
    pub pdsa_cycles: Vec<String>,
    /// What happened.
    pub outcomes: String,
}

/// Whether an equality impact assessment was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EqualityImpact {
    /// Done, on the date given.
    Done,
    /// Judged not needed.
    NotNeeded,
}

impl EqualityImpact {
    /// The slug in front matter and documents.
    pub fn slug(self) -> &'static str {
        match self {
            EqualityImpact::Done => "done",
            EqualityImpact::NotNeeded => "not-needed",
        }
    }
}

impl std::str::FromStr for EqualityImpact {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace(['_', ' '], "-")
            .as_str()
        {
            "done" => Ok(EqualityImpact::Done),
            "not-needed" => Ok(EqualityImpact::NotNeeded),
            other => Err(format!("{other:?} is not done or not-needed")),
        }
    }
}

/// A document's front sheet: what inspectors look for beside approval and
/// review. Every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FrontSheet {
    /// The role that owns the document, e.g. "Head of Healthcare".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_owner: Option<String>,
    /// The committee that ratified it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratifying_committee: Option<String>,
    /// Whether an equality impact assessment was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equality_impact: Option<EqualityImpact>,
    /// When it was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equality_impact_on: Option<Date>,
    /// Who was consulted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consultation: Option<String>,
    /// Who it is distributed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<String>,
    /// What this version changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_notes: Option<String>,
}

impl FrontSheet {
    /// The free-text fields, named as in front matter.
    pub fn texts(&self) -> Vec<(&'static str, &str)> {
        [
            ("document_owner", &self.document_owner),
            ("ratifying_committee", &self.ratifying_committee),
            ("consultation", &self.consultation),
            ("distribution", &self.distribution),
            ("version_notes", &self.version_notes),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }
}

/// Everything a site lead writes for one version of an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemContent {
    /// Title.
    pub title: String,
    /// Kind of document.
    pub kind: Kind,
    /// One or two sentences.
    pub summary: String,
    /// The Markdown body (left out of JSON when empty, as in listings).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// Care pathways (at least one).
    pub pathways: Vec<Pathway>,
    /// Setting types it applies to (at least one).
    pub settings: Vec<Setting>,
    /// The nations whose guidance it follows (one or several; all four
    /// for the whole UK), sorted. Reads `nation` (one) as written before
    /// items named several.
    #[serde(alias = "nation", deserialize_with = "one_or_many_nations")]
    pub nations: Vec<Nation>,
    /// Free tags, lowercase.
    pub tags: Vec<String>,
    /// Who approved it (a committee or role).
    pub approved_by: Option<String>,
    /// When it was approved.
    pub approved_on: Option<Date>,
    /// When it takes effect.
    pub effective_from: Option<Date>,
    /// When it must be reviewed.
    pub review_due: Date,
    /// Draft or published (the other statuses come from `supersede` and `withdraw`).
    pub status: Status,
    /// QI details; present exactly when `kind` is a QI initiative.
    pub qi: Option<QiDetails>,
    /// The front sheet.
    #[serde(flatten, default)]
    pub front_sheet: FrontSheet,
}

fn one_or_many_nations<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Nation>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Nation),
        Many(Vec<Nation>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(n) => vec![n],
        OneOrMany::Many(v) => v,
    })
}

/// Where an adopted item came from: the other establishment's item and the
/// version of it the adopting site holds, with the envelope that made that
/// version. Moved on each time the adopting site takes the source's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adoption {
    /// The source item.
    pub from: ItemId,
    /// The source's version taken.
    pub version: u64,
    /// The envelope of the source's change that made that version.
    pub envelope: EnvelopeId,
}

/// Most measures one QI initiative carries.
pub const MAX_MEASURES: usize = 32;
/// Most data points one measure holds.
pub const MAX_POINTS: usize = 2_000;
/// Most notes (PDSA cycles and other annotations) on one measure.
pub const MAX_NOTES: usize = 200;
/// Longest measure key, in characters.
pub const MAX_MEASURE_KEY_CHARS: usize = 40;
/// Longest measure name, unit or note, in characters.
pub const MAX_MEASURE_TEXT_CHARS: usize = 200;

/// Which way a measure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Improvement {
    /// A higher value is better.
    Higher,
    /// A lower value is better.
    Lower,
}

impl Improvement {
    /// The slug in documents and on the command line.
    pub fn slug(self) -> &'static str {
        match self {
            Improvement::Higher => "higher",
            Improvement::Lower => "lower",
        }
    }
}

impl std::str::FromStr for Improvement {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "higher" | "up" => Ok(Improvement::Higher),
            "lower" | "down" => Ok(Improvement::Lower),
            other => Err(format!("{other:?}: say higher or lower")),
        }
    }
}

/// One value of a measure: an aggregate for a period (a count, a rate, a
/// percentage), never a patient's.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct DataPoint {
    /// The date the value is for (the end of its period).
    pub date: Date,
    /// The value.
    pub value: f64,
}

impl PartialEq for DataPoint {
    fn eq(&self, other: &Self) -> bool {
        self.date == other.date && self.value.to_bits() == other.value.to_bits()
    }
}

impl Eq for DataPoint {}

/// A note on a measure's chart at a date: a PDSA cycle begun, a change made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// The date.
    pub date: Date,
    /// What happened.
    pub text: String,
}

/// What a measure is: its name, definition, unit and which way is better.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasureDefinition {
    /// A short key, unique in the item (lowercase letters, digits, `-`).
    pub key: String,
    /// Its name.
    pub name: String,
    /// How it is counted.
    pub definition: String,
    /// The unit, e.g. "%" or "patients".
    pub unit: String,
    /// Which way is better.
    pub improvement: Improvement,
    /// The end of the baseline: the chart's mean and limits come from the
    /// values up to this date, and every value is judged against them;
    /// from every value when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_until: Option<Date>,
}

/// A measure of a QI initiative with its data over time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measure {
    /// What it is.
    #[serde(flatten)]
    pub definition: MeasureDefinition,
    /// Its values, oldest first, one per date.
    pub points: Vec<DataPoint>,
    /// Notes at dates, oldest first.
    pub notes: Vec<Note>,
}

/// The IHI progress score of a QI initiative: 0.5 to 5.0 in steps of 0.5,
/// kept in tenths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProgressScore(pub u8);

impl ProgressScore {
    /// Reads "3.5": 0.5 to 5.0 in steps of 0.5.
    pub fn parse(s: &str) -> Result<Self, String> {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a number from 0.5 to 5.0"))?;
        let tenths = (v * 10.0).round();
        if !(5.0..=50.0).contains(&tenths)
            || !(tenths as u8).is_multiple_of(5)
            || (v * 10.0 - tenths).abs() > 1e-9
        {
            return Err(format!(
                "{s:?}: the IHI progress score goes from 0.5 to 5.0 in steps of 0.5"
            ));
        }
        Ok(ProgressScore(tenths as u8))
    }

    /// Whether it is one of the scale's scores.
    pub fn is_valid(self) -> bool {
        (5..=50).contains(&self.0) && self.0.is_multiple_of(5)
    }

    /// "3.5".
    pub fn text(self) -> String {
        format!("{}.{}", self.0 / 10, self.0 % 10)
    }

    /// What the score means on the IHI scale.
    pub fn meaning(self) -> &'static str {
        match self.0 {
            5 => "Intent to participate",
            10 => "Charter and team established",
            15 => "Planning for the project has begun",
            20 => "Activity, but no changes",
            25 => "Changes tested, but no improvement",
            30 => "Modest improvement",
            35 => "Improvement",
            40 => "Significant improvement",
            45 => "Sustainable improvement",
            50 => "Outstanding sustainable results",
            _ => "Not on the scale",
        }
    }
}

/// Where a QI initiative is, with its IHI progress score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The score.
    pub score: ProgressScore,
    /// The stage.
    pub stage: QiStage,
}

/// The stage of a QI initiative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QiStage {
    /// Understanding the problem, planning.
    Planning,
    /// Testing changes in PDSA cycles.
    Testing,
    /// Putting tested changes into practice.
    Implementing,
    /// Spreading them to other teams or sites.
    Spreading,
    /// Holding the gains.
    Sustaining,
    /// Finished.
    Closed,
}

impl QiStage {
    /// Every stage, in order.
    pub const ALL: &'static [QiStage] = &[
        QiStage::Planning,
        QiStage::Testing,
        QiStage::Implementing,
        QiStage::Spreading,
        QiStage::Sustaining,
        QiStage::Closed,
    ];

    /// The slug.
    pub fn slug(self) -> &'static str {
        match self {
            QiStage::Planning => "planning",
            QiStage::Testing => "testing",
            QiStage::Implementing => "implementing",
            QiStage::Spreading => "spreading",
            QiStage::Sustaining => "sustaining",
            QiStage::Closed => "closed",
        }
    }

    /// What people read.
    pub fn label(self) -> &'static str {
        match self {
            QiStage::Planning => "Planning",
            QiStage::Testing => "Testing changes",
            QiStage::Implementing => "Implementing",
            QiStage::Spreading => "Spreading",
            QiStage::Sustaining => "Sustaining",
            QiStage::Closed => "Closed",
        }
    }
}

impl std::str::FromStr for QiStage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        QiStage::ALL
            .iter()
            .copied()
            .find(|q| q.slug() == wanted)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a stage; expected one of: {}",
                    QiStage::ALL
                        .iter()
                        .map(|q| q.slug())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

/// Checks a measure's definition.
pub fn validate_measure(def: &MeasureDefinition) -> Result<(), FieldError> {
    if def.key.is_empty()
        || def.key.chars().count() > MAX_MEASURE_KEY_CHARS
        || !def
            .key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(field_err(
            "measure",
            format!(
                "{:?}: a measure's key is 1 to {MAX_MEASURE_KEY_CHARS} lowercase letters, digits and hyphens",
                def.key
            ),
        ));
    }
    if def.name.trim().is_empty() {
        return Err(field_err("name", "must not be empty"));
    }
    check_len("name", &def.name, MAX_MEASURE_TEXT_CHARS)?;
    check_len("unit", &def.unit, MAX_MEASURE_TEXT_CHARS)?;
    check_len("definition", &def.definition, MAX_FIELD_CHARS)?;
    Ok(())
}

/// Checks an item's measures as read back: definitions, finite values,
/// bounded sizes.
pub fn validate_measures(measures: &[Measure]) -> Result<(), FieldError> {
    if measures.len() > MAX_MEASURES {
        return Err(field_err(
            "measures",
            format!("over the limit of {MAX_MEASURES} measures"),
        ));
    }
    for m in measures {
        validate_measure(&m.definition)?;
        if m.points.len() > MAX_POINTS {
            return Err(field_err(
                "points",
                format!("over the limit of {MAX_POINTS} data points"),
            ));
        }
        if let Some(p) = m.points.iter().find(|p| !p.value.is_finite()) {
            return Err(field_err(
                "points",
                format!("the value for {} is not a finite number", p.date),
            ));
        }
        if m.notes.len() > MAX_NOTES {
            return Err(field_err(
                "notes",
                format!("over the limit of {MAX_NOTES} notes"),
            ));
        }
        for n in &m.notes {
            if n.text.trim().is_empty() {
                return Err(field_err("notes", "a note is empty"));
            }
            check_len("notes", &n.text, MAX_MEASURE_TEXT_CHARS)?;
        }
    }
    Ok(())
}

/// A field of an item that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// The front-matter key at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn field_err(field: &'static str, reason: impl Into<String>) -> FieldError {
    FieldError {
        field,
        reason: reason.into(),
    }
}

fn check_len(field: &'static str, s: &str, max: usize) -> Result<(), FieldError> {
    let n = s.chars().count();
    if n > max {
        return Err(field_err(
            field,
            format!("{n} characters, over the limit of {max}"),
        ));
    }
    Ok(())
}

impl ItemContent {
    /// Checks the rules a version must meet before it is signed.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.title.trim().is_empty() {
            return Err(field_err("title", "must not be empty"));
        }
        check_len("title", &self.title, MAX_TITLE_CHARS)?;
        if self.summary.trim().is_empty() {
            return Err(field_err("summary", "must not be empty"));
        }
        check_len("summary", &self.summary, MAX_SUMMARY_CHARS)?;
        if self.body.len() > MAX_BODY_BYTES {
            return Err(field_err(
                "body",
                format!(
                    "{} bytes, over the limit of {MAX_BODY_BYTES}",
                    self.body.len()
                ),
            ));
        }
        if self.pathways.is_empty() {
            return Err(field_err("pathways", "name at least one care pathway"));
        }
        if self.settings.is_empty() {
            return Err(field_err("settings", "name at least one setting type"));
        }
        if self.nations.is_empty() {
            return Err(field_err("nation", "name at least one nation, or uk"));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(field_err(
                "tags",
                format!("{} tags, over the limit of {MAX_TAGS}", self.tags.len()),
            ));
        }
        for tag in &self.tags {
            if tag.trim().is_empty() {
                return Err(field_err("tags", "a tag is empty"));
            }
            check_len("tags", tag, MAX_TAG_CHARS)?;
        }
        if let Some(a) = &self.approved_by {
            check_len("approved_by", a, MAX_FIELD_CHARS)?;
        }
        for (field, text) in self.front_sheet.texts() {
            check_len(field, text, MAX_FIELD_CHARS)?;
        }
        match (
            self.front_sheet.equality_impact,
            self.front_sheet.equality_impact_on,
        ) {
            (None, Some(_)) => {
                return Err(field_err(
                    "equality_impact",
                    "a date is given without saying done or not-needed",
                ));
            }
            (Some(EqualityImpact::Done), None) => {
                return Err(field_err(
                    "equality_impact",
                    "say when it was done: done YYYY-MM-DD",
                ));
            }
            _ => {}
        }
        if let (Some(approved), Some(effective)) = (self.approved_on, self.effective_from)
            && approved > effective
        {
            return Err(field_err(
                "approved_on",
                format!("{approved} is after effective_from {effective}"),
            ));
        }
        if let Some(effective) = self.effective_from
            && self.review_due <= effective
        {
            return Err(field_err(
                "review_due",
                format!(
                    "{} is not after effective_from {effective}",
                    self.review_due
                ),
            ));
        }
        if !matches!(
            self.status,
            Status::Draft | Status::Submitted | Status::Published
        ) {
            return Err(field_err(
                "status",
                "a version is draft, submitted or published; use supersede or withdraw for the others",
            ));
        }
        match (&self.qi, self.kind) {
            (None, Kind::QiInitiative) => {
                return Err(field_err(
                    "aim",
                    "a QI initiative needs aim, measures, pdsa_cycles and outcomes",
                ));
            }
            (Some(_), k) if k != Kind::QiInitiative => {
                return Err(field_err(
                    "aim",
                    "aim, measures, pdsa_cycles and outcomes are only for kind qi-initiative",
                ));
            }
            (Some(qi), _) => {
                if qi.aim.trim().is_empty() {
                    return Err(field_err("aim", "must not be empty"));
                }
                check_len("aim", &qi.aim, MAX_FIELD_CHARS)?;
                check_len("outcomes", &qi.outcomes, MAX_FIELD_CHARS)?;
                for (field, list) in [("measures", &qi.measures), ("pdsa_cycles", &qi.pdsa_cycles)]
                {
                    if list.is_empty() {
                        return Err(field_err(field, "name at least one"));
                    }
                    if list.len() > MAX_LIST_ENTRIES {
                        return Err(field_err(
                            field,
                            format!("over the limit of {MAX_LIST_ENTRIES} entries"),
                        ));
                    }
                    for entry in list {
                        check_len(field, entry, MAX_FIELD_CHARS)?;
                    }
                }
            }
            (None, _) => {}
        }
        Ok(())
    }
}

/// The materialised state of an item, as read from its document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Item id.
    pub id: ItemId,
    /// The owning establishment.
    pub owner: EstablishmentId,
    /// Version number: how many versions have been published (concurrent
    /// revisions each count).
    pub version: u64,
    /// The content of the current version (its `status` is the item's status).
    #[serde(flatten)]
    pub content: ItemContent,
    /// Keys of everyone who has signed a version.
    pub authors: Vec<PublicKey>,
    /// Items this one replaces.
    pub supersedes: Vec<ItemId>,
    /// The item that replaced this one.
    pub superseded_by: Option<ItemId>,
    /// Why it was withdrawn.
    pub withdrawn_reason: Option<String>,
    /// The item it was adopted from, at another establishment.
    pub adopted_from: Option<ItemId>,
    /// The source's version and envelope taken, when adopted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adoption: Option<Adoption>,
    /// A QI initiative's measures and their data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measures: Vec<Measure>,
    /// A QI initiative's progress score and stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The files the current version carries, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::attachment::Attachment>,
    /// Text the author reviewed and allowed although it looks like a
    /// patient identifier (`--allow-identifier`), recorded in the signed
    /// change so that every receiver accepts exactly that text and no
    /// other.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_identifiers: Vec<String>,
}

/// Errors while writing an item document.
#[derive(Debug, Error)]
pub enum DocError {
    /// Automerge refused an operation.
    #[error("document operation failed: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// The document does not hold an item.
    #[error("document holds no item: {0}")]
    NotAnItem(&'static str),
    /// A field is missing where the schema requires it, or cannot be read.
    #[error("item field {field} {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Records the text the author allowed although it looks like a patient
/// identifier: the list replaces the last one, so a version allows what its
/// author reviewed for it. The caller commits.
pub fn write_allowed_identifiers(doc: &mut AutoCommit, allowed: &[String]) -> Result<(), DocError> {
    let mut sorted = allowed.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.is_empty() {
        if doc.get(ROOT, "allowed_identifiers")?.is_some() {
            doc.delete(ROOT, "allowed_identifiers")?;
        }
        return Ok(());
    }
    put_list(doc, &ROOT, "allowed_identifiers", &sorted)
}

/// The document schema version written to every item.
pub const SCHEMA_VERSION: i64 = 1;

/// Writes the identity of a new item into an empty document.
pub fn init_doc(doc: &mut AutoCommit, id: ItemId, owner: &EstablishmentId) -> Result<(), DocError> {
    doc.put(ROOT, "schema", SCHEMA_VERSION)?;
    doc.put(ROOT, "id", id.to_hex())?;
    doc.put(ROOT, "owner", owner.to_hex())?;
    doc.put(ROOT, "version", ScalarValue::counter(0))?;
    doc.put_object(ROOT, "body", ObjType::Text)?;
    doc.put_object(ROOT, "authors", ObjType::Map)?;
    doc.put_object(ROOT, "supersedes", ObjType::Map)?;
    Ok(())
}

fn put_opt(doc: &mut AutoCommit, key: &str, v: Option<String>) -> Result<(), DocError> {
    match v {
        Some(v) => doc.put(ROOT, key, v)?,
        None => {
            if doc.get(ROOT, key)?.is_some() {
                doc.delete(ROOT, key)?;
            }
        }
    }
    Ok(())
}

fn put_list(
    doc: &mut AutoCommit,
    parent: &ObjId,
    key: &str,
    values: &[String],
) -> Result<(), DocError> {
    // Replace the list only when it differs, so an unchanged field adds no
    // operations and does not conflict with a concurrent edit.
    if let Some((Value::Object(ObjType::List), obj)) = doc.get(parent, key)?
        && text_list(doc, &obj) == values
    {
        return Ok(());
    }
    let list = doc.put_object(parent, key, ObjType::List)?;
    for (i, v) in values.iter().enumerate() {
        doc.insert(&list, i, v.as_str())?;
    }
    Ok(())
}

fn put_str_if_changed(
    doc: &mut AutoCommit,
    parent: &ObjId,
    key: &str,
    v: &str,
) -> Result<(), DocError> {
    if read_str(doc, parent, key).as_deref() != Some(v) {
        doc.put(parent, key, v)?;
    }
    Ok(())
}

/// Writes one version's content and counts it as a new version by `author`.
/// The caller commits; the document must already hold an item.
pub fn write_version(
    doc: &mut AutoCommit,
    content: &ItemContent,
    author: &PublicKey,
) -> Result<(), DocError> {
    let body = match doc.get(ROOT, "body")? {
        Some((Value::Object(ObjType::Text), obj)) => obj,
        _ => return Err(DocError::NotAnItem("no body text")),
    };
    put_str_if_changed(doc, &ROOT, "title", &content.title)?;
    put_str_if_changed(doc, &ROOT, "kind", content.kind.slug())?;
    put_str_if_changed(doc, &ROOT, "summary", &content.summary)?;
    doc.update_text(&body, &content.body)?;
    let slugs = |v: &[&'static str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    put_list(
        doc,
        &ROOT,
        "pathways",
        &slugs(
            &content
                .pathways
                .iter()
                .map(|p| p.slug())
                .collect::<Vec<_>>(),
        ),
    )?;
    put_list(
        doc,
        &ROOT,
        "settings",
        &slugs(
            &content
                .settings
                .iter()
                .map(|p| p.slug())
                .collect::<Vec<_>>(),
        ),
    )?;
    let mut nations = content.nations.clone();
    nations.sort();
    nations.dedup();
    put_list(
        doc,
        &ROOT,
        "nations",
        &slugs(&nations.iter().map(|n| n.slug()).collect::<Vec<_>>()),
    )?;
    // Nodes that read one nation read the first.
    if let Some(first) = nations.first() {
        put_str_if_changed(doc, &ROOT, "nation", first.slug())?;
    }
    put_list(doc, &ROOT, "tags", &content.tags)?;
    write_standing(doc, content)?;
    let fs = &content.front_sheet;
    put_opt(doc, "document_owner", fs.document_owner.clone())?;
    put_opt(doc, "ratifying_committee", fs.ratifying_committee.clone())?;
    put_opt(
        doc,
        "equality_impact",
        fs.equality_impact.map(|e| e.slug().to_string()),
    )?;
    put_opt(
        doc,
        "equality_impact_on",
        fs.equality_impact_on.map(|d| d.to_string()),
    )?;
    put_opt(doc, "consultation", fs.consultation.clone())?;
    put_opt(doc, "distribution", fs.distribution.clone())?;
    put_opt(doc, "version_notes", fs.version_notes.clone())?;
    match &content.qi {
        Some(qi) => {
            let obj = match doc.get(ROOT, "qi")? {
                Some((Value::Object(ObjType::Map), obj)) => obj,
                _ => doc.put_object(ROOT, "qi", ObjType::Map)?,
            };
            put_str_if_changed(doc, &obj, "aim", &qi.aim)?;
            put_list(doc, &obj, "measures", &qi.measures)?;
            put_list(doc, &obj, "pdsa_cycles", &qi.pdsa_cycles)?;
            put_str_if_changed(doc, &obj, "outcomes", &qi.outcomes)?;
        }
        None => {
            if doc.get(ROOT, "qi")?.is_some() {
                doc.delete(ROOT, "qi")?;
            }
        }
    }
    mark_author(doc, author)?;
    doc.increment(ROOT, "version", 1)?;
    Ok(())
}

/// Writes what approval and review change without making a new version:
/// status, approver, approval, effective and review dates. The caller
/// commits.
pub fn write_standing(doc: &mut AutoCommit, content: &ItemContent) -> Result<(), DocError> {
    put_opt(doc, "approved_by", content.approved_by.clone())?;
    put_opt(
        doc,
        "approved_on",
        content.approved_on.map(|d| d.to_string()),
    )?;
    put_opt(
        doc,
        "effective_from",
        content.effective_from.map(|d| d.to_string()),
    )?;
    put_str_if_changed(doc, &ROOT, "review_due", &content.review_due.to_string())?;
    put_str_if_changed(doc, &ROOT, "status", content.status.slug())?;
    Ok(())
}

fn mark_author(doc: &mut AutoCommit, author: &PublicKey) -> Result<(), DocError> {
    let authors = match doc.get(ROOT, "authors")? {
        Some((Value::Object(ObjType::Map), obj)) => obj,
        _ => doc.put_object(ROOT, "authors", ObjType::Map)?,
    };
    if doc.get(&authors, author.to_hex())?.is_none() {
        doc.put(&authors, author.to_hex(), true)?;
    }
    Ok(())
}

fn measures_map(doc: &mut AutoCommit) -> Result<ObjId, DocError> {
    Ok(match doc.get(ROOT, "qi_measures")? {
        Some((Value::Object(ObjType::Map), obj)) => obj,
        _ => doc.put_object(ROOT, "qi_measures", ObjType::Map)?,
    })
}

fn measure_obj(doc: &mut AutoCommit, key: &str) -> Result<ObjId, DocError> {
    let map = measures_map(doc)?;
    match doc.get(&map, key)? {
        Some((Value::Object(ObjType::Map), obj)) => Ok(obj),
        _ => Err(DocError::Field {
            field: "measure",
            reason: format!("{key:?} is not defined"),
        }),
    }
}

fn child_map(doc: &mut AutoCommit, parent: &ObjId, key: &str) -> Result<ObjId, DocError> {
    Ok(match doc.get(parent, key)? {
        Some((Value::Object(ObjType::Map), obj)) => obj,
        _ => doc.put_object(parent, key, ObjType::Map)?,
    })
}

/// Defines a measure, or changes its name, definition, unit or direction
/// (its data stay). The caller commits.
pub fn write_measure(doc: &mut AutoCommit, def: &MeasureDefinition) -> Result<(), DocError> {
    let map = measures_map(doc)?;
    let obj = child_map(doc, &map, &def.key)?;
    put_str_if_changed(doc, &obj, "name", &def.name)?;
    put_str_if_changed(doc, &obj, "definition", &def.definition)?;
    put_str_if_changed(doc, &obj, "unit", &def.unit)?;
    put_str_if_changed(doc, &obj, "improvement", def.improvement.slug())?;
    match def.baseline_until {
        Some(d) => put_str_if_changed(doc, &obj, "baseline_until", &d.to_string())?,
        None => {
            if doc.get(&obj, "baseline_until")?.is_some() {
                doc.delete(&obj, "baseline_until")?;
            }
        }
    }
    child_map(doc, &obj, "points")?;
    child_map(doc, &obj, "notes")?;
    Ok(())
}

/// Records values of a measure, one per date (a date given again takes
/// the new value). The caller commits.
pub fn write_points(doc: &mut AutoCommit, key: &str, points: &[DataPoint]) -> Result<(), DocError> {
    let obj = measure_obj(doc, key)?;
    let map = child_map(doc, &obj, "points")?;
    for p in points {
        doc.put(&map, p.date.to_string(), ScalarValue::F64(p.value))?;
    }
    Ok(())
}

/// Removes a measure's value at `date`; false when it had none.
pub fn remove_point(doc: &mut AutoCommit, key: &str, date: Date) -> Result<bool, DocError> {
    let obj = measure_obj(doc, key)?;
    let map = child_map(doc, &obj, "points")?;
    if doc.get(&map, date.to_string())?.is_none() {
        return Ok(false);
    }
    doc.delete(&map, date.to_string())?;
    Ok(true)
}

/// Writes a note on a measure at a date (one per date). The caller commits.
pub fn write_note(doc: &mut AutoCommit, key: &str, note: &Note) -> Result<(), DocError> {
    let obj = measure_obj(doc, key)?;
    let map = child_map(doc, &obj, "notes")?;
    doc.put(&map, note.date.to_string(), note.text.as_str())?;
    Ok(())
}

/// Writes a QI initiative's progress score and stage. The caller commits.
pub fn write_progress(doc: &mut AutoCommit, progress: &Progress) -> Result<(), DocError> {
    let obj = child_map(doc, &ROOT, "qi_progress")?;
    let score = i64::from(progress.score.0);
    if !matches!(doc.get(&obj, "score_tenths")?, Some((Value::Scalar(v), _)) if v.as_i64() == Some(score))
    {
        doc.put(&obj, "score_tenths", score)?;
    }
    put_str_if_changed(doc, &obj, "stage", progress.stage.slug())?;
    Ok(())
}

fn read_measures(doc: &impl ItemRead) -> Result<Vec<Measure>, DocError> {
    let map = match doc.value(&ROOT, "qi_measures")? {
        Some((Value::Object(ObjType::Map), obj)) => obj,
        Some(_) => return Err(unreadable("qi_measures", "is not a map")),
        None => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    for key in doc.map_keys(&map) {
        let Some((Value::Object(ObjType::Map), obj)) = doc.value(&map, &key)? else {
            return Err(unreadable(
                "qi_measures",
                "holds a measure that is not a map",
            ));
        };
        let text = |k: &'static str| -> Result<String, DocError> {
            Ok(read_text_field(doc, &obj, k)?.unwrap_or_default())
        };
        let improvement = text("improvement")?
            .parse()
            .map_err(|e: String| unreadable("improvement", &e))?;
        let mut points = Vec::new();
        if let Some((Value::Object(ObjType::Map), pts)) = doc.value(&obj, "points")? {
            for d in doc.map_keys(&pts) {
                let date: Date = d
                    .parse()
                    .map_err(|_| unreadable("points", &format!("{d:?} is not a date")))?;
                let value = match doc.value(&pts, &d)? {
                    Some((Value::Scalar(v), _)) => match v.as_ref() {
                        ScalarValue::F64(f) => *f,
                        ScalarValue::Int(i) => *i as f64,
                        ScalarValue::Uint(u) => *u as f64,
                        _ => {
                            return Err(unreadable(
                                "points",
                                &format!("the value for {d} is not a number"),
                            ));
                        }
                    },
                    _ => {
                        return Err(unreadable(
                            "points",
                            &format!("the value for {d} is not a number"),
                        ));
                    }
                };
                points.push(DataPoint { date, value });
            }
        }
        points.sort_by_key(|p| p.date);
        let mut notes = Vec::new();
        if let Some((Value::Object(ObjType::Map), ns)) = doc.value(&obj, "notes")? {
            for d in doc.map_keys(&ns) {
                let date: Date = d
                    .parse()
                    .map_err(|_| unreadable("notes", &format!("{d:?} is not a date")))?;
                let text = read_str(doc, &ns, &d)
                    .ok_or_else(|| unreadable("notes", &format!("the note for {d} is not text")))?;
                notes.push(Note { date, text });
            }
        }
        notes.sort_by_key(|n| n.date);
        out.push(Measure {
            definition: MeasureDefinition {
                key,
                name: text("name")?,
                definition: text("definition")?,
                unit: text("unit")?,
                improvement,
                baseline_until: match read_text_field(doc, &obj, "baseline_until")? {
                    None => None,
                    Some(t) => Some(t.parse().map_err(|_| {
                        unreadable("baseline_until", &format!("{t:?} is not a date"))
                    })?),
                },
            },
            points,
            notes,
        });
    }
    Ok(out)
}

fn read_progress(doc: &impl ItemRead) -> Result<Option<Progress>, DocError> {
    let obj = match doc.value(&ROOT, "qi_progress")? {
        Some((Value::Object(ObjType::Map), obj)) => obj,
        Some(_) => return Err(unreadable("qi_progress", "is not a map")),
        None => return Ok(None),
    };
    let score = match doc.value(&obj, "score_tenths")? {
        Some((Value::Scalar(v), _)) => v
            .as_i64()
            .and_then(|i| u8::try_from(i).ok())
            .map(ProgressScore)
            .filter(|s| s.is_valid())
            .ok_or_else(|| unreadable("qi_progress", "holds a score off the scale"))?,
        _ => return Err(unreadable("qi_progress", "has no score")),
    };
    let stage = read_text_field(doc, &obj, "stage")?
        .ok_or_else(|| unreadable("qi_progress", "has no stage"))?
        .parse()
        .map_err(|e: String| unreadable("qi_progress", &e))?;
    Ok(Some(Progress { score, stage }))
}

/// Records where an adopted item came from, or the source's version the
/// adopting site has now taken. The caller commits.
pub fn write_adoption(doc: &mut AutoCommit, adoption: &Adoption) -> Result<(), DocError> {
    put_str_if_changed(doc, &ROOT, "adopted_from", &adoption.from.to_hex())?;
    let version = i64::try_from(adoption.version).unwrap_or(i64::MAX);
    if read_i64(doc, "adopted_version") != Some(version) {
        doc.put(ROOT, "adopted_version", version)?;
    }
    put_str_if_changed(doc, &ROOT, "adopted_envelope", &adoption.envelope.to_hex())?;
    Ok(())
}

fn read_i64(doc: &impl ItemRead, key: &str) -> Option<i64> {
    match doc.value(&ROOT, key) {
        Ok(Some((Value::Scalar(v), _))) => match v.as_ref() {
            ScalarValue::Int(i) => Some(*i),
            ScalarValue::Uint(u) => i64::try_from(*u).ok(),
            _ => None,
        },
        _ => None,
    }
}

/// Marks an item superseded by `successor`.
pub fn write_superseded(
    doc: &mut AutoCommit,
    successor: ItemId,
    author: &PublicKey,
) -> Result<(), DocError> {
    doc.put(ROOT, "status", Status::Superseded.slug())?;
    doc.put(ROOT, "superseded_by", successor.to_hex())?;
    mark_author(doc, author)?;
    Ok(())
}

/// Records that an item replaces `predecessor`.
pub fn write_supersedes(doc: &mut AutoCommit, predecessor: ItemId) -> Result<(), DocError> {
    let map = match doc.get(ROOT, "supersedes")? {
        Some((Value::Object(ObjType::Map), obj)) => obj,
        _ => doc.put_object(ROOT, "supersedes", ObjType::Map)?,
    };
    doc.put(&map, predecessor.to_hex(), true)?;
    Ok(())
}

/// Marks an item withdrawn, with the reason.
pub fn write_withdrawn(
    doc: &mut AutoCommit,
    reason: &str,
    author: &PublicKey,
) -> Result<(), DocError> {
    doc.put(ROOT, "status", Status::Withdrawn.slug())?;
    doc.put(ROOT, "withdrawn_reason", reason)?;
    mark_author(doc, author)?;
    Ok(())
}

/// What reading an item asks of a document: an Automerge document, or an
/// item's first change read on its own ([`crate::first::FirstChange`]).
pub trait ItemRead {
    /// The value at `key` of the map `obj`, with its id.
    fn value(&self, obj: &ObjId, key: &str) -> Result<Option<(Value<'_>, ObjId)>, AutomergeError>;
    /// The keys of the map `obj`, in order.
    fn map_keys(&self, obj: &ObjId) -> Vec<String>;
    /// The text of the text object `obj`.
    fn text_at(&self, obj: &ObjId) -> Option<String>;
    /// The entries of the list `obj`, in order, with their ids.
    fn list_entries(&self, obj: &ObjId) -> Vec<(Value<'_>, ObjId)>;
}

impl ItemRead for AutoCommit {
    fn value(&self, obj: &ObjId, key: &str) -> Result<Option<(Value<'_>, ObjId)>, AutomergeError> {
        self.get(obj, key)
    }

    fn map_keys(&self, obj: &ObjId) -> Vec<String> {
        self.keys(obj).collect()
    }

    fn text_at(&self, obj: &ObjId) -> Option<String> {
        self.text(obj).ok()
    }

    fn list_entries(&self, obj: &ObjId) -> Vec<(Value<'_>, ObjId)> {
        self.list_range(obj, ..)
            .map(|entry| {
                let id = entry.id();
                (entry.value.into_value(), id)
            })
            .collect()
    }
}

/// A text value: an Automerge scalar string or a text object (what other
/// Automerge implementations write for strings by default).
fn text_of(doc: &impl ItemRead, value: &Value<'_>, obj: &ObjId) -> Option<String> {
    match value {
        Value::Object(ObjType::Text) => doc.text_at(obj),
        v => v.as_str().map(str::to_string),
    }
}

/// The text entries of a list (others left out).
fn text_list(doc: &impl ItemRead, obj: &ObjId) -> Vec<String> {
    doc.list_entries(obj)
        .into_iter()
        .filter_map(|(value, id)| text_of(doc, &value, &id))
        .collect()
}

/// A field that is present but cannot be read.
fn unreadable(field: &'static str, reason: &str) -> DocError {
    DocError::Field {
        field,
        reason: reason.to_string(),
    }
}

/// A text field: `Ok(None)` when absent, an error naming the field when it
/// holds something other than text.
fn read_text_field<O: AsRef<automerge::ObjId>>(
    doc: &impl ItemRead,
    obj: O,
    key: &'static str,
) -> Result<Option<String>, DocError> {
    match doc.value(obj.as_ref(), key) {
        Ok(Some((v, id))) => text_of(doc, &v, &id)
            .map(Some)
            .ok_or_else(|| unreadable(key, "is not text")),
        Ok(None) => Ok(None),
        Err(e) => Err(DocError::Automerge(e)),
    }
}

fn read_str<O: AsRef<automerge::ObjId>>(doc: &impl ItemRead, obj: O, key: &str) -> Option<String> {
    match doc.value(obj.as_ref(), key) {
        Ok(Some((v, id))) => text_of(doc, &v, &id),
        _ => None,
    }
}

/// A list of text: `Ok(empty)` when absent, an error naming the field when
/// it is not a list or holds something other than text.
fn read_list_at(
    doc: &impl ItemRead,
    parent: &ObjId,
    key: &'static str,
) -> Result<Vec<String>, DocError> {
    match doc.value(parent, key) {
        Ok(Some((Value::Object(ObjType::List), obj))) => doc
            .list_entries(&obj)
            .into_iter()
            .map(|(value, id)| {
                text_of(doc, &value, &id)
                    .ok_or_else(|| unreadable(key, "holds an entry that is not text"))
            })
            .collect(),
        Ok(Some(_)) => Err(unreadable(key, "is not a list")),
        Ok(None) => Ok(Vec::new()),
        Err(e) => Err(DocError::Automerge(e)),
    }
}

/// A required text field parsed as `T` (a vocabulary slug, a date).
fn read_parsed<T: std::str::FromStr>(
    doc: &impl ItemRead,
    key: &'static str,
    what: &str,
) -> Result<T, DocError> {
    let text = read_text_field(doc, ROOT, key)?.ok_or_else(|| unreadable(key, "is missing"))?;
    text.parse()
        .map_err(|_| unreadable(key, &format!("{text:?} is not {what}")))
}

/// The nations: the `nations` list (unknown slugs, from a newer peer's
/// vocabulary, skipped), or the single `nation` of documents written
/// before items named several.
fn read_nations(doc: &impl ItemRead) -> Result<Vec<Nation>, DocError> {
    let mut out: Vec<Nation> = read_list_at(doc, &ROOT, "nations")?
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    if out.is_empty() {
        out.push(read_parsed(doc, "nation", "a nation")?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// An optional date field.
fn read_opt_date(doc: &impl ItemRead, key: &'static str) -> Result<Option<Date>, DocError> {
    match read_text_field(doc, ROOT, key)? {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| unreadable(key, &format!("{text:?} is not a date"))),
    }
}

fn read_keys(doc: &impl ItemRead, key: &str) -> Vec<String> {
    match doc.value(&ROOT, key) {
        Ok(Some((Value::Object(ObjType::Map), obj))) => doc.map_keys(&obj),
        _ => Vec::new(),
    }
}

/// Reads the materialised item from a document, whoever wrote it: text
/// fields may be Automerge strings or text objects. A field that is
/// missing where the schema requires it, or present but unreadable (not
/// text, an unknown kind, nation or status, a date that does not parse), is
/// an error naming the field, never a default. Unknown care pathways and
/// setting types in a list (from a newer peer's vocabulary) are skipped.
pub fn read_item(doc: &impl ItemRead) -> Result<Item, DocError> {
    let id = read_str(doc, ROOT, "id")
        .and_then(|s| s.parse::<ItemId>().ok())
        .ok_or(DocError::NotAnItem("no id"))?;
    let owner = read_str(doc, ROOT, "owner")
        .and_then(|s| s.parse::<EstablishmentId>().ok())
        .ok_or(DocError::NotAnItem("no owner"))?;
    let version = match doc.value(&ROOT, "version")? {
        Some((Value::Scalar(v), _)) => match v.as_ref() {
            ScalarValue::Counter(_) | ScalarValue::Int(_) | ScalarValue::Uint(_) => {
                Value::Scalar(v.clone()).as_i64().unwrap_or(0).max(0) as u64
            }
            _ => return Err(unreadable("version", "is not a number")),
        },
        Some(_) => return Err(unreadable("version", "is not a number")),
        None => 0,
    };
    let body = match doc.value(&ROOT, "body")? {
        Some((v, obj)) => {
            text_of(doc, &v, &obj).ok_or_else(|| unreadable("body", "is not text"))?
        }
        None => String::new(),
    };
    let qi = match doc.value(&ROOT, "qi")? {
        Some((Value::Object(ObjType::Map), obj)) => Some(QiDetails {
            aim: read_text_field(doc, &obj, "aim")?.unwrap_or_default(),
            measures: read_list_at(doc, &obj, "measures")?,
            pdsa_cycles: read_list_at(doc, &obj, "pdsa_cycles")?,
            outcomes: read_text_field(doc, &obj, "outcomes")?.unwrap_or_default(),
        }),
        Some(_) => return Err(unreadable("qi", "is not a map")),
        None => None,
    };
    let content = ItemContent {
        title: read_text_field(doc, ROOT, "title")?
            .ok_or_else(|| unreadable("title", "is missing"))?,
        kind: read_parsed(doc, "kind", "a kind of document")?,
        summary: read_text_field(doc, ROOT, "summary")?
            .ok_or_else(|| unreadable("summary", "is missing"))?,
        body,
        pathways: read_list_at(doc, &ROOT, "pathways")?
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect(),
        settings: read_list_at(doc, &ROOT, "settings")?
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect(),
        nations: read_nations(doc)?,
        tags: read_list_at(doc, &ROOT, "tags")?,
        approved_by: read_text_field(doc, ROOT, "approved_by")?,
        approved_on: read_opt_date(doc, "approved_on")?,
        effective_from: read_opt_date(doc, "effective_from")?,
        review_due: read_parsed(doc, "review_due", "a date")?,
        status: read_parsed(doc, "status", "a status")?,
        qi,
        front_sheet: FrontSheet {
            document_owner: read_text_field(doc, ROOT, "document_owner")?,
            ratifying_committee: read_text_field(doc, ROOT, "ratifying_committee")?,
            equality_impact: match read_text_field(doc, ROOT, "equality_impact")? {
                None => None,
                Some(t) => Some(
                    t.parse()
                        .map_err(|e: String| unreadable("equality_impact", &e))?,
                ),
            },
            equality_impact_on: read_opt_date(doc, "equality_impact_on")?,
            consultation: read_text_field(doc, ROOT, "consultation")?,
            distribution: read_text_field(doc, ROOT, "distribution")?,
            version_notes: read_text_field(doc, ROOT, "version_notes")?,
        },
    };
    let mut authors: Vec<PublicKey> = read_keys(doc, "authors")
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    authors.sort();
    let mut supersedes: Vec<ItemId> = read_keys(doc, "supersedes")
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    supersedes.sort();
    let adopted_from: Option<ItemId> =
        read_str(doc, ROOT, "adopted_from").and_then(|s| s.parse().ok());
    Ok(Item {
        id,
        owner,
        version,
        content,
        authors,
        supersedes,
        superseded_by: read_str(doc, ROOT, "superseded_by").and_then(|s| s.parse().ok()),
        withdrawn_reason: read_text_field(doc, ROOT, "withdrawn_reason")?,
        adopted_from,
        adoption: adopted_from.and_then(|from| {
            Some(Adoption {
                from,
                version: u64::try_from(read_i64(doc, "adopted_version")?).ok()?,
                envelope: read_str(doc, ROOT, "adopted_envelope")?.parse().ok()?,
            })
        }),
        allowed_identifiers: read_list_at(doc, &ROOT, "allowed_identifiers")?,
        measures: read_measures(doc)?,
        progress: read_progress(doc)?,
        attachments: crate::attachment::read_attachments(doc)?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::key::SecretKey;

    pub(crate) fn sample_content() -> ItemContent {
        ItemContent {
            title: "Take-home naloxone on release".into(),
            kind: Kind::Procedure,
            summary: "Every person at risk of opioid overdose leaves with naloxone.".into(),
            body: "# Purpose\n\nReduce deaths in the weeks after release.\n".into(),
            pathways: vec![Pathway::SubstanceMisuse, Pathway::ReleaseContinuity],
            settings: vec![Setting::LocalRemand],
            nations: vec![Nation::England],
            tags: vec!["naloxone".into(), "release".into()],
            approved_by: Some("Drugs and Therapeutics Committee".into()),
            approved_on: Some(Date::constant(2026, 1, 10)),
            effective_from: Some(Date::constant(2026, 2, 1)),
            review_due: Date::constant(2027, 2, 1),
            status: Status::Published,
            qi: None,
            front_sheet: FrontSheet {
                document_owner: Some("Head of Healthcare".into()),
                equality_impact: Some(EqualityImpact::NotNeeded),
                version_notes: Some("First version.".into()),
                ..FrontSheet::default()
            },
        }
    }

    #[test]
    fn write_then_read_gives_back_the_content() {
        let owner = EstablishmentId([1; 16]);
        let author = SecretKey::from_seed([2; 32]).public();
        let id = ItemId::derive(&owner, &[9; 16]);
        let mut doc = AutoCommit::new();
        init_doc(&mut doc, id, &owner).expect("init");
        let content = sample_content();
        write_version(&mut doc, &content, &author).expect("write");
        doc.commit();
        let item = read_item(&doc).expect("read");
        assert_eq!(item.content, content);
        assert_eq!(item.version, 1);
        assert_eq!(item.authors, vec![author]);
        let mut revised = content.clone();
        revised.body.push_str("\nNew paragraph.\n");
        write_version(&mut doc, &revised, &author).expect("revise");
        doc.commit();
        let item = read_item(&doc).expect("read");
        assert_eq!(item.version, 2);
        assert_eq!(item.content.body, revised.body);
    }

    #[test]
    fn several_nations_round_trip_and_one_nation_documents_still_read() {
        let owner = EstablishmentId([1; 16]);
        let author = SecretKey::from_seed([2; 32]).public();
        let id = ItemId::derive(&owner, &[9; 16]);
        let mut doc = AutoCommit::new();
        init_doc(&mut doc, id, &owner).expect("init");
        let mut content = sample_content();
        content.nations = vec![Nation::Wales, Nation::England];
        write_version(&mut doc, &content, &author).expect("write");
        doc.commit();
        let item = read_item(&doc).expect("read");
        assert_eq!(item.content.nations, vec![Nation::England, Nation::Wales]);
        // What a node reading one nation reads.
        assert_eq!(read_str(&doc, ROOT, "nation").as_deref(), Some("england"));
        // A document written before items named several nations.
        doc.delete(ROOT, "nations").expect("delete");
        doc.put(ROOT, "nation", "scotland").expect("put");
        doc.commit();
        assert_eq!(
            read_item(&doc).expect("read").content.nations,
            vec![Nation::Scotland]
        );
        let mut none = sample_content();
        none.nations.clear();
        assert_eq!(none.validate().expect_err("no nation").field, "nation");
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = sample_content();
        c.title = " ".into();
        assert_eq!(c.validate().expect_err("empty title").field, "title");
        let mut c = sample_content();
        c.kind = Kind::QiInitiative;
        assert_eq!(c.validate().expect_err("qi needs aim").field, "aim");
        let mut c = sample_content();
        c.review_due = Date::constant(2026, 1, 1);
        assert_eq!(
            c.validate().expect_err("review before effective").field,
            "review_due"
        );
    }
}
