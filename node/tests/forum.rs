//! Staff accounts and posts on one node: a site lead adds a clinician, who
//! sets a password, asks a question and sees it listed under their name;
//! identifiers are refused at writing (pointing at the text) and on
//! receipt; a removed person's key stops posting while their past posts
//! stay; the forum is rebuilt on reopening; a conversation reaches an
//! offline site by bundle, and a post carrying an identifier does not.

mod common;

use gatehouse_node::error::LibraryError;
use gatehouse_node::library::Library;
use gatehouse_node::query::forum::{ThreadList, ThreadQuery};
use gatehouse_node::staff::{AccountState, Staff, StaffError};
use gatehouse_protocol::certificate::MemberRole;
use gatehouse_protocol::envelope::{Body, Verified};
use gatehouse_protocol::post::{Action, Post, Question, Reply, Urgency, Voice};
use gatehouse_protocol::trust::{Judgement, RejectReason};
use gatehouse_protocol::vocab::Pathway;

fn question(title: &str, body: &str) -> Action {
    Action::Ask(Question {
        title: title.into(),
        body: body.into(),
        pathways: vec![Pathway::PharmacyMedicines],
        settings: vec![],
        urgency: Urgency::WithinAWeek,
        links: vec![],
    })
}

fn post(lib: &Library, action: Action) -> Post {
    Post {
        voice: Voice::Establishment(lib.config().establishment),
        action,
    }
}

#[test]
fn a_clinician_signs_in_asks_and_is_named_as_the_asker() {
    let (_dir, home, mut lib) = common::new_site();
    let staff = Staff::of(&home);
    let new = staff
        .add(&mut lib, "Dr A Patel", None, MemberRole::Clinician)
        .expect("add");
    assert_eq!(new.account.login, "dr-a-patel");
    // Not set up yet: a password alone does not open the key.
    assert!(matches!(
        staff.sign_in("dr-a-patel", "anything at all"),
        Err(StaffError::NotSetUp)
    ));
    assert!(matches!(
        staff.set_up(
            "dr-a-patel",
            "wrong-code-wrong-code",
            "a long enough password"
        ),
        Err(StaffError::WrongSecret)
    ));
    let (_, key) = staff
        .set_up("dr-a-patel", &new.setup_code, "a long enough password")
        .expect("set up");
    // The code is one-time.
    assert!(
        staff
            .set_up("dr-a-patel", &new.setup_code, "another long password")
            .is_err()
    );
    let (_, again) = staff
        .sign_in("dr-a-patel", "a long enough password")
        .expect("sign in");
    assert_eq!(again.public(), key.public());

    let id = lib
        .post_as(
            &key,
            post(
                &lib,
                question(
                    "Gabapentinoid diversion on a Cat C wing",
                    "How do you manage it?",
                ),
            ),
        )
        .expect("ask");
    let view = lib.read_view();
    let open = view.threads(&ThreadQuery::default(), lib.now());
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, id);
    assert_eq!(open[0].author.name.as_deref(), Some("Dr A Patel"));
    assert_eq!(open[0].author.role, Some(MemberRole::Clinician));
    assert_eq!(
        open[0].author.label(),
        "Dr A Patel (clinician), HMP Northgate"
    );

    // A clinician's key may not publish library items.
    let change_signed_by_clinician = lib.trust().judge_change(
        &gatehouse_protocol::id::EnvelopeId([1; 32]),
        &key.public(),
        &lib.config().establishment,
    );
    assert_eq!(
        change_signed_by_clinician,
        Judgement::Rejected(RejectReason::RoleMayNotPublish)
    );
}

#[test]
fn an_identifier_is_refused_at_writing_with_where_it_is() {
    let (_dir, _home, mut lib) = common::new_site();
    let err = lib
        .post(question(
            "Transfer question",
            "First line\nThe patient 943 476 5919 moved wings.",
        ))
        .expect_err("refused");
    match &err {
        LibraryError::IdentifierInPost {
            field,
            line,
            column,
            ..
        } => {
            assert_eq!(*field, "body");
            assert_eq!((*line, *column), (2, 13));
        }
        other => panic!("expected an identifier refusal, got {other}"),
    }
    assert!(err.to_string().contains("line 2, column 13"), "{err}");
    assert!(
        lib.read_view()
            .threads(&ThreadQuery::default(), 0)
            .is_empty()
    );
}

#[test]
fn a_post_with_an_identifier_from_outside_is_refused_and_not_stored() {
    let (_dir, _home, mut lib) = common::new_site();
    let key = lib.signing_key().expect("key");
    let env = Verified::sign(
        Body::Post(Box::new(post(
            &lib,
            question("A question", "Prison number A1234BC came back."),
        ))),
        &key,
        &lib.config().network,
        1,
    );
    let err = lib.ingest(env.bytes()).expect_err("refused");
    assert!(
        matches!(err, LibraryError::PostRefused { field: "body", .. }),
        "{err}"
    );
    assert!(
        !err.to_string().contains("A1234BC"),
        "the refusal repeats no identifier"
    );
    assert!(!lib.has_envelope(&env.id()).expect("has"));
}

#[test]
fn a_removed_clinician_posts_no_more_and_their_past_posts_stay() {
    let (_dir, home, mut lib) = common::new_site();
    let staff = Staff::of(&home);
    let new = staff
        .add(
            &mut lib,
            "Nurse B Okafor",
            Some("bokafor"),
            MemberRole::Clinician,
        )
        .expect("add");
    let (_, key) = staff
        .set_up("bokafor", &new.setup_code, "twelve chars or more")
        .expect("set up");
    let asked = lib
        .post_as(
            &key,
            post(&lib, question("Wound care packs", "Which do you stock?")),
        )
        .expect("ask");
    let gone = staff
        .remove(&mut lib, "bokafor", "left the service")
        .expect("remove");
    assert_eq!(gone.state, AccountState::Removed);
    assert!(matches!(
        staff.sign_in("bokafor", "twelve chars or more"),
        Err(StaffError::Removed)
    ));
    // The old key can sign, but nothing it signs now takes effect.
    let late = lib.post_as(
        &key,
        post(
            &lib,
            Action::Reply(Reply {
                thread: asked,
                quoting: None,
                body: "Still here".into(),
            }),
        ),
    );
    assert!(
        matches!(
            late,
            Err(LibraryError::NotAuthorised(Judgement::Rejected(
                RejectReason::KeyRevoked
            )))
        ),
        "{late:?}"
    );
    let view = lib.read_view();
    let thread = view.thread(&asked, 0).expect("thread");
    assert_eq!(thread.posts.len(), 1);
    assert_eq!(
        thread.posts[0].author.name.as_deref(),
        Some("Nurse B Okafor")
    );
}

#[test]
fn replies_resolutions_and_edits_survive_a_reopen() {
    let (_dir, home, mut lib) = common::new_site();
    let staff = Staff::of(&home);
    let new = staff
        .add(&mut lib, "Dr C Jones", None, MemberRole::Clinician)
        .expect("add");
    let (_, clinician) = staff
        .set_up("dr-c-jones", &new.setup_code, "twelve chars or more")
        .expect("set up");
    let asked = lib
        .post(question("Naloxone on release", "Who hands it over?"))
        .expect("ask");
    let answer = lib
        .post_as(
            &clinician,
            post(
                &lib,
                Action::Reply(Reply {
                    thread: asked,
                    quoting: None,
                    body: "Reception staff, with a leaflet.".into(),
                }),
            ),
        )
        .expect("answer");
    // Only the asker (or a lead of their site) resolves.
    let not_asker = lib.post_as(
        &clinician,
        post(
            &lib,
            Action::Resolve {
                question: asked,
                answer,
            },
        ),
    );
    assert!(
        matches!(not_asker, Err(LibraryError::BadPost(_))),
        "{not_asker:?}"
    );
    lib.post(Action::Resolve {
        question: asked,
        answer,
    })
    .expect("resolve");
    lib.post_as(
        &clinician,
        post(
            &lib,
            Action::Edit(gatehouse_protocol::post::Edit {
                post: answer,
                title: None,
                body: "Reception staff, with a leaflet and a demonstration.".into(),
            }),
        ),
    )
    .expect("edit");
    drop(lib);
    let lib = Library::open(&home).expect("reopen");
    let view = lib.read_view();
    let answered = view.threads(
        &ThreadQuery {
            list: ThreadList::Answered,
            ..ThreadQuery::default()
        },
        0,
    );
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].resolved_by, Some(answer));
    let thread = view.thread(&asked, 0).expect("thread");
    let reply = &thread.posts[1];
    assert!(reply.resolves);
    assert_eq!(
        reply.versions.len(),
        2,
        "the edit is a new version, the first kept"
    );
    assert_eq!(
        reply.body.as_deref(),
        Some("Reception staff, with a leaflet and a demonstration.")
    );
}

/// A library of `network` in memory, for a site that takes bundles.
fn offline_site(
    network: gatehouse_protocol::id::NetworkId,
    own: gatehouse_protocol::id::EstablishmentId,
) -> Library {
    Library::with_store(
        std::sync::Arc::new(gatehouse_node::store::MemoryStore::new()),
        gatehouse_node::library::NodeConfig {
            network,
            establishment: own,
            member: None,
            node: gatehouse_protocol::key::SecretKey::from_seed([77; 32]).public(),
            actor_suffix: "0f0e0d0c0b0a09080706050403020100".into(),
        },
        gatehouse_node::projection::search::SearchIndex::in_memory().expect("index"),
        None,
    )
    .expect("library")
}

#[test]
fn a_conversation_reaches_an_offline_site_by_bundle_and_an_identifier_does_not() {
    use gatehouse_node::replica::bundle;
    let (_dir, home, mut lib) = common::new_site();
    let staff = Staff::of(&home);
    let new = staff
        .add(
            &mut lib,
            "Dr A Patel",
            Some("apatel"),
            MemberRole::Clinician,
        )
        .expect("add");
    let (_, key) = staff
        .set_up("apatel", &new.setup_code, "twelve chars or more")
        .expect("set up");
    let asked = lib
        .post_as(
            &key,
            post(
                &lib,
                question("Hepatitis C testing on reception", "Opt-out?"),
            ),
        )
        .expect("ask");
    lib.post(Action::Reply(Reply {
        thread: asked,
        quoting: None,
        body: "Opt-out, at the second-night check.".into(),
    }))
    .expect("reply");
    let network = lib.config().network;
    let mut envelopes = bundle::select(&lib, None).expect("select");
    // A post with an NHS number, signed by the clinician's real key, rides
    // along in the same bundle.
    let bad = Verified::sign(
        Body::Post(Box::new(post(
            &lib,
            Action::Reply(Reply {
                thread: asked,
                quoting: None,
                body: "See 943 476 5919.".into(),
            }),
        ))),
        &key,
        &network,
        1,
    );
    envelopes.push(bad.bytes().to_vec());

    let mut offline = offline_site(network, gatehouse_protocol::id::EstablishmentId([3; 16]));
    let report =
        bundle::import(&mut offline, &bundle::write(&network, &envelopes)).expect("import");
    assert_eq!(report.refused.values().sum::<usize>(), 1, "{report:?}");
    let view = offline.read_view();
    let thread = view.thread(&asked, 0).expect("the thread arrived");
    assert_eq!(thread.posts.len(), 2);
    assert_eq!(thread.posts[0].author.name.as_deref(), Some("Dr A Patel"));
    assert!(
        thread
            .posts
            .iter()
            .all(|p| !p.body.as_deref().unwrap_or("").contains("943")),
        "the identifier was not stored"
    );
    // Everything else was stored; the refused post was not.
    assert_eq!(
        offline.status().expect("status").envelopes,
        envelopes.len() - 1
    );
}
