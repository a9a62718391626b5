//! The library of one node: its parts put together, opened and kept in
//! line with the envelopes it holds.
//!
//! A [`Library`] is
//! - the [`Replica`] (`replica/`): the one door for envelopes and their
//!   only writer, with the trust view and every judgement;
//! - the [`Projections`] (`projection/`): item documents, catalog and
//!   search index, rebuilt from accepted changes at the end of each batch;
//! - authoring (`authoring/`): this site's changes to its items, and the
//!   certificate operations of [`crate::authoring::authority`];
//! - queries (`query/`), answered from a [`ReadView`] that the library
//!   replaces at the end of each batch; [`Library::reads`] hands out the
//!   latest without the library's lock;
//! - the peer book (`net/book.rs`).
//!
//! `open` brings every judgement and item in line with the set held,
//! whatever a crash interrupted, and repairs derived state. An operation
//! returns only after the store is flushed, so what it acknowledged
//! survives a crash.

use std::collections::BTreeSet;
use std::sync::Arc;

use gatehouse_protocol::certificate::{Admission, Certificate, Delegation, Genesis, MemberRole};
use gatehouse_protocol::change::ACTOR_SUFFIX_BYTES;
use gatehouse_protocol::envelope::{Body, Envelope, Verified, VerifyError};
use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, ItemId, NetworkId};
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::key::{PublicKey, SecretKey};
use gatehouse_protocol::trust::{Judgement, TrustView};
use gatehouse_protocol::vocab::{Nation, Setting};
use serde::{Deserialize, Serialize};

use crate::authoring::Signer;
pub use crate::error::LibraryError;
use crate::error::Result;
use crate::home::{Home, generate_key, random_bytes};
use crate::net::book::{self, PeerEntry};
use crate::projection::search::{SearchIndex, SearchRequest};
use crate::projection::{self, Projections};
use crate::query::filter::Filter;
use crate::query::{
    DueItem, EstablishmentSummary, ItemView, ReadView, Reads, SearchPage, SearchResults,
    StatusReport, VersionEntry,
};
use crate::replica::Replica;
pub use crate::replica::{Accepted, MAX_OUTBOX, MAX_UNACCEPTED_ENVELOPES};
use crate::store::{SledStore, Store, StoreError, Tree, Write};

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

/// Where the library gets the time and its randomness (item salts, new
/// establishment ids): the system's, or a fixed clock and a seeded source
/// for reproducible runs. Secret keys always come from the system.
#[derive(Clone)]
pub struct Ambient {
    now_ms: Arc<dyn Fn() -> u64 + Send + Sync>,
    seed: Option<[u8; 32]>,
    drawn: Arc<std::sync::atomic::AtomicU64>,
}

impl Ambient {
    /// The system clock and the operating system's random source.
    pub fn system() -> Self {
        Self {
            now_ms: Arc::new(system_now_ms),
            seed: None,
            drawn: Arc::default(),
        }
    }

    /// `now_ms` for the clock and a random source fixed by `seed`: the
    /// same seed gives the same salts in the same order.
    pub fn seeded(seed: u64, now_ms: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self {
            now_ms: Arc::new(now_ms),
            seed: Some(*blake3::hash(&seed.to_be_bytes()).as_bytes()),
            drawn: Arc::default(),
        }
    }

    /// The time, in milliseconds since the epoch.
    pub fn now_ms(&self) -> u64 {
        (self.now_ms)()
    }

    /// `N` random bytes.
    pub fn random<const N: usize>(&self) -> Result<[u8; N]> {
        let Some(seed) = &self.seed else {
            return Ok(random_bytes()?);
        };
        let n = self
            .drawn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut out = [0u8; N];
        blake3::Hasher::new_keyed(seed)
            .update(&n.to_be_bytes())
            .finalize_xof()
            .fill(&mut out);
        Ok(out)
    }
}

/// The library of one node.
pub struct Library {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) replica: Replica,
    pub(crate) projections: Projections,
    pub(crate) config: NodeConfig,
    /// The files items carry (`None` for a library kept in memory).
    pub(crate) blobs: Option<crate::blobs::BlobStore>,
    pub(crate) signer: Option<Signer>,
    pub(crate) ambient: Ambient,
    pub(crate) reads: Reads,
    /// A copy of the store this library reads from (see
    /// [`Library::open_for_reading`]), removed when the library is dropped.
    scratch: Option<Scratch>,
}

/// A directory removed when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies a directory tree.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
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

/// The node configuration `store` holds for `home`.
fn stored_config(store: &dyn Store, home: &Home) -> Result<NodeConfig> {
    match store.get(Tree::Config, CONFIG_KEY)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| LibraryError::Corrupt(format!("node config: {e}"))),
        None => Err(LibraryError::NotInitialised(
            home.root().display().to_string(),
        )),
    }
}

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
            crate::authoring::authority::check_name(field, v)?;
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
        let now = lib.now();
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

    /// Opens the node in `home` to read from it. On a full disk the store
    /// cannot be opened in place (sled writes as it opens), so it is copied
    /// to a scratch directory on another file system (the system's
    /// temporary directory, else `/dev/shm`) and read there, with the
    /// search index rebuilt in memory: nothing is written to the full disk
    /// and nothing held is lost. The copy goes when the library is dropped.
    pub fn open_for_reading(home: &Home) -> Result<Self> {
        let full = match Self::open(home) {
            Err(LibraryError::Store(e)) if matches!(*e, StoreError::DiskFull(_)) => e,
            other => return other,
        };
        let name = format!(
            "gatehouse-read-{}-{}",
            std::process::id(),
            hex::encode(random_bytes::<8>()?)
        );
        for base in [std::env::temp_dir(), std::path::PathBuf::from("/dev/shm")] {
            let scratch = Scratch(base.join(&name));
            if copy_tree(&home.store_dir(), &scratch.0).is_err() {
                continue;
            }
            tracing::warn!(
                "{full}; reading from a copy of the store in {}",
                scratch.0.display()
            );
            let store: Arc<dyn Store> = Arc::new(SledStore::open(&scratch.0)?);
            let config = stored_config(&*store, home)?;
            let mut projections = Projections::new(store.clone(), SearchIndex::in_memory()?, None);
            projections.mark_index_broken();
            let mut lib = Self::assemble(store, config, projections, None)?;
            lib.scratch = Some(scratch);
            lib.recover()?;
            return Ok(lib);
        }
        Err(LibraryError::Store(full))
    }

    /// Opens the node in `home`, rebuilding whatever derived state is missing.
    pub fn open(home: &Home) -> Result<Self> {
        if !home.is_initialised() {
            return Err(LibraryError::NotInitialised(
                home.root().display().to_string(),
            ));
        }
        if home.root().join(crate::backup::RESTORING).exists() {
            return Err(LibraryError::Backup(format!(
                "a restore into {} did not finish: run the same `gatehouse restore` again",
                home.root().display()
            )));
        }
        // A data directory made by an earlier version may have a store
        // others can read: mended on opening.
        home.private_dir(&home.store_dir())?;
        if home.index_dir().exists() {
            home.private_dir(&home.index_dir())?;
        }
        let store = SledStore::open(&home.store_dir())?;
        let config = stored_config(&store, home)?;
        let member = home.read_key("member")?;
        let store: Arc<dyn Store> = Arc::new(store);
        let projections = Projections::open_index(store.clone(), home.index_dir());
        let mut lib = Self::assemble(store, config, projections, member)?;
        lib.open_blobs(home)?;
        lib.recover()?;
        lib.check_unchecked_files();
        Ok(lib)
    }

    /// Opens the home's file store, clearing what a stopped process left
    /// half written.
    fn open_blobs(&mut self, home: &Home) -> Result<()> {
        let blobs = crate::blobs::BlobStore::open(&home.blob_dir())?;
        blobs.clear_temporary();
        self.use_blobs(blobs);
        Ok(())
    }

    /// A library over any store and index (tests and simulation).
    pub fn with_store(
        store: Arc<dyn Store>,
        config: NodeConfig,
        index: SearchIndex,
        member: Option<SecretKey>,
    ) -> Result<Self> {
        let projections = Projections::new(store.clone(), index, None);
        Self::over(store, config, projections, member)
    }

    /// A library over any store, with its search index kept in
    /// `index_dir` (benchmarks that keep a library between runs): a rebuilt
    /// index is written there too, where [`Library::with_store`] would keep
    /// it in memory.
    pub fn with_store_in(
        store: Arc<dyn Store>,
        config: NodeConfig,
        index_dir: &std::path::Path,
        member: Option<SecretKey>,
    ) -> Result<Self> {
        let projections = Projections::open_index(store.clone(), index_dir.to_path_buf());
        Self::over(store, config, projections, member)
    }

    /// A library over `store` with `config` written into it, recovered.
    fn over(
        store: Arc<dyn Store>,
        config: NodeConfig,
        projections: Projections,
        member: Option<SecretKey>,
    ) -> Result<Self> {
        store.apply(vec![config_write(&config)?])?;
        let mut lib = Self::assemble(store, config, projections, member)?;
        lib.recover()?;
        Ok(lib)
    }

    /// Opens a fresh sled store and index in `home` with `config`.
    pub(crate) fn create_in(
        home: &Home,
        config: NodeConfig,
        member: Option<SecretKey>,
    ) -> Result<Self> {
        home.private_dir(&home.store_dir())?;
        home.private_dir(&home.index_dir())?;
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
        let store: Arc<dyn Store> = Arc::new(store);
        let projections = Projections::new(store.clone(), index, Some(home.index_dir()));
        let mut lib = Self::assemble(store, config, projections, member)?;
        lib.open_blobs(home)?;
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
        projections: Projections,
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
        let reads = Reads::new(ReadView::new(
            store.clone(),
            config.network,
            config.establishment,
            replica.shared_trust(),
            projections.search_handle(),
            projections.forum(),
        ));
        Ok(Self {
            store,
            replica,
            projections,
            config,
            signer,
            blobs: None,
            ambient: Ambient::system(),
            reads,
            scratch: None,
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
            self.projections.mark_index_broken();
        }
        let mut rebuild: BTreeSet<ItemId> = BTreeSet::new();
        for (k, _) in self.store.scan(Tree::Dirty, b"")? {
            if let Ok(bytes) = <[u8; 16]>::try_from(k.as_slice()) {
                rebuild.insert(ItemId(bytes));
            }
        }
        let items_with_changes = projection::items_with_changes(&*self.store)?;
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
        if self.projections.indexed() != self.store.len(Tree::Catalog)? {
            tracing::info!("search index out of step with the catalog; rebuilding it");
            self.projections.mark_index_broken();
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

    /// Rebuilds the search index from the item documents (see
    /// [`Projections`]).
    pub fn reindex_all(&mut self) -> Result<()> {
        self.projections.reindex_all()
    }

    /// The clock used for claimed times, in milliseconds since the epoch.
    pub fn now(&self) -> u64 {
        self.ambient.now_ms()
    }

    /// Today's date on this machine's calendar, by the library's clock.
    pub fn today(&self) -> gatehouse_protocol::jiff::civil::Date {
        let ms = i64::try_from(self.now()).unwrap_or(i64::MAX);
        gatehouse_protocol::jiff::Timestamp::from_millisecond(ms)
            .unwrap_or(gatehouse_protocol::jiff::Timestamp::UNIX_EPOCH)
            .to_zoned(gatehouse_protocol::jiff::tz::TimeZone::system())
            .date()
    }

    /// Replaces the clock and random source (tests and the simulation).
    pub fn set_ambient(&mut self, ambient: Ambient) {
        self.ambient = ambient;
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
            Tree::Urgent,
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
        self.projections.mark_index_broken();
        self.finish()?;
        self.mark_layout_current()
    }

    /// Offers envelope bytes from outside (a bundle, a peer): verifies,
    /// stores and applies. A refused envelope changes nothing.
    pub fn ingest(&mut self, bytes: &[u8]) -> Result<Accepted> {
        let env = Envelope::open(bytes, &self.config.network)?;
        let out = self.replica.accept_outside(env, true)?;
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

    /// Stores a verified envelope from a bundle under the rules for what
    /// others send (see [`Replica::accept_outside`]), to announce to peers.
    pub(crate) fn accept_outside(&mut self, env: Verified) -> Result<Accepted> {
        self.replica.accept_outside(env, true)
    }

    /// Keeps a bundle entry with no effect yet for later imports
    /// ([`Replica::hold_back`]).
    pub(crate) fn hold_back(&mut self, id: &EnvelopeId, bytes: &[u8]) -> Result<()> {
        self.replica.hold_back(id, bytes)
    }

    /// The ids of the bundle entries held back.
    pub(crate) fn held_back_ids(&mut self) -> Result<Vec<EnvelopeId>> {
        self.replica.held_back_ids()
    }

    /// The bytes of a bundle entry held back, if it still is.
    pub(crate) fn held_back(&self, id: &EnvelopeId) -> Result<Option<Vec<u8>>> {
        self.replica.held_back(id)
    }

    /// How many bundle entries are held back.
    pub fn held_back_count(&mut self) -> Result<usize> {
        Ok(self.replica.held_back_ids()?.len())
    }

    /// Forgets a bundle entry held back.
    pub(crate) fn release(&mut self, id: &EnvelopeId) -> Result<()> {
        self.replica.release(id)
    }

    /// Turns the content check of changes from outside on or off
    /// ([`Replica::judge_content`]): always on in a node; off only to
    /// measure what it costs.
    pub fn judge_content(&mut self, on: bool) {
        self.replica.judge_content(on);
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

    /// Brings derived state up to date with what `accept` stored (see
    /// [`Projections::catch_up`]), flushes the store, and hands readers a
    /// view of the result.
    pub(crate) fn finish(&mut self) -> Result<()> {
        let now = self.now();
        self.projections.catch_up(&mut self.replica, now)?;
        self.store.flush()?;
        self.reads.replace(self.read_view());
        Ok(())
    }

    /// A view of the library as it is now.
    pub fn read_view(&self) -> ReadView {
        ReadView::new(
            self.store.clone(),
            self.config.network,
            self.config.establishment,
            self.replica.shared_trust(),
            self.projections.search_handle(),
            self.projections.forum(),
        )
        .with_blobs(self.blobs.clone())
    }

    /// Where readers find the latest view, without this library's lock.
    pub fn reads(&self) -> Reads {
        self.reads.clone()
    }

    /// The peer book.
    pub fn peers(&self) -> Result<Vec<PeerEntry>> {
        book::entries(&*self.store)
    }

    /// Remembers a peer address (a multiaddress, checked by the caller).
    pub fn add_peer(&mut self, address: &str) -> Result<bool> {
        book::add(&*self.store, address)
    }

    /// Forgets a peer address.
    pub fn remove_peer(&mut self, address: &str) -> Result<bool> {
        book::remove(&*self.store, address)
    }

    /// Records a completed reconciliation with a peer seen at `addresses`.
    pub fn record_sync(&mut self, peer_id: &str, addresses: &[String], now_ms: u64) -> Result<()> {
        book::record_sync(&*self.store, peer_id, addresses, now_ms)
    }

    /// See [`ReadView::resolve`].
    pub fn resolve(&self, text: &str) -> Result<ItemId> {
        self.read_view().resolve(text)
    }

    /// See [`ReadView::get`].
    pub fn get(&self, id: &ItemId, version: Option<u64>) -> Result<ItemView> {
        self.read_view().get(id, version)
    }

    /// See [`ReadView::history`].
    pub fn history(&self, id: &ItemId) -> Result<Vec<VersionEntry>> {
        self.read_view().history(id)
    }

    /// See [`ReadView::list`].
    pub fn list(&self, filter: &Filter) -> Result<Vec<ItemView>> {
        self.read_view().list(filter)
    }

    /// See [`ReadView::search`].
    pub fn search(&self, query: &str, filter: &Filter, limit: usize) -> Result<SearchResults> {
        self.read_view().search(query, filter, limit)
    }

    /// See [`ReadView::find`].
    pub fn find(&self, req: &SearchRequest<'_>) -> Result<SearchPage> {
        self.read_view().find(req)
    }

    /// See [`ReadView::due`].
    pub fn due(&self, today: Date, within_days: i64) -> Result<Vec<DueItem>> {
        self.read_view().due(today, within_days)
    }

    /// See [`ReadView::adopters`].
    pub fn adopters(&self, source: &ItemId) -> Result<Vec<crate::query::adoption::Adopter>> {
        self.read_view().adopters(source)
    }

    /// See [`ReadView::source_changes`].
    pub fn source_changes(&self) -> Result<Vec<crate::query::adoption::SourceAlert>> {
        self.read_view().source_changes()
    }

    /// See [`ReadView::establishments`].
    pub fn establishments(&self) -> Result<Vec<EstablishmentSummary>> {
        self.read_view().establishments()
    }

    /// See [`ReadView::find_establishments`].
    pub fn find_establishments(&self, text: &str) -> Vec<EstablishmentId> {
        self.read_view().find_establishments(text)
    }

    /// See [`ReadView::status`].
    pub fn status(&self) -> Result<StatusReport> {
        self.read_view().status()
    }
}
