//! The forum: questions, discussion threads and their replies, derived
//! from the posts in effect.
//!
//! What one post does to another is decided here, from the set of posts
//! held and the trust view, never from the order they arrived in: an edit
//! or a retraction counts only when signed by the post's author; a
//! question is resolved by its asker or a site lead of the asker's
//! establishment (the latest such resolution counts); a post is hidden by
//! a network admin, or by a lead of the establishment the post speaks for;
//! a helpful mark counts once per person, never the author's own. A post
//! that names one not held yet waits for it and takes effect when it
//! arrives.
//!
//! The forum keeps only what lists and summaries need (titles, tags, who
//! and when); bodies are read from the envelopes when a thread is shown.
//! It is rebuilt from the store whenever trust changes and grows by the
//! posts newly in effect otherwise.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use gatehouse_protocol::certificate::MemberRole;
use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, ItemId};
use gatehouse_protocol::key::PublicKey;
use gatehouse_protocol::post::{Action, Post, Urgency, Voice};
use gatehouse_protocol::trust::TrustView;
use gatehouse_protocol::vocab::{Pathway, Setting};

/// What the forum keeps of one post in effect.
#[derive(Debug, Clone)]
pub struct Fact {
    /// The post's envelope id.
    pub id: EnvelopeId,
    /// Its signer.
    pub signer: PublicKey,
    /// Whom it speaks for.
    pub voice: Voice,
    /// When its author says it was written.
    pub created_ms: u64,
    /// What it does.
    pub what: What,
}

/// The part of a post the forum needs.
#[derive(Debug, Clone)]
pub enum What {
    /// Opens a thread.
    Opening(Opening),
    /// A reply in a thread.
    Reply {
        /// The thread.
        thread: EnvelopeId,
        /// The post it quotes.
        quoting: Option<EnvelopeId>,
    },
    /// A new text for a post.
    Edit {
        /// The post.
        post: EnvelopeId,
        /// A new title (for an opening).
        title: Option<String>,
    },
    /// Withdraws a post.
    Retract {
        /// The post.
        post: EnvelopeId,
    },
    /// Marks a question resolved by an answer.
    Resolve {
        /// The question.
        question: EnvelopeId,
        /// The answer.
        answer: EnvelopeId,
    },
    /// Marks an answer helpful.
    Helpful {
        /// The answer.
        answer: EnvelopeId,
    },
    /// Hides a post.
    Hide {
        /// The post.
        post: EnvelopeId,
        /// Why.
        reason: String,
    },
}

/// What opens a thread.
#[derive(Debug, Clone)]
pub struct Opening {
    /// Its title as first written.
    pub title: String,
    /// A question's urgency and settings; `None` for a discussion.
    pub question: Option<(Urgency, Vec<Setting>)>,
    /// The library item discussed.
    pub about: Option<ItemId>,
    /// Library items a question links to.
    pub links: Vec<ItemId>,
    /// Care pathways.
    pub pathways: Vec<Pathway>,
}

impl Fact {
    /// The forum's view of a post in effect.
    pub fn of(id: EnvelopeId, signer: PublicKey, created_ms: u64, post: &Post) -> Self {
        let what = match &post.action {
            Action::Ask(q) => What::Opening(Opening {
                title: q.title.clone(),
                question: Some((q.urgency, q.settings.clone())),
                about: None,
                links: q.links.clone(),
                pathways: q.pathways.clone(),
            }),
            Action::Topic(t) => What::Opening(Opening {
                title: t.title.clone(),
                question: None,
                about: t.about,
                links: Vec::new(),
                pathways: t.pathways.clone(),
            }),
            Action::Reply(r) => What::Reply {
                thread: r.thread,
                quoting: r.quoting,
            },
            Action::Edit(e) => What::Edit {
                post: e.post,
                title: e.title.clone(),
            },
            Action::Retract { post } => What::Retract { post: *post },
            Action::Resolve { question, answer } => What::Resolve {
                question: *question,
                answer: *answer,
            },
            Action::Helpful { answer } => What::Helpful { answer: *answer },
            Action::Hide { post, reason } => What::Hide {
                post: *post,
                reason: reason.clone(),
            },
        };
        Fact {
            id,
            signer,
            voice: post.voice,
            created_ms,
            what,
        }
    }

    /// The post this one needs held before it can take effect.
    fn needs(&self) -> Option<EnvelopeId> {
        match &self.what {
            What::Opening(_) => None,
            What::Reply { thread, .. } => Some(*thread),
            What::Edit { post, .. } | What::Retract { post } | What::Hide { post, .. } => {
                Some(*post)
            }
            What::Resolve { question, .. } => Some(*question),
            What::Helpful { answer } => Some(*answer),
        }
    }

    fn establishment(&self) -> Option<EstablishmentId> {
        match self.voice {
            Voice::Establishment(e) => Some(e),
            Voice::Admin => None,
        }
    }

    fn order(&self) -> (u64, EnvelopeId) {
        (self.created_ms, self.id)
    }
}

/// How a post of a thread stands, once every post acting on it is counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    /// The edit whose text is current (the latest by its author).
    pub current: Option<EnvelopeId>,
    /// Every edit by its author, oldest first.
    pub edits: Vec<(EnvelopeId, u64)>,
    /// Withdrawn by its author.
    pub retracted: bool,
    /// Hidden by a moderator: (the hide, its reason).
    pub hidden: Option<(EnvelopeId, String)>,
    /// Hides of the post made after that one (a lead's, then an admin's
    /// network-wide one): no further effect, but the moderation log lists
    /// every hide.
    pub hides_after: Vec<(EnvelopeId, String)>,
    /// People who marked it helpful.
    pub helpful: BTreeSet<PublicKey>,
}

/// A thread's summary, for lists.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The opening post's id (the thread's id).
    pub id: EnvelopeId,
    /// Its current title.
    pub title: String,
    /// Who opened it.
    pub author: PublicKey,
    /// The establishment it was opened for.
    pub establishment: EstablishmentId,
    /// When it was opened.
    pub created_ms: u64,
    /// The latest post in it.
    pub last_activity_ms: u64,
    /// Replies shown (not retracted, not hidden).
    pub replies: usize,
    /// Replies from establishments other than the asker's.
    pub replies_from_others: usize,
    /// The answer that resolved it.
    pub resolved_by: Option<EnvelopeId>,
    /// What opened it.
    pub opening: Opening,
    /// Retracted by its author.
    pub retracted: bool,
    /// Hidden by a moderator.
    pub hidden: bool,
    /// Everyone who posted in it.
    pub participants: BTreeSet<PublicKey>,
}

impl Summary {
    /// Whether it is a question (not a discussion).
    pub fn is_question(&self) -> bool {
        self.opening.question.is_some()
    }

    /// Whether a question has gone unanswered past what its urgency allows.
    pub fn overdue(&self, now_ms: u64) -> bool {
        match &self.opening.question {
            Some((urgency, _)) => {
                self.replies_from_others == 0
                    && self.resolved_by.is_none()
                    && now_ms.saturating_sub(self.created_ms) > urgency.allowed_wait_ms()
            }
            None => false,
        }
    }
}

/// One thread: its opening and every post in effect that acts in it.
#[derive(Debug, Clone)]
pub struct Thread {
    /// The opening post.
    pub opening: Fact,
    /// Replies, and posts acting on the thread's posts, in no order.
    pub facts: Vec<Fact>,
    /// Worked out from the rest.
    pub summary: Summary,
    /// How each post (opening and replies) stands.
    pub standing: BTreeMap<EnvelopeId, Standing>,
}

/// A moderation action in effect.
#[derive(Debug, Clone)]
pub struct Moderation {
    /// The hide.
    pub hide: EnvelopeId,
    /// Who hid.
    pub by: PublicKey,
    /// For whom: an establishment's lead, or the admins.
    pub voice: Voice,
    /// When.
    pub created_ms: u64,
    /// The post hidden and its thread.
    pub post: EnvelopeId,
    /// The thread.
    pub thread: EnvelopeId,
    /// Why.
    pub reason: String,
}

/// Every thread, and the posts still waiting for what they act on.
#[derive(Debug, Clone, Default)]
pub struct Forum {
    threads: HashMap<EnvelopeId, Thread>,
    thread_of: HashMap<EnvelopeId, EnvelopeId>,
    waiting: HashMap<EnvelopeId, Vec<Fact>>,
    posts: usize,
    /// The threads each person posted in (opened or replied).
    by_person: HashMap<PublicKey, BTreeSet<EnvelopeId>>,
    /// The threads about, or linking to, each library item.
    by_item: HashMap<ItemId, BTreeSet<EnvelopeId>>,
}

fn is_lead(trust: &TrustView, est: &EstablishmentId, key: &PublicKey) -> bool {
    matches!(
        trust.role_of(est, key),
        Some(MemberRole::Establishment | MemberRole::Person)
    )
}

impl Forum {
    /// A forum of the facts given, judged under `trust`.
    pub fn build(facts: impl IntoIterator<Item = Fact>, trust: &TrustView) -> Self {
        let mut forum = Forum::default();
        for f in facts {
            forum.insert(f, trust);
        }
        forum
    }

    /// Adds a post newly in effect.
    pub fn insert(&mut self, fact: Fact, trust: &TrustView) {
        self.posts += 1;
        let mut touched = BTreeSet::new();
        let mut queue = vec![fact];
        while let Some(f) = queue.pop() {
            match f.needs() {
                None => {
                    let id = f.id;
                    if self.threads.contains_key(&id) {
                        continue;
                    }
                    self.thread_of.insert(id, id);
                    let summary = empty_summary(&f);
                    for item in summary.opening.about.iter().chain(&summary.opening.links) {
                        self.by_item.entry(*item).or_default().insert(id);
                    }
                    self.threads.insert(
                        id,
                        Thread {
                            opening: f,
                            facts: Vec::new(),
                            summary,
                            standing: BTreeMap::new(),
                        },
                    );
                    touched.insert(id);
                    queue.extend(self.waiting.remove(&id).unwrap_or_default());
                }
                Some(target) => match self.thread_of.get(&target).copied() {
                    None => self.waiting.entry(target).or_default().push(f),
                    Some(thread) => {
                        // A reply names its thread: only the opening will do.
                        if matches!(f.what, What::Reply { .. }) && thread != target {
                            continue;
                        }
                        let id = f.id;
                        let reply = matches!(f.what, What::Reply { .. });
                        if let Some(t) = self.threads.get_mut(&thread) {
                            t.facts.push(f);
                        }
                        touched.insert(thread);
                        if reply {
                            self.thread_of.insert(id, thread);
                            queue.extend(self.waiting.remove(&id).unwrap_or_default());
                        }
                    }
                },
            }
        }
        for id in touched {
            if let Some(t) = self.threads.get_mut(&id) {
                settle(t, trust);
                for p in &t.summary.participants {
                    self.by_person.entry(*p).or_default().insert(id);
                }
            }
        }
    }

    /// Posts in effect counted here (waiting ones included).
    pub fn post_count(&self) -> usize {
        self.posts
    }

    /// A thread by its id.
    pub fn thread(&self, id: &EnvelopeId) -> Option<&Thread> {
        self.threads.get(id)
    }

    /// The threads `person` opened or replied in.
    pub fn threads_of_person(&self, person: &PublicKey) -> impl Iterator<Item = &EnvelopeId> {
        self.by_person.get(person).into_iter().flatten()
    }

    /// The thread a post belongs to.
    pub fn thread_of(&self, post: &EnvelopeId) -> Option<EnvelopeId> {
        self.thread_of.get(post).copied()
    }

    /// Every thread's summary, most recently active first.
    pub fn summaries(&self) -> Vec<&Summary> {
        let mut out: Vec<&Summary> = self.threads.values().map(|t| &t.summary).collect();
        out.sort_by(|a, b| {
            b.last_activity_ms
                .cmp(&a.last_activity_ms)
                .then(b.id.cmp(&a.id))
        });
        out
    }

    /// Threads about one library item.
    pub fn about(&self, item: &ItemId) -> Vec<&Summary> {
        let mut out: Vec<&Summary> = self
            .by_item
            .get(item)
            .into_iter()
            .flatten()
            .filter_map(|id| self.threads.get(id))
            .map(|t| &t.summary)
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse((s.last_activity_ms, s.id)));
        out
    }

    /// Every hide that counts (by a lead of the post's site, or an admin),
    /// the first of a post's and any later ones, newest first.
    pub fn moderation_log(&self) -> Vec<Moderation> {
        let mut out = Vec::new();
        for t in self.threads.values() {
            for (post, standing) in &t.standing {
                for (hide, reason) in standing.hidden.iter().chain(&standing.hides_after) {
                    let Some(f) = t.facts.iter().find(|f| f.id == *hide) else {
                        continue;
                    };
                    out.push(Moderation {
                        hide: *hide,
                        by: f.signer,
                        voice: f.voice,
                        created_ms: f.created_ms,
                        post: *post,
                        thread: t.opening.id,
                        reason: reason.clone(),
                    });
                }
            }
        }
        out.sort_by_key(|m| std::cmp::Reverse((m.created_ms, m.hide)));
        out
    }
}

fn empty_summary(opening: &Fact) -> Summary {
    let What::Opening(o) = &opening.what else {
        unreachable!("a thread is opened by an opening")
    };
    Summary {
        id: opening.id,
        title: o.title.clone(),
        author: opening.signer,
        establishment: opening.establishment().unwrap_or(EstablishmentId([0; 16])),
        created_ms: opening.created_ms,
        last_activity_ms: opening.created_ms,
        replies: 0,
        replies_from_others: 0,
        resolved_by: None,
        opening: o.clone(),
        retracted: false,
        hidden: false,
        participants: BTreeSet::from([opening.signer]),
    }
}

/// Works out how every post of a thread stands, and its summary.
fn settle(t: &mut Thread, trust: &TrustView) {
    let mut summary = empty_summary(&t.opening);
    // The posts of the thread: the opening and its replies.
    let mut authors: BTreeMap<EnvelopeId, (PublicKey, Option<EstablishmentId>)> = BTreeMap::new();
    authors.insert(t.opening.id, (t.opening.signer, t.opening.establishment()));
    for f in &t.facts {
        if matches!(f.what, What::Reply { .. }) {
            authors.insert(f.id, (f.signer, f.establishment()));
        }
    }
    let mut standing: BTreeMap<EnvelopeId, Standing> = authors
        .keys()
        .map(|id| (*id, Standing::default()))
        .collect();
    let mut facts: Vec<&Fact> = t.facts.iter().collect();
    facts.sort_by_key(|f| f.order());
    let mut title_at: Option<(u64, EnvelopeId)> = None;
    let mut resolved: Option<((u64, EnvelopeId), EnvelopeId)> = None;
    for f in facts {
        summary.last_activity_ms = summary.last_activity_ms.max(f.created_ms);
        match &f.what {
            What::Opening(_) | What::Reply { .. } => {}
            What::Edit { post, title } => {
                if authors.get(post).is_some_and(|(a, _)| *a == f.signer)
                    && let Some(s) = standing.get_mut(post)
                {
                    s.current = Some(f.id);
                    s.edits.push((f.id, f.created_ms));
                    if *post == t.opening.id
                        && let Some(title) = title
                        && title_at.is_none_or(|at| f.order() > at)
                    {
                        summary.title = title.clone();
                        title_at = Some(f.order());
                    }
                }
            }
            What::Retract { post } => {
                if authors.get(post).is_some_and(|(a, _)| *a == f.signer)
                    && let Some(s) = standing.get_mut(post)
                {
                    s.retracted = true;
                }
            }
            What::Hide { post, reason } => {
                let may = match f.voice {
                    Voice::Admin => true,
                    Voice::Establishment(e) => {
                        authors.get(post).is_some_and(|(_, pe)| *pe == Some(e))
                            && is_lead(trust, &e, &f.signer)
                    }
                };
                if may && let Some(s) = standing.get_mut(post) {
                    let hide = (f.id, reason.clone());
                    if s.hidden.is_none() {
                        s.hidden = Some(hide);
                    } else {
                        s.hides_after.push(hide);
                    }
                }
            }
            What::Helpful { answer } => {
                if *answer != t.opening.id
                    && authors.get(answer).is_some_and(|(a, _)| *a != f.signer)
                    && let Some(s) = standing.get_mut(answer)
                {
                    s.helpful.insert(f.signer);
                }
            }
            What::Resolve { question, answer } => {
                let asker = t.opening.signer;
                let asker_est = t.opening.establishment();
                let may = f.signer == asker
                    || (f.establishment().is_some()
                        && f.establishment() == asker_est
                        && asker_est.is_some_and(|e| is_lead(trust, &e, &f.signer)));
                if *question == t.opening.id
                    && t.opening_is_question()
                    && *answer != t.opening.id
                    && authors.contains_key(answer)
                    && may
                    && resolved.is_none_or(|(at, _)| f.order() > at)
                {
                    resolved = Some((f.order(), *answer));
                }
            }
        }
    }
    for f in &t.facts {
        if let What::Reply { .. } = f.what {
            summary.participants.insert(f.signer);
            let shown = standing
                .get(&f.id)
                .is_some_and(|s| !s.retracted && s.hidden.is_none());
            if shown {
                summary.replies += 1;
                if f.establishment() != t.opening.establishment() {
                    summary.replies_from_others += 1;
                }
            }
        }
    }
    if let Some(s) = standing.get(&t.opening.id) {
        summary.retracted = s.retracted;
        summary.hidden = s.hidden.is_some();
    }
    summary.resolved_by = resolved.map(|(_, a)| a);
    t.summary = summary;
    t.standing = standing;
}

impl Thread {
    fn opening_is_question(&self) -> bool {
        matches!(&self.opening.what, What::Opening(o) if o.question.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_protocol::key::SecretKey;
    use gatehouse_protocol::post::{Question, Reply};

    fn key(n: u8) -> PublicKey {
        SecretKey::from_seed([n; 32]).public()
    }

    fn est(n: u8) -> Voice {
        Voice::Establishment(EstablishmentId([n; 16]))
    }

    fn fact(id: u8, signer: u8, voice: Voice, ms: u64, action: Action) -> Fact {
        Fact::of(
            EnvelopeId([id; 32]),
            key(signer),
            ms,
            &Post { voice, action },
        )
    }

    fn ask() -> Action {
        Action::Ask(Question {
            title: "Naloxone on release".into(),
            body: "What do you do?".into(),
            pathways: vec![Pathway::SubstanceMisuse],
            settings: vec![],
            urgency: Urgency::Within48Hours,
            links: vec![],
        })
    }

    fn reply(thread: u8) -> Action {
        Action::Reply(Reply {
            thread: EnvelopeId([thread; 32]),
            quoting: None,
            body: "We hand it out at the gate.".into(),
        })
    }

    fn id(n: u8) -> EnvelopeId {
        EnvelopeId([n; 32])
    }

    #[test]
    fn the_same_posts_in_any_order_make_the_same_forum() {
        let trust = TrustView::default();
        let facts = vec![
            fact(1, 10, est(1), 100, ask()),
            fact(2, 20, est(2), 200, reply(1)),
            fact(3, 30, est(3), 300, reply(1)),
            fact(
                4,
                10,
                est(1),
                400,
                Action::Resolve {
                    question: id(1),
                    answer: id(3),
                },
            ),
            fact(5, 10, est(1), 500, Action::Helpful { answer: id(2) }),
            // An edit by someone else has no effect.
            fact(6, 30, est(3), 600, Action::Retract { post: id(2) }),
            fact(7, 20, est(2), 700, Action::Retract { post: id(2) }),
        ];
        let shape = |f: &Forum| {
            let t = f.thread(&id(1)).expect("the thread");
            (
                t.summary.replies,
                t.summary.resolved_by,
                t.standing.clone(),
                t.summary.last_activity_ms,
            )
        };
        let forward = Forum::build(facts.clone(), &trust);
        let backward = Forum::build(facts.iter().rev().cloned(), &trust);
        assert_eq!(shape(&forward), shape(&backward));
        let t = forward.thread(&id(1)).expect("thread");
        assert_eq!(t.summary.resolved_by, Some(id(3)));
        assert_eq!(t.summary.replies, 1, "the retracted reply is not counted");
        assert!(t.standing[&id(2)].retracted);
        assert_eq!(t.standing[&id(2)].helpful.len(), 1);
        assert_eq!(t.summary.last_activity_ms, 700);
    }

    #[test]
    fn only_the_asker_resolves_and_only_an_author_edits() {
        let trust = TrustView::default();
        let forum = Forum::build(
            vec![
                fact(1, 10, est(1), 100, ask()),
                fact(2, 20, est(2), 200, reply(1)),
                fact(
                    3,
                    20,
                    est(2),
                    300,
                    Action::Resolve {
                        question: id(1),
                        answer: id(2),
                    },
                ),
                fact(
                    4,
                    10,
                    est(1),
                    400,
                    Action::Edit(gatehouse_protocol::post::Edit {
                        post: id(2),
                        title: None,
                        body: "Not mine to change".into(),
                    }),
                ),
            ],
            &trust,
        );
        let t = forum.thread(&id(1)).expect("thread");
        assert_eq!(t.summary.resolved_by, None);
        assert_eq!(t.standing[&id(2)].current, None);
    }

    #[test]
    fn an_unanswered_urgent_question_is_overdue_after_48_hours() {
        let forum = Forum::build(vec![fact(1, 10, est(1), 0, ask())], &TrustView::default());
        let s = &forum.thread(&id(1)).expect("thread").summary;
        assert!(!s.overdue(47 * 3_600_000));
        assert!(s.overdue(49 * 3_600_000));
    }

    #[test]
    fn a_reply_that_names_a_reply_as_its_thread_is_not_shown() {
        let forum = Forum::build(
            vec![
                fact(1, 10, est(1), 100, ask()),
                fact(2, 20, est(2), 200, reply(1)),
                fact(3, 30, est(3), 300, reply(2)),
            ],
            &TrustView::default(),
        );
        assert_eq!(forum.thread(&id(1)).expect("thread").summary.replies, 1);
    }
}
