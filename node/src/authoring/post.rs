//! Writing posts: questions, topics, replies, edits, retractions,
//! resolutions, helpful marks and hides. A post is scanned for patient
//! identifiers (the error points at the text), checked against the forum
//! (a reply needs its thread, an edit its own post), signed with the
//! writer's own key, judged before it is stored, and handed to the replica.
//! What arrives from peers passes the same identifier scan
//! ([`find_identifier`], used by the replica on receipt).

use gatehouse_protocol::envelope::{Body, Verified};
use gatehouse_protocol::id::EnvelopeId;
use gatehouse_protocol::identifier::{IdentifierMatch, find_identifiers};
use gatehouse_protocol::key::SecretKey;
use gatehouse_protocol::post::{Action, Post, Voice};
use gatehouse_protocol::trust::Judgement;

use crate::error::{LibraryError, Result};
use crate::library::Library;
use crate::projection::forum::What;
use crate::projection::markdown::plain_text;

/// The first patient identifier in a post's free text, with the field it
/// is in: the text as written, then the body as it renders (so Markdown
/// that splits digits from the source scan is caught).
pub fn find_identifier(post: &Post) -> Option<(&'static str, IdentifierMatch)> {
    for (field, text) in post.texts() {
        if let Some(m) = find_identifiers(text).into_iter().next() {
            return Some((field, m));
        }
    }
    let rendered = plain_text(post.body()?);
    find_identifiers(&rendered)
        .into_iter()
        .next()
        .map(|m| ("body (as rendered)", m))
}

impl Library {
    /// Signs `post` with `key` and stores it durably, once it passes the
    /// rules a post from a peer must meet and the forum's: no patient
    /// identifier, its thread or post held, an edit or retraction only of
    /// one's own post. Returns the post's envelope id.
    pub fn post_as(&mut self, key: &SecretKey, post: Post) -> Result<EnvelopeId> {
        if let Some((field, m)) = find_identifier(&post) {
            return Err(LibraryError::IdentifierInPost {
                field,
                kind: m.kind,
                text: m.text,
                line: m.line,
                column: m.column,
            });
        }
        self.check_post_target(key, &post)?;
        let env = Verified::sign(
            Body::Post(Box::new(post)),
            key,
            &self.config.network,
            self.now(),
        );
        // What decodes is what a peer will read; a post too large or
        // malformed is refused here rather than by every peer.
        let env = gatehouse_protocol::envelope::Envelope::open(env.bytes(), &self.config.network)?;
        let j = self.replica.trust().judge(&env);
        if j != Judgement::Accepted {
            return Err(LibraryError::NotAuthorised(j));
        }
        let out = self.replica.accept(env)?;
        self.finish()?;
        Ok(out.id)
    }

    /// Signs `post` for this node's establishment with its publishing key
    /// (the site lead's, used from the CLI).
    pub fn post(&mut self, action: Action) -> Result<EnvelopeId> {
        let key = self.signing_key()?;
        let post = Post {
            voice: Voice::Establishment(self.config.establishment),
            action,
        };
        self.post_as(&key, post)
    }

    /// Hides `post` network-wide, signed with a network admin's `key`;
    /// the reason goes to the moderation log.
    pub fn hide_network_wide(
        &mut self,
        key: &SecretKey,
        post: EnvelopeId,
        reason: String,
    ) -> Result<EnvelopeId> {
        self.post_as(
            key,
            Post {
                voice: Voice::Admin,
                action: Action::Hide { post, reason },
            },
        )
    }

    fn check_post_target(&self, key: &SecretKey, post: &Post) -> Result<()> {
        let view = self.read_view();
        let forum = view.forum();
        let held = |id: &EnvelopeId| -> Result<EnvelopeId> {
            forum.thread_of(id).ok_or(LibraryError::UnknownPost(*id))
        };
        // The post's author and the establishment it speaks for.
        let written_by = |id: &EnvelopeId| {
            let thread = forum.thread(&forum.thread_of(id)?)?;
            if thread.opening.id == *id {
                return Some((thread.opening.signer, thread.opening.voice));
            }
            thread
                .facts
                .iter()
                .find(|f| f.id == *id && matches!(f.what, What::Reply { .. }))
                .map(|f| (f.signer, f.voice))
        };
        let author_of = |id: &EnvelopeId| written_by(id).map(|(signer, _)| signer);
        match &post.action {
            Action::Ask(_) | Action::Topic(_) => {}
            Action::Reply(r) => {
                if held(&r.thread)? != r.thread {
                    return Err(LibraryError::BadPost(format!(
                        "{} is a reply, not a thread: reply in its thread",
                        r.thread
                    )));
                }
                if let Some(q) = &r.quoting
                    && held(q)? != r.thread
                {
                    return Err(LibraryError::BadPost(format!(
                        "the post quoted ({q}) is in another thread"
                    )));
                }
            }
            Action::Edit(e) => {
                held(&e.post)?;
                if author_of(&e.post) != Some(key.public()) {
                    return Err(LibraryError::BadPost(
                        "only its author may edit a post".into(),
                    ));
                }
                if e.title.is_some() && held(&e.post)? != e.post {
                    return Err(LibraryError::BadPost("a reply has no title".into()));
                }
            }
            Action::Retract { post: p } => {
                held(p)?;
                if author_of(p) != Some(key.public()) {
                    return Err(LibraryError::BadPost(
                        "only its author may retract a post".into(),
                    ));
                }
            }
            Action::Resolve { question, answer } => {
                let thread = forum
                    .thread(question)
                    .ok_or(LibraryError::UnknownPost(*question))?;
                if !thread.summary.is_question() {
                    return Err(LibraryError::BadPost(
                        "only a question is resolved; this is a discussion".into(),
                    ));
                }
                if held(answer)? != *question || answer == question {
                    return Err(LibraryError::BadPost(format!(
                        "{answer} is not an answer to this question"
                    )));
                }
                let me = key.public();
                let lead = view.trust().is_lead_of(&thread.summary.establishment, &me);
                if thread.summary.author != me && !lead {
                    return Err(LibraryError::BadPost(
                        "only the asker, or a site lead of the asker's establishment, marks a question resolved".into(),
                    ));
                }
            }
            Action::Helpful { answer } => {
                let thread = held(answer)?;
                if thread == *answer {
                    return Err(LibraryError::BadPost(
                        "mark an answer helpful, not the question".into(),
                    ));
                }
                if author_of(answer) == Some(key.public()) {
                    return Err(LibraryError::BadPost(
                        "you cannot mark your own answer helpful".into(),
                    ));
                }
            }
            Action::Hide { post: p, .. } => {
                held(p)?;
                let me = key.public();
                match post.voice {
                    Voice::Admin => {
                        if !view.trust().is_admin(&me) {
                            return Err(LibraryError::BadPost(
                                "this key is not a network admin's; only an admin hides a post network-wide".into(),
                            ));
                        }
                    }
                    Voice::Establishment(mine) => {
                        if !view.trust().is_lead_of(&mine, &me) {
                            return Err(LibraryError::BadPost(
                                "only a site lead hides a post".into(),
                            ));
                        }
                        if written_by(p).map(|(_, voice)| voice) != Some(Voice::Establishment(mine))
                        {
                            return Err(LibraryError::BadPost(
                                "a site lead hides only posts by their own establishment's staff; a network admin hides any post network-wide (`gatehouse hide --network`, with the admin key)".into(),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
