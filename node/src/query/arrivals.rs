//! What envelopes that took effect brought, in terms of content: new and
//! revised items by title and owner, trust changes in plain words, posts.
//! A bundle import reports it, and the network task logs it and keeps the
//! latest lines for `gatehouse status` after each batch from peers.
//!
//! Nothing here keeps an envelope: an [`Arrival`] is the little each one
//! says (its item, or its certificate), and only the items named (at most
//! [`MAX_LISTED_ARRIVALS`]) are loaded to be named.

use std::collections::BTreeMap;

use gatehouse_protocol::certificate::{Certificate, RevokeTarget};
use gatehouse_protocol::envelope::{Body, Verified};
use gatehouse_protocol::id::ItemId;
use gatehouse_protocol::key::PublicKey;
use serde::{Deserialize, Serialize};

use crate::query::{ReadView, key_in_words};

/// Most items (or trust changes) a report names one by one; the rest are
/// counted.
pub const MAX_LISTED_ARRIVALS: usize = 50;

/// An item that arrived, as it now stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ArrivedItem {
    /// Whether it was new to this node (else it was revised).
    pub new: bool,
    /// Its id.
    pub id: ItemId,
    /// Its title.
    pub title: String,
    /// The establishment that owns it.
    pub establishment: String,
    /// The version this node now holds.
    pub version: u64,
}

/// What arrived, in terms of content rather than envelopes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Arrivals {
    /// How many items were new to this node.
    pub new_items: usize,
    /// How many items this node held got new versions.
    pub revised_items: usize,
    /// The first new and revised items (at most [`MAX_LISTED_ARRIVALS`] each).
    pub items: Vec<ArrivedItem>,
    /// Trust changes in plain words: admissions, delegations, revocations
    /// and admin-set changes (at most [`MAX_LISTED_ARRIVALS`]).
    pub trust: Vec<String>,
    /// How many trust changes there were in all.
    pub trust_changes: usize,
    /// New posts: questions, answers and discussion.
    pub posts: usize,
    /// New records: approvals, acknowledgements, requests to read, rules.
    #[serde(default)]
    pub records: usize,
}

/// What one envelope brings, kept for a report while a batch is taken in
/// (not the envelope: a bundle may hold a million).
#[derive(Debug, Clone)]
pub enum Arrival {
    /// A change to this item; `creates`: it is the item's first change (it
    /// depends on no other), so the item is new here unless it was held.
    Item {
        /// The item.
        item: ItemId,
        /// Whether this change created it.
        creates: bool,
    },
    /// A post.
    Post,
    /// A record (approval, acknowledgement, request to read, rules).
    Record,
    /// A certificate (small; named once the import's names are known).
    Trust(Certificate),
    /// A kind this version does not read.
    Other,
}

impl Arrival {
    /// What `env` brings.
    pub fn of(env: &Verified) -> Self {
        Self::of_body(env.body())
    }

    /// What an envelope with `body` brings.
    pub fn of_body(body: &Body) -> Self {
        match body {
            Body::Change(c) => Arrival::Item {
                item: c.item,
                creates: c.change.deps().is_empty(),
            },
            Body::Post(_) => Arrival::Post,
            Body::Record(_) => Arrival::Record,
            Body::Certificate(c) => Arrival::Trust(c.clone()),
            Body::Unread { .. } => Arrival::Other,
        }
    }
}

/// What `arrivals` (new and in effect) brought, as `view` now shows it. An
/// item is new when its first change is among them, else revised.
pub fn arrivals(view: &ReadView, arrivals: &[Arrival]) -> Arrivals {
    let mut arrived = Arrivals::default();
    // Each item, and whether it was created by what arrived.
    let mut items: BTreeMap<ItemId, bool> = BTreeMap::new();
    let holders = view.key_holders();
    let key = |k: &PublicKey| key_in_words(&holders, k);
    for arrival in arrivals {
        let said = match arrival {
            Arrival::Item { item, creates } => {
                *items.entry(*item).or_default() |= *creates;
                continue;
            }
            Arrival::Post => {
                arrived.posts += 1;
                continue;
            }
            Arrival::Record => {
                arrived.records += 1;
                continue;
            }
            Arrival::Other => continue,
            Arrival::Trust(Certificate::Genesis(g)) => {
                format!("the network {} was founded", g.name)
            }
            Arrival::Trust(Certificate::Admit(a)) => format!(
                "{} admitted to the network ({}, {}), establishment key {}",
                a.name,
                a.setting.label(),
                a.nation.label(),
                a.key.short()
            ),
            Arrival::Trust(Certificate::Delegate(d)) => format!(
                "{} may act for {} as {} (key {})",
                d.name,
                view.establishment_name(&d.establishment),
                d.role.slug(),
                d.member.short()
            ),
            Arrival::Trust(Certificate::Revoke(r)) => match &r.target {
                RevokeTarget::Key(k) => format!("key {} revoked: {}", key(k), r.reason),
                RevokeTarget::Establishment(e) => format!(
                    "{} removed from the network: {}",
                    view.establishment_name(e),
                    r.reason
                ),
            },
            Arrival::Trust(Certificate::AdminSet(_)) => "the network's admin set changed".into(),
            Arrival::Trust(Certificate::Endorse(_)) => {
                "an admin endorsed a change of the admin set".into()
            }
        };
        arrived.trust_changes += 1;
        if arrived.trust.len() < MAX_LISTED_ARRIVALS {
            arrived.trust.push(said);
        }
    }
    for (id, new) in items {
        let count = if new {
            &mut arrived.new_items
        } else {
            &mut arrived.revised_items
        };
        *count += 1;
        // Only the items listed are loaded; the rest are counted. An item
        // whose changes are held but not visible (built on an invalidated
        // change) is counted and not named.
        if *count > MAX_LISTED_ARRIVALS {
            continue;
        }
        if let Ok(v) = view.get(&id, None) {
            arrived.items.push(ArrivedItem {
                new,
                id,
                title: v.item.content.title.clone(),
                establishment: view.establishment_name(&v.item.owner),
                version: v.item.version,
            });
        }
    }
    arrived
}

impl Arrivals {
    /// Whether anything arrived that took effect.
    pub fn is_empty(&self) -> bool {
        self.new_items + self.revised_items + self.trust_changes + self.posts + self.records == 0
    }

    /// The report as lines for people, one per named item or trust change,
    /// then what was only counted.
    pub fn lines(&self) -> Vec<String> {
        let noun =
            |n: usize, one: &'static str, many: &'static str| if n == 1 { one } else { many };
        let mut out: Vec<String> = self
            .items
            .iter()
            .map(|item| {
                let (id, by, title, v) = (
                    item.id.short(),
                    &item.establishment,
                    &item.title,
                    item.version,
                );
                if item.new {
                    format!("new item from {by}: {title} ({id}, version {v})")
                } else {
                    format!("revised by {by}: {title} ({id}, now version {v})")
                }
            })
            .collect();
        let listed_new = self.items.iter().filter(|i| i.new).count();
        let listed_revised = self.items.len() - listed_new;
        let unlisted = |all: usize, listed: usize, one, many| {
            let n = all.saturating_sub(listed);
            (n > 0).then(|| format!("and {n} more {}", noun(n, one, many)))
        };
        out.extend(unlisted(
            self.new_items,
            listed_new,
            "new item",
            "new items",
        ));
        out.extend(unlisted(
            self.revised_items,
            listed_revised,
            "revised item",
            "revised items",
        ));
        out.extend(self.trust.iter().map(|said| format!("trust: {said}")));
        out.extend(unlisted(
            self.trust_changes,
            self.trust.len(),
            "trust change",
            "trust changes",
        ));
        if self.posts > 0 {
            let n = self.posts;
            out.push(format!(
                "{n} {} in questions and discussions",
                noun(n, "new post", "new posts")
            ));
        }
        if self.records > 0 {
            let n = self.records;
            out.push(format!(
                "{n} {} (approvals, acknowledgements, requests to read, rules)",
                noun(n, "new record", "new records")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_only_counted_is_said_after_what_is_named() {
        let item = |new, n: u8| ArrivedItem {
            new,
            id: ItemId([n; 16]),
            title: format!("Item {n}"),
            establishment: "HMP Bravo".into(),
            version: if new { 1 } else { 3 },
        };
        let a = Arrivals {
            new_items: 52,
            revised_items: 1,
            items: vec![item(true, 1), item(false, 2)],
            trust: vec!["HMP Bravo admitted".into()],
            trust_changes: 2,
            posts: 1,
            records: 2,
        };
        assert_eq!(
            a.lines(),
            [
                "new item from HMP Bravo: Item 1 (01010101, version 1)",
                "revised by HMP Bravo: Item 2 (02020202, now version 3)",
                "and 51 more new items",
                "trust: HMP Bravo admitted",
                "and 1 more trust change",
                "1 new post in questions and discussions",
                "2 new records (approvals, acknowledgements, requests to read, rules)",
            ]
        );
        assert!(Arrivals::default().lines().is_empty());
        assert!(Arrivals::default().is_empty() && !a.is_empty());
    }
}
