//! Opening many envelopes at once on the machine's cores: each envelope's
//! signature is checked and then its payload decoded, exactly as
//! [`Envelope::open`] does one; only the work is shared out. A batch from a
//! peer or a stretch of a bundle is opened this way before the replica,
//! which stays single-threaded, stores what verified.
//!
//! Where the replica judges content, the item a change that depends on no
//! other (an item's first change) makes is read on the same threads, in a
//! second pass ([`Prebuilt`]): from the change's operations when it has a
//! first change's shape ([`FirstChange`]), else by Automerge applying it,
//! which is most of what receiving a new item would otherwise cost. The
//! replica uses it only for an item it holds nothing of, where its own
//! work would read exactly that item.

use gatehouse_protocol::automerge::{AutoCommit, ChangeHash};
use gatehouse_protocol::change::{ChangePayload, guarded};
use gatehouse_protocol::envelope::{Body, Envelope, Verified, VerifyError};
use gatehouse_protocol::first::FirstChange;
use gatehouse_protocol::id::NetworkId;
use gatehouse_protocol::item::{Item, read_item};

/// Fewest envelopes worth a thread of their own.
const PER_THREAD: usize = 32;
/// Most threads one batch is opened on.
const MAX_THREADS: usize = 4;

/// The document of a change that depends on no other, built from that
/// change alone: the item it reads as (or why it does not read), saved.
pub struct Prebuilt {
    /// The change.
    pub hash: ChangeHash,
    /// The item the document reads as, or the error reading it.
    pub item: Result<Item, String>,
    /// What the content checks a change from outside passes
    /// ([`crate::authoring::check_received`]) said of that item: they
    /// depend on the item alone, so they run here, on the threads that
    /// open the batch, rather than on the one that stores it.
    pub judged: Result<(), String>,
    /// The document in a form [`AutoCommit::load`] reads: the change
    /// itself (kept only while a batch may need its document: an item of
    /// one change is stored as its envelope), or the document as
    /// [`AutoCommit::save`] writes it.
    pub saved: Vec<u8>,
}

/// Builds the document of `c` alone, when it depends on no other change
/// and applies; `None` otherwise (the replica's own work then says why).
///
/// A change of the shape an item's first change has is read without
/// Automerge applying it ([`FirstChange`]), and its document kept as the
/// change; any other is applied.
pub fn prebuild(c: &ChangePayload) -> Option<Prebuilt> {
    if !c.change.deps().is_empty() {
        return None;
    }
    let hash = c.change.hash();
    let (item, saved) = guarded(move || {
        if let Some(first) = FirstChange::read(&c.change) {
            return Some((read_item(&first), c.change.raw_bytes().to_vec()));
        }
        let mut doc = AutoCommit::new();
        doc.apply_changes([c.change.clone()]).ok()?;
        (doc.get_heads() == [hash]).then(|| (read_item(&doc), doc.save()))
    })
    .ok()
    .flatten()?;
    let item = item.map_err(|e| e.to_string());
    let judged = match &item {
        Ok(read) => crate::authoring::check_received(read).map_err(|e| e.to_string()),
        Err(_) => Ok(()),
    };
    Some(Prebuilt {
        hash,
        item,
        judged,
        saved,
    })
}

/// Opens each of `envelopes` (as [`Envelope::open`]), the results in order,
/// on up to [`MAX_THREADS`] threads (no more than the machine has cores).
pub fn open_all(envelopes: &[&[u8]], network: &NetworkId) -> Vec<Result<Verified, VerifyError>> {
    share_out(envelopes, |b| Envelope::open(b, network))
}

/// As [`open_all`], also building, with `build`, the documents of the
/// changes that depend on no other ([`prebuild`]).
///
/// The documents are built in a second pass and what is kept of them is
/// copied on this thread: the envelopes and the documents kept until the
/// batch uses them would otherwise sit among the memory where documents
/// were built and freed, which the allocator then cannot give back.
pub fn open_all_building(
    envelopes: &[&[u8]],
    network: &NetworkId,
    build: bool,
) -> (Vec<Result<Verified, VerifyError>>, Vec<Prebuilt>) {
    let opened = open_all(envelopes, network);
    if !build {
        return (opened, Vec::new());
    }
    let firsts: Vec<&ChangePayload> = opened
        .iter()
        .filter_map(|o| match o.as_ref().map(Verified::body) {
            Ok(Body::Change(c)) if c.change.deps().is_empty() => Some(&**c),
            _ => None,
        })
        .collect();
    let built = share_out(&firsts, |c| prebuild(c))
        .into_iter()
        .flatten()
        .map(|b| Prebuilt {
            hash: b.hash,
            item: b.item.clone(),
            judged: b.judged.clone(),
            saved: b.saved.clone(),
        })
        .collect();
    (opened, built)
}

/// `f` of each of `work`, in order, on up to [`MAX_THREADS`] threads.
fn share_out<E: Sync, T: Send>(work: &[E], f: impl Fn(&E) -> T + Sync) -> Vec<T> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = cores.min(MAX_THREADS).min(work.len() / PER_THREAD).max(1);
    if threads == 1 {
        return work.iter().map(&f).collect();
    }
    let share = work.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let parts: Vec<_> = work
            .chunks(share)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .zip(work.chunks(share))
            .flat_map(|(handle, part)| {
                // Opening does not panic (Automerge's parser is guarded);
                // were a thread lost, its share is done here instead.
                handle
                    .join()
                    .unwrap_or_else(|_| part.iter().map(f).collect())
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_protocol::automerge::{ROOT, transaction::Transactable};
    use gatehouse_protocol::id::EstablishmentId;
    use gatehouse_protocol::key::SecretKey;

    fn item(n: u64, key: &SecretKey, network: &NetworkId) -> Vec<u8> {
        crate::authoring::new_item(
            &crate::sample::synthetic_content(n),
            key,
            &[7; 16],
            EstablishmentId([1; 16]),
            network,
            1_700_000_000_000 + n,
        )
        .expect("item")
        .bytes()
        .to_vec()
    }

    #[test]
    fn many_envelopes_open_as_each_alone_in_order() {
        let key = SecretKey::from_seed([9; 32]);
        let network = NetworkId([4; 32]);
        let mut envelopes: Vec<Vec<u8>> = (0..300u64).map(|n| item(n, &key, &network)).collect();
        // A forged one, a cut one and one of another network among them.
        let last = envelopes[10].len() - 1;
        envelopes[10][last] ^= 1;
        envelopes[150].truncate(20);
        envelopes[299] = item(299, &key, &NetworkId([5; 32]));
        let refs: Vec<&[u8]> = envelopes.iter().map(Vec::as_slice).collect();
        let together = open_all(&refs, &network);
        assert_eq!(together.len(), envelopes.len());
        for (bytes, got) in envelopes.iter().zip(&together) {
            let alone = Envelope::open(bytes, &network);
            match (alone, got) {
                (Ok(a), Ok(b)) => assert_eq!(a.id(), b.id()),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                (a, b) => panic!("alone {a:?}, together {b:?}"),
            }
        }
        assert!(matches!(together[10], Err(VerifyError::BadSignature(_))));
        assert!(matches!(together[150], Err(VerifyError::Malformed(_))));
        assert!(matches!(
            together[299],
            Err(VerifyError::WrongNetwork { .. })
        ));
    }

    #[test]
    fn a_first_change_is_built_as_applying_it_alone_builds_it() {
        let key = SecretKey::from_seed([9; 32]);
        let network = NetworkId([4; 32]);
        let envelopes: Vec<Vec<u8>> = (0..40u64).map(|n| item(n, &key, &network)).collect();
        let refs: Vec<&[u8]> = envelopes.iter().map(Vec::as_slice).collect();
        let (opened, built) = open_all_building(&refs, &network, true);
        assert_eq!(built.len(), envelopes.len());
        for (env, b) in opened.iter().zip(&built) {
            let Ok(Body::Change(c)) = env.as_ref().map(Verified::body) else {
                panic!("a change");
            };
            let mut doc = AutoCommit::new();
            doc.apply_changes([c.change.clone()]).expect("applies");
            assert_eq!(b.hash, c.change.hash());
            let mut stored = AutoCommit::load(&b.saved).expect("loads");
            assert_eq!(stored.get_heads(), vec![b.hash]);
            assert_eq!(stored.save(), doc.save());
            assert_eq!(
                b.item.as_ref().expect("reads"),
                &read_item(&doc).expect("reads")
            );
        }
        // Nothing is built unless asked, nor for a change that depends on
        // another.
        assert!(open_all_building(&refs, &network, false).1.is_empty());
        let Ok(Body::Change(first)) = opened[0].as_ref().map(Verified::body) else {
            panic!("a change");
        };
        let mut doc = AutoCommit::load(&built[0].saved).expect("loads");
        let mut next = first.as_ref().clone();
        doc.put(ROOT, "title", "Next").expect("put");
        doc.commit();
        next.change = doc.get_last_local_change().expect("a change");
        assert!(prebuild(&next).is_none());
    }
}
