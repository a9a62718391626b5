//! Reading the forum: lists of questions and discussions, one thread with
//! every post as it stands (current text, edits, retractions, hides,
//! helpful marks, the resolving answer), and the moderation log. The
//! views here are what the CLI, the JSON API and the pages share.

use gatehouse_protocol::certificate::MemberRole;
use gatehouse_protocol::envelope::Body;
use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, ItemId};
use gatehouse_protocol::key::PublicKey;
use gatehouse_protocol::post::{Action, Urgency, Voice};
use gatehouse_protocol::vocab::{Pathway, Setting};
use serde::{Deserialize, Serialize};

use super::{EstablishmentRef, ReadView, format_ms};
use crate::error::{LibraryError, Result};
use crate::projection::forum::{Summary, What};

/// Who signed a post: the person, their role and their establishment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Author {
    /// Their key.
    pub key: PublicKey,
    /// Their name, as their delegation gives it.
    pub name: Option<String>,
    /// Their role there (`None` for a network admin).
    pub role: Option<MemberRole>,
    /// Their establishment (`None` for a network admin).
    pub establishment: Option<EstablishmentRef>,
}

impl Author {
    /// "Dr A Patel (clinician), HMP Northgate", for display.
    pub fn label(&self) -> String {
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("key {}", &self.key.to_hex()[..8]));
        match (&self.role, &self.establishment) {
            (Some(role), Some(e)) => format!(
                "{name} ({}), {}",
                role.slug(),
                e.name.clone().unwrap_or_else(|| e.id.short())
            ),
            _ => format!("{name} (network admin)"),
        }
    }
}

/// Which threads a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ThreadList {
    /// Questions not yet resolved.
    #[default]
    Open,
    /// Open questions unanswered for longer than their urgency allows.
    Overdue,
    /// Resolved questions.
    Answered,
    /// Discussions (about items, or current issues).
    Discussions,
    /// Threads someone opened or posted in (see [`ThreadQuery::person`]).
    Mine,
    /// Every thread.
    All,
}

impl std::str::FromStr for ThreadList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "open" => ThreadList::Open,
            "overdue" | "unanswered" => ThreadList::Overdue,
            "answered" | "resolved" => ThreadList::Answered,
            "discussions" | "topics" => ThreadList::Discussions,
            "mine" => ThreadList::Mine,
            "all" => ThreadList::All,
            _ => {
                return Err(format!(
                    "unknown list {s:?}; expected one of: open, overdue, answered, discussions, mine, all"
                ));
            }
        })
    }
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ThreadQuery {
    /// Which threads.
    pub list: ThreadList,
    /// Only threads in one of these pathways (none: any).
    pub pathways: Vec<Pathway>,
    /// Only threads about or linking to this item.
    pub about: Option<ItemId>,
    /// The person a `Mine` list is for.
    pub person: Option<PublicKey>,
    /// Most threads returned.
    pub limit: usize,
}

/// A thread in a list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadSummary {
    /// The thread's id (its opening post's envelope id).
    pub id: EnvelopeId,
    /// `question` or `discussion`.
    pub kind: String,
    /// Its current title.
    pub title: String,
    /// Who opened it.
    pub author: Author,
    /// When (milliseconds since the epoch, as its author's clock says).
    pub created_ms: u64,
    /// When, for people.
    pub created: String,
    /// The latest post in it.
    pub last_activity_ms: u64,
    /// Replies shown.
    pub replies: usize,
    /// The answer that resolved it.
    pub resolved_by: Option<EnvelopeId>,
    /// A question's urgency.
    pub urgency: Option<Urgency>,
    /// A question unanswered for longer than its urgency allows.
    pub overdue: bool,
    /// Care pathways.
    pub pathways: Vec<Pathway>,
    /// Setting types a question concerns.
    pub settings: Vec<Setting>,
    /// The item a discussion is about.
    pub about: Option<ItemId>,
    /// Items a question links to.
    pub links: Vec<ItemId>,
    /// Withdrawn by its author.
    pub retracted: bool,
    /// Hidden by a moderator.
    pub hidden: bool,
}

/// A version of a post's text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostVersion {
    /// The envelope that carries it (the post, or an edit).
    pub id: EnvelopeId,
    /// When it was written.
    pub created_ms: u64,
    /// Its title, for an opening post.
    pub title: Option<String>,
    /// Its text (Markdown).
    pub body: String,
}

/// A hide in effect.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hidden {
    /// The hide's envelope.
    pub id: EnvelopeId,
    /// Who hid it.
    pub by: Author,
    /// Why.
    pub reason: String,
    /// When.
    pub created_ms: u64,
}

/// One post of a thread as it stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostView {
    /// The post's id.
    pub id: EnvelopeId,
    /// Who signed it.
    pub author: Author,
    /// When.
    pub created_ms: u64,
    /// When, for people.
    pub created: String,
    /// The current text; `None` when retracted or hidden.
    pub body: Option<String>,
    /// Every version of its text, the first one first; empty when
    /// retracted or hidden.
    pub versions: Vec<PostVersion>,
    /// Withdrawn by its author.
    pub retracted: bool,
    /// Hidden by a moderator.
    pub hidden: Option<Hidden>,
    /// People who marked it helpful.
    pub helpful: usize,
    /// The answer that resolved the question.
    pub resolves: bool,
    /// The post it quotes.
    pub quoting: Option<EnvelopeId>,
}

/// A thread with its posts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadView {
    /// Its summary.
    pub summary: ThreadSummary,
    /// The opening post, then the replies, oldest first.
    pub posts: Vec<PostView>,
}

/// One entry of the moderation log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModerationEntry {
    /// The hide's envelope.
    pub id: EnvelopeId,
    /// Who hid.
    pub by: Author,
    /// When.
    pub created_ms: u64,
    /// When, for people.
    pub created: String,
    /// The post hidden.
    pub post: EnvelopeId,
    /// Its thread.
    pub thread: EnvelopeId,
    /// Why.
    pub reason: String,
}

impl ReadView {
    /// Who `key` is, speaking for `voice`.
    pub fn author(&self, key: &PublicKey, voice: &Voice) -> Author {
        match voice {
            Voice::Admin => Author {
                key: *key,
                name: None,
                role: None,
                establishment: None,
            },
            Voice::Establishment(e) => Author {
                key: *key,
                name: self.named_member(e, key).name,
                role: self.trust().role_of(e, key),
                establishment: Some(self.named_establishment(e)),
            },
        }
    }

    fn summary_view(&self, s: &Summary, now_ms: u64) -> ThreadSummary {
        ThreadSummary {
            id: s.id,
            kind: if s.is_question() {
                "question"
            } else {
                "discussion"
            }
            .into(),
            title: s.title.clone(),
            author: self.author(&s.author, &Voice::Establishment(s.establishment)),
            created_ms: s.created_ms,
            created: format_ms(s.created_ms),
            last_activity_ms: s.last_activity_ms,
            replies: s.replies,
            resolved_by: s.resolved_by,
            urgency: s.opening.question.as_ref().map(|(u, _)| *u),
            overdue: s.overdue(now_ms),
            pathways: s.opening.pathways.clone(),
            settings: s
                .opening
                .question
                .as_ref()
                .map(|(_, st)| st.clone())
                .unwrap_or_default(),
            about: s.opening.about,
            links: s.opening.links.clone(),
            retracted: s.retracted,
            hidden: s.hidden,
        }
    }

    /// Threads for a list, most recently active first. Hidden and
    /// retracted threads are left out of every list but `All` and `Mine`.
    pub fn threads(&self, q: &ThreadQuery, now_ms: u64) -> Vec<ThreadSummary> {
        let forum = self.forum();
        let candidates = match &q.about {
            Some(item) => forum.about(item),
            None => forum.summaries(),
        };
        candidates
            .into_iter()
            .filter(|s| {
                let gone = s.hidden || s.retracted;
                let listed = match q.list {
                    ThreadList::Open => s.is_question() && s.resolved_by.is_none() && !gone,
                    ThreadList::Overdue => s.overdue(now_ms) && !gone,
                    ThreadList::Answered => s.resolved_by.is_some() && !gone,
                    ThreadList::Discussions => !s.is_question() && !gone,
                    ThreadList::Mine => q.person.is_some_and(|p| s.participants.contains(&p)),
                    ThreadList::All => true,
                };
                listed
                    && (q.pathways.is_empty()
                        || s.opening.pathways.iter().any(|p| q.pathways.contains(p)))
            })
            .take(if q.limit == 0 { usize::MAX } else { q.limit })
            .map(|s| self.summary_view(s, now_ms))
            .collect()
    }

    /// Finds a thread by its id or a unique prefix of it (8 characters or
    /// more).
    pub fn resolve_thread(&self, text: &str) -> Result<EnvelopeId> {
        let text = text.trim().to_ascii_lowercase();
        if let Ok(id) = text.parse::<EnvelopeId>() {
            return self
                .forum()
                .thread_of(&id)
                .ok_or(LibraryError::UnknownPost(id));
        }
        if text.len() < 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(LibraryError::BadPost(format!(
                "{text:?} is not a thread id (give at least its first 8 characters)"
            )));
        }
        let found: Vec<EnvelopeId> = self
            .forum()
            .summaries()
            .into_iter()
            .map(|s| s.id)
            .filter(|id| id.to_hex().starts_with(&text))
            .collect();
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(LibraryError::BadPost(format!(
                "no thread starts with {text}"
            ))),
            many => Err(LibraryError::AmbiguousId {
                prefix: text,
                count: many.len(),
            }),
        }
    }

    /// Finds a post (an opening or a reply) by its id or a unique prefix of
    /// it (6 characters or more); returns it with its thread.
    pub fn resolve_post(&self, text: &str) -> Result<(EnvelopeId, EnvelopeId)> {
        let text = text.trim().to_ascii_lowercase();
        let forum = self.forum();
        if let Ok(id) = text.parse::<EnvelopeId>() {
            return forum
                .thread_of(&id)
                .map(|t| (t, id))
                .ok_or(LibraryError::UnknownPost(id));
        }
        if text.len() < 6 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(LibraryError::BadPost(format!(
                "{text:?} is not a post id (give at least its first 6 characters)"
            )));
        }
        let mut found = Vec::new();
        for s in forum.summaries() {
            if let Some(t) = forum.thread(&s.id) {
                let posts = std::iter::once(&t.opening).chain(
                    t.facts
                        .iter()
                        .filter(|f| matches!(f.what, What::Reply { .. })),
                );
                for f in posts {
                    if f.id.to_hex().starts_with(&text) {
                        found.push((s.id, f.id));
                    }
                }
            }
        }
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(LibraryError::BadPost(format!("no post starts with {text}"))),
            many => Err(LibraryError::AmbiguousId {
                prefix: text,
                count: many.len(),
            }),
        }
    }

    /// One thread, every post as it stands.
    pub fn thread(&self, id: &EnvelopeId, now_ms: u64) -> Result<ThreadView> {
        let forum = self.forum();
        let t = forum.thread(id).ok_or(LibraryError::UnknownPost(*id))?;
        let mut posts = Vec::new();
        let mut members = vec![&t.opening];
        let mut replies: Vec<_> = t
            .facts
            .iter()
            .filter(|f| matches!(f.what, What::Reply { .. }))
            .collect();
        replies.sort_by_key(|f| (f.created_ms, f.id));
        members.extend(replies);
        for f in members {
            let standing = t.standing.get(&f.id).cloned().unwrap_or_default();
            let gone = standing.retracted || standing.hidden.is_some();
            let mut versions = Vec::new();
            if !gone {
                for (vid, ms) in std::iter::once((f.id, f.created_ms)).chain(standing.edits.clone())
                {
                    let env = self.envelope(&vid)?;
                    if let Body::Post(p) = env.body() {
                        let (title, body) = match &p.action {
                            Action::Ask(q) => (Some(q.title.clone()), q.body.clone()),
                            Action::Topic(tp) => (Some(tp.title.clone()), tp.body.clone()),
                            Action::Reply(r) => (None, r.body.clone()),
                            Action::Edit(e) => (e.title.clone(), e.body.clone()),
                            _ => continue,
                        };
                        versions.push(PostVersion {
                            id: vid,
                            created_ms: ms,
                            title,
                            body,
                        });
                    }
                }
            }
            let hidden = standing.hidden.as_ref().and_then(|(hid, reason)| {
                t.facts.iter().find(|h| h.id == *hid).map(|h| Hidden {
                    id: *hid,
                    by: self.author(&h.signer, &h.voice),
                    reason: reason.clone(),
                    created_ms: h.created_ms,
                })
            });
            posts.push(PostView {
                id: f.id,
                author: self.author(&f.signer, &f.voice),
                created_ms: f.created_ms,
                created: format_ms(f.created_ms),
                body: versions.last().map(|v| v.body.clone()),
                versions,
                retracted: standing.retracted,
                hidden,
                helpful: standing.helpful.len(),
                resolves: t.summary.resolved_by == Some(f.id),
                quoting: match &f.what {
                    What::Reply { quoting, .. } => *quoting,
                    _ => None,
                },
            });
        }
        Ok(ThreadView {
            summary: self.summary_view(&t.summary, now_ms),
            posts,
        })
    }

    /// Every hide in effect, newest first.
    pub fn moderation_log(&self) -> Vec<ModerationEntry> {
        self.forum()
            .moderation_log()
            .into_iter()
            .map(|m| ModerationEntry {
                id: m.hide,
                by: self.author(&m.by, &m.voice),
                created_ms: m.created_ms,
                created: format_ms(m.created_ms),
                post: m.post,
                thread: m.thread,
                reason: m.reason,
            })
            .collect()
    }

    /// How many posts are in effect here.
    pub fn post_count(&self) -> usize {
        self.forum().post_count()
    }

    /// Whether `key` may hide posts written for `establishment` (a lead
    /// there) or any post (an admin).
    pub fn may_moderate(&self, key: &PublicKey, establishment: &EstablishmentId) -> bool {
        self.trust().is_admin(key) || self.trust().is_lead_of(establishment, key)
    }
}
