//! Sync as a state machine: who may take part, what to send to whom, and
//! what a message from a peer means, with no IO of its own.
//!
//! [`SyncCore::handle`] takes one [`Input`] (a connection opened or closed,
//! a request or response, a gossip message, a timer tick) and the current
//! time, and returns the [`Output`]s the shell must carry out (send a
//! request, answer one, report a gossip verdict, dial, disconnect). Time and
//! randomness are inputs: the clock is the `now_ms` of each call and the
//! random source is seeded at construction, so the same inputs always give
//! the same outputs. The libp2p shell ([`crate::net`]) only moves bytes and
//! timers; the seeded simulation in `gatehouse-tests` runs hundreds of cores
//! in one process. The envelopes themselves are reached through
//! [`EnvelopeSet`], which the node implements over its library and the
//! simulation over a bare [`crate::replica::Replica`].
//!
//! One session at a time with a peer, driven by the side whose key is
//! lower, whoever dialled: two nodes that dial each other at once share
//! one session, not two that would each move every missing envelope.
//!
//! ```text
//!  initiator                                 the other
//!    | -- Push(admission proof) ------------>  |  proof checked in a scratch trust
//!    | <------------------------------ Ack --  |  view; stored only if it admits
//!    | -- Reconcile(fingerprints) ---------->  |
//!    | <---------------- Reconcile(reply) ---  |  ... until the difference is known
//!    | -- Fetch(ids) / Push(envelopes) ----->  |  at most WINDOW requests in flight,
//!    | <------------ Envelopes / Ack --------  |  each at most TARGET_BATCH_BYTES
//! ```
//!
//! Nothing is sent to a peer this node does not consider admitted; a peer it
//! does not know is on probation: the one request served is a push of
//! certificates that, checked first without storing anything, admit the
//! peer's own key. Anything else is refused, and the peer is disconnected
//! when its probation ends. Envelopes that do not verify count against the
//! sender; past a limit it is disconnected and kept out for a while.

pub mod admission;
mod core;
pub mod replica_set;
mod session;

use std::collections::BTreeMap;

use gatehouse_protocol::id::EnvelopeId;
use gatehouse_protocol::key::PublicKey;
use gatehouse_protocol::reconcile::IdIndex;
use gatehouse_protocol::sync::{SyncRequest, SyncResponse};
use serde::Serialize;

pub use self::session::WINDOW;

pub use self::core::{
    BAN_MS, CoreStatus, MAX_FORGED_PER_PEER, MAX_REDIAL_BACKOFF_MS, PROBATION_MS, PeerStats,
    RECONCILE_EVERY_MS, SyncConfig, SyncCore,
};
pub use self::replica_set::BareReplica;

/// A request this node sent, as numbered by the core.
pub type RequestId = u64;
/// A request a peer sent, as numbered by the shell.
pub type InboundId = u64;
/// A gossip message received, as numbered by the shell.
pub type MessageId = u64;

/// What the core needs of the envelopes a node holds.
pub trait EnvelopeSet {
    /// The ids of every envelope held, as reconciliation answers from.
    fn ids(&mut self) -> Result<&IdIndex, String>;
    /// The bytes of those of `ids` held, in order.
    fn bytes(&self, ids: &[EnvelopeId]) -> Result<Vec<Vec<u8>>, String>;
    /// Verifies and stores envelopes that came from a peer. With `gossip`,
    /// derived state may catch up later (gossip arrives one at a time).
    fn ingest(&mut self, envelopes: Vec<Vec<u8>>, gossip: bool) -> Ingested;
    /// The node keys of admitted devices, with their establishment's name.
    fn admitted(&self) -> BTreeMap<PublicKey, String>;
    /// The certificates that admit this node's own key.
    fn admission_proof(&self) -> Vec<Vec<u8>>;
    /// This node's own key.
    fn node_key(&self) -> PublicKey;
    /// When the certificates `offered`, added to those held, admit `peer`:
    /// stores those of them that make its admission chain and are in
    /// effect, the only ones a peer on probation may have stored, each
    /// opened once. Otherwise `None`, and nothing is stored.
    fn admit(&mut self, peer: &PublicKey, offered: &[Vec<u8>]) -> Option<Ingested>;
    /// Those of `ids` held here that are urgent
    /// ([`gatehouse_protocol::envelope::Verified::is_urgent`]), in order.
    fn urgent_among(&self, ids: &[EnvelopeId]) -> Vec<EnvelopeId> {
        let _ = ids;
        Vec::new()
    }
}

/// What became of envelopes offered to an [`EnvelopeSet`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ingested {
    /// New envelopes stored.
    pub stored: usize,
    /// Envelopes already held.
    pub duplicates: usize,
    /// New envelopes in effect (accepted, or of a kind this node stores
    /// and forwards without reading).
    pub accepted: usize,
    /// Envelopes that do not verify: malformed, badly signed, another network's.
    pub forged: u32,
    /// Envelopes that verify but were not stored: certificates that can
    /// have no effect, envelopes past their signer's limit or the pool's.
    /// Not held against the peer.
    pub refused: u32,
    /// Whether a certificate was stored (who is admitted may have changed).
    pub certificates: bool,
    /// The new envelopes in effect once the batch was applied (empty when
    /// applying waits for a later tick).
    pub in_effect: Vec<EnvelopeId>,
}

/// An event the core is told of.
#[derive(Debug, Clone)]
pub enum Input {
    /// The first connection to `peer` opened.
    Connected {
        /// The peer's node key.
        peer: PublicKey,
        /// The address at the other end.
        address: String,
        /// Whether this node dialled.
        dialer: bool,
        /// Whether this node dialled an address that named the peer's key
        /// (`/p2p/...`): its operator chose that very node, so this node
        /// proves its own admission to it before knowing it.
        named: bool,
    },
    /// The last connection to `peer` closed.
    Disconnected {
        /// The peer's node key.
        peer: PublicKey,
    },
    /// A peer was found at an address (mDNS on the local network).
    Discovered {
        /// The peer's node key.
        peer: PublicKey,
        /// Where.
        address: String,
    },
    /// An address to keep dialling (bootstrap, the peer book).
    Remember {
        /// The address.
        address: String,
    },
    /// A peer's request, to be answered with [`Output::Respond`].
    Request {
        /// Who sent it.
        peer: PublicKey,
        /// The shell's number for it.
        inbound: InboundId,
        /// The request.
        request: SyncRequest,
    },
    /// The answer to a request this node sent.
    Response {
        /// The request.
        request: RequestId,
        /// The answer.
        response: SyncResponse,
    },
    /// A request this node sent got no answer (timeout, closed stream).
    RequestFailed {
        /// The request.
        request: RequestId,
    },
    /// An envelope received by gossip, to be given a [`Output::Verdict`].
    Gossip {
        /// The peer that forwarded it.
        from: PublicKey,
        /// The shell's number for it.
        message: MessageId,
        /// The envelope bytes.
        bytes: Vec<u8>,
    },
    /// Envelopes made or imported here, to gossip.
    Publish {
        /// Their bytes.
        envelopes: Vec<Vec<u8>>,
    },
    /// Certificates changed here (a local trust command): who is admitted
    /// may have changed.
    TrustChanged,
    /// Reconcile with every connected peer now.
    ReconcileNow,
    /// Store the fetched and pushed batches [`Output::Store`] held back.
    Store,
    /// Time passed: run what is due.
    Tick,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send a request.
    Send {
        /// To whom.
        peer: PublicKey,
        /// The core's number for it, given back in the response.
        request: RequestId,
        /// The request.
        message: SyncRequest,
    },
    /// Answer a peer's request.
    Respond {
        /// The shell's number for the request.
        inbound: InboundId,
        /// The answer.
        response: SyncResponse,
    },
    /// The verdict on a gossip message: forward it, drop it, or drop it and
    /// penalise the sender.
    Verdict {
        /// The shell's number for it.
        message: MessageId,
        /// The peer that forwarded it.
        from: PublicKey,
        /// The verdict.
        verdict: Verdict,
    },
    /// Gossip an envelope.
    Publish {
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// Dial an address.
    Dial {
        /// The address.
        address: String,
    },
    /// Close every connection to a peer.
    Disconnect {
        /// The peer.
        peer: PublicKey,
    },
    /// A connected peer is admitted: let it into gossip.
    Admitted {
        /// The peer.
        peer: PublicKey,
    },
    /// A connected peer is not (or no longer) admitted: keep it out of gossip.
    Barred {
        /// The peer.
        peer: PublicKey,
    },
    /// A fetched or pushed batch is held back, so that the requests for
    /// the rest of a fetch (the outputs before this one) cross while it is
    /// stored, and pushes that arrived together are stored together: give
    /// [`Input::Store`] once the requests are on their way and the events
    /// already waiting handed in. The core stores held batches then, or
    /// with the next batch of a fetch when it is about to arrive (the last
    /// batch of a fetch, a failed request, every tick and held batches
    /// reaching their caps store them).
    Store,
    /// A session with a peer completed.
    Synced {
        /// The peer.
        peer: PublicKey,
        /// The addresses it was seen at.
        addresses: Vec<String>,
        /// When (the core's clock).
        at_ms: u64,
    },
}

/// The verdict on one gossip message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// New and in effect: forward it.
    Accept,
    /// Already held, or not yet in effect: do not forward, no penalty.
    Ignore,
    /// Forged, or from a peer that is not admitted: drop and penalise.
    Reject,
}
