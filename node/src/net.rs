//! The peer-to-peer network: a libp2p swarm that moves envelopes between
//! admitted nodes.
//!
//! - Transport: TCP and QUIC, Noise, Yamux; the node key is the libp2p
//!   identity, so a connection's PeerId names the node at the other end.
//! - Gating: a peer whose key is not a delegated, unrevoked device key of an
//!   admitted establishment is blacklisted for gossip, its requests are
//!   refused and it is disconnected after [`PROBATION_SECS`]. The one thing
//!   it may do meanwhile is push certificates once (a newly joined site's
//!   own delegations, which may admit it); it obtains nothing. When a
//!   revocation arrives, connected peers are checked again.
//! - Push: each envelope made here is published on the network's gossipsub
//!   topic (message id = envelope id); received messages are validated by
//!   ingesting them: accepted ones are forwarded, pending ones ignored,
//!   forged ones rejected (which lowers the sender's score) and counted.
//! - Reachability: mDNS on a LAN, bootstrap and remembered peers (redialled
//!   with backoff), and relays: every node can relay for admitted nodes
//!   (bounded circuits), a node given `relays` listens through them once
//!   connected, and DCUtR upgrades relayed connections to direct ones where
//!   the network allows.
//! - Anti-entropy: on connecting, and every `reconcile_every`, the node
//!   reconciles its envelope set with each peer ([`gatehouse_protocol::reconcile`]
//!   over [`gatehouse_protocol::sync`] messages), fetches what it lacks and
//!   pushes what the peer lacks. Every node stores and serves every envelope
//!   it accepted, so updates travel through intermediate sites.
//!
//! The library is shared with the control API behind a `std` mutex that is
//! never held across an `.await`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use gatehouse_protocol::certificate::MemberRole;
use gatehouse_protocol::envelope::MAX_ENVELOPE_BYTES;
use gatehouse_protocol::id::EnvelopeId;
use gatehouse_protocol::key::{PublicKey, SecretKey};
use gatehouse_protocol::reconcile::{Message as ReconcileMessage, Reconciler};
use gatehouse_protocol::sync::{
    MAX_FETCH_IDS, MAX_SYNC_MESSAGE_BYTES, SyncRequest, SyncResponse, TARGET_BATCH_BYTES,
};
use gatehouse_protocol::trust::Judgement;
pub use libp2p::Multiaddr;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, ValidationMode};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent, behaviour::toggle::Toggle};
use libp2p::{
    PeerId, StreamProtocol, Swarm, dcutr, identify, identity, mdns, noise, ping, relay, tcp, yamux,
};
use serde::Serialize;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use crate::library::{Library, LibraryError};

/// The sync protocol name.
pub const SYNC_PROTOCOL: &str = "/gatehouse/sync/1";
/// Commands queued to the network task before senders wait.
pub const COMMAND_QUEUE: usize = 256;
/// How long a sync request may take.
pub const REQUEST_TIMEOUT_SECS: u64 = 60;
/// Concurrent sync streams per connection.
pub const MAX_CONCURRENT_STREAMS: usize = 16;
/// Longest wait between redials of a bootstrap or remembered peer.
pub const MAX_REDIAL_BACKOFF_SECS: u64 = 300;
/// Seconds an unadmitted peer stays connected by default, to push the
/// certificates that may admit it.
pub const PROBATION_SECS: u64 = 10;
/// Most certificates an unadmitted peer may push.
pub const MAX_PROBATION_CERTIFICATES: usize = 64;
/// How often envelopes received by gossip are applied to items and the
/// index, in milliseconds.
pub const SETTLE_EVERY_MS: u64 = 200;
/// Longest a relayed circuit may last before it is renewed.
pub const MAX_CIRCUIT_SECS: u64 = 3_600;
/// Most bytes one relayed circuit may carry.
pub const MAX_CIRCUIT_BYTES: u64 = 256 * 1024 * 1024;
/// Forged envelopes tolerated from one peer before it is disconnected.
pub const MAX_FORGED_PER_PEER: u32 = 3;

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
            reconcile_every: Duration::from_secs(60),
            probation: Duration::from_secs(PROBATION_SECS),
            relays: Vec::new(),
            relay_server: true,
        }
    }
}

/// What one peer looks like from here.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerState {
    /// Whether a connection is open.
    pub connected: bool,
    /// Whether the peer is an admitted node.
    pub admitted: bool,
    /// The establishment whose node it is.
    pub establishment: Option<String>,
    /// Addresses seen for it.
    pub addresses: BTreeSet<String>,
    /// When the last reconciliation with it completed (ms since the epoch).
    pub last_sync_ms: Option<u64>,
    /// Envelopes stored here that came from it.
    pub envelopes_received: u64,
    /// Envelopes sent to it.
    pub envelopes_sent: u64,
    /// Forged or malformed envelopes it sent.
    pub forged: u32,
}

/// The network's state, for `gatehouse status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NetStatus {
    /// This node's PeerId.
    pub peer_id: String,
    /// Addresses listened on.
    pub listening: Vec<String>,
    /// Peers by PeerId.
    pub peers: BTreeMap<String, PeerState>,
    /// Forged or malformed envelopes received, in all.
    pub forged_received: u64,
    /// Connections closed because the peer is not admitted.
    pub refused_connections: u64,
    /// Gossip messages received.
    pub gossip_received: u64,
    /// Gossip messages received whose envelope was already held.
    pub gossip_duplicates: u64,
    /// When this node last completed a reconciliation with anyone.
    pub last_sync_ms: Option<u64>,
}

enum Command {
    Announce(Vec<EnvelopeId>),
    GossipRaw(Vec<u8>),
    Dial(Multiaddr),
    ReconcileNow,
    Shutdown(oneshot::Sender<()>),
}

/// A handle to the running network task.
#[derive(Clone)]
pub struct NetHandle {
    commands: mpsc::Sender<Command>,
    status: Arc<Mutex<NetStatus>>,
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

    /// A copy of the network's state.
    pub fn status(&self) -> NetStatus {
        lock(&self.status).clone()
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

/// Frames sync messages: a `u32` length, then the canonical bytes.
#[derive(Debug, Clone, Default)]
pub struct SyncCodec;

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_SYNC_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("sync message of {len} bytes is over the limit"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "sync message too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        SyncRequest::decode(&read_frame(io).await?).map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        SyncResponse::decode(&read_frame(io).await?).map_err(invalid)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: SyncRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req.encode()).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res.encode()).await
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<SyncCodec>,
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

/// What one sync session with a peer is waiting for.
#[derive(Default)]
struct Session {
    outstanding: usize,
    need: BTreeSet<EnvelopeId>,
    offer: BTreeSet<EnvelopeId>,
    reconciled: bool,
}

enum Purpose {
    Reconcile,
    Fetch(Vec<EnvelopeId>),
    Push(usize),
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    lib: Arc<Mutex<Library>>,
    commands: mpsc::Receiver<Command>,
    status: Arc<Mutex<NetStatus>>,
    topic: IdentTopic,
    admitted: HashMap<PeerId, String>,
    sessions: HashMap<PeerId, Session>,
    requests: HashMap<OutboundRequestId, (PeerId, Purpose)>,
    config: NetConfig,
    redial: HashMap<Multiaddr, (tokio::time::Instant, u64)>,
    /// Unadmitted peers: when their probation ends, and whether they pushed.
    probation: HashMap<PeerId, (tokio::time::Instant, bool)>,
    /// Envelopes stored but not yet applied to items and the index.
    unsettled: bool,
}

/// Starts the network task for the node whose key is `node_key`.
pub async fn start(
    lib: Arc<Mutex<Library>>,
    node_key: &SecretKey,
    config: NetConfig,
) -> Result<NetHandle, NetError> {
    let keypair = identity::Keypair::ed25519_from_bytes(node_key.to_seed())
        .map_err(|e| NetError::Swarm(e.to_string()))?;
    let network = lock(&lib).config().network;
    let topic = IdentTopic::new(format!("gatehouse/{network}"));
    let mdns_on = config.mdns;
    let relay_on = config.relay_server;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetError::Swarm(e.to_string()))?
        .with_quic()
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
            score.topics.insert(
                IdentTopic::new(format!("gatehouse/{network}")).hash(),
                gossipsub::TopicScoreParams {
                    invalid_message_deliveries_weight: -100.0,
                    invalid_message_deliveries_decay: 0.5,
                    ..gossipsub::TopicScoreParams::default()
                },
            );
            gossipsub
                .with_peer_score(score, gossipsub::PeerScoreThresholds::default())
                .map_err(io::Error::other)?;
            let sync = request_response::Behaviour::with_codec(
                SyncCodec,
                [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS))
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
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .map_err(|e| NetError::Swarm(e.to_string()))?;
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
    let mut event_loop = EventLoop {
        swarm,
        lib,
        commands: rx,
        status: status.clone(),
        topic,
        admitted: HashMap::new(),
        sessions: HashMap::new(),
        requests: HashMap::new(),
        config,
        redial: HashMap::new(),
        probation: HashMap::new(),
        unsettled: false,
    };
    event_loop.refresh_admitted();
    for addr in event_loop.config.bootstrap.clone() {
        event_loop.dial(addr);
    }
    tokio::spawn(event_loop.run());
    Ok(NetHandle {
        commands: tx,
        status,
    })
}

impl EventLoop {
    async fn run(mut self) {
        let mut reconcile = tokio::time::interval(self.config.reconcile_every);
        reconcile.tick().await;
        let mut redial = tokio::time::interval(Duration::from_secs(2));
        let mut settle = tokio::time::interval(Duration::from_millis(SETTLE_EVERY_MS));
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm(event),
                command = self.commands.recv() => match command {
                    Some(Command::Announce(ids)) => self.announce(ids),
                    Some(Command::GossipRaw(bytes)) => {
                        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(self.topic.clone(), bytes) {
                            tracing::debug!("gossip publish: {e}");
                        }
                    }
                    Some(Command::Dial(addr)) => self.dial(addr),
                    Some(Command::ReconcileNow) => self.reconcile_all(),
                    Some(Command::Shutdown(done)) => {
                        self.settle();
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
                _ = reconcile.tick() => self.reconcile_all(),
                _ = settle.tick() => self.settle(),
                _ = redial.tick() => {
                    self.redial_due();
                    self.end_probations();
                }
            }
        }
    }

    /// Applies envelopes stored from gossip since the last tick.
    fn settle(&mut self) {
        if std::mem::take(&mut self.unsettled)
            && let Err(e) = self.lib().settle()
        {
            tracing::error!("could not apply received envelopes: {e}");
        }
    }

    fn lib(&self) -> MutexGuard<'_, Library> {
        lock(&self.lib)
    }

    fn set_status(&self, f: impl FnOnce(&mut NetStatus)) {
        f(&mut lock(&self.status));
    }

    fn peer_status(&self, peer: &PeerId, f: impl FnOnce(&mut PeerState)) {
        let mut s = lock(&self.status);
        f(s.peers.entry(peer.to_string()).or_default());
    }

    /// Recomputes which PeerIds are admitted nodes, and drops connections
    /// to peers that no longer are.
    fn refresh_admitted(&mut self) {
        let admitted: HashMap<PeerId, String> = {
            let lib = self.lib();
            let trust = lib.trust();
            trust
                .members
                .values()
                .filter(|m| m.role == MemberRole::Device && !m.revoked)
                .filter(|m| trust.can_act(&m.establishment, &m.key))
                .filter_map(|m| {
                    let name = trust
                        .establishments
                        .get(&m.establishment)
                        .map(|e| e.name.clone())
                        .unwrap_or_default();
                    peer_id_of(&m.key).map(|p| (p, name))
                })
                .collect()
        };
        self.admitted = admitted;
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in connected {
            if self.admitted.contains_key(&peer) {
                self.admit_probationer(peer);
            } else if !self.probation.contains_key(&peer) {
                tracing::info!(%peer, "peer is no longer admitted; disconnecting");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    fn dial(&mut self, addr: Multiaddr) {
        self.redial
            .entry(addr.clone())
            .or_insert((tokio::time::Instant::now(), 1));
        if let Err(e) = self.swarm.dial(addr.clone()) {
            tracing::debug!(%addr, "dial failed: {e}");
        }
    }

    /// Redials remembered and bootstrap addresses whose peer is not
    /// connected, backing off exponentially.
    fn redial_due(&mut self) {
        let mut addrs: Vec<Multiaddr> = self.config.bootstrap.clone();
        if let Ok(book) = self.lib().peers() {
            addrs.extend(book.into_iter().filter_map(|p| p.address.parse().ok()));
        }
        let connected_addrs: HashSet<String> = lock(&self.status)
            .peers
            .values()
            .filter(|p| p.connected)
            .flat_map(|p| p.addresses.iter().cloned())
            .collect();
        let now = tokio::time::Instant::now();
        for addr in addrs {
            if connected_addrs.contains(&addr.to_string()) {
                self.redial.insert(addr, (now, 1));
                continue;
            }
            let (due, backoff) = self.redial.get(&addr).copied().unwrap_or((now, 1));
            if due <= now {
                let next = (backoff * 2).min(MAX_REDIAL_BACKOFF_SECS);
                self.redial
                    .insert(addr.clone(), (now + Duration::from_secs(backoff), next));
                let _ = self.swarm.dial(addr);
            }
        }
    }

    fn announce(&mut self, ids: Vec<EnvelopeId>) {
        let envelopes = match self.lib().envelope_bytes(&ids) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("cannot read envelopes to announce: {e}");
                return;
            }
        };
        for bytes in envelopes {
            if let Err(e) = self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(self.topic.clone(), bytes)
            {
                // No peers yet: anti-entropy delivers it when one connects.
                tracing::debug!("gossip publish: {e}");
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
                self.set_status(|s| s.listening.push(address.to_string()));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                let addr = endpoint.get_remote_address().to_string();
                // Introduce ourselves both ways: our certificates may admit us
                // there (a site that joined recently is known only to itself).
                self.introduce(peer_id);
                let Some(establishment) = self.admitted.get(&peer_id).cloned() else {
                    tracing::info!(peer = %peer_id, %addr, "peer is not an admitted node; on probation");
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .blacklist_peer(&peer_id);
                    self.probation
                        .entry(peer_id)
                        .or_insert((tokio::time::Instant::now() + self.config.probation, false));
                    return;
                };
                self.peer_status(&peer_id, |p| {
                    p.connected = true;
                    p.admitted = true;
                    p.establishment = Some(establishment);
                    p.addresses.insert(addr);
                });
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .add_explicit_peer(&peer_id);
                if endpoint.is_dialer() {
                    self.start_session(peer_id);
                }
                self.listen_via(peer_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.peer_status(&peer_id, |p| p.connected = false);
                self.sessions.remove(&peer_id);
                self.probation.remove(&peer_id);
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .remove_explicit_peer(&peer_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    if self.admitted.contains_key(&peer) && !self.swarm.is_connected(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, message_id, message.data),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event),
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

    fn on_gossip(&mut self, from: PeerId, id: gossipsub::MessageId, data: Vec<u8>) {
        let acceptance = if !self.admitted.contains_key(&from) {
            MessageAcceptance::Reject
        } else {
            let got = self.ingest_with(&from, vec![data], true);
            self.set_status(|s| {
                s.gossip_received += 1;
                s.gossip_duplicates += got.duplicates as u64;
            });
            match got {
                Ingested {
                    forged: 0,
                    accepted,
                    ..
                } if accepted > 0 => MessageAcceptance::Accept,
                Ingested { forged: 0, .. } => MessageAcceptance::Ignore,
                _ => MessageAcceptance::Reject,
            }
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&id, &from, acceptance);
    }

    /// Verifies and stores envelopes from `peer`, counting forgeries.
    fn ingest(&mut self, peer: &PeerId, envelopes: Vec<Vec<u8>>) -> Ingested {
        self.ingest_with(peer, envelopes, false)
    }

    /// Verifies and stores envelopes; with `defer`, items and the index are
    /// brought up to date on the next settle tick instead of now (gossip
    /// arrives one envelope at a time; settling each would commit the
    /// index each time). Certificates always settle at once, since trust
    /// decides who may connect.
    fn ingest_with(&mut self, peer: &PeerId, envelopes: Vec<Vec<u8>>, defer: bool) -> Ingested {
        let mut out = Ingested::default();
        let mut certificates = false;
        let mut new_certificates = Vec::new();
        {
            let mut lib = self.lib();
            for bytes in &envelopes {
                match lib.ingest_deferred(bytes) {
                    Ok(a) if !a.new => out.duplicates += 1,
                    Ok(a) => {
                        out.stored += 1;
                        if a.certificate {
                            certificates = true;
                            new_certificates.push(a.id);
                        } else if a.judgement == Judgement::Accepted {
                            out.accepted += 1;
                        }
                    }
                    Err(LibraryError::Refused(e)) => {
                        tracing::warn!(%peer, "refused an envelope: {e}");
                        out.forged += 1;
                    }
                    Err(e) => tracing::warn!(%peer, "could not store an envelope: {e}"),
                }
            }
            if (!defer || certificates)
                && let Err(e) = lib.settle()
            {
                tracing::error!("could not apply received envelopes: {e}");
            }
            // Certificates are judged when the batch is applied.
            out.accepted += new_certificates
                .iter()
                .filter(|id| matches!(lib.judgement_of(id), Ok(Judgement::Accepted)))
                .count();
        }
        if defer && !certificates {
            self.unsettled = true;
        }
        let (stored, forged) = (out.stored, out.forged);
        self.peer_status(peer, |p| {
            p.envelopes_received += stored as u64;
            p.forged += forged;
        });
        if forged > 0 {
            self.set_status(|s| s.forged_received += forged as u64);
            let total = lock(&self.status)
                .peers
                .get(&peer.to_string())
                .map_or(0, |p| p.forged);
            if total >= MAX_FORGED_PER_PEER {
                tracing::warn!(%peer, "disconnecting a peer that sent {total} forged envelopes");
                let _ = self.swarm.disconnect_peer_id(*peer);
            }
        }
        if certificates {
            self.refresh_admitted();
        }
        out
    }

    /// Sends our certificates to a newly connected peer.
    fn introduce(&mut self, peer: PeerId) {
        let certs = match self.lib().certificate_bytes() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("cannot read certificates: {e}");
                return;
            }
        };
        let certs: Vec<Vec<u8>> = certs.into_iter().take(MAX_PROBATION_CERTIFICATES).collect();
        let n = certs.len();
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, SyncRequest::Push(certs));
        self.requests.insert(id, (peer, Purpose::Push(n)));
    }

    /// Disconnects peers whose probation ran out.
    fn end_probations(&mut self) {
        let now = tokio::time::Instant::now();
        let expired: Vec<PeerId> = self
            .probation
            .iter()
            .filter(|(_, (until, _))| *until <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            self.probation.remove(&peer);
            if !self.admitted.contains_key(&peer) {
                tracing::info!(%peer, "refusing a peer that is not an admitted node");
                let _ = self.swarm.disconnect_peer_id(peer);
                self.set_status(|s| s.refused_connections += 1);
            }
        }
    }

    /// A peer on probation became admitted: treat it as newly connected.
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

    fn admit_probationer(&mut self, peer: PeerId) {
        if self.probation.remove(&peer).is_some() && self.admitted.contains_key(&peer) {
            let establishment = self.admitted.get(&peer).cloned();
            self.swarm
                .behaviour_mut()
                .gossipsub
                .remove_blacklisted_peer(&peer);
            self.swarm
                .behaviour_mut()
                .gossipsub
                .add_explicit_peer(&peer);
            self.peer_status(&peer, |p| {
                p.connected = true;
                p.admitted = true;
                p.establishment = establishment;
            });
            self.start_session(peer);
            self.listen_via(peer);
        }
    }

    fn reconcile_all(&mut self) {
        let peers: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .copied()
            .filter(|p| self.admitted.contains_key(p))
            .collect();
        for p in peers {
            if !self.sessions.contains_key(&p) {
                self.start_session(p);
            }
        }
    }

    fn start_session(&mut self, peer: PeerId) {
        let ids = match self.lib().envelope_ids() {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!("cannot list envelopes: {e}");
                return;
            }
        };
        let opening = Reconciler::new(&ids).initiate().encode();
        self.sessions.insert(peer, Session::default());
        self.send(peer, SyncRequest::Reconcile(opening), Purpose::Reconcile);
    }

    fn send(&mut self, peer: PeerId, request: SyncRequest, purpose: Purpose) {
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.requests.insert(id, (peer, purpose));
        if let Some(s) = self.sessions.get_mut(&peer) {
            s.outstanding += 1;
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
                let response = self.serve(&peer, request);
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
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
                if let Some((_, purpose)) = self.requests.remove(&request_id) {
                    self.on_response(peer, purpose, response);
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, "sync request failed: {error}");
                self.requests.remove(&request_id);
                self.sessions.remove(&peer);
            }
            _ => {}
        }
    }

    /// Answers a peer's request.
    fn serve(&mut self, peer: &PeerId, request: SyncRequest) -> SyncResponse {
        if !self.admitted.contains_key(peer) {
            return self.serve_probation(peer, request);
        }
        match request {
            SyncRequest::Reconcile(bytes) => {
                let message = match ReconcileMessage::decode(&bytes) {
                    Ok(m) => m,
                    Err(e) => return SyncResponse::Refused(format!("bad reconcile message: {e}")),
                };
                let ids = match self.lib().envelope_ids() {
                    Ok(ids) => ids,
                    Err(e) => return SyncResponse::Refused(format!("store: {e}")),
                };
                match Reconciler::new(&ids).respond(&message) {
                    Ok(step) => SyncResponse::Reconcile(step.reply.map(|m| m.encode())),
                    Err(e) => SyncResponse::Refused(format!("reconcile: {e}")),
                }
            }
            SyncRequest::Fetch(ids) => {
                let wanted: Vec<EnvelopeId> = ids.into_iter().take(MAX_FETCH_IDS).collect();
                let mut out = Vec::new();
                let mut size = 0;
                match self.lib().envelope_bytes(&wanted) {
                    Ok(envs) => {
                        for e in envs {
                            size += e.len();
                            out.push(e);
                            if size >= TARGET_BATCH_BYTES {
                                break;
                            }
                        }
                    }
                    Err(e) => return SyncResponse::Refused(format!("store: {e}")),
                }
                let sent = out.len() as u64;
                self.peer_status(peer, |p| p.envelopes_sent += sent);
                SyncResponse::Envelopes(out)
            }
            SyncRequest::Push(envelopes) => {
                let got = self.ingest(peer, envelopes);
                SyncResponse::Ack {
                    stored: u32::try_from(got.stored).unwrap_or(u32::MAX),
                }
            }
        }
    }

    /// An unadmitted peer may push certificates once; nothing else.
    fn serve_probation(&mut self, peer: &PeerId, request: SyncRequest) -> SyncResponse {
        let refused = || SyncResponse::Refused("not an admitted node of this network".into());
        let SyncRequest::Push(envelopes) = request else {
            return refused();
        };
        let Some((_, pushed)) = self.probation.get_mut(peer) else {
            return refused();
        };
        let only_certificates = envelopes.len() <= MAX_PROBATION_CERTIFICATES
            && envelopes.iter().all(|e| {
                matches!(
                    gatehouse_protocol::envelope::Envelope::decode(e).map(|e| e.kind()),
                    Ok(gatehouse_protocol::envelope::EnvelopeKind::Certificate)
                )
            });
        if *pushed || !only_certificates {
            return refused();
        }
        *pushed = true;
        let got = self.ingest(peer, envelopes);
        if self.admitted.contains_key(peer) {
            self.admit_probationer(*peer);
        }
        SyncResponse::Ack {
            stored: u32::try_from(got.stored).unwrap_or(u32::MAX),
        }
    }

    fn on_response(&mut self, peer: PeerId, purpose: Purpose, response: SyncResponse) {
        if let Some(s) = self.sessions.get_mut(&peer) {
            s.outstanding = s.outstanding.saturating_sub(1);
        }
        match (purpose, response) {
            (_, SyncResponse::Refused(reason)) => {
                tracing::info!(%peer, "peer refused sync: {reason}");
                self.sessions.remove(&peer);
                return;
            }
            (Purpose::Reconcile, SyncResponse::Reconcile(reply)) => {
                let mut next = None;
                if let Some(bytes) = reply {
                    let step = ReconcileMessage::decode(&bytes)
                        .map_err(|e| e.to_string())
                        .and_then(|m| {
                            let ids = self.lib().envelope_ids().map_err(|e| e.to_string())?;
                            Reconciler::new(&ids).respond(&m).map_err(|e| e.to_string())
                        });
                    match step {
                        Ok(step) => {
                            if let Some(s) = self.sessions.get_mut(&peer) {
                                s.need.extend(step.need);
                                s.offer.extend(step.offer);
                            }
                            next = step.reply;
                        }
                        Err(e) => {
                            tracing::warn!(%peer, "reconcile failed: {e}");
                            self.sessions.remove(&peer);
                            return;
                        }
                    }
                }
                match next {
                    Some(m) => {
                        self.send(peer, SyncRequest::Reconcile(m.encode()), Purpose::Reconcile)
                    }
                    None => self.transfer(peer),
                }
            }
            (Purpose::Fetch(asked), SyncResponse::Envelopes(envs)) => {
                let got: BTreeSet<EnvelopeId> = envs.iter().map(|b| EnvelopeId::of(b)).collect();
                self.ingest(&peer, envs);
                // Ask again for what did not fit in the response.
                let rest: Vec<EnvelopeId> =
                    asked.into_iter().filter(|i| !got.contains(i)).collect();
                if !rest.is_empty() && !got.is_empty() {
                    self.send(peer, SyncRequest::Fetch(rest.clone()), Purpose::Fetch(rest));
                }
            }
            (Purpose::Push(n), SyncResponse::Ack { .. }) => {
                self.peer_status(&peer, |p| p.envelopes_sent += n as u64);
            }
            _ => tracing::warn!(%peer, "unexpected sync response"),
        }
        self.maybe_finish(peer);
    }

    /// After reconciliation: fetch what we lack, push what they lack.
    fn transfer(&mut self, peer: PeerId) {
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        session.reconciled = true;
        let need: Vec<EnvelopeId> = std::mem::take(&mut session.need).into_iter().collect();
        let offer: Vec<EnvelopeId> = std::mem::take(&mut session.offer).into_iter().collect();
        for chunk in need.chunks(MAX_FETCH_IDS) {
            self.send(
                peer,
                SyncRequest::Fetch(chunk.to_vec()),
                Purpose::Fetch(chunk.to_vec()),
            );
        }
        for chunk in offer.chunks(MAX_FETCH_IDS) {
            let envs = match self.lib().envelope_bytes(chunk) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!("cannot read envelopes to push: {e}");
                    continue;
                }
            };
            let mut batch = Vec::new();
            let mut size = 0;
            for e in envs {
                size += e.len();
                batch.push(e);
                if size >= TARGET_BATCH_BYTES {
                    let n = batch.len();
                    self.send(
                        peer,
                        SyncRequest::Push(std::mem::take(&mut batch)),
                        Purpose::Push(n),
                    );
                    size = 0;
                }
            }
            if !batch.is_empty() {
                let n = batch.len();
                self.send(peer, SyncRequest::Push(batch), Purpose::Push(n));
            }
        }
        self.maybe_finish(peer);
    }

    fn maybe_finish(&mut self, peer: PeerId) {
        let done = self
            .sessions
            .get(&peer)
            .is_some_and(|s| s.reconciled && s.outstanding == 0);
        if done {
            self.sessions.remove(&peer);
            let now = now_ms();
            self.peer_status(&peer, |p| p.last_sync_ms = Some(now));
            self.set_status(|s| s.last_sync_ms = Some(now));
            let addresses: Vec<String> = lock(&self.status)
                .peers
                .get(&peer.to_string())
                .map(|p| p.addresses.iter().cloned().collect())
                .unwrap_or_default();
            if let Err(e) = self.lib().record_sync(&peer.to_string(), &addresses, now) {
                tracing::warn!("cannot record the sync: {e}");
            }
        }
    }
}

#[derive(Default)]
struct Ingested {
    stored: usize,
    duplicates: usize,
    accepted: usize,
    forged: u32,
}
