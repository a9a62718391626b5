//! What a peer sends passes the rules a local publish does: a change that
//! would leave its item holding a patient identifier (however written, in
//! the source or as it renders, in one change or split over two), breaking
//! the schema, or with fields that do not read, is refused with a reason
//! and not stored, by sync and by bundle alike. An identifier the author
//! reviewed and allowed is recorded in the signed change, and receivers
//! accept exactly that text. A certificate whose name or reason holds an
//! identifier is refused the same way.

mod common;
#[path = "../../protocol/tests/support/disguises.rs"]
mod disguises;

use std::sync::Arc;

use gatehouse_node::authoring::{Draft, new_item_with_salt};
use gatehouse_node::error::LibraryError;
use gatehouse_node::home::Home;
use gatehouse_node::library::{Library, NodeConfig};
use gatehouse_node::projection::markdown::plain_text;
use gatehouse_node::projection::search::SearchIndex;
use gatehouse_node::replica::bundle;
use gatehouse_node::sample::synthetic_content;
use gatehouse_node::store::MemoryStore;
use gatehouse_protocol::automerge::transaction::Transactable;
use gatehouse_protocol::automerge::{AutoCommit, ObjType, ROOT, ReadDoc};
use gatehouse_protocol::change::{ChangePayload, actor_id};
use gatehouse_protocol::envelope::{Body, Verified};
use gatehouse_protocol::id::{EstablishmentId, ItemId};
use gatehouse_protocol::identifier::find_identifiers;
use gatehouse_protocol::item::{ItemContent, init_doc, write_version};
use gatehouse_protocol::key::SecretKey;

const SUFFIX: [u8; 16] = [5; 16];

/// An edit made to an item's document by hand.
type Edit = Box<dyn Fn(&mut AutoCommit)>;

/// A site's node and the key its site lead publishes with.
struct Site {
    _dir: tempfile::TempDir,
    lib: Library,
    member: SecretKey,
}

fn site() -> Site {
    let (dir, home, lib) = common::new_site();
    let member = home.read_key("member").expect("read").expect("member key");
    Site {
        _dir: dir,
        lib,
        member,
    }
}

/// Another node of the network, holding the site's certificates.
fn receiver(site: &Site) -> Library {
    let network = site.lib.config().network;
    let mut lib = Library::with_store(
        Arc::new(MemoryStore::new()),
        NodeConfig {
            network,
            establishment: EstablishmentId([9; 16]),
            member: None,
            node: SecretKey::from_seed([77; 32]).public(),
            actor_suffix: "0f0e0d0c0b0a09080706050403020100".into(),
        },
        SearchIndex::in_memory().expect("index"),
        None,
    )
    .expect("library");
    let certs = site.lib.certificate_bytes().expect("certs");
    bundle::import(&mut lib, &bundle::write(&network, &certs)).expect("certs");
    lib
}

impl Site {
    fn owner(&self) -> EstablishmentId {
        self.lib.config().establishment
    }

    /// A new item signed by the site lead, made without the checks of
    /// `publish` (as a modified or hostile node would).
    fn raw_item(&self, content: &ItemContent, allowed: &[String], salt: u8) -> Verified {
        new_item_with_salt(
            Draft {
                content,
                allowed,
                adoption: None,
                attachments: &[],
            },
            &self.member,
            &SUFFIX,
            self.owner(),
            &self.lib.config().network,
            1,
            [salt; 16],
        )
        .expect("item")
    }

    /// A document for a new item by the site lead, not yet committed.
    fn doc(&self, salt: u8) -> (AutoCommit, ItemId) {
        let item = ItemId::derive(&self.owner(), &[salt; 16]);
        let mut doc = AutoCommit::new().with_actor(actor_id(&self.member.public(), &SUFFIX));
        init_doc(&mut doc, item, &self.owner()).expect("init");
        (doc, item)
    }

    /// Signs the last change made in `doc`.
    fn sign(&self, doc: &mut AutoCommit, item: ItemId, salt: u8) -> Verified {
        doc.commit();
        let change = doc.get_last_local_change().expect("a change");
        Verified::sign(
            Body::Change(Box::new(ChangePayload {
                item,
                owner: self.owner(),
                salt: [salt; 16],
                change,
            })),
            &self.member,
            &self.lib.config().network,
            1,
        )
    }
}

fn with_body(body: &str) -> ItemContent {
    ItemContent {
        body: body.into(),
        ..synthetic_content(1)
    }
}

fn refused_for(lib: &mut Library, env: &Verified) -> String {
    match lib.ingest(env.bytes()) {
        Err(e @ LibraryError::ContentRefused { .. }) => e.to_string(),
        other => panic!("expected a content refusal, got {other:?}"),
    }
}

#[test]
fn identifiers_from_a_peer_are_refused_however_written() {
    let mut site = site();
    let mut peer = receiver(&site);
    let items_before = peer.status().expect("status").items;
    let link_split = "Ring [943](a)[476](b)[5919](c) for the results.\n";
    // The split by links is not in the source as a reader sees it, only in
    // the rendered page: the source scan alone would miss it.
    assert!(find_identifiers(link_split).is_empty());
    assert!(!find_identifiers(&plain_text(link_split)).is_empty());
    // Every disguise the scanner's own test knows, in a body; split by
    // links; a prison number in a title.
    let mut hostile: Vec<ItemContent> = disguises::disguises("9434765919")
        .iter()
        .map(|d| with_body(&format!("Patient {d} was seen.\n")))
        .collect();
    assert_eq!(hostile.len(), disguises::DISGUISES);
    hostile.push(with_body(link_split));
    hostile.push(ItemContent {
        title: "Follow-up for A1234BC".into(),
        ..synthetic_content(1)
    });
    for (n, content) in hostile.iter().enumerate() {
        // Refused by a local publish too.
        assert!(
            site.lib.publish(content, &[]).is_err(),
            "published: {:?}",
            content.body
        );
        let env = site.raw_item(content, &[], 100 + n as u8);
        let reason = refused_for(&mut peer, &env);
        assert!(reason.contains("looks like"), "{reason}");
        assert!(!peer.has_envelope(&env.id()).expect("has"));
        // By bundle, the same.
        let report = bundle::import(
            &mut peer,
            &bundle::write(&site.lib.config().network, &[env.bytes().to_vec()]),
        )
        .expect("import");
        assert_eq!(report.new, 0);
        // For the same reason: a bundle's first changes are built where
        // they are opened, judged as one arriving alone.
        assert_eq!(report.refused.get(&reason), Some(&1), "{report:?}");
        assert!(!peer.has_envelope(&env.id()).expect("has"));
    }
    assert_eq!(peer.status().expect("status").items, items_before);
    // A clean item from the same site is stored.
    let clean = site.raw_item(&synthetic_content(2), &[], 50);
    peer.ingest(clean.bytes()).expect("a clean item");
    assert_eq!(peer.status().expect("status").items, items_before + 1);
}

#[test]
fn an_identifier_the_author_allowed_is_accepted_exactly() {
    let mut site = site();
    let mut peer = receiver(&site);
    let example = "The form shows the example number 943 476 5919.\n";
    let allowed = vec!["943 476 5919".to_string()];
    // Published with the allowance, the change carries it.
    let id = site
        .lib
        .publish(&with_body(example), &allowed)
        .expect("publish with the allowance");
    for bytes in site.lib.export().expect("export") {
        let _ = peer.ingest(&bytes);
    }
    let got = peer.get(&id, None).expect("held at the peer");
    assert_eq!(got.item.allowed_identifiers, allowed);

    // The allowance covers that number, not another.
    let other = "The example number 943 476 5919, and 401 023 2137.\n";
    let env = site.raw_item(&with_body(other), &allowed, 60);
    assert!(refused_for(&mut peer, &env).contains("401 023 2137"));
}

#[test]
fn an_identifier_split_over_two_changes_is_refused() {
    let site = site();
    let mut peer = receiver(&site);
    let (mut doc, item) = site.doc(70);
    write_version(
        &mut doc,
        &with_body("Call 943 476\n"),
        &site.member.public(),
    )
    .expect("write");
    let first = site.sign(&mut doc, item, 70);
    write_version(
        &mut doc,
        &with_body("Call 943 476 5919\n"),
        &site.member.public(),
    )
    .expect("write");
    let second = site.sign(&mut doc, item, 70);
    // The second arriving first waits for the first.
    assert!(matches!(
        peer.ingest(second.bytes()),
        Err(LibraryError::NoEffect(_))
    ));
    peer.ingest(first.bytes())
        .expect("the first part alone is clean");
    assert!(refused_for(&mut peer, &second).contains("looks like"));
    assert!(!peer.has_envelope(&second.id()).expect("has"));
}

#[test]
fn content_rules_hold_for_what_peers_send() {
    let site = site();
    let mut peer = receiver(&site);
    let (mut doc, item) = site.doc(80);
    write_version(&mut doc, &synthetic_content(3), &site.member.public()).expect("write");
    let created = site.sign(&mut doc, item, 80);
    peer.ingest(created.bytes()).expect("a clean item");

    // A title written as a text object, as other Automerge implementations
    // write strings, reads as the text.
    let title = doc.put_object(ROOT, "title", ObjType::Text).expect("text");
    doc.splice_text(&title, 0, 0, "Naloxone on release")
        .expect("splice");
    let as_text = site.sign(&mut doc, item, 80);
    peer.ingest(as_text.bytes()).expect("text objects read");
    assert_eq!(
        peer.get(&item, None).expect("item").item.content.title,
        "Naloxone on release"
    );

    // Fields that do not read, or break the rules, are refused by name.
    let cases: Vec<(&str, Edit)> = vec![
        (
            "review_due",
            Box::new(|d: &mut AutoCommit| d.put(ROOT, "review_due", "soon").expect("put")),
        ),
        (
            "title",
            Box::new(|d: &mut AutoCommit| d.delete(ROOT, "title").expect("delete")),
        ),
        (
            "kind",
            Box::new(|d: &mut AutoCommit| d.put(ROOT, "kind", 7_i64).expect("put")),
        ),
        (
            "review_due",
            Box::new(|d: &mut AutoCommit| d.put(ROOT, "review_due", "2000-01-01").expect("put")),
        ),
        (
            "pathways",
            Box::new(|d: &mut AutoCommit| {
                d.put_object(ROOT, "pathways", ObjType::List).expect("list");
            }),
        ),
    ];
    for (field, edit) in cases {
        let mut fork = doc
            .fork()
            .with_actor(actor_id(&site.member.public(), &SUFFIX));
        edit(&mut fork);
        let env = site.sign(&mut fork, item, 80);
        let reason = refused_for(&mut peer, &env);
        assert!(reason.contains(field), "{field}: {reason}");
        assert!(!peer.has_envelope(&env.id()).expect("has"));
    }
    // The item as the peer holds it is the last good version.
    let held = peer.get(&item, None).expect("item").item;
    assert_eq!(held.content.title, "Naloxone on release");
    assert_eq!(
        held.content.review_due,
        synthetic_content(3).review_due,
        "{:?}",
        doc.get(ROOT, "review_due")
    );
}

#[test]
fn identifiers_in_certificates_from_a_peer_are_refused() {
    use gatehouse_protocol::certificate::{
        Certificate, Delegation, MemberRole, Revocation, RevokeTarget,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let site = site();
    let mut peer = receiver(&site);
    let network = site.lib.config().network;
    // The site's establishment key, as a modified node would use it.
    let home = Home::new(site._dir.path().join("node"));
    let est = home
        .read_key("establishment")
        .expect("read")
        .expect("establishment key");
    let sign = |c: Certificate| Verified::sign(Body::Certificate(c), &est, &network, 5);
    let hostile = [
        sign(Certificate::Delegate(Delegation {
            establishment: site.owner(),
            member: SecretKey::from_seed([31; 32]).public(),
            name: "Nurse for 943 476 5919".into(),
            role: MemberRole::Person,
        })),
        sign(Certificate::Revoke(Revocation {
            target: RevokeTarget::Key(site.member.public()),
            keep: vec![],
            reason: "left after the incident with A1234BC".into(),
        })),
    ];
    for env in &hostile {
        let before = peer.status().expect("status").envelopes;
        match peer.ingest(env.bytes()) {
            Err(e @ LibraryError::CertificateRefused { .. }) => {
                let said = e.to_string();
                assert!(said.contains("looks like"), "{said}");
                // The refusal names the kind, never the text.
                assert!(
                    !said.contains("5919") && !said.contains("A1234BC"),
                    "{said}"
                );
            }
            other => panic!("expected a certificate refusal, got {other:?}"),
        }
        let path = dir.path().join("certs.bundle");
        std::fs::write(&path, bundle::write(&network, &[env.bytes().to_vec()])).expect("write");
        let report =
            bundle::import(&mut peer, &bundle::read_file(&path).expect("read")).expect("import");
        assert_eq!(report.refused.values().sum::<usize>(), 1, "{report:?}");
        assert!(!peer.has_envelope(&env.id()).expect("has"));
        assert_eq!(peer.status().expect("status").envelopes, before);
    }
    // The site lead's key was not revoked: their items are still taken.
    let clean = site.raw_item(&synthetic_content(3), &[], 60);
    peer.ingest(clean.bytes()).expect("a clean item");
}
