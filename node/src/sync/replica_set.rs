//! The core's view of a [`Replica`]: ingesting batches and classifying what
//! became of each envelope, the admission proof of this node's key, and
//! the scratch check of a stranger's proof. The node's library and the
//! simulation's bare replicas share these.

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_protocol::envelope::{Body, Envelope, Verified};
use gatehouse_protocol::id::EnvelopeId;
use gatehouse_protocol::key::PublicKey;
use gatehouse_protocol::reconcile::IdIndex;
use gatehouse_protocol::trust::{Judgement, TrustView};

use super::admission::{admission_proof, admitted_nodes};
use super::{EnvelopeSet, Ingested};
use crate::error::LibraryError;
use crate::replica::Replica;
use crate::replica::open::open_all_building;

/// Stores a batch of envelope bytes from a peer, without settling. Returns
/// the tally and the new certificates, whose judgement is known only once
/// the batch is settled ([`count_settled`]).
///
/// Each envelope is opened (its signature checked, then its payload
/// decoded) once: a copy of one held, or of one earlier in the batch, is
/// known by its hash alone, and what waits for the rest of the batch waits
/// opened.
pub fn ingest_batch(replica: &mut Replica, envelopes: Vec<Vec<u8>>) -> (Ingested, Vec<EnvelopeId>) {
    let mut out = Ingested::default();
    let network = replica.network();
    let mut unopened = Vec::with_capacity(envelopes.len());
    let mut in_batch = BTreeSet::new();
    for bytes in envelopes {
        let id = EnvelopeId::of(&bytes);
        // A second copy in the same batch is not opened again either.
        if !in_batch.insert(id) {
            out.duplicates += 1;
            continue;
        }
        match replica.has_envelope(&id) {
            Ok(true) => {
                out.duplicates += 1;
                continue;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!("could not store an envelope: {e}");
                continue;
            }
        }
        unopened.push(bytes);
    }
    let refs: Vec<&[u8]> = unopened.iter().map(Vec::as_slice).collect();
    let mut opened = Vec::with_capacity(unopened.len());
    let (results, built) = open_all_building(&refs, &network, replica.judges_content());
    replica.offer_prebuilt(built);
    for result in results {
        match result {
            Ok(v) => opened.push(v),
            Err(e) => {
                tracing::warn!("refused an envelope: {e}");
                out.forged += 1;
            }
        }
    }
    opened.sort_by_cached_key(causal_order);
    let fresh = store_opened(replica, opened, &mut out);
    (out, fresh)
}

/// The order a batch is stored in: certificates first, then each item's
/// changes together, each after those it depends on (a change's first
/// operation number is above every operation of the changes it depends
/// on), then the rest. The order does not change what is stored, only
/// that each change is judged against its item's document as it grows.
fn causal_order(env: &Verified) -> (u8, [u8; 16], u64) {
    match env.body() {
        Body::Certificate(_) => (0, [0; 16], 0),
        Body::Change(c) => (1, c.item.0, c.change.start_op().get()),
        Body::Post(_) | Body::Record(_) | Body::Unread { .. } => (2, [0; 16], 0),
    }
}

/// Stores envelopes already opened, without settling, adding to `out`;
/// returns the new ones.
///
/// An envelope that can have no effect yet (a certificate whose signer is
/// admitted by a certificate later in the batch, a change whose earlier
/// changes come later) is tried again once the batch's others are stored;
/// what still has no effect is refused and counted, and the peer offers it
/// again in a later session.
pub fn store_opened(
    replica: &mut Replica,
    envelopes: Vec<Verified>,
    out: &mut Ingested,
) -> Vec<EnvelopeId> {
    let mut fresh = Vec::new();
    let mut waiting = envelopes;
    loop {
        let mut later = Vec::new();
        let stored_before = out.stored;
        for env in waiting {
            // Kept to try again without opening it a second time.
            let copy = env.clone();
            match replica.accept_outside(env, false) {
                Ok(a) if !a.new => out.duplicates += 1,
                Ok(a) => {
                    out.stored += 1;
                    out.certificates |= a.certificate;
                    if !a.certificate && a.judgement == Judgement::Accepted {
                        out.accepted += 1;
                    }
                    fresh.push(a.id);
                }
                Err(LibraryError::Refused(e)) => {
                    tracing::warn!("refused an envelope: {e}");
                    out.forged += 1;
                }
                Err(LibraryError::NoEffect(_)) => later.push(copy),
                Err(
                    e @ (LibraryError::SignerLimit(_)
                    | LibraryError::PoolFull(_)
                    | LibraryError::ContentRefused { .. }
                    | LibraryError::CertificateRefused { .. }
                    | LibraryError::PostRefused { .. }),
                ) => {
                    tracing::info!("refused an envelope: {e}");
                    out.refused += 1;
                }
                Err(e) => tracing::warn!("could not store an envelope: {e}"),
            }
        }
        if later.is_empty() || out.stored == stored_before {
            if !later.is_empty() {
                tracing::debug!(count = later.len(), "refused envelopes with no effect yet");
            }
            out.refused += u32::try_from(later.len()).unwrap_or(u32::MAX);
            return fresh;
        }
        waiting = later;
    }
}

/// Once the batch is applied: adds its certificates that took effect to
/// the count, and lists every new envelope in effect.
pub fn count_settled(replica: &Replica, out: &mut Ingested, fresh: &[EnvelopeId]) {
    for id in fresh {
        if matches!(replica.judgement_of(id), Ok(Judgement::Accepted)) {
            if replica.is_certificate(id) {
                out.accepted += 1;
            }
            out.in_effect.push(*id);
        }
    }
}

/// The bytes of the certificates that admit `node`.
pub fn proof_bytes(replica: &Replica, node: &PublicKey) -> Vec<Vec<u8>> {
    let certs = match replica.certificates() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot read certificates: {e}");
            return Vec::new();
        }
    };
    let ids = admission_proof(&certs, node);
    let by_id: BTreeMap<EnvelopeId, &Verified> = certs.iter().map(|c| (c.id(), c)).collect();
    ids.iter()
        .filter_map(|id| by_id.get(id).map(|c| c.bytes().to_vec()))
        .collect()
}

/// When `offered` certificates, with those held, admit `peer`: the offered
/// ones that are part of its admission proof and in effect. Anything else a
/// peer on probation offers (certificates about other keys, revocations,
/// endorsements by strangers) is not stored.
pub fn admitting(
    replica: &Replica,
    peer: &PublicKey,
    offered: &[Vec<u8>],
) -> Option<Vec<Verified>> {
    let network = replica.network();
    let mut certs = match replica.certificates() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot read certificates: {e}");
            return None;
        }
    };
    let held: BTreeSet<EnvelopeId> = certs.iter().map(Verified::id).collect();
    let mut new = Vec::new();
    for bytes in offered {
        match Envelope::open(bytes, &network) {
            Ok(v) if !held.contains(&v.id()) => {
                new.push(v.clone());
                certs.push(v);
            }
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    let view = TrustView::build(&network, &certs);
    if !admitted_nodes(&view).contains_key(peer) {
        return None;
    }
    let proof: BTreeSet<EnvelopeId> = admission_proof(&certs, peer).into_iter().collect();
    Some(
        new.into_iter()
            .filter(|v| proof.contains(&v.id()) && view.judge(v) == Judgement::Accepted)
            .collect(),
    )
}

/// A replica with no projections, settled after every batch: what each
/// node of the simulation runs.
pub struct BareReplica {
    /// The replica.
    pub replica: Replica,
    /// This node's own key.
    pub node: PublicKey,
    /// New envelopes stored from peers, in all.
    pub received: u64,
}

impl EnvelopeSet for BareReplica {
    fn ids(&mut self) -> Result<&IdIndex, String> {
        self.replica.id_index().map_err(|e| e.to_string())
    }

    fn bytes(&self, ids: &[EnvelopeId]) -> Result<Vec<Vec<u8>>, String> {
        self.replica.envelope_bytes(ids).map_err(|e| e.to_string())
    }

    fn ingest(&mut self, envelopes: Vec<Vec<u8>>, _gossip: bool) -> Ingested {
        let (out, fresh) = ingest_batch(&mut self.replica, envelopes);
        self.settled(out, &fresh)
    }

    fn admitted(&self) -> BTreeMap<PublicKey, String> {
        admitted_nodes(self.replica.trust())
    }

    fn admission_proof(&self) -> Vec<Vec<u8>> {
        proof_bytes(&self.replica, &self.node)
    }

    fn node_key(&self) -> PublicKey {
        self.node
    }

    fn admit(&mut self, peer: &PublicKey, offered: &[Vec<u8>]) -> Option<Ingested> {
        let chain = admitting(&self.replica, peer, offered)?;
        let mut out = Ingested::default();
        let fresh = store_opened(&mut self.replica, chain, &mut out);
        Some(self.settled(out, &fresh))
    }

    fn urgent_among(&self, ids: &[EnvelopeId]) -> Vec<EnvelopeId> {
        self.replica.urgent_among(ids)
    }
}

impl BareReplica {
    /// Settles what a batch stored and counts what took effect.
    fn settled(&mut self, mut out: Ingested, fresh: &[EnvelopeId]) -> Ingested {
        self.received += out.stored as u64;
        if let Err(e) = self.replica.settle() {
            tracing::error!("could not settle: {e}");
        }
        count_settled(&self.replica, &mut out, fresh);
        out
    }
}
