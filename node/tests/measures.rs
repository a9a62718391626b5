//! A QI initiative's measures over time: defined, added to, noted and
//! scored by the owning site as signed changes that make no new version;
//! refused on anything but a QI initiative, with a value that is not a
//! number, or with a patient identifier in any text, here and on receipt.

mod common;

use common::{new_site, offer_until_stored, other_node};
use gatehouse_node::authoring::draft;
use gatehouse_node::library::{Library, LibraryError};
use gatehouse_node::sample::synthetic_content;
use gatehouse_protocol::automerge::AutoCommit;
use gatehouse_protocol::automerge::transaction::CommitOptions;
use gatehouse_protocol::change::{ChangePayload, actor_id};
use gatehouse_protocol::envelope::{Body, Envelope, Verified};
use gatehouse_protocol::id::ItemId;
use gatehouse_protocol::item::{
    self, DataPoint, Improvement, MeasureDefinition, Note, Progress, ProgressScore, QiStage,
};
use gatehouse_protocol::jiff::civil::Date;

const QI: &str = "---\ntitle: Medication reviews on reception\nkind: qi-initiative\n\
summary: Reviews within a week of reception.\npathways: [pharmacy-medicines]\n\
settings: [local-remand]\nnation: england\nreview_due: 2028-06-30\n\
aim: 90% of reviews within 7 days.\nmeasures: [Reviews within 7 days]\n\
pdsa_cycles: [A pharmacist at reception]\noutcomes: To come.\n---\n\nThe initiative.\n";

fn definition() -> MeasureDefinition {
    MeasureDefinition {
        key: "reviews-on-time".into(),
        name: "Reviews within 7 days".into(),
        definition: "Reviews within 7 days of reception, as a share of receptions.".into(),
        unit: "%".into(),
        improvement: Improvement::Higher,
        baseline_until: None,
    }
}

fn point(month: i8, value: f64) -> DataPoint {
    DataPoint {
        date: Date::constant(2026, 1, 1)
            .with()
            .month(month)
            .build()
            .expect("date"),
        value,
    }
}

/// A change to `id` made by `write` and signed with the site lead's key
/// without the library's checks, as a modified node could send.
fn unchecked_change(lib: &Library, id: ItemId, write: impl FnOnce(&mut AutoCommit)) -> Vec<u8> {
    let key = lib.signing_key().expect("key");
    let network = lib.config().network;
    let mut doc = AutoCommit::new().with_actor(actor_id(&key.public(), &[9; 16]));
    let mut salt = None;
    for bytes in lib.export().expect("export") {
        let env = Envelope::open(&bytes, &network).expect("opens");
        if let Body::Change(c) = env.body()
            && c.item == id
        {
            doc.apply_changes([c.change.clone()]).expect("apply");
            salt = Some(c.salt);
        }
    }
    write(&mut doc);
    doc.commit_with(CommitOptions::default().with_message("data added"));
    let change = doc.get_last_local_change().expect("change");
    Verified::sign(
        Body::Change(Box::new(ChangePayload {
            item: id,
            owner: lib.config().establishment,
            salt: salt.expect("the item's salt"),
            change,
        })),
        &key,
        &network,
        lib.now(),
    )
    .bytes()
    .to_vec()
}

#[test]
fn a_qi_lead_records_measures_notes_and_progress_as_signed_changes() {
    let (_dir, _home, mut lib) = new_site();
    let id = lib
        .publish(&draft::parse(QI, &[]).expect("parses"), &[])
        .expect("publish");
    lib.define_measure(&id, &definition()).expect("define");
    let points: Vec<DataPoint> = (1..=6).map(|m| point(m, 50.0 + f64::from(m))).collect();
    assert_eq!(
        lib.record_points(&id, "reviews-on-time", &points)
            .expect("record"),
        6
    );
    // A date given again takes the new value.
    lib.record_points(&id, "reviews-on-time", &[point(3, 70.5)])
        .expect("correct one");
    lib.note_measure(
        &id,
        "reviews-on-time",
        &Note {
            date: point(4, 0.0).date,
            text: "PDSA 2: a pharmacist at reception".into(),
        },
    )
    .expect("note");
    lib.set_progress(
        &id,
        Progress {
            score: ProgressScore::parse("3.5").expect("score"),
            stage: QiStage::Testing,
        },
    )
    .expect("progress");
    lib.remove_point(&id, "reviews-on-time", point(6, 0.0).date)
        .expect("remove");

    let item = lib.get(&id, None).expect("item").item;
    assert_eq!(item.version, 1, "measures make no new version");
    let m = &item.measures[0];
    assert_eq!(m.definition, definition());
    let values: Vec<f64> = m.points.iter().map(|p| p.value).collect();
    assert_eq!(values, [51.0, 52.0, 70.5, 54.0, 55.0]);
    assert_eq!(m.notes.len(), 1);
    assert_eq!(
        item.progress.map(|p| (p.score.text(), p.stage)),
        Some(("3.5".to_string(), QiStage::Testing))
    );
    let actions: Vec<String> = lib
        .history(&id)
        .expect("history")
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "publish",
            "measure defined",
            "data added",
            "data added",
            "note added",
            "progress",
            "data removed"
        ]
    );

    // Another node holds the same after taking the envelopes.
    let mut other = other_node(&lib);
    offer_until_stored(&mut other, lib.export().expect("export"));
    assert_eq!(other.get(&id, None).expect("item").item, item);

    // Values for a measure not defined, on an item that is not a QI
    // initiative, with an identifier in a note, are refused and change
    // nothing.
    let err = lib
        .record_points(&id, "no-such-measure", &[point(7, 1.0)])
        .expect_err("undefined");
    assert!(err.to_string().contains("not defined"), "{err}");
    let policy = lib.publish(&synthetic_content(2), &[]).expect("policy");
    let err = lib
        .define_measure(&policy, &definition())
        .expect_err("not qi");
    assert!(err.to_string().contains("QI initiatives"), "{err}");
    let err = lib
        .note_measure(
            &id,
            "reviews-on-time",
            &Note {
                date: point(5, 0.0).date,
                text: "Reviewed 943 476 5919 first".into(),
            },
        )
        .expect_err("identifier");
    assert!(matches!(err, LibraryError::Identifier { .. }), "{err}");
    let err = lib
        .record_points(&id, "reviews-on-time", &[point(8, f64::NAN)])
        .expect_err("not a number");
    assert!(err.to_string().contains("finite"), "{err}");
    assert_eq!(lib.get(&id, None).expect("item").item, item);
}

#[test]
fn a_value_that_is_not_a_number_or_an_identifier_in_a_measure_is_refused_on_receipt() {
    let (_dir, _home, mut lib) = new_site();
    let id = lib
        .publish(&draft::parse(QI, &[]).expect("parses"), &[])
        .expect("publish");
    lib.define_measure(&id, &definition()).expect("define");
    let mut other = other_node(&lib);
    offer_until_stored(&mut other, lib.export().expect("export"));
    let before = other.get(&id, None).expect("item").item;

    let nan = unchecked_change(&lib, id, |doc| {
        item::write_points(
            doc,
            "reviews-on-time",
            &[DataPoint {
                date: Date::constant(2026, 2, 28),
                value: f64::NAN,
            }],
        )
        .expect("write");
    });
    let err = other.ingest(&nan).expect_err("NaN refused");
    assert!(
        matches!(err, LibraryError::ContentRefused { .. }) && err.to_string().contains("finite"),
        "{err}"
    );
    let named = unchecked_change(&lib, id, |doc| {
        let mut def = definition();
        def.name = "Reviews for 943 476 5919".into();
        item::write_measure(doc, &def).expect("write");
    });
    let err = other.ingest(&named).expect_err("identifier refused");
    assert!(matches!(err, LibraryError::ContentRefused { .. }), "{err}");
    assert_eq!(other.get(&id, None).expect("item").item, before);
}
