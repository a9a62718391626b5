//! The peer-to-peer network: the libp2p shell around the sync core.
//!
//! Everything about *what* to send, to whom, and what a message means is
//! decided by [`crate::sync::SyncCore`]; this module only moves bytes and
//! timers. It turns swarm events into core inputs and carries out the
//! core's outputs:
//!
//! - Transport: TCP and QUIC, Noise, Yamux; the node key is the libp2p
//!   identity, so a connection's PeerId names the node at the other end.
//!   Every connection's substreams are held to the node's bandwidth
//!   budget ([`budget`]).
//! - Gossip: gossipsub on one topic per network (message id = envelope id);
//!   each message is held until the core gives its verdict (accept and
//!   forward, ignore, or reject, which lowers the sender's score). Peers
//!   the core has not admitted are blacklisted for gossip.
//! - Sync: a request-response protocol ([`codec`]) for the core's
//!   reconcile, fetch and push messages, under versioned protocol names
//!   negotiated by multistream-select ([`SYNC_PROTOCOLS`]).
//! - Files: a request-response protocol for verified pieces of the files
//!   items carry, and the fetcher that decides which file, from whom and
//!   when ([`blob`]).
//! - Reachability: mDNS on a LAN, bootstrap and remembered peers (the core
//!   decides when to redial), and relays: every node can relay for others
//!   (bounded circuits), a node given `relays` listens through them once
//!   they are admitted, and DCUtR upgrades relayed connections where the
//!   network allows.
//!
//! The library is shared with the control API behind a `std` mutex that is
//! never held across an `.await`.

pub mod blob;
pub mod book;
pub mod budget;
pub mod codec;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use gatehouse_protocol::envelope::MAX_ENVELOPE_BYTES;
use gatehouse_protocol::id::EnvelopeId;
use gatehouse_protocol::key::{PublicKey, SecretKey};
use gatehouse_protocol::reconcile::IdIndex;
pub use libp2p::Multiaddr;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, ValidationMode};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent, behaviour::toggle::Toggle};
use libp2p::{
    PeerId, StreamProtocol, Swarm, dcutr, identify, identity, mdns, noise, ping, relay, tcp, yamux,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use self::blob::{BlobCodec, BlobHours, BlobPolicy, BlobRequest, BlobResponse, Fetcher, Next};
use self::budget::{Budget, metered};
use self::codec::SyncCodec;
use crate::blobs::{BlobError, BlobStore, Received};
use crate::library::Library;
use crate::metrics::{NetMetrics, observe};
use crate::query::arrivals::{Arrival, arrivals};
use crate::sync::replica_set::{admitting, count_settled, ingest_batch, proof_bytes, store_opened};
use crate::sync::{
    EnvelopeSet, Ingested, Input, Output, PeerStats, SyncConfig, SyncCore, Verdict, WINDOW,
    admission::admitted_nodes,
};
use gatehouse_protocol::attachment::BlobHash;
use gatehouse_protocol::envelope::{MAX_FIRST_KIND, peek_kind_tag};
use gatehouse_protocol::sync::{SyncRequest, SyncResponse, TARGET_BATCH_BYTES};
use gatehouse_protocol::trust::Judgement;
use prometheus_client::metrics::histogram::Histogram;

pub use self::codec::SYNC_PROTOCOLS;
/// Commands queued to the network task before senders wait.
pub const COMMAND_QUEUE: usize = 256;
/// How long a sync request may take, with no bandwidth budget.
pub const REQUEST_TIMEOUT_SECS: u64 = 60;
/// The longest a sync request may take under a bandwidth budget.
pub const MAX_REQUEST_TIMEOUT_SECS: u64 = 30 * 60;
/// Under an upload budget, what one batch sent may hold: this many
/// seconds of the rate (at least [`MIN_BUDGET_BATCH_BYTES`]).
pub const BUDGET_BATCH_SECS: u64 = 8;
/// The least a batch holds under an upload budget.
pub const MIN_BUDGET_BATCH_BYTES: usize = 16 * 1024;

/// The size of the batches this node sends: [`TARGET_BATCH_BYTES`], or
/// [`BUDGET_BATCH_SECS`] of an upload budget if that is less.
pub fn batch_bytes(config: &NetConfig) -> usize {
    config
        .max_upload_bytes_per_sec
        .map_or(TARGET_BATCH_BYTES, |up| {
            let secs =
                usize::try_from(up.get().saturating_mul(BUDGET_BATCH_SECS)).unwrap_or(usize::MAX);
            secs.clamp(MIN_BUDGET_BATCH_BYTES, TARGET_BATCH_BYTES)
        })
}

/// How long this node's sync requests may take: long enough, under a
/// budget, for a whole window of the largest batches to cross at the
/// budget's rate twice over (what a peer sends it, at most
/// [`TARGET_BATCH_BYTES`] and an envelope each; what it sends, its own
/// [`batch_bytes`]).
pub fn request_timeout(config: &NetConfig) -> Duration {
    let window = WINDOW as u64;
    let largest = MAX_ENVELOPE_BYTES as u64;
    let down = config.max_download_bytes_per_sec.map_or(0, |r| {
        2 * window * (TARGET_BATCH_BYTES as u64 + largest) / r.get()
    });
    let up = config.max_upload_bytes_per_sec.map_or(0, |r| {
        2 * window * (batch_bytes(config) as u64 + largest) / r.get()
    });
    Duration::from_secs(
        REQUEST_TIMEOUT_SECS
            .max(down)
            .max(up)
            .min(MAX_REQUEST_TIMEOUT_SECS),
    )
}
/// Concurrent sync streams per connection.
pub const MAX_CONCURRENT_STREAMS: usize = 16;
/// Seconds an unadmitted peer stays connected by default, to push the
/// certificates that may admit it.
pub const PROBATION_SECS: u64 = crate::sync::PROBATION_MS / 1000;
/// How often envelopes received by gossip are applied to items and the
/// index, in milliseconds.
pub const SETTLE_EVERY_MS: u64 = 200;
/// How often the core's timers are run, in milliseconds.
pub const TICK_EVERY_MS: u64 = 500;
/// Most swarm events handled before a held-back batch is stored: enough
/// to hand out the requests queued before it, bounded so a busy swarm
/// does not hold the batch back for long.
const MAX_EVENTS_BEFORE_STORE: usize = 16;
/// Longest a relayed circuit may last before it is renewed.
pub const MAX_CIRCUIT_SECS: u64 = 3_600;
/// Most bytes one relayed circuit may carry.
pub const MAX_CIRCUIT_BYTES: u64 = 256 * 1024 * 1024;
/// Gossip messages awaiting the core's verdict; past this, the oldest is ignored.
pub const MAX_PENDING_VERDICTS: usize = 4_096;

/// A network failure at start-up.
#[derive(Debug, Error)]
pub enum NetError {
    /// The swarm could not be built or could not listen.
    #[error("network: {0}")]
    Swarm(String),
}

/// How the network runs.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start and to keep redialling.
    pub bootstrap: Vec<Multiaddr>,
    /// Discover peers on the local network.
    pub mdns: bool,
    /// How often to reconcile with each connected peer.
    pub reconcile_every: Duration,
    /// How long an unadmitted peer may stay connected to prove its admission.
    pub probation: Duration,
    /// Relays to listen through (`/ip4/.../tcp/.../p2p/RELAY_PEER_ID`), for
    /// a site that cannot accept inbound connections.
    pub relays: Vec<Multiaddr>,
    /// Serve as a relay for other admitted nodes.
    pub relay_server: bool,
    /// The most bytes a second sent to all peers together (`None`: no
    /// limit).
    pub max_upload_bytes_per_sec: Option<NonZeroU64>,
    /// The most bytes a second taken in from all peers together.
    pub max_download_bytes_per_sec: Option<NonZeroU64>,
    /// Which files items carry are fetched without being asked.
    pub blob_policy: BlobPolicy,
    /// When files are fetched without being asked (`None`: any time).
    pub blob_hours: Option<BlobHours>,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            listen: vec![
                "/ip4/0.0.0.0/tcp/0"
                    .parse()
                    .unwrap_or_else(|_| Multiaddr::empty()),
                "/ip4/0.0.0.0/udp/0/quic-v1"
                    .parse()
                    .unwrap_or_else(|_| Multiaddr::empty()),
            ],
            bootstrap: Vec::new(),
            mdns: true,
            reconcile_every: Duration::from_millis(crate::sync::RECONCILE_EVERY_MS),
            probation: Duration::from_millis(crate::sync::PROBATION_MS),
            relays: Vec::new(),
            relay_server: true,
            max_upload_bytes_per_sec: None,
            max_download_bytes_per_sec: None,
            blob_policy: BlobPolicy::All,
            blob_hours: None,
        }
    }
}

/// What one peer looks like from here.
pub type PeerState = PeerStats;

/// The network's state, for `gatehouse status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetStatus {
    /// This node's PeerId.
    pub peer_id: String,
    /// Addresses listened on.
    pub listening: Vec<String>,
    /// Peers by PeerId.
    pub peers: BTreeMap<String, PeerState>,
    /// Forged or malformed envelopes received, in all.
    pub forged_received: u64,
    /// Envelopes that verified but were not stored (no effect, or past a
    /// signer's or the pool's limit), in all.
    pub refused_received: u64,
    /// Connections closed because the peer is not admitted.
    pub refused_connections: u64,
    /// Gossip messages received.
    pub gossip_received: u64,
    /// Gossip messages received whose envelope was already held.
    pub gossip_duplicates: u64,
    /// When this node last completed a reconciliation with anyone.
    pub last_sync_ms: Option<u64>,
    /// What the latest batches from peers brought, by content (at most
    /// [`MAX_ARRIVED_SHOWN`], oldest first).
    pub arrived: Vec<ArrivedLine>,
    /// Bytes of the sync protocol sent, length prefixes included.
    #[serde(default)]
    pub sync_bytes_sent: u64,
    /// Bytes of the sync protocol received.
    #[serde(default)]
    pub sync_bytes_received: u64,
    /// Files being fetched.
    #[serde(default)]
    pub transfers: Vec<blob::TransferStatus>,
    /// Envelopes running sessions found missing here, not fetched yet.
    #[serde(default)]
    pub to_fetch: usize,
    /// New envelopes stored from peers since the node started.
    #[serde(default)]
    pub envelopes_received: u64,
    /// Bytes of the file protocol sent.
    #[serde(default)]
    pub blob_bytes_sent: u64,
    /// Bytes of the file protocol received.
    #[serde(default)]
    pub blob_bytes_received: u64,
    /// Files fetched whole and kept since the node started.
    #[serde(default)]
    pub blobs_fetched: u64,
    /// Pieces from peers that did not verify, since the node started.
    #[serde(default)]
    pub blob_pieces_refused: u64,
    /// Files refused once whole (a patient identifier, or not their type).
    #[serde(default)]
    pub blobs_refused: u64,
}

/// One line of what arrived from peers: "new item from HMP Bravo: ...".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ArrivedLine {
    /// When it was applied here (ms since the epoch).
    pub at_ms: u64,
    /// What arrived, in words.
    pub text: String,
}

/// Lines of [`NetStatus::arrived`] kept.
pub const MAX_ARRIVED_SHOWN: usize = 50;
/// Envelopes from peers between two reports that are looked at to say what
/// they brought; beyond that (a site catching up) they are counted.
pub const MAX_DESCRIBED_ARRIVALS: usize = 200;

/// Envelopes stored from peers since the last report of what arrived.
#[derive(Debug, Default)]
struct Unreported {
    /// The first of them (at most [`MAX_DESCRIBED_ARRIVALS`]).
    ids: Vec<EnvelopeId>,
    /// How many more there were.
    more: usize,
}

impl Unreported {
    fn note(&mut self, fresh: &[EnvelopeId]) {
        let room = MAX_DESCRIBED_ARRIVALS.saturating_sub(self.ids.len());
        let take = room.min(fresh.len());
        self.ids.extend_from_slice(&fresh[..take]);
        self.more += fresh.len() - take;
    }
}

enum Command {
    Announce(Vec<EnvelopeId>),
    GossipRaw(Vec<u8>),
    Dial(Multiaddr),
    ReconcileNow,
    FetchBlob(BlobHash),
    Shutdown(oneshot::Sender<()>),
}

/// A handle to the running network task.
#[derive(Clone)]
pub struct NetHandle {
    commands: mpsc::Sender<Command>,
    status: Arc<Mutex<NetStatus>>,
    metrics: NetMetrics,
}

impl NetHandle {
    /// Gossips envelopes made here.
    pub async fn announce(&self, ids: Vec<EnvelopeId>) {
        if !ids.is_empty() {
            let _ = self.commands.send(Command::Announce(ids)).await;
        }
    }

    /// Dials an address.
    pub async fn dial(&self, addr: Multiaddr) {
        let _ = self.commands.send(Command::Dial(addr)).await;
    }

    /// Publishes bytes on the gossip topic exactly as given, unverified: for
    /// tools and tests that probe how peers treat bad input.
    pub async fn gossip_raw(&self, bytes: Vec<u8>) {
        let _ = self.commands.send(Command::GossipRaw(bytes)).await;
    }

    /// Starts a reconciliation with every connected peer.
    pub async fn reconcile_now(&self) {
        let _ = self.commands.send(Command::ReconcileNow).await;
    }

    /// Fetches a file now (a person opened its item and asked), ahead of
    /// every other and whatever the hours and policy.
    pub async fn fetch_blob(&self, hash: BlobHash) {
        let _ = self.commands.send(Command::FetchBlob(hash)).await;
    }

    /// A copy of the network's state.
    pub fn status(&self) -> NetStatus {
        let mut status = lock(&self.status).clone();
        (status.sync_bytes_sent, status.sync_bytes_received) = self.metrics.sync.totals();
        (status.blob_bytes_sent, status.blob_bytes_received) = self.metrics.blobs.totals();
        status
    }

    /// What the network task measures (sync bytes, ingest latency).
    pub fn metrics(&self) -> &NetMetrics {
        &self.metrics
    }

    /// Stops the network task and waits for it.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; the data is still whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<SyncCodec>,
    blobs: request_response::Behaviour<BlobCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
    relay_client: relay::client::Behaviour,
    relay: Toggle<relay::Behaviour>,
    dcutr: dcutr::Behaviour,
}

/// The libp2p identity of a node key.
pub fn peer_id_of(key: &PublicKey) -> Option<PeerId> {
    let ed = identity::ed25519::PublicKey::try_from_bytes(key.as_bytes()).ok()?;
    Some(identity::PublicKey::from(ed).to_peer_id())
}

/// The node key behind a PeerId (PeerIds of ed25519 keys embed the key).
pub fn key_of(peer: &PeerId) -> Option<PublicKey> {
    let multihash = peer.as_ref();
    if multihash.code() != 0 {
        return None;
    }
    let public = identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let ed = public.try_into_ed25519().ok()?;
    PublicKey::from_bytes(ed.to_bytes()).ok()
}

/// The node's library as the sync core sees it. Gossip is stored at once
/// and applied to items and the index on the next settle tick; everything
/// else (and any certificate, since trust decides who may connect) is
/// applied before the core hears the result.
struct LibrarySet<'a> {
    lib: MutexGuard<'a, Library>,
    me: PublicKey,
    /// How long each batch from peers takes to apply.
    ingest_latency: &'a Histogram,
    unsettled: &'a mut bool,
    unreported: &'a mut Unreported,
}

impl EnvelopeSet for LibrarySet<'_> {
    fn ids(&mut self) -> Result<&IdIndex, String> {
        self.lib.replica_mut().id_index().map_err(|e| e.to_string())
    }

    fn bytes(&self, ids: &[EnvelopeId]) -> Result<Vec<Vec<u8>>, String> {
        self.lib.envelope_bytes(ids).map_err(|e| e.to_string())
    }

    fn ingest(&mut self, envelopes: Vec<Vec<u8>>, gossip: bool) -> Ingested {
        let started = std::time::Instant::now();
        let out = self.apply(envelopes, gossip);
        observe(self.ingest_latency, started.elapsed());
        out
    }

    fn admitted(&self) -> BTreeMap<PublicKey, String> {
        admitted_nodes(self.lib.trust())
    }

    fn admission_proof(&self) -> Vec<Vec<u8>> {
        proof_bytes(self.lib.replica(), &self.me)
    }

    fn node_key(&self) -> PublicKey {
        self.me
    }

    fn urgent_among(&self, ids: &[EnvelopeId]) -> Vec<EnvelopeId> {
        self.lib.replica().urgent_among(ids)
    }

    fn admit(&mut self, peer: &PublicKey, offered: &[Vec<u8>]) -> Option<Ingested> {
        let chain = admitting(self.lib.replica(), peer, offered)?;
        let started = std::time::Instant::now();
        let mut out = Ingested::default();
        let fresh = store_opened(self.lib.replica_mut(), chain, &mut out);
        let out = self.applied(out, &fresh, false);
        observe(self.ingest_latency, started.elapsed());
        Some(out)
    }
}

impl LibrarySet<'_> {
    /// Stores a batch from peers and applies it (gossip on the next
    /// settle tick).
    fn apply(&mut self, envelopes: Vec<Vec<u8>>, gossip: bool) -> Ingested {
        let (out, fresh) = ingest_batch(self.lib.replica_mut(), envelopes);
        self.applied(out, &fresh, gossip)
    }

    /// Applies what a batch stored (gossip on the next settle tick) and
    /// counts what took effect.
    fn applied(&mut self, mut out: Ingested, fresh: &[EnvelopeId], gossip: bool) -> Ingested {
        self.unreported.note(fresh);
        if out.stored > 0 {
            if gossip && !out.certificates {
                // Applied on the next settle tick; gossipsub forwards what
                // the verdict accepts, so nothing is listed to pass on.
                *self.unsettled = true;
                return out;
            }
            if let Err(e) = self.lib.settle() {
                tracing::error!("could not apply received envelopes: {e}");
            }
        }
        count_settled(self.lib.replica(), &mut out, fresh);
        out
    }
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    core: SyncCore,
    lib: Arc<Mutex<Library>>,
    me: PublicKey,
    commands: mpsc::Receiver<Command>,
    status: Arc<Mutex<NetStatus>>,
    topic: IdentTopic,
    /// The topic for envelopes of kinds version-1 nodes do not read: they
    /// never subscribe to it, so they are never sent one.
    later_kinds: IdentTopic,
    config: NetConfig,
    /// Requests sent, by libp2p's id, to the core's.
    outbound: HashMap<OutboundRequestId, u64>,
    /// Requests received, awaiting the core's answer.
    inbound: HashMap<u64, ResponseChannel<SyncResponse>>,
    /// Gossip messages awaiting the core's verdict.
    verdicts: HashMap<u64, gossipsub::MessageId>,
    next_token: u64,
    /// Envelopes stored but not yet applied to items and the index.
    unsettled: bool,
    /// The core holds fetched batches back until the requests before them
    /// are on their way ([`Output::Store`]).
    store_pending: bool,
    /// Envelopes stored whose content is not yet reported.
    unreported: Unreported,
    metrics: NetMetrics,
    /// The node's file store (`None`: it keeps no files).
    blob_store: Option<BlobStore>,
    /// Which file to fetch, from whom.
    fetcher: Fetcher,
    /// File requests sent.
    blob_outbound: HashMap<OutboundRequestId, BlobRequest>,
    /// The library's latest read view, for checking files without its lock.
    reads: crate::query::Reads,
}

/// TCP (Noise, Yamux) and QUIC, every connection's substreams held to
/// `budget` ([`budget::MeteredMuxer`]).
fn transport(
    key: &identity::Keypair,
    budget: &Budget,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    use libp2p::Transport as _;
    use libp2p::core::upgrade::Version;
    let tcp = tcp::tokio::Transport::new(tcp::Config::default())
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .map(metered(budget.clone()));
    let mut quic_config = libp2p::quic::Config::new(key);
    if let Some(window) = budget.receive_window() {
        // QUIC lets a peer send this far ahead of what is read: under a
        // download budget, a few seconds of it, so that what crosses the
        // link is what the budget lets in.
        quic_config.max_stream_data = window;
        quic_config.max_connection_data = window.saturating_mul(2);
    }
    let quic = libp2p::quic::tokio::Transport::new(quic_config).map(metered(budget.clone()));
    Ok(tcp
        .or_transport(quic)
        .map(|either, _| either.into_inner())
        .boxed())
}

/// Starts the network task for the node whose key is `node_key`.
pub async fn start(
    lib: Arc<Mutex<Library>>,
    node_key: &SecretKey,
    config: NetConfig,
) -> Result<NetHandle, NetError> {
    let keypair = identity::Keypair::ed25519_from_bytes(node_key.to_seed())
        .map_err(|e| NetError::Swarm(e.to_string()))?;
    let (network, me) = {
        let lib = lock(&lib);
        (lib.config().network, lib.config().node)
    };
    let metrics = NetMetrics::default();
    let codec = SyncCodec {
        bytes: metrics.sync.clone(),
    };
    let blob_codec = BlobCodec {
        bytes: metrics.blobs.clone(),
    };
    let (blob_store, reads) = {
        let l = lock(&lib);
        (l.blobs().cloned(), l.reads())
    };
    let topic = IdentTopic::new(format!("gatehouse/{network}"));
    let later_kinds = IdentTopic::new(format!("gatehouse/{network}/later-kinds"));
    let mdns_on = config.mdns;
    let relay_on = config.relay_server;
    let budget = Budget::new(
        config.max_upload_bytes_per_sec,
        config.max_download_bytes_per_sec,
    );
    let timeout = request_timeout(&config);
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|key| transport(key, &budget))
        .map_err(|e| NetError::Swarm(e.to_string()))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| NetError::Swarm(e.to_string()))?
        .with_behaviour(|key, relay_client| {
            let gossip_config = gossipsub::ConfigBuilder::default()
                .validation_mode(ValidationMode::Strict)
                .validate_messages()
                .max_transmit_size(MAX_ENVELOPE_BYTES + 1024)
                .message_id_fn(|m: &gossipsub::Message| {
                    gossipsub::MessageId::from(EnvelopeId::of(&m.data).to_hex())
                })
                .heartbeat_interval(Duration::from_millis(500))
                .build()
                .map_err(|e| io::Error::other(e.to_string()))?;
            let mut gossipsub =
                gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossip_config)
                    .map_err(io::Error::other)?;
            let mut score = gossipsub::PeerScoreParams::default();
            for name in [
                format!("gatehouse/{network}"),
                format!("gatehouse/{network}/later-kinds"),
            ] {
                score.topics.insert(
                    IdentTopic::new(name).hash(),
                    gossipsub::TopicScoreParams {
                        invalid_message_deliveries_weight: -100.0,
                        invalid_message_deliveries_decay: 0.5,
                        ..gossipsub::TopicScoreParams::default()
                    },
                );
            }
            gossipsub
                .with_peer_score(score, gossipsub::PeerScoreThresholds::default())
                .map_err(io::Error::other)?;
            let sync = request_response::Behaviour::with_codec(
                codec,
                SYNC_PROTOCOLS
                    .iter()
                    .map(|p| (StreamProtocol::new(p), ProtocolSupport::Full)),
                request_response::Config::default()
                    .with_request_timeout(timeout)
                    .with_max_concurrent_streams(MAX_CONCURRENT_STREAMS),
            );
            let blobs = request_response::Behaviour::with_codec(
                blob_codec,
                [(
                    StreamProtocol::new(blob::BLOB_PROTOCOL),
                    ProtocolSupport::Full,
                )],
                request_response::Config::default()
                    .with_request_timeout(timeout)
                    .with_max_concurrent_streams(MAX_CONCURRENT_STREAMS),
            );
            let mdns = if mdns_on {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    key.public().to_peer_id(),
                )?)
            } else {
                None
            };
            Ok(Behaviour {
                gossipsub,
                sync,
                blobs,
                identify: identify::Behaviour::new(identify::Config::new(
                    "/gatehouse/1".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
                mdns: Toggle::from(mdns),
                relay_client,
                relay: Toggle::from(relay_on.then(|| {
                    relay::Behaviour::new(
                        key.public().to_peer_id(),
                        relay::Config {
                            max_circuit_duration: Duration::from_secs(MAX_CIRCUIT_SECS),
                            max_circuit_bytes: MAX_CIRCUIT_BYTES,
                            ..relay::Config::default()
                        },
                    )
                })),
                dcutr: dcutr::Behaviour::new(key.public().to_peer_id()),
            })
        })
        .map_err(|e| NetError::Swarm(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    for t in [&topic, &later_kinds] {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(t)
            .map_err(|e| NetError::Swarm(e.to_string()))?;
    }
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Swarm(format!("cannot listen on {addr}: {e}")))?;
    }
    for relay in &config.relays {
        // Listening through a relay starts once it is connected and admitted.
        swarm
            .dial(relay.clone())
            .map_err(|e| NetError::Swarm(format!("cannot dial relay {relay}: {e}")))?;
    }
    let status = Arc::new(Mutex::new(NetStatus {
        peer_id: swarm.local_peer_id().to_string(),
        ..NetStatus::default()
    }));
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let sync_config = SyncConfig {
        reconcile_every_ms: u64::try_from(config.reconcile_every.as_millis()).unwrap_or(u64::MAX),
        probation_ms: u64::try_from(config.probation.as_millis()).unwrap_or(u64::MAX),
        batch_bytes: batch_bytes(&config),
        ..SyncConfig::default()
    };
    let seed = u64::from_be_bytes(
        crate::home::random_bytes().map_err(|e| NetError::Swarm(e.to_string()))?,
    );
    let core = {
        let mut unsettled = false;
        let mut unreported = Unreported::default();
        let set = LibrarySet {
            lib: lock(&lib),
            me,
            ingest_latency: &metrics.ingest,
            unsettled: &mut unsettled,
            unreported: &mut unreported,
        };
        SyncCore::new(sync_config, seed, &set)
    };
    let mut event_loop = EventLoop {
        swarm,
        core,
        lib,
        me,
        commands: rx,
        status: status.clone(),
        topic,
        later_kinds,
        config,
        outbound: HashMap::new(),
        inbound: HashMap::new(),
        verdicts: HashMap::new(),
        next_token: 1,
        unsettled: false,
        store_pending: false,
        unreported: Unreported::default(),
        metrics: metrics.clone(),
        blob_store,
        fetcher: Fetcher::default(),
        blob_outbound: HashMap::new(),
        reads,
    };
    for addr in event_loop.config.bootstrap.clone() {
        event_loop.input(Input::Remember {
            address: addr.to_string(),
        });
    }
    event_loop.input(Input::Tick);
    tokio::spawn(event_loop.run());
    Ok(NetHandle {
        commands: tx,
        status,
        metrics,
    })
}

impl EventLoop {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_millis(TICK_EVERY_MS));
        let mut settle = tokio::time::interval(Duration::from_millis(SETTLE_EVERY_MS));
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm(event),
                () = std::future::ready(()), if self.store_pending => {
                    self.store_pending = false;
                    self.hand_out_requests();
                    // The connections just given a request may be queued
                    // behind this task on its worker: let them write it.
                    tokio::task::yield_now().await;
                    self.input(Input::Store);
                }
                command = self.commands.recv() => match command {
                    Some(Command::Announce(ids)) => self.announce(ids),
                    Some(Command::GossipRaw(bytes)) => self.publish(bytes),
                    Some(Command::Dial(addr)) => {
                        self.input(Input::Remember { address: addr.to_string() });
                        self.dial(&addr.to_string());
                    }
                    Some(Command::ReconcileNow) => self.input(Input::ReconcileNow),
                    Some(Command::FetchBlob(hash)) => {
                        self.fetcher.demand(hash);
                        self.pump_blobs();
                    }
                    Some(Command::Shutdown(done)) => {
                        self.settle();
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
                _ = settle.tick() => self.settle(),
                _ = tick.tick() => {
                    self.remember_peer_book();
                    self.input(Input::Tick);
                    self.pump_blobs();
                }
            }
        }
    }

    /// Lets the swarm hand the requests the core asked for to their
    /// connections, which run on tasks of their own: the answers then
    /// cross while this task stores a batch held back for them.
    fn hand_out_requests(&mut self) {
        for _ in 0..MAX_EVENTS_BEFORE_STORE {
            match self.swarm.select_next_some().now_or_never() {
                Some(event) => self.on_swarm(event),
                None => break,
            }
        }
    }

    /// Gives the core one input and carries out what it says.
    fn input(&mut self, input: Input) {
        let now = now_ms();
        let outputs = {
            let mut set = LibrarySet {
                lib: lock(&self.lib),
                me: self.me,
                ingest_latency: &self.metrics.ingest,
                unsettled: &mut self.unsettled,
                unreported: &mut self.unreported,
            };
            self.core.handle(input, now, &mut set)
        };
        for output in outputs {
            self.output(output);
        }
        self.publish_status();
    }

    fn output(&mut self, output: Output) {
        match output {
            Output::Send {
                peer,
                request,
                message,
            } => {
                if let Some(peer_id) = peer_id_of(&peer) {
                    let id = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_request(&peer_id, message);
                    self.outbound.insert(id, request);
                }
            }
            Output::Respond { inbound, response } => {
                if let Some(channel) = self.inbound.remove(&inbound) {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, response);
                }
            }
            Output::Verdict {
                message,
                from,
                verdict,
            } => {
                let (Some(id), Some(peer_id)) = (self.verdicts.remove(&message), peer_id_of(&from))
                else {
                    return;
                };
                let acceptance = match verdict {
                    Verdict::Accept => MessageAcceptance::Accept,
                    Verdict::Ignore => MessageAcceptance::Ignore,
                    Verdict::Reject => MessageAcceptance::Reject,
                };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &peer_id, acceptance);
            }
            Output::Store => self.store_pending = true,
            Output::Publish { bytes } => self.publish(bytes),
            Output::Dial { address } => self.dial(&address),
            Output::Disconnect { peer } => {
                if let Some(peer_id) = peer_id_of(&peer) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                }
            }
            Output::Admitted { peer } => {
                if let Some(peer_id) = peer_id_of(&peer) {
                    let gossip = &mut self.swarm.behaviour_mut().gossipsub;
                    gossip.remove_blacklisted_peer(&peer_id);
                    gossip.add_explicit_peer(&peer_id);
                    self.listen_via(peer_id);
                }
            }
            Output::Barred { peer } => {
                if let Some(peer_id) = peer_id_of(&peer) {
                    let gossip = &mut self.swarm.behaviour_mut().gossipsub;
                    gossip.remove_explicit_peer(&peer_id);
                    gossip.blacklist_peer(&peer_id);
                }
            }
            Output::Synced {
                peer,
                addresses,
                at_ms,
            } => {
                let Some(peer_id) = peer_id_of(&peer) else {
                    return;
                };
                if let Err(e) = lock(&self.lib).record_sync(&peer_id.to_string(), &addresses, at_ms)
                {
                    tracing::warn!("cannot record the sync: {e}");
                }
            }
        }
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn publish(&mut self, bytes: Vec<u8>) {
        let topic = if peek_kind_tag(&bytes).is_some_and(|t| t > MAX_FIRST_KIND) {
            self.later_kinds.clone()
        } else {
            self.topic.clone()
        };
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
            // No peers yet: anti-entropy delivers it when one connects.
            tracing::debug!("gossip publish: {e}");
        }
    }

    fn dial(&mut self, address: &str) {
        match address.parse::<Multiaddr>() {
            Ok(addr) => {
                if let Err(e) = self.swarm.dial(addr) {
                    tracing::debug!(%address, "dial failed: {e}");
                }
            }
            Err(e) => tracing::warn!(%address, "not a multiaddress: {e}"),
        }
    }

    /// Applies envelopes stored from gossip since the last tick, then says
    /// what the envelopes applied since the last report brought.
    fn settle(&mut self) {
        if std::mem::take(&mut self.unsettled)
            && let Err(e) = lock(&self.lib).settle()
        {
            tracing::error!("could not apply received envelopes: {e}");
        }
        if !self.unreported.ids.is_empty() || self.unreported.more > 0 {
            // New items may carry files.
            self.fetcher.mark_stale();
        }
        self.report_arrivals();
    }

    /// Logs what arrived, by content, and keeps the lines for `status`.
    fn report_arrivals(&mut self) {
        if self.unreported.ids.is_empty() && self.unreported.more == 0 {
            return;
        }
        let Unreported { ids, more } = std::mem::take(&mut self.unreported);
        // Only what took effect is reported; what waits is `status`'s pending.
        let (view, now, accepted) = {
            let lib = lock(&self.lib);
            let accepted: Vec<EnvelopeId> = ids
                .into_iter()
                .filter(|id| matches!(lib.judgement_of(id), Ok(Judgement::Accepted)))
                .collect();
            (lib.read_view(), lib.now(), accepted)
        };
        let arrived: Vec<Arrival> = accepted
            .iter()
            .filter_map(|id| view.envelope(id).ok())
            .map(|env| Arrival::of(&env))
            .collect();
        let mut lines = arrivals(&view, &arrived).lines();
        if more > 0 {
            lines.push(format!("and {more} more envelopes from peers"));
        }
        if lines.is_empty() {
            return;
        }
        for line in &lines {
            tracing::info!("arrived: {line}");
        }
        let mut status = lock(&self.status);
        status.arrived.extend(
            lines
                .into_iter()
                .map(|text| ArrivedLine { at_ms: now, text }),
        );
        let excess = status.arrived.len().saturating_sub(MAX_ARRIVED_SHOWN);
        status.arrived.drain(..excess);
    }

    /// Addresses in the peer book are kept dialled like bootstrap ones.
    fn remember_peer_book(&mut self) {
        let book = match lock(&self.lib).peers() {
            Ok(book) => book,
            Err(e) => {
                tracing::warn!("cannot read the peer book: {e}");
                return;
            }
        };
        for entry in book {
            self.input(Input::Remember {
                address: entry.address,
            });
        }
    }

    fn announce(&mut self, ids: Vec<EnvelopeId>) {
        let envelopes = match lock(&self.lib).envelope_bytes(&ids) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("cannot read envelopes to announce: {e}");
                return;
            }
        };
        // A local trust command may have changed who is admitted.
        self.input(Input::TrustChanged);
        self.input(Input::Publish { envelopes });
    }

    fn publish_status(&mut self) {
        let core = self.core.status();
        let mut status = lock(&self.status);
        status.peers = core
            .peers
            .iter()
            .filter_map(|(k, v)| peer_id_of(k).map(|p| (p.to_string(), v.clone())))
            .collect();
        status.forged_received = core.forged_received;
        status.refused_received = core.refused_received;
        status.refused_connections = core.refused_connections;
        status.gossip_received = core.gossip_received;
        status.gossip_duplicates = core.gossip_duplicates;
        status.last_sync_ms = core.last_sync_ms;
        status.transfers = self
            .fetcher
            .current
            .iter()
            .map(blob::Transfer::status)
            .collect();
        status.to_fetch = self.core.to_fetch();
        status.envelopes_received = core.peers.values().map(|p| p.envelopes_received).sum();
    }

    /// Listens through `peer` if it is one of the configured relays.
    fn listen_via(&mut self, peer: PeerId) {
        let relays: Vec<Multiaddr> = self
            .config
            .relays
            .iter()
            .filter(|a| a.iter().any(|p| p == Protocol::P2p(peer)))
            .cloned()
            .collect();
        for relay in relays {
            let circuit = relay.with(Protocol::P2pCircuit);
            if let Err(e) = self.swarm.listen_on(circuit.clone()) {
                tracing::warn!(%circuit, "cannot listen through the relay: {e}");
            }
        }
    }

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                // Relayed peers are told these addresses in their reservations.
                if !address.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
                    self.swarm.add_external_address(address.clone());
                }
                lock(&self.status).listening.push(address.to_string());
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                let Some(peer) = key_of(&peer_id) else {
                    tracing::info!(%peer_id, "peer identity is not an ed25519 key; disconnecting");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                };
                if num_established.get() == 1 {
                    let address = endpoint.get_remote_address();
                    // The address dialled ends in /p2p/ with this very peer.
                    let named = endpoint.is_dialer()
                        && address.iter().last() == Some(Protocol::P2p(peer_id));
                    self.input(Input::Connected {
                        peer,
                        address: address.to_string(),
                        dialer: endpoint.is_dialer(),
                        named,
                    });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                if let Some(peer) = key_of(&peer_id) {
                    self.input(Input::Disconnected { peer });
                }
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .remove_explicit_peer(&peer_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer_id, addr) in found {
                    if let Some(peer) = key_of(&peer_id) {
                        self.input(Input::Discovered {
                            peer,
                            address: addr.to_string(),
                        });
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let Some(from) = key_of(&propagation_source) else {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Reject,
                        );
                    return;
                };
                if self.verdicts.len() >= MAX_PENDING_VERDICTS {
                    self.verdicts.clear();
                }
                let token = self.token();
                self.verdicts.insert(token, message_id);
                self.input(Input::Gossip {
                    from,
                    message: token,
                    bytes: message.data,
                });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event),
            SwarmEvent::Behaviour(BehaviourEvent::Blobs(event)) => self.on_blob(event),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(event)) => {
                tracing::debug!(?event, "relay client");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Relay(event)) => {
                tracing::debug!(?event, "relay server");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(event)) => {
                tracing::debug!(?event, "hole punching");
            }
            SwarmEvent::ListenerError { error, .. } => tracing::warn!("listener error: {error}"),
            SwarmEvent::ListenerClosed {
                reason, addresses, ..
            } => tracing::info!(?reason, ?addresses, "listener closed"),
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                tracing::debug!("dial failed: {error}");
            }
            _ => {}
        }
    }

    /// Whether files may be fetched without being asked now: no envelope
    /// session is running (envelopes go first) and the hours allow.
    fn background_blobs(&self) -> bool {
        let sessions = self
            .core
            .admitted_peers()
            .iter()
            .any(|p| self.core.in_session(p));
        !sessions && self.config.blob_hours.is_none_or(BlobHours::open_now)
    }

    /// Starts the next file transfer, if one is due and none is running.
    fn pump_blobs(&mut self) {
        if self.blob_store.is_none() || self.fetcher.current.is_some() {
            return;
        }
        if self.fetcher.wanted_is_stale() {
            match lock(&self.lib).wanted_blobs() {
                Ok(wanted) => self.fetcher.set_wanted(wanted),
                Err(e) => {
                    tracing::warn!("cannot list the files wanted: {e}");
                    return;
                }
            }
        }
        let peers: Vec<PeerId> = self
            .core
            .admitted_peers()
            .iter()
            .filter_map(peer_id_of)
            .filter(|p| self.swarm.is_connected(p))
            .collect();
        let background = self.background_blobs();
        if let Next::Ask(peer, request) =
            self.fetcher
                .next(&peers, background, self.config.blob_policy)
        {
            self.ask_blob(peer, request);
        }
        self.publish_status();
    }

    fn ask_blob(&mut self, peer: PeerId, request: BlobRequest) {
        let id = self
            .swarm
            .behaviour_mut()
            .blobs
            .send_request(&peer, request);
        self.blob_outbound.insert(id, request);
    }

    /// Answers a peer's request for a piece of a file: only an admitted
    /// peer, only a whole file held here.
    fn serve_blob(&self, peer: &PeerId, request: BlobRequest) -> BlobResponse {
        let admitted = key_of(peer).is_some_and(|k| self.core.admitted_peers().contains(&k));
        let Some(store) = self.blob_store.as_ref().filter(|_| admitted) else {
            return BlobResponse::NotHere;
        };
        match store.slice(&request.hash, request.start, request.len) {
            Ok(piece) => BlobResponse::Piece(piece),
            Err(BlobError::Missing(_)) => BlobResponse::NotHere,
            Err(e) => {
                tracing::warn!("cannot read file {} for a peer: {e}", request.hash);
                BlobResponse::NotHere
            }
        }
    }

    /// Takes a piece that arrived.
    fn take_piece(&mut self, peer: PeerId, request: BlobRequest, piece: &[u8]) {
        let (Some(store), Some(size)) = (
            self.blob_store.clone(),
            self.fetcher
                .current
                .as_ref()
                .filter(|t| t.wanted.attachment.hash == request.hash)
                .map(|t| t.wanted.attachment.size),
        ) else {
            return;
        };
        match store.receive(&request.hash, size, request.start, piece) {
            Ok(Received::Partial(have)) => {
                let background = self.background_blobs();
                if let Some((peer, next)) = self.fetcher.kept(have, background) {
                    self.ask_blob(peer, next);
                }
            }
            Ok(Received::Complete) => {
                self.fetcher.finished(&request.hash);
                // Reading and scanning a large file takes a while: it is
                // done on the blocking pool from the latest read view, and
                // the library is locked only to index its items.
                let (lib, status, reads) =
                    (self.lib.clone(), self.status.clone(), self.reads.clone());
                let hash = request.hash;
                tokio::task::spawn_blocking(move || {
                    use crate::authoring::attach::{BlobCheck, check_blob};
                    let checked =
                        check_blob(&reads.latest(), &store, &hash).and_then(|(check, carriers)| {
                            lock(&lib).blob_checked(&carriers)?;
                            Ok(check)
                        });
                    let mut status = lock(&status);
                    match checked {
                        Ok(BlobCheck::Refused(reason)) => {
                            status.blobs_refused += 1;
                            tracing::warn!(%peer, "file {hash} refused: {reason}");
                        }
                        Ok(_) => {
                            status.blobs_fetched += 1;
                            tracing::info!(%peer, "file {hash} arrived whole");
                        }
                        Err(e) => tracing::warn!("cannot check file {hash}: {e}"),
                    }
                });
            }
            Err(BlobError::Corrupt { at, .. }) => {
                lock(&self.status).blob_pieces_refused += 1;
                tracing::warn!(
                    %peer,
                    "file {}: the piece from this peer does not verify at byte {at}; the bytes before it are kept and another peer is asked",
                    request.hash
                );
                self.fetcher.failed(at, true);
            }
            Err(e) => {
                tracing::warn!("file {}: {e}", request.hash);
                self.fetcher.failed(store.partial_len(&request.hash), false);
            }
        }
        self.pump_blobs();
    }

    fn on_blob(&mut self, event: request_response::Event<BlobRequest, BlobResponse>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let response = self.serve_blob(&peer, request);
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .blobs
                    .send_response(channel, response);
            }
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some(request) = self.blob_outbound.remove(&request_id) else {
                    return;
                };
                match response {
                    BlobResponse::Piece(piece) => self.take_piece(peer, request, &piece),
                    BlobResponse::NotHere => {
                        let have = self
                            .blob_store
                            .as_ref()
                            .map_or(0, |s| s.partial_len(&request.hash));
                        self.fetcher.failed(have, true);
                        self.pump_blobs();
                    }
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(request) = self.blob_outbound.remove(&request_id) {
                    tracing::debug!(%peer, "file request failed: {error}");
                    let have = self
                        .blob_store
                        .as_ref()
                        .map_or(0, |s| s.partial_len(&request.hash));
                    self.fetcher.failed(have, false);
                }
            }
            _ => {}
        }
    }

    fn on_sync(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let Some(key) = key_of(&peer) else {
                    return;
                };
                let token = self.token();
                self.inbound.insert(token, channel);
                self.input(Input::Request {
                    peer: key,
                    inbound: token,
                    request,
                });
            }
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(request) = self.outbound.remove(&request_id) {
                    self.input(Input::Response { request, response });
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, "sync request failed: {error}");
                if let Some(request) = self.outbound.remove(&request_id) {
                    self.input(Input::RequestFailed { request });
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(up: Option<u64>, down: Option<u64>) -> NetConfig {
        NetConfig {
            max_upload_bytes_per_sec: up.and_then(NonZeroU64::new),
            max_download_bytes_per_sec: down.and_then(NonZeroU64::new),
            ..NetConfig::default()
        }
    }

    #[test]
    fn a_budget_shrinks_batches_and_gives_requests_time_to_cross() {
        let free = budget(None, None);
        assert_eq!(batch_bytes(&free), TARGET_BATCH_BYTES);
        assert_eq!(
            request_timeout(&free),
            Duration::from_secs(REQUEST_TIMEOUT_SECS)
        );
        // 256 kbit/s up: batches of 8 s of it, and requests given the time
        // a window of them (and of the largest envelope) takes, twice.
        let slow = budget(Some(32_000), None);
        assert_eq!(batch_bytes(&slow), 256_000);
        let timeout = request_timeout(&slow).as_secs();
        let twice_a_window = (2 * WINDOW * (256_000 + MAX_ENVELOPE_BYTES)) as u64 / 32_000;
        assert_eq!(timeout, twice_a_window);
        // 256 kbit/s down: a peer's full batches must fit too.
        let slow_down = budget(None, Some(32_000));
        let full = (WINDOW * (TARGET_BATCH_BYTES + MAX_ENVELOPE_BYTES)) as u64 / 32_000;
        assert!(request_timeout(&slow_down).as_secs() >= full);
        // A trickle is bounded: batches of at least 16 KiB, requests of at
        // most half an hour.
        let trickle = budget(Some(100), Some(100));
        assert_eq!(batch_bytes(&trickle), MIN_BUDGET_BATCH_BYTES);
        assert_eq!(
            request_timeout(&trickle),
            Duration::from_secs(MAX_REQUEST_TIMEOUT_SECS)
        );
    }
}
