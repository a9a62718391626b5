//! Every input kept under `tests/fuzz/regressions/<target>/` (crashers the
//! fuzz targets found, and seeds of each format) replayed through its
//! target: each must return normally.

use std::path::PathBuf;

use gatehouse_tests::fuzz::TARGETS;

#[test]
fn every_kept_fuzz_input_is_handled() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            let data = std::fs::read(&path).expect("read");
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} panicked", path.display());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no inputs under {}", root.display());
}

/// Writes one well-formed input of each format under
/// `tests/fuzz/regressions/` (the seeds the fuzz runs start from):
/// `cargo test -p gatehouse-tests --test fuzz -- --ignored`.
#[test]
#[ignore = "writes the seed inputs; run by hand when a format changes"]
fn write_seed_inputs() {
    use gatehouse_node::home::Home;
    use gatehouse_node::library::{InitOptions, Library};
    use gatehouse_node::replica::bundle;
    use gatehouse_node::sample::synthetic_content;
    use gatehouse_protocol::envelope::{Body, Envelope};
    use gatehouse_protocol::id::EnvelopeId;
    use gatehouse_protocol::reconcile::Reconciler;
    use gatehouse_protocol::sync::{SyncRequest, SyncResponse};
    use gatehouse_protocol::vocab::{Nation, Setting};

    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::new(dir.path().join("node"));
    let (mut lib, _) = Library::init(
        &home,
        &InitOptions {
            establishment: "HMP Northgate".into(),
            setting: Setting::LocalRemand,
            nation: Nation::England,
            network_name: "Seed network".into(),
            member_name: "Healthcare manager".into(),
        },
    )
    .expect("init");
    lib.publish(&synthetic_content(1), &[]).expect("publish");
    let envelopes = lib.export().expect("export");
    let network = lib.config().network;
    let mut ids: Vec<EnvelopeId> = envelopes.iter().map(|e| EnvelopeId::of(e)).collect();
    ids.sort();
    let reconcile = Reconciler::new(&ids).initiate().encode();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(name), data).expect("write");
    };
    for (n, e) in envelopes.iter().enumerate() {
        let env = Envelope::open(e, &network).expect("opens");
        let kind = env.kind();
        write("envelope", &format!("seed-{n}-{kind:?}").to_lowercase(), e);
        match env.body() {
            Body::Certificate(c) => write("certificate", &format!("seed-{n}"), &c.encode()),
            Body::Change(c) => write("change", &format!("seed-{n}"), &c.encode()),
            // Posts and records are fuzzed through the envelope target.
            Body::Post(_) | Body::Record(_) | Body::Unread { .. } => {}
        }
    }
    write("bundle", "seed", &bundle::write(&network, &envelopes));
    write("reconcile", "seed", &reconcile);
    write(
        "sync",
        "seed-reconcile",
        &SyncRequest::Reconcile(reconcile.clone()).encode(),
    );
    write(
        "sync",
        "seed-push",
        &SyncRequest::Push(envelopes[..2].to_vec()).encode(),
    );
    write(
        "sync",
        "seed-fetch",
        &SyncRequest::Fetch(ids[..2].to_vec()).encode(),
    );
    write(
        "sync",
        "seed-response",
        &SyncResponse::Envelopes(envelopes[..2].to_vec()).encode(),
    );
    write("posts", "seed-conversation", &post_frames());
    let samples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples/library");
    let mut drafts: Vec<PathBuf> = std::fs::read_dir(&samples)
        .expect("samples")
        .flat_map(|d| {
            std::fs::read_dir(d.expect("entry").path())
                .into_iter()
                .flatten()
        })
        .map(|f| f.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    drafts.sort();
    for (n, p) in drafts.iter().take(4).enumerate() {
        let text = std::fs::read(p).expect("read");
        write("front_matter", &format!("seed-{n}"), &text);
        write("markdown", &format!("seed-{n}"), &text);
    }
}

/// A conversation framed for the `posts` target: a question (id `[0; 32]`),
/// two answers from other sites, an edit, a resolution, a helpful mark, a
/// retraction, an admin's hide and a discussion of an item.
fn post_frames() -> Vec<u8> {
    use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, ItemId};
    use gatehouse_protocol::post::{Action, Edit, Post, Question, Reply, Topic, Urgency, Voice};
    use gatehouse_protocol::vocab::{Pathway, Setting};

    let site = |n: u8| Voice::Establishment(EstablishmentId([n; 16]));
    let id = |n: u8| EnvelopeId([n; 32]);
    let posts = [
        (
            0,
            site(1),
            Action::Ask(Question {
                title: "Gabapentinoid diversion on a Cat C wing".into(),
                body: "How do you **supervise** it?".into(),
                pathways: vec![Pathway::PharmacyMedicines],
                settings: vec![Setting::PrisonCatC],
                urgency: Urgency::WithinAWeek,
                links: vec![ItemId([9; 16])],
            }),
        ),
        (
            1,
            site(2),
            Action::Reply(Reply {
                thread: id(0),
                quoting: None,
                body: "Liquid, supervised at the hatch.".into(),
            }),
        ),
        (
            2,
            site(3),
            Action::Reply(Reply {
                thread: id(0),
                quoting: Some(id(1)),
                body: "> Liquid\n\nSame here.".into(),
            }),
        ),
        (
            1,
            site(2),
            Action::Edit(Edit {
                post: id(1),
                title: None,
                body: "Liquid, supervised at the hatch, with a mouth check.".into(),
            }),
        ),
        (
            0,
            site(1),
            Action::Resolve {
                question: id(0),
                answer: id(1),
            },
        ),
        (0, site(1), Action::Helpful { answer: id(2) }),
        (2, site(3), Action::Retract { post: id(2) }),
        (
            0,
            Voice::Admin,
            Action::Hide {
                post: id(1),
                reason: "Names a wing".into(),
            },
        ),
        (
            1,
            site(2),
            Action::Topic(Topic {
                title: "Vapes on the wings".into(),
                body: "What do others do?".into(),
                about: Some(ItemId([9; 16])),
                pathways: vec![Pathway::HealthPromotion],
            }),
        ),
    ];
    let mut out = Vec::new();
    for (signer, voice, action) in posts {
        let bytes = Post { voice, action }.encode();
        out.extend_from_slice(&u16::try_from(bytes.len()).expect("short").to_be_bytes());
        out.push(signer);
        out.extend_from_slice(&bytes);
    }
    out
}
