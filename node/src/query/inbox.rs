//! One person's inbox: answers to their questions, replies in threads they
//! took part in or watch, and changes to (and new discussions of) items
//! they watch. Worked out from the read view each time, so it holds
//! whatever the library holds, in any order it arrived; what the person
//! has seen and watches is theirs, kept on their node
//! ([`crate::staff::InboxState`]).

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_protocol::id::{EnvelopeId, ItemId};
use gatehouse_protocol::key::PublicKey;
use serde::{Deserialize, Serialize};

use super::ReadView;
use crate::projection::forum::What;

/// What a person watches, each with the time (ms) they began.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watching {
    /// Threads.
    pub threads: BTreeMap<EnvelopeId, u64>,
    /// Library items.
    pub items: BTreeMap<ItemId, u64>,
}

/// Threads and items watched at most, per person.
pub const MAX_WATCHED: usize = 500;

/// What an inbox entry tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InboxKind {
    /// An answer to the person's question.
    Answer,
    /// A reply in a thread they took part in or watch.
    Reply,
    /// A new version of an item they watch.
    ItemChanged,
    /// A new discussion of an item they watch.
    ItemDiscussed,
    /// The source of an item their establishment adopted changed since the
    /// version taken (`item` is the establishment's copy; `version` the
    /// source's now).
    SourceChanged,
}

/// One entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxEntry {
    /// What it tells of.
    pub kind: InboxKind,
    /// When (ms, as its signer claims).
    pub at_ms: u64,
    /// The thread, for posts.
    pub thread: Option<EnvelopeId>,
    /// The post.
    pub post: Option<EnvelopeId>,
    /// The item, for item changes.
    pub item: Option<ItemId>,
    /// The thread's or item's title.
    pub title: String,
    /// Who: the post's author, or the item's establishment.
    pub by: String,
    /// The item's version, for item changes.
    pub version: Option<u64>,
    /// Not yet seen.
    pub unread: bool,
}

/// An inbox, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inbox {
    /// The newest entries (at most the limit asked for).
    pub entries: Vec<InboxEntry>,
    /// Entries not yet seen, in all.
    pub unread: usize,
    /// The latest time of any entry (ms): seeing the inbox marks it read
    /// up to this, or to now if later.
    pub latest_ms: u64,
}

impl ReadView {
    /// `me`'s inbox, given what they watch and have read up to.
    pub fn inbox(
        &self,
        me: &PublicKey,
        watching: &Watching,
        read_up_to_ms: u64,
        limit: usize,
    ) -> Inbox {
        let forum = self.forum();
        let mut entries = Vec::new();
        // Each thread once: where I posted, from my first post; where I
        // only watch, from when I began watching.
        let mut threads: BTreeMap<EnvelopeId, Option<u64>> = BTreeMap::new();
        for t in forum.threads_of_person(me) {
            threads.insert(*t, None);
        }
        for (t, since) in &watching.threads {
            threads.entry(*t).or_insert(Some(*since));
        }
        for (id, watched_since) in threads {
            let Some(t) = forum.thread(&id) else { continue };
            let mine_first = std::iter::once(&t.opening)
                .chain(
                    t.facts
                        .iter()
                        .filter(|f| matches!(f.what, What::Reply { .. })),
                )
                .filter(|f| f.signer == *me)
                .map(|f| f.created_ms)
                .min();
            let from = match (mine_first, watched_since) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => continue,
            };
            let asked = t.opening.signer == *me && t.summary.is_question();
            for f in &t.facts {
                if !matches!(f.what, What::Reply { .. }) || f.signer == *me || f.created_ms < from {
                    continue;
                }
                let shown = t
                    .standing
                    .get(&f.id)
                    .is_none_or(|s| !s.retracted && s.hidden.is_none());
                if !shown {
                    continue;
                }
                entries.push(InboxEntry {
                    kind: if asked {
                        InboxKind::Answer
                    } else {
                        InboxKind::Reply
                    },
                    at_ms: f.created_ms,
                    thread: Some(id),
                    post: Some(f.id),
                    item: None,
                    title: t.summary.title.clone(),
                    by: self.author(&f.signer, &f.voice).label(),
                    version: None,
                    unread: false,
                });
            }
        }
        let mut seen_threads = BTreeSet::new();
        for (item, since) in &watching.items {
            if let Ok(v) = self.get(item, None)
                && v.updated_ms > *since
            {
                entries.push(InboxEntry {
                    kind: InboxKind::ItemChanged,
                    at_ms: v.updated_ms,
                    thread: None,
                    post: None,
                    item: Some(*item),
                    title: v.item.content.title.clone(),
                    by: v
                        .establishment
                        .name
                        .clone()
                        .unwrap_or_else(|| "unknown establishment".into()),
                    version: Some(v.item.version),
                    unread: false,
                });
            }
            for s in forum.about(item) {
                if s.author != *me
                    && s.created_ms > *since
                    && seen_threads.insert(s.id)
                    && !s.hidden
                    && !s.retracted
                {
                    entries.push(InboxEntry {
                        kind: InboxKind::ItemDiscussed,
                        at_ms: s.created_ms,
                        thread: Some(s.id),
                        post: Some(s.id),
                        item: Some(*item),
                        title: s.title.clone(),
                        by: self
                            .author(
                                &s.author,
                                &gatehouse_protocol::post::Voice::Establishment(s.establishment),
                            )
                            .label(),
                        version: None,
                        unread: false,
                    });
                }
            }
        }
        // Everyone signed in here works for this node's establishment.
        for a in self.source_changes().unwrap_or_default() {
            entries.push(InboxEntry {
                kind: InboxKind::SourceChanged,
                at_ms: a.source.updated_ms,
                thread: None,
                post: None,
                item: Some(a.mine.item.id),
                title: a.mine.item.content.title.clone(),
                by: a
                    .source
                    .establishment
                    .name
                    .clone()
                    .unwrap_or_else(|| "another establishment".into()),
                version: Some(a.source.item.version),
                unread: false,
            });
        }
        let mut unread = 0;
        let mut latest_ms = 0;
        for e in &mut entries {
            e.unread = e.at_ms > read_up_to_ms;
            unread += usize::from(e.unread);
            latest_ms = latest_ms.max(e.at_ms);
        }
        entries.sort_by(|a, b| {
            b.at_ms
                .cmp(&a.at_ms)
                .then_with(|| a.post.cmp(&b.post))
                .then_with(|| a.item.cmp(&b.item))
        });
        entries.truncate(limit);
        Inbox {
            entries,
            unread,
            latest_ms,
        }
    }
}
