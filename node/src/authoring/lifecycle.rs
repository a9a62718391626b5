//! Approval, review and an establishment's rules, signed by the person who
//! does them.
//!
//! - [`Library::approve`] signs an approval record (kind 4) of the current
//!   version with the approver's own key; a version submitted for approval
//!   is then published by a change signed with the same key.
//! - [`Library::review`] signs a change ("reviewed, no change") that moves
//!   the review date, by default one review cycle on from today.
//! - [`Library::set_rules`] signs the establishment's rules: whether an
//!   approval by the version's author counts, and how long before a review
//!   date reminders start.
//!
//! Each checks locally what every reader decides from the set
//! ([`crate::query::lifecycle`]), so nothing that would not count is
//! signed.

use gatehouse_protocol::envelope::{Body, Envelope, Verified};
use gatehouse_protocol::id::{EnvelopeId, ItemId};
use gatehouse_protocol::jiff::Span;
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::key::SecretKey;
use gatehouse_protocol::record::{
    DEFAULT_REVIEW_MONTHS, MAX_REMINDER_MONTHS, Record, RecordAction, SiteRules,
};
use gatehouse_protocol::trust::Judgement;
use gatehouse_protocol::vocab::Status;
use serde::{Deserialize, Serialize};

use crate::error::{LibraryError, Result};
use crate::library::Library;
use crate::query::lifecycle::approval_refusal;

/// What an approval did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approved {
    /// The item.
    pub item: ItemId,
    /// The version approved.
    pub version: u64,
    /// The approval record.
    pub record: EnvelopeId,
    /// Whether the approval also published the version (it was submitted).
    pub published: bool,
}

fn refuse(why: impl Into<String>) -> LibraryError {
    LibraryError::Lifecycle(why.into())
}

impl Library {
    /// The key to sign with: the one given, else this node's publishing key.
    fn key_or_signer(&self, key: Option<&SecretKey>) -> Result<SecretKey> {
        match key {
            Some(k) => Ok(SecretKey::from_seed(k.to_seed())),
            None => self.signing_key(),
        }
    }

    /// Signs `record` with `key`, judges it as a peer would, and stores it.
    pub fn sign_record(&mut self, key: &SecretKey, record: Record) -> Result<EnvelopeId> {
        let env = Verified::sign(
            Body::Record(Box::new(record)),
            key,
            &self.config.network,
            self.now(),
        );
        let env = Envelope::open(env.bytes(), &self.config.network)?;
        let j = self.replica.trust().judge(&env);
        if j != Judgement::Accepted {
            return Err(LibraryError::NotAuthorised(j));
        }
        let out = self.replica.accept(env)?;
        self.finish()?;
        Ok(out.id)
    }

    /// Approves the current version of `id`, owned here, signed with `key`
    /// (this node's publishing key when `None`). A version submitted for
    /// approval is published by the same key. Refused when the approval
    /// would not count (an author approving where two people are needed),
    /// or the key already approved this version.
    pub fn approve(&mut self, id: &ItemId, key: Option<&SecretKey>) -> Result<Approved> {
        let key = self.key_or_signer(key)?;
        let view = self.read_view();
        let (item, _) = crate::projection::load_item(&*self.store, id)?
            .ok_or_else(|| LibraryError::UnknownItem(id.to_hex()))?;
        if item.owner != self.config.establishment {
            return Err(LibraryError::NotOwner {
                item: *id,
                owner: view.establishment_name(&item.owner),
            });
        }
        if matches!(
            item.content.status,
            Status::Superseded | Status::Withdrawn | Status::Draft
        ) {
            return Err(LibraryError::Closed {
                id: *id,
                status: item.content.status,
            });
        }
        let history = view.history(id)?;
        let change = history
            .iter()
            .rev()
            .find(|e| e.made_version && e.version == item.version)
            .map(|e| e.envelope)
            .ok_or_else(|| {
                refuse(format!(
                    "version {} of this item was made by changes made at once at this site; revise it once more to approve one version",
                    item.version
                ))
            })?;
        let (rules, _) = view.site_rules(&item.owner)?;
        if let Some(why) = approval_refusal(&history, &rules, item.version, &change, &key.public())
        {
            return Err(refuse(format!(
                "this approval would not count: {why}. Ask another site lead to approve it with their own key (`gatehouse approve {} --key THEIR.key`)",
                id.to_hex()
            )));
        }
        if view
            .approvals(id, &history)?
            .iter()
            .any(|a| a.version == item.version && a.approver.key == key.public())
        {
            return Err(refuse(format!(
                "version {} is already approved with this key",
                item.version
            )));
        }
        let record = self.sign_record(
            &key,
            Record {
                establishment: item.owner,
                action: RecordAction::Approve {
                    item: *id,
                    version: item.version,
                    change,
                },
            },
        )?;
        let published = item.content.status == Status::Submitted;
        if published {
            let today = self.today();
            let mut content = item.content.clone();
            content.status = Status::Published;
            content.approved_on = Some(today);
            if content.approved_by.is_none() {
                content.approved_by = view
                    .named_member(&item.owner, &key.public())
                    .name
                    .or_else(|| Some(key.public().short()));
            }
            if content.effective_from.is_none_or(|d| d < today) {
                content.effective_from = Some(today);
            }
            content.validate()?;
            let (mut doc, current, salt) = self.doc_for_change_as(id, &key.public())?;
            gatehouse_protocol::item::write_standing(&mut doc, &content)?;
            self.commit_change_as(
                &key,
                *id,
                current.owner,
                salt,
                &mut doc,
                "approve and publish",
            )?;
        }
        Ok(Approved {
            item: *id,
            version: item.version,
            record,
            published,
        })
    }

    /// Records that the current version of `id` was reviewed and needs no
    /// change: a change signed with `key` moving the review date to `next`
    /// (one review cycle, three years, from today when `None`). Returns the
    /// new review date.
    pub fn review(
        &mut self,
        id: &ItemId,
        next: Option<Date>,
        key: Option<&SecretKey>,
    ) -> Result<Date> {
        let key = self.key_or_signer(key)?;
        let today = self.today();
        let next = match next {
            Some(d) => d,
            None => today
                .checked_add(Span::new().months(i64::from(DEFAULT_REVIEW_MONTHS)))
                .map_err(|e| refuse(format!("no review date three years on: {e}")))?,
        };
        if next <= today {
            return Err(refuse(format!(
                "the next review date {next} is not after today ({today})"
            )));
        }
        let (mut doc, current, salt) = self.doc_for_change_as(id, &key.public())?;
        if current.content.status != Status::Published {
            return Err(refuse(format!(
                "only an item in force is reviewed; this one is {}",
                current.content.status.label().to_lowercase()
            )));
        }
        let mut content = current.content.clone();
        content.review_due = next;
        content.validate()?;
        gatehouse_protocol::item::write_standing(&mut doc, &content)?;
        self.commit_change_as(
            &key,
            *id,
            current.owner,
            salt,
            &mut doc,
            "reviewed, no change",
        )?;
        Ok(next)
    }

    /// Asks staff in `jobs` (everyone when empty) to read the current
    /// version of `id`, owned here and in force, by `due`; signed with
    /// `key` (this node's publishing key when `None`).
    pub fn request_reading(
        &mut self,
        id: &ItemId,
        jobs: &[gatehouse_protocol::vocab::Job],
        due: Date,
        key: Option<&SecretKey>,
    ) -> Result<EnvelopeId> {
        let key = self.key_or_signer(key)?;
        let (item, _) = crate::projection::load_item(&*self.store, id)?
            .ok_or_else(|| LibraryError::UnknownItem(id.to_hex()))?;
        if item.owner != self.config.establishment {
            return Err(LibraryError::NotOwner {
                item: *id,
                owner: self.read_view().establishment_name(&item.owner),
            });
        }
        if item.content.status != Status::Published {
            return Err(refuse(format!(
                "only an item in force is read and acknowledged; this one is {}",
                item.content.status.label().to_lowercase()
            )));
        }
        if due < self.today() {
            return Err(refuse(format!("the date to read it by, {due}, has passed")));
        }
        let mut jobs = jobs.to_vec();
        jobs.sort();
        jobs.dedup();
        self.sign_record(
            &key,
            Record {
                establishment: item.owner,
                action: RecordAction::RequestReading {
                    item: *id,
                    version: item.version,
                    jobs,
                    due,
                },
            },
        )
    }

    /// Signs, with a person's own `key`, that they have read and
    /// understood the current version of `id` (an item of their
    /// establishment, in force). Refused when they already have.
    pub fn acknowledge(&mut self, key: &SecretKey, id: &ItemId) -> Result<EnvelopeId> {
        let view = self.read_view();
        let (item, _) = crate::projection::load_item(&*self.store, id)?
            .ok_or_else(|| LibraryError::UnknownItem(id.to_hex()))?;
        if item.content.status != Status::Published {
            return Err(refuse(format!(
                "only an item in force is acknowledged; this one is {}",
                item.content.status.label().to_lowercase()
            )));
        }
        if view
            .acknowledgements(id)?
            .iter()
            .any(|a| a.who.key == key.public() && a.version == item.version)
        {
            return Err(refuse(format!(
                "you have already acknowledged version {}",
                item.version
            )));
        }
        self.sign_record(
            key,
            Record {
                establishment: item.owner,
                action: RecordAction::Acknowledge {
                    item: *id,
                    version: item.version,
                },
            },
        )
    }

    /// After a significant revision of `id`: the request to read in force
    /// is made again for the new version, the same jobs asked, by `due`
    /// (four weeks from today when `None`), so staff read it again.
    /// Returns the new request, or `None` when nobody was asked to read it.
    pub fn ask_again(&mut self, id: &ItemId, due: Option<Date>) -> Result<Option<EnvelopeId>> {
        let Some(request) = self.read_view().reading_request(id)? else {
            return Ok(None);
        };
        let due = match due {
            Some(d) => d,
            None => self
                .today()
                .checked_add(Span::new().days(28))
                .map_err(|e| refuse(format!("no date four weeks on: {e}")))?,
        };
        self.request_reading(id, &request.jobs, due, None).map(Some)
    }

    /// Signs this establishment's rules with `key`: each given value
    /// replaces the one in force; a new revision of the rules.
    pub fn set_rules(
        &mut self,
        two_person_approval: Option<bool>,
        reminder_months: Option<u16>,
        key: Option<&SecretKey>,
    ) -> Result<SiteRules> {
        let key = self.key_or_signer(key)?;
        let (current, _) = self.read_view().site_rules(&self.config.establishment)?;
        if let Some(m) = reminder_months
            && !(1..=MAX_REMINDER_MONTHS).contains(&m)
        {
            return Err(refuse(format!(
                "reminders start between 1 and {MAX_REMINDER_MONTHS} months before a review date, not {m}"
            )));
        }
        let rules = SiteRules {
            revision: current.revision + 1,
            two_person_approval: two_person_approval.unwrap_or(current.two_person_approval),
            reminder_months: reminder_months.unwrap_or(current.reminder_months),
        };
        self.sign_record(
            &key,
            Record {
                establishment: self.config.establishment,
                action: RecordAction::Rules(rules),
            },
        )?;
        Ok(rules)
    }
}
