//! Authoring: the changes a site makes to its own items (publish, revise,
//! supersede, withdraw). A change is validated and scanned for patient
//! identifiers before anything is signed, signed with this node's
//! publishing key, judged *before* it is stored (an unauthorised change
//! leaves nothing on disk), and handed to the replica; the operation
//! returns once the store is flushed.
//!
//! Certificate operations (admit, delegate, revoke, rotate) are in
//! [`authority`]; Markdown drafts with front matter are read in [`draft`].

pub mod adopt;
pub mod attach;
pub mod authority;
pub mod draft;
pub mod lifecycle;
pub mod measures;
pub mod post;
pub mod template;

use gatehouse_protocol::attachment::{Attachment, write_attachments};
use gatehouse_protocol::automerge::AutoCommit;
use gatehouse_protocol::automerge::transaction::CommitOptions;
use gatehouse_protocol::change::{ACTOR_SUFFIX_BYTES, ChangePayload, actor_id};
use gatehouse_protocol::envelope::{Body, Verified};
use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, ItemId, NetworkId};
use gatehouse_protocol::identifier::find_identifiers_allowing;
use gatehouse_protocol::item::{self, FieldError, Item, ItemContent};
use gatehouse_protocol::key::SecretKey;
use gatehouse_protocol::trust::Judgement;
use gatehouse_protocol::vocab::Status;

use crate::authoring::attach::attachments_equal;
use crate::error::{LibraryError, Result};
use crate::home::random_bytes;
use crate::library::Library;
use crate::projection::markdown::plain_text;
use crate::store::Tree;

/// Refuses `text` (in `field`) if it holds a patient identifier other than
/// the `allowed` ones.
fn refuse_identifiers(field: &'static str, text: &str, allowed: &[String]) -> Result<()> {
    match find_identifiers_allowing(text, allowed).into_iter().next() {
        Some(m) => Err(LibraryError::Identifier {
            field,
            kind: m.kind,
            text: m.text,
        }),
        None => Ok(()),
    }
}

/// Longest withdrawal reason, in characters.
pub const MAX_REASON_CHARS: usize = 1_000;

/// The key this node publishes with, and the suffix of its Automerge actor
/// ids.
pub(crate) struct Signer {
    pub(crate) member: SecretKey,
    pub(crate) actor_suffix: [u8; ACTOR_SUFFIX_BYTES],
}

impl Library {
    fn signer(&self) -> Result<&Signer> {
        self.signer.as_ref().ok_or(LibraryError::NoSigningKey)
    }

    /// A copy of the key this node publishes with (a site lead's), to sign
    /// certificates with (adding and removing staff).
    pub fn signing_key(&self) -> Result<SecretKey> {
        Ok(SecretKey::from_seed(self.signer()?.member.to_seed()))
    }
}

/// Refuses content holding a patient identifier other than the `allowed`
/// ones, in any free-text field, and in the body both as written and as it
/// renders (so Markdown that hides digits from the source scan is caught).
pub(crate) fn check_identifiers(content: &ItemContent, allowed: &[String]) -> Result<()> {
    let rendered = plain_text(&content.body);
    let mut fields: Vec<(&'static str, &str)> = vec![
        ("title", &content.title),
        ("summary", &content.summary),
        ("body", &content.body),
        ("body (as rendered)", &rendered),
    ];
    for t in &content.tags {
        fields.push(("tags", t));
    }
    if let Some(a) = &content.approved_by {
        fields.push(("approved_by", a));
    }
    fields.extend(content.front_sheet.texts());
    if let Some(qi) = &content.qi {
        fields.push(("aim", &qi.aim));
        fields.push(("outcomes", &qi.outcomes));
        for m in &qi.measures {
            fields.push(("measures", m));
        }
        for p in &qi.pdsa_cycles {
            fields.push(("pdsa_cycles", p));
        }
    }
    for (field, text) in fields {
        refuse_identifiers(field, text, allowed)?;
    }
    Ok(())
}

/// Judges an item as a change from outside leaves it, as a local publish
/// is judged: the document must read as an item (every field of the
/// schema readable), its content must meet the rules of a version, and no
/// free-text field may hold a patient identifier other than those its
/// author allowed in the signed change.
pub(crate) fn check_received(item: &Item) -> Result<()> {
    let mut content = item.content.clone();
    // Superseding and withdrawing set the statuses a version may not.
    if matches!(content.status, Status::Superseded | Status::Withdrawn) {
        content.status = Status::Published;
    }
    content.validate()?;
    check_identifiers(&content, &item.allowed_identifiers)?;
    if let Some(reason) = &item.withdrawn_reason {
        refuse_identifiers("withdrawn_reason", reason, &item.allowed_identifiers)?;
    }
    measures::check(item)?;
    gatehouse_protocol::attachment::validate_all(&item.attachments)?;
    Ok(())
}

impl Library {
    /// Signs a change to `item` made in `doc`, checks this node may make it,
    /// and stores it durably.
    fn commit_change(
        &mut self,
        item: ItemId,
        owner: EstablishmentId,
        salt: [u8; 16],
        doc: &mut AutoCommit,
        action: &str,
    ) -> Result<EnvelopeId> {
        let key = SecretKey::from_seed(self.signer()?.member.to_seed());
        self.commit_change_as(&key, item, owner, salt, doc, action)
    }

    /// [`Library::commit_change`] signed with `key` (a person's own key:
    /// an approver's, a reviewer's), the document opened for it by
    /// [`Library::doc_for_change_as`].
    fn commit_change_as(
        &mut self,
        key: &SecretKey,
        item: ItemId,
        owner: EstablishmentId,
        salt: [u8; 16],
        doc: &mut AutoCommit,
        action: &str,
    ) -> Result<EnvelopeId> {
        let now = self.now();
        doc.commit_with(
            CommitOptions::default()
                .with_message(action)
                .with_time(i64::try_from(now / 1000).unwrap_or(i64::MAX)),
        );
        let change = doc
            .get_last_local_change()
            .ok_or_else(|| LibraryError::Corrupt("no change was made".into()))?;
        let env = Verified::sign(
            Body::Change(Box::new(ChangePayload {
                item,
                owner,
                salt,
                change,
            })),
            key,
            &self.config.network,
            now,
        );
        let j = self.replica.trust().judge(&env);
        if j != Judgement::Accepted {
            return Err(LibraryError::NotAuthorised(j));
        }
        let out = self.replica.accept(env)?;
        self.finish()?;
        Ok(out.id)
    }

    /// Publishes a new item owned by this node's establishment. Returns once
    /// the change is durable.
    pub fn publish(&mut self, content: &ItemContent, allowed: &[String]) -> Result<ItemId> {
        self.publish_with(content, allowed, &[])
    }

    /// [`Library::publish`] of a version carrying `attachments` (files
    /// already in this node's file store, checked here: their type, and
    /// no patient identifier in their text).
    pub fn publish_with(
        &mut self,
        content: &ItemContent,
        allowed: &[String],
        attachments: &[Attachment],
    ) -> Result<ItemId> {
        self.publish_with_salt(content, allowed, attachments, self.ambient.random()?)
    }

    /// Publishes a new item exactly once for `key`: the item's id is derived
    /// from the key, so a retry with the same key (after a publish whose
    /// outcome was unknown) finds the item already here and returns it
    /// instead of making a second one.
    pub fn publish_once(
        &mut self,
        content: &ItemContent,
        allowed: &[String],
        attachments: &[Attachment],
        key: &str,
    ) -> Result<ItemId> {
        let hash = blake3::hash(
            &[
                b"gatehouse/v1/idempotency\0".as_slice(),
                self.config.establishment.as_bytes(),
                key.as_bytes(),
            ]
            .concat(),
        );
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&hash.as_bytes()[..16]);
        let id = ItemId::derive(&self.config.establishment, &salt);
        // Any change of the item held here means the key was used.
        if !self
            .store
            .scan(Tree::ItemChanges, id.as_bytes())?
            .is_empty()
        {
            return Ok(id);
        }
        self.publish_with_salt(content, allowed, attachments, salt)
    }

    fn publish_with_salt(
        &mut self,
        content: &ItemContent,
        allowed: &[String],
        attachments: &[Attachment],
        salt: [u8; 16],
    ) -> Result<ItemId> {
        content.validate()?;
        check_identifiers(content, allowed)?;
        self.check_attachments(attachments, allowed)?;
        self.publish_draft(
            Draft {
                content,
                allowed,
                adoption: None,
                attachments,
            },
            salt,
            "publish",
        )
    }

    /// Signs and stores the first change of a new item owned here, the
    /// content already checked.
    fn publish_draft(&mut self, draft: Draft<'_>, salt: [u8; 16], action: &str) -> Result<ItemId> {
        let key = SecretKey::from_seed(self.signer()?.member.to_seed());
        self.publish_draft_as(&key, draft, salt, action)
    }

    /// [`Library::publish_draft`] signed with `key` (a site lead's own,
    /// signed in to the web page).
    fn publish_draft_as(
        &mut self,
        key: &SecretKey,
        draft: Draft<'_>,
        salt: [u8; 16],
        action: &str,
    ) -> Result<ItemId> {
        let signer = self.signer()?;
        let env = sign_new_item(
            draft,
            key,
            &signer.actor_suffix,
            self.config.establishment,
            &self.config.network,
            self.now(),
            salt,
            action,
        )?;
        let id = ItemId::derive(&self.config.establishment, &salt);
        let j = self.replica.trust().judge(&env);
        if j != Judgement::Accepted {
            return Err(LibraryError::NotAuthorised(j));
        }
        self.replica.accept(env)?;
        self.finish()?;
        Ok(id)
    }

    /// Loads an item's document ready for a local change, checking that this
    /// node's establishment owns it.
    fn doc_for_change(&self, id: &ItemId) -> Result<(AutoCommit, Item, [u8; 16])> {
        let key = self.signer()?.member.public();
        self.doc_for_change_as(id, &key)
    }

    /// [`Library::doc_for_change`] for a change signed by `key`: the
    /// document's actor is that key's, set before any operation.
    fn doc_for_change_as(
        &self,
        id: &ItemId,
        key: &gatehouse_protocol::key::PublicKey,
    ) -> Result<(AutoCommit, Item, [u8; 16])> {
        let bytes = crate::projection::item_doc(&*self.store, id)?
            .ok_or_else(|| LibraryError::UnknownItem(id.to_hex()))?;
        let mut doc = AutoCommit::load(&bytes)?;
        let current = item::read_item(&doc)?;
        if current.owner != self.config.establishment {
            return Err(LibraryError::NotOwner {
                item: *id,
                owner: self.read_view().establishment_name(&current.owner),
            });
        }
        doc.set_actor(actor_id(key, &self.signer()?.actor_suffix));
        let salt = self
            .replica
            .accepted_changes(id)?
            .iter()
            .find_map(|e| match e.body() {
                Body::Change(c) => Some(c.salt),
                Body::Certificate(_) | Body::Post(_) | Body::Record(_) | Body::Unread { .. } => {
                    None
                }
            })
            .ok_or_else(|| LibraryError::UnknownItem(id.to_hex()))?;
        Ok((doc, current, salt))
    }

    /// Makes a new version of an item. Returns the new version number.
    pub fn revise(
        &mut self,
        id: &ItemId,
        content: &ItemContent,
        allowed: &[String],
    ) -> Result<u64> {
        self.revise_as(id, content, allowed, None, None, "revise")
    }

    /// [`Library::revise`] with the version's files: `Some` gives the
    /// whole set the new version carries (checked as a publish checks
    /// them), `None` keeps the current version's.
    pub fn revise_with(
        &mut self,
        id: &ItemId,
        content: &ItemContent,
        allowed: &[String],
        attachments: Option<&[Attachment]>,
    ) -> Result<u64> {
        self.revise_as(id, content, allowed, attachments, None, "revise")
    }

    /// [`Library::revise`], recording the source's version taken when
    /// `adoption` is given (then a version is made even if the content is
    /// unchanged: the record of what was taken moves).
    fn revise_as(
        &mut self,
        id: &ItemId,
        content: &ItemContent,
        allowed: &[String],
        attachments: Option<&[Attachment]>,
        adoption: Option<&item::Adoption>,
        action: &str,
    ) -> Result<u64> {
        content.validate()?;
        check_identifiers(content, allowed)?;
        if let Some(files) = attachments {
            self.check_attachments(files, allowed)?;
        }
        let (mut doc, current, salt) = self.doc_for_change(id)?;
        if matches!(
            current.content.status,
            Status::Superseded | Status::Withdrawn
        ) {
            return Err(LibraryError::Closed {
                id: *id,
                status: current.content.status,
            });
        }
        let files_unchanged =
            attachments.is_none_or(|files| attachments_equal(files, &current.attachments));
        if current.content == *content && files_unchanged && adoption.is_none() {
            return Err(LibraryError::NoChange(*id));
        }
        let author = self.signer()?.member.public();
        item::write_version(&mut doc, content, &author)?;
        item::write_allowed_identifiers(&mut doc, allowed)?;
        adopt::record(&mut doc, adoption)?;
        if let Some(files) = attachments {
            write_attachments(&mut doc, files)?;
        }
        self.commit_change(*id, current.owner, salt, &mut doc, action)?;
        Ok(self.get(id, None)?.item.version)
    }

    /// Marks `old` superseded by `new`, and `new` as superseding `old` when
    /// this establishment owns both.
    pub fn supersede(&mut self, old: &ItemId, new: &ItemId) -> Result<()> {
        if old == new {
            return Err(LibraryError::Invalid(FieldError {
                field: "by",
                reason: "an item cannot supersede itself".into(),
            }));
        }
        let successor = self.get(new, None)?;
        let (mut doc, current, salt) = self.doc_for_change(old)?;
        if current.content.status == Status::Withdrawn {
            return Err(LibraryError::Closed {
                id: *old,
                status: current.content.status,
            });
        }
        let author = self.signer()?.member.public();
        item::write_superseded(&mut doc, *new, &author)?;
        self.commit_change(*old, current.owner, salt, &mut doc, "supersede")?;
        if successor.item.owner == self.config.establishment {
            let (mut doc, current, salt) = self.doc_for_change(new)?;
            item::write_supersedes(&mut doc, *old)?;
            self.commit_change(*new, current.owner, salt, &mut doc, "supersedes")?;
        }
        Ok(())
    }

    /// Withdraws an item, with the reason.
    pub fn withdraw(&mut self, id: &ItemId, reason: &str, allowed: &[String]) -> Result<()> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(LibraryError::Invalid(FieldError {
                field: "reason",
                reason: format!("give a reason of 1 to {MAX_REASON_CHARS} characters"),
            }));
        }
        refuse_identifiers("reason", reason, allowed)?;
        let (mut doc, current, salt) = self.doc_for_change(id)?;
        if current.content.status == Status::Withdrawn {
            return Err(LibraryError::Closed {
                id: *id,
                status: current.content.status,
            });
        }
        let author = self.signer()?.member.public();
        item::write_withdrawn(&mut doc, reason, &author)?;
        let mut kept = current.allowed_identifiers.clone();
        kept.extend(allowed.iter().cloned());
        item::write_allowed_identifiers(&mut doc, &kept)?;
        self.commit_change(*id, current.owner, salt, &mut doc, "withdraw")?;
        Ok(())
    }
}

/// Signs the change that creates a new item owned by `owner`, written by
/// `member` from the node whose actor suffix is `suffix`.
pub fn new_item(
    content: &ItemContent,
    member: &SecretKey,
    suffix: &[u8; ACTOR_SUFFIX_BYTES],
    owner: EstablishmentId,
    network: &NetworkId,
    now_ms: u64,
) -> Result<Verified> {
    new_item_with_salt(
        Draft {
            content,
            allowed: &[],
            adoption: None,
            attachments: &[],
        },
        member,
        suffix,
        owner,
        network,
        now_ms,
        random_bytes()?,
    )
}

/// A version to sign: its content, and the text its author reviewed and
/// allowed although it looks like a patient identifier.
#[derive(Debug, Clone, Copy)]
pub struct Draft<'a> {
    /// The content.
    pub content: &'a ItemContent,
    /// The allowed text (`--allow-identifier`), recorded in the change.
    pub allowed: &'a [String],
    /// Where an adopted item came from (`None` for a site's own item).
    pub adoption: Option<&'a item::Adoption>,
    /// The files the version carries.
    pub attachments: &'a [Attachment],
}

/// [`new_item`] with the item's salt given, for reproducible runs (the
/// network simulation); a real item's salt is random.
pub fn new_item_with_salt(
    draft: Draft<'_>,
    member: &SecretKey,
    suffix: &[u8; ACTOR_SUFFIX_BYTES],
    owner: EstablishmentId,
    network: &NetworkId,
    now_ms: u64,
    salt: [u8; 16],
) -> Result<Verified> {
    sign_new_item(
        draft, member, suffix, owner, network, now_ms, salt, "publish",
    )
}

#[allow(clippy::too_many_arguments)]
fn sign_new_item(
    Draft {
        content,
        allowed,
        adoption,
        attachments,
    }: Draft<'_>,
    member: &SecretKey,
    suffix: &[u8; ACTOR_SUFFIX_BYTES],
    owner: EstablishmentId,
    network: &NetworkId,
    now_ms: u64,
    salt: [u8; 16],
    action: &str,
) -> Result<Verified> {
    let id = ItemId::derive(&owner, &salt);
    let mut doc = AutoCommit::new().with_actor(actor_id(&member.public(), suffix));
    item::init_doc(&mut doc, id, &owner)?;
    item::write_version(&mut doc, content, &member.public())?;
    item::write_allowed_identifiers(&mut doc, allowed)?;
    adopt::record(&mut doc, adoption)?;
    write_attachments(&mut doc, attachments)?;
    doc.commit_with(
        CommitOptions::default()
            .with_message(action)
            .with_time(i64::try_from(now_ms / 1000).unwrap_or(i64::MAX)),
    );
    let change = doc
        .get_last_local_change()
        .ok_or_else(|| LibraryError::Corrupt("no change was made".into()))?;
    Ok(Verified::sign(
        Body::Change(Box::new(ChangePayload {
            item: id,
            owner,
            salt,
            change,
        })),
        member,
        network,
        now_ms,
    ))
}
