//! Read and acknowledge, as readers see it: the request to read an item in
//! force (the version staff in some jobs must read, by a date), the
//! acknowledgements signed for it, the register of who has and who has not
//! (given the owning site's staff, which only its own node knows), and
//! what one person still has to read.
//!
//! An acknowledgement of version N answers a request for any version up to
//! N: a revision marked significant makes a new request for its version, so
//! staff are asked again; one not so marked leaves the request, and the
//! acknowledgements that answer it, as they were.

use gatehouse_protocol::id::{EnvelopeId, ItemId};
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::key::PublicKey;
use gatehouse_protocol::record::RecordAction;
use gatehouse_protocol::vocab::{Job, Status};
use serde::{Deserialize, Serialize};

use super::{ItemView, Named, ReadView, format_ms};
use crate::error::{LibraryError, Result};

/// How requests for one item are ordered: the highest version, then the
/// latest its signer says, then the lowest id.
type RequestRank = (u64, u64, std::cmp::Reverse<EnvelopeId>);

/// A request to read an item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReadingRequest {
    /// Its record.
    pub envelope: EnvelopeId,
    /// The version to read (or any later one).
    pub version: u64,
    /// The jobs asked; everyone when empty.
    pub jobs: Vec<Job>,
    /// The date by which to read it.
    pub due: Date,
    /// Who asked.
    pub by: Named,
    /// When (RFC 3339, as the signer claims).
    pub at: String,
}

impl ReadingRequest {
    /// Whether it asks a person in `job`.
    pub fn asks(&self, job: Option<Job>) -> bool {
        self.jobs.is_empty() || job.is_some_and(|j| self.jobs.contains(&j))
    }

    /// Who it asks, in words: "everyone", "nurses and pharmacists".
    pub fn jobs_in_words(&self) -> String {
        if self.jobs.is_empty() {
            return "all staff".into();
        }
        let names: Vec<String> = self.jobs.iter().map(|j| j.label().to_lowercase()).collect();
        match names.split_last() {
            Some((last, [])) => format!("every {last}"),
            Some((last, rest)) => format!("every {} and {last}", rest.join(", ")),
            None => "all staff".into(),
        }
    }
}

/// One acknowledgement: "I have read and understood version N".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Acknowledgement {
    /// Its record.
    pub envelope: EnvelopeId,
    /// The version read.
    pub version: u64,
    /// Who signed it.
    pub who: Named,
    /// When (RFC 3339, as the signer claims).
    pub at: String,
}

/// A member of the owning site's staff, as its node knows them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StaffMember {
    /// Their name.
    pub name: String,
    /// Their key.
    pub key: PublicKey,
    /// Their job.
    pub job: Option<Job>,
}

/// One row of the register.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RegisterRow {
    /// The person.
    pub person: StaffMember,
    /// Their acknowledgement that answers the request, if any.
    pub acknowledged: Option<Acknowledgement>,
}

/// Who has read an item's requested version and who has not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Register {
    /// The item.
    pub item: ItemId,
    /// Its title.
    pub title: String,
    /// Its current version.
    pub version: u64,
    /// The request in force.
    pub request: Option<ReadingRequest>,
    /// Every member of staff the request asks, with their answer.
    pub rows: Vec<RegisterRow>,
    /// Acknowledgements by others (not asked, or not on this node's
    /// staff list: site leads, staff since removed).
    pub others: Vec<Acknowledgement>,
    /// Whether the due date has passed with someone still to read it.
    pub overdue: bool,
}

impl Register {
    /// The acknowledgement by `key` that answers the request, if any.
    pub fn answer_of(&self, key: &PublicKey) -> Option<&Acknowledgement> {
        let from = self.request.as_ref()?.version;
        self.rows
            .iter()
            .find(|r| r.person.key == *key)
            .and_then(|r| r.acknowledged.as_ref())
            .or_else(|| {
                self.others
                    .iter()
                    .find(|a| a.who.key == *key && a.version >= from)
            })
    }

    /// How many asked have read it.
    pub fn done(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.acknowledged.is_some())
            .count()
    }
}

/// An item a person still has to read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToRead {
    /// The item.
    pub view: ItemView,
    /// The request.
    pub request: ReadingRequest,
    /// Whether its date has passed.
    pub overdue: bool,
}

impl ReadView {
    /// The request to read `item` in force: of those its owner signed, the
    /// one for the highest version, then the latest, then the lowest id.
    pub fn reading_request(&self, item: &ItemId) -> Result<Option<ReadingRequest>> {
        let Some((it, _)) = self.load_item(item)? else {
            return Ok(None);
        };
        let mut best: Option<(RequestRank, ReadingRequest)> = None;
        for (env, r) in self.item_records(item)? {
            let RecordAction::RequestReading {
                item: about,
                version,
                jobs,
                due,
            } = r.action
            else {
                continue;
            };
            if about != *item || r.establishment != it.owner || version > it.version {
                continue;
            }
            let rank = (version, env.created_ms(), std::cmp::Reverse(env.id()));
            if best.as_ref().is_none_or(|(b, _)| rank > *b) {
                best = Some((
                    rank,
                    ReadingRequest {
                        envelope: env.id(),
                        version,
                        jobs,
                        due,
                        by: self.named_member(&r.establishment, &env.signer()),
                        at: format_ms(env.created_ms()),
                    },
                ));
            }
        }
        Ok(best.map(|(_, request)| request))
    }

    /// Every acknowledgement of `item` signed in its owner's name, for a
    /// version it has reached, oldest first.
    pub fn acknowledgements(&self, item: &ItemId) -> Result<Vec<Acknowledgement>> {
        let Some((it, _)) = self.load_item(item)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (env, r) in self.item_records(item)? {
            let RecordAction::Acknowledge {
                item: about,
                version,
            } = r.action
            else {
                continue;
            };
            if about != *item || r.establishment != it.owner || version > it.version {
                continue;
            }
            out.push((
                env.created_ms(),
                Acknowledgement {
                    envelope: env.id(),
                    version,
                    who: self.named_member(&r.establishment, &env.signer()),
                    at: format_ms(env.created_ms()),
                },
            ));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.envelope.cmp(&b.1.envelope)));
        Ok(out.into_iter().map(|(_, a)| a).collect())
    }

    /// The register of `item`: each of `staff` the request asks, with the
    /// acknowledgement that answers it (the first of the requested version
    /// or later), and acknowledgements by anyone else.
    pub fn register(&self, item: &ItemId, staff: &[StaffMember], today: Date) -> Result<Register> {
        let (it, _) = self
            .load_item(item)?
            .ok_or_else(|| LibraryError::UnknownItem(item.to_hex()))?;
        let request = self.reading_request(item)?;
        let acks = self.acknowledgements(item)?;
        let answering = |key: &PublicKey, from: u64| {
            acks.iter()
                .find(|a| a.who.key == *key && a.version >= from)
                .cloned()
        };
        let mut rows = Vec::new();
        if let Some(req) = &request {
            for p in staff.iter().filter(|p| req.asks(p.job)) {
                rows.push(RegisterRow {
                    person: p.clone(),
                    acknowledged: answering(&p.key, req.version),
                });
            }
        }
        rows.sort_by(|a, b| a.person.name.cmp(&b.person.name));
        let asked: Vec<PublicKey> = rows.iter().map(|r| r.person.key).collect();
        let others = acks
            .iter()
            .filter(|a| !asked.contains(&a.who.key))
            .cloned()
            .collect();
        let overdue = request
            .as_ref()
            .is_some_and(|r| today > r.due && rows.iter().any(|row| row.acknowledged.is_none()));
        Ok(Register {
            item: *item,
            title: it.content.title,
            version: it.version,
            request,
            rows,
            others,
            overdue,
        })
    }

    /// What the person holding `key`, in `job`, still has to read of this
    /// node's establishment's items in force, soonest due first.
    pub fn to_read(&self, key: &PublicKey, job: Option<Job>, today: Date) -> Result<Vec<ToRead>> {
        let mut out = Vec::new();
        for (item, updated_ms) in self.catalog()? {
            if item.owner != self.establishment || item.content.status != Status::Published {
                continue;
            }
            let Some(request) = self.reading_request(&item.id)? else {
                continue;
            };
            if !request.asks(job) {
                continue;
            }
            let read = self
                .acknowledgements(&item.id)?
                .iter()
                .any(|a| a.who.key == *key && a.version >= request.version);
            if read {
                continue;
            }
            let overdue = today > request.due;
            out.push(ToRead {
                view: self.view(item, updated_ms),
                request,
                overdue,
            });
        }
        out.sort_by(|a, b| {
            a.request
                .due
                .cmp(&b.request.due)
                .then(a.view.item.content.title.cmp(&b.view.item.content.title))
        });
        Ok(out)
    }
}
