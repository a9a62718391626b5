//! The replica: the one door for envelopes, and the only writer of them.
//!
//! A node's replicated state is the grow-only set of verified envelopes in
//! its store. The replica holds that set, the trust view built from the
//! certificates in it, and the judgement of every envelope. Everything it
//! writes for one envelope (its bytes, its certificate or change facts, its
//! judgement and its item's dirty mark) goes in one atomic batch.
//!
//! A change is judged when it is stored against the trust view of the moment,
//! which may lack certificates stored earlier in the same batch; such a
//! judgement is provisional. [`Replica::settle_trust`] rebuilds trust once per
//! batch and judges the whole set again, and opening a store always does the
//! same ([`Replica::rejudge_everything`]), so the judgements held are a
//! function of the set held whatever a crash interrupted.
//!
//! Projections (item documents, the catalog, the search index) read from the
//! replica and are told which items' accepted changes moved
//! ([`Replica::dirty`]). The sync core and the network simulation use the
//! replica without projections.

pub mod bundle;
pub mod docs;
pub mod open;
pub mod receipt;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use gatehouse_protocol::automerge;
use gatehouse_protocol::certificate::{Certificate, Revocation, RevokeTarget};
use gatehouse_protocol::change::{ChangePayload, guarded};
use gatehouse_protocol::envelope::{Body, Envelope, Verified, peek_created_ms};
use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, ItemId, NetworkId};
use gatehouse_protocol::item::{Item, read_item};
use gatehouse_protocol::key::PublicKey;
use gatehouse_protocol::post::Voice;
use gatehouse_protocol::reconcile::IdIndex;
use gatehouse_protocol::record::Record;
use gatehouse_protocol::trust::{Judgement, PendingReason, TrustView};
use serde::Serialize;

use crate::error::{LibraryError, Result};
use crate::projection::MAX_DOC_CHUNKS;
use crate::store::{Store, Tree, Write};

/// What happened to one envelope offered to the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// Its id.
    pub id: EnvelopeId,
    /// Whether it was new here.
    pub new: bool,
    /// Its judgement now.
    pub judgement: Judgement,
    /// Whether it is a certificate (trust may have changed). A new
    /// certificate's judgement is only known once the batch is applied
    /// ([`Replica::judgement_of`] after [`Replica::settle_trust`]).
    pub certificate: bool,
}

/// Most envelope ids remembered for announcing to peers; past this the
/// oldest are dropped (anti-entropy still delivers them).
pub const MAX_OUTBOX: usize = 10_000;

/// Most envelopes held that are not in effect (pending or rejected). Past
/// this, further ones are refused until trust catches up.
pub const MAX_UNACCEPTED_ENVELOPES: usize = 10_000;
/// Most envelopes not in effect one signer may have stored here, counted
/// when a batch is settled. Past this, an envelope from outside by that
/// signer is refused unless it is in effect: a key of the network cannot
/// fill the pool with junk. A site's own publishing is never refused.
pub const MAX_UNACCEPTED_PER_SIGNER: usize = 100;

/// Most bundle entries held back until what they depend on arrives (see
/// [`Replica::hold_back`]); past it, the oldest-named give way.
pub const MAX_HELD_BACK: usize = 10_000;

/// Most bytes of bundle entries held back.
pub const MAX_HELD_BACK_BYTES: usize = 64 * 1024 * 1024;
/// Most envelopes held of kinds this node does not read; past this, more
/// are refused (not counted as forgeries) until the node is upgraded.
pub const MAX_UNREAD_ENVELOPES: usize = 100_000;

pub(crate) fn judgement_write(id: &EnvelopeId, j: Judgement) -> Result<Write> {
    let value = match j {
        Judgement::Accepted => None,
        other => {
            Some(serde_json::to_vec(&other).map_err(|e| LibraryError::Corrupt(e.to_string()))?)
        }
    };
    Ok((Tree::Judgements, id.as_bytes().to_vec(), value))
}

pub(crate) fn change_key(item: &ItemId, env: &EnvelopeId) -> Vec<u8> {
    let mut k = item.as_bytes().to_vec();
    k.extend_from_slice(env.as_bytes());
    k
}

/// Most documents built where a batch was opened that wait to be used.
pub const MAX_PREBUILT: usize = 4096;

/// The set of envelopes a node holds, with their trust view and judgements.
pub struct Replica {
    store: Arc<dyn Store>,
    network: NetworkId,
    trust: Arc<TrustView>,
    /// A certificate was stored since trust was last rebuilt.
    trust_stale: bool,
    /// Changes stored in the current batch, so projections need not read
    /// them back from disk.
    fresh: BTreeMap<EnvelopeId, Verified>,
    /// The size of each bundle entry held back ([`Replica::hold_back`]),
    /// once read.
    held: Option<BTreeMap<EnvelopeId, usize>>,
    /// The changes of the current batch, by item.
    fresh_by_item: BTreeMap<ItemId, Vec<EnvelopeId>>,
    /// Items whose accepted changes may have moved since projections last
    /// caught up.
    dirty: BTreeSet<ItemId>,
    /// Items whose accepted changes may have lost one, or whose stored
    /// document cannot be trusted to hold the rest: rebuilt from scratch.
    rebuild: BTreeSet<ItemId>,
    /// Documents of items touched lately, as of the last catch-up.
    docs: docs::DocCache,
    /// Envelopes made or imported here, not yet announced to peers.
    outbox: Vec<EnvelopeId>,
    /// The ids of every envelope held, kept sorted with their running sums
    /// as envelopes arrive, for reconciling (read from the store's keys
    /// once, never from envelope bytes).
    ids: Option<IdIndex>,
    /// Every certificate held, decoded: trust is rebuilt from them after
    /// every batch that brings one, and decoding them each time (a public
    /// key decompression per key) would cost more than the rebuild.
    certs: Option<BTreeMap<EnvelopeId, Verified>>,
    /// The facts of every change held, decoded, for re-judging.
    facts: Option<Vec<ChangeFact>>,
    /// Keys with a part in the network: those named by or signing a held
    /// certificate (see [`Replica::accept_outside`]). Grows with the set
    /// and depends on nothing else, so what it lets in does not depend on
    /// the order envelopes arrive in.
    known_keys: Option<BTreeSet<PublicKey>>,
    /// Whether changes from outside are judged on their content (on unless
    /// turned off by [`Replica::judge_content`]).
    content_checks: bool,
    /// Documents of first changes built where the batch was opened, by
    /// change ([`open::Prebuilt`]), until the batch ends.
    prebuilt: HashMap<automerge::ChangeHash, open::Prebuilt>,
    /// Envelopes not in effect, by signer, as of the last settle.
    unaccepted_by: BTreeMap<PublicKey, usize>,
    /// Changes and unread envelopes not in effect stored in this batch, by
    /// signer: added to `unaccepted_by` when the batch settles without a
    /// trust rebuild (a rebuild counts everything again).
    batch_unaccepted: BTreeMap<PublicKey, usize>,
    /// Posts stored since the forum last caught up.
    fresh_posts: Vec<Verified>,
    /// Judgements of posts may have moved: the forum is rebuilt.
    forum_stale: bool,
}

/// The facts of a post kept to re-judge it: signer ‖ voice.
fn post_facts(signer: &PublicKey, voice: &Voice) -> Vec<u8> {
    let mut v = signer.as_bytes().to_vec();
    match voice {
        Voice::Establishment(e) => {
            v.push(1);
            v.extend_from_slice(e.as_bytes());
        }
        Voice::Admin => v.push(2),
    }
    v
}

/// Where a record is filed in [`Tree::Records`]: by its item, or (rules)
/// by its establishment, then by its id.
pub(crate) fn record_key(record: &Record, id: &EnvelopeId) -> Vec<u8> {
    let mut k = Vec::with_capacity(49);
    match record.item() {
        Some(item) => {
            k.push(b'i');
            k.extend_from_slice(item.as_bytes());
        }
        None => {
            k.push(b'r');
            k.extend_from_slice(record.establishment.as_bytes());
        }
    }
    k.extend_from_slice(id.as_bytes());
    k
}

/// The facts of a record kept to re-judge it: signer ‖ establishment ‖
/// whether it needs a key that publishes.
fn record_facts(signer: &PublicKey, record: &Record) -> Vec<u8> {
    let mut v = signer.as_bytes().to_vec();
    v.extend_from_slice(record.establishment.as_bytes());
    v.push(u8::from(record.needs_publisher()));
    v
}

/// Reads back [`record_facts`].
fn read_record_facts(v: &[u8]) -> Option<(PublicKey, EstablishmentId, bool)> {
    if v.len() != 49 {
        return None;
    }
    let signer = PublicKey::from_bytes(<[u8; 32]>::try_from(&v[..32]).ok()?).ok()?;
    let est = EstablishmentId(<[u8; 16]>::try_from(&v[32..48]).ok()?);
    Some((signer, est, v[48] == 1))
}

/// Reads back [`post_facts`].
fn read_post_facts(v: &[u8]) -> Option<(PublicKey, Voice)> {
    let signer = PublicKey::from_bytes(<[u8; 32]>::try_from(v.get(..32)?).ok()?).ok()?;
    let voice = match (v.get(32)?, v.get(33..)?) {
        (1, e) => Voice::Establishment(EstablishmentId(<[u8; 16]>::try_from(e).ok()?)),
        (2, []) => Voice::Admin,
        _ => return None,
    };
    Some((signer, voice))
}

/// The keys a certificate gives a part in the network.
fn subjects(cert: &Certificate) -> Vec<PublicKey> {
    match cert {
        Certificate::Genesis(g) => g.admins.clone(),
        Certificate::AdminSet(a) => a.admins.clone(),
        Certificate::Admit(a) => vec![a.key],
        Certificate::Delegate(d) => vec![d.member],
        Certificate::Revoke(_) | Certificate::Endorse(_) => Vec::new(),
    }
}

/// What judging a change needs: its id, signer, owning establishment and item.
pub type ChangeFact = (EnvelopeId, PublicKey, EstablishmentId, ItemId);

impl Replica {
    /// The replica of `network` in `store`, with trust built from the
    /// certificates held. Call [`Replica::rejudge_everything`] to bring
    /// stored judgements in line after an unclean stop.
    pub fn open(store: Arc<dyn Store>, network: NetworkId) -> Result<Self> {
        let mut replica = Self {
            store,
            network,
            trust: Arc::default(),
            trust_stale: false,
            fresh: BTreeMap::new(),
            fresh_by_item: BTreeMap::new(),
            held: None,
            dirty: BTreeSet::new(),
            rebuild: BTreeSet::new(),
            docs: docs::DocCache::default(),
            outbox: Vec::new(),
            ids: None,
            certs: None,
            facts: None,
            known_keys: None,
            content_checks: true,
            prebuilt: HashMap::new(),
            unaccepted_by: BTreeMap::new(),
            batch_unaccepted: BTreeMap::new(),
            fresh_posts: Vec::new(),
            forum_stale: true,
        };
        replica.reload_trust()?;
        Ok(replica)
    }

    /// The store under the replica.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The network this replica belongs to.
    pub fn network(&self) -> NetworkId {
        self.network
    }

    /// The trust view of the certificates held (as of the last settle).
    pub fn trust(&self) -> &TrustView {
        &self.trust
    }

    /// Verifies envelope bytes from outside and stores them, without
    /// announcing them again; a refused envelope changes nothing.
    pub fn ingest(&mut self, bytes: &[u8]) -> Result<Accepted> {
        // A copy of an envelope held is known by its hash alone: no need
        // to decode and verify it again.
        let id = EnvelopeId::of(bytes);
        if self.has_envelope(&id)? {
            return Ok(Accepted {
                id,
                new: false,
                judgement: self.judgement_of(&id)?,
                certificate: self.store.get(Tree::Certificates, id.as_bytes())?.is_some(),
            });
        }
        let env = Envelope::open(bytes, &self.network)?;
        self.accept_outside(env, false)
    }

    /// Stores an envelope that came from outside (a peer, a bundle) under
    /// the rules for what others send: a certificate that can have no
    /// effect is refused ([`LibraryError::NoEffect`]), and so is any
    /// envelope not in effect by a signer past its limit
    /// ([`LibraryError::SignerLimit`]). With `announce`, a new envelope is
    /// queued for announcing to peers (a bundle's contents).
    pub fn accept_outside(&mut self, env: Verified, announce: bool) -> Result<Accepted> {
        if self.known_keys.is_none() {
            let mut known = BTreeSet::new();
            for c in self.read_certificates()? {
                known.insert(c.signer());
                if let Body::Certificate(cert) = c.body() {
                    known.extend(subjects(cert));
                }
            }
            self.known_keys = Some(known);
        }
        if !self.has_envelope(&env.id())? {
            self.check_outside(&env)?;
        }
        let item = match env.body() {
            Body::Change(c) => Some(c.item),
            _ => None,
        };
        let out = self.accept_from(env).inspect_err(|_| {
            // Its check grew the item's kept document by a change not stored.
            if let Some(item) = item {
                self.docs.remove(&item);
            }
        })?;
        if announce && out.new && self.outbox.len() < MAX_OUTBOX {
            self.outbox.push(out.id);
        }
        Ok(out)
    }

    /// Turns the content check of changes from outside on or off. Every
    /// node keeps it on; the network simulation, whose generated items are
    /// clean, turns it off to spare each simulated site the Automerge work.
    pub fn judge_content(&mut self, on: bool) {
        self.content_checks = on;
    }

    /// Whether changes from outside are judged on their content, so that
    /// documents built where a batch is opened are of use.
    pub fn judges_content(&self) -> bool {
        self.content_checks
    }

    /// Keeps documents of first changes built where the batch was opened,
    /// for judging those changes (at most [`MAX_PREBUILT`] wait at once).
    pub fn offer_prebuilt(&mut self, built: Vec<open::Prebuilt>) {
        for b in built {
            if self.prebuilt.len() >= MAX_PREBUILT {
                break;
            }
            self.prebuilt.insert(b.hash, b);
        }
    }

    /// Whether an envelope from outside may be stored.
    fn check_outside(&mut self, env: &Verified) -> Result<()> {
        let signer = env.signer();
        if let Body::Certificate(cert) = env.body() {
            let known = |k: &PublicKey| self.known_keys.as_ref().is_some_and(|s| s.contains(k));
            // The genesis of this network, to a replica that holds nothing
            // yet (a node joining from an invitation).
            let founding = matches!(cert, Certificate::Genesis(g) if g.network_id() == self.network)
                && self.known_keys.as_ref().is_some_and(BTreeSet::is_empty);
            if !founding && !known(&signer) {
                return Err(LibraryError::NoEffect(
                    "a certificate signed by a key this network does not know",
                ));
            }
            if let Certificate::Revoke(Revocation {
                target: RevokeTarget::Key(k),
                ..
            }) = cert
                && !known(k)
            {
                return Err(LibraryError::NoEffect(
                    "a certificate revoking a key this network does not know",
                ));
            }
            crate::authoring::authority::check_received_certificate(cert)?;
        }
        if let Body::Change(c) = env.body()
            && self.content_checks
        {
            self.check_change_content(c, env.created_ms())?;
        }
        if let Body::Post(p) = env.body()
            && let Some((field, m)) = crate::authoring::post::find_identifier(p)
        {
            return Err(LibraryError::PostRefused {
                field,
                kind: m.kind,
            });
        }
        if self.unaccepted_by.get(&signer).copied().unwrap_or(0) >= MAX_UNACCEPTED_PER_SIGNER {
            let in_effect = match env.body() {
                Body::Change(c) => self.trust.judge_change(&env.id(), &signer, &c.owner),
                Body::Post(p) => self.trust.judge_post(&env.id(), &signer, &p.voice),
                Body::Record(r) => self.trust.judge_record(
                    &env.id(),
                    &signer,
                    &r.establishment,
                    r.needs_publisher(),
                ),
                Body::Unread { .. } => self.trust.judge_unread(&env.id(), &signer),
                // Its effect is known only once the batch settles.
                Body::Certificate(_) => Judgement::Pending(PendingReason::SignerNotAdmin),
            };
            if in_effect != Judgement::Accepted {
                return Err(LibraryError::SignerLimit(signer));
            }
        }
        Ok(())
    }

    /// Judges a change from outside by what it makes of its item, as a
    /// local publish is judged ([`crate::authoring::check_received`]): the
    /// item as it stands at the change itself, with exactly the changes it
    /// depends on, so the verdict does not depend on what else has arrived.
    /// A change whose earlier changes are not all here yet has no verdict
    /// and is not stored ([`LibraryError::NoEffect`]; it is offered again).
    fn check_change_content(&mut self, c: &ChangePayload, created_ms: u64) -> Result<()> {
        let hash = c.change.hash();
        let refused = |reason: String| LibraryError::ContentRefused {
            item: c.item,
            reason,
        };
        // A first change to an item nothing is held of: its document is
        // the change alone, perhaps built already where it was opened.
        if let Some(built) = self.prebuilt.remove(&hash)
            && !self.docs.contains(&c.item)
            && self.store.get(Tree::ItemDocs, c.item.as_bytes())?.is_none()
            && item_change_ids(&*self.store, &c.item)?.is_empty()
        {
            let item = built.item.map_err(refused)?;
            Self::check_judged_item(c, &item, built.judged)?;
            self.prepare_at(c.item, item, hash);
            let entry = docs::CachedDoc {
                doc: automerge::AutoCommit::new(),
                exact: true,
                chunks: 0,
                claimed_ms: created_ms,
                saved: Vec::new(),
            };
            self.docs.put_saved(c.item, built.saved, hash, entry);
            return Ok(());
        }
        // The item's kept document when it holds every change this one
        // depends on; else its stored one with the batch's changes to it;
        // else one of every change held for the item.
        let holds = |k: &mut docs::CachedDoc| {
            c.change
                .deps()
                .iter()
                .all(|d| k.doc.get_change_meta_by_hash(d).is_some())
        };
        let kept = self
            .docs
            .take(&c.item)
            .and_then(|mut k| holds(&mut k).then_some(k));
        let stored = match kept {
            Some(k) => Some(k),
            None => self
                .stored_doc(&c.item)?
                .and_then(|mut k| holds(&mut k).then_some(k)),
        };
        let mut entry = match stored {
            Some(k) => k,
            None => self.held_doc(&c.item).map_err(|e| match e {
                LibraryError::Corrupt(e) => refused(format!("its document does not load: {e}")),
                other => other,
            })?,
        };
        let change = c.change.clone();
        let (item, only_head) = guarded(|| {
            let doc = &mut entry.doc;
            doc.apply_changes([change])
                .map_err(|e| refused(format!("its document does not load: {e}")))?;
            // Nothing held depends on a change not held, so the change,
            // once applied, is one of the heads; otherwise it waits in the
            // document's queue for changes it depends on.
            let heads = doc.get_heads();
            if !heads.contains(&hash) {
                return Err(LibraryError::NoEffect(
                    "a change whose earlier changes to its item are not here yet",
                ));
            }
            // Usually the change is the document's only head (a new item,
            // or the next version); only then is no fork needed.
            if heads == [hash] {
                read_item(doc).map(|i| (i, true))
            } else {
                let at = doc
                    .fork_at(&[hash])
                    .map_err(|e| refused(format!("its document does not load: {e}")))?;
                read_item(&at).map(|i| (i, false))
            }
            .map_err(|e| refused(e.to_string()))
        })
        .map_err(|e| refused(format!("its document does not load: {e}")))??;
        self.check_read_item(c, &item)?;
        // Kept for the item's next change, holding this one too: a change
        // of the batch, which projections apply again (if it is not stored
        // after all, `accept_outside` drops the document).
        if entry.exact {
            entry.claimed_ms = entry.claimed_ms.max(created_ms);
            if only_head {
                self.prepare_at(c.item, item, hash);
            }
        }
        self.docs.put(c.item, entry);
        Ok(())
    }

    /// Keeps `read`, what `item` reads as with `head` its document's only
    /// head, as the item will stand once the batch is in, if every change
    /// of the batch to it (this one counted) is in effect.
    fn prepare_at(&mut self, item: ItemId, read: Item, head: automerge::ChangeHash) {
        let count = self.fresh_count(&item) + 1;
        self.docs.prepare(
            item,
            docs::Prepared {
                item: read,
                heads: vec![head],
                count,
            },
        );
    }

    /// Judges the item as a change from outside makes it read.
    fn check_read_item(&self, c: &ChangePayload, item: &Item) -> Result<()> {
        let judged = crate::authoring::check_received(item).map_err(|e| e.to_string());
        Self::check_judged_item(c, item, judged)
    }

    /// [`Self::check_read_item`], given what the content checks said of
    /// the item (made where the change was opened, for a new item).
    fn check_judged_item(
        c: &ChangePayload,
        item: &Item,
        judged: std::result::Result<(), String>,
    ) -> Result<()> {
        let refused = |reason: String| LibraryError::ContentRefused {
            item: c.item,
            reason,
        };
        if item.id != c.item || item.owner != c.owner {
            return Err(refused(
                "its document names another item or owner than the change".into(),
            ));
        }
        judged.map_err(refused)
    }

    /// The stored document of `item` (its accepted changes as of the last
    /// catch-up) with the batch's changes to it applied; `None` when none
    /// is stored, it cannot be trusted (a rebuild is due) or it does not load.
    fn stored_doc(&self, item: &ItemId) -> Result<Option<docs::CachedDoc>> {
        if self.rebuild.contains(item) {
            return Ok(None);
        }
        let Some(bytes) = crate::projection::item_doc(&*self.store, item)? else {
            return Ok(None);
        };
        let Some(claimed_ms) = crate::projection::claimed_ms(&*self.store, item)? else {
            return Ok(None);
        };
        let batch: Vec<automerge::Change> = self
            .fresh_by_item
            .get(item)
            .into_iter()
            .flatten()
            .filter_map(|id| match self.fresh.get(id).map(Verified::body) {
                Some(Body::Change(p)) => Some(p.change.clone()),
                _ => None,
            })
            .collect();
        let loaded = guarded(|| {
            let mut doc = automerge::AutoCommit::load(&bytes)?;
            let saved = doc.get_heads();
            doc.apply_changes(batch)?;
            Ok::<_, automerge::AutomergeError>((doc, saved))
        });
        let Ok(Ok((doc, saved))) = loaded else {
            return Ok(None);
        };
        Ok(Some(docs::CachedDoc {
            doc,
            exact: true,
            chunks: docs::chunks_after_first(&bytes).unwrap_or(MAX_DOC_CHUNKS),
            claimed_ms,
            saved,
        }))
    }

    /// A document of every change held for `item`; exactly its accepted
    /// changes plus the batch's when nothing else is held for it.
    fn held_doc(&self, item: &ItemId) -> Result<docs::CachedDoc> {
        let held = item_change_ids(&*self.store, item)?;
        let exact = held.iter().all(|id| self.fresh.contains_key(id));
        let mut changes: Vec<automerge::Change> = Vec::new();
        let mut claimed_ms = 0;
        for id in held {
            let env = match self.fresh.get(&id) {
                Some(v) => v.clone(),
                None => self.load_envelope(&id)?,
            };
            claimed_ms = claimed_ms.max(env.created_ms());
            if let Body::Change(p) = env.body() {
                changes.push(p.change.clone());
            }
        }
        let mut doc = automerge::AutoCommit::new();
        match guarded(|| doc.apply_changes(changes)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(LibraryError::Corrupt(e.to_string())),
            Err(e) => return Err(LibraryError::Corrupt(e.to_string())),
        }
        Ok(docs::CachedDoc {
            doc,
            exact,
            chunks: 0,
            claimed_ms,
            saved: Vec::new(),
        })
    }

    /// Brings trust and every judgement in line with the set, if a
    /// certificate arrived since the last time.
    pub fn settle_trust(&mut self) -> Result<()> {
        if self.trust_stale {
            self.rejudge_everything()?;
        } else {
            for (signer, n) in std::mem::take(&mut self.batch_unaccepted) {
                *self.unaccepted_by.entry(signer).or_default() += n;
            }
        }
        Ok(())
    }

    /// Rebuilds trust and judges every envelope held again.
    pub fn rejudge_everything(&mut self) -> Result<()> {
        self.reload_trust()?;
        self.rejudge_all()?;
        self.trust_stale = false;
        Ok(())
    }

    /// Items whose accepted changes may have moved since projections last
    /// caught up.
    pub fn dirty(&self) -> &BTreeSet<ItemId> {
        &self.dirty
    }

    /// Marks items for projections to rebuild from scratch.
    pub fn mark_dirty(&mut self, items: impl IntoIterator<Item = ItemId>) {
        for item in items {
            self.dirty.insert(item);
            self.rebuild.insert(item);
            self.docs.remove(&item);
        }
    }

    /// Whether `item`'s projections must be rebuilt from all its accepted
    /// changes this batch, rather than grown by the batch's new ones.
    pub fn needs_rebuild(&self, item: &ItemId) -> bool {
        self.rebuild.contains(item)
    }

    /// How many changes to `item` were stored in this batch.
    pub fn fresh_count(&self, item: &ItemId) -> usize {
        self.fresh_by_item.get(item).map_or(0, Vec::len)
    }

    /// The changes to `item` stored in this batch that are in effect.
    pub fn fresh_accepted(&self, item: &ItemId) -> Result<Vec<Verified>> {
        let mut out = Vec::new();
        for id in self.fresh_by_item.get(item).into_iter().flatten() {
            if let Some(env) = self.fresh.get(id)
                && self.judgement_of(id)? == Judgement::Accepted
            {
                out.push(env.clone());
            }
        }
        Ok(out)
    }

    /// Item documents kept decoded between batches (see [`docs`]).
    pub(crate) fn docs(&mut self) -> &mut docs::DocCache {
        &mut self.docs
    }

    /// Ends a batch once projections have caught up: forgets the batch's
    /// changes and clears the dirty marks, in the store too.
    pub fn end_batch(&mut self) -> Result<()> {
        self.fresh.clear();
        self.fresh_by_item.clear();
        self.rebuild.clear();
        self.docs.end_batch();
        self.prebuilt.clear();
        let clears: Vec<Write> = std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|i| (Tree::Dirty, i.as_bytes().to_vec(), None))
            .collect();
        if !clears.is_empty() {
            self.store.apply(clears)?;
        }
        Ok(())
    }

    /// Settles trust, ends the batch and flushes: for a replica that keeps
    /// no projections (the network simulation).
    pub fn settle(&mut self) -> Result<()> {
        self.settle_trust()?;
        self.end_batch()?;
        self.flush()
    }

    /// The ids of every envelope held, sorted.
    pub fn sorted_ids(&mut self) -> Result<Vec<EnvelopeId>> {
        Ok(self.id_index()?.to_vec())
    }

    /// The ids of every envelope held, as the index reconciliation answers
    /// from: read from the store's keys at the first call, then kept up to
    /// date as envelopes are stored.
    pub fn id_index(&mut self) -> Result<&IdIndex> {
        if self.ids.is_none() {
            self.ids = Some(IdIndex::from_sorted(self.envelope_ids()?));
        }
        Ok(self.ids.get_or_insert_default())
    }

    /// Returns once everything written is durable.
    pub fn flush(&self) -> Result<()> {
        self.store.flush()?;
        Ok(())
    }

    /// Rebuilds the trust view from every certificate held.
    pub fn reload_trust(&mut self) -> Result<()> {
        if self.certs.is_none() {
            let certs = self.read_certificates()?;
            self.certs = Some(certs.into_iter().map(|c| (c.id(), c)).collect());
        }
        let certs: Vec<&Verified> = self.certs.iter().flat_map(|c| c.values()).collect();
        self.trust = Arc::new(TrustView::build(&self.network, certs));
        Ok(())
    }

    /// A held envelope, its hash checked against its id.
    pub fn load_envelope(&self, id: &EnvelopeId) -> Result<Verified> {
        load_envelope(&*self.store, &self.network, id)
    }

    /// The rows derived from one envelope when it is stored (besides its
    /// bytes and judgement): the certificate list, or a change's facts,
    /// its place in its item's change list and its item's dirty mark.
    pub(crate) fn derived_rows(env: &Verified) -> Vec<Write> {
        let id = env.id();
        let mut rows = Self::kind_rows(env);
        if env.is_urgent() {
            rows.push((Tree::Urgent, id.as_bytes().to_vec(), Some(Vec::new())));
        }
        rows
    }

    /// Those of `ids` held here that are urgent, in order.
    pub fn urgent_among(&self, ids: &[EnvelopeId]) -> Vec<EnvelopeId> {
        ids.iter()
            .filter(|id| {
                self.store
                    .get(Tree::Urgent, id.as_bytes())
                    .is_ok_and(|v| v.is_some())
            })
            .copied()
            .collect()
    }

    fn kind_rows(env: &Verified) -> Vec<Write> {
        let id = env.id();
        match env.body() {
            Body::Unread { .. } => vec![(
                Tree::Unread,
                id.as_bytes().to_vec(),
                Some(env.signer().as_bytes().to_vec()),
            )],
            Body::Certificate(_) => {
                vec![(Tree::Certificates, id.as_bytes().to_vec(), Some(Vec::new()))]
            }
            Body::Post(p) => vec![(
                Tree::PostFacts,
                id.as_bytes().to_vec(),
                Some(post_facts(&env.signer(), &p.voice)),
            )],
            Body::Record(r) => vec![(
                Tree::Records,
                record_key(r, &id),
                Some(record_facts(&env.signer(), r)),
            )],
            Body::Change(c) => {
                let mut facts = Vec::with_capacity(64);
                facts.extend_from_slice(env.signer().as_bytes());
                facts.extend_from_slice(c.owner.as_bytes());
                facts.extend_from_slice(c.item.as_bytes());
                vec![
                    (Tree::ChangeFacts, id.as_bytes().to_vec(), Some(facts)),
                    (
                        Tree::ItemChanges,
                        change_key(&c.item, &id),
                        Some(Vec::new()),
                    ),
                    (Tree::Dirty, c.item.as_bytes().to_vec(), Some(Vec::new())),
                ]
            }
        }
    }

    /// Keeps a bundle entry that could have no effect yet, apart from the
    /// library, so that a later import can offer it again: a chain of
    /// certificates split across two bundles then takes effect in whichever
    /// order they are imported. At most [`MAX_HELD_BACK`] entries and
    /// [`MAX_HELD_BACK_BYTES`] are kept; past either, entries with the
    /// lowest ids give way, so what is held stays bounded whatever files
    /// are imported.
    pub fn hold_back(&mut self, id: &EnvelopeId, bytes: &[u8]) -> Result<()> {
        if bytes.len() > MAX_HELD_BACK_BYTES {
            return Ok(());
        }
        let held = self.held_sizes()?;
        held.insert(*id, bytes.len());
        let mut total: usize = held.values().sum();
        let mut batch: Vec<Write> = Vec::new();
        while held.len() > MAX_HELD_BACK || total > MAX_HELD_BACK_BYTES {
            let Some((gone, n)) = held.pop_first() else {
                break;
            };
            total -= n;
            batch.push((Tree::HeldBack, gone.as_bytes().to_vec(), None));
        }
        if held.contains_key(id) {
            batch.push((Tree::HeldBack, id.as_bytes().to_vec(), Some(bytes.to_vec())));
        }
        self.store.apply(batch)?;
        Ok(())
    }

    /// The size of each entry held back, read from the store once.
    fn held_sizes(&mut self) -> Result<&mut BTreeMap<EnvelopeId, usize>> {
        if self.held.is_none() {
            let mut sizes = BTreeMap::new();
            for (k, v) in self.store.scan(Tree::HeldBack, b"")? {
                if let Ok(id) = <[u8; 32]>::try_from(k.as_slice()) {
                    sizes.insert(EnvelopeId(id), v.len());
                }
            }
            self.held = Some(sizes);
        }
        Ok(self.held.get_or_insert_default())
    }

    /// The ids of the entries held back.
    pub fn held_back_ids(&mut self) -> Result<Vec<EnvelopeId>> {
        Ok(self.held_sizes()?.keys().copied().collect())
    }

    /// The bytes of an entry held back, if it still is.
    pub fn held_back(&self, id: &EnvelopeId) -> Result<Option<Vec<u8>>> {
        Ok(self.store.get(Tree::HeldBack, id.as_bytes())?)
    }

    /// Forgets an entry held back (it took effect, or never can).
    pub fn release(&mut self, id: &EnvelopeId) -> Result<()> {
        self.held_sizes()?.remove(id);
        self.store
            .apply(vec![(Tree::HeldBack, id.as_bytes().to_vec(), None)])?;
        Ok(())
    }

    /// Whether the envelope is held.
    pub fn has_envelope(&self, id: &EnvelopeId) -> Result<bool> {
        Ok(self.store.get(Tree::Envelopes, id.as_bytes())?.is_some())
    }

    /// The bytes of every envelope held: certificates first (so an importer
    /// can judge the rest as it reads them), then each item's changes
    /// together, oldest claimed first (so each is judged against the
    /// item's document as it grows, not one rebuilt), then the rest.
    pub fn export(&self) -> Result<Vec<Vec<u8>>> {
        let certs = self.certificate_ids()?;
        let mut first = self.envelope_bytes(&certs.iter().copied().collect::<Vec<_>>())?;
        let mut placed: BTreeSet<Vec<u8>> = certs.iter().map(|c| c.as_bytes().to_vec()).collect();
        let mut item: Option<Vec<u8>> = None;
        let mut of_item: Vec<Vec<u8>> = Vec::new();
        let flush = |of_item: &mut Vec<Vec<u8>>, first: &mut Vec<Vec<u8>>| {
            of_item.sort_by_key(|b| peek_created_ms(b));
            first.append(of_item);
        };
        for key in self.store.keys(Tree::ItemChanges, b"")? {
            let (Some(this), Some(env)) = (key.get(..16), key.get(16..)) else {
                return Err(LibraryError::Corrupt("item change key".into()));
            };
            if item.as_deref() != Some(this) {
                flush(&mut of_item, &mut first);
                item = Some(this.to_vec());
            }
            if let Some(bytes) = self.store.get(Tree::Envelopes, env)? {
                placed.insert(env.to_vec());
                of_item.push(bytes);
            }
        }
        flush(&mut of_item, &mut first);
        for (k, v) in self.store.scan(Tree::Envelopes, b"")? {
            if !placed.contains(&k) {
                first.push(v);
            }
        }
        Ok(first)
    }

    /// Stores a verified envelope made or imported here and judges it;
    /// it is queued for announcing to peers. Trust and the judgements of
    /// the whole set catch up in [`Replica::settle_trust`], once per batch.
    pub fn accept(&mut self, env: Verified) -> Result<Accepted> {
        let out = self.accept_from(env)?;
        if out.new && self.outbox.len() < MAX_OUTBOX {
            self.outbox.push(out.id);
        }
        Ok(out)
    }

    /// Like `accept`, for envelopes that came from a peer (not announced again).
    pub fn accept_from(&mut self, env: Verified) -> Result<Accepted> {
        let id = env.id();
        let certificate = matches!(env.body(), Body::Certificate(_));
        if self.has_envelope(&id)? {
            return Ok(Accepted {
                id,
                new: false,
                judgement: self.judgement_of(&id)?,
                certificate,
            });
        }
        if matches!(env.body(), Body::Unread { .. })
            && self.store.len(Tree::Unread)? >= MAX_UNREAD_ENVELOPES
        {
            return Err(LibraryError::UnreadFull);
        }
        let pool_full = self.store.len(Tree::Judgements)? >= MAX_UNACCEPTED_ENVELOPES;
        let judgement = match env.body() {
            Body::Unread { .. } => self.trust.judge_unread(&id, &env.signer()),
            Body::Change(c) => self.trust.judge_change(&id, &env.signer(), &c.owner),
            Body::Post(p) => self.trust.judge_post(&id, &env.signer(), &p.voice),
            Body::Record(r) => {
                self.trust
                    .judge_record(&id, &env.signer(), &r.establishment, r.needs_publisher())
            }
            // A certificate's effect depends on all the others: `finish`
            // rebuilds trust once per batch and records its judgement then.
            // Only a full pool needs it judged now, to refuse it.
            Body::Certificate(_) if pool_full => {
                let mut certs = self.certificates()?;
                certs.push(env.clone());
                TrustView::build(&self.network, &certs).judge(&env)
            }
            Body::Certificate(_) => Judgement::Accepted,
        };
        if judgement != Judgement::Accepted && pool_full {
            return Err(LibraryError::PoolFull(judgement));
        }
        let mut batch: Vec<Write> = vec![(
            Tree::Envelopes,
            id.as_bytes().to_vec(),
            Some(env.bytes().to_vec()),
        )];
        batch.extend(Self::derived_rows(&env));
        match env.body() {
            Body::Certificate(cert) => {
                self.trust_stale = true;
                if let Some(known) = self.known_keys.as_mut() {
                    known.insert(env.signer());
                    known.extend(subjects(cert));
                }
            }
            Body::Change(c) => {
                self.dirty.insert(c.item);
            }
            Body::Post(_) | Body::Record(_) | Body::Unread { .. } => {}
        }
        if judgement != Judgement::Accepted && !certificate {
            *self.batch_unaccepted.entry(env.signer()).or_default() += 1;
        }
        batch.push(judgement_write(&id, judgement)?);
        self.store.apply(batch)?;
        if let Some(ids) = self.ids.as_mut() {
            ids.insert(id);
        }
        match env.body() {
            Body::Certificate(_) => {
                if let Some(certs) = self.certs.as_mut() {
                    certs.insert(id, env.clone());
                }
            }
            Body::Change(c) => {
                if let Some(facts) = self.facts.as_mut() {
                    facts.push((id, env.signer(), c.owner, c.item));
                }
                self.fresh_by_item.entry(c.item).or_default().push(id);
                self.fresh.insert(id, env);
            }
            Body::Post(_) => self.fresh_posts.push(env),
            Body::Record(_) | Body::Unread { .. } => {}
        }
        Ok(Accepted {
            id,
            new: true,
            judgement,
            certificate,
        })
    }

    /// Envelopes made or imported here since the last call, to announce.
    pub fn take_outbox(&mut self) -> Vec<EnvelopeId> {
        std::mem::take(&mut self.outbox)
    }

    /// The ids of every envelope held, sorted.
    pub fn envelope_ids(&self) -> Result<Vec<EnvelopeId>> {
        self.store
            .keys(Tree::Envelopes, b"")?
            .into_iter()
            .map(|k| {
                <[u8; 32]>::try_from(k.as_slice())
                    .map(EnvelopeId)
                    .map_err(|_| LibraryError::Corrupt("envelope key".into()))
            })
            .collect()
    }

    /// The bytes of those of `ids` held here, in order.
    pub fn envelope_bytes(&self, ids: &[EnvelopeId]) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(b) = self.store.get(Tree::Envelopes, id.as_bytes())? {
                out.push(b);
            }
        }
        Ok(out)
    }

    /// The judgement recorded for a held envelope.
    pub fn judgement_of(&self, id: &EnvelopeId) -> Result<Judgement> {
        match self.store.get(Tree::Judgements, id.as_bytes())? {
            Some(j) => serde_json::from_slice(&j)
                .map_err(|e| LibraryError::Corrupt(format!("judgement of {id}: {e}"))),
            None => Ok(Judgement::Accepted),
        }
    }

    /// The ids of every certificate held.
    pub fn certificate_ids(&self) -> Result<BTreeSet<EnvelopeId>> {
        self.store
            .scan(Tree::Certificates, b"")?
            .into_iter()
            .map(|(k, _)| {
                <[u8; 32]>::try_from(k.as_slice())
                    .map(EnvelopeId)
                    .map_err(|_| LibraryError::Corrupt("certificate key".into()))
            })
            .collect()
    }

    /// The bytes of every certificate held.
    pub fn certificate_bytes(&self) -> Result<Vec<Vec<u8>>> {
        let ids: Vec<EnvelopeId> = self.certificate_ids()?.into_iter().collect();
        self.envelope_bytes(&ids)
    }

    /// Every certificate held.
    pub fn certificates(&self) -> Result<Vec<Verified>> {
        if let Some(certs) = &self.certs {
            return Ok(certs.values().cloned().collect());
        }
        self.read_certificates()
    }

    fn read_certificates(&self) -> Result<Vec<Verified>> {
        let mut certs = Vec::new();
        for (k, _) in self.store.scan(Tree::Certificates, b"")? {
            let id = EnvelopeId(
                <[u8; 32]>::try_from(k.as_slice())
                    .map_err(|_| LibraryError::Corrupt("certificate key".into()))?,
            );
            certs.push(self.load_envelope(&id)?);
        }
        Ok(certs)
    }

    /// Whether a held envelope is a certificate.
    pub fn is_certificate(&self, id: &EnvelopeId) -> bool {
        match &self.certs {
            Some(certs) => certs.contains_key(id),
            None => matches!(
                self.store.get(Tree::Certificates, id.as_bytes()),
                Ok(Some(_))
            ),
        }
    }

    /// Forgets what is kept decoded in memory, after derived trees were
    /// rebuilt under the replica.
    pub fn forget_cached(&mut self) {
        self.ids = None;
        self.docs.clear();
        self.certs = None;
        self.facts = None;
        self.known_keys = None;
    }

    /// The facts of every change held: (id, signer, owner, item).
    pub fn change_facts(&self) -> Result<Vec<ChangeFact>> {
        if let Some(facts) = &self.facts {
            return Ok(facts.clone());
        }
        self.read_change_facts()
    }

    fn read_change_facts(&self) -> Result<Vec<ChangeFact>> {
        let mut out = Vec::new();
        for (k, v) in self.store.scan(Tree::ChangeFacts, b"")? {
            let bad = || LibraryError::Corrupt("change facts".into());
            let id = EnvelopeId(<[u8; 32]>::try_from(k.as_slice()).map_err(|_| bad())?);
            if v.len() != 64 {
                return Err(bad());
            }
            let signer = PublicKey::from_bytes(<[u8; 32]>::try_from(&v[..32]).map_err(|_| bad())?)
                .map_err(|_| bad())?;
            let owner = EstablishmentId(<[u8; 16]>::try_from(&v[32..48]).map_err(|_| bad())?);
            let item = ItemId(<[u8; 16]>::try_from(&v[48..]).map_err(|_| bad())?);
            out.push((id, signer, owner, item));
        }
        Ok(out)
    }

    /// Re-judges every envelope after trust changed, marking the items whose
    /// set of accepted changes moved.
    pub fn rejudge_all(&mut self) -> Result<()> {
        if self.facts.is_none() {
            self.facts = Some(self.read_change_facts()?);
        }
        let mut writes = Vec::new();
        let mut unaccepted: BTreeMap<PublicKey, usize> = BTreeMap::new();
        for (id, j) in self.trust.certificate_judgements() {
            if *j != Judgement::Accepted
                && let Some(c) = self.certs.as_ref().and_then(|c| c.get(id))
            {
                *unaccepted.entry(c.signer()).or_default() += 1;
            }
            if *j != self.judgement_of(id)? {
                writes.push(judgement_write(id, *j)?);
            }
        }
        for (id, signer, owner, item) in self.change_facts()? {
            let now = self.trust.judge_change(&id, &signer, &owner);
            if now != Judgement::Accepted {
                *unaccepted.entry(signer).or_default() += 1;
            }
            let before = self.judgement_of(&id)?;
            if now != before {
                writes.push(judgement_write(&id, now)?);
                if (now == Judgement::Accepted) != (before == Judgement::Accepted) {
                    self.dirty.insert(item);
                    self.rebuild.insert(item);
                    self.docs.remove(&item);
                    writes.push((Tree::Dirty, item.as_bytes().to_vec(), Some(Vec::new())));
                }
            }
        }
        for (k, v) in self.store.scan(Tree::Unread, b"")? {
            let bad = || LibraryError::Corrupt("unread envelope facts".into());
            let id = EnvelopeId(<[u8; 32]>::try_from(k.as_slice()).map_err(|_| bad())?);
            let signer =
                PublicKey::from_bytes(<[u8; 32]>::try_from(v.as_slice()).map_err(|_| bad())?)
                    .map_err(|_| bad())?;
            let now = self.trust.judge_unread(&id, &signer);
            if now != Judgement::Accepted {
                *unaccepted.entry(signer).or_default() += 1;
            }
            if now != self.judgement_of(&id)? {
                writes.push(judgement_write(&id, now)?);
            }
        }
        for (k, v) in self.store.scan(Tree::PostFacts, b"")? {
            let bad = || LibraryError::Corrupt("post facts".into());
            let id = EnvelopeId(<[u8; 32]>::try_from(k.as_slice()).map_err(|_| bad())?);
            let (signer, voice) = read_post_facts(&v).ok_or_else(bad)?;
            let now = self.trust.judge_post(&id, &signer, &voice);
            if now != Judgement::Accepted {
                *unaccepted.entry(signer).or_default() += 1;
            }
            if now != self.judgement_of(&id)? {
                writes.push(judgement_write(&id, now)?);
            }
        }
        for (k, v) in self.store.scan(Tree::Records, b"")? {
            let bad = || LibraryError::Corrupt("record facts".into());
            let id =
                EnvelopeId(<[u8; 32]>::try_from(k.get(17..).ok_or_else(bad)?).map_err(|_| bad())?);
            let (signer, est, needs_publisher) = read_record_facts(&v).ok_or_else(bad)?;
            let now = self.trust.judge_record(&id, &signer, &est, needs_publisher);
            if now != Judgement::Accepted {
                *unaccepted.entry(signer).or_default() += 1;
            }
            if now != self.judgement_of(&id)? {
                writes.push(judgement_write(&id, now)?);
            }
        }
        self.store.apply(writes)?;
        self.unaccepted_by = unaccepted;
        self.batch_unaccepted.clear();
        self.forum_stale = true;
        Ok(())
    }

    /// Posts stored since the last call, and whether the forum must be
    /// rebuilt instead (judgements of posts may have moved).
    pub fn take_fresh_posts(&mut self) -> (Vec<Verified>, bool) {
        (
            std::mem::take(&mut self.fresh_posts),
            std::mem::take(&mut self.forum_stale),
        )
    }

    /// The facts of every post held: id, signer, voice.
    pub fn post_facts(&self) -> Result<Vec<(EnvelopeId, PublicKey, Voice)>> {
        let mut out = Vec::new();
        for (k, v) in self.store.scan(Tree::PostFacts, b"")? {
            let bad = || LibraryError::Corrupt("post facts".into());
            let id = EnvelopeId(<[u8; 32]>::try_from(k.as_slice()).map_err(|_| bad())?);
            let (signer, voice) = read_post_facts(&v).ok_or_else(bad)?;
            out.push((id, signer, voice));
        }
        Ok(out)
    }

    /// Every post held in effect.
    pub fn accepted_posts(&self) -> Result<Vec<Verified>> {
        let mut out = Vec::new();
        for (k, _) in self.store.scan(Tree::PostFacts, b"")? {
            let id = EnvelopeId(
                <[u8; 32]>::try_from(k.as_slice())
                    .map_err(|_| LibraryError::Corrupt("post facts".into()))?,
            );
            if self.judgement_of(&id)? == Judgement::Accepted {
                out.push(self.load_envelope(&id)?);
            }
        }
        Ok(out)
    }

    /// The accepted change envelopes of an item.
    pub fn accepted_changes(&self, item: &ItemId) -> Result<Vec<Verified>> {
        accepted_changes(&*self.store, &self.network, item, &self.fresh)
    }

    /// The trust view, shared (read views hold it).
    pub(crate) fn shared_trust(&self) -> Arc<TrustView> {
        self.trust.clone()
    }
}

/// Reads an envelope back from `store`. Stored envelopes were verified
/// before they were written; the hash check on the way back in catches
/// damage on disk.
pub(crate) fn load_envelope(
    store: &dyn Store,
    network: &NetworkId,
    id: &EnvelopeId,
) -> Result<Verified> {
    let bytes = store
        .get(Tree::Envelopes, id.as_bytes())?
        .ok_or_else(|| LibraryError::Corrupt(format!("envelope {id} is indexed but missing")))?;
    Envelope::reopen(&bytes, id, network)
        .map_err(|_| LibraryError::DamagedEnvelopes { ids: vec![*id] })
}

/// The changes of `item` in effect in `store`, those of the current batch
/// taken from `fresh` rather than read back.
/// The ids of every change held for `item`, whatever their judgement.
fn item_change_ids(store: &dyn Store, item: &ItemId) -> Result<Vec<EnvelopeId>> {
    store
        .scan(Tree::ItemChanges, item.as_bytes())?
        .into_iter()
        .map(|(k, _)| {
            <[u8; 32]>::try_from(&k[16..])
                .map(EnvelopeId)
                .map_err(|_| LibraryError::Corrupt("item change key".into()))
        })
        .collect()
}

pub(crate) fn accepted_changes(
    store: &dyn Store,
    network: &NetworkId,
    item: &ItemId,
    fresh: &BTreeMap<EnvelopeId, Verified>,
) -> Result<Vec<Verified>> {
    let mut out = Vec::new();
    for (k, _) in store.scan(Tree::ItemChanges, item.as_bytes())? {
        let id = EnvelopeId(
            <[u8; 32]>::try_from(&k[16..])
                .map_err(|_| LibraryError::Corrupt("item change key".into()))?,
        );
        if store.get(Tree::Judgements, id.as_bytes())?.is_none() {
            match fresh.get(&id) {
                Some(env) => out.push(env.clone()),
                None => out.push(load_envelope(store, network, &id)?),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn what_is_held_back_stays_bounded_and_can_be_released() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let mut replica = Replica::open(store.clone(), NetworkId([1; 32])).expect("open");
        let id = |n: u32| {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&n.to_be_bytes());
            EnvelopeId(b)
        };
        for n in 0..=MAX_HELD_BACK as u32 {
            replica.hold_back(&id(n), b"entry").expect("hold");
        }
        assert_eq!(store.len(Tree::HeldBack).expect("len"), MAX_HELD_BACK);
        assert_eq!(replica.held_back(&id(0)).expect("get"), None);
        assert_eq!(
            replica.held_back(&id(1)).expect("get").as_deref(),
            Some(&b"entry"[..])
        );
        // One entry as large as the byte limit leaves room for nothing else.
        replica
            .hold_back(&id(u32::MAX), &vec![0; MAX_HELD_BACK_BYTES])
            .expect("hold");
        assert_eq!(replica.held_back_ids().expect("ids"), [id(u32::MAX)]);
        replica.release(&id(u32::MAX)).expect("release");
        assert!(replica.held_back_ids().expect("ids").is_empty());
        // What the store holds is read back by a replica opened later.
        replica.hold_back(&id(7), b"again").expect("hold");
        let mut reopened = Replica::open(store, NetworkId([1; 32])).expect("open");
        assert_eq!(reopened.held_back_ids().expect("ids"), [id(7)]);
    }
}
