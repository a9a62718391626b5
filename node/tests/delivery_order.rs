//! Validity is a function of the set of envelopes: nodes given the same
//! certificates and changes (revocations with kept and discarded history,
//! changes waiting for a delegation, changes signed for the wrong
//! establishment; posts by a clinician kept and cut off by a revocation,
//! by a key nobody delegated, and moderation by the wrong lead) in any
//! order, with duplicates, one by one or in batches, end with the same
//! library, the same forum, the same pending set and the same rejections.

mod common;

use std::sync::Arc;

use gatehouse_node::authoring::new_item;
use gatehouse_node::library::{Library, LibraryError, NodeConfig};
use gatehouse_node::projection::search::SearchIndex;
use gatehouse_node::query::filter::Filter;
use gatehouse_node::query::forum::{ThreadList, ThreadQuery};
use gatehouse_node::replica::bundle;
use gatehouse_node::sample::synthetic_content;
use gatehouse_node::store::MemoryStore;
use gatehouse_protocol::automerge::AutoCommit;
use gatehouse_protocol::automerge::transaction::CommitOptions;
use gatehouse_protocol::certificate::{
    Admission, Certificate, Delegation, Genesis, MemberRole, Revocation, RevokeTarget,
};
use gatehouse_protocol::change::{ChangePayload, actor_id};
use gatehouse_protocol::envelope::{Body, Verified};
use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, NetworkId};
use gatehouse_protocol::item::write_version;
use gatehouse_protocol::key::SecretKey;
use gatehouse_protocol::post::{Action, Post, Question, Reply, Urgency, Voice};
use gatehouse_protocol::trust::Judgement;
use gatehouse_protocol::vocab::{Nation, Pathway, Setting};
use proptest::prelude::*;

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed([n; 32])
}

struct World {
    network: NetworkId,
    envelopes: Vec<Verified>,
}

fn cert(w: &mut World, signer: u8, c: Certificate) -> EnvelopeId {
    let env = Verified::sign(Body::Certificate(c), &key(signer), &w.network, 1);
    let id = env.id();
    w.envelopes.push(env);
    id
}

fn post(w: &mut World, signer: u8, voice: EstablishmentId, action: Action, at: u64) -> EnvelopeId {
    let env = Verified::sign(
        Body::Post(Box::new(Post {
            voice: Voice::Establishment(voice),
            action,
        })),
        &key(signer),
        &w.network,
        at,
    );
    let id = env.id();
    w.envelopes.push(env);
    id
}

fn reply(thread: EnvelopeId, body: &str) -> Action {
    Action::Reply(Reply {
        thread,
        quoting: None,
        body: body.into(),
    })
}

fn item(w: &mut World, signer: u8, owner: EstablishmentId, n: u64) -> Verified {
    let env = new_item(
        &synthetic_content(n),
        &key(signer),
        &[signer; 16],
        owner,
        &w.network,
        2,
    )
    .expect("item");
    w.envelopes.push(env.clone());
    env
}

/// A revision of `first` (an item's creating change) signed by `signer`.
fn revision(w: &mut World, first: &Verified, signer: u8, n: u64) -> EnvelopeId {
    let Body::Change(c) = first.body() else {
        panic!("not a change");
    };
    let mut doc = AutoCommit::new().with_actor(actor_id(&key(signer).public(), &[signer; 16]));
    doc.apply_changes([c.change.clone()]).expect("apply");
    write_version(&mut doc, &synthetic_content(n), &key(signer).public()).expect("write");
    doc.commit_with(CommitOptions::default().with_message("revise"));
    let change = doc.get_last_local_change().expect("change");
    let env = Verified::sign(
        Body::Change(Box::new(ChangePayload {
            item: c.item,
            owner: c.owner,
            salt: c.salt,
            change,
        })),
        &key(signer),
        &w.network,
        3,
    );
    let id = env.id();
    w.envelopes.push(env);
    id
}

/// Admin 1; establishments A (key 10) and B (key 20); people 11 (A), 21
/// and 22 (B), 12 (A, later compromised); 99 never delegated.
fn world() -> (World, EstablishmentId) {
    let genesis = Genesis {
        name: "Order test".into(),
        admins: vec![key(1).public()],
        threshold: 1,
        nonce: [4; 16],
    };
    let network = genesis.network_id();
    let mut w = World {
        network,
        envelopes: Vec::new(),
    };
    cert(&mut w, 1, Certificate::Genesis(genesis));
    let (a, b) = (EstablishmentId([10; 16]), EstablishmentId([20; 16]));
    for (est, k, name) in [(a, 10u8, "HMP A"), (b, 20, "HMP B")] {
        cert(
            &mut w,
            1,
            Certificate::Admit(Admission {
                establishment: est,
                key: key(k).public(),
                name: name.into(),
                setting: Setting::LocalRemand,
                nation: Nation::England,
            }),
        );
    }
    for (est, signer, member) in [(a, 10u8, 11u8), (b, 20, 21), (b, 20, 22), (a, 10, 12)] {
        cert(
            &mut w,
            signer,
            Certificate::Delegate(Delegation {
                establishment: est,
                member: key(member).public(),
                name: format!("person {member}"),
                role: MemberRole::Person,
            }),
        );
    }
    let a1 = item(&mut w, 11, a, 1);
    item(&mut w, 21, b, 2);
    // The deputy (22) publishes twice and revises; only the first is kept.
    let kept = item(&mut w, 22, b, 3);
    revision(&mut w, &kept, 22, 4);
    item(&mut w, 22, b, 5);
    cert(
        &mut w,
        20,
        Certificate::Revoke(Revocation {
            target: RevokeTarget::Key(key(22).public()),
            keep: vec![kept.id()],
            reason: "left".into(),
        }),
    );
    // A compromised key: its item vanishes.
    item(&mut w, 12, a, 6);
    cert(
        &mut w,
        10,
        Certificate::Revoke(Revocation {
            target: RevokeTarget::Key(key(12).public()),
            keep: vec![],
            reason: "lost".into(),
        }),
    );
    // A revision of A's item by B's person: another establishment's key.
    revision(&mut w, &a1, 21, 7);
    // A change by a key nobody delegated: pending.
    item(&mut w, 99, a, 8);

    // A clinician at A (13, delegated by person 11) asks; B's person
    // answers; the clinician replies twice, then leaves: the question is
    // kept, the replies are not.
    cert(
        &mut w,
        11,
        Certificate::Delegate(Delegation {
            establishment: a,
            member: key(13).public(),
            name: "Dr 13".into(),
            role: MemberRole::Clinician,
        }),
    );
    let question = post(
        &mut w,
        13,
        a,
        Action::Ask(Question {
            title: "Order test question".into(),
            body: "Which order?".into(),
            pathways: vec![Pathway::PharmacyMedicines],
            settings: Vec::new(),
            urgency: Urgency::Routine,
            links: Vec::new(),
        }),
        10,
    );
    let answer = post(&mut w, 21, b, reply(question, "Any order."), 11);
    post(&mut w, 13, a, reply(question, "Thanks."), 12);
    let dropped = post(&mut w, 13, a, reply(question, "One more."), 13);
    post(&mut w, 13, a, Action::Resolve { question, answer }, 14);
    cert(
        &mut w,
        11,
        Certificate::Revoke(Revocation {
            target: RevokeTarget::Key(key(13).public()),
            keep: vec![question],
            reason: "left".into(),
        }),
    );
    // A post by a key nobody delegated, and one claiming an establishment
    // its signer is not of.
    post(&mut w, 98, a, reply(question, "Unknown."), 15);
    post(&mut w, 21, a, reply(question, "Not my site."), 16);
    // B's lead hides A's clinician's reply (no effect: not B's staff) and
    // B's own person's answer (in effect).
    post(
        &mut w,
        20,
        b,
        Action::Hide {
            post: dropped,
            reason: "not ours to hide".into(),
        },
        17,
    );
    post(
        &mut w,
        20,
        b,
        Action::Hide {
            post: answer,
            reason: "posted in error".into(),
        },
        18,
    );
    (w, a)
}

fn library(network: NetworkId, own: EstablishmentId) -> Library {
    Library::with_store(
        Arc::new(MemoryStore::new()),
        NodeConfig {
            network,
            establishment: own,
            member: None,
            node: key(50).public(),
            actor_suffix: "000102030405060708090a0b0c0d0e0f".into(),
        },
        SearchIndex::in_memory().expect("index"),
        None,
    )
    .expect("library")
}

/// Everything a user could observe, as one string.
fn observed(lib: &Library, ids: &[EnvelopeId]) -> String {
    let list = serde_json::to_string(&lib.list(&Filter::default()).expect("list")).expect("json");
    let view = lib.read_view();
    let threads: Vec<_> = view
        .threads(
            &ThreadQuery {
                list: ThreadList::All,
                ..ThreadQuery::default()
            },
            0,
        )
        .into_iter()
        .map(|t| view.thread(&t.id, 0).expect("thread"))
        .collect();
    let forum = serde_json::to_string(&(threads, view.moderation_log())).expect("json");
    let list = format!("{list}\n{forum}");
    let status = lib.status().expect("status");
    let judgements: Vec<Judgement> = ids
        .iter()
        .map(|id| lib.judgement_of(id).expect("judgement"))
        .collect();
    format!(
        "{list}\n{:?}\n{:?}\n{}\n{judgements:?}",
        status.pending, status.rejected, status.envelopes
    )
}

fn shuffled(envelopes: &[Verified], seed: u64, dups: usize) -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = envelopes.iter().map(|e| e.bytes().to_vec()).collect();
    for i in 0..dups {
        all.push(envelopes[(i * 7) % envelopes.len()].bytes().to_vec());
    }
    common::shuffled(all, seed)
}

#[test]
fn the_scenario_ends_as_designed() {
    let (w, own) = world();
    let mut lib = library(w.network, own);
    for e in &w.envelopes {
        lib.ingest(e.bytes()).expect("ingest");
    }
    let titles: Vec<String> = lib
        .list(&Filter::default())
        .expect("list")
        .iter()
        .map(|v| v.item.content.title.clone())
        .collect();
    // Items 1, 2 and the deputy's kept item 3 remain, each at its first version.
    assert_eq!(titles.len(), 3, "{titles:?}");
    for n in [1, 2, 3] {
        assert!(
            titles.contains(&synthetic_content(n).title),
            "item {n} missing from {titles:?}"
        );
    }
    let status = lib.status().expect("status");
    // The item and the post by keys nobody delegated wait.
    assert_eq!(
        status.pending.values().sum::<usize>(),
        2,
        "{:?}",
        status.pending
    );
    // The deputy's revision and second item, the compromised item, the
    // clinician's two replies and resolution that their revocation did not
    // keep, and the
    // revision and the post signed by another establishment's key.
    assert_eq!(
        status.rejected.values().sum::<usize>(),
        8,
        "{:?}",
        status.rejected
    );
    // The forum: the clinician's question stays, attributed; their replies
    // and resolution, which their revocation did not keep, do not count; B's lead hid B's answer
    // and could not hide A's post.
    let view = lib.read_view();
    let threads = view.threads(
        &ThreadQuery {
            list: ThreadList::All,
            ..ThreadQuery::default()
        },
        0,
    );
    assert_eq!(threads.len(), 1);
    assert_eq!(threads[0].author.name.as_deref(), Some("Dr 13"));
    assert_eq!(threads[0].resolved_by, None);
    let t = view.thread(&threads[0].id, 0).expect("thread");
    let bodies: Vec<_> = t.posts.iter().map(|p| p.body.clone()).collect();
    assert_eq!(
        bodies,
        vec![Some("Which order?".to_string()), None],
        "{bodies:?}"
    );
    assert_eq!(
        t.posts[1].hidden.as_ref().map(|h| h.reason.as_str()),
        Some("posted in error")
    );
    let log = view.moderation_log();
    assert_eq!(log.len(), 1, "only the hide in effect is logged");
}

/// Ingests the world one by one and in two bundles, in the order `seed`
/// picks with `dups` duplicates, and compares with in-order ingestion.
fn agrees_in_order(seed: u64, dups: usize) -> Result<(), TestCaseError> {
    let (w, own) = world();
    let ids: Vec<EnvelopeId> = w.envelopes.iter().map(Verified::id).collect();
    let mut reference = library(w.network, own);
    for e in &w.envelopes {
        reference.ingest(e.bytes()).expect("ingest");
    }
    let expected = observed(&reference, &ids);

    // One at a time, shuffled, with duplicates. A certificate whose
    // signer is not known yet has no effect and is not stored; a peer
    // offers it again in its next session, as this loop does.
    let mut one_by_one = library(w.network, own);
    let mut offer = shuffled(&w.envelopes, seed, dups);
    let mut sessions = 0;
    while !offer.is_empty() {
        sessions += 1;
        prop_assert!(sessions <= 8, "certificates were never stored");
        let mut again = Vec::new();
        for bytes in offer {
            match one_by_one.ingest(&bytes) {
                Ok(_) => {}
                Err(LibraryError::NoEffect(_)) => again.push(bytes),
                Err(e) => panic!("ingest: {e}"),
            }
        }
        offer = again;
    }
    prop_assert_eq!(observed(&one_by_one, &ids), expected.clone());

    // In two bundles, split at a random point, each imported once. A
    // certificate whose signer the other bundle admits, or a change built
    // on one there, has no effect yet: it is held back, named in the
    // report, and put in place by the other bundle's import.
    let order = shuffled(&w.envelopes, seed.rotate_left(17), dups);
    let cut = (seed as usize) % order.len();
    let (first, second) = order.split_at(cut);
    let mut batched = library(w.network, own);
    for part in [second, first] {
        let report =
            bundle::import(&mut batched, &bundle::write(&w.network, part)).expect("import");
        prop_assert!(report.refusals.is_empty(), "{:?}", report.refusals);
        for reason in report.held_back.keys() {
            prop_assert!(reason.starts_with("not stored yet"), "{}", reason);
        }
    }
    prop_assert_eq!(batched.held_back_count().expect("held"), 0);
    prop_assert_eq!(observed(&batched, &ids), expected);
    Ok(())
}

/// An order in which a chain crosses between the bundles several times:
/// the first import holds part of it back, the second puts it all in place.
#[test]
fn a_chain_split_across_bundles_takes_effect_in_either_order() {
    agrees_in_order(8703801711517963564, 0).expect("agrees");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn nodes_agree_whatever_the_order(seed in any::<u64>(), dups in 0usize..8) {
        agrees_in_order(seed, dups)?;
    }
}
