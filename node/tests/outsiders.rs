//! What outsiders and misbehaving keys can make a node store.
//!
//! - A peer on probation stores only the chain that admits its own key:
//!   junk it sends with its proof (self-revocations, endorsements by
//!   strangers) is not stored.
//! - A certificate signed by a key the network does not know, or revoking
//!   one, is refused from a peer or a bundle, in any order within a batch
//!   that also brings the key's admission.
//! - A key of the network may leave at most `MAX_UNACCEPTED_PER_SIGNER`
//!   envelopes not in effect; past that its junk is refused, while what it
//!   signs that is in effect is still stored.

use std::sync::Arc;

use gatehouse_node::authoring::new_item;
use gatehouse_node::error::LibraryError;
use gatehouse_node::replica::{MAX_UNACCEPTED_PER_SIGNER, Replica};
use gatehouse_node::sample::synthetic_content;
use gatehouse_node::store::MemoryStore;
use gatehouse_node::sync::Ingested;
use gatehouse_node::sync::replica_set::{admitting, ingest_batch, store_opened};
use gatehouse_protocol::certificate::{
    Admission, Certificate, Delegation, Endorsement, Genesis, MemberRole, Revocation, RevokeTarget,
};
use gatehouse_protocol::envelope::{Body, Verified};
use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, NetworkId};
use gatehouse_protocol::key::SecretKey;
use gatehouse_protocol::trust::Judgement;
use gatehouse_protocol::vocab::{Nation, Setting};

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed([n; 32])
}

fn sign(net: &NetworkId, signer: u8, cert: Certificate) -> Verified {
    Verified::sign(Body::Certificate(cert), &key(signer), net, 1)
}

fn admit(net: &NetworkId, est: u8, est_key: u8) -> Verified {
    sign(
        net,
        1,
        Certificate::Admit(Admission {
            establishment: EstablishmentId([est; 16]),
            key: key(est_key).public(),
            name: format!("HMP Site {est}"),
            setting: Setting::LocalRemand,
            nation: Nation::England,
        }),
    )
}

fn delegate(net: &NetworkId, est: u8, signer: u8, member: u8, role: MemberRole) -> Verified {
    sign(
        net,
        signer,
        Certificate::Delegate(Delegation {
            establishment: EstablishmentId([est; 16]),
            member: key(member).public(),
            name: format!("key {member}"),
            role,
        }),
    )
}

fn revoke(net: &NetworkId, signer: u8, target: u8, reason: &str) -> Verified {
    sign(
        net,
        signer,
        Certificate::Revoke(Revocation {
            target: RevokeTarget::Key(key(target).public()),
            keep: Vec::new(),
            reason: reason.into(),
        }),
    )
}

/// A network (admin key 1) with site 10 (establishment key 10, node key
/// 12) held by a host replica, and the chain that admits site 20's node
/// (establishment key 20, node key 22), which the host does not hold.
fn network() -> (NetworkId, Replica, Vec<Verified>) {
    let genesis = Genesis {
        name: "Test network".into(),
        admins: vec![key(1).public()],
        threshold: 1,
        nonce: [3; 16],
    };
    let net = genesis.network_id();
    let held = vec![
        sign(&net, 1, Certificate::Genesis(genesis)),
        admit(&net, 10, 10),
        delegate(&net, 10, 10, 12, MemberRole::Device),
    ];
    let mut host = Replica::open(Arc::new(MemoryStore::new()), net).expect("replica");
    for c in held {
        host.accept(c).expect("accept");
    }
    host.settle().expect("settle");
    let chain = vec![
        admit(&net, 20, 20),
        delegate(&net, 20, 20, 22, MemberRole::Device),
    ];
    (net, host, chain)
}

fn bytes(envs: &[Verified]) -> Vec<Vec<u8>> {
    envs.iter().map(|e| e.bytes().to_vec()).collect()
}

#[test]
fn a_peer_on_probation_stores_only_its_own_admission() {
    let (net, mut host, chain) = network();
    let before = host.envelope_ids().expect("ids").len();
    let mut offered = chain.clone();
    // Its node key revokes keys nobody knows, a fresh key revokes itself
    // again and again, and its node key endorses things: none of it has a
    // part in its admission.
    for n in 0..32 {
        offered.push(revoke(&net, 22, 100 + n, &format!("junk {n}")));
        offered.push(revoke(&net, 99, 99, &format!("junk {n}")));
        offered.push(sign(
            &net,
            22,
            Certificate::Endorse(Endorsement {
                target: EnvelopeId([n; 32]),
            }),
        ));
    }
    let admitted = admitting(&host, &key(22).public(), &bytes(&offered)).expect("admitted");
    assert_eq!(admitted, chain);
    let mut got = Ingested::default();
    store_opened(&mut host, admitted, &mut got);
    host.settle().expect("settle");
    assert_eq!(got.stored, 2);
    assert_eq!(host.envelope_ids().expect("ids").len(), before + 2);

    // Without its chain, the same junk admits nobody.
    let (_, host, _) = network();
    assert!(admitting(&host, &key(22).public(), &bytes(&offered[2..])).is_none());
}

#[test]
fn certificates_from_unknown_keys_are_refused_in_any_order() {
    let (net, mut host, chain) = network();
    let junk = vec![
        revoke(&net, 99, 99, "a stranger revoking itself"),
        revoke(&net, 10, 98, "revoking a key nobody knows"),
        delegate(&net, 20, 97, 96, MemberRole::Person),
    ];
    // The delegation by site 20's key comes before its admission, and the
    // junk is mixed in: the delegation is stored, the junk is not.
    let batch = vec![
        chain[1].clone(),
        junk[0].clone(),
        junk[1].clone(),
        chain[0].clone(),
        junk[2].clone(),
    ];
    let (got, _) = ingest_batch(&mut host, bytes(&batch));
    host.settle().expect("settle");
    assert_eq!(got.stored, 2, "{got:?}");
    assert_eq!(got.refused, 3);
    assert_eq!(got.forged, 0, "refusals are not forgeries");
    for c in &chain {
        assert_eq!(host.judgement_of(&c.id()).expect("j"), Judgement::Accepted);
    }
    for j in &junk {
        assert!(!host.has_envelope(&j.id()).expect("has"));
        assert!(matches!(
            host.ingest(j.bytes()),
            Err(LibraryError::NoEffect(_))
        ));
    }
}

#[test]
fn a_key_of_the_network_cannot_fill_the_pool() {
    let (net, mut host, _) = network();
    // Site 10's key revokes the admin, which it has no authority for: each
    // such revocation is pending and has no effect.
    let junk: Vec<Verified> = (0..MAX_UNACCEPTED_PER_SIGNER + 50)
        .map(|n| revoke(&net, 10, 1, &format!("not allowed {n}")))
        .collect();
    for j in &junk[..MAX_UNACCEPTED_PER_SIGNER] {
        host.ingest(j.bytes()).expect("stored below the limit");
    }
    host.settle().expect("settle");
    for j in &junk[..MAX_UNACCEPTED_PER_SIGNER] {
        assert_ne!(host.judgement_of(&j.id()).expect("j"), Judgement::Accepted);
    }
    for j in &junk[MAX_UNACCEPTED_PER_SIGNER..] {
        assert!(matches!(
            host.ingest(j.bytes()),
            Err(LibraryError::SignerLimit(_))
        ));
    }
    // What the key signs that is in effect still arrives: an item it
    // publishes for its own site.
    let item = new_item(
        &synthetic_content(1),
        &key(10),
        &[10; 16],
        EstablishmentId([10; 16]),
        &net,
        2,
    )
    .expect("item");
    let stored = host
        .ingest(item.bytes())
        .expect("an item in effect is stored");
    assert_eq!(stored.judgement, Judgement::Accepted);
    // And the site's own node, publishing locally, is never limited.
    let person = delegate(&net, 10, 10, 14, MemberRole::Person);
    host.accept(person.clone()).expect("local");
    host.settle().expect("settle");
    assert_eq!(
        host.judgement_of(&person.id()).expect("j"),
        Judgement::Accepted
    );
}
