//! An item's first change read on its own, without building its Automerge
//! document: most of what receiving a new item costs is Automerge
//! applying one operation per character of its body, where reading the
//! item needs only the values the change puts.
//!
//! Only a change of the shape a new item's first change has is read here
//! (it depends on no change, is its actor's first with operations counted
//! from 1, and names no actor but its own; every operation puts a new key into a map
//! made in the change or the root, or appends to a list or text made in
//! the change, each element after the one before; a counter is put and
//! incremented; nothing is deleted, overwritten, marked or inserted
//! anywhere else). For such a change the document is exactly what is read:
//! no operation can have another outcome whatever order Automerge sorts
//! them in. Anything else is `None`, and the caller applies the change
//! with Automerge as before. The items read both ways are compared by
//! this module's tests.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use automerge::legacy::{ElementId, Key, ObjectId, OpId, OpType};
use automerge::{ActorId, AutomergeError, Change, ObjId, ObjType, ScalarValue, Value};

use crate::item::ItemRead;

/// A value in a map or a list: a scalar, or an object made in the change
/// (by the counter of the operation that made it).
#[derive(Debug)]
enum Entry {
    Scalar(ScalarValue),
    Object(ObjType, u64),
}

#[derive(Debug)]
enum Object {
    Map(BTreeMap<String, Entry>),
    List(Vec<Entry>),
    Text(String),
}

/// The document a first change makes, read from its operations.
#[derive(Debug)]
pub struct FirstChange {
    actor: ActorId,
    root: BTreeMap<String, Entry>,
    objects: HashMap<u64, Object>,
}

/// Where an object's appended elements end: the last element's counter.
type Tails = HashMap<u64, u64>;

impl FirstChange {
    /// Reads `change` when it has the shape of an item's first change;
    /// `None` otherwise. Automerge's own decoding of the change panics on
    /// some malformed input: call it under [`crate::change::guarded`].
    pub fn read(change: &Change) -> Option<FirstChange> {
        // A new document's first change, by one actor: its first change
        // there (sequence 1) and first operation (1), naming no other actor.
        // Anything else is left to Automerge, which refuses some such
        // changes (or panics on them: a table naming an actor twice, a
        // sequence number past 1) where this reading would not.
        if !change.deps().is_empty()
            || change.seq() != 1
            || change.start_op().get() != 1
            || !change.other_actor_ids().is_empty()
        {
            return None;
        }
        let expanded = change.decode();
        let actor = expanded.actor_id.clone();
        let ours = |id: &OpId| id.1 == actor;
        let mut doc = FirstChange {
            actor: actor.clone(),
            root: BTreeMap::new(),
            objects: HashMap::new(),
        };
        // Counters put in the change: (object, key) by operation.
        let mut counters: HashMap<u64, (Option<u64>, String)> = HashMap::new();
        let mut tails: Tails = HashMap::new();
        let mut counter = expanded.start_op.get();
        for op in &expanded.operations {
            let id = counter;
            counter = counter.checked_add(1)?;
            let obj = match &op.obj {
                ObjectId::Root => None,
                ObjectId::Id(o) if ours(o) && doc.objects.contains_key(&o.0) => Some(o.0),
                ObjectId::Id(_) => return None,
            };
            match (&op.key, op.insert) {
                (Key::Map(key), false) => {
                    let key = key.to_string();
                    if let OpType::Increment(by) = &op.action {
                        // Only of a counter put in the change, at that key.
                        let mut pred = op.pred.iter();
                        let (Some(target), None) = (pred.next(), pred.next()) else {
                            return None;
                        };
                        if !ours(target) || counters.get(&target.0) != Some(&(obj, key.clone())) {
                            return None;
                        }
                        let Some(Entry::Scalar(ScalarValue::Counter(c))) =
                            doc.map_mut(obj)?.get_mut(&key)
                        else {
                            return None;
                        };
                        let now = i64::from(&*c).checked_add(*by)?;
                        *c = now.into();
                        continue;
                    }
                    if !op.pred.is_empty() {
                        return None;
                    }
                    let entry = doc.made(id, &op.action)?;
                    if let Entry::Scalar(ScalarValue::Counter(_)) = entry {
                        counters.insert(id, (obj, key.clone()));
                    }
                    let map = doc.map_mut(obj)?;
                    if map.contains_key(&key) {
                        return None;
                    }
                    map.insert(key, entry);
                }
                (Key::Seq(after), true) => {
                    let obj = obj?;
                    let expected = match tails.get(&obj) {
                        None => ElementId::Head,
                        Some(last) => ElementId::Id(OpId(*last, actor.clone())),
                    };
                    if *after != expected || !op.pred.is_empty() {
                        return None;
                    }
                    let entry = doc.made(id, &op.action)?;
                    match (doc.objects.get_mut(&obj)?, entry) {
                        (Object::Text(text), Entry::Scalar(ScalarValue::Str(s))) => {
                            text.push_str(&s);
                        }
                        (Object::List(list), entry) => list.push(entry),
                        _ => return None,
                    }
                    tails.insert(obj, id);
                }
                _ => return None,
            }
        }
        Some(doc)
    }

    /// The entry `action` puts, making the object it makes.
    fn made(&mut self, id: u64, action: &OpType) -> Option<Entry> {
        match action {
            OpType::Put(v) => Some(Entry::Scalar(v.clone())),
            OpType::Make(t) => {
                let object = match t {
                    ObjType::Map => Object::Map(BTreeMap::new()),
                    ObjType::List => Object::List(Vec::new()),
                    ObjType::Text => Object::Text(String::new()),
                    ObjType::Table => return None,
                };
                self.objects.insert(id, object);
                Some(Entry::Object(*t, id))
            }
            _ => None,
        }
    }

    fn map_mut(&mut self, obj: Option<u64>) -> Option<&mut BTreeMap<String, Entry>> {
        match obj {
            None => Some(&mut self.root),
            Some(o) => match self.objects.get_mut(&o)? {
                Object::Map(m) => Some(m),
                _ => None,
            },
        }
    }

    fn object(&self, obj: &ObjId) -> Option<&Object> {
        match obj {
            ObjId::Root => None,
            ObjId::Id(counter, actor, _) if *actor == self.actor => self.objects.get(counter),
            ObjId::Id(..) => None,
        }
    }

    fn map(&self, obj: &ObjId) -> Option<&BTreeMap<String, Entry>> {
        match obj {
            ObjId::Root => Some(&self.root),
            _ => match self.object(obj)? {
                Object::Map(m) => Some(m),
                _ => None,
            },
        }
    }

    fn value_of<'a>(&'a self, entry: &'a Entry) -> (Value<'a>, ObjId) {
        match entry {
            // No operation has counter 0: read as an object, it is none.
            Entry::Scalar(v) => (
                Value::Scalar(Cow::Borrowed(v)),
                ObjId::Id(0, self.actor.clone(), 0),
            ),
            Entry::Object(t, id) => (Value::Object(*t), ObjId::Id(*id, self.actor.clone(), 0)),
        }
    }
}

impl ItemRead for FirstChange {
    fn value(&self, obj: &ObjId, key: &str) -> Result<Option<(Value<'_>, ObjId)>, AutomergeError> {
        Ok(self
            .map(obj)
            .and_then(|m| m.get(key))
            .map(|e| self.value_of(e)))
    }

    fn map_keys(&self, obj: &ObjId) -> Vec<String> {
        self.map(obj)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn text_at(&self, obj: &ObjId) -> Option<String> {
        match self.object(obj)? {
            Object::Text(t) => Some(t.clone()),
            _ => None,
        }
    }

    fn list_entries(&self, obj: &ObjId) -> Vec<(Value<'_>, ObjId)> {
        match self.object(obj) {
            Some(Object::List(l)) => l.iter().map(|e| self.value_of(e)).collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attachment::{Attachment, BlobHash, MediaType, write_attachments};
    use crate::id::{EnvelopeId, EstablishmentId, ItemId};
    use crate::item::tests::sample_content;
    use crate::item::{
        Adoption, DataPoint, Improvement, ItemContent, MeasureDefinition, Note, Progress,
        ProgressScore, QiDetails, QiStage, init_doc, read_item, write_adoption,
        write_allowed_identifiers, write_measure, write_note, write_points, write_progress,
        write_supersedes, write_version,
    };
    use crate::key::SecretKey;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT, ReadDoc};
    use jiff::civil::Date;
    use proptest::prelude::*;

    /// A new item's document with `content`, then `more` written into it.
    fn first_change(content: &ItemContent, more: impl FnOnce(&mut AutoCommit)) -> Change {
        let owner = EstablishmentId([3; 16]);
        let mut doc = AutoCommit::new();
        init_doc(&mut doc, ItemId::derive(&owner, &[5; 16]), &owner).expect("init");
        write_version(&mut doc, content, &SecretKey::from_seed([1; 32]).public()).expect("write");
        more(&mut doc);
        doc.commit();
        doc.get_last_local_change().expect("a change")
    }

    /// The item as Automerge reads the change applied to an empty document.
    fn applied(change: &Change) -> AutoCommit {
        let mut doc = AutoCommit::new();
        doc.apply_changes([change.clone()]).expect("applies");
        doc
    }

    fn reads_alike(change: &Change) {
        let first = FirstChange::read(change).expect("the shape of a first change");
        let ours = read_item(&first).expect("reads");
        assert_eq!(ours, read_item(&applied(change)).expect("reads"));
    }

    #[test]
    fn every_part_of_an_item_reads_as_automerge_reads_it() {
        reads_alike(&first_change(&sample_content(), |_| {}));
        let qi = ItemContent {
            qi: Some(QiDetails {
                aim: "Fewer missed doses by June".into(),
                measures: vec!["missed doses per week".into(), "ward rounds".into()],
                pdsa_cycles: vec!["cycle 1".into(), "cycle 2".into(), "cycle 3".into()],
                outcomes: "Halved.".into(),
            }),
            ..sample_content()
        };
        reads_alike(&first_change(&qi, |doc| {
            for (key, improvement) in [("zeta", Improvement::Lower), ("alpha", Improvement::Higher)]
            {
                write_measure(
                    doc,
                    &MeasureDefinition {
                        key: key.into(),
                        name: format!("{key} name"),
                        definition: "counted weekly".into(),
                        unit: "%".into(),
                        improvement,
                        baseline_until: Some(Date::constant(2026, 3, 1)),
                    },
                )
                .expect("measure");
                let points: Vec<DataPoint> = (1..=12)
                    .map(|d| DataPoint {
                        date: Date::constant(2026, 1, d),
                        value: f64::from(d) * 1.5,
                    })
                    .collect();
                write_points(doc, key, &points).expect("points");
                write_note(
                    doc,
                    key,
                    &Note {
                        date: Date::constant(2026, 1, 4),
                        text: "new rota".into(),
                    },
                )
                .expect("note");
            }
            write_progress(
                doc,
                &Progress {
                    score: ProgressScore(35),
                    stage: QiStage::Testing,
                },
            )
            .expect("progress");
        }));
        reads_alike(&first_change(&sample_content(), |doc| {
            write_allowed_identifiers(doc, &["943 476 5919".into(), "A1234BC".into()])
                .expect("allowed");
            write_attachments(
                doc,
                &[
                    Attachment {
                        name: "b.pdf".into(),
                        media_type: MediaType::Pdf,
                        size: 2048,
                        hash: BlobHash::of(b"b"),
                    },
                    Attachment {
                        name: "a.docx".into(),
                        media_type: MediaType::Docx,
                        size: 10,
                        hash: BlobHash::of(b"a"),
                    },
                ],
            )
            .expect("attachments");
            write_adoption(
                doc,
                &Adoption {
                    from: ItemId([9; 16]),
                    version: 4,
                    envelope: EnvelopeId([8; 32]),
                },
            )
            .expect("adoption");
            write_supersedes(doc, ItemId([7; 16])).expect("supersedes");
        }));
    }

    #[test]
    fn any_other_shape_is_left_to_automerge() {
        // A key put twice.
        let twice = first_change(&sample_content(), |doc| {
            doc.put(ROOT, "title", "Another").expect("put");
        });
        assert!(FirstChange::read(&twice).is_none());
        // Text inserted before the end.
        let middle = first_change(&sample_content(), |doc| {
            let Ok(Some((_, body))) = doc.get(ROOT, "body") else {
                panic!("a body");
            };
            doc.splice_text(&body, 2, 0, "X").expect("splice");
        });
        assert!(FirstChange::read(&middle).is_none());
        // Something deleted.
        let deleted = first_change(&sample_content(), |doc| {
            doc.delete(ROOT, "summary").expect("delete");
        });
        assert!(FirstChange::read(&deleted).is_none());
        // A change that depends on another.
        let mut doc = applied(&first_change(&sample_content(), |_| {}));
        doc.put(ROOT, "title", "Next").expect("put");
        doc.commit();
        let next = doc.get_last_local_change().expect("a change");
        assert!(FirstChange::read(&next).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

        #[test]
        fn any_text_reads_as_automerge_reads_it(
            title in "\\PC{1,40}",
            summary in "\\PC{0,80}",
            body in "(\\PC|\n){0,400}",
            tags in proptest::collection::vec("\\PC{1,12}", 0..5),
            approver in proptest::option::of("\\PC{1,20}"),
        ) {
            let content = ItemContent {
                title,
                summary,
                body,
                tags,
                approved_by: approver,
                ..sample_content()
            };
            let change = first_change(&content, |_| {});
            let first = FirstChange::read(&change).expect("the shape of a first change");
            prop_assert_eq!(
                read_item(&first).expect("reads"),
                read_item(&applied(&change)).expect("reads")
            );
        }
    }
}
