//! Where an item is in its life, as every node decides it from the set it
//! holds: the approvals signed for its versions and whether each counts,
//! the establishment's rules, and the stage of the current version
//! (submitted, approved, published without an approval, review due,
//! overdue, superseded, withdrawn).
//!
//! Approvals are records (kind 4) signed by the approver; whether one
//! counts is decided here, from the item's history and the rules in force,
//! so a node that received the approval before the version, or the rules
//! after both, decides as one that received them in the other order.

use gatehouse_protocol::envelope::{Body, Verified};
use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, ItemId};
use gatehouse_protocol::jiff::Span;
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::record::{Record, RecordAction, SiteRules};
use gatehouse_protocol::trust::Judgement;
use gatehouse_protocol::vocab::Status;
use serde::{Deserialize, Serialize};

use super::{Named, ReadView, VersionEntry, format_ms};
use crate::error::Result;
use crate::store::Tree;

/// One approval signed for a version of an item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApprovalView {
    /// The record's envelope.
    pub envelope: EnvelopeId,
    /// The version approved.
    pub version: u64,
    /// The change that made that version.
    pub change: EnvelopeId,
    /// Who signed it.
    pub approver: Named,
    /// When they say they signed it (RFC 3339).
    pub at: String,
    /// Whether it counts as the version's approval.
    pub counts: bool,
    /// Why it does not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The stage of an item's current version.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Submitted for approval; not in force.
    Submitted,
    /// Published with an approval that counts.
    Approved,
    /// Published, with no approval that counts.
    Unapproved,
    /// In force, and its review reminder has started.
    ReviewDue,
    /// In force past its review date.
    Overdue,
    /// Replaced by another item.
    Superseded,
    /// No longer in force.
    Withdrawn,
}

impl Stage {
    /// What people read.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Submitted => "Submitted for approval",
            Stage::Approved => "Approved and published",
            Stage::Unapproved => "Published, not approved",
            Stage::ReviewDue => "Review due",
            Stage::Overdue => "Review overdue",
            Stage::Superseded => "Superseded",
            Stage::Withdrawn => "Withdrawn",
        }
    }
}

/// An item's approvals, rules and stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lifecycle {
    /// The current version's stage.
    pub stage: Stage,
    /// The owning establishment's rules in force.
    pub rules: SiteRules,
    /// The approval that counts for the current version, if any.
    pub approved: Option<ApprovalView>,
    /// Every approval signed for the item, newest first.
    pub approvals: Vec<ApprovalView>,
    /// When review reminders start for the current version.
    pub reminders_from: Date,
}

/// The date `months` before `date` (the first day of a month too short).
pub fn months_before(date: Date, months: u16) -> Date {
    date.checked_sub(Span::new().months(i64::from(months)))
        .unwrap_or(Date::MIN)
}

/// Why an approval by `approver` of `version` does not count, given the
/// version's history and the rules; `None` when it counts. Shared by the
/// check before signing and by every reader.
pub(crate) fn approval_refusal(
    history: &[VersionEntry],
    rules: &SiteRules,
    version: u64,
    change: &EnvelopeId,
    approver: &gatehouse_protocol::key::PublicKey,
) -> Option<String> {
    let made = history
        .iter()
        .find(|e| e.envelope == *change && e.made_version && e.version == version);
    if made.is_none() {
        return Some(if history.iter().any(|e| e.envelope == *change) {
            format!("the change it names did not make version {version}")
        } else {
            "the version it approves is not held here yet".to_string()
        });
    }
    if rules.two_person_approval
        && history
            .iter()
            .any(|e| e.made_version && e.version == version && e.signer.key == *approver)
    {
        return Some(format!(
            "signed by an author of version {version}, and this establishment requires a second person to approve"
        ));
    }
    None
}

impl ReadView {
    /// The records in effect filed under `prefix` in [`Tree::Records`],
    /// judged by this view's trust.
    pub(crate) fn records_under(&self, prefix: &[u8]) -> Result<Vec<(Verified, Record)>> {
        let mut out = Vec::new();
        for (k, _) in self.store.scan(Tree::Records, prefix)? {
            let Some(id) = k.get(k.len().saturating_sub(32)..) else {
                continue;
            };
            let Ok(id) = <[u8; 32]>::try_from(id) else {
                continue;
            };
            let env = self.envelope(&EnvelopeId(id))?;
            let Body::Record(r) = env.body() else {
                continue;
            };
            let r = (**r).clone();
            let j = self.trust.judge_record(
                &env.id(),
                &env.signer(),
                &r.establishment,
                r.needs_publisher(),
            );
            if j == Judgement::Accepted {
                out.push((env, r));
            }
        }
        Ok(out)
    }

    /// The records in effect about one item.
    pub(crate) fn item_records(&self, item: &ItemId) -> Result<Vec<(Verified, Record)>> {
        let mut prefix = vec![b'i'];
        prefix.extend_from_slice(item.as_bytes());
        self.records_under(&prefix)
    }

    /// The rules `establishment` keeps, and the record that set them: the
    /// one with the highest revision, then the lowest envelope id; the
    /// network's defaults when it has set none.
    pub fn site_rules(
        &self,
        establishment: &EstablishmentId,
    ) -> Result<(SiteRules, Option<EnvelopeId>)> {
        let mut prefix = vec![b'r'];
        prefix.extend_from_slice(establishment.as_bytes());
        let mut best: Option<(SiteRules, EnvelopeId)> = None;
        for (env, r) in self.records_under(&prefix)? {
            let RecordAction::Rules(rules) = r.action else {
                continue;
            };
            if r.establishment != *establishment {
                continue;
            }
            let better = match &best {
                None => true,
                Some((b, id)) => {
                    rules.revision > b.revision || (rules.revision == b.revision && env.id() < *id)
                }
            };
            if better {
                best = Some((rules, env.id()));
            }
        }
        Ok(match best {
            Some((r, id)) => (r, Some(id)),
            None => (SiteRules::default(), None),
        })
    }

    /// Every approval signed for `item`, newest first, each with whether
    /// it counts, given the item's `history`.
    pub fn approvals(&self, item: &ItemId, history: &[VersionEntry]) -> Result<Vec<ApprovalView>> {
        let Some((it, _)) = self.load_item(item)? else {
            return Ok(Vec::new());
        };
        let (rules, _) = self.site_rules(&it.owner)?;
        let mut out = Vec::new();
        for (env, r) in self.item_records(item)? {
            let RecordAction::Approve {
                item: about,
                version,
                change,
            } = r.action
            else {
                continue;
            };
            if about != *item {
                continue;
            }
            let reason = if r.establishment != it.owner {
                Some("signed for another establishment than the item's owner".to_string())
            } else {
                approval_refusal(history, &rules, version, &change, &env.signer())
            };
            out.push((
                env.created_ms(),
                ApprovalView {
                    envelope: env.id(),
                    version,
                    change,
                    approver: self.named_member(&r.establishment, &env.signer()),
                    at: format_ms(env.created_ms()),
                    counts: reason.is_none(),
                    reason,
                },
            ));
        }
        out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.envelope.cmp(&b.1.envelope)));
        Ok(out.into_iter().map(|(_, a)| a).collect())
    }

    /// Where `item` is in its life on `today`.
    pub fn lifecycle(&self, item: &ItemId, today: Date) -> Result<Lifecycle> {
        self.lifecycle_from(item, &self.history(item)?, today)
    }

    /// [`ReadView::lifecycle`] given the item's `history`, already read.
    pub fn lifecycle_from(
        &self,
        item: &ItemId,
        history: &[VersionEntry],
        today: Date,
    ) -> Result<Lifecycle> {
        let (it, _) = self
            .load_item(item)?
            .ok_or_else(|| crate::error::LibraryError::UnknownItem(item.to_hex()))?;
        let (rules, _) = self.site_rules(&it.owner)?;
        let approvals = self.approvals(item, history)?;
        let approved = approvals
            .iter()
            .filter(|a| a.counts && a.version == it.version)
            .min_by(|a, b| a.at.cmp(&b.at).then(a.envelope.cmp(&b.envelope)))
            .cloned();
        let reminders_from = months_before(it.content.review_due, rules.reminder_months);
        let stage = match it.content.status {
            Status::Superseded => Stage::Superseded,
            Status::Withdrawn => Stage::Withdrawn,
            Status::Submitted | Status::Draft => Stage::Submitted,
            Status::Published if today > it.content.review_due => Stage::Overdue,
            Status::Published if today >= reminders_from => Stage::ReviewDue,
            Status::Published if approved.is_some() => Stage::Approved,
            Status::Published => Stage::Unapproved,
        };
        Ok(Lifecycle {
            stage,
            rules,
            approved,
            approvals,
            reminders_from,
        })
    }
}
