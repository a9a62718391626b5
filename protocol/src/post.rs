//! Posts: clinicians asking the network for advice, answering, discussing
//! items and current issues, and the moderation of what they post.
//!
//! A post is an envelope of kind 3 ([`crate::envelope::EnvelopeKind::Post`]),
//! signed by the person who wrote it. Every post speaks for an
//! establishment ([`Voice::Establishment`]), and its signer must be one of
//! that establishment's keys; only a network admin's hiding of a post
//! speaks for the network ([`Voice::Admin`]).
//!
//! Threads are named by the envelope id of the post that opened them (a
//! question or a topic). What a post does to another (an edit, a
//! retraction, a resolution, a hide) is decided from the set of posts
//! held, never from arrival order: see the node's forum projection.
//!
//! The encoding is canonical ([`crate::encoding`]); decoding bounds every
//! field, so a post is at most a few hundred KiB whatever it claims.

use crate::certificate::read_slug;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::id::{EnvelopeId, EstablishmentId, ItemId};
use crate::vocab::{Pathway, Setting};

/// Longest title of a question or topic, in bytes.
pub const MAX_TITLE_BYTES: usize = 300;
/// Longest body of a post (Markdown), in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest moderation reason, in bytes.
pub const MAX_REASON_BYTES: usize = 1_000;
/// Most library items a question may link to.
pub const MAX_LINKS: usize = 16;
/// Most care pathways or setting types a thread may name.
pub const MAX_TAGS: usize = 16;

/// How soon an asker needs an answer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Urgency {
    /// When someone can.
    Routine,
    /// Within a week.
    WithinAWeek,
    /// Within 48 hours.
    #[serde(rename = "within-48-hours")]
    Within48Hours,
}

impl Urgency {
    /// Every value, least urgent first.
    pub const ALL: &'static [Urgency] = &[
        Urgency::Routine,
        Urgency::WithinAWeek,
        Urgency::Within48Hours,
    ];

    fn tag(self) -> u8 {
        match self {
            Urgency::Routine => 1,
            Urgency::WithinAWeek => 2,
            Urgency::Within48Hours => 3,
        }
    }

    /// The stable machine name.
    pub fn slug(self) -> &'static str {
        match self {
            Urgency::Routine => "routine",
            Urgency::WithinAWeek => "within-a-week",
            Urgency::Within48Hours => "within-48-hours",
        }
    }

    /// The name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Urgency::Routine => "Routine",
            Urgency::WithinAWeek => "Within a week",
            Urgency::Within48Hours => "Within 48 hours",
        }
    }

    /// How long a question may wait for its first answer, in milliseconds
    /// (routine questions: four weeks).
    pub fn allowed_wait_ms(self) -> u64 {
        const DAY: u64 = 24 * 60 * 60 * 1000;
        match self {
            Urgency::Routine => 28 * DAY,
            Urgency::WithinAWeek => 7 * DAY,
            Urgency::Within48Hours => 2 * DAY,
        }
    }
}

impl std::str::FromStr for Urgency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        Urgency::ALL
            .iter()
            .copied()
            .find(|u| u.slug() == wanted)
            .ok_or_else(|| {
                format!("unknown urgency {s:?}; expected one of: routine, within-a-week, within-48-hours")
            })
    }
}

/// Whom the signer of a post speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voice {
    /// A member of this establishment (the signer must be one of its keys).
    Establishment(EstablishmentId),
    /// A network admin (only to hide a post network-wide).
    Admin,
}

/// A request for clinical advice from the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// One line saying what is asked.
    pub title: String,
    /// The question in full (Markdown).
    pub body: String,
    /// Care pathways it concerns (at least one).
    pub pathways: Vec<Pathway>,
    /// Setting types it concerns (none: any).
    pub settings: Vec<Setting>,
    /// How soon an answer is needed.
    pub urgency: Urgency,
    /// Library items it refers to.
    pub links: Vec<ItemId>,
}

/// A discussion thread: about a library item, or free-standing (a current
/// issue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// One line saying what is discussed.
    pub title: String,
    /// The opening post (Markdown).
    pub body: String,
    /// The library item discussed, if any.
    pub about: Option<ItemId>,
    /// Care pathways it concerns.
    pub pathways: Vec<Pathway>,
}

/// An answer to a question, or a reply in a discussion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The thread (its opening post's envelope id).
    pub thread: EnvelopeId,
    /// A post of the thread this one quotes.
    pub quoting: Option<EnvelopeId>,
    /// The reply (Markdown).
    pub body: String,
}

/// A new version of a post, by its author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The post edited (the original, not an earlier edit).
    pub post: EnvelopeId,
    /// The new title, for a question or topic.
    pub title: Option<String>,
    /// The new body.
    pub body: String,
}

/// What a post does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Opens a question thread.
    Ask(Question),
    /// Opens a discussion thread.
    Topic(Topic),
    /// Answers or replies in a thread.
    Reply(Reply),
    /// Replaces the text of one's own post.
    Edit(Edit),
    /// Withdraws one's own post.
    Retract {
        /// The post withdrawn.
        post: EnvelopeId,
    },
    /// Marks the answer that resolved a question (the asker, or a site
    /// lead of the asker's establishment).
    Resolve {
        /// The question.
        question: EnvelopeId,
        /// The answer that resolved it.
        answer: EnvelopeId,
    },
    /// Marks an answer helpful.
    Helpful {
        /// The answer.
        answer: EnvelopeId,
    },
    /// Hides a post (a site lead, for their own staff's posts; an admin,
    /// for any). The post stays in the signed history, shown as hidden.
    Hide {
        /// The post hidden.
        post: EnvelopeId,
        /// Why, for the moderation log.
        reason: String,
    },
}

impl Action {
    /// A short name for what the post does.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Ask(_) => "question",
            Action::Topic(_) => "topic",
            Action::Reply(_) => "reply",
            Action::Edit(_) => "edit",
            Action::Retract { .. } => "retraction",
            Action::Resolve { .. } => "resolution",
            Action::Helpful { .. } => "helpful mark",
            Action::Hide { .. } => "hide",
        }
    }
}

/// A post's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// Whom the signer speaks for.
    pub voice: Voice,
    /// What the post does.
    pub action: Action,
}

fn write_opt_id(w: &mut Writer, id: &Option<impl AsRef<[u8]>>) {
    match id {
        None => {
            w.u8(0);
        }
        Some(id) => {
            w.u8(1).fixed(id.as_ref());
        }
    }
}

fn read_flag(r: &mut Reader<'_>, field: &'static str) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        t => Err(DecodeError::UnknownTag {
            field,
            tag: u64::from(t),
        }),
    }
}

/// A required line of text: trimmed, not empty, one line.
fn read_title(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let s = r.str("title", MAX_TITLE_BYTES)?;
    if s.trim().is_empty() || s.trim() != s || s.contains(['\n', '\r']) {
        return Err(DecodeError::Invalid {
            field: "title",
            reason: "must be one line, trimmed and not empty",
        });
    }
    Ok(s.to_string())
}

fn read_body(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let s = r.str("body", MAX_BODY_BYTES)?;
    if s.trim().is_empty() {
        return Err(DecodeError::Invalid {
            field: "body",
            reason: "empty",
        });
    }
    Ok(s.to_string())
}

fn read_slugs<T: std::str::FromStr + std::fmt::Display + Ord + Copy>(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<Vec<T>, DecodeError> {
    let list: Vec<T> = r.seq(field, MAX_TAGS, |r| read_slug(r, field))?;
    // Canonical: sorted, no repeats, so one meaning has one encoding.
    if list.windows(2).any(|w| w[0] >= w[1]) {
        return Err(DecodeError::Invalid {
            field,
            reason: "must be sorted without repeats",
        });
    }
    Ok(list)
}

fn write_slugs<T: Copy + Ord>(w: &mut Writer, list: &[T], slug: impl Fn(T) -> &'static str) {
    let mut sorted = list.to_vec();
    canonical(&mut sorted);
    w.seq(&sorted, |w, v| {
        w.str(slug(*v));
    });
}

/// Sorts and dedups a vocabulary list into its canonical form.
pub fn canonical<T: Ord + Copy>(list: &mut Vec<T>) {
    list.sort();
    list.dedup();
}

impl Post {
    /// Canonical bytes. Lists of pathways and settings are written in
    /// their vocabulary's order, without repeats.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match &self.voice {
            Voice::Establishment(e) => w.u8(1).fixed(e.as_bytes()),
            Voice::Admin => w.u8(2),
        };
        match &self.action {
            Action::Ask(q) => {
                w.u8(1).str(&q.title).str(&q.body);
                write_slugs(&mut w, &q.pathways, Pathway::slug);
                write_slugs(&mut w, &q.settings, Setting::slug);
                w.u8(q.urgency.tag());
                w.seq(&q.links, |w, l| {
                    w.fixed(l.as_bytes());
                });
            }
            Action::Topic(t) => {
                w.u8(2).str(&t.title).str(&t.body);
                write_opt_id(&mut w, &t.about.map(|a| a.0));
                write_slugs(&mut w, &t.pathways, Pathway::slug);
            }
            Action::Reply(p) => {
                w.u8(3).fixed(p.thread.as_bytes());
                write_opt_id(&mut w, &p.quoting.map(|q| q.0));
                w.str(&p.body);
            }
            Action::Edit(e) => {
                w.u8(4).fixed(e.post.as_bytes());
                match &e.title {
                    None => w.u8(0),
                    Some(t) => w.u8(1).str(t),
                };
                w.str(&e.body);
            }
            Action::Retract { post } => {
                w.u8(5).fixed(post.as_bytes());
            }
            Action::Resolve { question, answer } => {
                w.u8(6).fixed(question.as_bytes()).fixed(answer.as_bytes());
            }
            Action::Helpful { answer } => {
                w.u8(7).fixed(answer.as_bytes());
            }
            Action::Hide { post, reason } => {
                w.u8(8).fixed(post.as_bytes()).str(reason);
            }
        }
        w.into_bytes()
    }

    /// Parses a post; every field bounded, lists canonical, and only a
    /// hide may speak for the admins.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let voice = match r.u8()? {
            1 => Voice::Establishment(EstablishmentId(r.fixed()?)),
            2 => Voice::Admin,
            t => {
                return Err(DecodeError::UnknownTag {
                    field: "voice",
                    tag: u64::from(t),
                });
            }
        };
        let action = match r.u8()? {
            1 => {
                let title = read_title(&mut r)?;
                let body = read_body(&mut r)?;
                let pathways = read_slugs(&mut r, "pathways")?;
                let settings = read_slugs(&mut r, "settings")?;
                if pathways.is_empty() {
                    return Err(DecodeError::Invalid {
                        field: "pathways",
                        reason: "a question names at least one care pathway",
                    });
                }
                let urgency = match r.u8()? {
                    1 => Urgency::Routine,
                    2 => Urgency::WithinAWeek,
                    3 => Urgency::Within48Hours,
                    t => {
                        return Err(DecodeError::UnknownTag {
                            field: "urgency",
                            tag: u64::from(t),
                        });
                    }
                };
                let links = r.seq("links", MAX_LINKS, |r| Ok(ItemId(r.fixed()?)))?;
                Action::Ask(Question {
                    title,
                    body,
                    pathways,
                    settings,
                    urgency,
                    links,
                })
            }
            2 => {
                let title = read_title(&mut r)?;
                let body = read_body(&mut r)?;
                let about = if read_flag(&mut r, "about")? {
                    Some(ItemId(r.fixed()?))
                } else {
                    None
                };
                let pathways = read_slugs(&mut r, "pathways")?;
                Action::Topic(Topic {
                    title,
                    body,
                    about,
                    pathways,
                })
            }
            3 => {
                let thread = EnvelopeId(r.fixed()?);
                let quoting = if read_flag(&mut r, "quoting")? {
                    Some(EnvelopeId(r.fixed()?))
                } else {
                    None
                };
                let body = read_body(&mut r)?;
                Action::Reply(Reply {
                    thread,
                    quoting,
                    body,
                })
            }
            4 => {
                let post = EnvelopeId(r.fixed()?);
                let title = if read_flag(&mut r, "title")? {
                    Some(read_title(&mut r)?)
                } else {
                    None
                };
                let body = read_body(&mut r)?;
                Action::Edit(Edit { post, title, body })
            }
            5 => Action::Retract {
                post: EnvelopeId(r.fixed()?),
            },
            6 => Action::Resolve {
                question: EnvelopeId(r.fixed()?),
                answer: EnvelopeId(r.fixed()?),
            },
            7 => Action::Helpful {
                answer: EnvelopeId(r.fixed()?),
            },
            8 => {
                let post = EnvelopeId(r.fixed()?);
                let reason = r.str("reason", MAX_REASON_BYTES)?;
                if reason.trim().is_empty() {
                    return Err(DecodeError::Invalid {
                        field: "reason",
                        reason: "a post is hidden with a reason",
                    });
                }
                Action::Hide {
                    post,
                    reason: reason.to_string(),
                }
            }
            t => {
                return Err(DecodeError::UnknownTag {
                    field: "post action",
                    tag: u64::from(t),
                });
            }
        };
        r.finish()?;
        if voice == Voice::Admin && !matches!(action, Action::Hide { .. }) {
            return Err(DecodeError::Invalid {
                field: "voice",
                reason: "only a hide may speak for the network's admins",
            });
        }
        Ok(Post { voice, action })
    }

    /// The free-text fields, named, for the patient-identifier scan.
    pub fn texts(&self) -> Vec<(&'static str, &str)> {
        match &self.action {
            Action::Ask(q) => vec![("title", &q.title), ("body", &q.body)],
            Action::Topic(t) => vec![("title", &t.title), ("body", &t.body)],
            Action::Reply(p) => vec![("body", &p.body)],
            Action::Edit(e) => {
                let mut v = vec![("body", e.body.as_str())];
                if let Some(t) = &e.title {
                    v.push(("title", t));
                }
                v
            }
            Action::Hide { reason, .. } => vec![("reason", reason)],
            Action::Retract { .. } | Action::Resolve { .. } | Action::Helpful { .. } => vec![],
        }
    }

    /// The body, Markdown, if the post carries one.
    pub fn body(&self) -> Option<&str> {
        match &self.action {
            Action::Ask(q) => Some(&q.body),
            Action::Topic(t) => Some(&t.body),
            Action::Reply(p) => Some(&p.body),
            Action::Edit(e) => Some(&e.body),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn question() -> Post {
        Post {
            voice: Voice::Establishment(EstablishmentId([7; 16])),
            action: Action::Ask(Question {
                title: "Gabapentinoid diversion on a Cat C wing".into(),
                body: "How do you manage it?".into(),
                pathways: vec![Pathway::SubstanceMisuse, Pathway::PharmacyMedicines],
                settings: vec![Setting::PrisonCatC],
                urgency: Urgency::WithinAWeek,
                links: vec![ItemId([1; 16])],
            }),
        }
    }

    #[test]
    fn every_action_round_trips() {
        let id = EnvelopeId([3; 32]);
        let voice = Voice::Establishment(EstablishmentId([7; 16]));
        let mut posts = vec![question()];
        for action in [
            Action::Topic(Topic {
                title: "Vapes on the wings".into(),
                body: "What do others do?".into(),
                about: Some(ItemId([2; 16])),
                pathways: vec![Pathway::HealthPromotion],
            }),
            Action::Reply(Reply {
                thread: id,
                quoting: Some(id),
                body: "We use supervised liquid.".into(),
            }),
            Action::Edit(Edit {
                post: id,
                title: Some("Better title".into()),
                body: "Fixed a typo".into(),
            }),
            Action::Retract { post: id },
            Action::Resolve {
                question: id,
                answer: id,
            },
            Action::Helpful { answer: id },
        ] {
            posts.push(Post { voice, action });
        }
        posts.push(Post {
            voice: Voice::Admin,
            action: Action::Hide {
                post: id,
                reason: "Off topic".into(),
            },
        });
        for p in posts {
            assert_eq!(
                Post::decode(&p.encode()),
                Ok(p.clone()),
                "{}",
                p.action.name()
            );
        }
    }

    #[test]
    fn a_slug_in_another_spelling_is_refused() {
        let bytes = question().encode();
        let at = bytes
            .windows(18)
            .position(|w| w == b"pharmacy-medicines")
            .expect("the slug is in the bytes");
        let mut other = bytes.clone();
        other[at] = b'P';
        assert!(Post::decode(&other).is_err());
        assert!(Post::decode(&bytes).is_ok());
    }

    #[test]
    fn lists_are_written_canonically_and_read_only_so() {
        let mut p = question();
        if let Action::Ask(q) = &mut p.action {
            q.pathways = vec![Pathway::SubstanceMisuse, Pathway::PharmacyMedicines];
        }
        let back = Post::decode(&p.encode()).expect("decodes");
        // Written in the vocabulary's order.
        let Action::Ask(q) = back.action else {
            panic!("a question")
        };
        assert_eq!(
            q.pathways,
            vec![Pathway::SubstanceMisuse, Pathway::PharmacyMedicines]
        );
    }

    #[test]
    fn urgencies_are_written_as_their_slugs() {
        for u in Urgency::ALL {
            let json = serde_json::to_string(u).expect("json");
            assert_eq!(json, format!("\"{}\"", u.slug()));
            assert_eq!(u.slug().parse::<Urgency>(), Ok(*u));
        }
    }

    #[test]
    fn only_a_hide_speaks_for_the_admins() {
        let mut p = question();
        p.voice = Voice::Admin;
        let err = Post::decode(&p.encode()).expect_err("refused");
        assert!(err.to_string().contains("admins"), "{err}");
    }

    #[test]
    fn empty_or_multi_line_titles_and_empty_bodies_are_refused() {
        for (title, body) in [
            ("", "b"),
            ("two\nlines", "b"),
            (" padded", "b"),
            ("t", "  "),
        ] {
            let mut p = question();
            if let Action::Ask(q) = &mut p.action {
                q.title = title.into();
                q.body = body.into();
            }
            assert!(Post::decode(&p.encode()).is_err(), "{title:?} {body:?}");
        }
    }

    proptest! {
        #[test]
        fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(p) = Post::decode(&bytes) {
                // What decodes is canonical: it encodes to the same bytes.
                prop_assert_eq!(p.encode(), bytes);
            }
        }
    }
}
