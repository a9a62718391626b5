//! Queries: what the CLI, the web page and the JSON API read, answered
//! from a [`ReadView`].
//!
//! A read view is taken from the library after every batch: it holds the
//! trust view of that moment (shared, never copied), a reader of the search
//! index as of its last commit, and the store, whose derived trees each
//! batch writes atomically. Readers get the latest view from [`Reads`]
//! without taking the library's lock, so a page view or `gatehouse show`
//! never waits for a 2 MiB ingest or a rebuild.

pub mod adoption;
pub mod arrivals;
pub mod diff;
pub mod filter;
pub mod forum;
pub mod inbox;
pub mod lifecycle;
pub mod reading;
pub mod spc;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use gatehouse_protocol::automerge::{self, AutoCommit, ChangeHash};
use gatehouse_protocol::envelope::{Body, Verified};
use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, ItemId, NetworkId};
use gatehouse_protocol::item::{self, Item};
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::key::PublicKey;
use gatehouse_protocol::trust::{Judgement, TrustView};
use gatehouse_protocol::vocab::{Nation, Setting, Status};
use serde::{Deserialize, Serialize};

use crate::error::{LibraryError, Result};
use crate::net::book::{self, PeerEntry};
use crate::projection::forum::Forum;
use crate::projection::search::{SearchReader, SearchRequest, Sort};
use crate::projection::{self, StoredDoc, search::FacetCount, search::Hits, search::SearchError};
use crate::store::{Store, Tree};
use filter::Filter;

/// Shortest item-id prefix accepted in place of a whole id.
pub const MIN_ID_PREFIX_CHARS: usize = 6;

/// A key with the name trust gives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Named {
    /// The key.
    pub key: PublicKey,
    /// Its name, if known.
    pub name: Option<String>,
}

/// An establishment with the name trust gives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EstablishmentRef {
    /// Its id.
    pub id: EstablishmentId,
    /// Its name, if admitted.
    pub name: Option<String>,
}

/// `s` with its first letter a capital.
pub fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// A key as people know it, from [`ReadView::key_holders`]: "2b021b28
/// (Deputy healthcare manager of HMP Bravo)", or the short key alone.
pub fn key_in_words(holders: &BTreeMap<PublicKey, String>, key: &PublicKey) -> String {
    match holders.get(key) {
        Some(who) => format!("{} ({who})", key.short()),
        None => key.short(),
    }
}

/// An item as shown to people and in JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemView {
    /// The item.
    #[serde(flatten)]
    pub item: Item,
    /// The owning establishment.
    pub establishment: EstablishmentRef,
    /// Who signed versions.
    pub signed_by: Vec<Named>,
    /// When the version shown was signed (ms since the epoch, as its signer claims).
    pub updated_ms: u64,
    /// The same, as RFC 3339.
    pub updated: String,
}

/// One entry of an item's history: one signed change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionEntry {
    /// The version the item was at after this change.
    pub version: u64,
    /// publish, revise, supersede, withdraw.
    pub action: String,
    /// The envelope that carried it.
    pub envelope: EnvelopeId,
    /// The signing key and its holder.
    pub signer: Named,
    /// The establishment the signer acts for.
    pub establishment: EstablishmentRef,
    /// When the signer says it was made (RFC 3339).
    pub at: String,
    /// Fields whose value changed.
    pub changed: Vec<String>,
    /// Body lines added.
    pub lines_added: usize,
    /// Body lines removed.
    pub lines_removed: usize,
    /// Whether this change made a new version (published or revised it),
    /// rather than changing the version it found (a review, a status).
    pub made_version: bool,
}

/// A search hit with its item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResult {
    /// The item.
    #[serde(flatten)]
    pub view: ItemView,
    /// BM25 score.
    pub score: f32,
    /// Passage around the matches.
    pub snippet: String,
    /// Byte ranges of the snippet that matched.
    pub highlights: Vec<(usize, usize)>,
}

/// Search results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResults {
    /// Matching items in all.
    pub total: usize,
    /// The best of them.
    pub results: Vec<SearchResult>,
}

/// One page of search results, with facet counts over every match.
#[derive(Debug, Clone, Serialize)]
pub struct SearchPage {
    /// Total and this page's results.
    #[serde(flatten)]
    pub results: SearchResults,
    /// Results skipped before this page.
    pub offset: usize,
    /// The order of results.
    pub sort: Sort,
    /// For each facet, the values matching items hold and how many hold each.
    pub facets: BTreeMap<String, Vec<FacetCount>>,
}

/// An item due for review.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DueItem {
    /// The item.
    #[serde(flatten)]
    pub view: ItemView,
    /// Days until review is due; negative when overdue.
    pub days_left: i64,
}

/// Counts for `gatehouse status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// The network.
    pub network: NetworkId,
    /// Its name.
    pub network_name: Option<String>,
    /// This node's establishment.
    pub establishment: EstablishmentRef,
    /// Envelopes held.
    pub envelopes: usize,
    /// Certificates held.
    pub certificates: usize,
    /// Items in the library.
    pub items: usize,
    /// Envelopes waiting for what they depend on, by reason.
    pub pending: BTreeMap<String, usize>,
    /// Envelopes with no effect, by reason.
    pub rejected: BTreeMap<String, usize>,
}

/// An admitted establishment and how many items it owns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EstablishmentSummary {
    /// Its id.
    pub id: EstablishmentId,
    /// Its name.
    pub name: String,
    /// Setting type.
    pub setting: Setting,
    /// Nation.
    pub nation: Nation,
    /// Items it owns.
    pub items: usize,
    /// Whether the admins removed it.
    pub removed: bool,
    /// Its establishment keys.
    pub keys: Vec<KeyInfo>,
    /// Delegated keys.
    pub members: Vec<KeyInfo>,
}

/// A key of an establishment, as listed by `trust` and `member` commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The key.
    pub key: PublicKey,
    /// Who holds it.
    pub name: Option<String>,
    /// person, device or establishment.
    pub role: String,
    /// Whether it has been revoked.
    pub revoked: bool,
}

/// The library as of the end of one batch, for reading.
#[derive(Clone)]
pub struct ReadView {
    store: Arc<dyn Store>,
    network: NetworkId,
    establishment: EstablishmentId,
    trust: Arc<TrustView>,
    search: SearchReader,
    /// Set when a search fails, so the index is rebuilt at the next write.
    index_suspect: Arc<AtomicBool>,
    /// The forum of this moment.
    forum: Arc<Forum>,
    /// The files items carry, when this library keeps them.
    blobs: Option<crate::blobs::BlobStore>,
}

/// Where readers find the latest [`ReadView`]. The library replaces it at
/// the end of every batch; taking it holds a lock only for a pointer copy.
#[derive(Clone)]
pub struct Reads(Arc<RwLock<Arc<ReadView>>>);

impl Reads {
    pub(crate) fn new(view: ReadView) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(view))))
    }

    /// The latest view.
    pub fn latest(&self) -> Arc<ReadView> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn replace(&self, view: ReadView) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(view);
    }
}

impl ReadView {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        network: NetworkId,
        establishment: EstablishmentId,
        trust: Arc<TrustView>,
        (search, index_suspect): (SearchReader, Arc<AtomicBool>),
        forum: Arc<Forum>,
    ) -> Self {
        Self {
            store,
            network,
            establishment,
            trust,
            search,
            index_suspect,
            forum,
            blobs: None,
        }
    }

    /// The view reading items' files from `blobs`.
    pub(crate) fn with_blobs(mut self, blobs: Option<crate::blobs::BlobStore>) -> Self {
        self.blobs = blobs;
        self
    }

    /// The store this view reads.
    pub(crate) fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// This node's file store, if it keeps one.
    pub fn blobs(&self) -> Option<&crate::blobs::BlobStore> {
        self.blobs.as_ref()
    }

    /// Where one of an item's files stands here.
    pub fn file_state(
        &self,
        hash: &gatehouse_protocol::attachment::BlobHash,
    ) -> crate::blobs::BlobState {
        self.blobs
            .as_ref()
            .map_or(crate::blobs::BlobState::Absent, |b| b.state(hash))
    }

    /// The forum of this moment.
    pub fn forum(&self) -> &Forum {
        &self.forum
    }

    /// The network.
    pub fn network(&self) -> NetworkId {
        self.network
    }

    /// This node's establishment.
    pub fn establishment(&self) -> EstablishmentId {
        self.establishment
    }

    /// The trust view of this moment.
    pub fn trust(&self) -> &TrustView {
        &self.trust
    }

    /// The peer book.
    pub fn peers(&self) -> Result<Vec<PeerEntry>> {
        book::entries(&*self.store)
    }

    /// A held envelope, its hash checked against its id.
    pub(crate) fn envelope(&self, id: &EnvelopeId) -> Result<Verified> {
        crate::replica::load_envelope(&*self.store, &self.network, id)
    }

    fn accepted_changes(&self, item: &ItemId) -> Result<Vec<Verified>> {
        crate::replica::accepted_changes(&*self.store, &self.network, item, &BTreeMap::new())
    }

    /// Resolves a whole id or a unique prefix of at least
    /// [`MIN_ID_PREFIX_CHARS`] hex characters.
    pub fn resolve(&self, text: &str) -> Result<ItemId> {
        let text = text.trim().to_ascii_lowercase();
        if let Ok(id) = text.parse::<ItemId>() {
            return Ok(id);
        }
        if text.len() < MIN_ID_PREFIX_CHARS || !text.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(LibraryError::UnknownItem(text));
        }
        let matches = self.store.scan(Tree::Catalog, text.as_bytes())?;
        match matches.len() {
            0 => Err(LibraryError::UnknownItem(text)),
            1 => std::str::from_utf8(&matches[0].0)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| LibraryError::Corrupt("catalog key".into())),
            count => Err(LibraryError::AmbiguousId {
                prefix: text,
                count,
            }),
        }
    }

    /// A key the network knows, by the whole key or a unique prefix of at
    /// least 8 hex characters (as listings show them).
    pub fn resolve_key(&self, text: &str) -> Result<PublicKey> {
        let text = text.trim().to_ascii_lowercase();
        if let Ok(key) = text.parse::<PublicKey>() {
            return Ok(key);
        }
        if text.len() < 8 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(LibraryError::UnknownKey(text));
        }
        let mut found = self.key_holders();
        found.retain(|k, _| k.to_hex().starts_with(&text));
        match found.len() {
            0 => Err(LibraryError::UnknownKey(text)),
            1 => found
                .into_keys()
                .next()
                .ok_or(LibraryError::UnknownKey(text)),
            _ => Err(LibraryError::AmbiguousKey {
                prefix: text,
                candidates: found
                    .iter()
                    .map(|(k, who)| format!("{} ({who})", &k.to_hex()[..12]))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Every key the network knows, with who holds it in words (see
    /// [`key_in_words`]) ("Deputy
    /// healthcare manager of HMP Bravo", "an establishment key of HMP
    /// Bravo", "a network admin").
    pub fn key_holders(&self) -> BTreeMap<PublicKey, String> {
        let mut found: BTreeMap<PublicKey, String> = BTreeMap::new();
        for e in self.trust.establishments.values() {
            for k in &e.keys {
                found.insert(*k, format!("an establishment key of {}", e.name));
            }
        }
        for ((est, key), m) in &self.trust.members {
            found.insert(
                *key,
                format!("{} of {}", m.name, self.establishment_name(est)),
            );
        }
        for k in &self.trust.admins {
            found.entry(*k).or_insert_with(|| "a network admin".into());
        }
        found
    }

    /// An establishment's name, or its short id when the network has none.
    pub fn establishment_name(&self, id: &EstablishmentId) -> String {
        self.trust.establishments.get(id).map_or_else(
            || format!("establishment {}", id.short()),
            |e| e.name.clone(),
        )
    }

    pub(crate) fn named_establishment(&self, id: &EstablishmentId) -> EstablishmentRef {
        EstablishmentRef {
            id: *id,
            name: self.trust.establishments.get(id).map(|e| e.name.clone()),
        }
    }

    pub(crate) fn named_member(&self, establishment: &EstablishmentId, key: &PublicKey) -> Named {
        let name = self
            .trust
            .member(establishment, key)
            .map(|m| m.name.clone())
            .or_else(|| {
                self.trust
                    .establishments
                    .get(establishment)
                    .filter(|e| e.keys.contains(key))
                    .map(|e| format!("{} establishment key", e.name))
            });
        Named { key: *key, name }
    }

    fn view(&self, item: Item, updated_ms: u64) -> ItemView {
        ItemView {
            updated_ms,
            updated: format_ms(updated_ms),
            establishment: self.named_establishment(&item.owner),
            signed_by: item
                .authors
                .iter()
                .map(|a| self.named_member(&item.owner, a))
                .collect(),
            item,
        }
    }

    fn load_item(&self, id: &ItemId) -> Result<Option<(Item, u64)>> {
        projection::load_item(&*self.store, id)
    }

    /// An item, at its latest version or at `version`.
    pub fn get(&self, id: &ItemId, version: Option<u64>) -> Result<ItemView> {
        let (latest, updated_ms) = self
            .load_item(id)?
            .ok_or_else(|| LibraryError::UnknownItem(id.to_hex()))?;
        let wanted = match version {
            // Concurrent revisions both count, so the latest version number
            // may be reached only by their merge, not by any one change.
            None => return Ok(self.view(latest, updated_ms)),
            Some(v) if v == latest.version => return Ok(self.view(latest, updated_ms)),
            Some(v) => v,
        };
        let signed_at: BTreeMap<automerge::ChangeHash, u64> = self
            .accepted_changes(id)?
            .iter()
            .filter_map(|e| match e.body() {
                Body::Change(c) => Some((c.change.hash(), e.created_ms())),
                Body::Certificate(_) | Body::Post(_) | Body::Record(_) | Body::Unread { .. } => {
                    None
                }
            })
            .collect();
        let bytes = crate::projection::item_doc(&*self.store, id)?
            .ok_or_else(|| LibraryError::UnknownItem(id.to_hex()))?;
        let mut doc = AutoCommit::load(&bytes)?;
        for change in doc.get_changes(&[]) {
            let mut at = doc.fork_at(&[change.hash()])?;
            at.commit();
            if let Ok(it) = item::read_item(&at)
                && it.version == wanted
            {
                let at_ms = signed_at.get(&change.hash()).copied().unwrap_or(0);
                return Ok(self.view(it, at_ms));
            }
        }
        Err(LibraryError::NoSuchVersion {
            id: *id,
            version: wanted,
            latest: latest.version,
        })
    }

    /// Every signed change of an item, oldest first, with what it changed.
    pub fn history(&self, id: &ItemId) -> Result<Vec<VersionEntry>> {
        let envelopes = self.accepted_changes(id)?;
        if envelopes.is_empty() || projection::catalog_item(&*self.store, id)?.is_none() {
            return Err(LibraryError::UnknownItem(id.to_hex()));
        }
        let mut by_hash = BTreeMap::new();
        for e in &envelopes {
            if let Body::Change(c) = e.body() {
                by_hash.insert(c.change.hash(), e);
            }
        }
        let stored = projection::stored_doc(&*self.store, id)?
            .ok_or_else(|| LibraryError::UnknownItem(id.to_hex()))?;
        // An item of one change has one version: the item as it reads.
        if let StoredDoc::Change(change) = &stored
            && let Some(env) = by_hash.get(&change.hash())
            && by_hash.len() == 1
        {
            return Ok(vec![self.version_entry(
                env,
                change.message(),
                None,
                stored.read()?,
            )]);
        }
        let mut doc = AutoCommit::load(&stored.into_bytes())?;
        let now = sorted_heads(doc.get_heads());
        let mut out = Vec::new();
        // The item after the change read last: in a linear history, the
        // item before the next one. Rebuilding the document at a change
        // costs as much as loading it, so each version is built once, and
        // the latest is read from the document as loaded.
        let mut last: Option<(Vec<ChangeHash>, Option<Item>)> = None;
        for change in doc.get_changes(&[]) {
            let Some(env) = by_hash.get(&change.hash()) else {
                continue;
            };
            let deps = sorted_heads(change.deps().to_vec());
            let before = match last.take() {
                Some((heads, it)) if heads == deps => it,
                _ if deps.is_empty() => None,
                _ => read_at(&mut doc, &deps, &now)?,
            };
            let heads = vec![change.hash()];
            let after = read_at(&mut doc, &heads, &now)?;
            last = Some((heads, after.clone()));
            let Some(after) = after else {
                continue;
            };
            out.push(self.version_entry(env, change.message(), before.as_ref(), after));
        }
        Ok(out)
    }

    /// What one signed change of an item made of it: `before` is the item
    /// as it read at the change's dependencies.
    fn version_entry(
        &self,
        env: &Verified,
        message: Option<&str>,
        before: Option<&Item>,
        after: Item,
    ) -> VersionEntry {
        let (changed, added, removed) = describe_change(before, &after);
        let made_version = before.is_none_or(|b| b.version < after.version);
        let owner = after.owner;
        VersionEntry {
            version: after.version,
            action: message.unwrap_or("change").to_string(),
            envelope: env.id(),
            signer: self.named_member(&owner, &env.signer()),
            establishment: self.named_establishment(&owner),
            at: format_ms(env.created_ms()),
            changed,
            lines_added: added,
            lines_removed: removed,
            made_version,
        }
    }

    fn catalog(&self) -> Result<Vec<(Item, u64)>> {
        projection::catalog(&*self.store)
    }

    /// Items meeting `filter`, newest review date last.
    pub fn list(&self, filter: &Filter) -> Result<Vec<ItemView>> {
        let mut items: Vec<(Item, u64)> = self
            .catalog()?
            .into_iter()
            .filter(|(i, _)| filter.matches(i))
            .collect();
        items.sort_by(|(a, _), (b, _)| {
            self.establishment_name(&a.owner)
                .cmp(&self.establishment_name(&b.owner))
                .then_with(|| a.content.title.cmp(&b.content.title))
        });
        Ok(items.into_iter().map(|(i, t)| self.view(i, t)).collect())
    }

    /// Ranked full-text search.
    pub fn search(&self, query: &str, filter: &Filter, limit: usize) -> Result<SearchResults> {
        Ok(self
            .find(&SearchRequest::relevance(query, filter, limit))?
            .results)
    }

    /// One page of search results in the requested order, with facet
    /// counts over every match.
    pub fn find(&self, req: &SearchRequest<'_>) -> Result<SearchPage> {
        let Hits {
            total,
            hits,
            facets,
        } = self.search.find(req).inspect_err(|e| {
            if !matches!(e, SearchError::BadQuery(_)) {
                tracing::warn!("search failed ({e}); the index will be rebuilt");
                self.index_suspect.store(true, Ordering::Relaxed);
            }
        })?;
        let mut results = Vec::with_capacity(hits.len());
        for hit in hits {
            let Some((item, updated_ms)) = projection::catalog_item(&*self.store, &hit.id)? else {
                continue;
            };
            results.push(SearchResult {
                view: self.view(item, updated_ms),
                score: hit.score,
                snippet: hit.snippet,
                highlights: hit.highlights,
            });
        }
        Ok(SearchPage {
            results: SearchResults { total, results },
            offset: req.offset,
            sort: req.sort.effective(req.query),
            facets,
        })
    }

    /// This establishment's items in force (draft or published) whose review
    /// falls on or before `today + within_days`, soonest first.
    pub fn due(&self, today: Date, within_days: i64) -> Result<Vec<DueItem>> {
        let mut out: Vec<DueItem> = self
            .catalog()?
            .into_iter()
            .filter(|(i, _)| i.owner == self.establishment)
            .filter(|(i, _)| matches!(i.content.status, Status::Draft | Status::Published))
            .filter_map(|(i, updated_ms)| {
                let days = today
                    .until(i.content.review_due)
                    .map_or(0, |s| i64::from(s.get_days()));
                (days <= within_days).then(|| DueItem {
                    view: self.view(i, updated_ms),
                    days_left: days,
                })
            })
            .collect();
        out.sort_by_key(|d| (d.days_left, d.view.item.content.title.clone()));
        Ok(out)
    }

    /// The first `limit` of [`ReadView::due`]'s list, and how long it is,
    /// from the search index (no item beyond those shown is read), soonest
    /// first: what the home page shows.
    pub fn due_soonest(
        &self,
        today: Date,
        within_days: i64,
        limit: usize,
    ) -> Result<(Vec<DueItem>, usize)> {
        let before = today
            .checked_add(gatehouse_protocol::jiff::Span::new().days(within_days.saturating_add(1)))
            .unwrap_or(Date::MAX);
        let mut total = 0;
        let mut out = Vec::new();
        for status in [Status::Draft, Status::Published] {
            let filter = Filter {
                status: Some(status),
                owners: Some(vec![self.establishment]),
                review_due_before: Some(before),
                ..Filter::default()
            };
            let page = self.find(&SearchRequest {
                query: "",
                filter: &filter,
                sort: Sort::ReviewDue,
                offset: 0,
                limit,
                facets: false,
            })?;
            total += page.results.total;
            out.extend(page.results.results.into_iter().map(|r| {
                let days = today
                    .until(r.view.item.content.review_due)
                    .map_or(0, |s| i64::from(s.get_days()));
                DueItem {
                    view: r.view,
                    days_left: days,
                }
            }));
        }
        out.sort_by_key(|d| (d.days_left, d.view.item.content.title.clone()));
        out.truncate(limit);
        Ok((out, total))
    }

    /// Admitted establishments with their item counts.
    pub fn establishments(&self) -> Result<Vec<EstablishmentSummary>> {
        let mut counts: BTreeMap<EstablishmentId, usize> = BTreeMap::new();
        for (item, _) in self.catalog()? {
            *counts.entry(item.owner).or_default() += 1;
        }
        let mut out: Vec<EstablishmentSummary> = self
            .trust
            .establishments
            .values()
            .map(|e| EstablishmentSummary {
                id: e.id,
                name: e.name.clone(),
                setting: e.setting,
                nation: e.nation,
                items: counts.get(&e.id).copied().unwrap_or(0),
                removed: e.removed,
                keys: e
                    .keys
                    .iter()
                    .filter(|k| !self.trust.members.contains_key(&(e.id, **k)))
                    .map(|k| KeyInfo {
                        key: *k,
                        name: None,
                        role: "establishment".into(),
                        revoked: self.trust.revoked_keys.contains_key(k),
                    })
                    .collect(),
                members: self
                    .trust
                    .members
                    .values()
                    .filter(|m| m.establishment == e.id)
                    .map(|m| KeyInfo {
                        key: m.key,
                        name: Some(m.name.clone()),
                        role: m.role.slug().into(),
                        revoked: m.revoked,
                    })
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Establishments whose name contains `text` (case-insensitive), or whose
    /// id is `text`.
    pub fn find_establishments(&self, text: &str) -> Vec<EstablishmentId> {
        let needle = text.trim().to_lowercase();
        self.trust
            .establishments
            .values()
            .filter(|e| e.name.to_lowercase().contains(&needle) || e.id.to_hex() == needle)
            .map(|e| e.id)
            .collect()
    }

    /// Bytes the node's store takes.
    pub fn store_bytes(&self) -> Result<u64> {
        Ok(self.store.size_bytes()?)
    }

    /// Counts of what this node holds.
    pub fn status(&self) -> Result<StatusReport> {
        let mut pending = BTreeMap::new();
        let mut rejected = BTreeMap::new();
        for (_, v) in self.store.scan(Tree::Judgements, b"")? {
            match serde_json::from_slice::<Judgement>(&v) {
                Ok(Judgement::Pending(r)) => *pending.entry(r.to_string()).or_insert(0) += 1,
                Ok(Judgement::Rejected(r)) => *rejected.entry(r.to_string()).or_insert(0) += 1,
                Ok(Judgement::Accepted) => {}
                Err(e) => return Err(LibraryError::Corrupt(format!("judgement: {e}"))),
            }
        }
        Ok(StatusReport {
            network: self.network,
            network_name: self.trust.network_name.clone(),
            establishment: self.named_establishment(&self.establishment),
            envelopes: self.store.len(Tree::Envelopes)?,
            certificates: self.store.len(Tree::Certificates)?,
            items: self.store.len(Tree::Catalog)?,
            pending,
            rejected,
        })
    }
}

/// RFC 3339 text for a claimed time in milliseconds.
pub fn format_ms(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| gatehouse_protocol::jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| "unknown".into(), |t| t.to_string())
}

/// An RFC 3339 time as people write it: "4 December 2026, 18:45 UTC"
/// (the text as it is when it is not a time).
pub fn when(rfc3339: &str) -> String {
    rfc3339
        .parse::<gatehouse_protocol::jiff::Timestamp>()
        .map_or_else(
            |_| rfc3339.to_string(),
            |t| t.strftime("%-d %B %Y, %H:%M UTC").to_string(),
        )
}

/// Which fields differ between two versions, and body lines added/removed.
fn describe_change(before: Option<&Item>, after: &Item) -> (Vec<String>, usize, usize) {
    let Some(before) = before else {
        let lines = after.content.body.lines().count();
        return (vec!["created".into()], lines, 0);
    };
    let (b, a) = (&before.content, &after.content);
    let mut changed = Vec::new();
    let mut check = |name: &str, differs: bool| {
        if differs {
            changed.push(name.to_string());
        }
    };
    check("title", b.title != a.title);
    check("kind", b.kind != a.kind);
    check("summary", b.summary != a.summary);
    check("body", b.body != a.body);
    check("pathways", b.pathways != a.pathways);
    check("settings", b.settings != a.settings);
    check("nations", b.nations != a.nations);
    check("tags", b.tags != a.tags);
    check("approved_by", b.approved_by != a.approved_by);
    check("approved_on", b.approved_on != a.approved_on);
    check("effective_from", b.effective_from != a.effective_from);
    check("review_due", b.review_due != a.review_due);
    check("status", b.status != a.status);
    check("qi", b.qi != a.qi);
    check("superseded_by", before.superseded_by != after.superseded_by);
    check("supersedes", before.supersedes != after.supersedes);
    check(
        "withdrawn_reason",
        before.withdrawn_reason != after.withdrawn_reason,
    );
    let diff = similar::TextDiff::from_lines(&b.body, &a.body);
    let (mut added, mut removed) = (0, 0);
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Delete => removed += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    (changed, added, removed)
}

fn sorted_heads(mut heads: Vec<ChangeHash>) -> Vec<ChangeHash> {
    heads.sort_unstable();
    heads
}

/// The item as it stood at `heads` (sorted), or `None` if it did not read
/// there; `now` (sorted) are the document's own heads, read without a
/// rebuild.
fn read_at(doc: &mut AutoCommit, heads: &[ChangeHash], now: &[ChangeHash]) -> Result<Option<Item>> {
    if heads == now {
        return Ok(item::read_item(doc).ok());
    }
    let mut at = doc.fork_at(heads)?;
    at.commit();
    Ok(item::read_item(&at).ok())
}
