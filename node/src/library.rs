//! The library of one node: every operation the CLI (and later the daemon's
//! API) performs on it.
//!
//! The library owns the store, the trust view and the search index. All
//! state changes enter through one door, [`Library::accept`], which stores
//! a verified envelope, judges it against the trust view and re-materialises
//! the items it touches; locally made changes are judged *before* they are
//! stored, so an unauthorised publish leaves nothing behind. An operation
//! returns only after the store is flushed, so what it acknowledged survives
//! a crash; derived state (item documents, catalog, search index) is marked
//! dirty first and rebuilt at start-up if a crash interrupted it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gatehouse_protocol::automerge::transaction::CommitOptions;
use gatehouse_protocol::automerge::{self, AutoCommit};
use gatehouse_protocol::certificate::{Admission, Certificate, Delegation, Genesis, MemberRole};
use gatehouse_protocol::change::{ACTOR_SUFFIX_BYTES, ChangePayload, actor_id};
use gatehouse_protocol::envelope::{Body, Envelope, Verified, VerifyError};
use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, ItemId, NetworkId};
use gatehouse_protocol::identifier::find_identifiers_allowing;
use gatehouse_protocol::item::{self, FieldError, Item, ItemContent};
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::key::{PublicKey, SecretKey};
use gatehouse_protocol::trust::{Judgement, TrustView};
use gatehouse_protocol::vocab::{Nation, Setting, Status};
use serde::{Deserialize, Serialize};

pub use crate::error::LibraryError;
use crate::error::Result;
use crate::filter::Filter;
use crate::home::{Home, generate_key, random_bytes};
use crate::replica::Replica;
pub use crate::replica::{Accepted, MAX_OUTBOX, MAX_UNACCEPTED_ENVELOPES};
use crate::search::{FacetCount, Hits, SearchError, SearchIndex, SearchRequest, Sort};
use crate::store::{SledStore, Store, Tree, Write};

/// Shortest item-id prefix accepted in place of a whole id.
pub const MIN_ID_PREFIX_CHARS: usize = 6;
/// Longest withdrawal reason, in characters.
pub const MAX_REASON_CHARS: usize = 1_000;

/// The node's configuration, kept in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeConfig {
    /// The network this node belongs to.
    pub network: NetworkId,
    /// This node's establishment.
    pub establishment: EstablishmentId,
    /// The publishing key on this node, if any.
    pub member: Option<PublicKey>,
    /// The node's own key.
    pub node: PublicKey,
    /// The per-node suffix of this node's Automerge actor ids (hex).
    pub actor_suffix: String,
}

/// What `init` needs.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The establishment's name.
    pub establishment: String,
    /// Its setting type.
    pub setting: Setting,
    /// Its nation.
    pub nation: Nation,
    /// The name of the network founded.
    pub network_name: String,
    /// Who holds the first publishing key, e.g. "Healthcare manager".
    pub member_name: String,
}

/// The public keys made by `init`.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    /// The data directory.
    pub home: String,
    /// The network founded.
    pub network: NetworkId,
    /// Its name.
    pub network_name: String,
    /// The admin key.
    pub admin_key: PublicKey,
    /// The establishment's id.
    pub establishment_id: EstablishmentId,
    /// The establishment key.
    pub establishment_key: PublicKey,
    /// The publishing key.
    pub member_key: PublicKey,
    /// The node key.
    pub node_key: PublicKey,
}

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

/// A remembered peer address.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerEntry {
    /// The multiaddress.
    pub address: String,
    /// The PeerId last seen there.
    pub peer_id: Option<String>,
    /// When this node last completed a reconciliation with it (ms since the epoch).
    pub last_sync_ms: Option<u64>,
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

struct Signer {
    member: SecretKey,
    actor_suffix: [u8; ACTOR_SUFFIX_BYTES],
}

/// The library of one node.
pub struct Library {
    store: Arc<dyn Store>,
    replica: Replica,
    config: NodeConfig,
    index: SearchIndex,
    /// Where the index lives on disk (`None`: in memory).
    index_dir: Option<PathBuf>,
    /// An index write failed: the index is rebuilt at the end of the batch.
    index_broken: bool,
    /// A search failed: the index is rebuilt at the next write.
    index_suspect: AtomicBool,
    signer: Option<Signer>,
    now_ms: fn() -> u64,
}

fn system_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

const CONFIG_KEY: &[u8] = b"node";
/// Key, in the config tree, of the layout of derived state (catalog and
/// index) last built; a different layout is rebuilt from the envelopes.
const DERIVED_LAYOUT_KEY: &[u8] = b"derived-layout";
/// The layout of derived state this code writes (2: catalog entries and the
/// index carry when each item was last updated, and the index its facets).
const DERIVED_LAYOUT: &[u8] = b"2";

fn config_write(config: &NodeConfig) -> Result<Write> {
    let bytes = serde_json::to_vec(config).map_err(|e| LibraryError::Corrupt(e.to_string()))?;
    Ok((Tree::Config, CONFIG_KEY.to_vec(), Some(bytes)))
}

impl Library {
    /// Creates a node in `home`: keys, a new network with this node's
    /// establishment admitted, and the first publishing key delegated.
    pub fn init(home: &Home, opts: &InitOptions) -> Result<(Self, InitReport)> {
        if home.is_initialised() {
            return Err(LibraryError::AlreadyInitialised(
                home.root().display().to_string(),
            ));
        }
        for (field, v) in [
            ("establishment", &opts.establishment),
            ("network name", &opts.network_name),
            ("member name", &opts.member_name),
        ] {
            if v.trim().is_empty() || v.len() > gatehouse_protocol::certificate::MAX_NAME_BYTES {
                return Err(LibraryError::Invalid(FieldError {
                    field,
                    reason: format!(
                        "must be 1 to {} bytes",
                        gatehouse_protocol::certificate::MAX_NAME_BYTES
                    ),
                }));
            }
        }
        home.create()?;
        let admin = generate_key()?;
        let establishment = generate_key()?;
        let establishment_id = EstablishmentId(random_bytes()?);
        let member = generate_key()?;
        let node = generate_key()?;
        home.write_key("admin", &admin)?;
        home.write_key("establishment", &establishment)?;
        home.write_key("member", &member)?;
        home.write_key("node", &node)?;
        let genesis = Genesis {
            name: opts.network_name.clone(),
            admins: vec![admin.public()],
            threshold: 1,
            nonce: random_bytes()?,
        };
        let network = genesis.network_id();
        let config = NodeConfig {
            network,
            establishment: establishment_id,
            member: Some(member.public()),
            node: node.public(),
            actor_suffix: hex::encode(random_bytes::<ACTOR_SUFFIX_BYTES>()?),
        };
        let member_key = member.public();
        let mut lib = Self::create_in(home, config, Some(member))?;
        let now = (lib.now_ms)();
        let certs = [
            Verified::sign(
                Body::Certificate(Certificate::Genesis(genesis)),
                &admin,
                &network,
                now,
            ),
            Verified::sign(
                Body::Certificate(Certificate::Admit(Admission {
                    establishment: establishment_id,
                    key: establishment.public(),
                    name: opts.establishment.clone(),
                    setting: opts.setting,
                    nation: opts.nation,
                })),
                &admin,
                &network,
                now,
            ),
            Verified::sign(
                Body::Certificate(Certificate::Delegate(Delegation {
                    establishment: establishment_id,
                    member: member_key,
                    name: opts.member_name.clone(),
                    role: MemberRole::Person,
                })),
                &establishment,
                &network,
                now,
            ),
            Verified::sign(
                Body::Certificate(Certificate::Delegate(Delegation {
                    establishment: establishment_id,
                    member: node.public(),
                    name: format!("{} node", opts.establishment),
                    role: MemberRole::Device,
                })),
                &establishment,
                &network,
                now,
            ),
        ];
        lib.ingest_many(certs.to_vec())?;
        let report = InitReport {
            home: home.root().display().to_string(),
            network,
            network_name: opts.network_name.clone(),
            admin_key: admin.public(),
            establishment_id,
            establishment_key: establishment.public(),
            member_key,
            node_key: node.public(),
        };
        Ok((lib, report))
    }

    /// Opens the node in `home`, rebuilding whatever derived state is missing.
    pub fn open(home: &Home) -> Result<Self> {
        if !home.is_initialised() {
            return Err(LibraryError::NotInitialised(
                home.root().display().to_string(),
            ));
        }
        let store = SledStore::open(&home.store_dir())?;
        let config: NodeConfig = match store.get(Tree::Config, CONFIG_KEY)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| LibraryError::Corrupt(format!("node config: {e}")))?,
            None => {
                return Err(LibraryError::NotInitialised(
                    home.root().display().to_string(),
                ));
            }
        };
        let member = home.read_key("member")?;
        let dir = home.index_dir();
        let (index, verified) = match SearchIndex::open(&dir).and_then(|i| i.verify().map(|()| i)) {
            Ok(index) => (index, true),
            Err(e) => {
                tracing::warn!("search index unusable ({e}); rebuilding it from the library");
                (fresh_index(&dir), false)
            }
        };
        let mut lib = Self::assemble(Arc::new(store), config, index, member)?;
        lib.index_dir = Some(dir);
        lib.index_broken = !verified;
        lib.recover()?;
        Ok(lib)
    }

    /// A library over any store and index (tests and simulation).
    pub fn with_store(
        store: Arc<dyn Store>,
        config: NodeConfig,
        index: SearchIndex,
        member: Option<SecretKey>,
    ) -> Result<Self> {
        store.apply(vec![config_write(&config)?])?;
        let mut lib = Self::assemble(store, config, index, member)?;
        lib.recover()?;
        Ok(lib)
    }

    /// Opens a fresh sled store and index in `home` with `config`.
    pub(crate) fn create_in(
        home: &Home,
        config: NodeConfig,
        member: Option<SecretKey>,
    ) -> Result<Self> {
        let store = SledStore::open(&home.store_dir())?;
        store.apply(vec![
            config_write(&config)?,
            (
                Tree::Config,
                DERIVED_LAYOUT_KEY.to_vec(),
                Some(DERIVED_LAYOUT.to_vec()),
            ),
        ])?;
        let index = SearchIndex::open(&home.index_dir())?;
        let mut lib = Self::assemble(Arc::new(store), config, index, member)?;
        lib.index_dir = Some(home.index_dir());
        Ok(lib)
    }

    /// Records a new publishing key for this node (after a rotation).
    pub(crate) fn set_member(&mut self, member: SecretKey) -> Result<()> {
        self.config.member = Some(member.public());
        self.store.apply(vec![config_write(&self.config)?])?;
        self.store.flush()?;
        if let Some(s) = self.signer.as_mut() {
            s.member = member;
        } else {
            let mut suffix = [0u8; ACTOR_SUFFIX_BYTES];
            hex::decode_to_slice(&self.config.actor_suffix, &mut suffix)
                .map_err(|_| LibraryError::Corrupt("actor suffix in node config".into()))?;
            self.signer = Some(Signer {
                member,
                actor_suffix: suffix,
            });
        }
        Ok(())
    }

    fn assemble(
        store: Arc<dyn Store>,
        config: NodeConfig,
        index: SearchIndex,
        member: Option<SecretKey>,
    ) -> Result<Self> {
        let mut suffix = [0u8; ACTOR_SUFFIX_BYTES];
        hex::decode_to_slice(&config.actor_suffix, &mut suffix)
            .map_err(|_| LibraryError::Corrupt("actor suffix in node config".into()))?;
        let signer = member.map(|member| Signer {
            member,
            actor_suffix: suffix,
        });
        let replica = Replica::open(store.clone(), config.network)?;
        Ok(Self {
            store,
            replica,
            config,
            index,
            index_dir: None,
            index_broken: false,
            index_suspect: AtomicBool::new(false),
            signer,
            now_ms: system_now_ms,
        })
    }

    /// Brings derived state in line with the envelopes held, whatever a
    /// crash interrupted: every envelope is judged again against the trust
    /// view of the whole set, items whose accepted changes moved or whose
    /// rebuild was cut short are rebuilt, and a damaged index is rebuilt.
    /// A failure in derived state starts a rebuild of all of it from the
    /// envelopes; only damage to the envelopes themselves is an error.
    fn recover(&mut self) -> Result<()> {
        match self.bring_in_line() {
            Ok(()) => Ok(()),
            Err(e) if e.is_derived() => {
                tracing::warn!("derived state unusable ({e}); rebuilding it from the envelopes");
                self.rebuild_from_envelopes()
            }
            Err(e) => Err(e),
        }
    }

    fn bring_in_line(&mut self) -> Result<()> {
        let layout_current =
            self.store.get(Tree::Config, DERIVED_LAYOUT_KEY)?.as_deref() == Some(DERIVED_LAYOUT);
        if !layout_current {
            tracing::info!("derived state has an older layout; rebuilding it");
            self.store.clear(Tree::Catalog)?;
            self.index_broken = true;
        }
        let mut rebuild: BTreeSet<ItemId> = BTreeSet::new();
        for (k, _) in self.store.scan(Tree::Dirty, b"")? {
            if let Ok(bytes) = <[u8; 16]>::try_from(k.as_slice()) {
                rebuild.insert(ItemId(bytes));
            }
        }
        let items_with_changes = self.items_with_changes()?;
        if self.store.len(Tree::Catalog)? > items_with_changes.len() {
            // Entries for items we hold no change of: the catalog is not ours.
            self.store.clear(Tree::Catalog)?;
        }
        for item in &items_with_changes {
            if self
                .store
                .get(Tree::Catalog, item.to_hex().as_bytes())?
                .is_none()
            {
                rebuild.insert(*item);
            }
        }
        if !rebuild.is_empty() {
            tracing::info!(items = rebuild.len(), "rebuilding derived state");
        }
        self.replica.mark_dirty(rebuild);
        // Judgements stored before a crash may have been made against a
        // trust view that lacked certificates of the same batch.
        self.replica.rejudge_everything()?;
        if self.index.len() != self.store.len(Tree::Catalog)? {
            tracing::info!("search index out of step with the catalog; rebuilding it");
            self.index_broken = true;
        }
        self.finish()?;
        if !layout_current {
            self.mark_layout_current()?;
        }
        Ok(())
    }

    /// Records that derived state has this code's layout.
    fn mark_layout_current(&mut self) -> Result<()> {
        self.store.apply(vec![(
            Tree::Config,
            DERIVED_LAYOUT_KEY.to_vec(),
            Some(DERIVED_LAYOUT.to_vec()),
        )])?;
        self.store.flush()?;
        Ok(())
    }

    fn items_with_changes(&self) -> Result<BTreeSet<ItemId>> {
        let mut out = BTreeSet::new();
        for (k, _) in self.store.scan(Tree::ItemChanges, b"")? {
            if let Ok(bytes) = <[u8; 16]>::try_from(&k[..16.min(k.len())]) {
                out.insert(ItemId(bytes));
            }
        }
        Ok(out)
    }

    /// Rebuilds the search index from the item documents, in a new index
    /// directory. If the disk cannot hold it, the index is kept in memory
    /// for this run (and rebuilt on disk at the next open).
    pub fn reindex_all(&mut self) -> Result<()> {
        let old = std::mem::replace(&mut self.index, in_memory_index()?);
        drop(old);
        if let Some(dir) = &self.index_dir {
            self.index = fresh_index(dir);
        }
        self.index_broken = false;
        self.index_suspect.store(false, Ordering::Relaxed);
        if let Err(e) = self.fill_index() {
            tracing::warn!("cannot rebuild the search index on disk ({e}); keeping it in memory");
            self.index = in_memory_index()?;
            self.fill_index()?;
        }
        Ok(())
    }

    fn fill_index(&mut self) -> Result<()> {
        for (k, _) in self.store.scan(Tree::Catalog, b"")? {
            let Some(id) = std::str::from_utf8(&k)
                .ok()
                .and_then(|s| s.parse::<ItemId>().ok())
            else {
                continue;
            };
            if let Some((item, updated_ms)) = self.load_item(&id)? {
                self.index.upsert(&item, updated_ms)?;
            }
        }
        self.index.commit()?;
        Ok(())
    }

    /// The clock used for claimed times.
    pub(crate) fn now(&self) -> u64 {
        (self.now_ms)()
    }

    /// This node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The current trust view.
    pub fn trust(&self) -> &TrustView {
        self.replica.trust()
    }

    /// The replica under the library: the envelopes held, their trust view
    /// and judgements.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// The replica, to store envelopes from peers; call [`Library::settle`]
    /// after a batch.
    pub(crate) fn replica_mut(&mut self) -> &mut Replica {
        &mut self.replica
    }

    /// Runs a write on the search index. The index is derived state: a
    /// failure (a full disk, files left by a killed commit) is logged and
    /// the index rebuilt at the end of the batch, never fails the operation.
    fn index_write(&mut self, f: impl FnOnce(&mut SearchIndex) -> Result<(), SearchError>) {
        if self.index_broken {
            return;
        }
        if let Err(e) = f(&mut self.index) {
            tracing::warn!("search index write failed ({e}); it will be rebuilt");
            self.index_broken = true;
        }
    }

    /// Rebuilds every derived tree and the index from the envelopes alone.
    /// Envelopes that fail their hash check are named in the error.
    fn rebuild_from_envelopes(&mut self) -> Result<()> {
        for tree in [
            Tree::Certificates,
            Tree::ChangeFacts,
            Tree::ItemChanges,
            Tree::ItemDocs,
            Tree::Catalog,
            Tree::Judgements,
            Tree::Dirty,
        ] {
            self.store.clear(tree)?;
        }
        self.replica.forget_cached();
        let mut damaged = Vec::new();
        let mut items = BTreeSet::new();
        for (k, bytes) in self.store.scan(Tree::Envelopes, b"")? {
            let Ok(id) = <[u8; 32]>::try_from(k.as_slice()).map(EnvelopeId) else {
                return Err(LibraryError::Corrupt("envelope key".into()));
            };
            match Envelope::reopen(&bytes, &id, &self.config.network) {
                Ok(env) => {
                    if let Body::Change(c) = env.body() {
                        items.insert(c.item);
                    }
                    self.store.apply(Replica::derived_rows(&env))?;
                }
                Err(_) => damaged.push(id),
            }
        }
        if !damaged.is_empty() {
            return Err(LibraryError::DamagedEnvelopes { ids: damaged });
        }
        self.replica.rejudge_everything()?;
        self.replica.mark_dirty(items);
        self.index_broken = true;
        self.finish()?;
        self.mark_layout_current()
    }

    /// Offers envelope bytes from outside (a bundle, a peer): verifies,
    /// stores and applies. A refused envelope changes nothing.
    pub fn ingest(&mut self, bytes: &[u8]) -> Result<Accepted> {
        let env = Envelope::open(bytes, &self.config.network)?;
        let out = self.replica.accept(env)?;
        self.finish()?;
        Ok(Accepted {
            judgement: self.replica.judgement_of(&out.id)?,
            ..out
        })
    }

    /// Verifies and stores envelope bytes from a peer, leaving derived state
    /// to [`Library::settle`] (one flush for a whole batch).
    pub fn ingest_deferred(&mut self, bytes: &[u8]) -> Result<Accepted> {
        self.replica.ingest(bytes)
    }

    /// Applies everything stored since the last settle and flushes.
    pub fn settle(&mut self) -> Result<()> {
        self.finish()
    }

    /// Stores a verified envelope made or imported here (see
    /// [`Replica::accept`]); [`Library::finish`] ends the batch.
    pub(crate) fn accept(&mut self, env: Verified) -> Result<Accepted> {
        self.replica.accept(env)
    }

    /// Whether the envelope is held.
    pub fn has_envelope(&self, id: &EnvelopeId) -> Result<bool> {
        self.replica.has_envelope(id)
    }

    /// The bytes of every envelope held, certificates first.
    pub fn export(&self) -> Result<Vec<Vec<u8>>> {
        self.replica.export()
    }

    /// Envelopes made or imported here since the last call, to announce.
    pub fn take_outbox(&mut self) -> Vec<EnvelopeId> {
        self.replica.take_outbox()
    }

    /// The ids of every envelope held, sorted.
    pub fn envelope_ids(&self) -> Result<Vec<EnvelopeId>> {
        self.replica.envelope_ids()
    }

    /// The bytes of those of `ids` held here, in order.
    pub fn envelope_bytes(&self, ids: &[EnvelopeId]) -> Result<Vec<Vec<u8>>> {
        self.replica.envelope_bytes(ids)
    }

    /// The judgement recorded for a held envelope.
    pub fn judgement_of(&self, id: &EnvelopeId) -> Result<Judgement> {
        self.replica.judgement_of(id)
    }

    /// The ids of every certificate held.
    pub fn certificate_ids(&self) -> Result<BTreeSet<EnvelopeId>> {
        self.replica.certificate_ids()
    }

    /// The bytes of every certificate held.
    pub fn certificate_bytes(&self) -> Result<Vec<Vec<u8>>> {
        self.replica.certificate_bytes()
    }

    /// Every certificate held.
    pub(crate) fn certificates(&self) -> Result<Vec<Verified>> {
        self.replica.certificates()
    }

    /// The facts of every change held: (id, signer, owner, item).
    pub(crate) fn change_facts(
        &self,
    ) -> Result<Vec<(EnvelopeId, PublicKey, EstablishmentId, ItemId)>> {
        self.replica.change_facts()
    }

    /// The peer book.
    pub fn peers(&self) -> Result<Vec<PeerEntry>> {
        self.store
            .scan(Tree::Peers, b"")?
            .into_iter()
            .map(|(_, v)| {
                serde_json::from_slice(&v)
                    .map_err(|e| LibraryError::Corrupt(format!("peer book: {e}")))
            })
            .collect()
    }

    /// Remembers a peer address (a multiaddress, checked by the caller).
    pub fn add_peer(&mut self, address: &str) -> Result<bool> {
        if self.store.get(Tree::Peers, address.as_bytes())?.is_some() {
            return Ok(false);
        }
        let entry = PeerEntry {
            address: address.to_string(),
            peer_id: None,
            last_sync_ms: None,
        };
        self.put_peer(&entry)?;
        Ok(true)
    }

    /// Forgets a peer address.
    pub fn remove_peer(&mut self, address: &str) -> Result<bool> {
        let had = self.store.get(Tree::Peers, address.as_bytes())?.is_some();
        self.store
            .apply(vec![(Tree::Peers, address.as_bytes().to_vec(), None)])?;
        self.store.flush()?;
        Ok(had)
    }

    fn put_peer(&mut self, entry: &PeerEntry) -> Result<()> {
        let bytes = serde_json::to_vec(entry).map_err(|e| LibraryError::Corrupt(e.to_string()))?;
        self.store.apply(vec![(
            Tree::Peers,
            entry.address.as_bytes().to_vec(),
            Some(bytes),
        )])?;
        self.store.flush()?;
        Ok(())
    }

    /// Records a completed reconciliation with a peer seen at `addresses`
    /// (updating remembered addresses of that peer).
    pub fn record_sync(&mut self, peer_id: &str, addresses: &[String], now_ms: u64) -> Result<()> {
        let mut entries = self.peers()?;
        let mut touched = false;
        for e in entries.iter_mut() {
            if e.peer_id.as_deref() == Some(peer_id) || addresses.contains(&e.address) {
                e.peer_id = Some(peer_id.to_string());
                e.last_sync_ms = Some(now_ms);
                touched = true;
            }
        }
        for e in entries.iter().filter(|_| touched) {
            self.put_peer(e)?;
        }
        Ok(())
    }

    /// Rebuilds an item's document, catalog entry and index entry from its
    /// accepted changes.
    fn materialise(&mut self, item: ItemId) -> Result<()> {
        let accepted = self.replica.accepted_changes(&item)?;
        // Signers' clocks are their own: a time claimed in the future is
        // not allowed to pin an item to the top of "recently updated".
        let updated_ms = accepted
            .iter()
            .map(Verified::created_ms)
            .max()
            .unwrap_or(0)
            .min(self.now());
        let changes: Vec<automerge::Change> = accepted
            .into_iter()
            .filter_map(|e| match e.body() {
                Body::Change(c) => Some(c.change.clone()),
                Body::Certificate(_) | Body::Unread { .. } => None,
            })
            .collect();
        let key_hex = item.to_hex();
        if changes.is_empty() {
            self.index_write(|i| i.remove(&item));
            self.store.apply(vec![
                (Tree::ItemDocs, item.as_bytes().to_vec(), None),
                (Tree::Catalog, key_hex.into_bytes(), None),
            ])?;
            return Ok(());
        }
        let mut doc = AutoCommit::new();
        doc.apply_changes(changes)?;
        let mut read = match item::read_item(&doc) {
            Ok(i) if i.id == item => i,
            // Changes whose first (creating) change has not arrived yet.
            _ => {
                self.index_write(|i| i.remove(&item));
                self.store.apply(vec![
                    (Tree::ItemDocs, item.as_bytes().to_vec(), Some(doc.save())),
                    (Tree::Catalog, key_hex.into_bytes(), None),
                ])?;
                return Ok(());
            }
        };
        self.index_write(|i| i.upsert(&read, updated_ms));
        read.content.body.clear();
        let catalog = serde_json::to_vec(&CatalogRecord {
            item: &read,
            updated_ms,
        })
        .map_err(|e| LibraryError::Corrupt(e.to_string()))?;
        self.store.apply(vec![
            (Tree::ItemDocs, item.as_bytes().to_vec(), Some(doc.save())),
            (Tree::Catalog, key_hex.into_bytes(), Some(catalog)),
        ])?;
        Ok(())
    }

    /// Brings derived state up to date with what `accept` stored: trust
    /// (when a certificate arrived), the judgement of every envelope, the
    /// items that changed and the search index; then clears the dirty marks
    /// and flushes the store.
    pub(crate) fn finish(&mut self) -> Result<()> {
        self.replica.settle_trust()?;
        let dirty: Vec<ItemId> = self.replica.dirty().iter().copied().collect();
        for item in dirty {
            self.materialise(item)?;
        }
        self.index_write(SearchIndex::commit);
        if self.index_broken || self.index_suspect.load(Ordering::Relaxed) {
            tracing::warn!("rebuilding the search index from the library");
            self.reindex_all()?;
        }
        // The dirty marks go only once the index holds what they covered.
        self.replica.end_batch()?;
        self.store.flush()?;
        Ok(())
    }

    fn signer(&self) -> Result<&Signer> {
        self.signer.as_ref().ok_or(LibraryError::NoSigningKey)
    }

    fn check_identifiers(content: &ItemContent, allowed: &[String]) -> Result<()> {
        let mut fields: Vec<(&'static str, &str)> = vec![
            ("title", &content.title),
            ("summary", &content.summary),
            ("body", &content.body),
        ];
        for t in &content.tags {
            fields.push(("tags", t));
        }
        if let Some(a) = &content.approved_by {
            fields.push(("approved_by", a));
        }
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
            if let Some(m) = find_identifiers_allowing(text, allowed).into_iter().next() {
                return Err(LibraryError::Identifier {
                    field,
                    kind: m.kind,
                    text: m.text,
                });
            }
        }
        Ok(())
    }

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
        let now = (self.now_ms)();
        doc.commit_with(
            CommitOptions::default()
                .with_message(action)
                .with_time(i64::try_from(now / 1000).unwrap_or(i64::MAX)),
        );
        let change = doc
            .get_last_local_change()
            .ok_or_else(|| LibraryError::Corrupt("no change was made".into()))?;
        let signer = self.signer()?;
        let env = Verified::sign(
            Body::Change(Box::new(ChangePayload {
                item,
                owner,
                salt,
                change,
            })),
            &signer.member,
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
        self.publish_with_salt(content, allowed, random_bytes()?)
    }

    /// Publishes a new item exactly once for `key`: the item's id is derived
    /// from the key, so a retry with the same key (after a publish whose
    /// outcome was unknown) finds the item already here and returns it
    /// instead of making a second one.
    pub fn publish_once(
        &mut self,
        content: &ItemContent,
        allowed: &[String],
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
        self.publish_with_salt(content, allowed, salt)
    }

    fn publish_with_salt(
        &mut self,
        content: &ItemContent,
        allowed: &[String],
        salt: [u8; 16],
    ) -> Result<ItemId> {
        content.validate()?;
        Self::check_identifiers(content, allowed)?;
        let signer = self.signer()?;
        let env = new_item_with_salt(
            content,
            &signer.member,
            &signer.actor_suffix,
            self.config.establishment,
            &self.config.network,
            (self.now_ms)(),
            salt,
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

    /// Stores many verified envelopes (from a bundle, a peer or a fixture)
    /// and flushes once at the end.
    pub fn ingest_many(&mut self, envelopes: Vec<Verified>) -> Result<Vec<Accepted>> {
        let mut out = Vec::with_capacity(envelopes.len());
        for env in envelopes {
            if env.network() != self.config.network {
                return Err(VerifyError::WrongNetwork {
                    expected: self.config.network,
                    got: env.network(),
                }
                .into());
            }
            out.push(self.replica.accept(env)?);
        }
        self.finish()?;
        Ok(out)
    }

    /// Loads an item's document ready for a local change, checking that this
    /// node's establishment owns it.
    fn doc_for_change(&self, id: &ItemId) -> Result<(AutoCommit, Item, [u8; 16])> {
        let bytes = self
            .store
            .get(Tree::ItemDocs, id.as_bytes())?
            .ok_or_else(|| LibraryError::UnknownItem(id.to_hex()))?;
        let mut doc = AutoCommit::load(&bytes)?;
        let current = item::read_item(&doc)?;
        if current.owner != self.config.establishment {
            return Err(LibraryError::NotOwner {
                item: *id,
                owner: self.establishment_name(&current.owner),
            });
        }
        let signer = self.signer()?;
        doc.set_actor(actor_id(&signer.member.public(), &signer.actor_suffix));
        let salt = self
            .replica
            .accepted_changes(id)?
            .iter()
            .find_map(|e| match e.body() {
                Body::Change(c) => Some(c.salt),
                Body::Certificate(_) | Body::Unread { .. } => None,
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
        content.validate()?;
        Self::check_identifiers(content, allowed)?;
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
        if current.content == *content {
            return Err(LibraryError::NoChange(*id));
        }
        let author = self.signer()?.member.public();
        item::write_version(&mut doc, content, &author)?;
        self.commit_change(*id, current.owner, salt, &mut doc, "revise")?;
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
        if let Some(m) = find_identifiers_allowing(reason, allowed)
            .into_iter()
            .next()
        {
            return Err(LibraryError::Identifier {
                field: "reason",
                kind: m.kind,
                text: m.text,
            });
        }
        let (mut doc, current, salt) = self.doc_for_change(id)?;
        if current.content.status == Status::Withdrawn {
            return Err(LibraryError::Closed {
                id: *id,
                status: current.content.status,
            });
        }
        let author = self.signer()?.member.public();
        item::write_withdrawn(&mut doc, reason, &author)?;
        self.commit_change(*id, current.owner, salt, &mut doc, "withdraw")?;
        Ok(())
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

    fn establishment_name(&self, id: &EstablishmentId) -> String {
        self.replica.trust().establishments.get(id).map_or_else(
            || format!("establishment {}", id.short()),
            |e| e.name.clone(),
        )
    }

    pub(crate) fn named_establishment(&self, id: &EstablishmentId) -> EstablishmentRef {
        EstablishmentRef {
            id: *id,
            name: self
                .replica
                .trust()
                .establishments
                .get(id)
                .map(|e| e.name.clone()),
        }
    }

    pub(crate) fn named_member(&self, establishment: &EstablishmentId, key: &PublicKey) -> Named {
        let name = self
            .replica
            .trust()
            .member(establishment, key)
            .map(|m| m.name.clone())
            .or_else(|| {
                self.replica
                    .trust()
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

    /// An item with its body, and when it was last updated.
    fn load_item(&self, id: &ItemId) -> Result<Option<(Item, u64)>> {
        let Some(entry) = self.store.get(Tree::Catalog, id.to_hex().as_bytes())? else {
            return Ok(None);
        };
        let updated_ms = catalog_entry(id, &entry)?.updated_ms;
        let Some(bytes) = self.store.get(Tree::ItemDocs, id.as_bytes())? else {
            return Ok(None);
        };
        let doc = AutoCommit::load(&bytes)?;
        Ok(Some((item::read_item(&doc)?, updated_ms)))
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
            .replica
            .accepted_changes(id)?
            .iter()
            .filter_map(|e| match e.body() {
                Body::Change(c) => Some((c.change.hash(), e.created_ms())),
                Body::Certificate(_) | Body::Unread { .. } => None,
            })
            .collect();
        let bytes = self
            .store
            .get(Tree::ItemDocs, id.as_bytes())?
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
        let envelopes = self.replica.accepted_changes(id)?;
        if envelopes.is_empty() || self.load_item(id)?.is_none() {
            return Err(LibraryError::UnknownItem(id.to_hex()));
        }
        let mut by_hash = BTreeMap::new();
        for e in &envelopes {
            if let Body::Change(c) = e.body() {
                by_hash.insert(c.change.hash(), e);
            }
        }
        let bytes = self
            .store
            .get(Tree::ItemDocs, id.as_bytes())?
            .ok_or_else(|| LibraryError::UnknownItem(id.to_hex()))?;
        let mut doc = AutoCommit::load(&bytes)?;
        let mut out = Vec::new();
        for change in doc.get_changes(&[]) {
            let Some(env) = by_hash.get(&change.hash()) else {
                continue;
            };
            let mut before = doc.fork_at(change.deps())?;
            let mut after = doc.fork_at(&[change.hash()])?;
            before.commit();
            after.commit();
            let before = item::read_item(&before).ok();
            let Ok(after) = item::read_item(&after) else {
                continue;
            };
            let (changed, added, removed) = describe_change(before.as_ref(), &after);
            let owner = after.owner;
            out.push(VersionEntry {
                version: after.version,
                action: change.message().unwrap_or("change").to_string(),
                envelope: env.id(),
                signer: self.named_member(&owner, &env.signer()),
                establishment: self.named_establishment(&owner),
                at: format_ms(env.created_ms()),
                changed,
                lines_added: added,
                lines_removed: removed,
            });
        }
        Ok(out)
    }

    /// Every item (without bodies), with when it was last updated.
    fn catalog(&self) -> Result<Vec<(Item, u64)>> {
        let mut out = Vec::new();
        for (k, v) in self.store.scan(Tree::Catalog, b"")? {
            let entry = serde_json::from_slice::<CatalogEntry>(&v).map_err(|e| {
                LibraryError::Corrupt(format!(
                    "catalog entry {}: {e}",
                    String::from_utf8_lossy(&k)
                ))
            })?;
            let updated_ms = entry.updated_ms;
            out.push((entry.into_item(), updated_ms));
        }
        Ok(out)
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
            .find(&SearchRequest {
                query,
                filter,
                sort: Sort::Relevance,
                offset: 0,
                limit,
                facets: false,
            })?
            .results)
    }

    /// One page of search results in the requested order, with facet
    /// counts over every match.
    pub fn find(&self, req: &SearchRequest<'_>) -> Result<SearchPage> {
        let Hits {
            total,
            hits,
            facets,
        } = self.index.find(req).inspect_err(|e| {
            if !matches!(e, SearchError::BadQuery(_)) {
                tracing::warn!("search failed ({e}); the index will be rebuilt");
                self.index_suspect.store(true, Ordering::Relaxed);
            }
        })?;
        let mut results = Vec::with_capacity(hits.len());
        for hit in hits {
            let Some(bytes) = self.store.get(Tree::Catalog, hit.id.to_hex().as_bytes())? else {
                continue;
            };
            let entry = catalog_entry(&hit.id, &bytes)?;
            let updated_ms = entry.updated_ms;
            results.push(SearchResult {
                view: self.view(entry.into_item(), updated_ms),
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
            .filter(|(i, _)| i.owner == self.config.establishment)
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

    /// Admitted establishments with their item counts.
    pub fn establishments(&self) -> Result<Vec<EstablishmentSummary>> {
        let mut counts: BTreeMap<EstablishmentId, usize> = BTreeMap::new();
        for (item, _) in self.catalog()? {
            *counts.entry(item.owner).or_default() += 1;
        }
        let mut out: Vec<EstablishmentSummary> = self
            .replica
            .trust()
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
                    .filter(|k| !self.replica.trust().members.contains_key(&(e.id, **k)))
                    .map(|k| KeyInfo {
                        key: *k,
                        name: None,
                        role: "establishment".into(),
                        revoked: self.replica.trust().revoked_keys.contains_key(k),
                    })
                    .collect(),
                members: self
                    .replica
                    .trust()
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
        self.replica
            .trust()
            .establishments
            .values()
            .filter(|e| e.name.to_lowercase().contains(&needle) || e.id.to_hex() == needle)
            .map(|e| e.id)
            .collect()
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
            network: self.config.network,
            network_name: self.replica.trust().network_name.clone(),
            establishment: self.named_establishment(&self.config.establishment),
            envelopes: self.store.len(Tree::Envelopes)?,
            certificates: self.store.len(Tree::Certificates)?,
            items: self.store.len(Tree::Catalog)?,
            pending,
            rejected,
        })
    }
}

/// The catalog stores [`Item`] as JSON without its body, with when it was
/// last updated.
#[derive(Serialize)]
struct CatalogRecord<'a> {
    #[serde(flatten)]
    item: &'a Item,
    updated_ms: u64,
}

/// An empty index in `dir`, removing whatever was there; in memory if the
/// directory cannot be used (the node keeps working; the next open retries).
fn fresh_index(dir: &std::path::Path) -> SearchIndex {
    let on_disk = match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SearchError::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
    .and_then(|()| SearchIndex::open(dir));
    match on_disk {
        Ok(index) => index,
        Err(e) => {
            tracing::warn!(
                "cannot make a search index in {} ({e}); keeping it in memory",
                dir.display()
            );
            match SearchIndex::in_memory() {
                Ok(index) => index,
                // tantivy's RAM directory does not fail to create.
                Err(e) => panic!("cannot create an in-memory search index: {e}"),
            }
        }
    }
}

fn in_memory_index() -> Result<SearchIndex> {
    Ok(SearchIndex::in_memory()?)
}

/// A catalog entry read back.
#[derive(Deserialize)]
struct CatalogEntry {
    #[serde(default)]
    updated_ms: u64,
    id: ItemId,
    owner: EstablishmentId,
    version: u64,
    #[serde(flatten)]
    content: ItemContent,
    authors: Vec<PublicKey>,
    supersedes: Vec<ItemId>,
    superseded_by: Option<ItemId>,
    withdrawn_reason: Option<String>,
    adopted_from: Option<ItemId>,
}

fn catalog_entry(id: &ItemId, bytes: &[u8]) -> Result<CatalogEntry> {
    serde_json::from_slice(bytes)
        .map_err(|e| LibraryError::Corrupt(format!("catalog entry {id}: {e}")))
}

impl CatalogEntry {
    fn into_item(self) -> Item {
        Item {
            id: self.id,
            owner: self.owner,
            version: self.version,
            content: self.content,
            authors: self.authors,
            supersedes: self.supersedes,
            superseded_by: self.superseded_by,
            withdrawn_reason: self.withdrawn_reason,
            adopted_from: self.adopted_from,
        }
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
        content,
        member,
        suffix,
        owner,
        network,
        now_ms,
        random_bytes()?,
    )
}

/// [`new_item`] with the item's salt given, for reproducible runs (the
/// network simulation); a real item's salt is random.
pub fn new_item_with_salt(
    content: &ItemContent,
    member: &SecretKey,
    suffix: &[u8; ACTOR_SUFFIX_BYTES],
    owner: EstablishmentId,
    network: &NetworkId,
    now_ms: u64,
    salt: [u8; 16],
) -> Result<Verified> {
    let id = ItemId::derive(&owner, &salt);
    let mut doc = AutoCommit::new().with_actor(actor_id(&member.public(), suffix));
    item::init_doc(&mut doc, id, &owner)?;
    item::write_version(&mut doc, content, &member.public())?;
    doc.commit_with(
        CommitOptions::default()
            .with_message("publish")
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

/// RFC 3339 text for a claimed time in milliseconds.
pub fn format_ms(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| gatehouse_protocol::jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| "unknown".into(), |t| t.to_string())
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
    check("nation", b.nation != a.nation);
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
