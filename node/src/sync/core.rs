//! The sync state machine of one node: connected peers and their
//! admission, sessions, gossip verdicts, forgery scoring and redials.
//! See the module documentation of [`crate::sync`] for the protocol.

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_protocol::envelope::{Envelope, EnvelopeKind};
use gatehouse_protocol::id::EnvelopeId;
use gatehouse_protocol::key::PublicKey;
use gatehouse_protocol::reconcile::{Message as ReconcileMessage, Reconciler};
use gatehouse_protocol::sync::{
    MAX_ENVELOPES_PER_MESSAGE, MAX_FETCH_IDS, MAX_URGENT_IDS, SyncRequest, SyncResponse,
    TARGET_BATCH_BYTES,
};
use serde::{Deserialize, Serialize};

use super::admission::MAX_PROOF_CERTIFICATES;
use super::session::{Purpose, Session, WINDOW};
use super::{EnvelopeSet, Ingested, Input, MessageId, Output, RequestId, Verdict};

/// Default time between reconciliations with a peer.
pub const RECONCILE_EVERY_MS: u64 = 60_000;
/// Default time an unadmitted peer may stay connected to prove its admission.
pub const PROBATION_MS: u64 = 10_000;
/// How long the side that does not start sessions waits, after connecting
/// to a peer it admits, for that peer's session before sending its own
/// admission proof (the peer may not know this node yet); at most half the
/// probation, so the proof arrives before the peer gives up on it.
pub const PROOF_GRACE_MS: u64 = 2_000;
/// Most fetched or pushed envelopes held back, waiting for the next batch
/// of a fetch (or the pushes already arrived) to be stored with them,
/// before they are stored anyway.
pub const MAX_HELD_ENVELOPES: usize = 1_024;
/// Most bytes of envelopes held back so.
pub const MAX_HELD_BYTES: usize = 4 * 1024 * 1024;
/// What a node answers a request from a peer it does not admit.
pub const NOT_ADMITTED: &str = "not an admitted node of this network";
/// How often a peer's clock is asked again (clocks drift slowly).
pub const CLOCK_EVERY_MS: u64 = 5 * 60_000;
/// Forged envelopes tolerated from one peer before it is disconnected.
pub const MAX_FORGED_PER_PEER: u32 = 3;
/// How long a peer disconnected for forgeries is refused.
pub const BAN_MS: u64 = 10 * 60_000;
/// How long a peer refused admission is refused again (it may be admitted
/// meanwhile, by certificates that reach this node another way).
pub const REFUSE_MS: u64 = 60_000;
/// First wait before redialling an address.
pub const REDIAL_MIN_MS: u64 = 1_000;
/// Longest wait between redials of an address.
pub const MAX_REDIAL_BACKOFF_MS: u64 = 300_000;
/// Most addresses kept for redialling.
pub const MAX_REDIAL_ADDRESSES: usize = 1_024;
/// Most peers remembered as banned.
pub const MAX_BANNED: usize = 1_024;
/// How soon a failed session is tried again.
pub const SESSION_RETRY_MS: u64 = 10_000;
/// Most envelopes of one sync batch passed on by gossip.
pub const MAX_PASSED_ON: usize = 64;
/// Past this many envelopes to fetch, a session first asks the peer which
/// are urgent (a smaller catch-up arrives in one or two batches anyway).
pub const URGENT_ASK_OVER: usize = 32;
/// Most requests in flight to all peers together.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 4_096;

/// How the core behaves; the defaults are the node's.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Time between reconciliations with each peer this node dialled.
    pub reconcile_every_ms: u64,
    /// How long an unadmitted peer may stay connected to prove admission.
    pub probation_ms: u64,
    /// Forged envelopes tolerated from one peer.
    pub max_forged_per_peer: u32,
    /// How long a peer disconnected for forgeries is refused.
    pub ban_ms: u64,
    /// How long a peer refused admission is refused again.
    pub refuse_ms: u64,
    /// First wait before redialling an address.
    pub redial_min_ms: u64,
    /// Longest wait between redials.
    pub redial_max_ms: u64,
    /// Target size of one fetch response or push this node sends: smaller
    /// under an upload budget, so that each crosses a slow link well within
    /// a request's time limit.
    pub batch_bytes: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            reconcile_every_ms: RECONCILE_EVERY_MS,
            probation_ms: PROBATION_MS,
            max_forged_per_peer: MAX_FORGED_PER_PEER,
            ban_ms: BAN_MS,
            refuse_ms: REFUSE_MS,
            redial_min_ms: REDIAL_MIN_MS,
            redial_max_ms: MAX_REDIAL_BACKOFF_MS,
            batch_bytes: TARGET_BATCH_BYTES,
        }
    }
}

/// What one peer looks like from here.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PeerStats {
    /// Whether a connection is open.
    pub connected: bool,
    /// Whether the peer is an admitted node.
    pub admitted: bool,
    /// The establishment whose node it is.
    pub establishment: Option<String>,
    /// Addresses seen for it.
    pub addresses: BTreeSet<String>,
    /// When the last session with it completed (core clock, ms).
    pub last_sync_ms: Option<u64>,
    /// Envelopes stored here that came from it.
    pub envelopes_received: u64,
    /// Envelopes sent to it.
    pub envelopes_sent: u64,
    /// Forged or malformed envelopes it sent.
    pub forged: u32,
    /// Its clock less this node's, as last measured (ms; the midpoint of
    /// the exchange taken as the moment it answered).
    #[serde(default)]
    pub clock_offset_ms: Option<i64>,
    /// The round trip of that measurement (ms): the offset is right to
    /// within half of it.
    #[serde(default)]
    pub clock_rtt_ms: Option<u64>,
}

/// Counters and per-peer state, for status pages and the simulation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CoreStatus {
    /// Peers by node key.
    pub peers: BTreeMap<PublicKey, PeerStats>,
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
    /// When this node last completed a session with anyone.
    pub last_sync_ms: Option<u64>,
}

/// A connected peer.
#[derive(Debug)]
struct Peer {
    /// This side starts the sessions with it: the side with the lower key,
    /// whoever dialled, so that a pair with connections both ways (both
    /// dialled at once) runs one session, not two that move every envelope
    /// twice.
    initiator: bool,
    admitted: bool,
    /// When an unadmitted peer is disconnected.
    probation_until: Option<u64>,
    /// An unadmitted peer has used its one proof push.
    offered_proof: bool,
    /// Our proof push is in flight; a session waits for it.
    proving: bool,
    /// Our proof was sent on this connection.
    sent_proof: bool,
    /// When to send our proof if the peer has not shown by then that it
    /// admits this node (by starting a session with it); `None` once the
    /// proof is sent.
    proof_due_ms: Option<u64>,
    /// It proved its admission here on this connection (it may not know
    /// this node either).
    proved_itself: bool,
    /// A clock request to it is in flight.
    asking_clock: bool,
    /// When its clock was last asked (core clock, ms).
    clock_asked_ms: Option<u64>,
    session: Option<Session>,
    next_reconcile_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Redial {
    due_ms: u64,
    backoff_ms: u64,
    peer: Option<PublicKey>,
}

/// The sync state machine of one node.
pub struct SyncCore {
    config: SyncConfig,
    /// This node's key.
    me: PublicKey,
    rng: u64,
    admitted: BTreeMap<PublicKey, String>,
    peers: BTreeMap<PublicKey, Peer>,
    requests: BTreeMap<RequestId, (PublicKey, Purpose)>,
    next_request: RequestId,
    redial: BTreeMap<String, Redial>,
    banned: BTreeMap<PublicKey, u64>,
    status: CoreStatus,
    out: Vec<Output>,
    /// Fetched and pushed batches waiting for [`Input::Store`], by the peer
    /// that sent them, oldest first.
    fetched: Vec<(PublicKey, Vec<Vec<u8>>)>,
}

impl SyncCore {
    /// A core for the node holding `set`, its random source seeded with `seed`.
    pub fn new(config: SyncConfig, seed: u64, set: &dyn EnvelopeSet) -> Self {
        Self {
            config,
            me: set.node_key(),
            rng: seed,
            admitted: set.admitted(),
            peers: BTreeMap::new(),
            requests: BTreeMap::new(),
            next_request: 1,
            redial: BTreeMap::new(),
            banned: BTreeMap::new(),
            status: CoreStatus::default(),
            out: Vec::new(),
            fetched: Vec::new(),
        }
    }

    /// Counters and per-peer state.
    pub fn status(&self) -> &CoreStatus {
        &self.status
    }

    /// Envelopes that running sessions found missing here and have not
    /// fetched yet (a first sync's progress).
    pub fn to_fetch(&self) -> usize {
        self.peers
            .values()
            .filter_map(|p| p.session.as_ref())
            .map(|s| s.fetch.len())
            .sum()
    }

    /// The connected peers that are admitted.
    pub fn admitted_peers(&self) -> Vec<PublicKey> {
        self.peers
            .iter()
            .filter(|(_, p)| p.admitted)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Whether a session with `peer` is running.
    pub fn in_session(&self, peer: &PublicKey) -> bool {
        self.peers.get(peer).is_some_and(|p| p.session.is_some())
    }

    /// The earliest time something is due (a probation ending, a
    /// reconciliation, a proof to send, a redial), for shells that sleep
    /// until then.
    pub fn next_deadline(&self) -> Option<u64> {
        let peers = self.peers.values().flat_map(|p| {
            let reconcile =
                (p.admitted && p.session.is_none() && !p.proving).then_some(p.next_reconcile_ms);
            [p.probation_until, reconcile, p.proof_due_ms]
        });
        let redials = self.redial.values().filter_map(|r| {
            let connected = r.peer.is_some_and(|k| self.peers.contains_key(&k));
            (!connected).then_some(r.due_ms)
        });
        peers.flatten().chain(redials).min()
    }

    /// Handles one input at time `now_ms`; returns what the shell must do.
    pub fn handle(&mut self, input: Input, now_ms: u64, set: &mut dyn EnvelopeSet) -> Vec<Output> {
        match input {
            Input::Connected {
                peer,
                address,
                dialer,
                named,
            } => self.connected(peer, address, (dialer, named), now_ms, set),
            Input::Disconnected { peer } => self.disconnected(peer),
            Input::Discovered { peer, address } => {
                if self.admitted.contains_key(&peer) && !self.peers.contains_key(&peer) {
                    self.out.push(Output::Dial { address });
                }
            }
            Input::Remember { address } => {
                if self.redial.len() < MAX_REDIAL_ADDRESSES {
                    let min = self.config.redial_min_ms;
                    self.redial.entry(address).or_insert(Redial {
                        due_ms: now_ms,
                        backoff_ms: min,
                        peer: None,
                    });
                }
            }
            Input::Request {
                peer,
                inbound,
                request,
            } => {
                let response = self.serve(peer, request, now_ms, set);
                self.out.push(Output::Respond { inbound, response });
            }
            Input::Response { request, response } => {
                if let Some((peer, purpose)) = self.requests.remove(&request) {
                    self.on_response(peer, purpose, response, now_ms, set);
                }
            }
            Input::RequestFailed { request } => {
                if let Some((peer, purpose)) = self.requests.remove(&request) {
                    self.on_failure(peer, purpose, now_ms, set);
                }
                // A batch held for the next may wait for nothing now.
                if !self.fetched.is_empty() {
                    self.out.push(Output::Store);
                }
            }
            Input::Gossip {
                from,
                message,
                bytes,
            } => self.on_gossip(from, message, bytes, now_ms, set),
            Input::Publish { envelopes } => {
                self.out
                    .extend(envelopes.into_iter().map(|bytes| Output::Publish { bytes }));
            }
            Input::TrustChanged => self.refresh_admitted(now_ms, set),
            Input::ReconcileNow => {
                let peers = self.admitted_peers();
                for peer in peers {
                    self.request_session(peer, now_ms, set);
                }
            }
            Input::Store => self.store_fetched(false, now_ms, set),
            Input::Tick => {
                self.store_fetched(true, now_ms, set);
                self.tick(now_ms, set);
            }
        }
        std::mem::take(&mut self.out)
    }

    fn random(&mut self) -> u64 {
        // splitmix64: small, fast, and enough for jitter.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// How long until the next session with a peer: a reconcile interval
    /// for the initiator; for the other side, twice that, put off again
    /// whenever the initiator's session reaches it, so that it starts one
    /// only if the initiator does not (a peer of an earlier version, which
    /// starts sessions only when it dialled).
    fn reconcile_wait(&mut self, initiator: bool) -> u64 {
        let every = self.config.reconcile_every_ms;
        self.jittered(if initiator {
            every
        } else {
            every.saturating_mul(2)
        })
    }

    /// `ms` plus up to a tenth more, so that many nodes do not act in step.
    fn jittered(&mut self, ms: u64) -> u64 {
        let spread = (ms / 10).max(1);
        ms + self.random() % spread
    }

    fn stats(&mut self, peer: &PublicKey) -> &mut PeerStats {
        self.status.peers.entry(*peer).or_default()
    }

    fn connected(
        &mut self,
        peer: PublicKey,
        address: String,
        (dialer, named): (bool, bool),
        now_ms: u64,
        set: &mut dyn EnvelopeSet,
    ) {
        if self.banned.get(&peer).is_some_and(|until| *until > now_ms) {
            self.out.push(Output::Disconnect { peer });
            return;
        }
        if let Some(r) = self.redial.get_mut(&address) {
            r.peer = Some(peer);
        }
        let initiator = self.me < peer;
        let first_reconcile = now_ms + self.reconcile_wait(initiator);
        self.peers.insert(
            peer,
            Peer {
                initiator,
                admitted: false,
                probation_until: None,
                offered_proof: false,
                proving: false,
                sent_proof: false,
                proof_due_ms: None,
                proved_itself: false,
                asking_clock: false,
                clock_asked_ms: None,
                session: None,
                next_reconcile_ms: first_reconcile,
            },
        );
        let stats = self.stats(&peer);
        stats.connected = true;
        stats.addresses.insert(address);
        if self.admitted.contains_key(&peer) {
            self.admit(peer, now_ms, set);
        } else {
            tracing::info!(%peer, "peer is not an admitted node; on probation");
            let until = now_ms + self.config.probation_ms;
            if let Some(p) = self.peers.get_mut(&peer) {
                p.probation_until = Some(until);
            }
            self.out.push(Output::Barred { peer });
            // A peer this node cannot judge yet is sent nothing, except
            // this node's own admission proof when this node dialled an
            // address naming that peer's key (its operator chose that
            // node; Noise proved the key): a stranger who merely holds an
            // address, or who dials in, learns nothing. A peer that knows
            // this node proves itself, and is sent this node's proof in
            // turn (`admit`).
            if dialer && named {
                self.send_proof(peer, now_ms, set);
            }
        }
    }

    /// Sends the chain that admits this node's key, once per connection; a
    /// session waits for its answer.
    fn send_proof(&mut self, peer: PublicKey, now_ms: u64, set: &mut dyn EnvelopeSet) {
        let proof = set.admission_proof();
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.sent_proof = true;
        p.proof_due_ms = None;
        if proof.is_empty() {
            self.proved(peer, now_ms, set);
            return;
        }
        p.proving = true;
        self.send(peer, SyncRequest::Push(proof), Purpose::Proof);
    }

    /// Lets a connected peer in: gossip, then a session if this side starts
    /// them. Certificates are reconciled like every other envelope, so a
    /// peer that knows this node is not sent its admission proof: the
    /// proof goes only where it is missing, which shows as a session or
    /// clock request (the clock is asked on admission) refused as
    /// [`NOT_ADMITTED`], as a proof pushed by the peer (it pushes one only
    /// to a node it does not know), or, on the side that does not start
    /// sessions, as no session from the peer within [`PROOF_GRACE_MS`].
    fn admit(&mut self, peer: PublicKey, now_ms: u64, set: &mut dyn EnvelopeSet) {
        let establishment = self.admitted.get(&peer).cloned();
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.admitted = true;
        p.probation_until = None;
        let initiator = p.initiator;
        // Only an admitted peer resets its address's backoff: one that is
        // refused on every connection is redialled ever more slowly.
        let min = self.config.redial_min_ms;
        for r in self.redial.values_mut().filter(|r| r.peer == Some(peer)) {
            r.backoff_ms = min;
        }
        let stats = self.stats(&peer);
        stats.admitted = true;
        stats.establishment = establishment;
        self.out.push(Output::Admitted { peer });
        let grace = PROOF_GRACE_MS.min(self.config.probation_ms / 2);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.proved_itself && !p.sent_proof {
            // It proved itself here, so it may well not know this node.
            self.send_proof(peer, now_ms, set);
        } else if initiator {
            if !p.proving && p.session.is_none() {
                self.start_session(peer, now_ms, set);
            }
        } else if !p.sent_proof {
            p.proof_due_ms = Some(now_ms + grace);
        }
        self.ask_clock(peer, now_ms);
    }

    /// Asks an admitted peer its clock, unless a request is in flight or
    /// it was asked less than [`CLOCK_EVERY_MS`] ago.
    fn ask_clock(&mut self, peer: PublicKey, now_ms: u64) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let recent = p
            .clock_asked_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < CLOCK_EVERY_MS);
        if !p.admitted || p.asking_clock || recent {
            return;
        }
        if self.send(peer, SyncRequest::Clock, Purpose::Clock { sent_ms: now_ms })
            && let Some(p) = self.peers.get_mut(&peer)
        {
            p.asking_clock = true;
            p.clock_asked_ms = Some(now_ms);
        }
    }

    /// Records a peer's clock, answered at `now_ms` to a request sent at
    /// `sent_ms`.
    fn clock_answered(&mut self, peer: PublicKey, sent_ms: u64, now_ms: u64, theirs_ms: u64) {
        let rtt = now_ms.saturating_sub(sent_ms);
        let midpoint = sent_ms.saturating_add(rtt / 2);
        let offset = i64::try_from(i128::from(theirs_ms) - i128::from(midpoint)).unwrap_or(0);
        let stats = self.stats(&peer);
        stats.clock_offset_ms = Some(offset);
        stats.clock_rtt_ms = Some(rtt);
    }

    /// Refuses connections from `peer` until `until_ms`.
    fn ban(&mut self, peer: PublicKey, until_ms: u64) {
        if self.banned.len() < MAX_BANNED || self.banned.contains_key(&peer) {
            let until = self
                .banned
                .get(&peer)
                .map_or(until_ms, |t| until_ms.max(*t));
            self.banned.insert(peer, until);
        }
    }

    fn disconnected(&mut self, peer: PublicKey) {
        self.peers.remove(&peer);
        self.requests.retain(|_, (p, _)| *p != peer);
        self.stats(&peer).connected = false;
    }

    /// Queues a request; false when too many are in flight and it was
    /// dropped.
    fn send(&mut self, peer: PublicKey, message: SyncRequest, purpose: Purpose) -> bool {
        if self.requests.len() >= MAX_REQUESTS_IN_FLIGHT {
            tracing::warn!(%peer, "too many sync requests in flight; dropping one");
            return false;
        }
        let request = self.next_request;
        self.next_request += 1;
        if purpose.in_session()
            && let Some(s) = self.peers.get_mut(&peer).and_then(|p| p.session.as_mut())
        {
            s.in_flight += 1;
        }
        self.requests.insert(request, (peer, purpose));
        self.out.push(Output::Send {
            peer,
            request,
            message,
        });
        true
    }

    fn tick(&mut self, now_ms: u64, set: &mut dyn EnvelopeSet) {
        let expired: Vec<PublicKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.probation_until.is_some_and(|t| t <= now_ms))
            .map(|(k, _)| *k)
            .collect();
        let proof_due: Vec<PublicKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.proof_due_ms.is_some_and(|t| t <= now_ms))
            .map(|(k, _)| *k)
            .collect();
        for peer in proof_due {
            self.send_proof(peer, now_ms, set);
        }
        for peer in expired {
            tracing::info!(%peer, "refusing a peer that is not an admitted node");
            self.status.refused_connections += 1;
            self.ban(peer, now_ms + self.config.refuse_ms);
            if let Some(p) = self.peers.get_mut(&peer) {
                p.probation_until = None;
            }
            self.out.push(Output::Disconnect { peer });
        }
        let due: Vec<PublicKey> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.admitted && p.session.is_none() && !p.proving && p.next_reconcile_ms <= now_ms
            })
            .map(|(k, _)| *k)
            .collect();
        for peer in due {
            self.start_session(peer, now_ms, set);
        }
        self.banned.retain(|_, until| *until > now_ms);
        let connected: BTreeSet<PublicKey> = self.peers.keys().copied().collect();
        let due: Vec<(String, u64)> = self
            .redial
            .iter()
            .filter(|(_, r)| !r.peer.is_some_and(|k| connected.contains(&k)) && r.due_ms <= now_ms)
            .map(|(a, r)| (a.clone(), r.backoff_ms))
            .collect();
        for (address, backoff_ms) in due {
            let wait = self.jittered(backoff_ms);
            let max = self.config.redial_max_ms;
            if let Some(r) = self.redial.get_mut(&address) {
                r.due_ms = now_ms + wait;
                r.backoff_ms = backoff_ms.saturating_mul(2).min(max);
            }
            self.out.push(Output::Dial { address });
        }
    }

    /// Recomputes who is admitted after certificates arrived: newly
    /// admitted connected peers are let in, peers no longer admitted (a
    /// revocation) are disconnected.
    fn refresh_admitted(&mut self, now_ms: u64, set: &mut dyn EnvelopeSet) {
        self.admitted = set.admitted();
        let connected: Vec<(PublicKey, bool)> =
            self.peers.iter().map(|(k, p)| (*k, p.admitted)).collect();
        for (peer, was) in connected {
            let is = self.admitted.contains_key(&peer);
            if is && !was {
                self.admit(peer, now_ms, set);
            } else if was && !is {
                tracing::info!(%peer, "peer is no longer admitted; disconnecting");
                // Served nothing more while the connection closes.
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.admitted = false;
                    p.session = None;
                }
                self.stats(&peer).admitted = false;
                self.out.push(Output::Barred { peer });
                self.out.push(Output::Disconnect { peer });
            }
        }
    }

    /// Counts what a peer's envelopes came to; a peer past the forgery
    /// limit is disconnected and refused for a while.
    fn account(&mut self, peer: PublicKey, got: &Ingested, now_ms: u64, set: &mut dyn EnvelopeSet) {
        let max = self.config.max_forged_per_peer;
        let stats = self.stats(&peer);
        stats.envelopes_received += got.stored as u64;
        stats.forged += got.forged;
        let forged = stats.forged;
        self.status.refused_received += u64::from(got.refused);
        if got.forged > 0 {
            self.status.forged_received += u64::from(got.forged);
            if forged >= max {
                tracing::warn!(%peer, "disconnecting a peer that sent {forged} forged envelopes");
                self.ban(peer, now_ms + self.config.ban_ms);
                self.out.push(Output::Disconnect { peer });
            }
        }
        if got.certificates {
            self.refresh_admitted(now_ms, set);
        }
    }

    /// Gossips on a few envelopes that reached this node by sync rather
    /// than by gossip (a site back from weeks offline, or one whose
    /// gossip was lost), so news spreads in seconds rather than one hop per
    /// reconcile interval. A bulk catch-up is not passed on: whoever lacks
    /// it gets it by sync too.
    fn pass_on(&mut self, got: &Ingested, set: &mut dyn EnvelopeSet) {
        if got.in_effect.is_empty() || got.in_effect.len() > MAX_PASSED_ON {
            return;
        }
        match set.bytes(&got.in_effect) {
            Ok(envelopes) => self
                .out
                .extend(envelopes.into_iter().map(|bytes| Output::Publish { bytes })),
            Err(e) => tracing::warn!("cannot read envelopes to pass on: {e}"),
        }
    }

    /// Answers a peer's request.
    fn serve(
        &mut self,
        peer: PublicKey,
        request: SyncRequest,
        now_ms: u64,
        set: &mut dyn EnvelopeSet,
    ) -> SyncResponse {
        let admitted = self.peers.get(&peer).is_some_and(|p| p.admitted);
        if !admitted {
            return self.serve_probation(peer, request, now_ms, set);
        }
        // The side that does not start sessions measures when served.
        self.ask_clock(peer, now_ms);
        if let Some(p) = self.peers.get_mut(&peer)
            && p.proof_due_ms.is_some()
        {
            if matches!(request, SyncRequest::Push(_)) {
                // A push before any session: the peer's proof, sent
                // because it does not know this node.
                self.send_proof(peer, now_ms, set);
            } else {
                // A session from the peer: it admits this node.
                p.proof_due_ms = None;
            }
        }
        // While the peer's session fetches, pushes or classifies (a first
        // sync can take minutes), this side does not start one of its own:
        // two sessions would move every envelope twice.
        if matches!(
            request,
            SyncRequest::Fetch(_) | SyncRequest::Urgent(_) | SyncRequest::Push(_)
        ) {
            let wait = self.reconcile_wait(false);
            if let Some(p) = self.peers.get_mut(&peer)
                && !p.initiator
            {
                p.next_reconcile_ms = p.next_reconcile_ms.max(now_ms + wait);
            }
        }
        match request {
            SyncRequest::Reconcile(bytes) => {
                let message = match ReconcileMessage::decode(&bytes) {
                    Ok(m) => m,
                    Err(e) => return SyncResponse::Refused(format!("bad reconcile message: {e}")),
                };
                let ids = match set.ids() {
                    Ok(ids) => ids,
                    Err(e) => return SyncResponse::Refused(format!("store: {e}")),
                };
                match Reconciler::over(ids).respond(&message) {
                    Ok(step) => {
                        // The peer runs a session with this node: it is
                        // this node's reconciliation too, and this side
                        // need not start one of its own.
                        self.synced(peer, now_ms);
                        let wait = self.reconcile_wait(false);
                        if let Some(p) = self.peers.get_mut(&peer)
                            && !p.initiator
                        {
                            p.next_reconcile_ms = now_ms + wait;
                        }
                        SyncResponse::Reconcile(step.reply.map(|m| m.encode()))
                    }
                    Err(e) => SyncResponse::Refused(format!("reconcile: {e}")),
                }
            }
            SyncRequest::Fetch(ids) => {
                let wanted: Vec<EnvelopeId> = ids.into_iter().take(MAX_FETCH_IDS).collect();
                let envelopes = match set.bytes(&wanted) {
                    Ok(e) => e,
                    Err(e) => return SyncResponse::Refused(format!("store: {e}")),
                };
                let mut out = Vec::new();
                let mut size = 0;
                for e in envelopes {
                    size += e.len();
                    out.push(e);
                    if size >= self.config.batch_bytes {
                        break;
                    }
                }
                self.stats(&peer).envelopes_sent += out.len() as u64;
                SyncResponse::Envelopes(out)
            }
            SyncRequest::Push(envelopes) => {
                // Held like a fetched batch and stored on `Input::Store`:
                // by then the shell has handed out the events already
                // waiting, so the pushes of a session that arrived
                // together (it sends a window of them) are stored
                // together, in one durable step.
                let new = match set.ids() {
                    Ok(held) => envelopes
                        .iter()
                        .filter(|b| !held.contains(&EnvelopeId::of(b)))
                        .count(),
                    Err(_) => envelopes.len(),
                };
                self.fetched.push((peer, envelopes));
                if self.held_over_caps() {
                    self.store_fetched(true, now_ms, set);
                } else {
                    self.out.push(Output::Store);
                }
                SyncResponse::Ack {
                    stored: u32::try_from(new).unwrap_or(u32::MAX),
                }
            }
            SyncRequest::Clock => SyncResponse::Clock { now_ms },
            SyncRequest::Urgent(ids) => SyncResponse::Urgent(set.urgent_among(&ids)),
        }
    }

    /// The difference with `peer` is known: what it lacks is sent urgent
    /// first, and, when there is more to fetch than one request holds, the
    /// peer is asked which of it is urgent, to fetch that first.
    fn reconciled(&mut self, peer: PublicKey, set: &dyn EnvelopeSet) {
        let Some(s) = self.session(&peer) else {
            return;
        };
        s.reconciled = true;
        let push: Vec<EnvelopeId> = s.push.iter().copied().collect();
        let ask: Vec<EnvelopeId> = if s.fetch.len() > URGENT_ASK_OVER {
            s.fetch.iter().take(MAX_URGENT_IDS).copied().collect()
        } else {
            Vec::new()
        };
        let urgent = set.urgent_among(&push);
        if let Some(s) = self.session(&peer) {
            s.put_first(&urgent, false);
            if !ask.is_empty() {
                s.classifying = true;
            }
        }
        if !ask.is_empty()
            && !self.send(peer, SyncRequest::Urgent(ask), Purpose::Urgent)
            && let Some(s) = self.session(&peer)
        {
            s.classifying = false;
        }
    }

    /// A peer on probation may push, once, certificates that admit its own
    /// key. They are checked before anything is stored: an outsider stores
    /// nothing here and is sent nothing.
    fn serve_probation(
        &mut self,
        peer: PublicKey,
        request: SyncRequest,
        now_ms: u64,
        set: &mut dyn EnvelopeSet,
    ) -> SyncResponse {
        let refused = || SyncResponse::Refused(NOT_ADMITTED.into());
        let Some(p) = self.peers.get_mut(&peer) else {
            return refused();
        };
        let SyncRequest::Push(envelopes) = request else {
            return refused();
        };
        if p.offered_proof {
            return refused();
        }
        p.offered_proof = true;
        // From the frame alone: nothing of a stranger's payload is decoded
        // before its signature is checked (`admit` opens each, once).
        let only_certificates = envelopes.len() <= MAX_PROOF_CERTIFICATES
            && envelopes
                .iter()
                .all(|e| Envelope::kind_of(e).is_ok_and(|k| k == EnvelopeKind::Certificate));
        let got = if only_certificates {
            set.admit(&peer, &envelopes)
        } else {
            None
        };
        let Some(got) = got else {
            tracing::info!(%peer, "refusing a peer whose certificates do not admit it");
            self.status.refused_connections += 1;
            self.ban(peer, now_ms + self.config.refuse_ms);
            self.out.push(Output::Disconnect { peer });
            return refused();
        };
        if let Some(p) = self.peers.get_mut(&peer) {
            p.proved_itself = true;
        }
        self.account(peer, &got, now_ms, set);
        SyncResponse::Ack {
            stored: u32::try_from(got.stored).unwrap_or(u32::MAX),
        }
    }

    /// Starts a session with `peer` now, or after the one running.
    fn request_session(&mut self, peer: PublicKey, now_ms: u64, set: &mut dyn EnvelopeSet) {
        match self.peers.get_mut(&peer) {
            Some(p) if p.session.is_some() || p.proving => {
                if let Some(s) = p.session.as_mut() {
                    s.again = true;
                }
            }
            Some(p) if p.admitted => self.start_session(peer, now_ms, set),
            _ => {}
        }
    }

    fn start_session(&mut self, peer: PublicKey, now_ms: u64, set: &mut dyn EnvelopeSet) {
        let ids = match set.ids() {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!("cannot list envelopes: {e}");
                return;
            }
        };
        let opening = Reconciler::over(ids).initiate().encode();
        let initiator = self.peers.get(&peer).is_some_and(|p| p.initiator);
        let next = now_ms + self.reconcile_wait(initiator);
        // Clocks drift: each session measures again.
        self.ask_clock(peer, now_ms);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.session = Some(Session::default());
        p.next_reconcile_ms = next;
        self.send(peer, SyncRequest::Reconcile(opening), Purpose::Reconcile);
    }

    fn end_session(&mut self, peer: PublicKey) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.session = None;
        }
    }

    /// Ends a session that failed (a request lost or refused) and tries
    /// again soon rather than a whole reconcile interval later.
    fn session_failed(&mut self, peer: PublicKey, now_ms: u64) {
        let retry = now_ms + self.jittered(SESSION_RETRY_MS);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.session = None;
            p.next_reconcile_ms = p.next_reconcile_ms.min(retry);
        }
    }

    fn session(&mut self, peer: &PublicKey) -> Option<&mut Session> {
        self.peers.get_mut(peer).and_then(|p| p.session.as_mut())
    }

    fn on_response(
        &mut self,
        peer: PublicKey,
        purpose: Purpose,
        response: SyncResponse,
        now_ms: u64,
        set: &mut dyn EnvelopeSet,
    ) {
        if !self.peers.contains_key(&peer) {
            return;
        }
        if purpose.in_session()
            && let Some(s) = self.session(&peer)
        {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        if let Purpose::Clock { sent_ms } = purpose {
            let answered = matches!(response, SyncResponse::Clock { .. });
            if let Some(p) = self.peers.get_mut(&peer) {
                p.asking_clock = false;
                // Refused (this node still on probation there): ask again
                // at the next chance rather than minutes later.
                if !answered {
                    p.clock_asked_ms = None;
                }
            }
            match response {
                SyncResponse::Clock { now_ms: theirs } => {
                    self.clock_answered(peer, sent_ms, now_ms, theirs);
                }
                // The peer does not know this node: the clock asked on
                // admission finds that out in one round trip, sooner than
                // the side that does not start sessions would by waiting.
                SyncResponse::Refused(reason)
                    if reason == NOT_ADMITTED
                        && self.peers.get(&peer).is_some_and(|p| !p.sent_proof) =>
                {
                    self.send_proof(peer, now_ms, set);
                }
                _ => {}
            }
            return;
        }
        match (purpose, response) {
            (Purpose::Proof, response) => {
                if let SyncResponse::Refused(reason) = &response {
                    tracing::info!(%peer, "peer refused our admission proof: {reason}");
                }
                self.proved(peer, now_ms, set);
                return;
            }
            (_, SyncResponse::Refused(reason)) => {
                let unproved = self.peers.get(&peer).is_some_and(|p| !p.sent_proof);
                if reason == NOT_ADMITTED && unproved {
                    // The peer does not know this node yet: prove it, and
                    // the session starts again once the proof is answered.
                    tracing::debug!(%peer, "peer does not know this node; sending our proof");
                    self.end_session(peer);
                    self.send_proof(peer, now_ms, set);
                } else {
                    tracing::info!(%peer, "peer refused sync: {reason}");
                    self.session_failed(peer, now_ms);
                }
                return;
            }
            (Purpose::Reconcile, SyncResponse::Reconcile(reply)) => {
                let mut next = None;
                if let Some(bytes) = reply {
                    let step = ReconcileMessage::decode(&bytes)
                        .map_err(|e| e.to_string())
                        .and_then(|m| {
                            let ids = set.ids()?;
                            Reconciler::over(ids).respond(&m).map_err(|e| e.to_string())
                        });
                    match step {
                        Ok(step) => {
                            if let Some(s) = self.session(&peer) {
                                s.learn(step.need, step.offer);
                            }
                            next = step.reply;
                        }
                        Err(e) => {
                            tracing::warn!(%peer, "reconcile failed: {e}");
                            self.end_session(peer);
                            return;
                        }
                    }
                }
                match next {
                    Some(m) => {
                        self.send(peer, SyncRequest::Reconcile(m.encode()), Purpose::Reconcile);
                    }
                    None => self.reconciled(peer, set),
                }
            }
            (Purpose::Fetch(asked), SyncResponse::Envelopes(envelopes)) => {
                let got: BTreeSet<EnvelopeId> =
                    envelopes.iter().map(|b| EnvelopeId::of(b)).collect();
                // Ask again for what did not fit in the response (what the
                // peer sent nothing of, it no longer serves).
                let rest: Vec<EnvelopeId> =
                    asked.into_iter().filter(|i| !got.contains(i)).collect();
                if !rest.is_empty()
                    && !got.is_empty()
                    && let Some(s) = self.session(&peer)
                {
                    s.refetch(rest);
                }
                // What is left to fetch is asked for before this batch is
                // stored, and the batch held back: stored once the shell
                // has sent those requests, so the next batch crosses
                // meanwhile, or, when the next is about to arrive, stored
                // with it (one durable step for both).
                self.fetched.push((peer, envelopes));
                // Only when there is more to ask: with nothing in flight,
                // pumping could end the session before the batch is stored.
                if self.session(&peer).is_some_and(|s| !s.fetch.is_empty()) {
                    self.pump(peer, now_ms, set);
                }
                if self.fetching_from(&peer) {
                    self.out.push(Output::Store);
                    return;
                }
                // The last of the fetch: stored before the session can end.
                self.store_fetched(true, now_ms, set);
            }
            (Purpose::Push(n), SyncResponse::Ack { .. }) => {
                self.stats(&peer).envelopes_sent += n as u64;
            }
            (Purpose::Urgent, SyncResponse::Urgent(urgent)) => {
                if let Some(s) = self.session(&peer) {
                    s.classifying = false;
                    s.put_first(&urgent, true);
                }
            }
            _ => {
                tracing::warn!(%peer, "unexpected sync response");
                self.end_session(peer);
                return;
            }
        }
        self.pump(peer, now_ms, set);
    }

    /// Whether a fetch request to `peer` is waiting for its answer.
    fn fetching_from(&self, peer: &PublicKey) -> bool {
        self.requests
            .values()
            .any(|(p, purpose)| p == peer && matches!(purpose, Purpose::Fetch(_)))
    }

    /// Stores the fetched batches held back, each peer's together: now
    /// when `force`d, else unless every one of them has a fetch from its
    /// peer about to arrive and together they are under
    /// [`MAX_HELD_ENVELOPES`] and [`MAX_HELD_BYTES`].
    fn store_fetched(&mut self, force: bool, now_ms: u64, set: &mut dyn EnvelopeSet) {
        if self.fetched.is_empty() {
            return;
        }
        let waiting = self.fetched.iter().all(|(p, _)| self.fetching_from(p));
        if !force && waiting && !self.held_over_caps() {
            return;
        }
        let mut by_peer: Vec<(PublicKey, Vec<Vec<u8>>)> = Vec::new();
        for (peer, envelopes) in std::mem::take(&mut self.fetched) {
            match by_peer.iter_mut().find(|(p, _)| *p == peer) {
                Some((_, all)) => all.extend(envelopes),
                None => by_peer.push((peer, envelopes)),
            }
        }
        for (peer, envelopes) in by_peer {
            let result = set.ingest(envelopes, false);
            self.account(peer, &result, now_ms, set);
            self.pass_on(&result, set);
        }
    }

    /// Whether the batches held back reach [`MAX_HELD_ENVELOPES`] or
    /// [`MAX_HELD_BYTES`].
    fn held_over_caps(&self) -> bool {
        let count: usize = self.fetched.iter().map(|(_, b)| b.len()).sum();
        let bytes: usize = self.fetched.iter().flat_map(|(_, b)| b).map(Vec::len).sum();
        count >= MAX_HELD_ENVELOPES || bytes >= MAX_HELD_BYTES
    }

    /// Our proof was answered (or not): the initiator's session can start.
    fn proved(&mut self, peer: PublicKey, now_ms: u64, set: &mut dyn EnvelopeSet) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.proving = false;
        if p.initiator && p.admitted && p.session.is_none() {
            self.start_session(peer, now_ms, set);
        }
    }

    fn on_failure(
        &mut self,
        peer: PublicKey,
        purpose: Purpose,
        now_ms: u64,
        set: &mut dyn EnvelopeSet,
    ) {
        tracing::debug!(%peer, ?purpose, "sync request failed");
        match purpose {
            // A peer of an earlier version has no clock to tell.
            Purpose::Clock { .. } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.asking_clock = false;
                }
            }
            Purpose::Proof => self.proved(peer, now_ms, set),
            // A peer of an earlier version cannot say which are urgent:
            // everything is fetched in the order reconciliation found it.
            Purpose::Urgent => {
                if let Some(s) = self.session(&peer) {
                    s.in_flight = s.in_flight.saturating_sub(1);
                    s.classifying = false;
                }
                self.pump(peer, now_ms, set);
            }
            _ => self.session_failed(peer, now_ms),
        }
    }

    /// Sends the session's next fetches and pushes, keeping at most
    /// [`WINDOW`] in flight; finishes the session when all are done.
    fn pump(&mut self, peer: PublicKey, now_ms: u64, set: &mut dyn EnvelopeSet) {
        loop {
            let Some(s) = self.session(&peer) else {
                return;
            };
            if !s.reconciled || s.classifying || s.in_flight >= WINDOW {
                break;
            }
            if !s.fetch.is_empty() {
                let ids = s.next_fetch(MAX_FETCH_IDS);
                self.send(peer, SyncRequest::Fetch(ids.clone()), Purpose::Fetch(ids));
                continue;
            }
            if s.push.is_empty() {
                break;
            }
            let ids = s.next_push_candidates(MAX_ENVELOPES_PER_MESSAGE);
            let envelopes = match set.bytes(&ids) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!("cannot read envelopes to push: {e}");
                    self.end_session(peer);
                    return;
                }
            };
            if envelopes.is_empty() {
                // None of them is held any more: nothing to send.
                continue;
            }
            let mut batch = Vec::new();
            let mut size = 0;
            let mut taken = 0;
            for e in envelopes {
                if !batch.is_empty() && size + e.len() > self.config.batch_bytes {
                    break;
                }
                size += e.len();
                taken += 1;
                batch.push(e);
            }
            if let Some(s) = self.session(&peer) {
                s.give_back_push(ids.into_iter().skip(taken).collect());
            }
            if batch.is_empty() {
                continue;
            }
            let n = batch.len();
            self.send(peer, SyncRequest::Push(batch), Purpose::Push(n));
        }
        self.maybe_finish(peer, now_ms, set);
    }

    /// Records a completed reconciliation with `peer`, on either side.
    fn synced(&mut self, peer: PublicKey, now_ms: u64) {
        let stats = self.stats(&peer);
        stats.last_sync_ms = Some(now_ms);
        let addresses = stats.addresses.iter().cloned().collect();
        self.status.last_sync_ms = Some(now_ms);
        self.out.push(Output::Synced {
            peer,
            addresses,
            at_ms: now_ms,
        });
    }

    fn maybe_finish(&mut self, peer: PublicKey, now_ms: u64, set: &mut dyn EnvelopeSet) {
        let done = self
            .peers
            .get(&peer)
            .and_then(|p| p.session.as_ref())
            .is_some_and(Session::is_done);
        if !done {
            return;
        }
        let again = self
            .peers
            .get_mut(&peer)
            .and_then(|p| p.session.take())
            .is_some_and(|s| s.again);
        self.synced(peer, now_ms);
        if again {
            self.start_session(peer, now_ms, set);
        }
    }

    fn on_gossip(
        &mut self,
        from: PublicKey,
        message: MessageId,
        bytes: Vec<u8>,
        now_ms: u64,
        set: &mut dyn EnvelopeSet,
    ) {
        let admitted = self.peers.get(&from).is_some_and(|p| p.admitted);
        let verdict = if admitted {
            let got = set.ingest(vec![bytes], true);
            self.status.gossip_received += 1;
            self.status.gossip_duplicates += got.duplicates as u64;
            self.account(from, &got, now_ms, set);
            match got {
                Ingested { forged: 1.., .. } => Verdict::Reject,
                Ingested { accepted: 1.., .. } => Verdict::Accept,
                _ => Verdict::Ignore,
            }
        } else {
            Verdict::Reject
        };
        self.out.push(Output::Verdict {
            message,
            from,
            verdict,
        });
    }
}
