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
//! with Automerge as before. The ops are read straight from the change's
//! columns ([`crate::columns`]), text appended from the chunk's bytes, not
//! through Automerge's decoding, which makes a key, a value and an actor id
//! per character. The items read both ways are compared by this module's
//! tests.

use std::borrow::Cow;
use std::collections::BTreeMap;

use automerge::{ActorId, AutomergeError, Change, ObjId, ObjType, ScalarValue, Value};

use crate::columns::{Bools, Columns, Delta, Rle, Scalar, Values, spec};
use crate::item::ItemRead;

/// Actions as a change's action column holds them.
const MAKE_MAP: u64 = 0;
const PUT: u64 = 1;
const MAKE_LIST: u64 = 2;
const MAKE_TEXT: u64 = 4;
const INCREMENT: u64 = 5;

/// Where an op puts its value: a key of a map, or after an element of a
/// list or text (`None`: at its head), by the counter of the op that made
/// the element.
#[derive(Debug, Clone, Copy)]
enum Key<'a> {
    Map(&'a str),
    Seq(Option<u64>),
}

/// One op of a change, as far as a first change's ops can be: every actor
/// in it the change's own (others are not read), so ids are counters.
#[derive(Debug)]
struct Op<'a> {
    /// The object, by the counter of the op that made it; `None`: the root.
    obj: Option<u64>,
    key: Key<'a>,
    insert: bool,
    action: u64,
    value: Scalar<'a>,
    /// The one op this one overwrites or increments; more than one is not
    /// read.
    pred: Option<u64>,
}

/// A change's ops read from its columns as Automerge reads them
/// (`storage::change::change_op_columns` in Automerge 0.12): the action
/// column says how many there are; a column the chunk leaves out reads as
/// nulls where Automerge reads it so (the object and key columns, the
/// expand and mark name columns) and as the end of the change elsewhere.
/// An op this reader does not read the way Automerge would (another
/// actor, a mark, a null where a value must be, a column ending early) is
/// `Some(None)`: the change is then left to Automerge.
struct Ops<'a> {
    obj_actor: Rle<'a, u64>,
    obj_ctr: Rle<'a, u64>,
    key_actor: Rle<'a, u64>,
    key_ctr: Delta<'a>,
    key_str: Rle<'a, &'a str>,
    insert: Bools<'a>,
    action: Rle<'a, u64>,
    values: Values<'a>,
    pred_group: Rle<'a, u64>,
    pred_actor: Rle<'a, u64>,
    pred_ctr: Delta<'a>,
    expand: Bools<'a>,
    mark_name: Rle<'a, &'a str>,
}

impl<'a> Ops<'a> {
    fn of(chunk: &'a [u8]) -> Option<Self> {
        let columns = Columns::of_change(chunk)?;
        let known = [
            spec::OBJ_ACTOR,
            spec::OBJ_CTR,
            spec::KEY_ACTOR,
            spec::KEY_CTR,
            spec::KEY_STR,
            spec::INSERT,
            spec::ACTION,
            spec::VAL_META,
            spec::VAL_RAW,
            spec::PRED_GROUP,
            spec::PRED_ACTOR,
            spec::PRED_CTR,
            spec::EXPAND,
            spec::MARK_NAME,
        ];
        // A column this reader does not know (a deflated one among them)
        // is left to Automerge.
        if columns.specs().any(|s| !known.contains(&s)) {
            return None;
        }
        Some(Ops {
            obj_actor: Rle::new(columns.get(spec::OBJ_ACTOR)),
            obj_ctr: Rle::new(columns.get(spec::OBJ_CTR)),
            key_actor: Rle::new(columns.get(spec::KEY_ACTOR)),
            key_ctr: Delta::new(columns.get(spec::KEY_CTR)),
            key_str: Rle::new(columns.get(spec::KEY_STR)),
            insert: Bools::new(Some(columns.get(spec::INSERT)?)),
            action: Rle::new(Some(columns.get(spec::ACTION)?)),
            values: Values::new(columns.get(spec::VAL_META), columns.get(spec::VAL_RAW)),
            pred_group: Rle::new(Some(columns.get(spec::PRED_GROUP)?)),
            pred_actor: Rle::new(Some(columns.get(spec::PRED_ACTOR).unwrap_or_default())),
            pred_ctr: Delta::new(Some(columns.get(spec::PRED_CTR).unwrap_or_default())),
            expand: Bools::new(columns.get(spec::EXPAND)),
            mark_name: Rle::new(columns.get(spec::MARK_NAME)),
        })
    }

    /// The next op: `None` once the action column has ended, `Some(None)`
    /// for one not read here.
    fn next(&mut self) -> Option<Option<Op<'a>>> {
        if self.action.done() {
            return None;
        }
        Some(self.op())
    }

    fn op(&mut self) -> Option<Op<'a>> {
        // The object: the root, or an object made by this actor's op.
        let obj = match (self.obj_actor.next()?, self.obj_ctr.next()?) {
            (None, None) => None,
            (Some(0), Some(ctr)) if ctr > 0 => Some(ctr),
            _ => return None,
        };
        let key = match (
            self.key_actor.next()?,
            self.key_ctr.next()?,
            self.key_str.next()?,
        ) {
            (None, None, Some(key)) => Key::Map(key),
            (None, Some(0), None) => Key::Seq(None),
            (Some(0), Some(ctr), None) if ctr > 0 => Key::Seq(Some(ctr.unsigned_abs())),
            _ => return None,
        };
        let insert = self.insert.next()?;
        let action = self.action.next()??;
        let value = self.values.next()?;
        let pred = match self.pred_group.next()?? {
            0 => None,
            1 => match (self.pred_actor.next()?, self.pred_ctr.next()?) {
                (Some(0), Some(ctr)) if ctr > 0 => Some(ctr.unsigned_abs()),
                _ => return None,
            },
            _ => return None,
        };
        // Expand and a mark's name belong to marks, which no first change
        // read here holds.
        if self.expand.next()? || self.mark_name.next()?.is_some() {
            return None;
        }
        Some(Op {
            obj,
            key,
            insert,
            action,
            value,
            pred,
        })
    }

    /// Every column was read to its end.
    fn done(&self) -> bool {
        self.obj_actor.done()
            && self.obj_ctr.done()
            && self.key_actor.done()
            && self.key_ctr.done()
            && self.key_str.done()
            && self.insert.done()
            && self.action.done()
            && self.values.done()
            && self.pred_group.done()
            && self.pred_actor.done()
            && self.pred_ctr.done()
            && self.expand.done()
            && self.mark_name.done()
    }
}

/// The Automerge value of a scalar read from the chunk.
fn scalar(value: Scalar<'_>) -> ScalarValue {
    match value {
        Scalar::Null => ScalarValue::Null,
        Scalar::Bool(b) => ScalarValue::Boolean(b),
        Scalar::Uint(n) => ScalarValue::Uint(n),
        Scalar::Int(n) => ScalarValue::Int(n),
        Scalar::F64(n) => ScalarValue::F64(n),
        Scalar::Str(s) => ScalarValue::Str(s.into()),
        Scalar::Bytes(b) => ScalarValue::Bytes(b.to_vec()),
        Scalar::Counter(n) => ScalarValue::counter(n),
        Scalar::Timestamp(n) => ScalarValue::Timestamp(n),
    }
}

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
    // Few objects, looked up once or more per op: ordered maps, whose
    // lookups cost less than hashing the counter.
    objects: BTreeMap<u64, Object>,
}

/// Where an object's appended elements end: the last element's counter.
type Tails = BTreeMap<u64, u64>;

impl FirstChange {
    /// Reads `change` when it has the shape of an item's first change;
    /// `None` otherwise. Its columns are read with every step bounded, and
    /// no Automerge code runs here; callers still read changes from
    /// outside under [`crate::change::guarded`].
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
        let mut ops = Ops::of(change.raw_bytes())?;
        let mut doc = FirstChange {
            actor: change.actor_id().clone(),
            root: BTreeMap::new(),
            objects: BTreeMap::new(),
        };
        // Counters put in the change: (object, key) by operation.
        let mut counters: BTreeMap<u64, (Option<u64>, &str)> = BTreeMap::new();
        let mut tails: Tails = BTreeMap::new();
        let mut id = 0u64;
        while let Some(op) = ops.next() {
            let op = op?;
            id = id.checked_add(1)?;
            let obj = match op.obj {
                None => None,
                Some(o) if doc.objects.contains_key(&o) => Some(o),
                Some(_) => return None,
            };
            match (op.key, op.insert) {
                (Key::Map(key), false) => {
                    if op.action == INCREMENT {
                        // Only of a counter put in the change, at that key.
                        let by = match op.value {
                            Scalar::Int(by) => by,
                            Scalar::Uint(by) => by as i64,
                            _ => return None,
                        };
                        let target = op.pred?;
                        if counters.get(&target) != Some(&(obj, key)) {
                            return None;
                        }
                        let Some(Entry::Scalar(ScalarValue::Counter(c))) =
                            doc.map_mut(obj)?.get_mut(key)
                        else {
                            return None;
                        };
                        let now = i64::from(&*c).checked_add(by)?;
                        *c = now.into();
                        continue;
                    }
                    if op.pred.is_some() {
                        return None;
                    }
                    let entry = doc.made(id, op.action, op.value)?;
                    if let Entry::Scalar(ScalarValue::Counter(_)) = entry {
                        counters.insert(id, (obj, key));
                    }
                    let map = doc.map_mut(obj)?;
                    if map.contains_key(key) {
                        return None;
                    }
                    map.insert(key.to_owned(), entry);
                }
                (Key::Seq(after), true) => {
                    let obj = obj?;
                    if after != tails.get(&obj).copied() || op.pred.is_some() {
                        return None;
                    }
                    match doc.objects.get_mut(&obj)? {
                        // Text is read straight from the chunk, a character
                        // (or more) per op, never a value made per op.
                        Object::Text(text) => match (op.action, op.value) {
                            (PUT, Scalar::Str(s)) => text.push_str(s),
                            _ => return None,
                        },
                        Object::List(_) => {
                            let entry = doc.made(id, op.action, op.value)?;
                            let Some(Object::List(list)) = doc.objects.get_mut(&obj) else {
                                return None;
                            };
                            list.push(entry);
                        }
                        Object::Map(_) => return None,
                    }
                    tails.insert(obj, id);
                }
                _ => return None,
            }
        }
        // Every column read to its end, as the action column ended.
        ops.done().then_some(doc)
    }

    /// The entry `action` puts (with `value`), making the object it makes.
    fn made(&mut self, id: u64, action: u64, value: Scalar<'_>) -> Option<Entry> {
        let object = match action {
            PUT => return Some(Entry::Scalar(scalar(value))),
            MAKE_MAP => (ObjType::Map, Object::Map(BTreeMap::new())),
            MAKE_LIST => (ObjType::List, Object::List(Vec::new())),
            MAKE_TEXT => (ObjType::Text, Object::Text(String::new())),
            _ => return None,
        };
        self.objects.insert(id, object.1);
        Some(Entry::Object(object.0, id))
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
    use crate::change::guarded;
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

    /// `chunk` with its checksum made right again (the first four bytes of
    /// the SHA-256 of what follows it), so that Automerge reads it.
    fn with_checksum(mut chunk: Vec<u8>) -> Vec<u8> {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(&chunk[8..]);
        chunk[4..8].copy_from_slice(&hash[..4]);
        chunk
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

        /// A first change with bytes changed anywhere after its checksum
        /// (lengths, column layout, runs, values), checksum fixed: whatever
        /// Automerge parses and this module reads, both read alike.
        #[test]
        fn changed_bytes_read_as_automerge_reads_them_or_are_left_to_it(
            edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let change = first_change(&sample_content(), |doc| {
                write_allowed_identifiers(doc, &["A1234BC".into()]).expect("allowed");
            });
            let mut raw = change.raw_bytes().to_vec();
            for (at, byte) in edits {
                let at = 9 + at.index(raw.len() - 9);
                raw[at] = byte;
            }
            let raw = with_checksum(raw);
            let Ok(Ok(change)) = guarded(|| Change::from_bytes(raw)) else {
                return Ok(());
            };
            let Ok(Some(first)) = guarded(|| FirstChange::read(&change)) else {
                return Ok(());
            };
            let applied = guarded(|| {
                let mut doc = AutoCommit::new();
                doc.apply_changes([change.clone()]).ok()?;
                Some(read_item(&doc).map_err(|e| e.to_string()))
            })
            .ok()
            .flatten();
            prop_assert_eq!(Some(read_item(&first).map_err(|e| e.to_string())), applied);
        }
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
