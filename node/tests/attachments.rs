//! Files items carry: checked before they are signed (their type, and no
//! patient identifier in their text, named where it is), kept once by
//! hash, carried to another node in verified pieces, checked again there
//! when whole (refused if they fail), and found by their text.

mod common;

use std::path::PathBuf;

use common::{new_site, offer_until_stored, other_node};
use gatehouse_node::authoring::Draft;
use gatehouse_node::authoring::attach::{BlobCheck, attachment_from_file};
use gatehouse_node::blobs::{BlobState, BlobStore, Received};
use gatehouse_node::library::{Library, LibraryError};
use gatehouse_node::query::filter::Filter;
use gatehouse_node::sample::synthetic_content;
use gatehouse_protocol::attachment::Attachment;
use gatehouse_protocol::id::ItemId;
use gatehouse_protocol::item::ItemContent;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

fn content(title: &str) -> ItemContent {
    let mut c = synthetic_content(3);
    c.title = title.into();
    c.qi = None;
    c.kind = gatehouse_protocol::vocab::Kind::Procedure;
    c.body = "# Purpose\n\nWhat to do when someone is found unresponsive.\n".into();
    c
}

fn found(lib: &Library, words: &str) -> Vec<ItemId> {
    lib.search(words, &Filter::default(), 10)
        .expect("search")
        .results
        .iter()
        .map(|h| h.view.item.id)
        .collect()
}

fn attach(lib: &Library, name: &str) -> Attachment {
    attachment_from_file(lib.blobs().expect("a file store"), &fixture(name)).expect("attach")
}

#[test]
fn a_pdf_attached_is_kept_with_the_version_and_found_by_its_text() {
    let (_dir, _home, mut lib) = new_site();
    assert!(found(&lib, "naloxone").is_empty());
    let pdf = attach(&lib, "flowchart.pdf");
    assert_eq!(pdf.media_type.slug(), "pdf");
    let id = lib
        .publish_with(
            &content("Unresponsive person"),
            &[],
            std::slice::from_ref(&pdf),
        )
        .expect("publish");
    let item = lib.get(&id, None).expect("item").item;
    assert_eq!(item.attachments, vec![pdf.clone()]);
    // "naloxone" is only in the PDF.
    assert_eq!(found(&lib, "naloxone"), vec![id]);

    // A revision that says nothing of files keeps them; one that takes
    // the file off drops it from the new version and from search.
    let mut next = content("Unresponsive person");
    next.summary = "Revised.".into();
    lib.revise(&id, &next, &[]).expect("revise");
    assert_eq!(lib.get(&id, None).expect("item").item.attachments.len(), 1);
    next.summary = "Revised again.".into();
    lib.revise_with(&id, &next, &[], Some(&[])).expect("revise");
    assert!(
        lib.get(&id, None)
            .expect("item")
            .item
            .attachments
            .is_empty()
    );
    assert!(found(&lib, "naloxone").is_empty());
    // Version 1 still names it.
    let v1 = lib.get(&id, Some(1)).expect("v1").item;
    assert_eq!(v1.attachments, vec![pdf]);
}

#[test]
fn a_file_holding_a_patient_identifier_is_refused_naming_where_it_is() {
    let (_dir, _home, mut lib) = new_site();
    for (file, location) in [
        ("identifier.pdf", "page 2"),
        ("identifier-in-table.docx", "table 1, row 3, column 2"),
    ] {
        let a = attach(&lib, file);
        let e = lib
            .publish_with(&content("Audit"), &[], &[a])
            .expect_err("refused");
        let LibraryError::IdentifierInAttachment {
            name,
            location: at,
            text,
            ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!(
            (name.as_str(), at.as_str(), text.as_str()),
            (file, location, "943 476 5919")
        );
        assert!(e.to_string().contains(location), "{e}");
    }
    // Reviewed and allowed by its author, it is published.
    let a = attach(&lib, "identifier.pdf");
    lib.publish_with(&content("Audit"), &["943 476 5919".into()], &[a])
        .expect("allowed");

    // A file that is not what its name says is refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("flowchart.pdf");
    std::fs::copy(fixture("policy.docx"), &fake).expect("copy");
    let a = attachment_from_file(lib.blobs().expect("store"), &fake).expect("stored");
    let e = lib
        .publish_with(&content("Fake"), &[], &[a])
        .expect_err("refused");
    assert!(e.to_string().contains("not a PDF"), "{e}");
    // And a kind of file that cannot be attached at all.
    let exe = dir.path().join("tool.exe");
    std::fs::write(&exe, b"MZ").expect("write");
    let e = attachment_from_file(lib.blobs().expect("store"), &exe).expect_err("refused");
    assert!(e.to_string().contains("cannot be attached"), "{e}");
}

/// Moves a file from one store to another in pieces, as the network does.
fn carry(from: &BlobStore, to: &BlobStore, a: &Attachment) {
    let mut at = 0;
    loop {
        let piece = from.slice(&a.hash, at, 4096).expect("slice");
        match to.receive(&a.hash, a.size, at, &piece).expect("receive") {
            Received::Partial(n) => at = n,
            Received::Complete => return,
        }
    }
}

#[test]
fn a_file_from_another_site_is_checked_when_whole_then_indexed_or_refused() {
    let (_dir, _home, mut a) = new_site();
    let pdf = attach(&a, "flowchart.pdf");
    let good = a
        .publish_with(
            &content("Unresponsive person"),
            &[],
            std::slice::from_ref(&pdf),
        )
        .expect("publish");
    // A site whose node skips the checks signs a file holding an NHS number.
    let bad_file = attach(&a, "identifier.pdf");
    let key = a.signing_key().expect("key");
    let env = gatehouse_node::authoring::new_item_with_salt(
        Draft {
            content: &content("Incident review"),
            allowed: &[],
            adoption: None,
            attachments: std::slice::from_ref(&bad_file),
        },
        &key,
        &[7; 16],
        a.config().establishment,
        &a.config().network,
        1_700_000_000_000,
        [9; 16],
    )
    .expect("signed");
    let mut all = a.export().expect("export");
    all.push(env.bytes().to_vec());

    let mut b = other_node(&a);
    let dir = tempfile::tempdir().expect("tempdir");
    b.use_blobs(BlobStore::open(dir.path()).expect("store"));
    offer_until_stored(&mut b, all);
    // The change is in; its files are wanted, smallest first.
    let wanted: Vec<_> = b
        .wanted_blobs()
        .expect("wanted")
        .into_iter()
        .map(|w| w.attachment.name)
        .collect();
    assert_eq!(wanted.len(), 2, "{wanted:?}");
    assert!(found(&b, "naloxone").is_empty());
    let page = b.read_view().get(&good, None).expect("item");
    assert_eq!(
        b.read_view().file_state(&page.item.attachments[0].hash),
        BlobState::Absent
    );

    let from = a.blobs().expect("store").clone();
    let to = b.blobs().expect("store").clone();
    carry(&from, &to, &pdf);
    assert_eq!(b.blob_arrived(&pdf.hash).expect("check"), BlobCheck::Kept);
    assert_eq!(found(&b, "naloxone"), vec![good]);

    carry(&from, &to, &bad_file);
    let BlobCheck::Refused(reason) = b.blob_arrived(&bad_file.hash).expect("check") else {
        panic!("kept a file with an NHS number")
    };
    assert!(reason.contains("page 2"), "{reason}");
    assert!(matches!(to.state(&bad_file.hash), BlobState::Refused(_)));
    assert!(to.read(&bad_file.hash).is_err(), "its bytes are gone");
    assert!(
        b.wanted_blobs().expect("wanted").is_empty(),
        "not fetched again"
    );
}
