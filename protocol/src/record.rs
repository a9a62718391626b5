//! Records: what people of an establishment attest about its items, and
//! the rules the establishment keeps for them.
//!
//! A record is an envelope of kind 4 ([`crate::envelope::EnvelopeKind::Record`]),
//! signed by the person it speaks for, naming the establishment it speaks
//! in ([`Record::establishment`]):
//!
//! - an **approval** of one version of an item, named by the change that
//!   made it, signed with the approver's own key;
//! - an **acknowledgement** ("I have read and understood version 3") by a
//!   member of staff;
//! - a **request to read**: a version staff in some jobs must read, by a
//!   date;
//! - the establishment's **rules**: whether an approval by a version's own
//!   author counts, and how long before a review date reminders start.
//!
//! Trust decides whether the signer is a key of that establishment in a
//! role that may sign the record (`TrustView::judge_record`); what a record
//! means for an item (the approver is not the author when two people are
//! needed, the record names the item's owner, the version exists) is
//! decided by the node from the set it holds, never from arrival order.
//!
//! Records carry no free text, so no patient identifier can travel in one.

use jiff::civil::Date;

use crate::certificate::read_slug;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::id::{EnvelopeId, EstablishmentId, ItemId};
use crate::vocab::Job;

/// Most jobs one request to read may name.
pub const MAX_JOBS: usize = 32;
/// Longest reminder period, in months.
pub const MAX_REMINDER_MONTHS: u16 = 36;
/// The reminder period when an establishment has set none: review
/// reminders start six months before the review date.
pub const DEFAULT_REMINDER_MONTHS: u16 = 6;
/// The network's review cycle: a version is reviewed within three years.
pub const DEFAULT_REVIEW_MONTHS: u16 = 36;

/// One record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The establishment the signer speaks in, which owns the item a
    /// record about an item names.
    pub establishment: EstablishmentId,
    /// What it records.
    pub action: RecordAction,
}

/// What a record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordAction {
    /// The signer approves `version` of `item`, the text made by `change`.
    Approve {
        /// The item.
        item: ItemId,
        /// The version approved.
        version: u64,
        /// The change that made that version (the approved text is the
        /// item as that change left it).
        change: EnvelopeId,
    },
    /// The signer has read and understood `version` of `item`.
    Acknowledge {
        /// The item.
        item: ItemId,
        /// The version read.
        version: u64,
    },
    /// Staff in `jobs` (everyone when empty) must read `version` of
    /// `item` by `due`.
    RequestReading {
        /// The item.
        item: ItemId,
        /// The version to read.
        version: u64,
        /// The jobs asked, sorted; empty for every member of staff.
        jobs: Vec<Job>,
        /// The date by which to read it.
        due: Date,
    },
    /// The establishment's rules; the record with the highest revision
    /// (then the lowest envelope id) is the one in force.
    Rules(SiteRules),
}

/// The rules an establishment keeps for its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SiteRules {
    /// Counts up with each change of the rules.
    pub revision: u64,
    /// An approval by an author of the version approved does not count.
    pub two_person_approval: bool,
    /// Review reminders start this many months before the review date.
    pub reminder_months: u16,
}

impl Default for SiteRules {
    fn default() -> Self {
        SiteRules {
            revision: 0,
            two_person_approval: false,
            reminder_months: DEFAULT_REMINDER_MONTHS,
        }
    }
}

impl Record {
    /// The item the record is about, if any.
    pub fn item(&self) -> Option<ItemId> {
        match &self.action {
            RecordAction::Approve { item, .. }
            | RecordAction::Acknowledge { item, .. }
            | RecordAction::RequestReading { item, .. } => Some(*item),
            RecordAction::Rules(_) => None,
        }
    }

    /// Whether only a key that may publish for the establishment (a site
    /// lead's or the establishment's) may sign it; an acknowledgement may
    /// be signed by any member of staff.
    pub fn needs_publisher(&self) -> bool {
        !matches!(self.action, RecordAction::Acknowledge { .. })
    }

    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.fixed(self.establishment.as_bytes());
        match &self.action {
            RecordAction::Approve {
                item,
                version,
                change,
            } => {
                w.u8(1)
                    .fixed(item.as_bytes())
                    .u64(*version)
                    .fixed(change.as_bytes());
            }
            RecordAction::Acknowledge { item, version } => {
                w.u8(2).fixed(item.as_bytes()).u64(*version);
            }
            RecordAction::RequestReading {
                item,
                version,
                jobs,
                due,
            } => {
                let mut jobs = jobs.clone();
                jobs.sort();
                jobs.dedup();
                w.u8(3).fixed(item.as_bytes()).u64(*version);
                w.seq(&jobs, |w, j| {
                    w.str(j.slug());
                });
                w.str(&due.to_string());
            }
            RecordAction::Rules(r) => {
                w.u8(4)
                    .u64(r.revision)
                    .u8(u8::from(r.two_person_approval))
                    .u32(u32::from(r.reminder_months));
            }
        }
        w.into_bytes()
    }

    /// Reads a record, refusing anything but the canonical encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let establishment = EstablishmentId(r.fixed()?);
        let version = |r: &mut Reader<'_>| -> Result<u64, DecodeError> {
            let v = r.u64()?;
            if v == 0 {
                return Err(DecodeError::Invalid {
                    field: "version",
                    reason: "versions count from 1",
                });
            }
            Ok(v)
        };
        let action = match r.u8()? {
            1 => RecordAction::Approve {
                item: ItemId(r.fixed()?),
                version: version(&mut r)?,
                change: EnvelopeId(r.fixed()?),
            },
            2 => RecordAction::Acknowledge {
                item: ItemId(r.fixed()?),
                version: version(&mut r)?,
            },
            3 => {
                let item = ItemId(r.fixed()?);
                let version = version(&mut r)?;
                let jobs: Vec<Job> = r.seq("jobs", MAX_JOBS, |r| read_slug(r, "jobs"))?;
                if jobs.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(DecodeError::Invalid {
                        field: "jobs",
                        reason: "must be sorted without repeats",
                    });
                }
                let text = r.str("due", 10)?;
                let due: Date = text.parse().map_err(|_| DecodeError::Invalid {
                    field: "due",
                    reason: "not a date",
                })?;
                if due.to_string() != text {
                    return Err(DecodeError::Invalid {
                        field: "due",
                        reason: "not written as YYYY-MM-DD",
                    });
                }
                RecordAction::RequestReading {
                    item,
                    version,
                    jobs,
                    due,
                }
            }
            4 => {
                let revision = r.u64()?;
                let two_person_approval = match r.u8()? {
                    0 => false,
                    1 => true,
                    t => {
                        return Err(DecodeError::UnknownTag {
                            field: "two_person_approval",
                            tag: u64::from(t),
                        });
                    }
                };
                let months = r.u32()?;
                let reminder_months = u16::try_from(months)
                    .ok()
                    .filter(|m| (1..=MAX_REMINDER_MONTHS).contains(m))
                    .ok_or(DecodeError::Invalid {
                        field: "reminder_months",
                        reason: "between 1 and 36 months",
                    })?;
                RecordAction::Rules(SiteRules {
                    revision,
                    two_person_approval,
                    reminder_months,
                })
            }
            t => {
                return Err(DecodeError::UnknownTag {
                    field: "record",
                    tag: u64::from(t),
                });
            }
        };
        r.finish()?;
        Ok(Record {
            establishment,
            action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Record> {
        let establishment = EstablishmentId([7; 16]);
        let item = ItemId([3; 16]);
        [
            RecordAction::Approve {
                item,
                version: 3,
                change: EnvelopeId([9; 32]),
            },
            RecordAction::Acknowledge { item, version: 2 },
            RecordAction::RequestReading {
                item,
                version: 3,
                jobs: vec![Job::Nurse, Job::Pharmacist],
                due: Date::constant(2027, 1, 31),
            },
            RecordAction::Rules(SiteRules {
                revision: 2,
                two_person_approval: true,
                reminder_months: 6,
            }),
        ]
        .into_iter()
        .map(|action| Record {
            establishment,
            action,
        })
        .collect()
    }

    #[test]
    fn every_record_round_trips() {
        for r in all() {
            assert_eq!(Record::decode(&r.encode()).expect("decodes"), r);
        }
    }

    #[test]
    fn truncated_or_padded_records_are_refused() {
        for r in all() {
            let bytes = r.encode();
            for n in 0..bytes.len() {
                assert!(Record::decode(&bytes[..n]).is_err(), "{n} of {bytes:?}");
            }
            let mut long = bytes.clone();
            long.push(0);
            assert!(Record::decode(&long).is_err());
        }
    }

    #[test]
    fn non_canonical_forms_are_refused() {
        let mut w = Writer::new();
        w.fixed(&[7; 16]).u8(3).fixed(&[3; 16]).u64(1);
        w.seq(&["pharmacist", "nurse"], |w, s| {
            w.str(s);
        });
        w.str("2027-01-31");
        let err = Record::decode(&w.into_bytes()).expect_err("unsorted jobs");
        assert!(err.to_string().contains("jobs"), "{err}");
        let mut w = Writer::new();
        w.fixed(&[7; 16]).u8(2).fixed(&[3; 16]).u64(0);
        assert!(Record::decode(&w.into_bytes()).is_err(), "version 0");
        let mut w = Writer::new();
        w.fixed(&[7; 16]).u8(4).u64(1).u8(0).u32(0);
        assert!(Record::decode(&w.into_bytes()).is_err(), "no reminder");
    }
}
